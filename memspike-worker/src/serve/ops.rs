//! The heap's side of the server: the one thread that owns the [`Program`] and applies heap
//! operations in the order they arrive, each as a step named [`INTERACTIVE`] (so every step is
//! reported to the supervisor), and publishes a
//! [`Snapshot`] of the heap after each one for the HTTP side to read without waiting.
//!
//! [`Latest`] also holds the group's counters for the answers: reading them costs about eight
//! files, which was most of what an answer cost, so they are re-read only when older than
//! [`COUNTERS_MAX_AGE`]. An operation's answer shows the usage
//! the driver read as the operation ended (with its last event).

use std::{
    path::PathBuf,
    sync::{
        Mutex,
        mpsc::{Receiver, RecvTimeoutError},
    },
    time::{Duration, Instant},
};

use memspike_model::{
    event::{Cycle, HeapStats},
    heap::{HeapError, Order},
    program::StepError,
};
use tokio::sync::oneshot;

use super::errors::ApiError;
use memspike_cgroup::{Counters, Version, read_counters};
use memspike_model::experiment::INTERACTIVE;

use crate::{host::Program, telemetry::Sink};

/// A heap operation a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Allocate and write a slab of this many bytes.
    Add(u64),
    /// Release this many bytes of live slabs, oldest first.
    Rel(u64),
    /// Run a collection now.
    Gc,
    /// `debug.FreeOSMemory()`: collect, then return every free page to the OS.
    FreeOsMemory,
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
}

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Added(u64),
    Released {
        released: u64,
        not_released: u64,
    },
    Collected(Cycle),
    /// Bytes returned to the OS.
    FreedOsMemory(u64),
    Reset,
}

/// An operation's result, and the heap and the group's usage right after it.
#[derive(Clone, Copy, Debug)]
pub struct Done {
    pub outcome: Outcome,
    pub snapshot: Snapshot,
    /// As read with the operation's last event; `None` without a usage probe (tests).
    pub usage: Option<u64>,
}

/// The group's counters the answers show are at most this old (an operation's usage aside).
pub const COUNTERS_MAX_AGE: Duration = Duration::from_millis(100);

/// The worker's group: its directory and cgroup version.
pub type Group = (PathBuf, Version);

/// What the HTTP side answers from: the heap after the latest operation, and the group's
/// counters as last read.
#[derive(Debug)]
pub struct Latest {
    pub snapshot: Snapshot,
    counters: Option<(Counters, Instant)>,
}

impl Latest {
    pub fn new(snapshot: Snapshot) -> Latest {
        Latest {
            snapshot,
            counters: None,
        }
    }

    /// The group's counters, re-read first if they are older than [`COUNTERS_MAX_AGE`].
    pub fn counters(&mut self, group: Option<&Group>) -> Option<Counters> {
        let (dir, v) = group?;
        match &self.counters {
            Some((c, at)) if at.elapsed() < COUNTERS_MAX_AGE => Some(c.clone()),
            _ => {
                let c = read_counters(dir, *v);
                self.counters = Some((c.clone(), Instant::now()));
                Some(c)
            }
        }
    }
}

/// One queued request for the heap thread.
pub struct Job {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Done, ApiError>>,
}

/// The program, owned by the heap thread.
pub struct HeapState<S: Sink> {
    driver: Program<S>,
    /// When serving began: the runtime's clock follows the wall clock while it idles.
    start: Instant,
}

impl<S: Sink> HeapState<S> {
    pub fn new(driver: Program<S>) -> Self {
        HeapState {
            driver,
            start: Instant::now(),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let rt = self.driver.runtime();
        Snapshot {
            stats: rt.stats(),
            slabs: rt.heap().slab_count(),
            slab_bytes: rt.heap().slab_bytes(),
        }
    }

    /// Applies one operation. `Err(ApiError::Fatal)` means the supervisor is gone.
    pub fn apply(&mut self, op: Op) -> Result<Done, ApiError> {
        let phase = INTERACTIVE;
        let d = &mut self.driver;
        let outcome = match op {
            Op::Add(bytes) => d.alloc(phase, bytes).map(|_| Outcome::Added(bytes)),
            Op::Rel(bytes) => {
                d.release_bytes(phase, bytes, Order::Oldest)
                    .map(|r| Outcome::Released {
                        released: r.released,
                        not_released: r.not_released,
                    })
            }
            Op::Gc => d.collect(phase).map(Outcome::Collected),
            Op::FreeOsMemory => d.free_os_memory(phase).map(Outcome::FreedOsMemory),
            Op::Reset => d.reset(phase).map(|_| Outcome::Reset),
        }
        .map_err(step_error)?;
        Ok(Done {
            outcome,
            snapshot: self.snapshot(),
            usage: self.driver.last_usage(),
        })
    }

    /// Lets the runtime's clock catch up with the wall clock, so that what falls due while it
    /// idles (the periodic collection, the scavenger, a watchdog's polls) happens; returns
    /// whether the heap changed. `Err` means the supervisor is gone.
    fn tick(&mut self) -> Result<bool, ApiError> {
        let before = self.snapshot();
        self.driver
            .catch_up(INTERACTIVE, self.start.elapsed())
            .map_err(step_error)?;
        Ok(self.snapshot() != before)
    }
}

fn step_error(e: StepError) -> ApiError {
    match e {
        StepError::Heap(HeapError::Empty) => ApiError::BadRequest(HeapError::Empty.to_string()),
        StepError::Heap(e @ HeapError::AddressSpace { .. }) => {
            ApiError::InsufficientStorage(e.to_string())
        }
        // The worker's runtime never stops at the limit (the kernel decides): no such error.
        StepError::Heap(e @ (HeapError::Os(_) | HeapError::OverLimit { .. })) => {
            ApiError::Heap(e.to_string())
        }
        StepError::Telemetry(e) => ApiError::Fatal(e.to_string()),
        StepError::Plan(p) => ApiError::Heap(p),
    }
}

/// Serves jobs until the HTTP side hangs up (`None`) or the supervisor is gone (`Some`, with
/// the reason). Every job's snapshot is published to `latest` before it is answered.
pub fn run<S: Sink>(
    state: &mut HeapState<S>,
    jobs: &Receiver<Job>,
    latest: &Mutex<Latest>,
) -> Option<String> {
    loop {
        let job = match jobs.recv_timeout(TICK) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                // Idle: time passes for the runtime too.
                match state.tick() {
                    Ok(true) => lock(latest).snapshot = state.snapshot(),
                    Ok(false) => {}
                    Err(ApiError::Fatal(why)) => return Some(why),
                    Err(_) => {}
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return None,
        };
        let result = state.apply(job.op);
        lock(latest).snapshot = state.snapshot();
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
}

/// How often the idle heap thread lets the runtime's clock catch up.
const TICK: Duration = Duration::from_secs(1);

/// Locks a mutex whose holder may have panicked: the data (plain figures) stays usable.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
