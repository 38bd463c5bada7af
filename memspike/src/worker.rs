//! The worker: the process that lives inside the limited cgroup, owns the simulated heap and
//! runs the experiment, reporting every step on stdout (a pipe to the supervisor). It is the
//! same binary as the supervisor, started through a hidden subcommand.

use std::{fs::File, io, os::fd::AsFd};

use memspike_common::Phase;

use crate::{
    heap::Heap,
    pacer::{Gogc, PacerConfig},
    scenario::{Driver, SelfDirected, StepError},
    telemetry::{LineSink, UsageProbe},
};

/// What the supervisor tells a worker to do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkerConfig {
    pub limit: u64,
    pub spike: f64,
    pub gogc: Gogc,
    pub gc_after_release: bool,
    /// Stop the worker (SIGSTOP) before this phase.
    pub pause_at: Option<Phase>,
}

/// Where the worker reads its group's usage from; set by the supervisor.
pub const USAGE_FILE_ENV: &str = "MEMSPIKE_USAGE_FILE";

/// The physical memory of the machine: the most address space the heap may reserve.
pub fn physical_memory() -> u64 {
    // SAFETY: sysconf has no preconditions and only reads system configuration.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && page > 0 {
        pages as u64 * page as u64
    } else {
        // Unknown: 64 GiB of address space costs nothing to reserve.
        64 << 30
    }
}

/// Runs the self-directed experiment, reporting on stdout. Returns when the script is done;
/// the kernel may kill the process long before that, which is the point.
pub fn run(config: WorkerConfig) -> Result<(), StepError> {
    let pacer = PacerConfig {
        gogc: config.gogc,
        ..PacerConfig::default()
    };
    let heap = Heap::new(physical_memory(), pacer)?;
    let stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    // stdin is the supervisor's acknowledgement channel: each step waits for its ack.
    let stdin = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let sink = LineSink::with_ack(stdout, stdin);
    let plan = SelfDirected {
        limit: config.limit,
        spike: config.spike,
        gc_after_release: config.gc_after_release,
    };
    let usage = std::env::var_os(USAGE_FILE_ENV).and_then(|p| UsageProbe::open(p.as_ref()).ok());
    let mut driver = Driver::new(heap, sink)
        .pause_at(config.pause_at)
        .with_usage(usage);
    plan.run(&mut driver)
}
