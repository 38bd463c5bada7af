//! The scavenger (`runtime/mgcscavenge.go`): which free heap pages the runtime returns to the
//! OS, and how fast.
//!
//! - Its goals are set at the end of every cycle (`gcPaceScavenger`). Without a memory limit it
//!   keeps the heap's retained memory (`heapInUse + heapFree`) at most 10 % above what the last
//!   cycle had in use, scaled by how much the goal moved (`retainExtraPercent`). With a limit it
//!   also keeps the memory the runtime holds ready at 95 % of the limit (`reduceExtraPercent`).
//! - In the background it works about 1 % of one CPU ([`BACKGROUND_CPU_SHARE`]), which at the
//!   cost of `MADV_DONTNEED` gives [`background_rate`] bytes per simulated second.
//! - An allocation that grows the heap or takes released pages back scavenges at once what
//!   would take the runtime past its memory limit or its retention goal ([`Scavenger::at_allocation`]).
//! - `debug.FreeOSMemory` returns every free page.

use crate::pacer::Totals;

/// `retainExtraPercent`: the memory kept beyond the in-use heap without a limit.
pub const RETAIN_EXTRA_PERCENT: u64 = 10;
/// `reduceExtraPercent`: the share of the memory limit kept free of ready memory.
pub const REDUCE_EXTRA_PERCENT: u64 = 5;
/// `scavengePercent`: the background scavenger's share of one CPU.
pub const BACKGROUND_CPU_SHARE: f64 = 0.01;
/// What returning memory costs: bytes per CPU-second of `MADV_DONTNEED` on 8 KiB pages, as
/// measured on the development machine (kernel 6.18; `cargo bench -p memspike --bench heap --
/// madvise`, README "Figures"). The runtime's per-chunk bookkeeping is small beside it.
pub const MADVISE_BYTES_PER_CPU_SECOND: u64 = 4 << 30;

/// Bytes per simulated second the background scavenger returns at most.
pub const fn background_rate() -> u64 {
    (MADVISE_BYTES_PER_CPU_SECOND as f64 * BACKGROUND_CPU_SHARE) as u64
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
}

impl Scavenger {
    pub fn new(memory_limit: Option<u64>) -> Scavenger {
        Scavenger {
            gc_percent_goal: u64::MAX,
            memory_limit_goal: memory_limit
                .map_or(u64::MAX, |l| l / 100 * (100 - REDUCE_EXTRA_PERCENT)),
            last_heap_goal: 0,
        }
    }

    /// Sets the goals at the end of a cycle whose next heap goal is `heap_goal` (`u64::MAX`
    /// when unbounded), with `heap_in_use` bytes in use (`gcPaceScavenger`).
    pub fn on_cycle_end(&mut self, heap_goal: u64, heap_in_use: u64) {
        let last = std::mem::replace(&mut self.last_heap_goal, heap_goal);
        self.gc_percent_goal = if last == 0 || last == u64::MAX || heap_goal == u64::MAX {
            u64::MAX
        } else {
            let scaled = (heap_in_use as f64 * (heap_goal as f64 / last as f64)) as u64;
            let goal = scaled + scaled / (100 / RETAIN_EXTRA_PERCENT);
            goal.next_multiple_of(crate::heap::PAGE_SIZE)
        };
    }

    /// Bytes above the goals now: what the background scavenger works off.
    pub fn excess(&self, t: &Totals) -> u64 {
        let retained = t.mapped - t.released;
        let over_retained = retained.saturating_sub(self.gc_percent_goal);
        let over_limit = t.mapped_ready().saturating_sub(self.memory_limit_goal);
        over_retained.max(over_limit).min(t.free)
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
        } else {
            0
        };
        over_limit.max(over_goal).min(t.free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn totals(allocated: u64, free: u64, released: u64, non_heap: u64) -> Totals {
        Totals {
            marked: allocated,
            marked_scan: 0,
            allocated,
            free,
            mapped: allocated + free + released,
            released,
            non_heap,
        }
    }

    /// Figures derived from `gcPaceScavenger` (go1.21 src/runtime/mgcscavenge.go): the goal is
    /// lastHeapInUse * (heapGoal / lastHeapGoal) plus 10 %, rounded up to a page.
    #[test]
    fn the_retention_goal_follows_the_heap_goal() {
        let mut s = Scavenger::new(None);
        s.on_cycle_end(60 * MIB, 30 * MIB);
        // One cycle only: no goal yet.
        assert_eq!(s.excess(&totals(30 * MIB, 30 * MIB, 0, 0)), 0);
        // The goal falls to 3/4 with 20 MiB in use: retain 20 * 0.75 = 15 MiB, + 10 %.
        s.on_cycle_end(45 * MIB, 20 * MIB);
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
        let s = Scavenger::new(Some(limit));
        // 90 MiB heap (60 in use, 30 free) + 10 MiB outside: 100 MiB ready, 95 allowed.
        let t = totals(60 * MIB, 30 * MIB, 0, 10 * MIB);
        assert_eq!(s.excess(&t), 100 * MIB - limit / 100 * 95);
        // An allocation that grew the heap 8 MiB past the limit gives back those 8 MiB now.
        let t = totals(68 * MIB, 30 * MIB, 0, 10 * MIB);
        assert_eq!(s.at_allocation(&t, Some(limit), 0, 8 * MIB), 8 * MIB);
        // One that reused resident pages does not scavenge.
        assert_eq!(s.at_allocation(&t, Some(limit), 0, 0), 0);
        assert_eq!(Scavenger::new(None).at_allocation(&t, None, 0, 8 * MIB), 0);
    }

    #[test]
    fn the_background_rate_is_one_percent_of_madvise() {
        assert_eq!(background_rate(), (4u64 << 30) / 100);
    }
}
