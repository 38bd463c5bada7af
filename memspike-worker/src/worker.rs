//! The worker: the process that lives inside the limited cgroup, owns the simulated heap and
//! runs the experiment, reporting every step on stdout (a pipe to the supervisor). It is the
//! same binary as the supervisor, started through a hidden subcommand.

use std::{
    fs::File,
    io::{self, BufReader},
    net::TcpListener,
    os::fd::{AsFd, FromRawFd, RawFd},
    sync::{Arc, Mutex},
};

use memspike_cgroup::counters::usage_file;
use memspike_model::program::StepError;

use crate::{
    host::{WorkerHost, physical_memory, program},
    privilege::PrivilegeError,
    serve::{self, ServeContext},
    telemetry::{
        Feed, LISTEN_FD_ENV, LineSink, UsageProbe, cgroup_from_env, read_control, read_start,
    },
};

/// Runs the worker: reads its configuration from the control channel (stdin), then runs the
/// scenario or the HTTP server. Returns when the scenario is done; the kernel may kill the
/// process long before that, which is the point.
pub fn run() -> Result<(), WorkerError> {
    // The supervisor started us (and is still alive, or its death signal would have killed
    // us): it must stay our parent once we have dropped root.
    let supervisor = nix::unistd::getppid().as_raw() as u32;
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
