//! What is process-wide in the observer: the eBPF programs, loaded and attached once per
//! memspike invocation and pointed at one group after another.
//!
//! [`Kernel::start`] begins loading on a thread of its own, so that the load (feature probing,
//! the kernel's BTF, the verifier) overlaps what the command does meanwhile (preflight, the
//! hierarchy, stale groups, creating the group). [`Kernel::observe`] waits for it, points the
//! programs at the group (counters zeroed, see [`EbpfProbe::observe`]) and hands them to that
//! group's [`Observer`], which borrows the kernel: one group at a time, checked by the compiler.
//! The observer's end (`finish`, or drop) points them at nothing again.
//!
//! Dropping the [`Kernel`] unloads the programs without waiting for the kernel to free them;
//! a load still under way when it drops finishes on its thread and is dropped there (the
//! process's exit ends it otherwise).

use std::thread::JoinHandle;
use std::time::Instant;

use super::ebpf::{EbpfProbe, Unavailable, unavailable_reason};
use super::{Observer, SlotNames, Target};

/// The eBPF programs of this invocation, or why there are none.
#[derive(Debug)]
pub struct Kernel {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Loading on its thread.
    Loading(JoinHandle<Result<EbpfProbe, Unavailable>>),
    Ready(Box<EbpfProbe>),
    /// Why there is no eBPF (`--no-trace`, not root, nothing attached ...) and what the
    /// attempt had to say.
    Off {
        reason: String,
        notes: Vec<String>,
    },
}

impl Kernel {
    /// Starts loading the eBPF programs in the background, or, with `trace: false`
    /// (`--no-trace`) or where they cannot load at all (not root, no object), does nothing.
    pub fn start(trace: bool) -> Kernel {
        if !trace {
            return Kernel::off("--no-trace");
        }
        if let Some(reason) = unavailable_reason() {
            return Kernel::off(&reason);
        }
        tracing::debug!("eBPF observer: loading in the background");
        let state = std::thread::Builder::new()
            .name("memspike-ebpf-load".into())
            .spawn(|| EbpfProbe::load(None))
            .map_or_else(
                // No thread: load here instead.
                |_| State::from(EbpfProbe::load(None)),
                State::Loading,
            );
        Kernel { state }
    }

    /// A kernel without eBPF, for `reason` (what reports print after `unavailable: `).
    pub fn off(reason: &str) -> Kernel {
        Kernel {
            state: State::off(reason),
        }
    }

    /// The observer of `target`, counting page faults under `slots`, starting in the start-up
    /// slot. Waits for the programs if they are still loading (the caller starts nothing in
    /// the group before this returns, so nothing of it is missed).
    pub fn observe(&mut self, target: Target, slots: SlotNames) -> Observer<'_> {
        let ebpf = match target.bpf_cgroup_id {
            None => Err(Off::new(
                "the group has no cgroup2 id to filter on (no cgroup2 mount)",
            )),
            Some(id) => self.ready().and_then(|probe| match probe.observe(id) {
                Ok(()) => Ok(probe),
                Err(e) => Err(Off {
                    reason: e.to_string(),
                    notes: probe.notes().to_vec(),
                }),
            }),
        };
        Observer::start(target, ebpf, slots)
    }

    /// The loaded programs, once loading has ended, or why there are none.
    fn ready(&mut self) -> Result<&mut EbpfProbe, Off> {
        let state = std::mem::replace(&mut self.state, State::off("the eBPF programs are loading"));
        self.state = match state {
            State::Loading(handle) => {
                let waiting = Instant::now();
                let state = handle.join().map_or_else(
                    |_| State::off("loading the eBPF programs panicked"),
                    State::from,
                );
                tracing::debug!(
                    waited_ms = waiting.elapsed().as_secs_f64() * 1e3,
                    "eBPF observer ready"
                );
                state
            }
            done => done,
        };
        match &mut self.state {
            State::Ready(probe) => Ok(probe.as_mut()),
            State::Off { reason, notes } => Err(Off {
                reason: reason.clone(),
                notes: notes.clone(),
            }),
            State::Loading(_) => Err(Off::new("the eBPF programs are still loading")),
        }
    }
}

impl State {
    fn off(reason: &str) -> State {
        State::Off {
            reason: reason.to_owned(),
            notes: Vec::new(),
        }
    }
}

impl From<Result<EbpfProbe, Unavailable>> for State {
    fn from(result: Result<EbpfProbe, Unavailable>) -> State {
        match result {
            Ok(probe) => State::Ready(Box::new(probe)),
            Err(Unavailable { error, notes }) => State::Off {
                reason: error.to_string(),
                notes,
            },
        }
    }
}

/// Why an observer has no eBPF, and what was learnt on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Off {
    pub reason: String,
    pub notes: Vec<String>,
}

impl Off {
    fn new(reason: &str) -> Off {
        Off {
            reason: reason.to_owned(),
            notes: Vec::new(),
        }
    }
}
