//! The experiment's steps over a [`Heap`], each reported before and after through a
//! [`Sink`] ([`Driver`]), and the seed's self-directed script built from them
//! ([`SelfDirected`]).

use crate::phase::Phase; // TEMP(issue 8): lead rewrites

use crate::{
    heap::{Cycle, GcReason, Heap, HeapError, SlabId},
    telemetry::{Action, Event, Kind, Sink, UsageProbe, monotonic_ns},
};

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Heap(#[from] HeapError),
    #[error("telemetry pipe closed: {0}")]
    Telemetry(#[from] std::io::Error),
    #[error("{0}")]
    Plan(String),
}

/// Runs steps on a heap and reports each one. Every `Begin` is sent (one write, no buffer)
/// before the step touches memory, so a kill mid-step leaves its `Begin` as the last word.
pub struct Driver<S: Sink> {
    heap: Heap,
    sink: S,
    pause_at: Option<Phase>,
    usage: Option<UsageProbe>,
    /// The group's usage as read for the last event.
    last_usage: Option<u64>,
}

impl<S: Sink> Driver<S> {
    pub fn new(heap: Heap, sink: S) -> Self {
        Driver {
            heap,
            sink,
            pause_at: None,
            usage: None,
            last_usage: None,
        }
    }

    /// Stamps every event with the group's usage read from this probe.
    pub fn with_usage(mut self, usage: Option<UsageProbe>) -> Self {
        self.usage = usage;
        self
    }

    /// Makes the worker stop itself (SIGSTOP) before the first step of `phase`, so that a
    /// person or a test can look at the group mid-experiment; SIGCONT resumes it.
    pub fn pause_at(mut self, phase: Option<Phase>) -> Self {
        self.pause_at = phase;
        self
    }

    /// Announces a step, after pausing first if this is the phase to pause at.
    fn begin(&mut self, phase: Phase, action: Action, bytes: u64) -> std::io::Result<()> {
        if self.pause_at == Some(phase) {
            self.pause_at = None;
            self.send(Kind::Paused { phase })?;
            // SAFETY: raise has no memory-safety preconditions; SIGSTOP stops this process
            // until SIGCONT (or SIGKILL) arrives.
            unsafe { libc::raise(libc::SIGSTOP) };
        }
        self.send(Kind::Begin {
            phase,
            action,
            bytes,
        })
    }

    pub fn heap(&self) -> &Heap {
        &self.heap
    }

    /// Where the events went (tests read them back).
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The group's usage as read for the last event sent (`None` without a usage probe).
    pub fn last_usage(&self) -> Option<u64> {
        self.last_usage
    }

    fn send(&mut self, kind: Kind) -> std::io::Result<()> {
        self.last_usage = self.usage.as_ref().and_then(UsageProbe::read);
        let event = Event {
            t_ns: monotonic_ns(),
            cgroup_usage_bytes: self.last_usage,
            kind,
            heap: self.heap.stats(),
        };
        self.sink.send(&event)
    }

    /// Announces that the worker runs and has allocated nothing yet.
    pub fn ready(&mut self) -> Result<(), StepError> {
        Ok(self.send(Kind::Ready {
            pid: std::process::id(),
        })?)
    }

    /// Allocates and writes a slab; reports the collection it triggered, if any.
    pub fn alloc(&mut self, phase: Phase, bytes: u64) -> Result<SlabId, StepError> {
        let action = Action::Alloc;
        self.begin(phase, action, bytes)?;
        let a = self.heap.alloc(bytes)?;
        if let Some(cycle) = a.cycle {
            self.send(Kind::Gc { phase, cycle })?;
        }
        self.send(Kind::End {
            phase,
            action,
            bytes,
            reused: a.reused,
            grown: a.grown,
        })?;
        Ok(a.id)
    }

    /// Releases `bytes` of live slabs, oldest first, as the seed's `/rel` does. A slab that
    /// is only partly released is replaced by a smaller copy, allocated and written for real,
    /// before the original is dropped. Returns what was released and what was not (there
    /// were not that many live bytes).
    pub fn release_bytes(&mut self, phase: Phase, bytes: u64) -> Result<Released, StepError> {
        let mut left = bytes;
        let mut drop = Vec::new();
        let mut keep = None;
        for (id, size) in self.heap.slabs() {
            if left == 0 {
                break;
            }
            drop.push(id);
            if size > left {
                keep = Some(size - left);
                left = 0;
            } else {
                left -= size;
            }
        }
        // The copy comes first: like the seed's `append([]byte{}, s[n:]...)`, it is a new
        // allocation made while the original is still referenced.
        if let Some(rest) = keep {
            self.alloc(phase, rest)?;
        }
        if !drop.is_empty() {
            self.release(phase, &drop)?;
        }
        Ok(Released {
            released: bytes - left,
            not_released: left,
        })
    }

    /// Drops every slab, then collects (the seed's `/reset`).
    pub fn reset(&mut self, phase: Phase) -> Result<Cycle, StepError> {
        if self.heap.slab_count() > 0 {
            let bytes = self.heap.slab_bytes();
            self.dropping(phase, bytes, |heap| {
                heap.release_all();
            })?;
        }
        self.collect(phase)
    }

    /// Drops the program's references to these (distinct) slabs; returns the bytes released.
    /// Each slab is found by id: the cost grows with `ids`, not with the slabs held.
    pub fn release(&mut self, phase: Phase, ids: &[SlabId]) -> Result<u64, StepError> {
        let bytes = ids.iter().filter_map(|id| self.heap.slab(*id)).sum();
        self.dropping(phase, bytes, |heap| {
            for id in ids {
                heap.release(*id);
            }
        })
    }

    /// A release step: announces `bytes`, drops them with `apply`, reports the end.
    fn dropping(
        &mut self,
        phase: Phase,
        bytes: u64,
        apply: impl FnOnce(&mut Heap),
    ) -> Result<u64, StepError> {
        let action = Action::Release;
        self.begin(phase, action, bytes)?;
        apply(&mut self.heap);
        self.send(Kind::End {
            phase,
            action,
            bytes,
            reused: 0,
            grown: 0,
        })?;
        Ok(bytes)
    }

    /// Runs a collection the program asked for (`runtime.GC()`).
    pub fn collect(&mut self, phase: Phase) -> Result<Cycle, StepError> {
        let action = Action::Collect;
        self.begin(phase, action, 0)?;
        let cycle = self.heap.collect(GcReason::Forced);
        self.send(Kind::Gc { phase, cycle })?;
        self.send(Kind::End {
            phase,
            action,
            bytes: cycle.swept,
            reused: 0,
            grown: 0,
        })?;
        Ok(cycle)
    }

    /// Runs the runtime's periodic collection if it is due (call it now and then while the
    /// program idles, as the runtime's sysmon does). Returns whether it ran.
    pub fn tick(&mut self, phase: Phase) -> Result<bool, StepError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        if !self.heap.periodic_gc_due(now) {
            return Ok(false);
        }
        let cycle = self.heap.collect(GcReason::Periodic);
        self.send(Kind::Gc { phase, cycle })?;
        Ok(true)
    }

    /// Announces that the script finished.
    pub fn done(&mut self) -> Result<(), StepError> {
        Ok(self.send(Kind::Done)?)
    }
}

/// What `release_bytes` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Released {
    pub released: u64,
    /// Asked for but not held by any live slab.
    pub not_released: u64,
}

/// The seed's experiment: fill the limit but a reserve, drop the fill, allocate the reserve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SelfDirected {
    pub limit: u64,
    /// The fraction of the limit the spike leaves unreserved (the seed's 0.9).
    pub spike: f64,
    /// Collect right after dropping the slab (the seed's `-gc`).
    pub gc_after_release: bool,
}

impl SelfDirected {
    /// The part of the limit kept back for the remainder (the seed's 10 %).
    pub fn reserved(&self) -> u64 {
        ((1.0 - self.spike) * self.limit as f64) as u64
    }

    /// Runs the script: ready, spike, release, (gc), remainder, done.
    pub fn run<S: Sink>(&self, d: &mut Driver<S>) -> Result<(), StepError> {
        d.ready()?;
        let reserved = self.reserved();
        let fill = self
            .limit
            .checked_sub(d.heap().heap_alloc())
            .and_then(|room| room.checked_sub(reserved))
            .filter(|&fill| fill > 0)
            .ok_or_else(|| {
                StepError::Plan(format!(
                    "nothing to fill: the limit {} leaves no room above the reserve {reserved}",
                    self.limit
                ))
            })?;
        let slab = d.alloc(Phase::Spike, fill)?;
        d.release(Phase::Release, &[slab])?;
        if self.gc_after_release {
            d.collect(Phase::Gc)?;
        }
        if reserved > 0 {
            d.alloc(Phase::Remainder, reserved)?;
        }
        d.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacer::PacerConfig;

    const LIMIT: u64 = 32 << 20;

    fn run(gc: bool) -> Vec<Event> {
        // The heap is not limited here: this checks the script and its telemetry only.
        let heap = Heap::new(1 << 30, PacerConfig::default()).unwrap();
        let mut d = Driver::new(heap, Vec::new());
        let plan = SelfDirected {
            limit: LIMIT,
            spike: 0.9,
            gc_after_release: gc,
        };
        plan.run(&mut d).unwrap();
        d.sink().clone()
    }

    fn kinds(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match &e.kind {
                Kind::Ready { .. } => "ready".into(),
                Kind::Begin { phase, action, .. } => format!("begin {} {action:?}", phase.name()),
                Kind::End { phase, action, .. } => format!("end {} {action:?}", phase.name()),
                Kind::Gc { cycle, .. } => format!("gc {}", cycle.n),
                Kind::Paused { .. } => "paused".into(),
                Kind::Done => "done".into(),
            })
            .collect()
    }

    #[test]
    fn the_seeds_numbers() {
        let plan = SelfDirected {
            limit: LIMIT,
            spike: 0.9,
            gc_after_release: false,
        };
        assert_eq!(plan.reserved(), 3_355_443);
        let events = run(false);
        let Kind::Begin { bytes, .. } = events[1].kind else {
            panic!("second event is the spike")
        };
        assert_eq!(bytes, LIMIT - 3_355_443);
    }

    #[test]
    fn without_gc_the_remainder_grows_the_heap() {
        let events = run(false);
        assert_eq!(
            kinds(&events),
            [
                "ready",
                "begin spike Alloc",
                "gc 1",
                "end spike Alloc",
                "begin release Release",
                "end release Release",
                "begin remainder Alloc",
                "end remainder Alloc",
                "done"
            ]
        );
        let Kind::End { reused, grown, .. } = events[7].kind else {
            panic!()
        };
        assert_eq!(reused, 0);
        assert!(grown >= 3_355_443);
        // Next GC after the spike: about twice the live heap.
        let next_gc = events[3].heap.next_gc;
        assert!(
            next_gc > 2 * 30_000_000 && next_gc < 2 * 31_000_000,
            "{next_gc}"
        );
    }

    #[test]
    fn with_gc_the_remainder_reuses_swept_garbage() {
        let events = run(true);
        assert_eq!(
            kinds(&events)[6..9],
            ["begin gc Collect", "gc 2", "end gc Collect"]
        );
        let last_end = events
            .iter()
            .rev()
            .find_map(|e| match e.kind {
                Kind::End { reused, grown, .. } => Some((reused, grown)),
                _ => None,
            })
            .unwrap();
        assert_eq!(last_end.1, 0, "nothing grown");
        assert!(last_end.0 >= 3_355_443);
    }

    #[test]
    fn a_spike_that_leaves_nothing_to_fill_is_refused() {
        let heap = Heap::new(1 << 30, PacerConfig::default()).unwrap();
        let plan = SelfDirected {
            limit: LIMIT,
            spike: 0.0,
            gc_after_release: false,
        };
        let err = plan.run(&mut Driver::new(heap, Vec::new()));
        assert!(matches!(err, Err(StepError::Plan(_))));
    }

    #[test]
    fn release_bytes_goes_oldest_first_and_copies_a_partial_slab() {
        const MIB: u64 = 1 << 20;
        let heap = Heap::new(1 << 30, PacerConfig::default()).unwrap();
        let mut d = Driver::new(heap, Vec::new());
        let p = Phase::Interactive;
        let a = d.alloc(p, MIB).unwrap();
        let b = d.alloc(p, 2 * MIB).unwrap();
        // 1 MiB + half of the second: the first goes, the second becomes a 1 MiB copy.
        let r = d.release_bytes(p, 2 * MIB).unwrap();
        assert_eq!(
            r,
            Released {
                released: 2 * MIB,
                not_released: 0
            }
        );
        let live: Vec<_> = d.heap().slabs().collect();
        assert_eq!(live.len(), 1);
        assert!(
            live[0].0 != a && live[0].0 != b,
            "the survivor is a new copy"
        );
        assert_eq!(live[0].1, MIB);
        let s = d.heap().stats();
        assert_eq!((s.live, s.garbage), (MIB, 3 * MIB));
        // More than is held: what was there goes, the rest is reported as not released.
        let r = d.release_bytes(p, 5 * MIB).unwrap();
        assert_eq!(
            r,
            Released {
                released: MIB,
                not_released: 4 * MIB
            }
        );
        assert_eq!(d.heap().stats().live, 0);
        // Reset collects: all garbage becomes free pages.
        d.alloc(p, MIB).unwrap();
        d.reset(p).unwrap();
        let s = d.heap().stats();
        assert_eq!((s.live, s.garbage), (0, 0));
        assert!(s.free >= 4 * MIB);
    }
}
