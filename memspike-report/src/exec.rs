//! The report of an `exec`: a real program's run in the group, as the kernel and the
//! runtime's own trace saw it. Keys shared with `run`'s report mean the same.

use std::fmt::Write as _;

use serde::Serialize;

use memspike_model::{
    size::human,
    trace::{RuntimeCycle, next_goal_after},
};

use crate::{
    Document,
    facts::{ExecFacts, Exit, Signal, TimedCycle, Timeline},
    figures as fig,
    format::{from_source, opt_bytes},
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
        .map(|(i, TimedCycle { read_ms, cycle: c })| {
            let next = cycles.get(i + 1).map(|n| n.cycle.goal_bytes);
            let estimate = next_goal_after(c, gogc);
            TracedCycle {
                read_ms: *read_ms,
                cycle: *c,
                next_goal_bytes: next.or(estimate),
                next_goal_estimated: next.is_none() && estimate.is_some(),
            }
        })
        .collect()
}

/// How the process ended, for JSON: `{"code": n}` or `{"signal": "SIGTERM"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<String>,
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
    pub cgroup: CgroupSection,
    pub kernel: KernelSection,
    pub worker: WorkerSection,
    pub timeline: Timeline,
    pub duration_ms: f64,
    pub verdict: String,
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
            runtime_cycles: recognised.then_some(cycles),
            cgroup: CgroupSection {
                version: g.version,
                name: g.name.clone(),
                counters: g.counters.clone(),
            },
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
            verdict: String::new(),
        };
        report.verdict = report.verdict_sentence(g.stop_signal.as_ref());
        report
    }

    fn verdict_sentence(&self, stop_signal: Option<&Signal>) -> String {
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
            _ => String::new(),
        };
        let mut s = match self.outcome {
            Outcome::OomKilled => format!(
                "killed by the kernel's OOM killer with the group at its {limit} limit (peak {peak}){runtime}"
            ),
            Outcome::Survived => {
                format!("exited 0; cgroup peak {peak} of the {limit} limit{runtime}")
            }
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
        };
        if let (Outcome::OomKilled, Some(v)) = (self.outcome, &self.kernel.oom_victim) {
            let who = if Some(v.pid) == self.worker.pid {
                "the command".to_owned()
            } else {
                format!("not the command ({})", self.worker.pid.unwrap_or(0))
            };
            let _ = write!(
                s,
                "; the kernel's OOM killer chose pid {} ({who}) holding {} of anonymous memory",
                v.pid,
                human(v.anon_rss_bytes)
            );
        }
        s
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
        p.row(&fig::WALL_TIME, format!("{:.0} ms", self.duration_ms));
        p
    }

    /// The last traced cycles (at most 16) as a table.
    fn cycles_block(&self) -> Option<Block> {
        let cycles = self.runtime_cycles.as_ref()?;
        let shown = cycles.len().min(16);
        let rows = cycles[cycles.len() - shown..]
            .iter()
            .map(|c| {
                vec![
                    c.cycle.n.to_string(),
                    format!("{:.1}", c.read_ms),
                    format!(
                        "{} -> {} -> {}",
                        human(c.cycle.heap_start_bytes),
                        human(c.cycle.heap_end_bytes),
                        human(c.cycle.heap_live_bytes)
                    ),
                    human(c.cycle.goal_bytes).to_string(),
                    c.next_goal_bytes.map_or("none".to_owned(), |g| {
                        let rule = if c.next_goal_estimated {
                            " (GOGC rule)"
                        } else {
                            ""
                        };
                        format!("{}{rule}", human(g))
                    }),
                ]
            })
            .collect();
        Some(Block::Grid {
            caption: format!("runtime cycles (the last {shown})"),
            header: [
                "gc",
                "t (ms)",
                "heap start -> end -> live",
                "its goal",
                "next goal",
            ]
            .map(str::to_owned)
            .to_vec(),
            rows,
        })
    }
}

impl Document for ExecReport {
    fn view(&self) -> View {
        let mut blocks = vec![self.figures().block()];
        blocks.extend(self.cycles_block());
        View {
            headline: self.headline(),
            tone: self.outcome.tone(),
            blocks,
            error: None,
            verdict: self.verdict.clone(),
        }
    }

    /// The group's usage as sampled, the goals the runtime traced (each cycle's next goal
    /// from its end on), cycles and the OOM kill marked, and the page-fault rate per time
    /// bucket when traced.
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
        let mut marks: Vec<Mark> = cycles
            .iter()
            .map(|c| Mark {
                t_ms: c.read_ms,
                kind: MarkKind::Gc,
                label: format!("gc {}", c.cycle.n),
            })
            .collect();
        if self.outcome == Outcome::OomKilled {
            marks.push(Mark {
                t_ms: t_end,
                kind: MarkKind::Oom,
                label: "OOM kill".to_owned(),
            });
        }
        let traced = self.kernel.tracing.is_ebpf();
        let width = self.timeline.bucket_ms.max(1) as f64;
        let rate = traced.then(|| Series {
            role: Role::FaultRate,
            label: format!("{} / ms", fig::PAGE_FAULTS.label),
            points: self
                .timeline
                .buckets
                .iter()
                .filter_map(|b| b.page_faults.map(|n| (b.t_ms as f64, n as f64 / width)))
                .flat_map(|(t, r)| [(t, r), (t + width, r)])
                .collect(),
        });
        Chart {
            title: self.headline(),
            x_label: "ms since the command started".to_owned(),
            stack: vec![Series {
                label: "anonymous memory".to_owned(),
                ..Series::of(Role::Live, anon)
            }],
            lines: vec![
                Series::of(Role::NextGc, goals),
                Series::of(Role::CgroupUsage, usage),
                Series::limit(self.limit_bytes, t_end),
            ],
            marks,
            rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's cycle on real Go: "28->28->28 MB, 4 MB goal, 0 MB stacks, 0 MB globals":
    /// the goal after it is GOGC's rule on the 28 MiB it left live, about 2x.
    #[test]
    fn the_next_goal_is_the_next_cycles_or_gogcs_rule() {
        let cycle = |n, live_mib: u64, goal_mib: u64| TimedCycle {
            read_ms: 0.0,
            cycle: RuntimeCycle {
                n,
                t_ms: 0.0,
                heap_start_bytes: live_mib << 20,
                heap_end_bytes: live_mib << 20,
                heap_live_bytes: live_mib << 20,
                goal_bytes: goal_mib << 20,
                cpu_percent: 0.0,
                forced: false,
                stacks_bytes: Some(0),
                globals_bytes: Some(1 << 20),
                procs: 2,
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
}
