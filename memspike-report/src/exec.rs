//! The report of an `exec`: a real program's run in the group, as the kernel and the
//! runtime's own trace saw it. Keys shared with `run`'s report mean the same.

use serde::Serialize;

use memspike_model::{
    footprint::Footprint,
    profile::{Profile, release_of},
    size::human,
    trace::{
        GoCycle, RuntimeCycle, ScanWork,
        jvm::{self, NativeMemory},
        next_goal_after,
    },
};

use crate::{
    Document,
    facts::{ExecFacts, Exit, OomVictimReport, Signal, TimedCycle, Timeline},
    figures as fig,
    format::{from_source, millis, opt_bytes},
    outcome::Outcome,
    render::{
        chart::{Chart, Mark, MarkKind, Role, Series},
        view::{Block, Pairs, View},
    },
    run::{CgroupSection, KernelSection, WorkerSection},
};

/// A cycle the runtime traced (`t_ms` by the runtime's clock), read `read_ms` after the command
/// started.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TracedCycle {
    pub read_ms: f64,
    #[serde(flatten)]
    pub cycle: RuntimeCycle,
    /// The goal the runtime set for the next cycle: the one the next cycle's line reports, or,
    /// after the last, GOGC's rule applied to what this cycle left live (`null` with GOGC=off).
    pub next_goal_bytes: Option<u64>,
    /// `next_goal_bytes` is GOGC's rule, not a traced figure (a memory limit may lower it).
    pub next_goal_estimated: bool,
}

/// The cycles with each one's next goal: the following cycle's, or, after the last, GOGC's
/// rule ([`next_goal_after`]; `gogc` percent, `None` for off).
fn with_next_goals(cycles: &[TimedCycle], gogc: Option<u64>) -> Vec<TracedCycle> {
    cycles
        .iter()
        .enumerate()
        .map(
            |(
                i,
                TimedCycle {
                    read_ms, cycle: c, ..
                },
            )| {
                let next = cycles
                    .get(i + 1)
                    .and_then(|n| n.cycle.go)
                    .map(|g| g.goal_bytes);
                let estimate = next_goal_after(c, gogc);
                TracedCycle {
                    read_ms: *read_ms,
                    cycle: c.clone(),
                    next_goal_bytes: next.or(estimate),
                    next_goal_estimated: next.is_none() && estimate.is_some(),
                }
            },
        )
        .collect()
}

/// How the process ended, for JSON: `{"code": n}` or `{"signal": "SIGTERM"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<String>,
}

/// A task of the group the kernel's OOM killer killed: the command, or a process of its tree.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ExecVictim {
    #[serde(flatten)]
    pub victim: OomVictimReport,
    /// It was the command memspike started (else a process the command's tree started).
    pub is_command: bool,
}

/// The report of an `exec`. Keys shared with `run`'s report mean the same.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ExecReport {
    pub outcome: Outcome,
    pub limit_bytes: u64,
    /// `--inherit`: the file that sets the limit (absent when memspike set it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_source: Option<String>,
    pub command: Vec<String>,
    /// The variables memspike set for the command (`NAME=value`): a policy's, and the one
    /// that turns its runtime's trace on.
    pub environment: Vec<String>,
    pub exit: ExitInfo,
    /// The runtime whose trace was read (`go`), or `null`.
    pub runtime: Option<String>,
    /// Cycles the runtime traced; `null` when no runtime was recognised.
    pub gc_cycles: Option<u32>,
    pub runtime_cycles: Option<Vec<TracedCycle>>,
    /// The goal the runtime set after the last traced cycle (see [`TracedCycle`]), and what
    /// that cycle left live.
    pub next_goal_bytes: Option<u64>,
    pub last_live_bytes: Option<u64>,
    /// The heap's ceiling as the runtime reported it (a JVM's heap maximum, V8's
    /// `heap_size_limit`), past which the runtime throws its own out-of-memory error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_limit_bytes: Option<u64>,
    /// A JVM's native memory by category, as Native Memory Tracking last accounted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_memory: Option<NativeMemory>,
    /// The Go version the binary was built with (its build information), for a Go binary.
    pub go_version: Option<String>,
    /// A Go program's runtime profile, what `--calibrate` reads back
    /// ([`memspike_model::profile`]); `null` for other programs and runs without a cycle.
    pub runtime_profile: Option<Profile>,
    pub cgroup: CgroupSection,
    /// Every task of the group the kernel's OOM killer killed while the command ran, oldest
    /// first (`kernel.oom_victim` is the command's, else the first of these).
    pub oom_victims: Vec<ExecVictim>,
    pub kernel: KernelSection,
    pub worker: WorkerSection,
    pub timeline: Timeline,
    pub duration_ms: f64,
    /// The end of what the command wrote on stderr, its runtime's trace left out (absent when
    /// empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr_tail: String,
    /// The line where the runtime said it ran out of heap (an `out_of_heap` outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_heap: Option<String>,
    pub verdict: String,
}

/// A Go program's runtime profile from its run: the release its build information names,
/// and what its trace and the group show. The memory outside the heap is read at each cycle
/// from the group as memspike read it at the cycle's end (in older facts: the first sample
/// at or after the line; a sample after the program's exit is no reading of it): the group's
/// charge less its page cache (which the kernel reclaims before it kills: the binary's pages
/// read inside the group, say) less the heap's resident pages read with it (in older facts,
/// the heap in use at the cycle's end); the smallest after the first cycle is kept. What the
/// runtime maps outside the heap, and the program's own heap, come from the smaps and the
/// pacer's scan work read at the same cycles.
pub fn profile(f: &ExecFacts) -> Option<Profile> {
    let go_version = f.go_version.clone()?;
    let release = release_of(&go_version)?;
    // Go's cycles, with what gctrace adds to them.
    let cycles: Vec<(&TimedCycle, GoCycle)> = f
        .cycles
        .iter()
        .filter_map(|c| Some((c, c.cycle.go?)))
        .collect();
    let ((first, _), (last, last_go)) = (cycles.first()?, cycles.last()?);
    let samples = f.timeline.samples.split_last()?.1;
    /// The charge beyond the heap at one cycle, and the heap it was read at.
    struct Charged {
        cycle: usize,
        outside: u64,
        heap: u64,
        anonymous: Option<u64>,
    }
    let readings: Vec<Charged> = cycles
        .iter()
        .enumerate()
        .filter_map(|(cycle, (c, go))| {
            let r = match c.group {
                Some(at_line) => at_line,
                None => samples.iter().find(|s| s.t_ms as f64 >= c.read_ms)?.reading,
            };
            // The heap's resident pages where they were read with the group (what the
            // footprint's curve is measured against), else the heap in use at the cycle's end,
            // which counts a piece allocated but not yet written and leaves out freed pages
            // still resident.
            let heap = c.heap_resident_bytes.unwrap_or(go.heap_end_bytes);
            let outside = r
                .usage_bytes?
                .saturating_sub(r.file_bytes.unwrap_or(0))
                .checked_sub(heap)?;
            let anonymous = c
                .anonymous_bytes
                .zip(c.heap_resident_bytes)
                .and_then(|(anon, heap)| anon.checked_sub(heap));
            Some(Charged {
                cycle,
                outside,
                heap: go.heap_end_bytes,
                anonymous,
            })
        })
        .collect();
    // The first cycle only where no later one was read: a runtime still starting up (its
    // threads, its collector's workers) reads below its size there (a program that collects
    // at its start, before its work: 0.2 to 0.3 MiB on go1.27).
    let after_first = readings.iter().any(|r| r.cycle > 0);
    let kept = readings
        .iter()
        .filter(|r| r.cycle > 0 || !after_first)
        .min_by_key(|r| r.outside)?;
    // How much more the other cycles read, each against the reference's curve at its heap: a
    // runtime not yet grown to its size (the first cycles), threads started later; what the
    // prediction draws over.
    let reference = Footprint::of(release);
    let beyond = |outside: u64, heap: u64| outside as i64 - reference.resident(heap) as i64;
    let outside_heap_range_bytes = readings
        .iter()
        .map(|r| beyond(r.outside, r.heap))
        .max()
        .map(|most| most.saturating_sub(beyond(kept.outside, kept.heap)).max(0) as u64);
    // What the runtime maps outside the heap, read at a cycle after the first and at the most
    // arenas the heap reached: while it has just grown, the runtime is still mapping its
    // collector's metadata (the reference on go1.19 read 7.86 to 8.42 MiB at its first cycle
    // with one arena, 8.48 at the next; a program that collects at its start reads its second
    // cycle so). Of those, the one nearest the reference's at as many arenas: the runtime's
    // persistent allocator maps 256 KiB more in some runs than in others, the reference's
    // alike.
    let sized: Vec<(u64, u32)> = cycles
        .iter()
        .skip(1)
        .filter_map(|(c, _)| c.runtime_mapped_bytes.zip(c.heap_arenas))
        .collect();
    let most_arenas = sized.iter().map(|&(_, arenas)| arenas).max();
    let mapped = sized
        .into_iter()
        .filter(|&(_, arenas)| Some(arenas) == most_arenas)
        .min_by_key(|&(outside, arenas)| outside as i64 - reference.runtime_mapped(arenas) as i64);
    // Allocated between the first cycle's end and the last one's: each cycle's heap at its
    // end less what the one before left live.
    let allocated: u64 = cycles
        .windows(2)
        .map(|w| {
            w[1].1
                .heap_end_bytes
                .saturating_sub(w[0].0.cycle.heap_live_bytes)
        })
        .sum();
    let seconds = (last.cycle.t_ms - first.cycle.t_ms) / 1e3;
    let marks = || {
        cycles
            .iter()
            .filter_map(|(c, go)| Some((go.mark_ms?, c.cycle.heap_live_bytes)))
    };
    let mark_ms = crate::stats::median_f(marks().map(|(ms, _)| ms));
    // The roots: the last cycle's scan work to the byte where the trace gave one, else its
    // line's whole MiB.
    let roots = cycles
        .iter()
        .rev()
        .find_map(|(_, go)| go.scan_work)
        .unwrap_or(ScanWork {
            heap_bytes: 0,
            stacks_bytes: last_go.stacks_bytes.unwrap_or(0),
            globals_bytes: last_go.globals_bytes.unwrap_or(0),
        });
    let marked_bytes_per_ms = crate::stats::median_f(
        marks()
            .filter(|(ms, _)| *ms > 0.0)
            .map(|(ms, live)| live as f64 / ms),
    )
    .map(|rate| rate as u64);
    Some(Profile {
        command: f.command.clone(),
        go_version,
        release,
        outside_heap_bytes: kept.outside,
        at_heap_bytes: kept.heap,
        outside_anonymous_bytes: kept.anonymous,
        outside_heap_range_bytes,
        outside_mapped_bytes: mapped.map(|(outside, _)| outside),
        at_heap_arenas: mapped.map(|(_, arenas)| arenas),
        own_heap_bytes: cycles
            .iter()
            .filter_map(|(_, go)| go.scan_work.map(|w| w.heap_bytes))
            .min(),
        stacks_bytes: roots.stacks_bytes,
        globals_bytes: roots.globals_bytes,
        start_heap_bytes: first.cycle.heap_live_bytes,
        alloc_rate: (seconds > 0.0 && allocated > 0).then(|| (allocated as f64 / seconds) as u64),
        gomaxprocs: last_go.procs,
        mark_ms,
        marked_bytes_per_ms,
        cycles: cycles.len() as u32,
    })
}

/// The part of an exec report that [`read_profile`] reads, as JSON: what a sweep's pods get
/// instead of the whole report (a ConfigMap holds at most 1 MiB). Its cycles are left out
/// (`runtime_cycles` empty): the profile was derived from them already.
pub fn calibration_only(text: &str, path: &str) -> Result<String, String> {
    read_profile(text, path)?;
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut kept = serde_json::Map::new();
    for key in [
        "command",
        "runtime",
        "go_version",
        "gc_cycles",
        "runtime_profile",
    ] {
        kept.insert(key.to_owned(), json[key].clone());
    }
    kept.insert("runtime_cycles".to_owned(), serde_json::json!([]));
    serde_json::to_string_pretty(&kept).map_err(|e| e.to_string())
}

/// Reads a runtime profile back from `text`, the `report.json` of `memspike exec --report
/// DIR` at `path`: the message says what is wrong with it and what to do.
pub fn read_profile(text: &str, path: &str) -> Result<Profile, String> {
    let refuse = |why: String| Err(format!("--calibrate {path}: {why}"));
    let json: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return refuse(format!(
                "not JSON ({e}): give the report.json of `memspike exec --report DIR -- PROG`"
            ));
        }
    };
    let Some(command) = json["command"]
        .as_array()
        .filter(|_| json.get("runtime_cycles").is_some())
    else {
        return refuse("not the report of `memspike exec` (it has no command and no runtime_cycles): record one with `memspike exec --limit SIZE --report DIR -- PROG`".into());
    };
    let command = command
        .iter()
        .filter_map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if json["runtime"] != "go" {
        return refuse(format!(
            "`{command}` is not a Go program (no gctrace was read): calibrate from a Go program's run"
        ));
    }
    if json["go_version"].is_null() {
        return refuse(format!(
            "`{command}` printed gctrace but its binary names no Go version memspike reads (built before go1.18, a development build, or a wrapper that starts the Go program): run the Go binary itself, built with go1.18 or later"
        ));
    }
    if json["gc_cycles"].as_u64().unwrap_or(0) == 0 {
        return refuse(format!(
            "`{command}` ran no collection memspike could read: run it longer, or with more to allocate"
        ));
    }
    match serde_json::from_value(json["runtime_profile"].clone()) {
        Ok(Some(profile)) => Ok(profile),
        Ok(None) => refuse(format!(
            "the run of `{command}` has no runtime profile: no cycle ended with its heap written and a sample of the group after it (a run too short, or a heap allocated but not yet written); record a longer run, or one at a limit where it runs to its end"
        )),
        Err(e) => refuse(format!(
            "its runtime_profile is not one this memspike reads ({e}): record it again"
        )),
    }
}

impl ExecReport {
    pub fn build(f: ExecFacts) -> ExecReport {
        let g = &f.group;
        let outcome = Outcome::of_exec(&f);
        let exit = match &g.exit {
            Exit::Code(c) => ExitInfo {
                code: Some(*c),
                signal: None,
            },
            Exit::Signal(s) => ExitInfo {
                code: None,
                signal: Some(s.name.clone()),
            },
        };
        let oom_victims = g
            .kernel
            .as_ref()
            .map(|k| {
                k.oom_victims
                    .iter()
                    .map(|v| ExecVictim {
                        victim: v.clone(),
                        is_command: v.pid == f.pid,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let oom_kills = g.oom_kills_during();
        let runtime_profile = profile(&f);
        let cycles = with_next_goals(&f.cycles, f.gogc);
        let last = cycles.last();
        let recognised = f.runtime.is_some();
        let mut report = ExecReport {
            outcome,
            limit_bytes: g.limit_bytes,
            limit_source: g.limit_source.as_ref().map(|p| p.display().to_string()),
            command: f.command.clone(),
            environment: f.environment.clone(),
            exit,
            runtime: f.runtime.clone(),
            gc_cycles: recognised.then_some(cycles.len() as u32),
            next_goal_bytes: last.and_then(|c| c.next_goal_bytes),
            last_live_bytes: last.map(|c| c.cycle.heap_live_bytes),
            heap_limit_bytes: f.heap_limit_bytes,
            native_memory: f.native_memory.clone(),
            go_version: f.go_version.clone(),
            runtime_profile,
            runtime_cycles: recognised.then_some(cycles),
            cgroup: CgroupSection {
                version: g.version,
                name: g.name.clone(),
                counters: g.counters.clone(),
            },
            oom_victims,
            kernel: KernelSection::new(g.kernel.clone(), Some(f.pid)),
            worker: WorkerSection {
                pid: Some(f.pid),
                exit: g.exit.to_string(),
                baseline_bytes: f
                    .timeline
                    .samples
                    .first()
                    .and_then(|s| s.reading.usage_bytes),
            },
            timeline: f.timeline,
            duration_ms: g.duration.as_secs_f64() * 1e3,
            stderr_tail: f.stderr_tail.clone(),
            out_of_heap: f.out_of_heap.clone(),
            verdict: String::new(),
        };
        report.verdict = report.verdict_sentence(g.stop_signal.as_ref(), oom_kills);
        report
    }

    /// How the command itself ended, after "the command".
    fn command_end(&self) -> String {
        match (self.exit.code, &self.exit.signal) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by {sig}"),
            (None, None) => "ended".to_owned(),
        }
    }

    /// One victim in words: its name and pid, who it was to the command, its memory.
    fn victim_in_words(&self, v: &ExecVictim) -> String {
        let command = self.worker.pid.unwrap_or(0);
        let whose = match v.victim.parent_pid {
            _ if v.is_command => "the command".to_owned(),
            Some(parent) if parent == command => {
                format!("a child of the command, pid {command}")
            }
            Some(parent) => format!("a child of pid {parent}, under the command, pid {command}"),
            None => format!("not the command, pid {command}; its parent is unknown"),
        };
        format!(
            "{} (pid {}, {whose}) holding {} of anonymous memory",
            v.victim.comm,
            v.victim.pid,
            human(v.victim.anon_rss_bytes)
        )
    }

    /// Every victim in words, "a", "a and b", "a, b and c"; `None` when none was recorded.
    fn victims_in_words(&self) -> Option<String> {
        let all: Vec<String> = self
            .oom_victims
            .iter()
            .map(|v| self.victim_in_words(v))
            .collect();
        match all.split_last() {
            None => None,
            Some((last, [])) => Some(last.clone()),
            Some((last, rest)) => Some(format!("{} and {last}", rest.join(", "))),
        }
    }

    /// A runtime's last collection other than Go's, in words: what it left in use of the
    /// heap's capacity; then what lay outside the heap. Native Memory Tracking, where a JVM
    /// kept it, says that by category; else the group's peak beyond that heap bounds it (the
    /// heap may have grown since the collection: a JVM places a large array straight in its
    /// old generation).
    fn heap_clause(&self) -> String {
        let Some(last) = self.runtime_cycles.as_ref().and_then(|c| c.last()) else {
            return self.native_clause();
        };
        let c = &last.cycle;
        let Some(capacity) = c.heap_capacity_bytes else {
            return self.native_clause();
        };
        let outside = match self.native_memory {
            Some(_) => self.native_clause(),
            None => self
                .cgroup
                .counters
                .peak_bytes
                .and_then(|peak| peak.checked_sub(capacity))
                .map_or(String::new(), |o| {
                    format!(
                        "; the group's peak was {} beyond that heap: the heap's growth since, and memory outside it",
                        human(o)
                    )
                }),
        };
        format!(
            "; after its last collection ({}, cycle {}) {} of its {} heap was in use{outside}",
            c.kind,
            c.n,
            human(c.heap_live_bytes),
            human(capacity)
        )
    }

    /// Native Memory Tracking's account, in words: the heap it counted committed, what was
    /// outside it and its three largest categories; empty without it.
    fn native_clause(&self) -> String {
        let Some(nmt) = &self.native_memory else {
            return String::new();
        };
        let heap = nmt.committed_bytes - nmt.outside_heap_bytes();
        let largest: Vec<String> = nmt
            .largest_first()
            .into_iter()
            .filter(|c| c.name != jvm::HEAP_CATEGORY)
            .take(3)
            .map(|c| format!("{} {}", c.name, human(c.committed_bytes)))
            .collect();
        format!(
            "; Native Memory Tracking at {} counted {} of heap committed and {} outside it ({}, …)",
            millis(nmt.t_ms),
            human(heap),
            human(nmt.outside_heap_bytes()),
            largest.join(", ")
        )
    }

    /// The runtime's own heap limit beside the group's, in words; empty when it did not say.
    fn heap_limit_clause(&self) -> String {
        let (Some(heap), Some(runtime)) = (self.heap_limit_bytes, self.runtime_name()) else {
            return String::new();
        };
        let limit = human(self.limit_bytes);
        if heap > self.limit_bytes {
            format!(
                "; {runtime}'s own heap limit was {}, above the group's {limit}: the group's limit, not its own, is the one it meets",
                human(heap)
            )
        } else {
            format!(
                "; {runtime}'s own heap limit was {}, {:.0} % of the group's {limit}",
                human(heap),
                heap as f64 * 100.0 / self.limit_bytes as f64
            )
        }
    }

    /// The runtime whose trace was read, as a sentence names it.
    fn runtime_name(&self) -> Option<&'static str> {
        match self.runtime.as_deref()? {
            "jvm" => Some("the JVM"),
            "node" => Some("V8"),
            "go" => Some("the Go runtime"),
            _ => None,
        }
    }

    /// The verdict; `oom_kills` is how many the group counted while the command ran.
    fn verdict_sentence(&self, stop_signal: Option<&Signal>, oom_kills: u64) -> String {
        let limit = human(self.limit_bytes);
        let peak = self
            .cgroup
            .counters
            .peak_bytes
            .map_or("unknown".to_owned(), |p| human(p).to_string());
        let runtime = match (self.next_goal_bytes, self.last_live_bytes, self.gc_cycles) {
            (Some(goal), Some(live), Some(n)) => format!(
                "; after its last collection (cycle {n}) {} was live and the Go runtime let the heap grow to a next goal of {}, {} the {limit} limit",
                human(live),
                human(goal),
                if goal > self.limit_bytes {
                    "above"
                } else {
                    "below"
                }
            ),
            _ if self.runtime.is_none() => {
                "; no runtime trace was recognised (the kernel's evidence only)".to_owned()
            }
            _ => self.heap_clause(),
        } + &self.heap_limit_clause();
        let at_limit = format!("with the group at its {limit} limit (peak {peak})");
        match self.outcome {
            // Any task of the group killed is the news, whatever the command's own end.
            Outcome::OomKilled => {
                let command_killed = self.exit.signal.as_deref() == Some("SIGKILL")
                    && self.oom_victims.iter().any(|v| v.is_command);
                let unseen = self.kernel.oom_source.as_ref().map_or(String::new(), |s| {
                    format!("; {s} showed no OOM victim in the group")
                });
                match self.victims_in_words() {
                    Some(victims) if command_killed => format!(
                        "killed by the kernel's OOM killer {at_limit}{runtime}; it chose {victims}"
                    ),
                    Some(victims) => format!(
                        "the kernel's OOM killer killed {victims}, {at_limit}; the command {}{runtime}",
                        self.command_end()
                    ),
                    None if self.exit.signal.as_deref() == Some("SIGKILL") => {
                        format!("killed by the kernel's OOM killer {at_limit}{runtime}{unseen}")
                    }
                    None => format!(
                        "the group counted {oom_kills} OOM kill{} {at_limit}{unseen}; the command {}{runtime}",
                        if oom_kills == 1 { "" } else { "s" },
                        self.command_end()
                    ),
                }
            }
            Outcome::Survived => {
                format!("exited 0; cgroup peak {peak} of the {limit} limit{runtime}")
            }
            Outcome::OutOfHeap => format!(
                "{} ({}): its own heap's limit ended it, not the kernel (cgroup peak {peak} of the {limit} limit){runtime}",
                self.out_of_heap
                    .as_deref()
                    .and_then(memspike_model::trace::out_of_heap)
                    .map_or("the runtime ran out of heap", |o| o.words),
                self.command_end()
            ),
            Outcome::Exited => format!(
                "exited with status {}; cgroup peak {peak} of the {limit} limit{runtime}",
                self.exit.code.unwrap_or(-1)
            ),
            // A real program is never interrupted or in error: it ends as it will.
            Outcome::Signaled | Outcome::Interrupted | Outcome::Error => format!(
                "{}{}; cgroup peak {peak} of the {limit} limit{runtime}",
                self.worker.exit,
                stop_signal.map_or(String::new(), |sig| format!(
                    " (memspike had passed on {sig})"
                ))
            ),
        }
    }

    /// The headline: the outcome and the command.
    fn headline(&self) -> String {
        format!(
            "memspike exec: {} ({}, limit {}{}): {}",
            self.outcome.headline(),
            self.cgroup.version,
            human(self.limit_bytes),
            from_source(self.limit_source.as_deref()),
            self.command.join(" ")
        )
    }

    fn figures(&self) -> Pairs {
        let mut p = Pairs::default();
        p.row(
            &fig::COMMAND,
            format!("pid {}, {}", self.worker.pid.unwrap_or(0), self.worker.exit),
        );
        p.row(
            &fig::RUNTIME,
            match (self.runtime.as_deref(), self.gc_cycles) {
                (Some(r), Some(1)) => format!("{r}, 1 cycle traced"),
                (Some(r), Some(n)) => format!("{r}, {n} cycles traced"),
                _ => "not recognised".to_owned(),
            },
        );
        if let Some(goal) = self.next_goal_bytes {
            p.row(
                &fig::NEXT_GOAL,
                format!(
                    "{} ({} live after the last cycle)",
                    human(goal),
                    opt_bytes(self.last_live_bytes)
                ),
            );
        }
        let c = &self.cgroup.counters;
        p.row(&fig::CGROUP_PEAK, opt_bytes(c.peak_bytes));
        p.row(
            &fig::OOM_KILLS,
            c.oom_kills.map_or("-".into(), |n| n.to_string()),
        );
        self.kernel.rows(&mut p, &[]);
        let t = &self.timeline;
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        p.row(
            &fig::SAMPLES,
            format!(
                "{} sample{} every {} ms, {} bucket{} of {} ms",
                t.samples.len(),
                plural(t.samples.len()),
                t.sample_period_ms,
                t.buckets.len(),
                plural(t.buckets.len()),
                t.bucket_ms
            ),
        );
        p.row(&fig::WALL_TIME, millis(self.duration_ms));
        p
    }

    /// Every OOM victim as a table; `None` when there was none.
    fn victims_block(&self) -> Option<Block> {
        if self.oom_victims.is_empty() {
            return None;
        }
        let rows = self
            .oom_victims
            .iter()
            .map(|v| {
                let o = &v.victim;
                vec![
                    o.pid.to_string(),
                    o.comm.clone(),
                    o.parent_pid.map_or("unknown".to_owned(), |p| p.to_string()),
                    if v.is_command { "yes" } else { "no" }.to_owned(),
                    human(o.anon_rss_bytes).to_string(),
                    human(o.file_rss_bytes).to_string(),
                    human(o.total_vm_bytes).to_string(),
                ]
            })
            .collect();
        Some(Block::Grid {
            caption: fig::OOM_VICTIMS.label.to_owned(),
            header: [
                "pid",
                "name",
                "parent pid",
                "the command",
                "anon",
                "file",
                "total vm",
            ]
            .map(str::to_owned)
            .to_vec(),
            rows,
        })
    }

    /// A JVM's native memory by category, largest first, as Native Memory Tracking last saw
    /// it; `None` without it.
    fn native_block(&self) -> Option<Block> {
        let nmt = self.native_memory.as_ref()?;
        let rows = nmt
            .largest_first()
            .into_iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    human(c.committed_bytes).to_string(),
                    if c.name == jvm::HEAP_CATEGORY {
                        "the heap"
                    } else {
                        "outside the heap"
                    }
                    .to_owned(),
                ]
            })
            .collect();
        Some(Block::Grid {
            caption: format!(
                "{} at {}: {} committed, {} outside the heap",
                fig::NATIVE_MEMORY.label,
                millis(nmt.t_ms),
                human(nmt.committed_bytes),
                human(nmt.outside_heap_bytes())
            ),
            header: ["category", "committed", ""].map(str::to_owned).to_vec(),
            rows,
        })
    }

    /// The last traced cycles (at most 16) as a table: Go's with the heap at the end of
    /// marking and the goals, any other runtime's with each pause's kind, cause, capacity and
    /// length.
    fn cycles_block(&self) -> Option<Block> {
        let cycles = self.runtime_cycles.as_ref()?;
        let shown = cycles.len().min(16);
        let last = &cycles[cycles.len() - shown..];
        let go = last.iter().any(|c| c.cycle.go.is_some());
        let rows = last
            .iter()
            .map(|c| {
                let y = &c.cycle;
                let mut row = vec![y.n.to_string(), format!("{:.1}", c.read_ms)];
                match y.go {
                    Some(g) => row.extend([
                        format!(
                            "{} -> {} -> {}",
                            human(y.heap_start_bytes),
                            human(g.heap_end_bytes),
                            human(y.heap_live_bytes)
                        ),
                        human(g.goal_bytes).to_string(),
                        c.next_goal_bytes.map_or("none".to_owned(), |goal| {
                            let rule = if c.next_goal_estimated {
                                " (GOGC rule)"
                            } else {
                                ""
                            };
                            format!("{}{rule}", human(goal))
                        }),
                    ]),
                    None => row.extend([
                        match &y.cause {
                            Some(cause) => format!("{} ({cause})", y.kind),
                            None => y.kind.to_string(),
                        },
                        format!(
                            "{} -> {}",
                            human(y.heap_start_bytes),
                            human(y.heap_live_bytes)
                        ),
                        opt_bytes(y.heap_capacity_bytes),
                        y.pause_ms
                            .map_or("-".to_owned(), |ms| format!("{ms:.2} ms")),
                    ]),
                }
                row
            })
            .collect();
        let header: &[&str] = if go {
            &[
                "gc",
                "t (ms)",
                "heap start -> end -> live",
                "its goal",
                "next goal",
            ]
        } else {
            &[
                "gc",
                "t (ms)",
                "collection (cause)",
                "heap before -> after",
                "capacity",
                "pause",
            ]
        };
        Some(Block::Grid {
            caption: format!("runtime cycles (the last {shown})"),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows,
        })
    }
}

impl Document for ExecReport {
    fn view(&self) -> View {
        let mut blocks = vec![self.figures().block()];
        blocks.extend(self.victims_block());
        blocks.extend(self.native_block());
        blocks.extend(self.cycles_block());
        View {
            headline: self.headline(),
            tone: self.outcome.tone(),
            blocks,
            error: None,
            verdict: self.verdict.clone(),
        }
    }

    /// Over wall time: the group's usage and anonymous memory as sampled, the heap and goals
    /// the runtime traced, its cycles and the OOM kill marked, and the page-fault rate per
    /// time bucket when traced.
    fn chart(&self) -> Option<Chart> {
        Some(self.picture())
    }
}

impl ExecReport {
    fn picture(&self) -> Chart {
        let samples = &self.timeline.samples;
        let usage = samples
            .iter()
            .filter_map(|s| s.reading.usage_bytes.map(|u| (s.t_ms as f64, u as f64)))
            .collect();
        let anon = samples
            .iter()
            .filter_map(|s| s.reading.anon_bytes.map(|u| (s.t_ms as f64, u as f64)))
            .collect();
        let t_end = samples.last().map_or(0.0, |s| s.t_ms as f64);
        let cycles = self.runtime_cycles.as_deref().unwrap_or_default();
        let goals = cycles
            .iter()
            .filter_map(|c| c.next_goal_bytes.map(|g| (c.read_ms, g as f64)))
            .collect();
        // The heap as the runtime traced it: at each cycle's start and what it left live.
        let heap = |f: fn(&RuntimeCycle) -> u64| -> Vec<(f64, f64)> {
            cycles
                .iter()
                .map(|c| (c.read_ms, f(&c.cycle) as f64))
                .collect()
        };
        let mut marks: Vec<Mark> = cycles
            .iter()
            .map(|c| Mark {
                x: c.read_ms,
                kind: MarkKind::Gc,
                label: match c.next_goal_bytes {
                    Some(goal) => format!("gc {}: goal {}", c.cycle.n, human(goal)),
                    None => format!("gc {}", c.cycle.n),
                },
            })
            .collect();
        if self.outcome == Outcome::OomKilled {
            marks.push(Mark {
                x: t_end,
                kind: MarkKind::Oom,
                label: match &self.kernel.oom_victim {
                    Some(v) => format!("OOM kill: {} ({})", v.comm, v.pid),
                    None => "OOM kill".to_owned(),
                },
            });
        }
        let traced = self.kernel.tracing.is_ebpf();
        let width = self.timeline.bucket_ms.max(1) as f64;
        let faults = traced.then(|| Series {
            role: Role::Faults,
            label: format!("{} / ms", fig::PAGE_FAULTS.label),
            points: self
                .timeline
                .buckets
                .iter()
                .filter_map(|b| b.page_faults.map(|n| (b.t_ms as f64, n as f64 / width)))
                .flat_map(|(t, r)| [(t, r), (t + width, r)])
                .collect(),
        });
        let mut lines = Vec::new();
        if !cycles.is_empty() {
            lines.extend([
                Series {
                    label: "heap at a cycle's start (gctrace)".to_owned(),
                    ..Series::of(Role::Garbage, heap(|c| c.heap_start_bytes))
                },
                Series {
                    label: "heap live after it (gctrace)".to_owned(),
                    ..Series::of(Role::Live, heap(|c| c.heap_live_bytes))
                },
                // A plan holds until the next cycle, the last one's to the end.
                Series::of(Role::NextGc, goals).stepped().held_to(t_end),
            ]);
        }
        lines.extend([
            Series::of(Role::CgroupUsage, usage),
            Series::level(Role::Limit, self.limit_bytes, t_end),
        ]);
        Chart {
            title: self.headline(),
            x_label: "ms since the command started (wall time)".to_owned(),
            bands: Vec::new(),
            stack: vec![Series {
                label: "anonymous memory".to_owned(),
                ..Series::of(Role::Free, anon)
            }],
            lines,
            marks,
            faults,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::facts::{
        CgroupVersion, Count, Counters, GroupFacts, KernelEvidence, PageFaults, Tracing,
    };

    const SHELL: u32 = 810;
    const PYTHON: u32 = 812;

    /// A victim of the group: `pid`, named `comm`, whose parent is `parent`.
    fn victim(pid: u32, comm: &str, parent: Option<u32>) -> OomVictimReport {
        OomVictimReport {
            pid,
            comm: comm.into(),
            parent_pid: parent,
            total_vm_bytes: 300 << 20,
            anon_rss_bytes: 60 << 20,
            file_rss_bytes: 2 << 20,
            shmem_rss_bytes: 0,
            pgtables_bytes: 200 << 10,
            uid: 0,
            oom_score_adj: 0,
            t_ns: 1,
            source: "ebpf raw_tp/mark_victim".into(),
        }
    }

    /// `sh -c 'python3 -c "x=bytearray(256<<20)"; echo $?'` at 64 MiB, as the shell (pid 810)
    /// ended: `exit`, the group's counter at `oom_kills`, the observer's `victims`.
    /// Issue 20: a JVM's run says which limit ended it. Killed by the kernel: what its last
    /// pause left in use of the committed heap, and the group's charge beyond that heap. Ended
    /// by its own OutOfMemoryError: that, and that the kernel did not kill it.
    #[test]
    fn a_jvms_verdict_says_which_limit_ended_it() {
        let jvm = |exit, kills, tail: &str| jvm_run(exit, kills, tail, None).verdict;
        let killed = jvm(sigkill(), 1, "");
        assert!(
            killed.contains("after its last collection (Pause Full, cycle 3) 40.0 MiB of its 48.0 MiB heap was in use; the group's peak was 16.0 MiB beyond that heap: the heap's growth since, and memory outside it"),
            "{killed}"
        );
        let thrown = jvm(
            Exit::Code(1),
            0,
            "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space\n",
        );
        assert!(
            thrown.starts_with("the JVM threw java.lang.OutOfMemoryError (exited with status 1): its own heap's limit ended it, not the kernel"),
            "{thrown}"
        );
        assert!(jvm(Exit::Code(1), 0, "other\n").starts_with("exited with status 1"));
    }

    /// Issue 20: where the user kept Native Memory Tracking on, a JVM's kill is split by its
    /// account (the heap committed, what was outside it, by category) instead of bounded by
    /// the group's peak, and the text has the categories as a table.
    #[test]
    fn native_memory_tracking_splits_what_lay_outside_the_heap() {
        let nmt = jvm::native_memory(
            include_str!("../../memspike-model/src/trace/testdata/jdk17.nmt-summary.txt"),
            101.0,
        );
        let report = jvm_run(sigkill(), 1, "", nmt);
        assert!(
            report.verdict.contains("; Native Memory Tracking at 101 ms counted 64.0 MiB of heap committed and 60.9 MiB outside it (GC 38.6 MiB, Shared class space 11.8 MiB, Code 7.4 MiB, …)"),
            "{}",
            report.verdict
        );
        assert!(
            !report.verdict.contains("beyond that heap"),
            "{}",
            report.verdict
        );
        let text = crate::render::text::render(&report.view());
        assert!(
            text.contains(
                "native memory (NMT) at 101 ms: 124.9 MiB committed, 60.9 MiB outside the heap"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["native_memory"]["committed_bytes"], 127_856u64 * 1024);
    }

    /// A JVM's run that ended with `exit` and `tail` on stderr, the group counting `kills`,
    /// its last pause a full one, with Native Memory Tracking's `nmt`.
    fn jvm_run(exit: Exit, kills: u64, tail: &str, nmt: Option<NativeMemory>) -> ExecReport {
        let mut f = shell(exit, kills, Vec::new());
        f.native_memory = nmt;
        f.command = vec!["java".into(), "Spike".into()];
        f.runtime = Some("jvm".into());
        f.stderr_tail = tail.into();
        f.out_of_heap = tail
            .lines()
            .find(|l| memspike_model::trace::out_of_heap(l).is_some())
            .map(str::to_owned);
        f.cycles = vec![TimedCycle {
            heap_resident_bytes: None,
            anonymous_bytes: None,
            heap_arenas: None,
            runtime_mapped_bytes: None,
            read_ms: 40.0,
            group: None,
            cycle: RuntimeCycle {
                n: 3,
                t_ms: 39.0,
                kind: "Pause Full".into(),
                cause: Some("Allocation Failure".into()),
                heap_start_bytes: 50 << 20,
                heap_live_bytes: 40 << 20,
                heap_capacity_bytes: Some(48 << 20),
                pause_ms: Some(1.5),
                go: None,
            },
        }];
        ExecReport::build(f)
    }

    /// Issue 20: Node's run says which limit ended it: V8's abort at its heap's limit is its
    /// own out-of-heap end, not a signal like any other, and V8's limit is set beside the
    /// group's.
    #[test]
    fn a_node_verdict_says_which_limit_ended_it() {
        let node = |exit, kills, tail: &str, heap_limit: u64| {
            let mut f = shell(exit, kills, Vec::new());
            f.command = vec!["node".into(), "spike.js".into()];
            f.runtime = Some("node".into());
            f.stderr_tail = tail.into();
            f.out_of_heap = tail
                .lines()
                .find(|l| memspike_model::trace::out_of_heap(l).is_some())
                .map(str::to_owned);
            f.heap_limit_bytes = Some(heap_limit);
            ExecReport::build(f)
        };
        let abort = Exit::Signal(Signal {
            number: 6,
            name: "SIGABRT".into(),
        });
        let fatal = include_str!("../../memspike-model/src/trace/testdata/node20.oom.stderr");
        let ran_out = node(abort.clone(), 0, fatal, 35 << 20);
        assert_eq!(ran_out.outcome, Outcome::OutOfHeap);
        assert!(
            ran_out.verdict.starts_with("V8 ran out of heap (\"JavaScript heap out of memory\") and aborted (was killed by SIGABRT): its own heap's limit ended it, not the kernel"),
            "{}",
            ran_out.verdict
        );
        assert!(
            ran_out
                .verdict
                .ends_with("V8's own heap limit was 35.0 MiB, 55 % of the group's 64.0 MiB"),
            "{}",
            ran_out.verdict
        );
        let killed = node(sigkill(), 1, "", 259 << 20);
        assert_eq!(killed.outcome, Outcome::OomKilled);
        assert!(
            killed
                .verdict
                .contains("V8's own heap limit was 259.0 MiB, above the group's 64.0 MiB"),
            "{}",
            killed.verdict
        );
        assert_eq!(
            node(abort, 0, "Aborted\n", 1 << 30).outcome,
            Outcome::Signaled
        );
    }

    fn shell(exit: Exit, oom_kills: u64, victims: Vec<OomVictimReport>) -> ExecFacts {
        let mut kernel = KernelEvidence::unavailable("test");
        kernel.tracing = Tracing::Ebpf;
        kernel.oom_source = Some("ebpf raw_tp/mark_victim".into());
        kernel.oom_victims = victims;
        ExecFacts {
            group: GroupFacts {
                limit_bytes: 64 << 20,
                limit_source: None,
                version: CgroupVersion::V1,
                name: "memspike-1-0-test".into(),
                exit,
                counters: Counters {
                    peak_bytes: Some(64 << 20),
                    oom_kills: Some(oom_kills),
                    ..Counters::default()
                },
                oom_kills_before: 0,
                kernel: Ok(kernel),
                stop_signal: None,
                duration: std::time::Duration::from_millis(300),
            },
            command: ["sh", "-c", "python3 -c \"x=bytearray(256<<20)\"; echo $?"]
                .map(str::to_owned)
                .to_vec(),
            pid: SHELL,
            gogc: Some(100),
            go_version: None,
            policy: None,
            environment: vec!["GODEBUG=gctrace=1".into()],
            runtime: None,
            heap_limit_bytes: None,
            native_memory: None,
            cycles: Vec::new(),
            timeline: Timeline::new(),
            stderr_tail: String::new(),
            out_of_heap: None,
        }
    }

    fn sigkill() -> Exit {
        Exit::Signal(Signal {
            number: 9,
            name: "SIGKILL".into(),
        })
    }

    /// Regression (issue 17): a child OOM-killed under a shell that then exited 0 was reported
    /// as SURVIVED, "exited 0", without a word about the kill.
    #[test]
    fn a_child_killed_under_a_command_that_exited_0_is_an_oom_kill() {
        let r = ExecReport::build(shell(
            Exit::Code(0),
            1,
            vec![victim(PYTHON, "python3", Some(SHELL))],
        ));
        assert_eq!(r.outcome, Outcome::OomKilled);
        assert!(
            r.text().starts_with("memspike exec: OOM-KILLED"),
            "{}",
            r.text()
        );
        assert_eq!(
            r.verdict,
            "the kernel's OOM killer killed python3 (pid 812, a child of the command, pid 810) \
             holding 60.0 MiB of anonymous memory, with the group at its 64.0 MiB limit (peak \
             64.0 MiB); the command exited with status 0; no runtime trace was recognised (the \
             kernel's evidence only)"
        );
        let json = serde_json::to_value(&r).unwrap();
        let v = &json["oom_victims"][0];
        assert_eq!(
            (&v["pid"], &v["comm"], &v["parent_pid"], &v["is_command"]),
            (
                &PYTHON.into(),
                &"python3".into(),
                &SHELL.into(),
                &false.into()
            ),
            "{json:#}"
        );
        assert_eq!(
            json["kernel"]["oom_victim"]["pid"], PYTHON,
            "kept for compatibility"
        );
        let text = r.text();
        assert!(text.contains("OOM victims"), "{text}");
    }

    /// The rule, case by case: any kill the group counted or any victim recorded is an OOM
    /// kill, whatever the command's end; without either, the command's end decides.
    #[test]
    fn of_exec_is_oom_killed_whenever_the_group_lost_a_task() {
        let python = || vec![victim(PYTHON, "python3", Some(SHELL))];
        let status = |n| Exit::Code(n);
        let cases = [
            (status(0), 1, python(), Outcome::OomKilled),
            (status(1), 1, python(), Outcome::OomKilled),
            // The counter alone (no observer saw the victim), or a victim alone.
            (status(0), 1, vec![], Outcome::OomKilled),
            (status(0), 0, python(), Outcome::OomKilled),
            (
                sigkill(),
                1,
                vec![victim(SHELL, "sh", Some(1))],
                Outcome::OomKilled,
            ),
            (status(0), 0, vec![], Outcome::Survived),
            (status(3), 0, vec![], Outcome::Exited),
            // SIGKILL from someone else, nothing counted: not the OOM killer.
            (sigkill(), 0, vec![], Outcome::Signaled),
        ];
        for (exit, kills, victims, want) in cases {
            let f = shell(exit.clone(), kills, victims.clone());
            assert_eq!(
                Outcome::of_exec(&f),
                want,
                "{exit:?}, {kills} kills, {victims:?}"
            );
        }
        // Kills the group had counted before the command started are not its own.
        let mut f = shell(status(0), 2, vec![]);
        f.group.oom_kills_before = 2;
        assert_eq!(Outcome::of_exec(&f), Outcome::Survived);
    }

    /// The verdict says who died, who it was to the command, and how the command ended.
    #[test]
    fn the_verdict_names_every_victim_and_the_commands_end() {
        let verdict = |exit, kills, victims| ExecReport::build(shell(exit, kills, victims)).verdict;
        // The command itself.
        let v = verdict(sigkill(), 1, vec![victim(SHELL, "sh", Some(1))]);
        assert!(
            v.starts_with("killed by the kernel's OOM killer with the group at its 64.0 MiB limit")
                && v.ends_with(
                    "; it chose sh (pid 810, the command) holding 60.0 MiB of anonymous memory"
                ),
            "{v}"
        );
        // Two victims: a grandchild, one whose parent no source told; the command failed.
        let v = verdict(
            Exit::Code(1),
            2,
            vec![victim(900, "cc1", Some(850)), victim(901, "ld", None)],
        );
        assert!(
            v.starts_with(
                "the kernel's OOM killer killed cc1 (pid 900, a child of pid 850, under the \
                 command, pid 810) holding 60.0 MiB of anonymous memory and ld (pid 901, not \
                 the command, pid 810; its parent is unknown) holding 60.0 MiB of anonymous \
                 memory, with the group"
            ) && v.contains("; the command exited with status 1"),
            "{v}"
        );
        // Counted, but no victim recorded.
        let v = verdict(Exit::Code(0), 1, vec![]);
        assert!(
            v.starts_with("the group counted 1 OOM kill with the group at its 64.0 MiB limit")
                && v.contains("; ebpf raw_tp/mark_victim showed no OOM victim in the group; the command exited with status 0"),
            "{v}"
        );
    }

    /// The report's page faults are every fault of the group (issue 17: `dd bs=200M` read into
    /// fresh pages, and its faults were taken in kernel mode); the time buckets are the
    /// supervisor's, of the same total.
    #[test]
    fn the_page_fault_figure_is_user_and_kernel_mode_together() {
        let mut f = shell(Exit::Code(0), 0, vec![]);
        if let Ok(k) = &mut f.group.kernel {
            k.page_faults = Some(PageFaults::new(
                BTreeMap::from([("command".to_owned(), 80)]),
                "ebpf raw_tp/page_fault_user",
            ));
            k.counts = BTreeMap::from([(
                "kernel_page_faults".to_owned(),
                Count::new(51_220, "ebpf raw_tp/page_fault_kernel"),
            )]);
        }
        let r = ExecReport::build(f);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["kernel"]["page_faults"]["total"], 51_300);
        assert_eq!(json["kernel"]["page_faults"]["user_mode"], 80);
        assert_eq!(json["kernel"]["page_faults"]["kernel_mode"], 51_220);
        let text = r.text();
        assert!(
            text.contains("51300 (80 in user mode; 51220 in kernel mode)"),
            "{text}"
        );
    }

    /// The seed's cycle on real Go: "28->28->28 MB, 4 MB goal, 0 MB stacks, 0 MB globals":
    /// the goal after it is GOGC's rule on the 28 MiB it left live, about 2x.
    #[test]
    fn the_next_goal_is_the_next_cycles_or_gogcs_rule() {
        let cycle = |n, live_mib: u64, goal_mib: u64| TimedCycle {
            heap_resident_bytes: None,
            anonymous_bytes: None,
            heap_arenas: None,
            runtime_mapped_bytes: None,
            read_ms: 0.0,
            group: None,
            cycle: RuntimeCycle {
                n,
                t_ms: 0.0,
                kind: "gc".into(),
                cause: None,
                heap_start_bytes: live_mib << 20,
                heap_live_bytes: live_mib << 20,
                heap_capacity_bytes: None,
                pause_ms: None,
                go: Some(GoCycle {
                    heap_end_bytes: live_mib << 20,
                    goal_bytes: goal_mib << 20,
                    cpu_percent: 0.0,
                    forced: false,
                    stacks_bytes: Some(0),
                    globals_bytes: Some(1 << 20),
                    scan_work: None,
                    procs: 2,
                    mark_ms: None,
                }),
            },
        };
        let timed = [cycle(1, 1, 4), cycle(2, 28, 4)];
        let cycles = with_next_goals(&timed, Some(100));
        assert_eq!(cycles[0].next_goal_bytes, Some(4 << 20));
        assert!(!cycles[0].next_goal_estimated);
        assert_eq!(cycles[1].next_goal_bytes, Some((28 + 29) << 20));
        assert!(cycles[1].next_goal_estimated);
        let cycles = with_next_goals(&timed, None);
        assert_eq!(cycles[1].next_goal_bytes, None, "GOGC=off plans none");
        assert!(!cycles[1].next_goal_estimated);
    }

    /// A Go program's run, cycle by cycle: `(read_ms, heap_end MiB, live MiB)`, and the group's
    /// samples `(t_ms, usage MiB, file MiB)`.
    fn go_run(cycles: &[(f64, u64, u64)], samples: &[(u64, u64, u64)]) -> ExecFacts {
        let mut f = shell(Exit::Code(0), 0, Vec::new());
        f.command = vec!["prog".into()];
        f.go_version = Some("go1.21.13".into());
        f.runtime = Some("go".into());
        f.cycles = cycles
            .iter()
            .enumerate()
            .map(|(i, &(read_ms, end, live))| TimedCycle {
                heap_resident_bytes: None,
                anonymous_bytes: None,
                heap_arenas: None,
                runtime_mapped_bytes: None,
                read_ms,
                group: None,
                cycle: RuntimeCycle {
                    n: i as u32 + 1,
                    t_ms: read_ms - 1.0,
                    kind: "gc".into(),
                    cause: None,
                    heap_start_bytes: end << 20,
                    heap_live_bytes: live << 20,
                    heap_capacity_bytes: None,
                    pause_ms: None,
                    go: Some(GoCycle {
                        heap_end_bytes: end << 20,
                        goal_bytes: (2 * end) << 20,
                        cpu_percent: 1.0,
                        forced: false,
                        stacks_bytes: Some(0),
                        globals_bytes: Some(1 << 20),
                        scan_work: None,
                        procs: 4,
                        mark_ms: Some(2.0),
                    }),
                },
            })
            .collect();
        for &(t_ms, usage, file) in samples {
            f.timeline.sample(
                t_ms,
                crate::facts::Reading {
                    usage_bytes: Some(usage << 20),
                    anon_bytes: None,
                    file_bytes: Some(file << 20),
                },
            );
        }
        f
    }

    /// The memory outside the heap is read after each cycle, page cache left out, the
    /// smallest kept; the sample at the program's exit is no reading of it.
    #[test]
    fn a_go_runs_profile_comes_from_its_cycles_and_samples() {
        let f = go_run(
            &[(15.0, 4, 2), (45.0, 20, 10), (85.0, 40, 30)],
            // usage - file - heap_end: 20ms: 9-1-4 = 4; 50ms: 26-2-20 = 4... 90ms: 43-1-40 = 2;
            // the exit sample (200ms) would say 0.
            &[(0, 1, 1), (20, 9, 1), (50, 26, 2), (90, 43, 1), (200, 1, 1)],
        );
        let p = profile(&f).expect("a profile");
        assert_eq!((p.outside_heap_bytes, p.at_heap_bytes), (2 << 20, 40 << 20));
        assert_eq!(
            p.release,
            memspike_model::release::Release::go1(21).unwrap()
        );
        assert_eq!(p.go_version, "go1.21.13");
        assert_eq!((p.globals_bytes, p.gomaxprocs, p.cycles), (1 << 20, 4, 3));
        assert_eq!(p.start_heap_bytes, 2 << 20);
        // 2, 10 and 30 MiB marked live in 2 ms each: 5 MiB per ms, the median.
        assert_eq!(
            (p.mark_ms, p.marked_bytes_per_ms),
            (Some(2.0), Some(5 << 20))
        );
        // (20 - 2) + (40 - 10) MiB allocated over the 70 ms between the first and last cycles.
        assert_eq!(p.alloc_rate, Some((48.0 * (1 << 20) as f64 / 0.070) as u64));
        // Issue 18: the roots to the byte where the pacer's trace gave a cycle's scan work
        // (the last such cycle's), in place of its line's whole MiB.
        let mut exact = f.clone();
        exact.cycles[1].cycle.go.as_mut().unwrap().scan_work = Some(ScanWork {
            heap_bytes: 1,
            stacks_bytes: 16_576,
            globals_bytes: 4_436_144,
        });
        let p = profile(&exact).unwrap();
        assert_eq!((p.stacks_bytes, p.globals_bytes), (16_576, 4_436_144));
        // Not a Go binary, or no sample after any cycle: no profile.
        let mut not_go = f.clone();
        not_go.go_version = None;
        assert_eq!(profile(&not_go), None);
        let unread = go_run(&[(15.0, 4, 2)], &[(0, 1, 1), (20, 1, 1)]);
        assert_eq!(
            profile(&unread),
            None,
            "the only later sample is the exit's"
        );
    }

    /// Issue 18: where the heap's resident pages were read with the group, the memory outside
    /// the heap is the charge less those pages, not less the heap in use: a piece allocated but
    /// not yet written (in use, not charged) read low, freed pages not yet returned (charged,
    /// not in use) high, by the program's allocation pattern.
    #[test]
    fn the_profile_sets_the_charge_against_the_heaps_resident_pages() {
        let read = |usage_mib: u64, heap_resident_mib: Option<u64>| {
            let mut f = go_run(&[(15.0, 40, 20)], &[(0, 1, 1), (100, 1, 1)]);
            f.cycles[0].group = Some(crate::facts::Reading {
                usage_bytes: Some(usage_mib << 20),
                anon_bytes: None,
                file_bytes: Some(1 << 20),
            });
            f.cycles[0].heap_resident_bytes = heap_resident_mib.map(|m| m << 20);
            profile(&f).map(|p| (p.outside_heap_bytes >> 20, p.at_heap_bytes >> 20))
        };
        // 40 MiB in use, of which 8 not yet written: the charge is 35 MiB, 1 of it cache.
        assert_eq!(read(35, Some(32)), Some((2, 40)));
        // Older facts, or a program whose heap could not be read: the heap in use.
        assert_eq!(read(45, None), Some((4, 40)));
        assert_eq!(read(35, None), None, "less charged than in use: no reading");
    }

    /// Issue 18: the runtime's own mappings are read at a cycle after the first and at the
    /// most arenas the heap reached (while the heap has just grown, the runtime is still
    /// mapping its collector's metadata), the one nearest the reference's at as many arenas.
    #[test]
    fn the_runtimes_mappings_are_read_after_its_first_cycle_nearest_the_reference() {
        let mut f = go_run(
            &[(15.0, 4, 2), (45.0, 20, 10), (75.0, 40, 20)],
            &[(0, 1, 1), (20, 9, 1), (50, 26, 2), (80, 46, 3), (200, 1, 1)],
        );
        let reference = Footprint::of(release_of("go1.21.13").unwrap());
        // The first cycle, then one at the same arena (its metadata still being mapped, below
        // the reference's), then one after the heap grew into a second arena.
        let read = [
            (reference.runtime_mapped(1) - (1 << 20), 1),
            (reference.runtime_mapped(1) - (300 << 10), 1),
            (reference.runtime_mapped(2) + (344 << 10), 2),
        ];
        for (c, (mapped, arenas)) in f.cycles.iter_mut().zip(read) {
            c.runtime_mapped_bytes = Some(mapped);
            c.heap_arenas = Some(arenas);
        }
        let p = profile(&f).unwrap();
        assert_eq!(p.outside_mapped_bytes, Some(read[2].0));
        assert_eq!(p.at_heap_arenas, Some(2));
        // A run with one cycle has no such reading.
        f.cycles.truncate(1);
        assert_eq!(profile(&f).unwrap().outside_mapped_bytes, None);
    }

    /// Issue 18: the charge beyond the heap is the smallest reading after the first cycle (a
    /// program that collects at its start reads its runtime below its size there); how much
    /// more the other cycles read, each against the reference's curve at its own heap, is
    /// the range the prediction draws over.
    #[test]
    fn the_profile_keeps_the_range_its_cycles_read_above_the_smallest() {
        let mut f = go_run(
            &[(15.0, 2, 1), (45.0, 40, 39), (75.0, 72, 30)],
            &[
                (0, 1, 1),
                (20, 41, 1),
                (50, 61, 2),
                (80, 75, 2),
                (200, 1, 1),
            ],
        );
        let reference = Footprint::of(release_of("go1.21.13").unwrap());
        // Beyond the reference's curve: 0.1 MiB at 2 MiB of heap, 0 at 40, 0.6 at 72.
        let heap = [2u64 << 20, 40 << 20, 72 << 20];
        let beyond = [100 << 10, 0, 600 << 10];
        for ((c, heap), beyond) in f.cycles.iter_mut().zip(heap).zip(beyond) {
            c.heap_resident_bytes = Some(heap);
            c.group = Some(crate::facts::Reading {
                usage_bytes: Some(heap + reference.resident(heap) + beyond),
                anon_bytes: None,
                file_bytes: Some(0),
            });
        }
        let p = profile(&f).unwrap();
        assert_eq!(
            p.at_heap_bytes,
            40 << 20,
            "the smallest after the first cycle"
        );
        assert_eq!(p.outside_heap_bytes, reference.resident(40 << 20));
        assert_eq!(p.outside_heap_range_bytes, Some(600 << 10));
        // Where the first cycle is the only one, it is the reading.
        f.cycles.truncate(1);
        let p = profile(&f).unwrap();
        assert_eq!(p.at_heap_bytes, 2 << 20);
        assert_eq!(p.outside_heap_range_bytes, Some(0));
    }

    /// Issue 18: the program's own heap is the collector's least scan of the heap: the
    /// experiment's byte slabs hold no pointers and are not scanned; a trace without scan
    /// work gives none.
    #[test]
    fn the_own_heap_is_the_least_heap_scan_work() {
        let mut f = go_run(
            &[(15.0, 40, 39), (45.0, 60, 30)],
            &[(0, 1, 1), (20, 41, 1), (50, 61, 2), (200, 1, 1)],
        );
        assert_eq!(profile(&f).unwrap().own_heap_bytes, None);
        for (c, heap) in f.cycles.iter_mut().zip([845_624, 857_720]) {
            if let Some(go) = c.cycle.go.as_mut() {
                go.scan_work = Some(ScanWork {
                    heap_bytes: heap,
                    stacks_bytes: 42_640,
                    globals_bytes: 224_496,
                });
            }
        }
        assert_eq!(profile(&f).unwrap().own_heap_bytes, Some(845_624));
    }

    #[test]
    fn a_calibration_file_is_an_exec_report_of_a_go_program_with_cycles() {
        let report = |f: ExecFacts| serde_json::to_string(&ExecReport::build(f)).unwrap();
        let go = go_run(
            &[(15.0, 4, 2), (45.0, 20, 10)],
            &[(0, 1, 1), (20, 9, 1), (50, 26, 2), (200, 1, 1)],
        );
        let p = read_profile(&report(go.clone()), "r.json").unwrap();
        assert_eq!(p.command, ["prog"]);
        // Trimmed for a sweep's pods: the same profile, without the cycles and the timeline.
        let trimmed = calibration_only(&report(go.clone()), "r.json").unwrap();
        assert_eq!(read_profile(&trimmed, "c.json").unwrap(), p);
        assert!(!trimmed.contains("timeline"), "{trimmed}");
        assert!(calibration_only("not json", "r.json").is_err());
        let refused = |text: &str, says: &str| {
            let e = read_profile(text, "r.json").unwrap_err();
            assert!(e.starts_with("--calibrate r.json: "), "{e}");
            assert!(e.contains(says), "{e}");
        };
        refused("not json", "not JSON");
        refused(
            r#"{"outcome": "oom_killed", "limit_bytes": 1}"#,
            "not the report of `memspike exec`",
        );
        let mut python = shell(Exit::Code(0), 0, Vec::new());
        python.command = vec!["python3".into()];
        refused(&report(python), "`python3` is not a Go program");
        let mut idle = go.clone();
        idle.cycles.clear();
        refused(&report(idle), "ran no collection");
        let mut unread = go;
        unread.timeline = Timeline::new();
        refused(&report(unread), "has no runtime profile");
    }
}
