//! The GC CPU limiter (`runtime/mgclimit.go`): a leaky bucket of CPU time, on simulated time.
//!
//! GC CPU time fills the bucket and mutator CPU time drains it, so it fills only while the
//! collector takes more than half of the CPU. Its capacity is one CPU-second per `GOMAXPROCS`.
//! While it is full the runtime stops making goroutines assist the collector: in this model,
//! where cycles are instantaneous, an allocation that crosses the trigger does not start a
//! cycle, and the heap may pass its goal (and the memory limit) instead of collecting forever.

/// The bucket's capacity per `GOMAXPROCS` (`capacityPerProc`): one CPU-second.
pub const CAPACITY_PER_PROC_NS: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limiter {
    capacity_ns: u64,
    fill_ns: u64,
}

impl Limiter {
    pub fn new(gomaxprocs: u32) -> Limiter {
        Limiter {
            capacity_ns: CAPACITY_PER_PROC_NS * u64::from(gomaxprocs.max(1)),
            fill_ns: 0,
        }
    }

    /// Accounts a stretch of `total_cpu_ns` of CPU time (wall time times GOMAXPROCS) of which
    /// the collector used `gc_ns` (`accumulate`).
    pub fn accumulate(&mut self, total_cpu_ns: u64, gc_ns: u64) {
        let mutator_ns = total_cpu_ns.saturating_sub(gc_ns);
        self.fill_ns = if gc_ns >= mutator_ns {
            (self.fill_ns + (gc_ns - mutator_ns)).min(self.capacity_ns)
        } else {
            self.fill_ns.saturating_sub(mutator_ns - gc_ns)
        };
    }

    /// The bucket is full: assists are off (`limiting`).
    pub fn limiting(&self) -> bool {
        self.fill_ns >= self.capacity_ns
    }

    /// How full the bucket is, nanoseconds.
    pub fn fill_ns(&self) -> u64 {
        self.fill_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_fills_only_above_half_the_cpu_and_drains_below() {
        let mut l = Limiter::new(2);
        // 40 % GC: drains (nothing to drain).
        l.accumulate(1_000_000, 400_000);
        assert_eq!(l.fill_ns(), 0);
        // 90 % GC for one wall second on 2 procs: 1.8 s GC, 0.2 s mutator: +1.6 s, capped at 2.
        l.accumulate(2_000_000_000, 1_800_000_000);
        assert_eq!(l.fill_ns(), 1_600_000_000);
        assert!(!l.limiting());
        l.accumulate(1_000_000_000, 800_000_000);
        assert_eq!(l.fill_ns(), 2_000_000_000);
        assert!(l.limiting());
        // A quiet stretch drains it.
        l.accumulate(500_000_000, 0);
        assert_eq!(l.fill_ns(), 1_500_000_000);
        assert!(!l.limiting());
    }
}
