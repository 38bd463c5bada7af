//! The program: runs a scenario's steps (or an interactive server's requests) on the simulated
//! runtime and reports every step before and after it, through a [`Sink`].
//!
//! Every `begin` is sent (one write, no buffer) before the step touches memory, so a kill
//! mid-step leaves its `begin` as the last word. What the runtime did by itself during a step
//! (collections, scavenging) is reported between the step's `begin` and `end`.

use std::time::Duration;

use crate::{
    event::HeapStats,
    event::{Cycle, Event, Kind, Sink},
    heap::{HeapError, Memory, Order, SlabId},
    runtime::{Happening, Runtime, Usage, What},
    scenario::{Action, ActionKind, Releasing, Scenario, Step},
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

/// What the program needs from the process it runs in.
pub trait Host: Usage {
    /// Now on CLOCK_MONOTONIC, ns (events are placed on the kernel's timeline with it).
    fn now_ns(&self) -> u64;
    /// This process's id.
    fn pid(&self) -> u32;
    /// Stops the process until it is resumed (`--pause-at`).
    fn pause(&mut self);
}

/// A host for model-only runs: no clock, no cgroup, no pausing, and the pid it is given. Runs
/// are then deterministic to the byte, events included.
#[derive(Clone, Copy, Debug, Default)]
pub struct Detached {
    pub pid: u32,
}

impl Usage for Detached {
    fn cgroup_usage(&mut self) -> Option<u64> {
        None
    }
}

impl Host for Detached {
    fn now_ns(&self) -> u64 {
        0
    }
    fn pid(&self) -> u32 {
        self.pid
    }
    fn pause(&mut self) {}
}

/// What `release_bytes` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Released {
    pub released: u64,
    /// Asked for but not held by any live slab.
    pub not_released: u64,
}

/// Runs steps on a runtime and reports each one. See the module documentation.
pub struct Driver<M: Memory, S: Sink, H: Host> {
    rt: Runtime<M>,
    sink: S,
    host: H,
    pause_at: Option<String>,
    /// The group's usage as read for the last event.
    last_usage: Option<u64>,
    /// Happenings taken from the runtime, reused between steps.
    pending: Vec<Happening>,
    /// The scenario's top-level step running, from 1 ([`Event::step`]).
    step: u32,
}

impl<M: Memory, S: Sink, H: Host> Driver<M, S, H> {
    pub fn new(rt: Runtime<M>, sink: S, host: H) -> Self {
        Driver {
            rt,
            sink,
            host,
            pause_at: None,
            last_usage: None,
            pending: Vec::new(),
            step: 0,
        }
    }

    /// Makes the program stop itself before the first step named `step`.
    pub fn pause_at(mut self, step: Option<String>) -> Self {
        self.pause_at = step;
        self
    }

    pub fn runtime(&self) -> &Runtime<M> {
        &self.rt
    }

    /// Where the events went (tests read them back).
    pub fn sink(&self) -> &S {
        &self.sink
    }

    pub fn into_sink(self) -> S {
        self.sink
    }

    /// The group's usage as read for the last event sent (`None` without a cgroup).
    pub fn last_usage(&self) -> Option<u64> {
        self.last_usage
    }

    fn send(&mut self, kind: Kind) -> std::io::Result<()> {
        let (sim_ns, heap) = (self.rt.now_ns(), self.rt.stats());
        self.send_at(kind, sim_ns, heap)
    }

    /// Sends an event that happened at `sim_ns`, with the runtime's state then.
    fn send_at(&mut self, kind: Kind, sim_ns: u64, heap: HeapStats) -> std::io::Result<()> {
        self.last_usage = self.host.cgroup_usage();
        let event = Event {
            t_ns: self.host.now_ns(),
            sim_ns,
            cgroup_usage_bytes: self.last_usage,
            step: self.step,
            kind,
            heap,
        };
        self.sink.send(&event)
    }

    /// Reports what the runtime did by itself during the step `phase`.
    fn report_happenings(&mut self, phase: &str) -> std::io::Result<()> {
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend(self.rt.drain());
        let mut result = Ok(());
        for h in pending.drain(..) {
            let kind = match h.what {
                What::Cycle(cycle) => Kind::Gc {
                    phase: phase.to_owned(),
                    cycle,
                },
                What::Scavenged { reason, bytes } => Kind::Scavenge {
                    phase: phase.to_owned(),
                    reason,
                    bytes,
                },
            };
            result = result.and_then(|()| self.send_at(kind, h.sim_ns, h.stats));
        }
        self.pending = pending;
        result
    }

    /// Announces a step, after pausing first if this is the step to pause at.
    fn begin(&mut self, phase: &str, action: ActionKind, bytes: u64) -> std::io::Result<()> {
        if self.pause_at.as_deref() == Some(phase) {
            self.pause_at = None;
            self.send(Kind::Paused {
                phase: phase.to_owned(),
            })?;
            self.host.pause();
        }
        self.send(Kind::Begin {
            phase: phase.to_owned(),
            action,
            bytes,
        })
    }

    fn end(
        &mut self,
        phase: &str,
        action: ActionKind,
        bytes: u64,
        reused: u64,
        grown: u64,
    ) -> std::io::Result<()> {
        self.report_happenings(phase)?;
        self.send(Kind::End {
            phase: phase.to_owned(),
            action,
            bytes,
            reused,
            grown,
        })
    }

    /// Announces that the program runs and has allocated nothing yet.
    pub fn ready(&mut self) -> Result<(), StepError> {
        let pid = self.host.pid();
        Ok(self.send(Kind::Ready { pid })?)
    }

    /// Allocates and writes a slab.
    pub fn alloc(&mut self, phase: &str, bytes: u64) -> Result<SlabId, StepError> {
        let action = ActionKind::Alloc;
        self.begin(phase, action, bytes)?;
        let a = self.rt.alloc(bytes, &mut self.host)?;
        self.end(phase, action, bytes, a.reused, a.grown)?;
        Ok(a.id)
    }

    /// Releases `bytes` of live slabs in `order`, as the seed's `/rel` does (oldest first). A
    /// slab that is only partly released is replaced by a smaller copy, allocated and written
    /// for real, before the original is dropped.
    pub fn release_bytes(
        &mut self,
        phase: &str,
        bytes: u64,
        order: Order,
    ) -> Result<Released, StepError> {
        let mut left = bytes;
        let mut drop = Vec::new();
        let mut keep = None;
        for (id, size) in self.rt.slabs(order) {
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

    /// Drops the program's references to these (distinct) slabs; returns the bytes released.
    /// Each slab is found by id: the cost grows with `ids`, not with the slabs held.
    pub fn release(&mut self, phase: &str, ids: &[SlabId]) -> Result<u64, StepError> {
        let bytes = ids.iter().filter_map(|id| self.rt.heap().slab(*id)).sum();
        self.dropping(phase, bytes, |rt| {
            for id in ids {
                rt.release(*id);
            }
        })
    }

    /// Drops every slab.
    pub fn release_all(&mut self, phase: &str) -> Result<u64, StepError> {
        let bytes = self.rt.heap().slab_bytes();
        self.dropping(phase, bytes, |rt| {
            rt.release_all();
        })
    }

    /// Drops every slab, then collects (the seed's `/reset`).
    pub fn reset(&mut self, phase: &str) -> Result<Cycle, StepError> {
        if self.rt.heap().slab_count() > 0 {
            self.release_all(phase)?;
        }
        self.collect(phase)
    }

    fn dropping(
        &mut self,
        phase: &str,
        bytes: u64,
        apply: impl FnOnce(&mut Runtime<M>),
    ) -> Result<u64, StepError> {
        let action = ActionKind::Release;
        self.begin(phase, action, bytes)?;
        apply(&mut self.rt);
        self.rt.dropped(&mut self.host);
        self.end(phase, action, bytes, 0, 0)?;
        Ok(bytes)
    }

    /// Runs a collection the program asked for (`runtime.GC()`).
    pub fn collect(&mut self, phase: &str) -> Result<Cycle, StepError> {
        let action = ActionKind::Gc;
        self.begin(phase, action, 0)?;
        let cycle = self.rt.gc(&mut self.host)?;
        self.end(phase, action, cycle.swept, 0, 0)?;
        Ok(cycle)
    }

    /// `debug.FreeOSMemory()`: a collection, then every free page back to the OS. Returns the
    /// bytes released.
    pub fn free_os_memory(&mut self, phase: &str) -> Result<u64, StepError> {
        let action = ActionKind::FreeOsMemory;
        self.begin(phase, action, 0)?;
        let before = self.rt.heap().released();
        self.rt.free_os_memory(&mut self.host)?;
        let released = self.rt.heap().released() - before;
        self.end(phase, action, released, 0, 0)?;
        Ok(released)
    }

    /// Does nothing for `d` of simulated time.
    pub fn wait(&mut self, phase: &str, d: Duration) -> Result<(), StepError> {
        let action = ActionKind::Wait;
        self.begin(phase, action, 0)?;
        self.rt.wait(d, &mut self.host)?;
        self.end(phase, action, 0, 0, 0)?;
        Ok(())
    }

    /// Lets simulated time catch up with `elapsed` of real time (an interactive program idles in
    /// real time): background work that fell due is done and reported. Sends nothing when
    /// nothing happened.
    pub fn catch_up(&mut self, phase: &str, elapsed: Duration) -> Result<(), StepError> {
        let behind = crate::duration::nanos(elapsed).saturating_sub(self.rt.now_ns());
        if behind > 0 {
            self.rt.wait(Duration::from_nanos(behind), &mut self.host)?;
            self.report_happenings(phase)?;
        }
        Ok(())
    }

    /// Announces that the program finished.
    pub fn done(&mut self) -> Result<(), StepError> {
        Ok(self.send(Kind::Done)?)
    }

    /// Runs a scenario from start to end under a limit of `limit` bytes: ready, every step,
    /// done.
    pub fn run(&mut self, scenario: &Scenario, limit: u64) -> Result<(), StepError> {
        self.ready()?;
        for step in &scenario.steps {
            self.step += 1;
            self.step(step, limit)?;
        }
        self.done()
    }

    fn steps(&mut self, steps: &[Step], limit: u64) -> Result<(), StepError> {
        for step in steps {
            self.step(step, limit)?;
        }
        Ok(())
    }

    fn step(&mut self, step: &Step, limit: u64) -> Result<(), StepError> {
        let name = step.name.as_str();
        match &step.action {
            Action::Alloc { size, chunk, fill } => {
                let mut total = size.resolve(limit);
                if *fill {
                    let held = self.rt.heap().heap_alloc();
                    let own = self
                        .rt
                        .config()
                        .profile
                        .as_ref()
                        .and_then(|p| p.own_heap_bytes);
                    total = total.checked_sub(held).filter(|&t| t > 0).ok_or_else(|| {
                        let whose = own.map_or_else(String::new, |own| {
                            format!(
                                " ({own} of them the calibrated program's own heap: give a larger --limit)"
                            )
                        });
                        StepError::Plan(format!(
                            "step {name:?}: nothing to fill: the heap already holds {held} bytes of the {total} asked for{whose}"
                        ))
                    })?;
                }
                if total == 0 {
                    return Err(StepError::Plan(format!(
                        "step {name:?}: allocates nothing under a limit of {limit} bytes"
                    )));
                }
                let piece = chunk.map_or(total, |c| c.resolve(limit).max(1));
                let mut left = total;
                while left > 0 {
                    let n = piece.min(left);
                    self.alloc(name, n)?;
                    left -= n;
                }
            }
            Action::Release { what, order } => match what {
                Releasing::All => {
                    self.release_all(name)?;
                }
                Releasing::Amount(a) => {
                    self.release_bytes(name, a.resolve(limit), *order)?;
                }
            },
            Action::Gc => {
                self.collect(name)?;
            }
            Action::FreeOsMemory => {
                self.free_os_memory(name)?;
            }
            Action::Wait(d) => self.wait(name, *d)?,
            Action::Repeat { count, steps } => {
                for _ in 0..*count {
                    self.steps(steps, limit)?;
                }
            }
        }
        Ok(())
    }
}
