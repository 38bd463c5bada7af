//! The simulated Go runtime: the heap, the pacer, the scavenger, the CPU limiter, a watchdog and
//! the runtime's own footprint, on one simulated clock.
//!
//! A program drives it with the operations a Go program has: allocate, drop references,
//! `runtime.GC()`, `debug.FreeOSMemory()`, and do nothing for a while. Everything the runtime
//! does by itself (a collection at the trigger, the periodic collection, background and
//! allocation-time scavenging, a watchdog's polls) happens inside those operations, in
//! simulated time, and is queued as a [`Happening`] for the program's driver to report.
//!
//! Simulated time passes while the program writes what it allocates ([`RuntimeConfig::alloc_rate`])
//! and while it waits. A collection is instantaneous, or takes the concurrent mark time its
//! [`Timing`] gives it: then allocation goes on while it marks (allocated black), what the
//! program drops meanwhile survives it, and its garbage is reusable only once it ends. The same
//! inputs give the same happenings, whatever the machine's speed.

use std::time::Duration;

use crate::{
    duration,
    event::{Cycle, GcReason, HeapStats, ScavengeReason},
    footprint::Footprint,
    heap::{Allocation, Heap, HeapError, Memory, Order, SlabId, Snapshot, page_rounded},
    limiter::Limiter,
    pacer::{ConsMark, FORCE_GC_PERIOD, Gogc, Pace, Pacer, PacerConfig, Totals},
    policy::Policy,
    profile::Profile,
    release::Release,
    scavenger::{self, Scavenger},
    watchdog::{Driver, Force, Watchdog},
};

/// The GC CPU time one cycle costs, in nanoseconds: the two stop-the-world pauses and the root
/// scan of a small program whose heap is pointer-free slabs (marking them reads no memory).
/// An estimate from `GODEBUG=gctrace=1` on the reference program (`reference/go/`).
pub const CYCLE_CPU_NS: u64 = 300_000;

/// Everything that sets the runtime's behaviour.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeConfig {
    pub release: Release,
    pub policy: Policy,
    /// The cgroup's limit: what a percentage memory limit is of, and the budget a watchdog's
    /// policy divides.
    pub limit: u64,
    pub gomaxprocs: u32,
    /// Bytes per simulated second the program allocates and writes.
    pub alloc_rate: u64,
    /// Unix time of the simulated start, ns (`LastGC` counts from it).
    pub epoch_unix_ns: u64,
    /// Resident memory the host process already holds for itself: the part of the runtime's
    /// footprint that need not be made resident again.
    pub footprint_offset: u64,
    /// A real program's profile, in place of the reference program's (its footprint and
    /// roots).
    pub profile: Option<Profile>,
    /// How the collector's timing falls: instantaneous cycles unless told otherwise.
    pub timing: Timing,
    /// A model-only run: an allocation that takes resident memory past `limit` fails with
    /// [`HeapError::OverLimit`], where the kernel would have killed the program. Off in the
    /// worker, whose memory is real and whose fate the kernel decides.
    pub stop_at_limit: bool,
    /// Bytes added to (or taken from) the memory outside the heap: a prediction's draw of how
    /// much a real run's charge strays; 0 elsewhere.
    pub outside_spread: i64,
}

/// When the collector's work happens in one run, and where the small allocator's spans fall:
/// what real timing decides and the model draws ([`crate::predict`]). The default is the
/// model's deterministic collector: every cycle instantaneous, no span in a slab's way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// How long a cycle's concurrent mark lasts, simulated ns (gctrace's second clock figure);
    /// 0: instantaneous.
    pub mark_ns: u64,
    /// Whether a cycle that is due (the heap at its trigger, none running) starts when the
    /// program has dropped memory, from the small allocations it makes before its next slab
    /// (printing, reading a file): a cycle that starts then frees what was dropped. Where the
    /// small allocator's spans run out, and so whether one of them reaches the trigger check,
    /// is nothing the model can know.
    pub due_starts_after_release: bool,
    /// Whether, when the heap was past its goal as a cycle began, an allocation during its
    /// mark parks until the end (its assist owes more scan work than a heap of pointer-free
    /// slabs has left: mgcmark.go's `gcParkAssist`), or may take the heap 10 % past the goal
    /// (mgcpacer.go's `maxOvershoot`) on credit the background workers flushed. Which one
    /// happens depends on when the workers flush their credit.
    pub assists_park: bool,
    /// Whether, after a forced collection (which sweeps everything and flushes every cache of
    /// small objects), the program's next small allocations take a fresh span at the lowest
    /// free page, the start of the run the collection freed, with a span of the program's
    /// already just above that run: what is left of it then takes only what fits, and a slab
    /// that needs the whole run goes above the heap's end ([`Heap::box_in_lowest_free_run`]).
    /// Where the small allocator's spans lie is nothing the model knows.
    pub spans_box_in: bool,
}

/// A cycle in progress (concurrent mark).
#[derive(Clone, Copy, Debug)]
struct Marking {
    reason: GcReason,
    trigger: u64,
    heap_at_start: u64,
    began: Snapshot,
    ends_ns: u64,
    /// The heap an allocation may reach while it marks: the goal, or, when the heap was
    /// already past it, the heap at the start or 1.1 times the goal
    /// ([`Timing::assists_park`]). An allocation beyond it parks until the cycle ends.
    cap: u64,
}

/// Something the runtime did by itself (or as part of an operation), for the driver to report:
/// what, when on the simulated clock, and the runtime's state right after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Happening {
    pub what: What,
    pub sim_ns: u64,
    pub stats: HeapStats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    Cycle(Cycle),
    Scavenged { reason: ScavengeReason, bytes: u64 },
}

/// The memory use a cgroup-driven watchdog sees.
pub trait Usage {
    /// The cgroup's usage now, if it can be read.
    fn cgroup_usage(&mut self) -> Option<u64>;
}

/// No cgroup: the usage is the runtime's own resident memory.
impl Usage for () {
    fn cgroup_usage(&mut self) -> Option<u64> {
        None
    }
}

#[derive(Clone, Debug)]
struct WatchdogState {
    config: Watchdog,
    /// The cgroup driver's threshold; `None` until first evaluated (at its first poll).
    threshold: Option<u64>,
    next_poll_ns: u64,
    original_gogc: u32,
}

/// The simulated runtime. See the module documentation.
#[derive(Debug)]
pub struct Runtime<M: Memory> {
    heap: Heap<M>,
    /// The runtime's own memory outside the heap, made resident as the footprint grows.
    meta: M,
    meta_resident: u64,
    config: RuntimeConfig,
    pacer: Pacer,
    cons_mark: ConsMark,
    footprint: Footprint,
    scavenger: Scavenger,
    limiter: Limiter,
    watchdog: Option<WatchdogState>,
    now_ns: u64,
    num_gc: u32,
    last_gc_ns: Option<u64>,
    gc_cpu_ns: u64,
    marking: Option<Marking>,
    happened: Vec<Happening>,
}

impl<M: Memory> Runtime<M> {
    /// A runtime whose heap lives in `heap_memory` (up to `capacity` bytes of address space)
    /// and whose own memory lives in `meta_memory`. The footprint's start-up part is made
    /// resident at once, as the real runtime's is before `main` runs.
    pub fn new(heap_memory: M, meta_memory: M, capacity: u64, config: RuntimeConfig) -> Runtime<M> {
        let rules = config.release.rules();
        let policy = &config.policy;
        let memory_limit = policy.memory_limit_bytes(config.limit);
        let pacer = Pacer::new(
            PacerConfig {
                gogc: policy.gogc,
                memory_limit,
                ..Self::roots(config.profile.as_ref())
            },
            rules,
        );
        let watchdog = policy.watchdog().map(|w| WatchdogState {
            threshold: None,
            next_poll_ns: duration::nanos(w.interval),
            original_gogc: match policy.gogc {
                Gogc::Percent(p) => p,
                Gogc::Off => 100,
            },
            config: w,
        });
        let mut rt = Runtime {
            heap: Heap::new(heap_memory, capacity),
            meta: meta_memory,
            meta_resident: 0,
            pacer,
            cons_mark: ConsMark::new(rules.cons_mark),
            footprint: config
                .profile
                .as_ref()
                .map_or_else(
                    || Footprint::of(config.release),
                    |p| p.footprint(config.release),
                )
                .shifted(config.outside_spread),
            scavenger: Scavenger::new(memory_limit, &rules),
            limiter: Limiter::new(config.gomaxprocs),
            watchdog,
            now_ns: 0,
            num_gc: 0,
            last_gc_ns: None,
            gc_cpu_ns: 0,
            marking: None,
            happened: Vec::new(),
            config,
        };
        rt.grow_footprint();
        if let Some(own) = rt.config.profile.as_ref().and_then(|p| p.own_heap_bytes) {
            // A heap of its own beyond the heap's address space (four times the limit, at
            // least 1 GiB) cannot be held: the program would not start under that limit.
            let _ = rt.heap.hold_own(own);
        }
        rt
    }

    /// The roots the collector scans: the reference program's, or a profile's where its trace
    /// saw any (gctrace prints whole MiB: `0 MB` says less than one, not none).
    fn roots(profile: Option<&Profile>) -> PacerConfig {
        let d = PacerConfig::default();
        match profile {
            None => d,
            Some(p) => PacerConfig {
                stack_scan: p.stacks_bytes.max(d.stack_scan),
                globals_scan: p.globals_bytes.max(d.globals_scan),
                ..d
            },
        }
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    pub fn heap(&self) -> &Heap<M> {
        &self.heap
    }

    pub fn meta_memory(&self) -> &M {
        &self.meta
    }

    /// Simulated nanoseconds since start.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// GC CPU time so far, simulated nanoseconds.
    pub fn gc_cpu_ns(&self) -> u64 {
        self.gc_cpu_ns
    }

    /// What happened since the last call, oldest first.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Happening> {
        self.happened.drain(..)
    }

    fn non_heap(&self) -> u64 {
        self.footprint.mapped(self.heap.mapped())
    }

    fn totals(&self) -> Totals {
        Totals {
            span_slack: self.footprint.span_slack,
            ..self.heap.totals(self.non_heap(), self.num_gc)
        }
    }

    fn pace(&self) -> Pace {
        self.pacer.pace(&self.totals())
    }

    /// The runtime's state in `runtime.MemStats` terms.
    pub fn stats(&self) -> HeapStats {
        let pace = self.pace();
        let planned = |v: u64| (v != u64::MAX).then_some(v);
        let (mallocs, frees, total_alloc) = self.heap.counts();
        HeapStats {
            live: self.heap.live(),
            garbage: self.heap.garbage(),
            free: self.heap.free(),
            released: self.heap.released(),
            objects: self.heap.objects(),
            total_alloc,
            mallocs,
            frees,
            num_gc: self.num_gc,
            last_gc_unix_ns: self.last_gc_ns.map_or(0, |t| self.config.epoch_unix_ns + t),
            next_gc: planned(pace.goal),
            trigger: planned(pace.trigger),
            non_heap: self.non_heap(),
            gc_cpu_ns: self.gc_cpu_ns,
        }
    }

    /// Resident memory as the runtime accounts it: the heap's pages and its own footprint.
    pub fn resident(&self) -> u64 {
        self.heap.resident() + self.footprint.resident(self.heap.mapped())
    }

    /// Makes the footprint resident up to what the heap's size calls for (it never shrinks).
    fn grow_footprint(&mut self) {
        let want = self
            .footprint
            .to_populate(self.heap.mapped())
            .saturating_sub(self.config.footprint_offset);
        if want > self.meta_resident {
            let start = self.meta_resident.next_multiple_of(crate::heap::PAGE_SIZE);
            let end = want.next_multiple_of(crate::heap::PAGE_SIZE);
            if end > start {
                self.meta.populate(start, end - start);
            }
            self.meta_resident = end;
        }
    }

    /// Allocates and writes a slab (`mallocgc` for a large object): takes its pages, scavenges
    /// what the allocation would put over the memory limit or the retention goal, collects if
    /// the heap crossed the trigger, and lets the time of writing it pass.
    pub fn alloc(&mut self, bytes: u64, usage: &mut impl Usage) -> Result<Allocation, HeapError> {
        if let Some(m) = self.marking
            && self.heap.heap_alloc().saturating_add(page_rounded(bytes)) > m.cap
        {
            // The assist parks until the cycle ends.
            self.advance(m.ends_ns.saturating_sub(self.now_ns), usage)?;
        }
        let placed = self.heap.place(bytes)?;
        let limit = self
            .pacer
            .config()
            .memory_limit
            .filter(|_| !self.limiter.limiting());
        let scavenge =
            self.scavenger
                .at_allocation(&self.totals(), limit, placed.regained, placed.growth);
        self.scavenge(scavenge, ScavengeReason::Allocation)?;
        self.heap.populate(&placed);
        self.grow_footprint();
        self.check_limit()?;
        if self.due() {
            self.start_cycle(GcReason::Trigger, usage);
        }
        let write_ns = u64::try_from(
            u128::from(bytes) * 1_000_000_000 / u128::from(self.config.alloc_rate.max(1)),
        )
        .unwrap_or(u64::MAX);
        self.advance(write_ns, usage)?;
        Ok(placed.allocation)
    }

    /// In a model-only run, [`HeapError::OverLimit`] once resident memory is past the limit.
    fn check_limit(&self) -> Result<(), HeapError> {
        let resident = self.resident();
        if self.config.stop_at_limit && resident > self.config.limit {
            return Err(HeapError::OverLimit {
                resident,
                limit: self.config.limit,
            });
        }
        Ok(())
    }

    /// Drops the program's reference to a slab; returns its size.
    pub fn release(&mut self, id: SlabId) -> Option<u64> {
        self.heap.release(id)
    }

    /// Drops every slab; returns the bytes they were asked for.
    pub fn release_all(&mut self) -> u64 {
        self.heap.release_all()
    }

    /// The program goes on after dropping memory: with [`Timing::due_starts_after_release`],
    /// its small allocations start a cycle that is due.
    pub fn dropped(&mut self, usage: &mut impl Usage) {
        if self.config.timing.due_starts_after_release && self.due() {
            self.start_cycle(GcReason::Trigger, usage);
        }
    }

    /// A cycle is due: none runs, the heap reached the trigger, and the CPU limiter lets it.
    fn due(&self) -> bool {
        self.marking.is_none()
            && self.heap.heap_alloc() >= self.pace().trigger
            && !self.limiter.limiting()
    }

    /// The live slabs in `order`.
    pub fn slabs(&self, order: Order) -> Box<dyn Iterator<Item = (SlabId, u64)> + '_> {
        self.heap.slabs(order)
    }

    /// `runtime.GC()`: the cycle in progress ends, then a full cycle runs.
    pub fn gc(&mut self, usage: &mut impl Usage) -> Result<Cycle, HeapError> {
        self.finish_marking(usage);
        let cycle = self.collect(GcReason::Forced, usage);
        if self.config.timing.spans_box_in {
            self.heap.box_in_lowest_free_run()?;
            self.grow_footprint();
            self.check_limit()?;
        }
        Ok(cycle)
    }

    /// `debug.FreeOSMemory()`: a full cycle, then every free page back to the OS.
    pub fn free_os_memory(&mut self, usage: &mut impl Usage) -> Result<Cycle, HeapError> {
        let cycle = self.gc(usage)?;
        self.scavenge(u64::MAX, ScavengeReason::FreeOsMemory)?;
        Ok(cycle)
    }

    /// Lets `d` of simulated time pass with no allocation.
    pub fn wait(&mut self, d: Duration, usage: &mut impl Usage) -> Result<(), HeapError> {
        self.advance(duration::nanos(d), usage)
    }

    fn happened(&mut self, what: What) {
        let happening = Happening {
            what,
            sim_ns: self.now_ns,
            stats: self.stats(),
        };
        self.happened.push(happening);
    }

    fn scavenge(&mut self, bytes: u64, reason: ScavengeReason) -> Result<u64, HeapError> {
        if bytes == 0 {
            return Ok(0);
        }
        let released = self.heap.scavenge(bytes)?;
        if released > 0 {
            self.happened(What::Scavenged {
                reason,
                bytes: released,
            });
        }
        Ok(released)
    }

    /// Starts a cycle: instantaneous, or marking until [`Timing::mark_ns`] has passed.
    fn start_cycle(&mut self, reason: GcReason, usage: &mut impl Usage) {
        let mark_ns = self.config.timing.mark_ns;
        if mark_ns == 0 {
            self.collect(reason, usage);
            return;
        }
        let pace = self.pace();
        let heap = self.heap.heap_alloc();
        self.marking = Some(Marking {
            reason,
            trigger: pace.trigger,
            heap_at_start: heap,
            began: self.heap.snapshot(),
            ends_ns: self.now_ns.saturating_add(mark_ns),
            cap: match self.config.timing.assists_park {
                _ if heap < pace.goal => pace.goal,
                true => heap,
                false => pace.goal.saturating_add(pace.goal / 10),
            },
        });
    }

    /// Ends the cycle in progress, if any (mark termination, then its sweep).
    fn finish_marking(&mut self, usage: &mut impl Usage) {
        if let Some(m) = self.marking.take() {
            self.end_cycle(m.reason, m.trigger, m.heap_at_start, m.began, usage);
        }
    }

    /// A whole cycle at once.
    fn collect(&mut self, reason: GcReason, usage: &mut impl Usage) -> Cycle {
        let (trigger, heap) = (self.pace().trigger, self.heap.heap_alloc());
        self.end_cycle(reason, trigger, heap, self.heap.snapshot(), usage)
    }

    /// A cycle's end: the garbage of its start swept, then the pacer, the scavenger's goals and
    /// the watchdog look at the result.
    fn end_cycle(
        &mut self,
        reason: GcReason,
        trigger: u64,
        heap_at_start: u64,
        began: Snapshot,
        usage: &mut impl Usage,
    ) -> Cycle {
        let swept = self.heap.sweep(began);
        let scan = self.pacer.root_scan();
        let estimate = self.cons_mark.record(swept.heap_before, trigger, scan);
        self.pacer.set_cons_mark(estimate);
        // `lastHeapInUse` is taken at mark termination, before the sweep.
        let in_use_before = swept.heap_before;
        self.num_gc += 1;
        self.last_gc_ns = Some(self.now_ns);
        self.gc_cpu_ns += CYCLE_CPU_NS;
        self.limiter.accumulate(0, 0, CYCLE_CPU_NS);
        self.after_cycle(usage);
        let pace = self.pace();
        self.scavenger
            .on_cycle_end(pace.goal, in_use_before, swept.swept);
        let planned = |v: u64| (v != u64::MAX).then_some(v);
        let cycle = Cycle {
            n: self.num_gc,
            reason,
            heap_before: heap_at_start,
            heap_after: swept.marked,
            swept: swept.swept,
            goal: planned(pace.goal),
            trigger: planned(pace.trigger),
        };
        self.happened(What::Cycle(cycle));
        cycle
    }

    /// What a watchdog does after every cycle: the heap driver sets GOGC, the cgroup driver
    /// renews its threshold.
    fn after_cycle(&mut self, usage: &mut impl Usage) {
        let Some(driver) = self.watchdog.as_ref().map(|w| w.config.driver) else {
            return;
        };
        let limit = self.config.limit;
        match driver {
            Driver::Heap => {
                let Gogc::Percent(gogc) = self.pacer.config().gogc else {
                    return;
                };
                let next_gc = self.pace().goal;
                let heap_alloc = self.heap.heap_alloc();
                if let Some(w) = &self.watchdog {
                    let next =
                        w.config
                            .heap_gogc(limit, next_gc, gogc, heap_alloc, w.original_gogc);
                    self.pacer.set_gogc(Gogc::Percent(next));
                }
            }
            Driver::Cgroup => {
                let used = self.usage(usage);
                if let Some(w) = &mut self.watchdog {
                    w.threshold = Some(w.config.policy.evaluate(limit, used));
                }
            }
        }
    }

    fn usage(&self, usage: &mut impl Usage) -> u64 {
        usage.cgroup_usage().unwrap_or_else(|| self.resident())
    }

    /// Lets `ns` of simulated time pass: the background scavenger works, the limiter drains,
    /// and the periodic collection and a watchdog's polls happen when they fall due.
    fn advance(&mut self, ns: u64, usage: &mut impl Usage) -> Result<(), HeapError> {
        let end = self.now_ns.saturating_add(ns);
        loop {
            let periodic = self
                .last_gc_ns
                .filter(|_| self.pacer.config().gogc != Gogc::Off && self.marking.is_none())
                .map(|t| t.saturating_add(duration::nanos(FORCE_GC_PERIOD) + 1));
            let poll = self
                .watchdog
                .as_ref()
                .filter(|w| w.config.driver == Driver::Cgroup)
                .map(|w| w.next_poll_ns);
            let marked = self.marking.map(|m| m.ends_ns);
            let next = [Some(end), periodic, poll, marked]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(end);
            let step = next.saturating_sub(self.now_ns);
            if step > 0 {
                // The stretch's background work, reported as done by its end.
                self.now_ns = next;
                let rate = scavenger::background_rate(self.config.gomaxprocs);
                let budget = (u128::from(rate) * u128::from(step) / 1_000_000_000) as u64;
                let excess = self.scavenger.excess(&self.totals());
                self.scavenge(budget.min(excess), ScavengeReason::Background)?;
                let cpu = step * u64::from(self.config.gomaxprocs.max(1));
                self.limiter.accumulate(step, cpu, 0);
            }
            if marked == Some(self.now_ns) {
                self.finish_marking(usage);
            }
            if periodic == Some(self.now_ns) {
                self.start_cycle(GcReason::Periodic, usage);
            }
            if poll == Some(self.now_ns) {
                self.poll_watchdog(usage)?;
            }
            if self.now_ns >= end {
                return Ok(());
            }
        }
    }

    /// A cgroup-driven watchdog's poll: force a collection when the usage reached the threshold.
    fn poll_watchdog(&mut self, usage: &mut impl Usage) -> Result<(), HeapError> {
        let used = self.usage(usage);
        let Some(w) = &mut self.watchdog else {
            return Ok(());
        };
        w.next_poll_ns = w
            .next_poll_ns
            .saturating_add(duration::nanos(w.config.interval).max(1));
        // The first threshold comes from the usage when the watchdog starts.
        let threshold = *w
            .threshold
            .get_or_insert_with(|| w.config.policy.evaluate(self.config.limit, used));
        if used < threshold {
            return Ok(());
        }
        let force = w.config.force;
        self.finish_marking(usage);
        self.collect(GcReason::Watchdog, usage);
        if force == Force::FreeOsMemory {
            self.scavenge(u64::MAX, ScavengeReason::FreeOsMemory)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{event::Cycle, heap::Accounting, size::Amount, watchdog};

    const MIB: u64 = 1 << 20;

    fn runtime(config: RuntimeConfig) -> Runtime<Accounting> {
        Runtime::new(
            Accounting::default(),
            Accounting::default(),
            1 << 32,
            config,
        )
    }

    fn config(policy: Policy) -> RuntimeConfig {
        RuntimeConfig {
            release: Release::NEWEST,
            policy,
            limit: 256 * MIB,
            gomaxprocs: 1,
            alloc_rate: 750 * MIB,
            epoch_unix_ns: 0,
            footprint_offset: 0,
            profile: None,
            timing: Timing::default(),
            stop_at_limit: false,
            outside_spread: 0,
        }
    }

    fn cycles(rt: &mut Runtime<Accounting>) -> usize {
        rt.drain()
            .filter(|h| matches!(h.what, What::Cycle(_)))
            .count()
    }

    /// A live heap above the memory limit makes every allocation collect (the goal is the
    /// marked heap). Each cycle's GC time fills the limiter's bucket faster than 8 KiB of
    /// mutator time drains it, so after about a CPU-second of GC (1 s / (300 µs - 10.4 µs)
    /// = 3,450 cycles) it is full and most allocations run without a cycle: the heap passes
    /// the limit instead of collecting forever (mgclimit.go).
    #[test]
    fn the_cpu_limiter_stops_a_death_spiral() {
        let mut rt = runtime(config(Policy {
            memory_limit: Some(Amount::Bytes(8 * MIB)),
            ..Policy::default()
        }));
        rt.alloc(16 * MIB, &mut ()).unwrap();
        cycles(&mut rt);
        let mut early = 0;
        for _ in 0..3_000 {
            rt.alloc(8192, &mut ()).unwrap();
            early += cycles(&mut rt);
        }
        assert_eq!(early, 3_000, "every allocation collects at first");
        assert!(!rt.limiter.limiting());
        let mut late = 0;
        let mut over_the_limit = false;
        for _ in 0..10_000 {
            rt.alloc(8192, &mut ()).unwrap();
            late += cycles(&mut rt);
            over_the_limit |= rt.limiter.limiting();
        }
        // Full after ~450 more; from then on the limiter is on for every other 10 ms update
        // period (it turns off at the first update that drains), and no cycle runs while it is.
        assert!(over_the_limit);
        assert!(
            (2_000..7_000).contains(&late),
            "{late} cycles in the last 10,000 allocations"
        );
        assert!(rt.gc_cpu_ns() > CYCLE_CPU_NS * 3_000);
    }

    /// Every cycle's CPU time reaches the stats, whatever caused it.
    #[test]
    fn the_stats_carry_the_gc_cpu_time() {
        let mut rt = runtime(config(Policy::default()));
        assert_eq!(rt.stats().gc_cpu_ns, 0);
        rt.alloc(16 * MIB, &mut ()).unwrap();
        rt.gc(&mut ()).unwrap();
        let stats = rt.stats();
        assert!(stats.num_gc >= 2, "{stats:?}");
        assert_eq!(stats.gc_cpu_ns, u64::from(stats.num_gc) * CYCLE_CPU_NS);
        assert_eq!(stats.gc_cpu_ns, rt.gc_cpu_ns());
    }

    /// The heap driver sets GOGC after each cycle so that the next comes at the policy's
    /// threshold: at 40 MiB live under a 256 MiB budget with watermarks at 0.2/0.5/0.9, the
    /// next threshold is 51.2 MiB. go-watchdog infers the marked heap from NextGC (80.2 MiB
    /// with the roots) as 40.1 MiB, so GOGC = (51.2 / 40.1 - 1) x 100 = 27, and the goal is far
    /// below GOGC 100's 80 MiB.
    #[test]
    fn the_heap_driven_watchdog_lowers_the_goal() {
        let policy: watchdog::Policy = "watermarks:0.2,0.5,0.9".parse().unwrap();
        let mut rt = runtime(config(Policy {
            watchdog: Some(policy),
            ..Policy::default()
        }));
        rt.alloc(40 * MIB, &mut ()).unwrap();
        let goal = rt.stats().next_gc.unwrap();
        assert_eq!(rt.pacer.config().gogc, Gogc::Percent(27));
        assert!(goal < 52 * MIB && goal > 50 * MIB, "{goal}");
        let plain = {
            let mut rt = runtime(config(Policy::default()));
            rt.alloc(40 * MIB, &mut ()).unwrap();
            rt.stats().next_gc.unwrap()
        };
        assert!(plain > 80 * MIB, "{plain}");
    }

    /// Issue 18's concurrent cycle: it ends after its mark time; a slab dropped while it marks
    /// survives it and is swept by the next; the garbage there was at its start is reusable only
    /// once it ends.
    #[test]
    fn a_release_while_a_cycle_marks_survives_it() {
        let mut rt = runtime(RuntimeConfig {
            timing: Timing {
                mark_ns: 20_000_000,
                ..Timing::default()
            },
            ..config(Policy::default())
        });
        let ended = |rt: &mut Runtime<Accounting>| -> Vec<Cycle> {
            rt.drain()
                .filter_map(|h| match h.what {
                    What::Cycle(c) => Some(c),
                    _ => None,
                })
                .collect()
        };
        // Past the first trigger (under 4 MiB): a cycle starts, and marks for 20 ms.
        let a = rt.alloc(5 * MIB, &mut ()).unwrap();
        assert!(ended(&mut rt).is_empty(), "still marking");
        rt.wait(Duration::from_millis(20), &mut ()).unwrap();
        assert_eq!(ended(&mut rt).len(), 1);
        let b = rt.alloc(MIB, &mut ()).unwrap();
        rt.release(a.id);
        // 10 MiB is past the trigger (at most 61/64 of the way from 5 MiB marked to the
        // 10.2 MiB goal): a cycle starts, with `a` garbage; `b` is dropped while it marks.
        rt.alloc(4 * MIB, &mut ()).unwrap();
        rt.release(b.id);
        rt.wait(Duration::from_millis(25), &mut ()).unwrap();
        let cycles = ended(&mut rt);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].swept, 5 * MIB, "a, dropped before it began");
        assert_eq!(
            cycles[0].heap_after,
            5 * MIB,
            "b and the black 4 MiB, marked"
        );
        assert_eq!(rt.stats().garbage, MIB, "b waits for the next cycle");
        rt.gc(&mut ()).unwrap();
        assert_eq!(rt.stats().garbage, 0);
    }

    /// Past its goal as a cycle begins, an allocation parks until the cycle ends and then
    /// reuses what it swept; allowed to overshoot, it grows the heap instead.
    #[test]
    fn past_the_goal_an_allocation_waits_for_the_sweep_or_overshoots() {
        let second_slab = |assists_park: bool| {
            let mut rt = runtime(RuntimeConfig {
                timing: Timing {
                    mark_ns: 1_000_000,
                    due_starts_after_release: true,
                    assists_park,
                    spans_box_in: false,
                },
                ..config(Policy {
                    memory_limit: Some(Amount::Bytes(24 * MIB)),
                    ..Policy::default()
                })
            });
            let spike = rt.alloc(24 * MIB, &mut ()).unwrap();
            rt.release(spike.id);
            // The heap is at its goal: the program's small allocations start the due cycle.
            rt.dropped(&mut ());
            let t = rt.now_ns();
            let a = rt.alloc(2 * MIB, &mut ()).unwrap();
            (a.grown, rt.now_ns() - t)
        };
        let (grown, took) = second_slab(true);
        assert_eq!(grown, 0, "parked, then reused the swept spike");
        assert!(took >= 1_000_000, "it waited for the cycle: {took} ns");
        let (grown, _) = second_slab(false);
        assert_eq!(grown, 2 * MIB, "overshot on credit: fresh pages");
    }

    /// Simulated time: the periodic collection comes 2 minutes after the last one, whatever the
    /// machine's speed, and not with GOGC=off.
    #[test]
    fn the_periodic_collection_runs_on_simulated_time() {
        for (gogc, want) in [(Gogc::Percent(100), 1), (Gogc::Off, 0)] {
            let mut rt = runtime(config(Policy {
                gogc,
                ..Policy::default()
            }));
            rt.gc(&mut ()).unwrap();
            cycles(&mut rt);
            rt.wait(FORCE_GC_PERIOD, &mut ()).unwrap();
            assert_eq!(cycles(&mut rt), 0, "{gogc}: not at exactly 2 minutes");
            rt.wait(Duration::from_millis(1), &mut ()).unwrap();
            assert_eq!(cycles(&mut rt), want, "{gogc}");
        }
    }
}
