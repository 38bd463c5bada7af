//! The GC CPU limiter (`runtime/mgclimit.go`): a leaky bucket of CPU time, on simulated time.
//!
//! GC CPU time fills the bucket and mutator CPU time drains it, so it fills only while the
//! collector takes more than half of the CPU. Its capacity is one CPU-second per `GOMAXPROCS`.
//! The bucket is updated at most every 10 ms (`gcCPULimiterUpdatePeriod`): the limiter turns on
//! at an update that finds it full and off at the next update that drains anything. While it
//! is on, the runtime stops making goroutines assist the collector and stops scavenging at
//! allocation time: in this model, where cycles are instantaneous, an allocation that crosses
//! the trigger does not start a cycle, and the heap may pass its goal (and the memory limit)
//! instead of collecting forever. The same in every release modelled.

/// The bucket's capacity per `GOMAXPROCS` (`capacityPerProc`): one CPU-second.
pub const CAPACITY_PER_PROC_NS: u64 = 1_000_000_000;
/// How often the bucket is updated (`gcCPULimiterUpdatePeriod`).
pub const UPDATE_PERIOD_NS: u64 = 10_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limiter {
    capacity_ns: u64,
    fill_ns: u64,
    enabled: bool,
    /// CPU time (all of it, and the collector's) since the last update, and the wall time.
    pending_total_ns: u64,
    pending_gc_ns: u64,
    pending_wall_ns: u64,
}

impl Limiter {
    pub fn new(gomaxprocs: u32) -> Limiter {
        Limiter {
            capacity_ns: CAPACITY_PER_PROC_NS * u64::from(gomaxprocs.max(1)),
            fill_ns: 0,
            enabled: false,
            pending_total_ns: 0,
            pending_gc_ns: 0,
            pending_wall_ns: 0,
        }
    }

    /// Accounts `wall_ns` of time in which the CPUs did `total_cpu_ns` of work (wall time times
    /// GOMAXPROCS), `gc_ns` of it the collector's; the bucket is updated when a period is over.
    pub fn accumulate(&mut self, wall_ns: u64, total_cpu_ns: u64, gc_ns: u64) {
        self.pending_wall_ns += wall_ns;
        self.pending_total_ns += total_cpu_ns.max(gc_ns);
        self.pending_gc_ns += gc_ns;
        if self.pending_wall_ns >= UPDATE_PERIOD_NS {
            self.update();
        }
    }

    /// `accumulate` and `updateLocked`: fill by GC time, drain by mutator time.
    fn update(&mut self) {
        let gc = self.pending_gc_ns;
        let mutator = self.pending_total_ns - gc;
        if gc >= mutator {
            self.fill_ns = (self.fill_ns + (gc - mutator)).min(self.capacity_ns);
            self.enabled = self.fill_ns >= self.capacity_ns;
        } else {
            self.fill_ns = self.fill_ns.saturating_sub(mutator - gc);
            self.enabled = false;
        }
        self.pending_total_ns = 0;
        self.pending_gc_ns = 0;
        self.pending_wall_ns = 0;
    }

    /// The limiter is on: no assists, no allocation-time scavenging (`limiting`).
    pub fn limiting(&self) -> bool {
        self.enabled
    }

    /// How full the bucket is, nanoseconds.
    pub fn fill_ns(&self) -> u64 {
        self.fill_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn it_fills_only_above_half_the_cpu_and_drains_below() {
        let mut l = Limiter::new(2);
        // 40 % GC for a period: drains (nothing to drain).
        l.accumulate(10 * MS, 20 * MS, 8 * MS);
        assert_eq!(l.fill_ns(), 0);
        // 90 % GC for one wall second on 2 procs: 1.8 s GC, 0.2 s mutator: +1.6 s.
        l.accumulate(1_000 * MS, 2_000 * MS, 1_800 * MS);
        assert_eq!(l.fill_ns(), 1_600 * MS);
        assert!(!l.limiting());
        // Capped at 2 CPU-seconds: on.
        l.accumulate(500 * MS, 1_000 * MS, 800 * MS);
        assert_eq!(l.fill_ns(), 2_000 * MS);
        assert!(l.limiting());
        // Within a period nothing changes, whatever is accumulated.
        l.accumulate(5 * MS, 10 * MS, 0);
        assert!(l.limiting());
        // The update that drains turns it off.
        l.accumulate(5 * MS, 10 * MS, 0);
        assert_eq!(l.fill_ns(), 1_980 * MS);
        assert!(!l.limiting());
    }
}
