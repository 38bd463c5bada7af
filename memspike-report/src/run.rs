//! The report of a `run`: joins the worker's timeline (telemetry) with the cgroup's counters
//! and the kernel's evidence, decides what happened and says why.
//!
//! [`Report::build`] derives every figure and the verdict from the facts of a run
//! ([`RunFacts`]); its [`Document`] implementation only presents them (a view and a chart).

use std::{collections::BTreeMap, fmt::Write as _};

use serde::{Deserialize, Serialize};

use memspike_model::{
    event::{Cycle, Event, GcReason, HeapStats, Kind, ScavengeReason},
    experiment::{DONE, Experiment, OTHER, STARTUP},
    policy::Policy,
    predict::{DRAWS, Prediction},
    scenario::ActionKind as Action,
    size::human,
};

use crate::{
    Document,
    facts::{
        CgroupVersion, Count, Counters, History, KernelEvidence, OomVictimReport, PageFaults,
        Pressure, Reclaim, RunFacts, Tracing,
    },
    figures as fig,
    format::{from_source, millis, opt_bytes, opt_count, percent},
    outcome::Outcome,
    render::{
        chart::{Chart, Mark, MarkKind, Role, Series},
        story::{self, StoryAxis},
        view::{Block, Pairs, View},
    },
};

/// One point of the chart: the heap and the group right after an event, `t_ms` after the
/// worker was ready, in the step it belongs to, and where it stands on the scenario's story
/// axis ([`StoryAxis`], percent; `null` in interactive mode).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Point {
    pub t_ms: f64,
    #[serde(default)]
    pub story: Option<f64>,
    pub step: String,
    pub live: u64,
    pub garbage: u64,
    pub free: u64,
    pub next_gc: Option<u64>,
    pub trigger: Option<u64>,
    pub cgroup_usage_bytes: Option<u64>,
    /// The collection that ended here, if one did.
    pub gc: Option<u32>,
}

impl Point {
    /// The points of `events` (t = 0 at `t0_ns`, on `axis` when the run had a scenario); an
    /// event that names no step is in the step before it (`startup` first, `done` after the
    /// script).
    pub fn series(events: &[Event], t0_ns: u64, axis: Option<&StoryAxis>) -> Vec<Point> {
        let mut step = STARTUP;
        events
            .iter()
            .map(|e| {
                step = match &e.kind {
                    Kind::Done => DONE,
                    k => k.phase().unwrap_or(step),
                };
                Point {
                    t_ms: e.t_ns.saturating_sub(t0_ns) as f64 / 1e6,
                    story: axis.map(|a| a.at(e.step, &e.kind, e.heap.total_alloc)),
                    step: step.to_owned(),
                    live: e.heap.live,
                    garbage: e.heap.garbage,
                    free: e.heap.free,
                    next_gc: e.heap.next_gc,
                    trigger: e.heap.trigger,
                    cgroup_usage_bytes: e.cgroup_usage_bytes,
                    gc: match &e.kind {
                        Kind::Gc { cycle, .. } => Some(cycle.n),
                        _ => None,
                    },
                }
            })
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct HeapAtEnd {
    pub live_bytes: u64,
    pub garbage_bytes: u64,
    pub free_bytes: u64,
    /// Free pages returned to the OS (`HeapReleased`).
    pub released_bytes: u64,
    /// What the runtime holds outside the heap (`Sys - HeapSys`).
    pub non_heap_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FailedAllocation {
    /// The step it belonged to.
    pub phase: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CgroupSection {
    pub version: CgroupVersion,
    pub name: String,
    #[serde(flatten)]
    pub counters: Counters,
}

#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct WorkerSection {
    pub pid: Option<u32>,
    pub exit: String,
    /// What the group was charged when the worker was ready, before its first allocation:
    /// the process itself (code, stacks, page tables), not the simulated heap.
    pub baseline_bytes: Option<u64>,
}

/// The settings in brief (the whole configuration is the report's `experiment`).
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Settings {
    /// `self-directed` or `interactive`.
    pub mode: &'static str,
    /// The scenario's name.
    pub scenario: String,
    /// The seed scenario's spike fraction; `null` for other scenarios.
    pub spike: Option<f64>,
    /// The runtime's policy, with the keys and spellings of a policies file.
    #[serde(flatten)]
    pub policy: Policy,
    /// The soft memory limit (`GOMEMLIMIT`) in bytes under the cgroup's limit; `null` when off.
    pub memory_limit_bytes: Option<u64>,
    /// The Go release whose rules the simulation followed.
    pub runtime: String,
    /// The program the simulation stood for: the reference, or the command `--calibrate`'s
    /// profile was measured from.
    pub profile: String,
}

/// The group's page faults as the reports show them ([`KernelEvidence::all_faults`]): every
/// fault, the split by mode where the sources tell it, and the split by step.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FaultsSection {
    /// Every page fault of the group's tasks: in user mode and in kernel mode (on user memory
    /// touched inside a system call, such as `read(2)` into fresh pages).
    pub total: u64,
    /// Faults taken in user mode; `null` when the source counts both modes without telling
    /// them apart (`memory.stat pgfault`).
    pub user_mode: Option<u64>,
    /// Faults taken in kernel mode; `null` when not counted apart.
    pub kernel_mode: Option<u64>,
    /// Per step slot: user-mode faults only when `user_mode` is set (eBPF), else every fault.
    /// (The key keeps its historical name.)
    pub per_phase: BTreeMap<String, u64>,
    /// Where the per-step counts come from, e.g. `ebpf raw_tp/page_fault_user` or
    /// `memory.stat pgfault` (the kernel-mode counter's source is under `counts`).
    pub source: String,
}

impl FaultsSection {
    fn of(k: &KernelEvidence) -> Option<FaultsSection> {
        let (f, all) = (k.page_faults.as_ref()?, k.all_faults()?);
        Some(FaultsSection {
            total: all.total,
            user_mode: all.user_mode,
            kernel_mode: all.kernel_mode,
            per_phase: f.per_phase.clone(),
            source: f.source.clone(),
        })
    }
}

/// What the kernel saw inside the group; each figure names its source.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct KernelSection {
    pub tracing: Tracing,
    pub page_faults: Option<FaultsSection>,
    pub major_faults: Option<PageFaults>,
    pub reclaim: Option<Reclaim>,
    pub pressure: Option<Pressure>,
    /// The OOM killer's victim: this worker if the kernel chose it, else the first victim
    /// recorded in the group.
    pub oom_victim: Option<OomVictimReport>,
    /// Where OOM victims were looked for (not serialized: `oom_victim.source` says it).
    #[serde(skip)]
    pub oom_source: Option<String>,
    /// The plain counters the eBPF programs kept, by name; each is a named figure.
    pub counts: BTreeMap<String, Count>,
    /// Anything the observer could only partly do.
    pub notes: Vec<String>,
}

impl KernelSection {
    /// The evidence as the report shows it, with `worker`'s victim (or the group's first).
    pub fn new(kernel: Result<KernelEvidence, String>, worker: Option<u32>) -> KernelSection {
        let k = kernel.unwrap_or_else(|reason| KernelEvidence::unavailable(&reason));
        KernelSection {
            oom_victim: k.victim_of(worker).cloned(),
            page_faults: FaultsSection::of(&k),
            tracing: k.tracing,
            major_faults: k.major_faults,
            reclaim: k.reclaim,
            pressure: k.pressure,
            oom_source: k.oom_source,
            counts: k.counts,
            notes: k.notes,
        }
    }
}

impl KernelSection {
    /// The kernel's figures as rows, each source named; page faults in the order of `steps`
    /// (`other`, for steps beyond the counters, last).
    pub fn rows(&self, p: &mut Pairs, steps: &[String]) {
        p.row(&fig::TRACING, self.tracing.to_string());
        if let Some(f) = &self.page_faults {
            let phases: Vec<String> = steps
                .iter()
                .map(String::as_str)
                .chain([OTHER])
                .filter_map(|s| f.per_phase.get(s).map(|n| (s, n)))
                .filter(|(_, n)| **n > 0)
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            let steps = if phases.is_empty() {
                String::new()
            } else {
                format!(": {}", phases.join(", "))
            };
            // The per-step split is of what the per-step source counts: user-mode faults
            // under eBPF, every fault from memory.stat.
            let split = match (f.user_mode, f.kernel_mode) {
                (Some(user), Some(kernel)) => {
                    format!(" ({user} in user mode{steps}; {kernel} in kernel mode)")
                }
                (Some(user), None) => {
                    format!(" ({user} in user mode{steps}; kernel mode not counted)")
                }
                _ if phases.is_empty() => String::new(),
                _ => format!(" ({})", phases.join(", ")),
            };
            p.row(&fig::PAGE_FAULTS, format!("{}{split}", f.total));
        }
        if let Some(f) = &self.major_faults {
            p.row(&fig::MAJOR_FAULTS, f.total.to_string());
        }
        if let Some(r) = &self.reclaim {
            p.row(
                &fig::RECLAIM_STALLS,
                format!("{} ({:.2} ms in all)", r.stalls, r.total_ns as f64 / 1e6),
            );
        }
        for (name, count) in &self.counts {
            if let Some(figure) = fig::of_count(name) {
                p.row(figure, count.value.to_string());
            }
        }
        if let Some(ps) = &self.pressure {
            let averages = ps.averages.map_or(String::new(), |a| {
                format!(
                    "; avg10/60/300 some {:.1}/{:.1}/{:.1} %, full {:.1}/{:.1}/{:.1} %",
                    a.some_avg10,
                    a.some_avg60,
                    a.some_avg300,
                    a.full_avg10,
                    a.full_avg60,
                    a.full_avg300
                )
            });
            p.row(
                &fig::MEMORY_STALL,
                format!(
                    "some {:.2} ms, full {:.2} ms{averages}",
                    ps.some_ns as f64 / 1e6,
                    ps.full_ns as f64 / 1e6
                ),
            );
        }
        if let Some(v) = &self.oom_victim {
            p.row(
                &fig::OOM_VICTIM,
                format!(
                    "pid {} ({}), anon {}, file {}, shmem {}, page tables {}",
                    v.pid,
                    v.comm,
                    human(v.anon_rss_bytes),
                    human(v.file_rss_bytes),
                    human(v.shmem_rss_bytes),
                    human(v.pgtables_bytes)
                ),
            );
        }
        let sources: Vec<String> = [
            ("page faults", self.page_faults.as_ref().map(|f| &f.source)),
            (
                "major faults",
                self.major_faults.as_ref().map(|f| &f.source),
            ),
            ("reclaim", self.reclaim.as_ref().map(|r| &r.source)),
            ("PSI", self.pressure.as_ref().map(|p| &p.source)),
            (
                "OOM victim",
                self.oom_victim
                    .as_ref()
                    .map(|v| &v.source)
                    .or(self.oom_source.as_ref()),
            ),
        ]
        .into_iter()
        .filter_map(|(what, source)| source.map(|s| format!("{what}: {s}")))
        .chain(self.counts.iter().filter_map(|(name, c)| {
            fig::of_count(name).map(|f| format!("{}: {}", f.label, c.source))
        }))
        .collect();
        if !sources.is_empty() {
            p.row(&fig::KERNEL_SOURCES, sources.join("\n"));
        }
        for note in &self.notes {
            p.row(&fig::KERNEL_NOTE, note.clone());
        }
    }
}

/// One line of the timeline: the event, milliseconds after the worker was ready.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TimelineEvent {
    pub t_ms: f64,
    #[serde(flatten)]
    pub event: Event,
}

/// The report. Field names are the JSON keys (docs/reference/report.schema.json).
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub outcome: Outcome,
    pub limit_bytes: u64,
    /// `--inherit`: the file that sets the limit (absent when memspike set it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_source: Option<String>,
    /// The step it died in.
    pub died_in: Option<String>,
    pub gc_cycles: u32,
    /// What the model predicts for the same experiment over timing draws (`null` in interactive
    /// mode, which has no scenario to predict).
    pub prediction: Option<Prediction>,
    /// The share of the CPUs the simulated collector used over the simulated run
    /// ([`HeapStats::gc_cpu_share`]); `null` before any simulated time passed.
    pub gc_cpu_share: Option<f64>,
    pub next_gc_after_spike_bytes: Option<u64>,
    pub garbage_at_end_bytes: u64,
    pub needed_bytes: Option<u64>,
    pub garbage_ratio: Option<f64>,
    pub heap_at_end: HeapAtEnd,
    pub failed_allocation: Option<FailedAllocation>,
    pub cgroup: CgroupSection,
    pub kernel: KernelSection,
    pub worker: WorkerSection,
    pub settings: Settings,
    /// The experiment's whole configuration, as the worker received it.
    pub experiment: Experiment,
    pub duration_ms: f64,
    pub error: Option<String>,
    pub verdict: String,
    /// The timeline, bounded: the worker's first and last events (`events_omitted` says how
    /// many between them were left out).
    pub events: Vec<TimelineEvent>,
    /// Every collection the worker reported, in order: as many as `gc_cycles` counts. (In
    /// interactive mode, whose history stays bounded, only those among the first and last
    /// events.)
    pub cycles: Vec<CycleAt>,
    /// Every step the worker began, in order, with its begin and end (interactive mode: only
    /// those among the first and last events).
    pub steps: Vec<StepRun>,
    /// The heap and the group over the whole run, thinned evenly (the chart's data).
    pub series: Vec<Point>,
    /// Events the worker sent in all, and how many of them `events` leaves out (between its
    /// first and last ones; `cycles` and `steps` still list those of a run that ended by
    /// itself).
    pub events_total: u64,
    pub events_omitted: u64,
    /// Where in `events` the omitted ones were (the length of the kept head).
    #[serde(skip)]
    omitted_at: usize,
    /// The step names in the experiment's order (page faults are listed so).
    #[serde(skip)]
    step_names: Vec<String>,
    /// The scenario's story axis (`None` in interactive mode), and where on it the kernel
    /// killed the worker: the chart's x.
    #[serde(skip)]
    pub(crate) story: Option<StoryAxis>,
    #[serde(skip)]
    pub(crate) killed_at: Option<f64>,
}

/// One collection, milliseconds after the worker was ready, in the step it ran in.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CycleAt {
    pub t_ms: f64,
    /// The step it ran in.
    pub phase: String,
    #[serde(flatten)]
    pub cycle: Cycle,
}

/// One step the worker ran: its `begin` and `end`, milliseconds after the worker was ready.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct StepRun {
    /// The step's name.
    pub phase: String,
    pub action: Action,
    /// What the step set out to do: bytes to allocate or drop (for `free_os_memory`, returned).
    pub bytes: u64,
    /// `null` when its `begin` was not kept (interactive mode).
    pub begin_ms: Option<f64>,
    /// `null` for a step that never ended: the one the kernel interrupted.
    pub end_ms: Option<f64>,
    /// For `alloc`: bytes that came from swept garbage, and bytes newly charged.
    pub reused: u64,
    pub grown: u64,
}

/// The collections and steps among `events` (t = 0 at `t0_ns`).
fn landmarks<'a>(
    events: impl Iterator<Item = &'a Event>,
    t0_ns: u64,
) -> (Vec<CycleAt>, Vec<StepRun>) {
    let (mut cycles, mut steps) = (Vec::new(), Vec::<StepRun>::new());
    for e in events {
        let t_ms = e.t_ns.saturating_sub(t0_ns) as f64 / 1e6;
        match &e.kind {
            Kind::Gc { phase, cycle } => cycles.push(CycleAt {
                t_ms,
                phase: phase.clone(),
                cycle: *cycle,
            }),
            Kind::Begin {
                phase,
                action,
                bytes,
            } => steps.push(StepRun {
                phase: phase.clone(),
                action: *action,
                bytes: *bytes,
                begin_ms: Some(t_ms),
                end_ms: None,
                reused: 0,
                grown: 0,
            }),
            Kind::End {
                phase,
                action,
                bytes,
                reused,
                grown,
            } => {
                // Steps do not nest: an `end` closes the step begun last, if it is open.
                let open = steps
                    .last_mut()
                    .filter(|s| s.end_ms.is_none() && s.phase == *phase);
                match open {
                    Some(s) => {
                        s.end_ms = Some(t_ms);
                        s.reused = *reused;
                        s.grown = *grown;
                    }
                    None => steps.push(StepRun {
                        phase: phase.clone(),
                        action: *action,
                        bytes: *bytes,
                        begin_ms: None,
                        end_ms: Some(t_ms),
                        reused: *reused,
                        grown: *grown,
                    }),
                }
            }
            _ => {}
        }
    }
    (cycles, steps)
}

impl Settings {
    fn of(e: &Experiment, interactive: bool) -> Settings {
        Settings {
            mode: if interactive {
                "interactive"
            } else {
                "self-directed"
            },
            scenario: e.scenario.name.clone(),
            spike: e.spike,
            policy: e.policy.clone(),
            memory_limit_bytes: e.memory_limit_bytes(),
            runtime: e.runtime.to_string(),
            profile: memspike_model::profile::describe(e.profile.as_ref()),
        }
    }
}

/// The step that began and never ended (the one the kernel interrupted), if any.
fn unfinished_step<'a>(events: impl Iterator<Item = &'a Event>) -> Option<(&'a str, Action, u64)> {
    let mut open = None;
    for e in events {
        match &e.kind {
            Kind::Begin {
                phase,
                action,
                bytes,
            } => open = Some((phase.as_str(), *action, *bytes)),
            Kind::End { .. } => open = None,
            _ => {}
        }
    }
    open
}

impl Report {
    pub fn build(f: RunFacts) -> Report {
        let events = &f.events;
        let ready_event = events
            .head()
            .iter()
            .find(|e| matches!(e.kind, Kind::Ready { .. }));
        let baseline_bytes = ready_event.and_then(|e| e.cgroup_usage_bytes);
        let pid = ready_event.and_then(|e| match e.kind {
            Kind::Ready { pid } => Some(pid),
            _ => None,
        });
        let ready = ready_event.is_some();
        let last_heap: HeapStats = events.last().map(|e| e.heap).unwrap_or_default();
        let unfinished = unfinished_step(events.iter());
        let g = &f.group;
        let (outcome, error) = Outcome::of_run(&f);

        let died_in = match outcome {
            Outcome::OomKilled => Some(
                unfinished
                    .map_or(if ready { DONE } else { STARTUP }, |(phase, _, _)| phase)
                    .to_owned(),
            ),
            _ => None,
        };
        let failed_allocation = match (outcome, unfinished) {
            (Outcome::OomKilled, Some((phase, Action::Alloc, bytes))) => Some(FailedAllocation {
                phase: phase.to_owned(),
                bytes,
            }),
            _ => None,
        };
        // What the experiment needed at the end: the allocation that failed, or else the
        // last one it made (the remainder).
        let needed_bytes = failed_allocation.as_ref().map(|a| a.bytes).or_else(|| {
            events.iter().rev().find_map(|e| match e.kind {
                Kind::End {
                    action: Action::Alloc,
                    bytes,
                    ..
                } => Some(bytes),
                _ => None,
            })
        });
        let garbage = last_heap.garbage;
        let garbage_ratio = needed_bytes
            .filter(|&n| n > 0)
            .map(|n| garbage as f64 / n as f64);
        // The goal after the seed's spike; `None` when no collection is planned (GOGC=off).
        let next_gc_after_spike_bytes = events
            .iter()
            .find_map(|e| match &e.kind {
                Kind::End { phase, .. } if phase == "spike" => Some(e.heap.next_gc),
                _ => None,
            })
            .flatten();
        let t0 = events.head().first().map_or(0, |e| e.t_ns);
        let (cycles, steps) = landmarks(events.iter(), t0);
        let story = (!f.interactive).then(|| StoryAxis::of(&f.experiment));
        // The kill, as far into its step as the room left below the limit at the last event.
        let killed_at = match (outcome, &story, events.last()) {
            (Outcome::OomKilled, Some(axis), Some(last)) => Some(
                axis.killed_at(
                    last.step,
                    &last.kind,
                    last.heap.total_alloc,
                    f.experiment
                        .limit
                        .saturating_sub(last.cgroup_usage_bytes.unwrap_or(f.experiment.limit)),
                ),
            ),
            _ => None,
        };
        let timeline = events
            .ends()
            .map(|e| TimelineEvent {
                t_ms: e.t_ns.saturating_sub(t0) as f64 / 1e6,
                event: e.clone(),
            })
            .collect();

        let e = &f.experiment;
        let mut report = Report {
            outcome,
            limit_bytes: e.limit,
            limit_source: g.limit_source.as_ref().map(|p| p.display().to_string()),
            died_in,
            gc_cycles: last_heap.num_gc,
            prediction: (!f.interactive)
                .then(|| memspike_model::predict::predict(e, DRAWS))
                .flatten(),
            gc_cpu_share: events
                .last()
                .and_then(|ev| ev.heap.gc_cpu_share(ev.sim_ns, e.gomaxprocs)),
            next_gc_after_spike_bytes,
            garbage_at_end_bytes: garbage,
            needed_bytes,
            garbage_ratio,
            heap_at_end: HeapAtEnd {
                live_bytes: last_heap.live,
                garbage_bytes: garbage,
                free_bytes: last_heap.free,
                released_bytes: last_heap.released,
                non_heap_bytes: last_heap.non_heap,
            },
            failed_allocation,
            cgroup: CgroupSection {
                version: g.version,
                name: g.name.clone(),
                counters: g.counters.clone(),
            },
            kernel: KernelSection::new(g.kernel.clone(), pid),
            worker: WorkerSection {
                pid,
                exit: g.exit.to_string(),
                baseline_bytes,
            },
            settings: Settings::of(e, f.interactive),
            experiment: e.clone(),
            duration_ms: g.duration.as_secs_f64() * 1e3,
            error,
            verdict: String::new(),
            events: timeline,
            cycles,
            steps,
            series: Point::series(&f.series, t0, story.as_ref()),
            events_total: events.total(),
            events_omitted: events.between(),
            omitted_at: events.head().len(),
            step_names: f.experiment.step_names(f.interactive),
            story,
            killed_at,
        };
        report.verdict = report.verdict_sentence(events, last_heap);
        if let Some(evidence) = report.kernel_evidence() {
            report.verdict.push_str("; ");
            report.verdict.push_str(&evidence);
        }
        if let Some(p) = &report.prediction {
            report.verdict.push_str("; ");
            report
                .verdict
                .push_str(&crate::outcome::beside(p, report.outcome));
        }
        report
    }

    fn verdict_sentence(&self, events: &History<Event>, last: HeapStats) -> String {
        let limit = human(self.limit_bytes);
        match self.outcome {
            Outcome::OomKilled => {
                let what = self.failed_allocation.as_ref().map_or("".to_owned(), |a| {
                    format!(" while allocating {}", human(a.bytes))
                });
                if last.garbage == 0 {
                    format!(
                        "killed{what} in the {} phase with no garbage to reuse: the live heap ({}) and the runtime's own memory ({} outside the heap) do not fit the {limit} limit",
                        self.died_in.as_deref().unwrap_or("?"),
                        human(last.live),
                        human(last.non_heap)
                    )
                } else if let Some(goal) = last.next_gc {
                    let side = if goal > self.limit_bytes {
                        "above"
                    } else {
                        "below"
                    };
                    format!(
                        "killed{what} with {} ({:.1}x) of garbage waiting for a collection planned at {}, {side} the {limit} limit",
                        human(last.garbage),
                        self.garbage_ratio.unwrap_or(0.0),
                        human(goal)
                    )
                } else {
                    format!(
                        "killed{what} with {} ({:.1}x) of garbage and no collection planned: with GOGC=off and no memory limit the runtime plans none, so the heap grew past the {limit} limit",
                        human(last.garbage),
                        self.garbage_ratio.unwrap_or(0.0),
                    )
                }
            }
            Outcome::Survived => {
                let peak = self
                    .cgroup
                    .counters
                    .peak_bytes
                    .map_or("unknown".to_owned(), |p| human(p).to_string());
                let last_alloc = events.iter().rev().find_map(|e| match &e.kind {
                    Kind::End {
                        phase,
                        action: Action::Alloc,
                        bytes,
                        reused,
                        grown,
                    } => Some((phase, *bytes, *reused, *grown)),
                    _ => None,
                });
                match last_alloc {
                    Some((step, bytes, reused, _)) if reused >= bytes => format!(
                        "survived: the last allocation ({} in the {step} step) reused garbage swept by collection {} instead of growing the heap; cgroup peak {peak} of the {limit} limit",
                        human(bytes),
                        last.num_gc
                    ),
                    Some((step, bytes, _, grown)) => format!(
                        "survived: the heap grew by {} for the last allocation ({} in the {step} step) and still fit; cgroup peak {peak} of the {limit} limit",
                        human(grown),
                        human(bytes)
                    ),
                    None => format!("survived; cgroup peak {peak} of the {limit} limit"),
                }
            }
            // The worker is memspike's own: it never exits otherwise without an error.
            Outcome::Interrupted
            | Outcome::Error
            | Outcome::Exited
            | Outcome::Signaled
            | Outcome::OutOfHeap => format!(
                "the experiment did not complete: {}",
                self.error.as_deref().unwrap_or("unknown error")
            ),
        }
    }

    /// What the kernel's own records add to the verdict: who the OOM killer chose, with how
    /// much anonymous memory, and the faults of the phase it died in.
    fn kernel_evidence(&self) -> Option<String> {
        let k = &self.kernel;
        let faults = |phase: &str| {
            k.page_faults
                .as_ref()
                .and_then(|f| f.per_phase.get(phase).copied())
        };
        match (self.outcome, &k.oom_victim) {
            (Outcome::OomKilled, Some(v)) => {
                let who = if Some(v.pid) == self.worker.pid {
                    "the worker".to_owned()
                } else {
                    format!(
                        "not the worker ({})",
                        self.worker.pid.map_or("-".into(), |p| p.to_string())
                    )
                };
                let mut s = format!(
                    "the kernel's OOM killer chose pid {} ({who}) holding {} of anonymous memory against the {} limit",
                    v.pid,
                    human(v.anon_rss_bytes),
                    human(self.limit_bytes)
                );
                if let Some(n) = self.died_in.as_deref().and_then(faults) {
                    let _ = write!(
                        s,
                        ", after {n} page faults in the {} phase",
                        self.died_in.as_deref().unwrap_or("?")
                    );
                }
                Some(s)
            }
            (Outcome::OomKilled, None) => k
                .oom_source
                .as_ref()
                .map(|s| format!("{s} showed no OOM victim in the group")),
            _ => None,
        }
    }

    /// The headline: the outcome and the settings in brief.
    fn headline(&self) -> String {
        let s = &self.settings;
        let mut script = match (s.mode, s.spike) {
            ("interactive", _) => "interactive".to_owned(),
            (_, Some(spike)) => format!("spike {:.0} %", spike * 100.0),
            (_, None) => format!("scenario {}", s.scenario),
        };
        if s.policy.gc_after_release {
            script.push_str(", GC after release");
        }
        if let Some(m) = s.memory_limit_bytes {
            let _ = write!(script, ", GOMEMLIMIT={}", human(m));
        }
        if let Some(w) = s.policy.watchdog() {
            let how = format!("({:?}-driven, forcing {:?})", w.driver, w.force).to_lowercase();
            let _ = write!(script, ", watchdog {} {how}", w.policy);
        }
        format!(
            "memspike: {} ({}, limit {}{}, GOGC={}, {script})",
            self.outcome.headline(),
            self.cgroup.version,
            human(self.limit_bytes),
            from_source(self.limit_source.as_deref()),
            s.policy.gogc,
        )
    }

    /// The run's figures, as label and value.
    fn figures(&self) -> Pairs {
        let mut p = Pairs::default();
        p.row(&fig::DIED_IN, self.died_in.as_deref().unwrap_or("-"));
        if let Some(prediction) = &self.prediction {
            p.row(&fig::PREDICTION, prediction.describe());
        }
        if let Some(a) = &self.failed_allocation {
            p.row(
                &fig::FAILED_ALLOCATION,
                format!("{} ({} bytes)", human(a.bytes), a.bytes),
            );
        }
        p.row(&fig::NUM_GC, self.gc_cycles.to_string());
        p.row(&fig::GC_CPU, percent(self.gc_cpu_share));
        p.row(
            &fig::NEXT_GC_AFTER_SPIKE,
            opt_bytes(self.next_gc_after_spike_bytes),
        );
        p.row(
            &fig::HEAP_AT_END,
            format!(
                "{} {}, {} {}, {} {}",
                fig::LIVE.label,
                human(self.heap_at_end.live_bytes),
                fig::GARBAGE.label,
                human(self.heap_at_end.garbage_bytes),
                fig::FREE.label,
                human(self.heap_at_end.free_bytes)
            ),
        );
        p.row(
            &fig::GARBAGE_RATIO,
            self.garbage_ratio
                .map_or("-".to_owned(), |r| format!("{r:.1}x")),
        );
        let c = &self.cgroup.counters;
        p.row(&fig::CGROUP_PEAK, opt_bytes(c.peak_bytes));
        p.row(&fig::FAILCNT, opt_count(c.failcnt));
        p.row(&fig::OOM_KILLS, opt_count(c.oom_kills));
        if c.low_events.is_some() || c.high_events.is_some() || c.oom_group_kills.is_some() {
            p.row(
                &fig::MEMORY_EVENTS,
                format!(
                    "low {}, high {}, max {}, oom {}, oom_kill {}, oom_group_kill {}",
                    opt_count(c.low_events),
                    opt_count(c.high_events),
                    opt_count(c.failcnt),
                    opt_count(c.oom_events),
                    opt_count(c.oom_kills),
                    opt_count(c.oom_group_kills)
                ),
            );
        }
        if let Some(high) = c.high_limit_bytes {
            p.row(&fig::MEMORY_HIGH, throttling(high, c.high_events));
        }
        p.row(
            &fig::LEFT_CHARGED,
            format!(
                "anon {} (huge {}), page cache {}, kernel {}",
                opt_bytes(c.anon_bytes),
                opt_bytes(c.anon_huge_bytes),
                opt_bytes(c.page_cache_bytes),
                opt_bytes(c.kernel_bytes)
            ),
        );
        p.row(
            &fig::WORKER,
            format!(
                "pid {}, {}, charged {} before its first allocation",
                self.worker.pid.map_or("-".to_owned(), |p| p.to_string()),
                self.worker.exit,
                opt_bytes(self.worker.baseline_bytes)
            ),
        );
        p.row(
            &fig::RUNTIME,
            format!(
                "{} rules; {} {}; {} {}",
                self.settings.runtime,
                human(self.heap_at_end.non_heap_bytes),
                fig::NON_HEAP.label,
                fig::HEAP_RELEASED.label,
                human(self.heap_at_end.released_bytes)
            ),
        );
        p.row(&fig::PROFILE, self.settings.profile.clone());
        self.kernel.rows(&mut p, &self.step_names);
        p.row(&fig::WALL_TIME, millis(self.duration_ms));
        p
    }

    /// The bounded timeline as a table, with a row where events were left out.
    fn timeline_block(&self) -> Block {
        let mut rows = Vec::with_capacity(self.events.len() + 1);
        let gap_at = (self.events_omitted > 0).then_some(self.omitted_at);
        for (i, e) in self.events.iter().enumerate() {
            if Some(i) == gap_at {
                rows.push(vec![
                    "…".to_owned(),
                    format!(
                        "{} events omitted ({} in all)",
                        self.events_omitted, self.events_total
                    ),
                ]);
            }
            let h = e.event.heap;
            rows.push(vec![
                format!("{:.1}", e.t_ms),
                describe(&e.event.kind),
                human(h.heap_alloc()).to_string(),
                human(h.garbage).to_string(),
                human(h.free).to_string(),
                h.next_gc.map_or("off".to_owned(), |g| human(g).to_string()),
                opt_bytes(e.event.cgroup_usage_bytes),
            ]);
        }
        Block::Grid {
            caption: "timeline".to_owned(),
            header: [
                "t (ms)",
                "event",
                "heap alloc",
                fig::GARBAGE.label,
                fig::FREE.label,
                "next GC",
                "cgroup",
            ]
            .map(str::to_owned)
            .to_vec(),
            rows,
        }
    }

    /// The last [`CYCLES_SHOWN`] collections as a table, with a row saying how many came
    /// before them (the JSON's `cycles` lists them all).
    fn cycles_block(&self) -> Option<Block> {
        let shown = self.cycles.len().saturating_sub(CYCLES_SHOWN);
        let mut rows = Vec::with_capacity(CYCLES_SHOWN + 1);
        if shown > 0 {
            rows.push(vec![
                "…".to_owned(),
                format!("{shown} earlier collections ({} in all)", self.cycles.len()),
            ]);
        }
        for c in &self.cycles[shown..] {
            let y = &c.cycle;
            rows.push(vec![
                format!("{:.1}", c.t_ms),
                format!("gc {} ({}, {})", y.n, c.phase, reason(y.reason)),
                human(y.heap_before).to_string(),
                human(y.heap_after).to_string(),
                human(y.swept).to_string(),
                y.goal.map_or("none".to_owned(), |g| human(g).to_string()),
            ]);
        }
        (!self.cycles.is_empty()).then(|| Block::Grid {
            caption: "collections".to_owned(),
            header: [
                "t (ms)",
                "collection",
                "heap before",
                "live after",
                "swept",
                "next goal",
            ]
            .map(str::to_owned)
            .to_vec(),
            rows,
        })
    }

    /// The heap, its goals and the group over the run: the chart of `timeline.svg`. Along the
    /// scenario's story (its steps as bands), or over wall time in interactive mode.
    pub fn chart_of(&self, title: String) -> Chart {
        let x = |p: &Point| p.story.unwrap_or(p.t_ms);
        let pts = |f: fn(&Point) -> Option<u64>| -> Vec<(f64, f64)> {
            self.series
                .iter()
                .filter_map(|p| f(p).map(|v| (x(p), v as f64)))
                .collect()
        };
        let mut usage = pts(|p| p.cgroup_usage_bytes);
        let mut marks: Vec<Mark> = self
            .series
            .iter()
            .filter_map(|p| {
                p.gc.map(|n| Mark {
                    x: x(p),
                    kind: MarkKind::Gc,
                    label: match p.next_gc {
                        Some(goal) => format!("gc {n}: goal {}", human(goal)),
                        None => format!("gc {n}: no goal"),
                    },
                })
            })
            .collect();
        let x_end = self.series.last().map_or(0.0, x);
        if self.outcome == Outcome::OomKilled {
            let at = self.killed_at.unwrap_or(x_end);
            // The kernel killed it with the group at its limit.
            usage.push((at, self.limit_bytes as f64));
            marks.push(Mark {
                x: at,
                kind: MarkKind::Oom,
                label: self.kill_label(),
            });
        }
        let (bands, x_label) = match &self.story {
            Some(axis) => (
                axis.bands().to_vec(),
                "the scenario's steps: half the width by the bytes each allocates, half shared equally".to_owned(),
            ),
            None => (Vec::new(), "ms since the worker was ready".to_owned()),
        };
        let x_max = if bands.is_empty() { x_end } else { story::END };
        let mut lines = vec![
            Series::of(Role::NextGc, pts(|p| p.next_gc)).stepped(),
            Series::of(Role::Trigger, pts(|p| p.trigger)).stepped(),
            Series::of(Role::CgroupUsage, usage),
            Series::level(Role::Limit, self.limit_bytes, x_max),
        ];
        lines.extend(
            self.experiment
                .memory_limit_bytes()
                .map(|m| Series::level(Role::MemoryLimit, m, x_max)),
        );
        Chart {
            title,
            x_label,
            bands,
            stack: vec![
                Series::of(Role::Live, pts(|p| Some(p.live))),
                Series::of(Role::Garbage, pts(|p| Some(p.garbage))),
                Series::of(Role::Free, pts(|p| Some(p.free))),
            ],
            lines,
            marks,
            faults: self.faults(),
        }
    }

    /// The kill's label: where, and whom the kernel chose.
    fn kill_label(&self) -> String {
        let step = self.died_in.as_deref().unwrap_or("?");
        match &self.kernel.oom_victim {
            Some(v) => format!("OOM kill in {step}: {} ({})", v.comm, v.pid),
            None => format!("OOM kill in {step}"),
        }
    }

    /// The page faults of the run on the chart's second axis. Along the story: how many so
    /// far, each step's (from eBPF, or from `memory.stat` untraced: both split by step) spread
    /// across its band, start-up's at the start. Over wall time (interactive mode): per
    /// millisecond, each step's over the time the run spent in it (start-up and the time after
    /// the script left out: their faults happen outside the timeline, in exec and exit).
    fn faults(&self) -> Option<Series> {
        let faults = self.kernel.page_faults.as_ref()?;
        let count = |step: &str| faults.per_phase.get(step).copied().unwrap_or(0) as f64;
        if let Some(axis) = &self.story {
            let end = self
                .killed_at
                .or_else(|| self.series.last().and_then(|p| p.story))
                .unwrap_or(story::END);
            // A name listed in several bands (two steps named alike) shares its count.
            let bands_of = |step: &str| {
                axis.bands()
                    .iter()
                    .filter(|b| b.steps.iter().any(|s| s == step))
                    .count()
                    .max(1) as f64
            };
            let mut so_far = count(STARTUP);
            let mut points = vec![(0.0, so_far)];
            for band in axis.bands().iter().take_while(|b| b.from < end) {
                so_far += band
                    .steps
                    .iter()
                    .map(|s| count(s) / bands_of(s))
                    .sum::<f64>();
                points.push((band.to.min(end), so_far));
            }
            return Some(Series {
                role: Role::Faults,
                label: format!("{} so far (each step's across it)", fig::PAGE_FAULTS.label),
                points,
            });
        }
        let mut time_in: std::collections::BTreeMap<&str, f64> = Default::default();
        for w in self.series.windows(2) {
            *time_in.entry(w[1].step.as_str()).or_default() += w[1].t_ms - w[0].t_ms;
        }
        let rate = |step: &str| {
            time_in
                .get(step)
                .filter(|t| **t > 0.0)
                .map_or(0.0, |t| count(step) / t)
        };
        let mut points = Vec::new();
        for w in self.series.windows(2) {
            let step = w[1].step.as_str();
            let r = if step == STARTUP || step == DONE {
                0.0
            } else {
                rate(step)
            };
            points.push((w[0].t_ms, r));
            points.push((w[1].t_ms, r));
        }
        Some(Series {
            role: Role::Faults,
            label: format!("{} / ms, per step", fig::PAGE_FAULTS.label),
            points,
        })
    }
}

impl Document for Report {
    fn view(&self) -> View {
        View {
            headline: self.headline(),
            tone: self.outcome.tone(),
            blocks: [Some(self.figures().block()), self.cycles_block()]
                .into_iter()
                .flatten()
                .chain([self.timeline_block()])
                .collect(),
            error: self.error.clone(),
            verdict: self.verdict.clone(),
        }
    }

    fn chart(&self) -> Option<Chart> {
        Some(self.chart_of(self.headline()))
    }
}

/// The `memory.high` row: the soft limit and whether the run was throttled above it (the
/// group's `high` events).
fn throttling(high: u64, high_events: Option<u64>) -> String {
    match high_events {
        Some(n) if n > 0 => format!("{}: throttled ({n} high events)", human(high)),
        Some(_) => format!("{}: not reached", human(high)),
        None => human(high).to_string(),
    }
}

/// Collections the text report shows (the last ones).
pub const CYCLES_SHOWN: usize = 12;

/// Why a collection ran, in words.
fn reason(r: GcReason) -> &'static str {
    match r {
        GcReason::Trigger => "heap reached the trigger",
        GcReason::Forced => "runtime.GC",
        GcReason::Periodic => "periodic",
        GcReason::Watchdog => "watchdog",
    }
}

/// One event in words, like the runtime's gctrace for cycles.
fn describe(kind: &Kind) -> String {
    let goal = |g: Option<u64>| g.map_or("none planned".to_owned(), |g| human(g).to_string());
    match kind {
        Kind::Ready { pid } => format!("worker {pid} ready"),
        Kind::Begin {
            phase,
            action,
            bytes,
        } => match action {
            Action::Alloc => format!("{phase}: allocating {}", human(*bytes)),
            Action::Release => format!("{phase}: dropping {}", human(*bytes)),
            Action::Gc => format!("{phase}: runtime.GC()"),
            Action::FreeOsMemory => format!("{phase}: debug.FreeOSMemory()"),
            Action::Wait => format!("{phase}: waiting"),
            // A repeat reports its steps, not itself.
            Action::Repeat => format!("{phase}: repeating"),
        },
        Kind::End {
            phase,
            action,
            bytes,
            reused,
            grown,
        } => match action {
            Action::Alloc => format!(
                "{phase}: allocated (reused {}, grew {})",
                human(*reused),
                human(*grown)
            ),
            Action::Release => format!("{phase}: dropped, now garbage"),
            Action::Gc => format!("{phase}: collected"),
            Action::FreeOsMemory => format!("{phase}: returned {} to the OS", human(*bytes)),
            Action::Wait => format!("{phase}: waited"),
            Action::Repeat => format!("{phase}: repeated"),
        },
        Kind::Gc { cycle, .. } => format!(
            "gc {} ({}): {} -> {} live, swept {}, goal {}",
            cycle.n,
            reason(cycle.reason),
            human(cycle.heap_before),
            human(cycle.heap_after),
            human(cycle.swept),
            goal(cycle.goal)
        ),
        Kind::Scavenge { reason, bytes, .. } => format!(
            "scavenger ({}): returned {} to the OS",
            match reason {
                ScavengeReason::Background => "background",
                ScavengeReason::Allocation => "at allocation",
                ScavengeReason::FreeOsMemory => "FreeOSMemory",
            },
            human(*bytes)
        ),
        Kind::Paused { phase } => format!("paused before {phase}"),
        Kind::Done => "script finished".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::{collections::BTreeMap, time::Duration};

    use memspike_model::{
        experiment::DEFAULT_ALLOC_RATE,
        heap::Accounting,
        pacer::Gogc,
        policy::Policy,
        program::{Detached, Driver},
        release::Release,
        runtime::Runtime,
        scenario::builtin,
    };

    use crate::facts::{Exit, GroupFacts, Signal};

    const LIMIT: u64 = 32 << 20;
    const PID: u32 = 4242;

    fn experiment(gc: bool, gogc: Gogc) -> Experiment {
        Experiment {
            limit: LIMIT,
            scenario: builtin::seed(0.9, None),
            spike: Some(0.9),
            policy: Policy {
                gogc,
                gc_after_release: gc,
                ..Policy::default()
            },
            runtime: Release::default(),
            alloc_rate: DEFAULT_ALLOC_RATE,
            gomaxprocs: 2,
            pause_at: None,
            profile: None,
        }
    }

    /// The seed scenario's events in the model, cut where the kernel would have killed it.
    fn run(e: &Experiment, cut_after: Option<usize>) -> Vec<Event> {
        let rt = Runtime::new(
            Accounting::default(),
            Accounting::default(),
            1 << 30,
            e.runtime_config(0, 0),
        );
        let mut d = Driver::new(rt, Vec::new(), Detached { pid: PID });
        d.run(&e.effective_scenario(), e.limit).unwrap();
        let mut events = d.into_sink();
        if let Some(n) = cut_after {
            events.truncate(n);
        }
        events
    }

    fn events(gc: bool, cut_after: Option<usize>) -> Vec<Event> {
        run(&experiment(gc, Gogc::default()), cut_after)
    }

    /// Page faults per step as the observer names them: every step, in order, with its count
    /// (0 past `counts`).
    fn per_step(counts: &[u64]) -> BTreeMap<String, u64> {
        let names = experiment(false, Gogc::default()).step_names(false);
        let counts = counts.iter().copied().chain(std::iter::repeat(0));
        names.into_iter().zip(counts).collect()
    }

    fn signal(name: &str, number: i32) -> Signal {
        Signal {
            number,
            name: name.to_owned(),
        }
    }

    fn sigkill() -> Exit {
        Exit::Signal(signal("SIGKILL", 9))
    }

    fn facts(events: Vec<Event>, exit: Exit, oom_kills: u64) -> RunFacts {
        let experiment = experiment(false, Gogc::default());
        RunFacts {
            group: GroupFacts {
                limit_bytes: LIMIT,
                limit_source: None,
                version: CgroupVersion::V1,
                name: "memspike-1-test".into(),
                exit,
                counters: Counters {
                    oom_kills: Some(oom_kills),
                    peak_bytes: Some(LIMIT),
                    ..Counters::default()
                },
                oom_kills_before: 0,
                kernel: Err("--no-trace".to_owned()),
                stop_signal: None,
                duration: Duration::from_millis(50),
            },
            experiment,
            interactive: false,
            series: events.clone(),
            events: events.into_iter().collect(),
            stderr_tail: String::new(),
        }
    }

    #[test]
    fn v2_events_and_a_throttled_run_are_reported() {
        let events = events(false, Some(7));
        let v1 = Report::build(facts(events.clone(), sigkill(), 1)).text();
        assert!(
            !v1.contains("memory.high") && !v1.contains("memory.events"),
            "{v1}"
        );

        let mut f = facts(events.clone(), sigkill(), 1);
        f.group.version = CgroupVersion::V2;
        f.group.counters.high_limit_bytes = Some(24 << 20);
        f.group.counters.high_events = Some(12);
        f.group.counters.low_events = Some(0);
        f.group.counters.failcnt = Some(3);
        f.group.counters.oom_group_kills = Some(0);
        let r = Report::build(f);
        let text = r.text();
        assert!(
            text.contains("24.0 MiB: throttled (12 high events)"),
            "{text}"
        );
        assert!(
            text.contains("low 0, high 12, max 3, oom -, oom_kill 1, oom_group_kill 0"),
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["cgroup"]["high_limit_bytes"], 24 << 20);
        assert_eq!(json["cgroup"]["high_events"], 12);

        let mut f = facts(events, sigkill(), 1);
        f.group.counters.high_limit_bytes = Some(24 << 20);
        f.group.counters.high_events = Some(0);
        let text = Report::build(f).text();
        assert!(text.contains("24.0 MiB: not reached"), "{text}");
    }

    #[test]
    fn a_kill_in_the_remainder_is_explained() {
        // Killed after "begin remainder alloc" (the 7th event).
        let r = Report::build(facts(events(false, Some(7)), sigkill(), 1));
        assert_eq!(r.outcome, Outcome::OomKilled);
        assert_eq!(r.died_in.as_deref(), Some("remainder"));
        assert_eq!(
            r.failed_allocation.as_ref().map(|a| a.bytes),
            Some(3_355_443)
        );
        assert_eq!(r.gc_cycles, 1);
        let ratio = r.garbage_ratio.unwrap();
        assert!((8.0..10.0).contains(&ratio), "{ratio}");
        let next = r.next_gc_after_spike_bytes.unwrap();
        assert!((55_000_000..66_000_000).contains(&next), "{next}");
        assert!(
            r.verdict
                .starts_with("killed while allocating 3.2 MiB with 28.8 MiB"),
            "{}",
            r.verdict
        );
        assert!(
            r.verdict.contains("above the 32.0 MiB limit"),
            "{}",
            r.verdict
        );
        // Issue 18: the model's prediction beside the run's outcome.
        let p = r.prediction.as_ref().unwrap();
        assert_eq!((p.draws, p.oom_killed), (20, 20), "{p:?}");
        assert!(
            r.verdict
                .ends_with("the model predicts it OOM-killed (20/20 draws)"),
            "{}",
            r.verdict
        );
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "outcome",
            "limit_bytes",
            "died_in",
            "gc_cycles",
            "next_gc_after_spike_bytes",
            "garbage_at_end_bytes",
            "needed_bytes",
            "garbage_ratio",
            "events",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["outcome"], "oom_killed");
        assert_eq!(json["cgroup"]["oom_kills"], 1);
        assert!(
            json["cgroup"].get("peak_bytes").is_some() && json["cgroup"].get("failcnt").is_some()
        );
        assert!(r.text().contains("OOM-KILLED"));
    }

    fn worker_pid(events: &[Event]) -> u32 {
        events
            .iter()
            .find_map(|e| match e.kind {
                Kind::Ready { pid } => Some(pid),
                _ => None,
            })
            .unwrap()
    }

    fn victim(pid: u32) -> OomVictimReport {
        OomVictimReport {
            pid,
            comm: "memspike".into(),
            parent_pid: None,
            total_vm_bytes: 1 << 34,
            anon_rss_bytes: 31 << 20,
            file_rss_bytes: 3 << 20,
            shmem_rss_bytes: 0,
            pgtables_bytes: 116 << 10,
            uid: 0,
            oom_score_adj: 0,
            t_ns: 1,
            source: "ebpf tracepoint/oom/mark_victim".into(),
        }
    }

    /// eBPF evidence: 712 faults in the remainder, 35 reclaim stalls, these victims.
    fn evidence(victims: Vec<OomVictimReport>) -> KernelEvidence {
        KernelEvidence {
            tracing: Tracing::Ebpf,
            // startup, spike, release, remainder
            page_faults: Some(PageFaults::new(
                per_step(&[0, 0, 0, 712]),
                "ebpf tp_btf/page_fault_user",
            )),
            major_faults: None,
            reclaim: Some(Reclaim {
                stalls: 35,
                total_ns: 1_500_000,
                source: "ebpf tp_btf/mm_vmscan_memcg_reclaim_begin|end".into(),
            }),
            pressure: None,
            oom_source: Some("ebpf tracepoint/oom/mark_victim".into()),
            oom_victims: victims,
            counts: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    /// A plain eBPF counter is a row labelled as the registry says, with its source; one the
    /// registry does not know is left out rather than shown under a made-up label.
    #[test]
    fn an_ebpf_counter_is_a_named_row_with_its_source() {
        let mut kernel = evidence(Vec::new());
        kernel.counts = BTreeMap::from([
            (
                "kernel_page_faults".to_owned(),
                Count::new(51_300, "ebpf raw_tp/page_fault_kernel"),
            ),
            ("unheard_of".to_owned(), Count::new(7, "ebpf raw_tp/x")),
        ]);
        let mut f = facts(events(false, Some(7)), sigkill(), 1);
        f.group.kernel = Ok(kernel);
        let r = Report::build(f);
        let text = r.text();
        assert!(text.contains("kernel page faults        51300"), "{text}");
        assert!(
            text.contains("kernel page faults: ebpf raw_tp/page_fault_kernel"),
            "{text}"
        );
        assert!(
            !text.contains("unheard_of") && !text.contains("raw_tp/x"),
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["kernel"]["counts"]["kernel_page_faults"]["value"],
            51_300
        );
    }

    /// Regression (issue 17): the page-fault figure counted user-mode faults only, so faults
    /// taken inside system calls were missing from it; now it is every fault, the modes apart
    /// beside it, and the per-step split (user mode) says what it counts.
    #[test]
    fn a_runs_page_faults_count_both_modes() {
        let mut kernel = evidence(Vec::new());
        kernel.counts = BTreeMap::from([(
            "kernel_page_faults".to_owned(),
            Count::new(50, "ebpf raw_tp/page_fault_kernel"),
        )]);
        let mut f = facts(events(false, Some(7)), sigkill(), 1);
        f.group.kernel = Ok(kernel);
        let r = Report::build(f);
        let json = serde_json::to_value(&r).unwrap();
        let faults = &json["kernel"]["page_faults"];
        assert_eq!(
            (
                &faults["total"],
                &faults["user_mode"],
                &faults["kernel_mode"]
            ),
            (&762.into(), &712.into(), &50.into()),
            "{faults:#}"
        );
        let text = r.text();
        assert!(
            text.contains("762 (712 in user mode: remainder 712; 50 in kernel mode)"),
            "{text}"
        );
    }

    /// Regression: a watchdog's headline read "(Heap-driven, forcing Gc)" after the policy
    /// became one type; it reads as before.
    #[test]
    fn a_watchdogs_headline_is_as_before() {
        let mut f = facts(events(false, Some(7)), sigkill(), 1);
        f.experiment.policy = memspike_model::policy_set::by_name("watchdog-watermarks").unwrap();
        let text = Report::build(f).text();
        assert!(
            text.lines()
                .next()
                .unwrap()
                .ends_with("watchdog watermarks:0.5,0.75,0.9 (heap-driven, forcing gc))"),
            "{text}"
        );
    }

    #[test]
    fn the_verdict_cites_the_kernels_evidence() {
        let events = events(false, Some(7));
        let worker = worker_pid(&events);
        let mut f = facts(events.clone(), sigkill(), 1);
        f.group.kernel = Ok(evidence(vec![victim(worker)]));
        let r = Report::build(f);
        assert_eq!(r.kernel.tracing, Tracing::Ebpf);
        assert!(
            r.verdict.contains(&format!(
                "; the kernel's OOM killer chose pid {worker} (the worker) holding 31.0 MiB of anonymous memory against the 32.0 MiB limit, after 712 page faults in the remainder phase; "
            )),
            "{}",
            r.verdict
        );
        assert!(
            r.text()
                .contains("page faults               712 (712 in user mode: remainder 712; kernel mode not counted)"),
            "{}",
            r.text()
        );
        assert!(
            r.text()
                .contains("OOM victim: ebpf tracepoint/oom/mark_victim"),
            "{}",
            r.text()
        );

        assert!(
            r.text()
                .contains("kernel sources            page faults: ebpf tp_btf/page_fault_user"),
            "{}",
            r.text()
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["kernel"]["page_faults"]["source"],
            "ebpf tp_btf/page_fault_user"
        );
        assert_eq!(
            json["kernel"]["oom_victim"]["source"],
            "ebpf tracepoint/oom/mark_victim"
        );

        // A victim that is not the worker is named as such, never silently taken for it.
        let mut f = facts(events, sigkill(), 1);
        f.group.kernel = Ok(evidence(vec![victim(worker + 1)]));
        assert!(Report::build(f).verdict.contains("(not the worker"));
    }

    /// Interactive mode: the observer's evidence lists every victim since the session began,
    /// the first worker's first. The second worker's report names the second worker.
    #[test]
    fn a_later_workers_report_names_its_own_victim() {
        let events = events(false, Some(7));
        let worker = worker_pid(&events);
        let mut f = facts(events, sigkill(), 2);
        f.group.oom_kills_before = 1;
        f.group.kernel = Ok(evidence(vec![victim(worker - 7), victim(worker)]));
        let r = Report::build(f);
        assert_eq!(r.kernel.oom_victim.as_ref().map(|v| v.pid), Some(worker));
        assert!(
            r.verdict
                .contains(&format!("chose pid {worker} (the worker)")),
            "{}",
            r.verdict
        );
    }

    /// Without eBPF, the figures come from the cgroup's files and the kernel log, and a kill
    /// the log did not show is said to be missing from that source.
    #[test]
    fn figures_without_ebpf_name_their_sources() {
        let events = events(false, Some(7));
        let mut k = KernelEvidence::unavailable("--no-trace");
        k.page_faults = Some(PageFaults::new(
            per_step(&[0, 0, 0, 700]),
            "memory.stat pgfault",
        ));
        k.oom_source = Some("/dev/kmsg".into());
        let mut f = facts(events, sigkill(), 1);
        f.group.kernel = Ok(k);
        let r = Report::build(f);
        assert_eq!(r.kernel.tracing.to_string(), "unavailable: --no-trace");
        assert!(
            r.verdict
                .contains("; /dev/kmsg showed no OOM victim in the group; "),
            "{}",
            r.verdict
        );
        assert!(
            r.text().contains("page faults: memory.stat pgfault")
                && r.text().contains("OOM victim: /dev/kmsg"),
            "{}",
            r.text()
        );
    }

    #[test]
    fn tracing_off_says_why() {
        let r = Report::build(facts(events(false, Some(7)), sigkill(), 1));
        assert_eq!(r.kernel.tracing.to_string(), "unavailable: --no-trace");
        assert_eq!(r.kernel.page_faults, None);
        assert!(r.text().contains("unavailable: --no-trace"));
        assert!(!r.verdict.contains("OOM killer chose"));
    }

    #[test]
    fn a_clean_exit_after_gc_survives() {
        let r = Report::build(facts(events(true, None), Exit::Code(0), 0));
        assert_eq!(r.outcome, Outcome::Survived);
        assert_eq!(r.died_in, None);
        assert_eq!(r.gc_cycles, 2);
        assert!(
            r.verdict.contains("reused garbage swept by collection 2"),
            "{}",
            r.verdict
        );
    }

    #[test]
    fn sigkill_without_an_oom_record_is_not_blamed_on_the_limit() {
        let r = Report::build(facts(events(false, Some(7)), sigkill(), 0));
        assert_eq!(r.outcome, Outcome::Error);
        assert!(r.verdict.contains("no OOM kill"), "{}", r.verdict);
    }

    #[test]
    fn an_earlier_workers_oom_is_not_this_ones() {
        // The group counted one OOM kill (an earlier worker's); this one was SIGKILLed by
        // someone else.
        let mut f = facts(events(false, Some(7)), sigkill(), 1);
        f.group.oom_kills_before = 1;
        assert_eq!(Report::build(f).outcome, Outcome::Error);
    }

    #[test]
    fn a_kill_before_ready_died_in_startup() {
        let r = Report::build(facts(Vec::new(), sigkill(), 1));
        assert_eq!(r.died_in.as_deref(), Some("startup"));
        assert!(r.verdict.contains("no garbage"), "{}", r.verdict);
    }

    #[test]
    fn an_oom_kill_stays_an_oom_kill_when_a_stop_signal_follows() {
        // Ctrl-C just after the kernel killed the worker: the kill was observed first.
        let mut f = facts(events(false, Some(7)), sigkill(), 1);
        f.group.stop_signal = Some(signal("SIGINT", 2));
        let r = Report::build(f);
        assert_eq!(r.outcome, Outcome::OomKilled);
        assert_eq!(r.error, None);
        assert!(
            r.verdict.starts_with("killed while allocating"),
            "{}",
            r.verdict
        );
    }

    #[test]
    fn a_worker_the_supervisor_killed_on_a_stop_signal_was_interrupted() {
        let mut f = facts(events(false, Some(7)), sigkill(), 0);
        f.group.stop_signal = Some(signal("SIGTERM", 15));
        let r = Report::build(f);
        assert_eq!(r.outcome, Outcome::Interrupted);
        assert_eq!(
            r.error.as_deref(),
            Some("interrupted by SIGTERM before the experiment finished")
        );
        assert_eq!(serde_json::to_value(&r).unwrap()["outcome"], "interrupted");
        assert!(
            r.text().starts_with("memspike: INTERRUPTED"),
            "{}",
            r.text()
        );
        // A script that had finished is reported as finished, signal or not.
        let mut f = facts(events(true, None), Exit::Code(0), 0);
        f.group.stop_signal = Some(signal("SIGINT", 2));
        assert_eq!(Report::build(f).outcome, Outcome::Survived);
    }

    #[test]
    fn gogc_off_plans_no_collection_and_says_so() {
        let off = experiment(false, Gogc::Off);
        let mut events = run(&off, None);
        // Cut after "begin remainder": there is no gc event with GOGC=off.
        let cut = events
            .iter()
            .position(|e| matches!(&e.kind, Kind::Begin { phase, .. } if phase == "remainder"))
            .unwrap();
        events.truncate(cut + 1);
        let mut f = facts(events, sigkill(), 1);
        f.experiment = off;
        let r = Report::build(f);
        assert_eq!(r.outcome, Outcome::OomKilled);
        assert_eq!(r.gc_cycles, 0);
        assert_eq!(r.next_gc_after_spike_bytes, None, "no goal, not u64::MAX");
        assert!(r.verdict.contains("no collection planned"), "{}", r.verdict);
        assert!(
            !r.verdict.contains("EiB") && !r.verdict.contains("PiB"),
            "{}",
            r.verdict
        );
        // The JSON says null where nothing is planned, never 18446744073709551615.
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("18446744073709551615"), "{json}");
        assert!(json.contains(r#""next_gc":null"#), "{json}");
    }

    #[test]
    fn a_long_timeline_keeps_its_ends_and_counts_the_rest() {
        let script = events(false, Some(7));
        // A worker that served a long time: its first events, a million more, its last ones.
        let mut all = script[..2].to_vec();
        all.extend(std::iter::repeat_n(script[3].clone(), 1_000_000));
        all.extend_from_slice(&script[2..]);
        let r = Report::build(facts(all, sigkill(), 1));
        assert_eq!(r.events_total, 1_000_007);
        assert_eq!(
            r.events.len(),
            crate::facts::history::HEAD + crate::facts::history::TAIL
        );
        assert_eq!(r.events_omitted, 1_000_007 - r.events.len() as u64);
        // The ends still tell the story: who was ready, what was being allocated.
        assert_eq!(r.died_in.as_deref(), Some("remainder"));
        assert!(r.worker.pid.is_some());
        let text = r.text();
        assert!(text.contains(&format!(
            "{} events omitted (1000007 in all)",
            r.events_omitted
        )));
        assert!(text.lines().count() < 120, "{} lines", text.lines().count());
    }

    /// Regression (issue 17): churn's report at 64 MiB counted 17 collections and listed the
    /// one its bounded timeline held. A run that ended by itself lists every collection and
    /// every step; the text shows the last collections and says how many there were.
    #[test]
    fn a_finished_runs_report_lists_every_collection_and_step() {
        let mut e = experiment(false, Gogc::default());
        e.limit = 64 << 20;
        e.scenario = builtin::by_name("churn").unwrap();
        e.spike = None;
        let events = run(&e, None);
        let mut f = facts(Vec::new(), Exit::Code(0), 0);
        f.experiment = e;
        for ev in &events {
            f.events.record(ev.clone(), true);
        }
        let r = Report::build(f);
        assert!(r.gc_cycles > 1, "{}", r.gc_cycles);
        assert_eq!(r.cycles.len(), r.gc_cycles as usize);
        assert_eq!(
            r.cycles.iter().map(|c| c.cycle.n).collect::<Vec<_>>(),
            (1..=r.gc_cycles).collect::<Vec<_>>()
        );
        // live, then 500 x (request, response, idle), each begun and ended.
        assert_eq!(r.steps.len(), 1 + 500 * 3);
        assert!(
            r.steps
                .iter()
                .all(|s| s.begin_ms.is_some() && s.end_ms.is_some())
        );
        assert_eq!(r.steps[1].phase, "request");
        // The timeline stays bounded.
        assert_eq!(
            r.events.len(),
            crate::facts::history::HEAD + crate::facts::history::TAIL
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["cycles"].as_array().unwrap().len() as u64,
            json["gc_cycles"].as_u64().unwrap()
        );
        assert_eq!(json["cycles"][0]["n"], 1);
        assert_eq!(json["steps"][0]["action"], "alloc");
        let text = r.text();
        assert!(
            text.contains(&format!(
                "{} earlier collections ({} in all)",
                r.cycles.len() - CYCLES_SHOWN,
                r.cycles.len()
            )),
            "{text}"
        );
        assert!(text.lines().count() < 150, "{} lines", text.lines().count());
    }

    /// A step the kernel interrupted is listed without an end.
    #[test]
    fn the_interrupted_step_has_no_end() {
        let r = Report::build(facts(events(false, Some(7)), sigkill(), 1));
        let last = r.steps.last().unwrap();
        assert_eq!((last.phase.as_str(), last.end_ms), ("remainder", None));
        assert_eq!(r.cycles.len(), r.gc_cycles as usize);
    }

    /// The default run's report, made deterministic: fixed times, pid, usage and wall time.
    fn golden_report() -> Report {
        let mut events = events(false, Some(7));
        let mut usage = 512 << 10;
        for (i, e) in events.iter_mut().enumerate() {
            e.t_ns = 1_000_000_000 + i as u64 * 1_500_000;
            e.heap.last_gc_unix_ns = 0;
            usage = usage.max(e.heap.resident() + (512 << 10));
            e.cgroup_usage_bytes = Some(usage);
        }
        let mut f = facts(events, sigkill(), 1);
        f.group.counters.failcnt = Some(0);
        let mut kernel = evidence(vec![victim(PID)]);
        if let Some(faults) = &mut kernel.page_faults {
            *faults = PageFaults::new(per_step(&[153, 7_377, 0, 693, 0]), &faults.source);
        }
        kernel.pressure = Some(Pressure {
            some_ns: 1_400_000,
            full_ns: 1_300_000,
            averages: Some(crate::facts::PsiAverages {
                some_avg10: 2.5,
                some_avg60: 0.5,
                some_avg300: 0.1,
                full_avg10: 2.25,
                full_avg60: 0.45,
                full_avg300: 0.09,
            }),
            source: "memory.pressure".into(),
        });
        f.group.kernel = Ok(kernel);
        Report::build(f)
    }

    /// The text report is what people read and paste into issues: it changes only on purpose.
    /// `INSTA_UPDATE=always cargo test -p memspike-report` rewrites the snapshot after a
    /// deliberate change; review its diff.
    #[test]
    fn golden_text_report_of_the_default_run() {
        insta::assert_snapshot!("default-run-oom", golden_report().text());
    }
}
