//! Facts: what a run left behind, as the Linux side collected it, before anything is derived.
//! Every report is a pure function of one of these ([`crate::run::Report::build`] of
//! [`RunFacts`], [`crate::exec::ExecReport::build`] of [`ExecFacts`]), so every verdict can be
//! tested from a recorded facts file without root. They serialise both ways (JSON fixtures).
//!
//! - [`GroupFacts`]: what any run in a memory group leaves: how its process ended, the group's
//!   counters, the kernel's evidence ([`kernel`]);
//! - [`RunFacts`]: a simulated run (the worker's events, bounded by [`history`]);
//! - [`ExecFacts`]: a real program (the group sampled over time, [`exec`], and its runtime's
//!   own trace);
//! - [`CompareFacts`], [`ThresholdFacts`], [`CellFacts`]: many simulated runs, each a
//!   [`RunFacts`] under a named policy.

pub mod cgroup;
pub mod exec;
pub mod history;
pub mod kernel;

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use memspike_model::{
    event::{Event, Kind},
    experiment::Experiment,
    policy::Policy,
    policy_set::NotApplicable,
    sweep::CellSpec,
    threshold::{Knob, ModelBand, Threshold},
};

pub use cgroup::{CgroupVersion, Counters, Reading};
pub use exec::{Bucket, Sample, TimedCycle, Timeline};
pub use history::{History, Thinned};
pub use kernel::{
    AllFaults, Count, KernelEvidence, OomVictimReport, PageFaults, Pressure, PsiAverages, Reclaim,
    Tracing,
};

/// A signal, by number and by the name the Linux side gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Signal {
    pub number: i32,
    pub name: String,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// How a process ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    Code(i32),
    Signal(Signal),
}

impl Exit {
    /// SIGKILL: the OOM killer's signal (and anyone's who sends it).
    pub fn is_sigkill(&self) -> bool {
        matches!(self, Exit::Signal(s) if s.name == "SIGKILL")
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with status {c}"),
            Exit::Signal(s) => write!(f, "killed by {s}"),
        }
    }
}

/// What any run in a memory group leaves behind, whatever ran in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GroupFacts {
    /// The limit the group ran under, bytes.
    pub limit_bytes: u64,
    /// `--inherit`: the file that sets the limit; `None` when memspike set it.
    pub limit_source: Option<PathBuf>,
    pub version: CgroupVersion,
    /// The group's name.
    pub name: String,
    /// How the process memspike started ended.
    pub exit: Exit,
    /// The group's counters after it ended.
    pub counters: Counters,
    /// OOM kills the group had counted before the process started (an interactive session's
    /// earlier workers, an inherited group's history): only kills above this are its own.
    pub oom_kills_before: u64,
    /// What the kernel observer saw, or why it did not run.
    pub kernel: Result<KernelEvidence, String>,
    /// The stop signal (SIGINT, SIGTERM, SIGHUP) memspike had received when the process ended.
    pub stop_signal: Option<Signal>,
    pub duration: Duration,
}

impl GroupFacts {
    /// Killed by the kernel's OOM killer: SIGKILL, and the group counted a kill since the
    /// process started. The one place this is decided.
    pub fn oom_killed(&self) -> bool {
        self.exit.is_sigkill() && self.counters.oom_kills.unwrap_or(0) > self.oom_kills_before
    }

    /// The OOM kills of the group's tasks while the process ran: what the group's counter
    /// counted above [`GroupFacts::oom_kills_before`], or, if more, the victims the kernel
    /// observer recorded (a group without the counter, or a kill the counter had not shown
    /// yet). Any task counts, the process memspike started or one of its descendants.
    pub fn oom_kills_during(&self) -> u64 {
        let counted = self
            .counters
            .oom_kills
            .unwrap_or(0)
            .saturating_sub(self.oom_kills_before);
        let recorded = self
            .kernel
            .as_ref()
            .map_or(0, |k| k.oom_victims.len() as u64);
        counted.max(recorded)
    }
}

/// Everything a simulated run left behind, as the supervisor collected it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunFacts {
    pub group: GroupFacts,
    /// What the worker was asked to do.
    pub experiment: Experiment,
    /// Interactive mode (the worker served HTTP instead of running the scenario).
    pub interactive: bool,
    /// The worker's events, bounded: the first and last few and a count of the rest.
    pub events: History<Event>,
    /// Every event, thinned evenly to a bounded number, for the chart.
    pub series: Vec<Event>,
    /// The end of what the worker wrote on stderr.
    pub stderr_tail: String,
}

impl RunFacts {
    /// The worker's `ready` event: it was running in the group before its first allocation.
    fn ready_event(&self) -> Option<&Event> {
        self.events
            .head()
            .iter()
            .find(|e| matches!(e.kind, Kind::Ready { .. }))
    }

    /// Whether the worker got as far as its first allocation (or serving).
    pub fn ready(&self) -> bool {
        self.ready_event().is_some()
    }

    /// The worker's pid, as it said when ready.
    pub fn pid(&self) -> Option<u32> {
        self.ready_event().and_then(|e| match e.kind {
            Kind::Ready { pid } => Some(pid),
            _ => None,
        })
    }
}

/// Everything an `exec` left behind, as the supervisor collected it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExecFacts {
    pub group: GroupFacts,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// The command's pid, as the kernel's records number it.
    pub pid: u32,
    /// GOGC as the command's environment set it (a percentage; `None` when off).
    pub gogc: Option<u64>,
    /// The Go version the command's binary was built with (its build information), when it
    /// is a Go binary.
    #[serde(default)]
    pub go_version: Option<String>,
    /// The policy its runtime was given through the environment (`compare -- CMD`).
    #[serde(default)]
    pub policy: Option<Policy>,
    /// The variables memspike set for it (`NAME=value`): the policy's, and the trace's.
    #[serde(default)]
    pub environment: Vec<String>,
    /// The runtime whose trace was read, if any line of it was.
    pub runtime: Option<String>,
    /// The heap's ceiling as the runtime reported it (a JVM's heap maximum, V8's
    /// `heap_size_limit`): past it, the runtime throws its own out-of-memory error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_limit_bytes: Option<u64>,
    /// A JVM's native memory by category, as Native Memory Tracking (which the user turned
    /// on) last accounted it before the program ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_memory: Option<memspike_model::trace::jvm::NativeMemory>,
    /// The cycles the runtime traced, each when memspike read its line.
    pub cycles: Vec<TimedCycle>,
    /// The group over time.
    pub timeline: Timeline,
    /// The line of stderr where the runtime said its own heap's limit ended the program
    /// ([`memspike_model::trace::out_of_heap`]), however long its stderr went on after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_heap: Option<String>,
    /// The end of what the command wrote on stderr, its runtime's trace left out.
    #[serde(default)]
    pub stderr_tail: String,
}

/// One policy's run: one of a comparison's row's runs (simulated, or of a real program), a
/// sweep's cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicyRun<R = RunFacts> {
    pub policy: Policy,
    pub run: R,
}

/// A `compare`: one scenario under several policies, each run in turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CompareFacts {
    /// The experiment every policy ran (each with its own policy in place of this one's).
    pub base: Experiment,
    /// `--inherit`: the file that sets the limit; every policy then ran in that one group, one
    /// after the other.
    pub limit_source: Option<PathBuf>,
    /// The policies asked for, in order.
    pub planned: Vec<String>,
    /// Runs per policy; a policy's runs are next to each other in `runs`.
    #[serde(default = "one")]
    pub repeats: u32,
    /// The runs made, in order: all of them unless a stop signal ended the comparison early.
    pub runs: Vec<PolicyRun>,
    /// The stop signal that ended the comparison early.
    pub stopped_by: Option<Signal>,
}

fn one() -> u32 {
    1
}

/// A `compare -- CMD`: a real program under several policies, each given through its
/// runtime's environment, each run `repeats` times in a fresh group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CommandCompareFacts {
    pub command: Vec<String>,
    pub limit_bytes: u64,
    /// `--inherit`: the file that sets the limit; every run then ran in that one group.
    pub limit_source: Option<PathBuf>,
    /// The policies asked for, in order.
    pub planned: Vec<String>,
    /// Built-in policies the runtime cannot take from its environment, and why.
    pub not_applicable: Vec<NotApplicable>,
    pub repeats: u32,
    /// The runs made, in order, a policy's next to each other.
    pub runs: Vec<PolicyRun<ExecFacts>>,
    pub stopped_by: Option<Signal>,
}

/// A `threshold`: per policy, what the bisection over real runs found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ThresholdFacts {
    pub subject: ThresholdSubject,
    pub knob: Knob,
    pub searches: Vec<PolicySearch>,
}

/// What a threshold search varied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdSubject {
    /// The simulated program's experiment (each search with its policy in place of this one's).
    Scenario(Box<Experiment>),
    /// A real program, under a group of `limit_bytes` unless the knob is the limit.
    Command {
        command: Vec<String>,
        limit_bytes: u64,
    },
}

impl ThresholdSubject {
    pub fn limit_bytes(&self) -> u64 {
        match self {
            ThresholdSubject::Scenario(e) => e.limit,
            ThresholdSubject::Command { limit_bytes, .. } => *limit_bytes,
        }
    }
}

/// When a run of a command costs too much: the collector's CPU share above `gc_cpu_max`, or
/// its wall time above `wall_factor` times the median of runs without a memory limit
/// (`baseline_wall_ms`; `None` when those runs did not finish).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CostBound {
    pub gc_cpu_max: f64,
    pub wall_factor: f64,
    pub baseline_wall_ms: Option<f64>,
}

/// One policy's search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicySearch {
    pub policy: Policy,
    pub threshold: Threshold,
    /// Where along the range the model's draws disagree (the simulated program; `null` for
    /// a command, which no model stands for).
    #[serde(default)]
    pub model: Option<ModelBand>,
    /// The cost edge (`gomemlimit` on a command): the lowest value whose runs stay within
    /// [`CostBound`].
    #[serde(default)]
    pub cost: Option<Threshold>,
    /// What made a run too costly on the cost edge: the bound, and this policy's baseline.
    #[serde(default)]
    pub cost_bound: Option<CostBound>,
    /// Every run of a command, in order (the survival search's, then the cost edge's), in
    /// brief; empty for the simulated program, whose runs are the threshold's.
    #[serde(default)]
    pub probes: Vec<Probe>,
}

/// One run of a command at one value of the knob, in brief.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Probe {
    /// The knob's value; `null` for a baseline run.
    pub value: Option<f64>,
    /// `survival` or `cost`: which edge asked for it (`baseline` for a run without a memory
    /// limit).
    pub edge: String,
    pub outcome: Outcome,
    pub exit: String,
    pub peak_bytes: Option<u64>,
    pub gc_cycles: Option<u32>,
    pub gc_cpu_share: Option<f64>,
    pub wall_ms: f64,
    /// The policy's environment for this run (`NAME=value`).
    pub environment: Vec<String>,
    /// The end of its stderr, its runtime's trace left out (absent when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr_tail: String,
}

impl Probe {
    /// Survived, within `bound`'s GC CPU and wall time (each when known).
    pub fn within(&self, bound: &CostBound) -> bool {
        self.outcome == Outcome::Survived
            && self.gc_cpu_share.is_none_or(|s| s <= bound.gc_cpu_max)
            && bound
                .baseline_wall_ms
                .is_none_or(|b| self.wall_ms <= b * bound.wall_factor)
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The kernel's OOM killer killed it (SIGKILL, and the group counted a kill); for a real
    /// program, it or any task of its group (the group counted a kill, or a victim was seen).
    OomKilled,
    /// It finished: the scenario ran to its end, or the program exited with status 0.
    Survived,
    /// A real program's runtime ended it by its own heap's limit: a JVM's
    /// `java.lang.OutOfMemoryError`, V8's "JavaScript heap out of memory", Go's "runtime: out of
    /// memory"; the kernel killed nothing.
    OutOfHeap,
    /// A real program exited with another status.
    Exited,
    /// A signal other than an OOM kill ended a real program.
    Signaled,
    /// A stop signal ended a simulated run before the worker finished or was OOM-killed.
    Interrupted,
    /// The simulated run failed for another reason than the limit.
    Error,
}

/// One cell of a sweep plan: its place in the plan and its run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CellFacts {
    /// The plan's name.
    pub plan: String,
    pub cell: CellSpec,
    #[serde(flatten)]
    pub run: PolicyRun,
}
