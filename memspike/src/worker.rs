//! The worker: the process that lives inside the limited cgroup, owns the simulated heap and
//! runs the experiment, reporting every step on stdout (a pipe to the supervisor). It is the
//! same binary as the supervisor, started through a hidden subcommand.

use std::{
    ffi::CString,
    fs::File,
    io,
    net::TcpListener,
    os::fd::{AsFd, FromRawFd, RawFd},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use memspike_common::Phase;

use crate::{
    cgroup::{Version, counters::usage_file},
    heap::Heap,
    pacer::{Gogc, PacerConfig},
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
    /// Serve HTTP instead of running the script, as this user (never root).
    pub interactive_user: Option<String>,
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
    let feed = Arc::new(Mutex::new(Feed::default()));
    let mut driver = driver(&config, feed.clone())?;
    let Some(user) = &config.interactive_user else {
        let plan = SelfDirected {
            limit: config.limit,
            spike: config.spike,
            gc_after_release: config.gc_after_release,
        };
        return Ok(plan.run(&mut driver)?);
    };
    let fd: RawFd = std::env::var(LISTEN_FD_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or(WorkerError::NoListener)?;
    // SAFETY: the supervisor passed this descriptor, a bound and listening TCP socket, for
    // this process alone; nothing else in the process owns it.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    // In the group and bound: nothing left that needs root.
    drop_privileges(user)?;
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
    #[error("cannot drop privileges to {user:?}: {reason}")]
    Privileges { user: String, reason: String },
    #[error("the HTTP server stopped: {0}")]
    Serve(io::Error),
}

impl From<io::Error> for WorkerError {
    fn from(e: io::Error) -> Self {
        WorkerError::Step(StepError::Telemetry(e))
    }
}

/// Becomes `user` for good: supplementary groups cleared, then group, then user. Refuses to
/// go on as root.
pub fn drop_privileges(user: &str) -> Result<(), WorkerError> {
    let fail = |reason: String| WorkerError::Privileges {
        user: user.to_owned(),
        reason,
    };
    let name = CString::new(user).map_err(|_| fail("the name contains a NUL byte".into()))?;
    // SAFETY: zeroed passwd is a valid out-parameter; getpwnam_r fills it with pointers into
    // `buf`, which lives until we have copied uid and gid out.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all pointers are valid for the call and `buf.len()` is its real length.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return Err(fail("no such user (give another with --user)".into()));
    }
    let (uid, gid) = (pw.pw_uid, pw.pw_gid);
    if uid == 0 {
        return Err(fail(
            "it is root; the HTTP server must not run as root".into(),
        ));
    }
    // SAFETY: plain system calls on this process's credentials, no memory is passed but a
    // null list of length 0.
    let ok = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(gid) == 0
            && libc::setuid(uid) == 0
    };
    if !ok {
        return Err(fail(io::Error::last_os_error().to_string()));
    }
    // SAFETY: getuid/geteuid cannot fail.
    if unsafe { libc::getuid() == 0 || libc::geteuid() == 0 } {
        return Err(fail("still root after setuid".into()));
    }
    Ok(())
}
