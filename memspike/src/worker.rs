//! The worker: the process that lives inside the limited cgroup, owns the simulated heap and
//! runs the experiment, reporting every step on stdout (a pipe to the supervisor). It is the
//! same binary as the supervisor, started through a hidden subcommand.

use std::{
    fs::File,
    io::{self, BufReader},
    net::TcpListener,
    os::fd::{AsFd, FromRawFd, RawFd},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use memspike_model::{
    experiment::{self, Experiment},
    heap::PAGE_SIZE,
    program::{Driver, Host, StepError},
    runtime::{Runtime, Usage},
};
use serde::{Deserialize, Serialize};

use crate::{
    arena::Arena,
    cgroup::{Version, counters::usage_file},
    privilege::{PrivilegeError, RunAs},
    serve::{self, ServeContext},
    telemetry::{Feed, LineSink, Sink, UsageProbe, monotonic_ns, read_control, read_start},
};

/// What the supervisor tells a worker to do: the first line on its control channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// The limit, the scenario, the runtime's policy and release.
    pub experiment: Experiment,
    /// Serve HTTP on the inherited socket instead of running the scenario.
    pub interactive: bool,
    /// The credentials the worker takes as soon as it starts (never root).
    pub run_as: RunAs,
    /// Names the HTTP server accepts in `Host` besides its bound address (`--allow-host`).
    pub allowed_hosts: Vec<String>,
}

/// The step an interactive worker's operations are counted under.
pub const INTERACTIVE: &str = "interactive";

impl WorkerConfig {
    /// The names of the steps page faults are counted under, slot by slot.
    pub fn step_names(&self) -> Vec<String> {
        if self.interactive {
            [experiment::STARTUP, INTERACTIVE, experiment::DONE]
                .map(str::to_owned)
                .to_vec()
        } else {
            self.experiment.step_names()
        }
    }
}

/// The worker's group, as `v1:<dir>` or `v2:<dir>`; set by the supervisor.
pub const CGROUP_ENV: &str = "MEMSPIKE_CGROUP";
/// The inherited listening socket's descriptor (interactive mode); set by the supervisor.
pub const LISTEN_FD_ENV: &str = "MEMSPIKE_LISTEN_FD";

/// Encodes a group for [`CGROUP_ENV`].
pub fn cgroup_env(dir: &std::path::Path, v: Version) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from(match v {
        Version::V1 => "v1:",
        Version::V2 => "v2:",
    });
    s.push(dir);
    s
}

/// The worker's group from [`CGROUP_ENV`], if the supervisor set it.
fn cgroup_from_env() -> Option<(PathBuf, Version)> {
    let value = std::env::var_os(CGROUP_ENV)?;
    let value = value.to_str()?;
    let (v, dir) = value.split_once(':')?;
    let v = match v {
        "v1" => Version::V1,
        "v2" => Version::V2,
        _ => return None,
    };
    Some((PathBuf::from(dir), v))
}

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
        crate::pidns::procfs_pid(std::process::id())
    }

    fn pause(&mut self) {
        // SAFETY: raise has no memory-safety preconditions; SIGSTOP stops this process until
        // SIGCONT (or SIGKILL) arrives.
        unsafe { libc::raise(libc::SIGSTOP) };
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

/// Runs the worker: reads its configuration from the control channel (stdin), then runs the
/// scenario or the HTTP server. Returns when the scenario is done; the kernel may kill the
/// process long before that, which is the point.
pub fn run() -> Result<(), WorkerError> {
    // The supervisor started us (and is still alive, or its death signal would have killed
    // us): it must stay our parent once we have dropped root.
    // SAFETY: getppid cannot fail.
    let supervisor = unsafe { libc::getppid() } as u32;
    let mut control = BufReader::new(File::from(io::stdin().as_fd().try_clone_to_owned()?));
    let config = read_start(&mut control)?;
    let feed = Arc::new(Mutex::new(Feed::default()));
    // Everything that needs root is opened first: the group's files, the inherited socket.
    let stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let acks = read_control(control, feed.clone());
    let usage = cgroup_from_env().and_then(|(dir, v)| UsageProbe::open(&usage_file(&dir, v)).ok());
    let listener = if config.interactive {
        let fd: RawFd = std::env::var(LISTEN_FD_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or(WorkerError::NoListener)?;
        // SAFETY: the supervisor passed this descriptor, a bound and listening TCP socket,
        // for this process alone; nothing else in the process owns it.
        Some(unsafe { TcpListener::from_raw_fd(fd) })
    } else {
        None
    };
    // In the group and holding what it needs: nothing left that needs root.
    config.run_as.enter(supervisor)?;
    let experiment = &config.experiment;
    let mut program = program(
        experiment,
        LineSink::with_acks(stdout, acks),
        WorkerHost::new(usage),
        physical_memory(),
    )?;
    let Some(listener) = listener else {
        return Ok(program.run(&experiment.effective_scenario(), experiment.limit)?);
    };
    program.ready()?;
    let ctx = ServeContext {
        limit: experiment.limit,
        memory_limit: experiment.memory_limit_bytes(),
        runtime: experiment.runtime,
        cgroup: cgroup_from_env(),
        feed,
        max_bytes: physical_memory(),
        allowed_hosts: config.allowed_hosts.clone(),
    };
    serve::serve(listener, program, ctx).map_err(WorkerError::Serve)
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Step(#[from] StepError),
    #[error("no listening socket was passed ({LISTEN_FD_ENV} is not set)")]
    NoListener,
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    #[error("the HTTP server stopped: {0}")]
    Serve(io::Error),
}

impl From<io::Error> for WorkerError {
    fn from(e: io::Error) -> Self {
        WorkerError::Step(StepError::Telemetry(e))
    }
}
