//! The worker process as the simulated program sees it: the monotonic clock, the group's usage
//! read from inside, SIGSTOP for `--pause-at`; and the program itself, the model's driver over
//! real memory ([`Program`]).

use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, raise};
use nix::unistd::{SysconfVar, sysconf};

use memspike_model::{
    event::Sink,
    experiment::Experiment,
    heap::PAGE_SIZE,
    program::{Driver, Host, StepError},
    runtime::{Runtime, Usage},
};

use crate::{
    arena::Arena,
    telemetry::{UsageProbe, monotonic_ns},
};

/// The physical memory of the machine: the most address space the heap may reserve.
pub fn physical_memory() -> u64 {
    let value = |var| {
        sysconf(var)
            .ok()
            .flatten()
            .and_then(|v| u64::try_from(v).ok())
    };
    match (value(SysconfVar::_PHYS_PAGES), value(SysconfVar::PAGE_SIZE)) {
        (Some(pages), Some(page)) if pages > 0 && page > 0 => pages * page,
        // Unknown: 64 GiB of address space costs nothing to reserve.
        _ => 64 << 30,
    }
}

/// The worker process as the simulated program sees it: the monotonic clock, the group's usage
/// read from inside, and SIGSTOP for `--pause-at`.
#[derive(Debug)]
pub struct WorkerHost {
    usage: Option<UsageProbe>,
}

impl WorkerHost {
    /// A host reading the group's usage from `usage` (none outside a group).
    pub fn new(usage: Option<UsageProbe>) -> WorkerHost {
        WorkerHost { usage }
    }
}

impl Usage for WorkerHost {
    fn cgroup_usage(&mut self) -> Option<u64> {
        self.usage.as_ref().and_then(UsageProbe::read)
    }
}

impl Host for WorkerHost {
    fn now_ns(&self) -> u64 {
        monotonic_ns()
    }

    fn pid(&self) -> u32 {
        memspike_cgroup::pidns::procfs_pid(std::process::id())
    }

    fn pause(&mut self) {
        // SIGSTOP stops this process until SIGCONT (or SIGKILL) arrives.
        let _ = raise(Signal::SIGSTOP);
    }
}

/// The simulated program over real memory, as a worker runs it.
pub type Program<S> = Driver<Arena, S, WorkerHost>;

/// The runtime's own memory (its footprint) gets address space for this share of the heap's,
/// plus [`META_BASE`]; only what the footprint calls for becomes resident.
const META_SHARE: u64 = 16;
const META_BASE: u64 = 256 << 20;

/// A program for `experiment` over fresh arenas (a heap of up to `capacity` bytes of address
/// space), reporting to `sink`. The runtime's start-up footprint is made resident now, less what
/// this process already holds (its own charge in the group when the host can read it).
pub fn program<S: Sink>(
    experiment: &Experiment,
    sink: S,
    mut host: WorkerHost,
    capacity: u64,
) -> Result<Program<S>, StepError> {
    let capacity = capacity / PAGE_SIZE * PAGE_SIZE;
    let heap = Arena::reserve(capacity as usize)?;
    let meta = Arena::reserve((capacity / META_SHARE + META_BASE) as usize)?;
    let own = host.cgroup_usage().unwrap_or(0);
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let rt = Runtime::new(heap, meta, capacity, experiment.runtime_config(epoch, own));
    Ok(Driver::new(rt, sink, host).pause_at(experiment.pause_at.clone()))
}
