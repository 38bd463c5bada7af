//! The heap's side of the server: the one thread that owns the [`Driver`] and applies heap
//! operations in the order they arrive, each through the driver with phase
//! [`Phase::Interactive`] (so every step is reported to the supervisor), and publishes a
//! [`Snapshot`] of the heap after each one for the HTTP side to read without waiting.

use std::sync::{Mutex, mpsc::Receiver};

use memspike_common::Phase;
use tokio::sync::oneshot;

use super::errors::ApiError;
use crate::{
    heap::{HeapError, HeapStats},
    scenario::{Driver, StepError},
    telemetry::Sink,
};

/// A heap operation a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Allocate and write a slab of this many bytes.
    Add(u64),
    /// Release this many bytes of live slabs, oldest first.
    Rel(u64),
    /// Run a collection now.
    Gc,
    /// Drop every slab, then collect.
    Reset,
}

/// The heap as the answers show it, taken right after an operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub stats: HeapStats,
    /// Live slabs and the bytes they were asked for (before page rounding).
    pub slabs: u64,
    pub slab_bytes: u64,
    /// Bytes allocated since serving began, page-rounded (`TotalAlloc`): the heap at the
    /// start plus every slab since, including the copies a partial release makes.
    pub total_alloc: u64,
}

/// The figures of a collection a request ran, as `GODEBUG=gctrace=1` would print them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CycleFigures {
    pub n: u32,
    pub heap_before: u64,
    pub heap_after: u64,
    pub swept: u64,
    pub goal: u64,
    pub trigger: u64,
}

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Added(u64),
    Released { released: u64, not_released: u64 },
    Collected(CycleFigures),
    Reset,
}

/// An operation's result and the heap right after it.
#[derive(Clone, Copy, Debug)]
pub struct Done {
    pub outcome: Outcome,
    pub snapshot: Snapshot,
}

/// One queued request for the heap thread.
pub struct Job {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Done, ApiError>>,
}

/// The driver and what the server counts on top of it.
pub struct HeapState<S: Sink> {
    driver: Driver<S>,
    total_alloc: u64,
}

impl<S: Sink> HeapState<S> {
    pub fn new(driver: Driver<S>) -> Self {
        let total_alloc = driver.heap().heap_alloc();
        HeapState {
            driver,
            total_alloc,
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let heap = self.driver.heap();
        let (slabs, slab_bytes) = heap
            .slabs()
            .fold((0, 0), |(n, b), (_, bytes)| (n + 1, b + bytes));
        Snapshot {
            stats: heap.stats(),
            slabs,
            slab_bytes,
            total_alloc: self.total_alloc,
        }
    }

    /// Applies one operation. `Err(ApiError::Fatal)` means the supervisor is gone.
    pub fn apply(&mut self, op: Op) -> Result<Done, ApiError> {
        let phase = Phase::Interactive;
        let before = self.driver.heap().stats();
        let outcome = match op {
            Op::Add(bytes) => self
                .driver
                .alloc(phase, bytes)
                .map(|_| Outcome::Added(bytes)),
            Op::Rel(bytes) => self
                .driver
                .release_bytes(phase, bytes)
                .map(|r| Outcome::Released {
                    released: r.released,
                    not_released: r.not_released,
                }),
            Op::Gc => self
                .driver
                .collect(phase)
                .map(|()| Outcome::Collected(cycle(&before, &self.driver.heap().stats()))),
            Op::Reset => self.driver.reset(phase).map(|()| Outcome::Reset),
        }
        .map_err(step_error)?;
        let after = self.driver.heap().stats();
        if matches!(op, Op::Add(_) | Op::Rel(_)) {
            self.total_alloc += allocated(&before, &after);
        }
        Ok(Done {
            outcome,
            snapshot: self.snapshot(),
        })
    }
}

/// Bytes an allocating operation allocated, from the heap before and after it: what the heap
/// grew by plus what a collection it triggered swept. An `add` or `rel` triggers at most one
/// cycle, from its allocation, and that cycle sweeps exactly the garbage present before
/// (a `rel` drops its slabs only after the copy is made).
fn allocated(before: &HeapStats, after: &HeapStats) -> u64 {
    let swept = if after.num_gc > before.num_gc {
        before.garbage
    } else {
        0
    };
    (after.heap_alloc() + swept).saturating_sub(before.heap_alloc())
}

/// A forced collection's figures: it marks what is live and sweeps all the garbage.
fn cycle(before: &HeapStats, after: &HeapStats) -> CycleFigures {
    CycleFigures {
        n: after.num_gc,
        heap_before: before.heap_alloc(),
        heap_after: after.live,
        swept: before.garbage,
        goal: after.next_gc,
        trigger: after.trigger,
    }
}

fn step_error(e: StepError) -> ApiError {
    match e {
        StepError::Heap(HeapError::Empty) => ApiError::BadRequest(HeapError::Empty.to_string()),
        StepError::Heap(e @ HeapError::AddressSpace { .. }) => {
            ApiError::InsufficientStorage(e.to_string())
        }
        StepError::Heap(e @ HeapError::Os(_)) => ApiError::Heap(e.to_string()),
        StepError::Telemetry(e) => ApiError::Fatal(e.to_string()),
        StepError::Plan(p) => ApiError::Heap(p),
    }
}

/// Serves jobs until the HTTP side hangs up (`None`) or the supervisor is gone (`Some`, with
/// the reason). Every job's snapshot is published to `published` before it is answered.
pub fn run<S: Sink>(
    state: &mut HeapState<S>,
    jobs: &Receiver<Job>,
    published: &Mutex<Snapshot>,
) -> Option<String> {
    while let Ok(job) = jobs.recv() {
        let result = state.apply(job.op);
        *lock(published) = state.snapshot();
        let fatal = match &result {
            Err(ApiError::Fatal(why)) => Some(why.clone()),
            _ => None,
        };
        // The requester may have gone (client closed): the heap changed all the same.
        let _ = job.reply.send(result);
        if fatal.is_some() {
            return fatal;
        }
    }
    None
}

/// Locks a mutex whose holder may have panicked: the data (plain figures) stays usable.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
