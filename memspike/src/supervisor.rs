//! The supervisor: stays outside the experiment's cgroup, creates and limits the group, starts
//! the worker already inside it, collects its telemetry, waits for it to finish or be killed,
//! reads the group's counters and removes the group, whatever happened.

use std::{
    collections::BTreeSet,
    fs::File,
    io::{self, BufRead, BufReader, Read, Write},
    os::unix::process::{CommandExt, ExitStatusExt},
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicI32, Ordering},
    },
    thread,
    time::Instant,
};

use signal_hook::{
    consts::{SIGHUP, SIGINT, SIGTERM},
    iterator::Signals,
};

use crate::{
    cgroup::{self, CgroupError, Group, Hierarchy, PreflightError},
    probe::{self, Probe},
    report::{Exit, RunFacts},
    size::human,
    telemetry::{self, Kind},
    worker::{self, WorkerConfig},
};

/// Below this the worker process alone (about 1-2 MiB before its first allocation) leaves no
/// room for an experiment.
pub const MIN_LIMIT: u64 = 4 << 20;

/// How much of the worker's stderr the report keeps.
const STDERR_TAIL: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The user asked for something that cannot run (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The machine lacks what the experiment needs (exit 2).
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("could not start the worker: {0}")]
    Spawn(io::Error),
    #[error("lost the worker's telemetry: {0}")]
    Telemetry(io::Error),
    #[error("interrupted by signal {0} before the worker started")]
    Interrupted(i32),
}

impl SupervisorError {
    /// The process exit code for this error: 2 for what the user or the machine must fix.
    pub fn exit_code(&self) -> u8 {
        match self {
            SupervisorError::Usage(_) | SupervisorError::Preflight(_) => 2,
            SupervisorError::Interrupted(_) => 130,
            _ => 1,
        }
    }
}

/// Checks the experiment's settings before anything is created.
pub fn validate(config: &WorkerConfig) -> Result<(), SupervisorError> {
    if config.limit < MIN_LIMIT {
        return Err(SupervisorError::Usage(format!(
            "--limit {} is below what the worker itself needs: the process alone is charged \
             1-2 MiB before its first allocation; use at least {}",
            human(config.limit),
            human(MIN_LIMIT)
        )));
    }
    if !(config.spike > 0.0 && config.spike < 1.0) {
        return Err(SupervisorError::Usage(format!(
            "--spike {} must be a fraction between 0 and 1 (the seed's is 0.9)",
            config.spike
        )));
    }
    Ok(())
}

/// Reads every file this process has mapped (its own binary, which the worker runs too, and
/// its shared libraries), so that their pages are cached and charged here, outside the
/// experiment, rather than to the worker's group when it starts. Best effort.
fn warm_page_cache() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let files: BTreeSet<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/'))
        .collect();
    let mut buf = vec![0u8; 1 << 16];
    for path in files {
        if let Ok(mut f) = File::open(path) {
            while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
        }
    }
}

/// Forwards the worker's stderr to our log and keeps its tail for the report.
fn collect_stderr(stderr: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut tail = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            tracing::debug!(target: "memspike::worker", "{line}");
            tail.push_str(&line);
            tail.push('\n');
            if tail.len() > STDERR_TAIL {
                let cut = tail.len() - STDERR_TAIL;
                let cut = (cut..tail.len())
                    .find(|&i| tail.is_char_boundary(i))
                    .unwrap_or(0);
                tail.drain(..cut);
            }
        }
        tail
    })
}

/// How the supervisor runs the experiment (as opposed to what the worker does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// Attach the eBPF observer (`--no-trace` turns it off).
    pub trace: bool,
}

/// Runs one self-directed experiment in a fresh group and returns what happened.
pub fn run(config: WorkerConfig, options: RunOptions) -> Result<RunFacts, SupervisorError> {
    validate(&config)?;
    let start = Instant::now();
    let hierarchy = Hierarchy::discover()?;
    for dir in cgroup::remove_stale(&hierarchy) {
        tracing::info!("removed a group left by an earlier run: {}", dir.display());
    }

    // SIGINT/SIGTERM/SIGHUP: kill the worker; the rest of the run (reading what it said,
    // removing the group, reporting) goes on as after any other death.
    let child_pid = Arc::new(AtomicI32::new(0));
    let interrupted = Arc::new(AtomicI32::new(0));
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(SupervisorError::Spawn)?;
    let handle = signals.handle();
    let watcher = {
        let (child_pid, interrupted) = (child_pid.clone(), interrupted.clone());
        thread::spawn(move || {
            for sig in signals.forever() {
                interrupted.store(sig, Ordering::SeqCst);
                kill(child_pid.load(Ordering::SeqCst));
            }
        })
    };
    let result = run_in_group(&hierarchy, config, options, &child_pid, &interrupted, start);
    handle.close();
    let _ = watcher.join();
    result
}

fn kill(pid: i32) {
    if pid > 0 {
        // SAFETY: sending a signal has no memory-safety preconditions; pid is our child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Starts the kernel observer on the group, or says why it is off. It is started before the
/// worker exists, so that its filter is set and its programs attached before the first fault.
fn start_probe(trace: bool, group: &Group) -> Result<Probe, String> {
    if !trace {
        return Err("--no-trace".to_owned());
    }
    if let Some(reason) = probe::unavailable_reason() {
        return Err(reason);
    }
    let id = group
        .bpf_cgroup_id()
        .ok_or("the group has no cgroup2 id to filter on (no cgroup2 mount)")?;
    Probe::start(id).map_err(|e| e.to_string())
}

fn run_in_group(
    hierarchy: &Hierarchy,
    config: WorkerConfig,
    options: RunOptions,
    child_pid: &AtomicI32,
    interrupted: &AtomicI32,
    start: Instant,
) -> Result<RunFacts, SupervisorError> {
    // The group is removed when `group` drops, on every path out of this function; the
    // probe's programs are unloaded when `probe` drops (declared later, dropped first).
    let mut group = Group::create(hierarchy, config.limit)?;
    tracing::info!(
        "created {} {} with a {} limit and no swap",
        hierarchy.version(),
        group.dir().display(),
        human(config.limit)
    );
    let mut probe = start_probe(options.trace, &group);
    match &probe {
        Ok(_) => tracing::info!("kernel observer attached (eBPF)"),
        Err(reason) => tracing::info!("kernel tracing off: {reason}"),
    }
    let joiner = group.joiner()?;
    let exe = std::env::current_exe().map_err(SupervisorError::Spawn)?;
    warm_page_cache();

    let mut cmd = Command::new(&exe);
    cmd.arg("worker")
        .arg("--limit")
        .arg(config.limit.to_string())
        .arg("--spike")
        .arg(config.spike.to_string())
        .arg("--gogc")
        .arg(config.gogc.to_string())
        .env(worker::USAGE_FILE_ENV, group.usage_file())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if config.gc_after_release {
        cmd.arg("--gc");
    }
    if let Some(phase) = config.pause_at {
        cmd.arg("--pause-at").arg(phase.name());
    }
    // SAFETY: the closure runs in the forked child before exec and makes only
    // async-signal-safe calls: prctl, and open/write/close inside Joiner::join_current (its
    // paths were prepared before the fork). No allocation, no locks.
    unsafe {
        cmd.pre_exec(move || {
            // Die with the supervisor: no stray worker if it is killed.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            joiner.join_current().map_err(io::Error::from_raw_os_error)
        });
    }
    if interrupted.load(Ordering::SeqCst) != 0 {
        return Err(SupervisorError::Interrupted(
            interrupted.load(Ordering::SeqCst),
        ));
    }
    let mut child = cmd.spawn().map_err(SupervisorError::Spawn)?;
    child_pid.store(child.id() as i32, Ordering::SeqCst);
    if interrupted.load(Ordering::SeqCst) != 0 {
        kill(child.id() as i32);
    }
    tracing::info!("worker {} started inside the group", child.id());

    let stderr = child.stderr.take().map(collect_stderr);
    let mut acks = child.stdin.take();
    let mut events = Vec::new();
    let stdout = child.stdout.take();
    for event in stdout
        .into_iter()
        .flat_map(|out| telemetry::events(BufReader::new(out)))
    {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                // The worker must be reaped before its group can go.
                kill(child.id() as i32);
                let _ = child.wait();
                return Err(SupervisorError::Telemetry(e));
            }
        };
        match event.kind {
            Kind::Begin { phase, .. } => {
                // Faults from here on belong to this phase; then let the worker go on.
                if let Ok(p) = &mut probe
                    && let Err(e) = p.set_phase(phase)
                {
                    tracing::warn!("could not set the observer's phase: {e}");
                }
                // A worker that is already dead cannot read it: nothing to do then.
                if let Some(a) = &mut acks {
                    let _ = a.write_all(&[telemetry::ACK]);
                }
            }
            Kind::Paused { phase } => tracing::info!(
                "worker {} paused before {}: inspect {}, then `kill -CONT {}`",
                child.id(),
                phase.name(),
                group.dir().display(),
                child.id()
            ),
            _ => {}
        }
        events.push(event);
    }
    drop(acks.take());
    let status = child.wait().map_err(SupervisorError::Spawn)?;
    child_pid.store(0, Ordering::SeqCst);
    let stderr_tail = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    let exit = match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Code(-1),
    };
    let kernel = match probe {
        Ok(p) => p.finish().map_err(|e| e.to_string()),
        Err(reason) => Err(reason),
    };
    let counters = group.counters();
    let name = group.name().to_owned();
    group.remove()?;
    tracing::info!("removed {name}");

    let ready = events.iter().any(|e| matches!(e.kind, Kind::Ready { .. }));
    if !ready && exit == Exit::Signal(libc::SIGKILL) && counters.oom_kills.unwrap_or(0) > 0 {
        return Err(SupervisorError::Usage(format!(
            "--limit {} is below what the worker itself needs: it was OOM-killed while \
             starting, before its first allocation (peak {}); raise the limit",
            human(config.limit),
            counters
                .peak_bytes
                .map_or("unknown".into(), |p| human(p).to_string())
        )));
    }
    Ok(RunFacts {
        limit: config.limit,
        spike: config.spike,
        gogc: config.gogc,
        gc_after_release: config.gc_after_release,
        cgroup_version: match hierarchy.version() {
            cgroup::Version::V1 => "v1",
            cgroup::Version::V2 => "v2",
        },
        group: name,
        events,
        exit,
        counters,
        kernel,
        interrupted: interrupted.load(Ordering::SeqCst) != 0,
        stderr_tail,
        duration: start.elapsed(),
    })
}

/// Where `--report DIR` puts the JSON report.
pub fn report_path(dir: &std::path::Path) -> PathBuf {
    dir.join("report.json")
}
