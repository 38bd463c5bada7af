//! A simulated Go heap over real memory.
//!
//! The heap hands out 8 KiB pages from an [`Arena`] (real, resident memory once written);
//! a slab of n bytes is one large object spanning whole pages. Dropping a slab makes it
//! garbage, not free memory: its pages go back to the free set only when a collection has
//! marked what is still referenced and swept the rest. When that collection happens is the
//! [`Pacer`]'s decision, exactly as in Go: after an allocation pushes the heap past the
//! trigger, or when the program asks for one. An allocation takes free pages first and only
//! grows the heap (new memory the cgroup is charged for) when no free run fits.
//!
//! Every figure an event or an answer shows is a running total kept with each change, so
//! reading the statistics costs the same with one slab or a hundred thousand; slabs are found
//! by id.

mod arena;
mod pages;

use std::time::{SystemTime, UNIX_EPOCH};

pub use arena::Arena;
use pages::{PageAlloc, Run};
use serde::{Deserialize, Serialize};

use crate::pacer::{FORCE_GC_PERIOD, Gogc, Pacer, PacerConfig};

/// The Go runtime's page size (`_PageSize`): spans are whole runs of these.
pub const PAGE_SIZE: u64 = 8192;

/// The byte written over every new slab (the seed fills its slice the same way).
const FILL: u8 = 0x5a;

#[derive(Debug, thiserror::Error)]
pub enum HeapError {
    #[error("a slab needs at least one byte")]
    Empty,
    #[error("{requested} bytes do not fit in the heap's {capacity}-byte address space")]
    AddressSpace { requested: u64, capacity: u64 },
    #[error("the heap's memory could not be reserved or returned: {0}")]
    Os(#[from] std::io::Error),
}

/// Names a slab for as long as it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SlabId(pub u64);

#[derive(Clone, Copy, Debug)]
struct Slab {
    id: SlabId,
    /// What the program asked for.
    bytes: u64,
    /// Its pages.
    run: Run,
}

/// Why a collection ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GcReason {
    /// An allocation pushed the heap past the pacer's trigger.
    Trigger,
    /// The program asked for it (`runtime.GC()`).
    Forced,
    /// No collection ran for two minutes (the runtime's forced periodic GC).
    Periodic,
}

/// One collection, with the figures `GODEBUG=gctrace=1` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The pacer's goal and trigger for the next cycle.
    pub goal: u64,
    pub trigger: u64,
}

/// What an allocation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub id: SlabId,
    /// Bytes taken from free pages that earlier collections swept.
    pub reused: u64,
    /// Bytes of new memory the heap grew by.
    pub grown: u64,
    /// The collection the allocation triggered, if it crossed the trigger.
    pub cycle: Option<Cycle>,
}

/// A snapshot of the heap, in the runtime's terms (page-rounded, as `runtime.MemStats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Collections so far (`NumGC`) and the last one's wall time in Unix ns (`LastGC`).
    pub num_gc: u32,
    pub last_gc_unix_ns: u64,
    /// The pacer's goal (`NextGC`) and trigger.
    pub next_gc: u64,
    pub trigger: u64,
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
}

/// The simulated heap. See the module documentation.
#[derive(Debug)]
pub struct Heap {
    arena: Arena,
    pages: PageAlloc,
    pacer: Pacer,
    /// Referenced slabs, oldest first.
    live: std::collections::BTreeMap<SlabId, Slab>,
    /// Dropped slabs, not yet swept.
    garbage: Vec<Slab>,
    totals: Totals,
    next_id: u64,
    total_alloc: u64,
    mallocs: u64,
    frees: u64,
    num_gc: u32,
    last_gc_unix_ns: u64,
}

/// Running totals over the slabs, kept with every change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Totals {
    /// Page-rounded bytes of the live slabs (`live` in [`HeapStats`]).
    live: u64,
    /// Page-rounded bytes of the garbage slabs.
    garbage: u64,
    /// Bytes the live slabs were asked for.
    requested: u64,
}

fn pages_for(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE)
}

impl Heap {
    /// A heap that may grow to `capacity` bytes of address space.
    pub fn new(capacity: u64, pacer: PacerConfig) -> Result<Heap, HeapError> {
        let capacity = capacity / PAGE_SIZE * PAGE_SIZE;
        let len = usize::try_from(capacity).map_err(|_| HeapError::AddressSpace {
            requested: capacity,
            capacity: usize::MAX as u64,
        })?;
        Ok(Heap {
            arena: Arena::reserve(len)?,
            pages: PageAlloc::new(),
            pacer: Pacer::new(pacer),
            live: Default::default(),
            garbage: Vec::new(),
            totals: Totals::default(),
            next_id: 1,
            total_alloc: 0,
            mallocs: 0,
            frees: 0,
            num_gc: 0,
            last_gc_unix_ns: 0,
        })
    }

    pub fn pacer_mut(&mut self) -> &mut Pacer {
        &mut self.pacer
    }

    fn capacity_pages(&self) -> u64 {
        self.arena.len() as u64 / PAGE_SIZE
    }

    /// Allocates a slab of `bytes` and writes every byte of its pages, then starts a
    /// collection if the heap crossed the trigger (as `mallocgc` does for large objects).
    pub fn alloc(&mut self, bytes: u64) -> Result<Allocation, HeapError> {
        if bytes == 0 {
            return Err(HeapError::Empty);
        }
        let n = pages_for(bytes);
        let placement =
            self.pages
                .alloc(n, self.capacity_pages())
                .ok_or(HeapError::AddressSpace {
                    requested: bytes,
                    capacity: self.arena.len() as u64,
                })?;
        let run = placement.run;
        // Offsets fit in usize: the run lies inside the arena, whose length is a usize.
        self.arena.write(
            (run.start * PAGE_SIZE) as usize,
            (run.len * PAGE_SIZE) as usize,
            FILL,
        );
        let id = SlabId(self.next_id);
        self.next_id += 1;
        self.mallocs += 1;
        self.total_alloc += run.len * PAGE_SIZE;
        self.live.insert(id, Slab { id, bytes, run });
        self.totals.live += run.len * PAGE_SIZE;
        self.totals.requested += bytes;
        let cycle = self
            .pacer
            .should_trigger(self.heap_alloc())
            .then(|| self.collect(GcReason::Trigger));
        Ok(Allocation {
            id,
            reused: (n - placement.grown) * PAGE_SIZE,
            grown: placement.grown * PAGE_SIZE,
            cycle,
        })
    }

    /// Drops the program's reference to a slab: it becomes garbage until the next cycle.
    /// Returns its size, or `None` if no live slab has that id.
    pub fn release(&mut self, id: SlabId) -> Option<u64> {
        let slab = self.live.remove(&id)?;
        self.drop_slab(slab);
        Some(slab.bytes)
    }

    /// Drops every live slab (they all become garbage); returns the bytes they were asked for.
    pub fn release_all(&mut self) -> u64 {
        let requested = self.totals.requested;
        for slab in std::mem::take(&mut self.live).into_values() {
            self.drop_slab(slab);
        }
        requested
    }

    fn drop_slab(&mut self, slab: Slab) {
        let bytes = slab.run.len * PAGE_SIZE;
        self.totals.live -= bytes;
        self.totals.garbage += bytes;
        self.totals.requested -= slab.bytes;
        self.garbage.push(slab);
    }

    /// The live slabs, oldest first: (id, requested bytes).
    pub fn slabs(&self) -> impl Iterator<Item = (SlabId, u64)> + '_ {
        self.live.values().map(|s| (s.id, s.bytes))
    }

    /// The bytes a live slab was asked for, or `None` if no live slab has that id.
    pub fn slab(&self, id: SlabId) -> Option<u64> {
        self.live.get(&id).map(|s| s.bytes)
    }

    /// How many slabs are live.
    pub fn slab_count(&self) -> u64 {
        self.live.len() as u64
    }

    /// The bytes the live slabs were asked for (before page rounding).
    pub fn slab_bytes(&self) -> u64 {
        self.totals.requested
    }

    /// Runs a full cycle now: marks every referenced slab, sweeps the garbage into the free
    /// page set, and lets the pacer plan the next cycle from what was marked.
    pub fn collect(&mut self, reason: GcReason) -> Cycle {
        let heap_before = self.heap_alloc();
        let marked = self.totals.live;
        let swept = self.totals.garbage;
        for slab in self.garbage.drain(..) {
            self.pages.free(slab.run);
            self.frees += 1;
        }
        self.totals.garbage = 0;
        // Slabs are byte slices: the collector has no pointers to scan in them.
        self.pacer.end_cycle(marked, 0);
        self.num_gc += 1;
        self.last_gc_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let pace = self.pacer.pace();
        Cycle {
            n: self.num_gc,
            reason,
            heap_before,
            heap_after: marked,
            swept,
            goal: pace.goal,
            trigger: pace.trigger,
        }
    }

    /// Whether the runtime's periodic collection is due at `now_unix_ns`: a cycle has run
    /// before, none ran for [`FORCE_GC_PERIOD`], and GOGC is not off (`gcTriggerTime`).
    pub fn periodic_gc_due(&self, now_unix_ns: u64) -> bool {
        self.pacer.config().gogc != Gogc::Off
            && self.last_gc_unix_ns != 0
            && now_unix_ns.saturating_sub(self.last_gc_unix_ns) > FORCE_GC_PERIOD.as_nanos() as u64
    }

    /// `HeapAlloc`: live plus garbage, page-rounded.
    pub fn heap_alloc(&self) -> u64 {
        self.totals.live + self.totals.garbage
    }

    pub fn stats(&self) -> HeapStats {
        let pace = self.pacer.pace();
        HeapStats {
            live: self.totals.live,
            garbage: self.totals.garbage,
            free: self.pages.free_pages() * PAGE_SIZE,
            released: 0,
            objects: (self.live.len() + self.garbage.len()) as u64,
            total_alloc: self.total_alloc,
            mallocs: self.mallocs,
            frees: self.frees,
            num_gc: self.num_gc,
            last_gc_unix_ns: self.last_gc_unix_ns,
            next_gc: pace.goal,
            trigger: pace.trigger,
        }
    }

    /// What the kernel says is resident in the heap's memory (mincore), for checking the
    /// heap's own accounting against reality.
    pub fn resident_by_kernel(&self) -> std::io::Result<u64> {
        self.arena
            .resident_bytes((self.pages.end() * PAGE_SIZE) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn heap() -> Heap {
        let config = PacerConfig {
            gogc: Gogc::Percent(100),
            stack_scan: 0,
            globals_scan: 0,
            cons_mark: 1.0,
        };
        Heap::new(1 << 30, config).unwrap()
    }

    #[test]
    fn slabs_round_up_to_pages() {
        let mut h = heap();
        let a = h.alloc(1).unwrap();
        assert_eq!(a.grown, PAGE_SIZE);
        let b = h.alloc(PAGE_SIZE + 1).unwrap();
        assert_eq!(b.grown, 2 * PAGE_SIZE);
        let s = h.stats();
        assert_eq!(s.live, 3 * PAGE_SIZE);
        assert_eq!(s.heap_sys(), 3 * PAGE_SIZE);
        assert_eq!(s.objects, 2);
    }

    #[test]
    fn garbage_is_reused_only_after_a_sweep() {
        let mut h = heap();
        // 2 MiB stays below the initial 3.8 MiB trigger: no cycle runs by itself.
        let a = h.alloc(2 * MIB).unwrap();
        assert_eq!(a.cycle, None);
        assert_eq!(h.release(a.id), Some(2 * MIB));
        let s = h.stats();
        assert_eq!((s.live, s.garbage, s.free), (0, 2 * MIB, 0));
        // Not swept yet: the next slab grows the heap although 2 MiB are garbage.
        let b = h.alloc(MIB).unwrap();
        assert_eq!((b.reused, b.grown), (0, MIB));
        // After a cycle the garbage is free, and the next slab reuses it.
        let c = h.collect(GcReason::Forced);
        assert_eq!(
            (c.heap_before, c.heap_after, c.swept),
            (3 * MIB, MIB, 2 * MIB)
        );
        let d = h.alloc(MIB).unwrap();
        assert_eq!((d.reused, d.grown), (MIB, 0));
        let s = h.stats();
        assert_eq!(
            (s.live, s.garbage, s.free, s.heap_sys()),
            (2 * MIB, 0, MIB, 3 * MIB)
        );
        assert_eq!((s.mallocs, s.frees, s.num_gc), (3, 1, 1));
        assert_eq!(s.total_alloc, 4 * MIB, "every allocation, freed or not");
    }

    #[test]
    fn crossing_the_trigger_collects_after_the_allocation() {
        let mut h = heap();
        let slab = 30_198_988;
        let a = h.alloc(slab).unwrap();
        let c = a.cycle.expect("a 30 MB slab crosses the 3.8 MiB trigger");
        // The slab was still referenced when the cycle marked: it is live, and the goal
        // doubles it.
        let rounded = pages_for(slab) * PAGE_SIZE;
        assert_eq!(
            (c.n, c.reason, c.heap_after, c.swept),
            (1, GcReason::Trigger, rounded, 0)
        );
        assert_eq!(c.goal, 2 * rounded);
        // The seed's remainder: dropping the slab frees nothing until the next cycle, which
        // the pacer plans far away, so the heap grows.
        h.release(a.id);
        let b = h.alloc(3_355_443).unwrap();
        assert_eq!(b.cycle, None);
        assert_eq!(b.reused, 0);
        assert_eq!(h.stats().garbage, rounded);
    }

    #[test]
    fn resident_memory_matches_the_accounting() {
        let mut h = heap();
        let a = h.alloc(5 * MIB + 123).unwrap();
        h.alloc(3 * MIB).unwrap();
        h.release(a.id);
        h.collect(GcReason::Forced);
        h.alloc(MIB).unwrap();
        let s = h.stats();
        let kernel = h.resident_by_kernel().unwrap();
        assert_eq!(s.resident(), s.heap_sys());
        // Every page the heap grew to was written: the kernel agrees to the byte.
        assert_eq!(kernel, s.resident());
        assert_eq!(h.arena.read(0), FILL);
    }

    #[test]
    fn the_periodic_collection_waits_two_minutes_after_the_last_one() {
        let mut h = heap();
        assert!(!h.periodic_gc_due(u64::MAX), "never before a first cycle");
        let c = h.collect(GcReason::Forced);
        assert_eq!(c.n, 1);
        let last = h.stats().last_gc_unix_ns;
        let period = FORCE_GC_PERIOD.as_nanos() as u64;
        assert!(!h.periodic_gc_due(last + period));
        assert!(h.periodic_gc_due(last + period + 1));
        h.pacer_mut().set_gogc(Gogc::Off);
        assert!(!h.periodic_gc_due(last + 2 * period), "not with GOGC=off");
    }

    /// What the running totals must equal: a fold over every slab.
    fn recount(h: &Heap) -> Totals {
        Totals {
            live: h.live.values().map(|s| s.run.len * PAGE_SIZE).sum(),
            garbage: h.garbage.iter().map(|s| s.run.len * PAGE_SIZE).sum(),
            requested: h.live.values().map(|s| s.bytes).sum(),
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Alloc(u64),
        /// The n-th live slab (modulo their number), oldest first.
        Release(usize),
        ReleaseAll,
        Collect,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (1u64..=40_000).prop_map(Op::Alloc),
            3 => any::<usize>().prop_map(Op::Release),
            1 => Just(Op::ReleaseAll),
            1 => Just(Op::Collect),
        ]
    }

    proptest::proptest! {
        /// Issue 7, item 11: the totals every event reads are kept, not recounted; after any
        /// sequence of operations they equal a recount over the slabs.
        #[test]
        fn running_totals_match_a_recount(ops in proptest::collection::vec(op(), 1..120)) {
            let mut h = heap();
            for op in ops {
                match op {
                    Op::Alloc(bytes) => {
                        h.alloc(bytes).unwrap();
                    }
                    Op::Release(n) => {
                        let nth = h.slabs().nth(n % h.live.len().max(1));
                        if let Some((id, bytes)) = nth {
                            proptest::prop_assert_eq!(h.slab(id), Some(bytes));
                            proptest::prop_assert_eq!(h.release(id), Some(bytes));
                            proptest::prop_assert_eq!(h.slab(id), None);
                        }
                    }
                    Op::ReleaseAll => {
                        let requested = recount(&h).requested;
                        proptest::prop_assert_eq!(h.release_all(), requested);
                        proptest::prop_assert_eq!(h.slab_count(), 0);
                    }
                    Op::Collect => {
                        let garbage = recount(&h).garbage;
                        proptest::prop_assert_eq!(h.collect(GcReason::Forced).swept, garbage);
                    }
                }
                let want = recount(&h);
                proptest::prop_assert_eq!(h.totals, want);
                let s = h.stats();
                proptest::prop_assert_eq!((s.live, s.garbage), (want.live, want.garbage));
                proptest::prop_assert_eq!(h.slab_bytes(), want.requested);
                proptest::prop_assert_eq!(h.slab_count(), h.live.len() as u64);
                proptest::prop_assert_eq!(s.objects, (h.live.len() + h.garbage.len()) as u64);
                proptest::prop_assert_eq!(s.heap_sys(), h.pages.end() * PAGE_SIZE);
            }
        }
    }

    #[test]
    fn address_space_is_bounded() {
        let mut h = Heap::new(4 * MIB, PacerConfig::default()).unwrap();
        assert!(matches!(
            h.alloc(5 * MIB),
            Err(HeapError::AddressSpace { .. })
        ));
        assert!(matches!(h.alloc(0), Err(HeapError::Empty)));
        assert!(h.alloc(4 * MIB).is_ok());
    }
}
