//! What the simulated runtime reports: one [`Event`] before and after every step, one per
//! collection and per scavenge, each with the heap's state right after it ([`HeapStats`]).
//! The worker sends them to the supervisor as JSON lines; tests and benches keep them in a
//! `Vec`. The JSON keys are documented in docs/reference/report.schema.json.

use serde::{Deserialize, Serialize};

use crate::scenario::ActionKind;

/// Why a collection ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GcReason {
    /// An allocation pushed the heap past the pacer's trigger.
    Trigger,
    /// The program asked for it (`runtime.GC()`, `debug.FreeOSMemory()`).
    Forced,
    /// No collection ran for two minutes (the runtime's forced periodic GC).
    Periodic,
    /// A watchdog forced it.
    Watchdog,
}

/// Why pages went back to the OS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScavengeReason {
    /// The background scavenger, paced to about 1 % of a CPU.
    Background,
    /// An allocation would have taken the runtime past its memory limit or retention goal.
    Allocation,
    /// `debug.FreeOSMemory()` returned everything free.
    FreeOsMemory,
}

/// One collection, with the figures `GODEBUG=gctrace=1` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Cycle {
    /// The cycle's number, from 1 (`NumGC` after it).
    pub n: u32,
    pub reason: GcReason,
    /// The heap when it started (live + garbage).
    pub heap_before: u64,
    /// The heap it marked live.
    pub heap_after: u64,
    /// Bytes of garbage swept into the free set.
    pub swept: u64,
    /// The pacer's goal and trigger for the next cycle; `null` when none is planned (GOGC=off
    /// without a memory limit).
    pub goal: Option<u64>,
    pub trigger: Option<u64>,
}

/// One thing that happened in the worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Kind {
    /// The worker is running inside the group and has allocated nothing yet.
    Ready { pid: u32 },
    /// A step starts; for `alloc`, `bytes` is about to be allocated and written. `phase` is
    /// the step's name.
    Begin {
        phase: String,
        action: ActionKind,
        bytes: u64,
    },
    /// The step finished; for `alloc`, how much came from swept garbage and how much was newly
    /// charged.
    End {
        phase: String,
        action: ActionKind,
        bytes: u64,
        reused: u64,
        grown: u64,
    },
    /// A collection ran (its cause is in the cycle).
    Gc { phase: String, cycle: Cycle },
    /// Free pages went back to the OS.
    Scavenge {
        phase: String,
        reason: ScavengeReason,
        bytes: u64,
    },
    /// The worker stopped itself (SIGSTOP) before this step, as `--pause-at` asked; it goes on
    /// after SIGCONT.
    Paused { phase: String },
    /// The scenario finished: the worker survived it.
    Done,
}

impl Kind {
    /// The step this event belongs to, if it names one.
    pub fn phase(&self) -> Option<&str> {
        match self {
            Kind::Begin { phase, .. }
            | Kind::End { phase, .. }
            | Kind::Gc { phase, .. }
            | Kind::Scavenge { phase, .. }
            | Kind::Paused { phase } => Some(phase),
            Kind::Ready { .. } | Kind::Done => None,
        }
    }
}

/// A snapshot of the simulated runtime, in its own terms (page-rounded, as `runtime.MemStats`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct HeapStats {
    /// Bytes of slabs still referenced.
    pub live: u64,
    /// Bytes of dropped slabs waiting for a collection.
    pub garbage: u64,
    /// Bytes of swept pages ready for reuse, resident.
    pub free: u64,
    /// Bytes of free pages returned to the OS (`HeapReleased`).
    pub released: u64,
    /// Slabs allocated and not yet swept (`HeapObjects`).
    pub objects: u64,
    /// Bytes allocated so far, page-rounded, freed or not (`TotalAlloc`).
    pub total_alloc: u64,
    /// Allocations and sweeps so far (`Mallocs`, `Frees`).
    pub mallocs: u64,
    pub frees: u64,
    /// Collections so far (`NumGC`) and the last one's time in Unix ns (`LastGC`).
    pub num_gc: u32,
    pub last_gc_unix_ns: u64,
    /// The pacer's goal (`NextGC`) and trigger; `null` when none is planned.
    pub next_gc: Option<u64>,
    pub trigger: Option<u64>,
    /// Memory the runtime holds outside the heap (stacks, metadata, its own), mapped and
    /// ready: `Sys - HeapSys`.
    pub non_heap: u64,
    /// The collector's CPU time so far, simulated nanoseconds (every cycle costs
    /// [`crate::runtime::CYCLE_CPU_NS`]); see [`HeapStats::gc_cpu_share`].
    pub gc_cpu_ns: u64,
}

impl HeapStats {
    /// Bytes of allocated objects, garbage included (`HeapAlloc`); the pacer's `heapLive`.
    pub fn heap_alloc(&self) -> u64 {
        self.live + self.garbage
    }
    /// Bytes in spans holding objects (`HeapInuse`; equal to HeapAlloc for large objects).
    pub fn heap_inuse(&self) -> u64 {
        self.heap_alloc()
    }
    /// Bytes in free spans (`HeapIdle`).
    pub fn heap_idle(&self) -> u64 {
        self.free + self.released
    }
    /// Bytes of address space the heap has grown to (`HeapSys`).
    pub fn heap_sys(&self) -> u64 {
        self.heap_inuse() + self.heap_idle()
    }
    /// Bytes the heap holds resident (what the cgroup is charged for the heap).
    pub fn resident(&self) -> u64 {
        self.heap_sys() - self.released
    }
    /// Everything the runtime holds mapped (`Sys`).
    pub fn sys(&self) -> u64 {
        self.heap_sys() + self.non_heap
    }
    /// The simulated GC CPU share: the collector's CPU time over all the CPU time the program
    /// had, `gc_cpu_ns / (elapsed_ns x gomaxprocs)`, as Go's `GCCPUFraction`. `elapsed_ns` is
    /// the simulated clock at this snapshot (an [`Event`]'s `sim_ns`). `None` before any
    /// simulated time has passed.
    pub fn gc_cpu_share(&self, elapsed_ns: u64, gomaxprocs: u32) -> Option<f64> {
        let capacity = elapsed_ns as f64 * f64::from(gomaxprocs.max(1));
        (capacity > 0.0).then(|| self.gc_cpu_ns as f64 / capacity)
    }
}

/// A timestamped event with the runtime's state right after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Event {
    /// CLOCK_MONOTONIC, nanoseconds (the clock BPF programs read).
    pub t_ns: u64,
    /// The simulated runtime's clock, nanoseconds since it started: what the periodic
    /// collection, the scavenger, the limiter and watchdogs run on.
    pub sim_ns: u64,
    /// The worker's cgroup's memory usage, read by the worker as it sent the event.
    pub cgroup_usage_bytes: Option<u64>,
    /// The scenario's top-level step it happened in, from 1 (as run: with a policy's
    /// collection after each release among them); 0 before the first, and in interactive mode,
    /// which runs no scenario. What places it on a chart's story axis.
    #[serde(default)]
    pub step: u32,
    #[serde(flatten)]
    pub kind: Kind,
    pub heap: HeapStats,
}

/// Where a program's events go.
pub trait Sink {
    fn send(&mut self, event: &Event) -> std::io::Result<()>;
}

/// Events kept in memory (tests and model-only runs).
impl Sink for Vec<Event> {
    fn send(&mut self, event: &Event) -> std::io::Result<()> {
        self.push(event.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gc_cpu_share_is_gc_time_over_all_cpu_time() {
        let stats = HeapStats {
            gc_cpu_ns: 3_000_000,
            ..HeapStats::default()
        };
        // 3 ms of GC in 100 ms on 2 CPUs: 1.5 %.
        assert_eq!(stats.gc_cpu_share(100_000_000, 2), Some(0.015));
        assert_eq!(stats.gc_cpu_share(100_000_000, 1), Some(0.03));
        // GOMAXPROCS 0 counts as 1 rather than dividing by zero.
        assert_eq!(stats.gc_cpu_share(100_000_000, 0), Some(0.03));
        assert_eq!(stats.gc_cpu_share(0, 2), None);
        assert_eq!(HeapStats::default().gc_cpu_share(1, 1), Some(0.0));
    }
}
