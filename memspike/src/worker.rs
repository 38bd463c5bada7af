//! The worker: the process that lives inside the limited cgroup, owns the simulated heap and
//! runs the experiment, reporting every step on stdout (a pipe to the supervisor). It is the
//! same binary as the supervisor, started through a hidden subcommand.

use std::{
    fs::File,
    io,
    net::TcpListener,
    os::fd::{AsFd, FromRawFd, RawFd},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use crate::phase::Phase; // TEMP(issue 8): lead rewrites

use crate::{
    cgroup::{Version, counters::usage_file},
    heap::Heap,
    pacer::{Gogc, PacerConfig},
    privilege::{PrivilegeError, RunAs},
    scenario::{Driver, SelfDirected, StepError},
    serve::{self, ServeContext},
    telemetry::{Feed, LineSink, UsageProbe, read_control},
};

/// What the supervisor tells a worker to do.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerConfig {
    pub limit: u64,
    pub spike: f64,
    pub gogc: Gogc,
    pub gc_after_release: bool,
    /// Stop the worker (SIGSTOP) before this phase.
    pub pause_at: Option<Phase>,
    /// Serve HTTP on the inherited socket instead of running the script.
    pub interactive: bool,
    /// The credentials the worker takes as soon as it starts (never root).
    pub run_as: RunAs,
    /// Names the HTTP server accepts in `Host` besides its bound address (`--allow-host`).
    pub allowed_hosts: Vec<String>,
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

/// The heap, its telemetry on stdout and the control channel on stdin, as every worker
/// starts.
fn driver(
    config: &WorkerConfig,
    feed: Arc<Mutex<Feed>>,
) -> Result<Driver<LineSink<File>>, StepError> {
    let pacer = PacerConfig {
        gogc: config.gogc,
        ..PacerConfig::default()
    };
    let heap = Heap::new(physical_memory(), pacer)?;
    let stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let stdin = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let acks = read_control(stdin, feed);
    let usage = cgroup_from_env().and_then(|(dir, v)| UsageProbe::open(&usage_file(&dir, v)).ok());
    Ok(Driver::new(heap, LineSink::with_acks(stdout, acks))
        .pause_at(config.pause_at)
        .with_usage(usage))
}

/// Runs the worker: the self-directed experiment, or the HTTP server. Returns when the
/// script is done; the kernel may kill the process long before that, which is the point.
pub fn run(config: WorkerConfig) -> Result<(), WorkerError> {
    // The supervisor started us (and is still alive, or its death signal would have killed
    // us): it must stay our parent once we have dropped root.
    // SAFETY: getppid cannot fail.
    let supervisor = unsafe { libc::getppid() } as u32;
    let feed = Arc::new(Mutex::new(Feed::default()));
    // Everything that needs root is opened first: the group's files, the inherited socket.
    let mut driver = driver(&config, feed.clone())?;
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
    let Some(listener) = listener else {
        let plan = SelfDirected {
            limit: config.limit,
            spike: config.spike,
            gc_after_release: config.gc_after_release,
        };
        return Ok(plan.run(&mut driver)?);
    };
    driver.ready()?;
    let ctx = ServeContext {
        limit: config.limit,
        cgroup: cgroup_from_env(),
        feed,
        max_bytes: physical_memory(),
        allowed_hosts: config.allowed_hosts.clone(),
    };
    serve::serve(listener, driver, ctx).map_err(WorkerError::Serve)
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
