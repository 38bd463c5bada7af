//! The scavenger (`runtime/mgcscavenge.go`): which free heap pages the runtime returns to the
//! OS, and how fast.
//!
//! - Its goals are set at the end of every cycle (`gcPaceScavenger`). It keeps the heap's
//!   retained memory (`heapInUse + heapFree`) at most 10 % above what the last cycle had in
//!   use, scaled by how much the goal moved (`retainExtraPercent`). With a memory limit it also
//!   keeps the memory the runtime holds ready at 95 % of the limit (`reduceExtraPercent`), from
//!   go1.22 on: before, a bug (golang/go#62449) set that target at 95 times the limit.
//! - From go1.21, what the last cycle swept is held back from the background scavenger until
//!   the next cycle ends (the density rule: chunks that were nearly full are skipped).
//! - In the background it works about 1 % of the CPU time (`GOMAXPROCS` x wall time,
//!   [`BACKGROUND_CPU_PERCENT`]), which at the cost of `MADV_DONTNEED` gives [`background_rate`]
//!   bytes per simulated second.
//! - An allocation that grows the heap or takes released pages back scavenges at once what
//!   would take the runtime past its memory limit or its retention goal ([`Scavenger::at_allocation`]).
//! - `debug.FreeOSMemory` returns every free page.

use crate::{pacer::Totals, release::Rules};

/// `retainExtraPercent`: the memory kept beyond the in-use heap without a limit.
pub const RETAIN_EXTRA_PERCENT: u64 = 10;
/// `reduceExtraPercent`: the share of the memory limit kept free of ready memory.
pub const REDUCE_EXTRA_PERCENT: u64 = 5;
/// `scavengePercent`: the background scavenger's share of the CPU time (of all `GOMAXPROCS`),
/// in percent.
pub const BACKGROUND_CPU_PERCENT: u64 = 1;
/// What returning memory costs: bytes per CPU-second of `MADV_DONTNEED` in the scavenger's
/// 64 KiB chunks, as measured on the development machine (kernel 6.18; `cargo bench -p
/// memspike-worker --bench heap -- madvise`: 6.2 GiB/s, docs/benchmarks.md). The runtime's
/// per-chunk bookkeeping is small beside it. With 2 Ps that makes 123 MiB/s in the background, within the
/// 100-300 MiB/s the real runtime returned here (docs/go-runtime-rules.md, section 5.2).
pub const MADVISE_BYTES_PER_CPU_SECOND: u64 = 6 << 30;

/// Bytes per simulated second the background scavenger returns at most with `gomaxprocs` Ps.
pub fn background_rate(gomaxprocs: u32) -> u64 {
    MADVISE_BYTES_PER_CPU_SECOND * u64::from(gomaxprocs.max(1)) * BACKGROUND_CPU_PERCENT / 100
}

/// The scavenger's goals, as set after the last cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scavenger {
    /// Retained heap memory to keep at most (`gcPercentGoal`); `u64::MAX` before the second
    /// cycle, and with GOGC=off.
    gc_percent_goal: u64,
    /// Ready memory to keep at most (`memoryLimitGoal`); `u64::MAX` without a limit.
    memory_limit_goal: u64,
    /// The heap goal of the cycle before (`lastHeapGoal`); 0 before any.
    last_heap_goal: u64,
    /// Bytes the last cycle swept that the background may not return yet (go1.21+).
    held: u64,
    density_hold: bool,
}

impl Scavenger {
    pub fn new(memory_limit: Option<u64>, rules: &Rules) -> Scavenger {
        Scavenger {
            gc_percent_goal: u64::MAX,
            memory_limit_goal: match memory_limit {
                Some(l) if rules.scavenger_limit_goal => l / 100 * (100 - REDUCE_EXTRA_PERCENT),
                _ => u64::MAX,
            },
            last_heap_goal: 0,
            held: 0,
            density_hold: rules.scavenger_density_hold,
        }
    }

    /// Sets the goals at the end of a cycle whose next heap goal is `heap_goal` (`u64::MAX`
    /// when unbounded), which had `heap_in_use` bytes in use before it swept (`lastHeapInUse`)
    /// and swept `swept` bytes (`gcPaceScavenger`).
    pub fn on_cycle_end(&mut self, heap_goal: u64, heap_in_use: u64, swept: u64) {
        self.held = if self.density_hold { swept } else { 0 };
        let last = std::mem::replace(&mut self.last_heap_goal, heap_goal);
        self.gc_percent_goal = if last == 0 || last == u64::MAX || heap_goal == u64::MAX {
            u64::MAX
        } else {
            let scaled = (heap_in_use as f64 * (heap_goal as f64 / last as f64)) as u64;
            let goal = scaled + scaled / (100 / RETAIN_EXTRA_PERCENT);
            goal.next_multiple_of(crate::heap::PAGE_SIZE)
        };
    }

    /// Free bytes the background (and heap growth) may return: what the density rule does not
    /// hold back.
    fn returnable(&self, t: &Totals) -> u64 {
        t.free.saturating_sub(self.held)
    }

    /// Bytes above the goals now: what the background scavenger works off.
    pub fn excess(&self, t: &Totals) -> u64 {
        let retained = t.mapped - t.released;
        let over_retained = retained.saturating_sub(self.gc_percent_goal);
        let over_limit = t.mapped_ready().saturating_sub(self.memory_limit_goal);
        over_retained.max(over_limit).min(self.returnable(t))
    }

    /// What an allocation must scavenge at once: it brought `regained` released bytes back and
    /// grew the heap by `growth` bytes, and the totals are as they are after it
    /// (`mheap.allocSpan`). Under a memory limit, everything above the limit; and the growth
    /// beyond the retention goal.
    pub fn at_allocation(
        &self,
        t: &Totals,
        memory_limit: Option<u64>,
        regained: u64,
        growth: u64,
    ) -> u64 {
        let over_limit = match memory_limit {
            Some(limit) if regained > 0 || growth > 0 => t.mapped_ready().saturating_sub(limit),
            _ => 0,
        };
        let over_goal = if growth > 0 && self.gc_percent_goal != u64::MAX {
            (t.mapped - t.released)
                .saturating_sub(self.gc_percent_goal)
                .min(growth)
                .min(self.returnable(t))
        } else {
            0
        };
        // Under the limit the runtime forces it: the density rule does not apply.
        over_limit.min(t.free).max(over_goal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn totals(allocated: u64, free: u64, released: u64, non_heap: u64) -> Totals {
        Totals::heap(allocated, free, released, non_heap, 2)
    }

    /// Figures derived from `gcPaceScavenger` (go1.21 src/runtime/mgcscavenge.go): the goal is
    /// lastHeapInUse * (heapGoal / lastHeapGoal) plus 10 %, rounded up to a page.
    #[test]
    fn the_retention_goal_follows_the_heap_goal() {
        let mut s = Scavenger::new(None, &rules(19));
        s.on_cycle_end(60 * MIB, 30 * MIB, 0);
        // One cycle only: no goal yet.
        assert_eq!(s.excess(&totals(30 * MIB, 30 * MIB, 0, 0)), 0);
        // The goal falls to 3/4 with 20 MiB in use: retain 20 * 0.75 = 15 MiB, + 10 %.
        s.on_cycle_end(45 * MIB, 20 * MIB, 0);
        let goal = 15 * MIB + 15 * MIB / 10;
        let t = totals(15 * MIB, 25 * MIB, 0, 0);
        assert_eq!(s.excess(&t), 40 * MIB - goal);
        // What is already released does not count.
        let t = totals(10 * MIB, 20 * MIB, 10 * MIB, 0);
        assert_eq!(s.excess(&t), 30 * MIB - goal);
        // Never more than the free pages.
        let t = totals(30 * MIB, MIB, 0, 0);
        assert_eq!(s.excess(&t), MIB);
    }

    #[test]
    fn under_a_limit_it_keeps_ready_memory_at_95_percent() {
        let limit = 100 * MIB;
        let s = Scavenger::new(Some(limit), &rules(22));
        // 90 MiB heap (60 in use, 30 free) + 10 MiB outside: 100 MiB ready, 95 allowed.
        let t = totals(60 * MIB, 30 * MIB, 0, 10 * MIB);
        assert_eq!(s.excess(&t), 100 * MIB - limit / 100 * 95);
        // An allocation that grew the heap 8 MiB past the limit gives back those 8 MiB now.
        let t = totals(68 * MIB, 30 * MIB, 0, 10 * MIB);
        assert_eq!(s.at_allocation(&t, Some(limit), 0, 8 * MIB), 8 * MIB);
        // One that reused resident pages does not scavenge.
        assert_eq!(s.at_allocation(&t, Some(limit), 0, 0), 0);
        assert_eq!(
            Scavenger::new(None, &rules(22)).at_allocation(&t, None, 0, 8 * MIB),
            0
        );
        // Before go1.22 the background target was 95 times the limit: it never worked.
        let t = totals(60 * MIB, 30 * MIB, 0, 10 * MIB);
        for old in [19, 20, 21] {
            assert_eq!(
                Scavenger::new(Some(limit), &rules(old)).excess(&t),
                0,
                "go1.{old}"
            );
        }
    }

    /// go1.21+: what a cycle swept waits for the next cycle before the background returns it;
    /// allocation-time scavenging under the limit does not wait.
    #[test]
    fn from_go1_21_the_last_sweep_is_held_back() {
        let t = totals(10 * MIB, 40 * MIB, 0, 0);
        for (minor, held) in [(20, false), (21, true), (27, true)] {
            let mut s = Scavenger::new(Some(45 * MIB), &rules(minor));
            s.on_cycle_end(100 * MIB, 50 * MIB, 0);
            // The goal collapses: 10 MiB in use retained, plus 10 %. 30 MiB of the 40 MiB
            // free were swept just now.
            s.on_cycle_end(20 * MIB, 10 * MIB, 30 * MIB);
            let over = 50 * MIB - (2 * MIB + 2 * MIB / 10 + 3 * MIB).next_multiple_of(8192);
            let want = if held { 10 * MIB } else { over.min(40 * MIB) };
            assert_eq!(s.excess(&t), want, "go1.{minor}");
            // 5 MiB over the memory limit: returned at once, held or not.
            assert_eq!(
                s.at_allocation(&t, Some(45 * MIB), MIB, 0),
                5 * MIB,
                "go1.{minor}"
            );
            // The next cycle releases the hold.
            s.on_cycle_end(20 * MIB, 10 * MIB, 0);
            assert!(s.excess(&t) > 10 * MIB, "go1.{minor}");
        }
    }

    #[test]
    fn the_background_rate_is_one_percent_of_the_cpus_at_madvise_speed() {
        assert_eq!(background_rate(1), (6u64 << 30) / 100);
        assert_eq!(background_rate(2), (12u64 << 30) / 100);
    }

    fn rules(minor: u8) -> Rules {
        Rules::of(crate::release::Release::go1(minor).unwrap())
    }
}
