//! The experiment's steps over a [`Heap`], each reported before and after through a
//! [`Sink`] ([`Driver`]), and the seed's self-directed script built from them
//! ([`SelfDirected`]).

use memspike_common::Phase;

use crate::{
    heap::{GcReason, Heap, HeapError, SlabId},
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
pub struct Driver<'a, S: Sink> {
    heap: &'a mut Heap,
    sink: &'a mut S,
    pause_at: Option<Phase>,
    usage: Option<UsageProbe>,
}

impl<'a, S: Sink> Driver<'a, S> {
    pub fn new(heap: &'a mut Heap, sink: &'a mut S) -> Self {
        Driver {
            heap,
            sink,
            pause_at: None,
            usage: None,
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
        self.heap
    }

    fn send(&mut self, kind: Kind) -> std::io::Result<()> {
        let event = Event {
            t_ns: monotonic_ns(),
            cgroup_usage_bytes: self.usage.as_ref().and_then(UsageProbe::read),
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

    /// Drops the program's references to these slabs; returns the bytes released.
    pub fn release(&mut self, phase: Phase, ids: &[SlabId]) -> Result<u64, StepError> {
        let action = Action::Release;
        let bytes = ids
            .iter()
            .filter_map(|id| self.heap.slabs().find(|(s, _)| s == id).map(|(_, b)| b))
            .sum();
        self.begin(phase, action, bytes)?;
        for id in ids {
            self.heap.release(*id);
        }
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
    pub fn collect(&mut self, phase: Phase) -> Result<(), StepError> {
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
        Ok(())
    }

    /// Announces that the script finished.
    pub fn done(&mut self) -> Result<(), StepError> {
        Ok(self.send(Kind::Done)?)
    }
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
    pub fn run<S: Sink>(&self, d: &mut Driver<'_, S>) -> Result<(), StepError> {
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
        let mut heap = Heap::new(1 << 30, PacerConfig::default()).unwrap();
        let mut events = Vec::new();
        let plan = SelfDirected {
            limit: LIMIT,
            spike: 0.9,
            gc_after_release: gc,
        };
        plan.run(&mut Driver::new(&mut heap, &mut events)).unwrap();
        events
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
        let mut heap = Heap::new(1 << 30, PacerConfig::default()).unwrap();
        let plan = SelfDirected {
            limit: LIMIT,
            spike: 0.0,
            gc_after_release: false,
        };
        let err = plan.run(&mut Driver::new(&mut heap, &mut Vec::new()));
        assert!(matches!(err, Err(StepError::Plan(_))));
    }
}
