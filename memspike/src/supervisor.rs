//! The supervisor: stays outside the experiment's cgroup, creates and limits the group, starts
//! the worker already inside it, collects its telemetry, waits for it to finish or be killed,
//! reads the group's counters and removes the group, whatever happened.

use std::{
    collections::BTreeSet,
    fs::File,
    io::{self, BufRead, BufReader, Read},
    os::{
        fd::AsRawFd,
        unix::process::{CommandExt, ExitStatusExt},
    },
    path::PathBuf,
    process::{ChildStdin, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicI32, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use signal_hook::{
    consts::{SIGHUP, SIGINT, SIGTERM},
    iterator::Signals,
};

use crate::{
    cgroup::{self, CgroupError, Group, Hierarchy, PreflightError},
    probe::{self, KernelEvidence, Probe},
    report::{Exit, Outcome, Report, RunFacts},
    size::human,
    telemetry::{self, Control, Feed, Kind, OomSummary, PhaseGate},
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
    #[error("{0}")]
    Worker(String),
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

/// Checks a limit: below [`MIN_LIMIT`] the worker alone leaves no room for an experiment.
pub fn check_limit(limit: u64) -> Result<(), String> {
    if limit < MIN_LIMIT {
        return Err(format!(
            "{} is below what the worker itself needs: the process alone is charged 1-2 MiB \
             before its first allocation; use at least {}",
            human(limit),
            human(MIN_LIMIT)
        ));
    }
    Ok(())
}

/// Checks the experiment's settings before anything is created.
pub fn validate(config: &WorkerConfig) -> Result<(), SupervisorError> {
    check_limit(config.limit).map_err(|e| SupervisorError::Usage(format!("--limit {e}")))?;
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// Attach the eBPF observer (`--no-trace` turns it off).
    pub trace: bool,
    /// Interactive mode: where to listen, and whether to start a new worker after an OOM.
    pub interactive: Option<Interactive>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interactive {
    pub listen: std::net::SocketAddr,
    pub restart: bool,
}

/// Runs the self-directed experiment in a fresh group and returns what happened.
pub fn run(config: WorkerConfig, options: RunOptions) -> Result<RunFacts, SupervisorError> {
    let mut session = Session::open(&config, options.trace)?;
    let incarnation = session.run_worker(&config, None, None);
    let kernel = session.close();
    let mut facts = incarnation?;
    facts.kernel = kernel;
    facts.duration = session.start.elapsed();
    Ok(facts)
}

/// Serves the heap over HTTP from a worker in the group until SIGINT/SIGTERM; after an OOM
/// kill, prints that worker's report through `on_oom` and starts a new one (unless
/// `restart` is off). Returns the number of restarts.
pub fn run_interactive(
    config: WorkerConfig,
    options: RunOptions,
    mut on_oom: impl FnMut(Report),
) -> Result<u32, SupervisorError> {
    let Some(interactive) = options.interactive.clone() else {
        return Err(SupervisorError::Usage("not an interactive run".into()));
    };
    // Bound by root before any worker exists, so the address survives restarts.
    let listener = std::net::TcpListener::bind(interactive.listen).map_err(|e| {
        SupervisorError::Usage(format!("cannot listen on {}: {e}", interactive.listen))
    })?;
    let addr = listener.local_addr().map_err(SupervisorError::Spawn)?;
    let mut session = Session::open(&config, options.trace)?;
    let mut feed = Feed {
        tracing: probe::tracing_label(&session.probe),
        ..Feed::default()
    };
    tracing::info!("serving the heap on http://{addr}/ (Ctrl-C stops)");
    let result = loop {
        let facts = match session.run_worker(&config, Some(&listener), Some(&mut feed)) {
            Ok(facts) => facts,
            Err(e) => break Err(e),
        };
        if session.interrupted() {
            break Ok(feed.restarts);
        }
        let mut facts = facts;
        facts.kernel = session.snapshot();
        let exit = facts.exit;
        let stderr = facts.stderr_tail.clone();
        let report = Report::build(facts);
        if report.outcome != Outcome::OomKilled {
            break Err(SupervisorError::Worker(format!(
                "the worker stopped ({exit:?}): {}",
                stderr.trim()
            )));
        }
        feed.last_oom = Some(OomSummary {
            worker_pid: report.worker.pid,
            died_in: report.died_in.map(str::to_owned),
            needed_bytes: report.needed_bytes,
            garbage_bytes: report.garbage_at_end_bytes,
            verdict: report.verdict.clone(),
        });
        on_oom(report);
        if !interactive.restart {
            break Ok(feed.restarts);
        }
        feed.restarts += 1;
        tracing::info!("starting worker #{} in the same group", feed.restarts + 1);
    };
    // The group's counters carry over between workers; the probe and group go now.
    let _ = session.close();
    result
}

/// The group, the observer and the signal watcher of one supervisor run.
struct Session {
    hierarchy: Hierarchy,
    group: Group,
    probe: Result<Probe, String>,
    child_pid: Arc<AtomicI32>,
    interrupted: Arc<AtomicI32>,
    signals: signal_hook::iterator::Handle,
    watcher: Option<thread::JoinHandle<()>>,
    start: Instant,
    /// The group's OOM kill count after the last worker ended.
    oom_kills: u64,
}

impl Session {
    fn open(config: &WorkerConfig, trace: bool) -> Result<Session, SupervisorError> {
        validate(config)?;
        let start = Instant::now();
        let hierarchy = Hierarchy::discover()?;
        for dir in cgroup::remove_stale(&hierarchy) {
            tracing::info!("removed a group left by an earlier run: {}", dir.display());
        }
        // SIGINT/SIGTERM/SIGHUP: kill the worker; the rest of the run (reading what it said,
        // removing the group, reporting) goes on as after any other death.
        let child_pid = Arc::new(AtomicI32::new(0));
        let interrupted = Arc::new(AtomicI32::new(0));
        let mut signals =
            Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(SupervisorError::Spawn)?;
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
        // From here the group is removed when the session drops, on every path.
        let group = Group::create(&hierarchy, config.limit)?;
        tracing::info!(
            "created {} {} with a {} limit and no swap",
            hierarchy.version(),
            group.dir().display(),
            human(config.limit)
        );
        let probe = start_probe(trace, &group);
        match &probe {
            Ok(_) => tracing::info!("kernel observer attached (eBPF)"),
            Err(reason) => tracing::info!("kernel tracing off: {reason}"),
        }
        Ok(Session {
            hierarchy,
            group,
            probe,
            child_pid,
            interrupted,
            signals: handle,
            watcher: Some(watcher),
            start,
            oom_kills: 0,
        })
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst) != 0
    }

    /// The observer's figures so far, or why there are none.
    fn snapshot(&mut self) -> Result<KernelEvidence, String> {
        match &mut self.probe {
            Ok(p) => p.snapshot().map_err(|e| e.to_string()),
            Err(reason) => Err(reason.clone()),
        }
    }

    /// Unloads the observer (returning what it saw) and removes the group.
    fn close(&mut self) -> Result<KernelEvidence, String> {
        let probe = std::mem::replace(&mut self.probe, Err("closed".into()));
        let kernel = match probe {
            Ok(p) => p.finish().map_err(|e| e.to_string()),
            Err(reason) => Err(reason),
        };
        let name = self.group.name().to_owned();
        match self.group.remove() {
            Ok(()) => tracing::info!("removed {name}"),
            Err(e) => tracing::error!("{e}"),
        }
        kernel
    }

    /// Starts a worker in the group, answers its steps (phase, ack) and, in interactive
    /// mode, keeps it fed; returns when it has exited or been killed.
    fn run_worker(
        &mut self,
        config: &WorkerConfig,
        listener: Option<&std::net::TcpListener>,
        mut feed: Option<&mut Feed>,
    ) -> Result<RunFacts, SupervisorError> {
        let joiner = self.group.joiner()?;
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
            .env(
                worker::CGROUP_ENV,
                worker::cgroup_env(self.group.dir(), self.group.version()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if config.gc_after_release {
            cmd.arg("--gc");
        }
        if let Some(phase) = config.pause_at {
            cmd.arg("--pause-at").arg(phase.name());
        }
        if let Some(user) = &config.interactive_user {
            cmd.arg("--serve-as").arg(user);
        }
        for host in &config.allowed_hosts {
            cmd.arg("--allow-host").arg(host);
        }
        let listen_fd = listener.map(|l| l.as_raw_fd());
        if let Some(fd) = listen_fd {
            cmd.env(worker::LISTEN_FD_ENV, fd.to_string());
        }
        // SAFETY: the closure runs in the forked child before exec and makes only
        // async-signal-safe calls: prctl, fcntl, and open/write/close inside
        // Joiner::join_current (its paths were prepared before the fork). No allocation.
        unsafe {
            cmd.pre_exec(move || {
                // Die with the supervisor: no stray worker if it is killed.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // Keep the listening socket open across exec (std opens it close-on-exec).
                if let Some(fd) = listen_fd
                    && libc::fcntl(fd, libc::F_SETFD, 0) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                joiner.join_current().map_err(io::Error::from_raw_os_error)
            });
        }
        if self.interrupted() {
            return Err(SupervisorError::Interrupted(
                self.interrupted.load(Ordering::SeqCst),
            ));
        }
        let mut child = cmd.spawn().map_err(SupervisorError::Spawn)?;
        let pid = child.id();
        self.child_pid.store(pid as i32, Ordering::SeqCst);
        if self.interrupted() {
            kill(pid as i32);
        }
        tracing::info!("worker {pid} started inside the group");

        let stderr = child.stderr.take().map(collect_stderr);
        let mut control = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            thread::spawn(move || {
                for event in telemetry::events(BufReader::new(out)) {
                    if tx.send(event).is_err() {
                        break;
                    }
                }
            });
        }
        let mut events = Vec::new();
        let mut failure = None;
        let mut gate = PhaseGate::default();
        loop {
            let event = match rx.recv_timeout(FEED_PERIOD) {
                Ok(Ok(event)) => event,
                Ok(Err(e)) => {
                    failure = Some(e);
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(feed) = feed.as_deref_mut() {
                        self.send_feed(feed, &mut control);
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            match event.kind {
                // Only a begin that opens a phase is acknowledged (the worker's rule too).
                Kind::Begin { phase, .. } if gate.begin(phase) => {
                    // Faults from here on belong to this phase; then let the worker go on.
                    if let Ok(p) = &mut self.probe
                        && let Err(e) = p.set_phase(phase)
                    {
                        tracing::warn!("could not set the observer's phase: {e}");
                    }
                    // A worker that is already dead cannot read it: nothing to do then.
                    if let Some(c) = &mut control {
                        let _ = telemetry::send_control(c, &Control::Ack);
                    }
                }
                Kind::Ready { .. } => {
                    if let Some(feed) = feed.as_deref_mut() {
                        self.send_feed(feed, &mut control);
                    }
                }
                Kind::Paused { phase } => tracing::info!(
                    "worker {pid} paused before {}: inspect {}, then `kill -CONT {pid}`",
                    phase.name(),
                    self.group.dir().display(),
                ),
                _ => {}
            }
            events.push(event);
        }
        if failure.is_some() {
            // The worker must be reaped before its group can go.
            kill(pid as i32);
        }
        drop(control);
        let status = child.wait().map_err(SupervisorError::Spawn)?;
        self.child_pid.store(0, Ordering::SeqCst);
        if let Some(e) = failure {
            return Err(SupervisorError::Telemetry(e));
        }
        let stderr_tail = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
        let exit = match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        };
        let oom_kills_before = self.oom_kills;
        let counters = self.group.counters();
        self.oom_kills = counters.oom_kills.unwrap_or(oom_kills_before);
        let ready = events.iter().any(|e| matches!(e.kind, Kind::Ready { .. }));
        if !ready && exit == Exit::Signal(libc::SIGKILL) && self.oom_kills > oom_kills_before {
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
            config: config.clone(),
            cgroup_version: match self.hierarchy.version() {
                cgroup::Version::V1 => "v1",
                cgroup::Version::V2 => "v2",
            },
            group: self.group.name().to_owned(),
            events,
            exit,
            counters,
            oom_kills_before,
            kernel: Err("not collected yet".into()),
            interrupted: self.interrupted(),
            stderr_tail,
            duration: self.start.elapsed(),
        })
    }

    /// Sends the worker what only the supervisor knows (restarts, last OOM, kernel counters).
    fn send_feed(&mut self, feed: &mut Feed, control: &mut Option<ChildStdin>) {
        if let Ok(k) = self.snapshot() {
            feed.page_faults = Some(k.page_faults.total);
            feed.reclaim_stalls = Some(k.reclaim.stalls);
            feed.reclaim_ns = Some(k.reclaim.total_ns);
        }
        if let Some(c) = control {
            let _ = telemetry::send_control(c, &Control::Feed(feed.clone()));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.signals.close();
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        // `group` and `probe` drop after this: the programs unload and the group goes.
    }
}

/// How often an interactive worker hears the kernel's counters.
const FEED_PERIOD: Duration = Duration::from_millis(500);

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

/// Where `--report DIR` puts the JSON report.
pub fn report_path(dir: &std::path::Path) -> PathBuf {
    dir.join("report.json")
}
