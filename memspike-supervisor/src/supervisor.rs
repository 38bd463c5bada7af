//! The supervisor: stays outside the experiment's cgroup, creates and limits the group, starts
//! the worker already inside it, collects its telemetry, waits for it to finish or be killed,
//! reads the group's counters and removes the group, whatever happened. A self-directed run
//! with `--report DIR` also streams every event to the directory's event log ([`EventLog`]).

use std::{
    collections::BTreeSet,
    fs::File,
    io::{self, BufRead, BufReader, Read, Write},
    os::{
        fd::{AsRawFd, BorrowedFd},
        unix::process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{ChildStdin, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use memspike_cgroup::{
    self as cgroup, CgroupError, EffectiveLimit, Group, Hierarchy, InheritError, PreflightError,
};
use memspike_model::{
    event::Event,
    experiment::{DONE, STARTUP},
    size::human,
};
use memspike_probe::{Kernel, KernelEvidence, Observer, SlotNames, Target};
use memspike_report::{
    EVENT_LOG,
    facts::{GroupFacts, History, RunFacts, Thinned},
};
use memspike_worker::telemetry::{
    self, CGROUP_ENV, Control, Feed, Kind, LISTEN_FD_ENV, Moment, MomentMark, OomSummary,
    PhaseGate, WorkerConfig, cgroup_env,
};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::prctl;
use nix::sys::signal::{Signal, raise};
use nix::unistd::{Pid, getppid};

use crate::{
    preflight::{self, UsageError},
    signals::{self, Interrupts, exit_of, signal, signal_name},
};

/// How much of the worker's stderr the report keeps.
const STDERR_TAIL: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The user asked for something that cannot run (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A setting that cannot run here (exit 2).
    #[error(transparent)]
    Settings(#[from] UsageError),
    /// The machine lacks what the experiment needs (exit 2).
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// `--inherit` found no limit to run under (exit 2).
    #[error(transparent)]
    Inherit(#[from] InheritError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("could not start the worker: {0}")]
    Spawn(io::Error),
    #[error("lost the worker's telemetry: {0}")]
    Telemetry(io::Error),
    #[error("interrupted by {} before the worker started", signal_name(*.0))]
    Interrupted(i32),
    #[error("{0}")]
    Worker(String),
}

impl SupervisorError {
    /// The process exit code for this error: 2 for what the user or the machine must fix.
    pub fn exit_code(&self) -> u8 {
        match self {
            SupervisorError::Usage(_)
            | SupervisorError::Settings(_)
            | SupervisorError::Preflight(_)
            | SupervisorError::Inherit(_) => 2,
            SupervisorError::Interrupted(_) => signals::INTERRUPTED_EXIT,
            _ => 1,
        }
    }
}

/// Checks the experiment's settings before anything is created: the limit against the worker
/// and this machine, the spike against the limit, and the report's directory.
pub fn validate(config: &WorkerConfig, options: &RunOptions) -> Result<(), UsageError> {
    let experiment = &config.experiment;
    preflight::check_limit(experiment.limit, preflight::Memory::read())?;
    if let (Some(settings), name) = (&experiment.policy.godebug, &experiment.policy.name) {
        return Err(UsageError::Policy(format!(
            "policy {}: godebug = {settings:?} is read by real Go programs only; the simulated runtime does not model it (run your program: memspike compare -- CMD)",
            name.as_deref().unwrap_or("-")
        )));
    }
    if !config.interactive {
        if let Some(spike) = experiment.spike {
            preflight::check_spike(spike, experiment.limit)?;
        }
        preflight::check_scenario(experiment)?;
        preflight::check_pause_at(experiment)?;
    }
    if let Some(dir) = &options.report_dir {
        preflight::check_report_dir(dir)?;
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Attach the eBPF observer (`--no-trace` turns it off).
    pub trace: bool,
    /// Interactive mode: where to listen, and whether to start a new worker after a death.
    pub interactive: Option<Interactive>,
    /// Where the caller will write the report (`--report DIR`): checked before the run.
    pub report_dir: Option<PathBuf>,
    /// `--inherit`: run in this process's own group, under this limit ([`inherited_limit`]).
    pub inherit: Option<EffectiveLimit>,
}

/// `--inherit`: the limit this process lives under (the experiment's limit then), or why there
/// is none. Nothing is created.
pub fn inherited_limit() -> Result<EffectiveLimit, SupervisorError> {
    let hierarchy = Hierarchy::discover_inherited()?;
    let limit = cgroup::effective_limit(&hierarchy)?;
    tracing::info!(
        "--inherit: {} is limited to {} by {}",
        hierarchy.own_dir().display(),
        human(limit.limit),
        limit.source.display()
    );
    Ok(limit)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interactive {
    pub listen: std::net::SocketAddr,
    pub restart: bool,
}

/// A test hook: with this variable set, each worker stops itself (SIGSTOP) between fork and
/// exec, so that a test can send it a signal in that window (issue: such a signal was lost).
pub const TEST_STOP_BEFORE_EXEC_ENV: &str = "MEMSPIKE_TEST_STOP_BEFORE_EXEC";

/// Runs the self-directed experiment in a fresh group and returns what happened. A stop
/// signal received through `interrupts` kills the worker; the run is then reported as it
/// ended. With `--report DIR`, every event goes to the directory's [`EventLog`] as it arrives.
pub fn run(
    config: &WorkerConfig,
    options: &RunOptions,
    interrupts: &Interrupts,
) -> Result<RunFacts, SupervisorError> {
    validate(config, options)?;
    let mut log = options
        .report_dir
        .as_deref()
        .map(EventLog::create)
        .transpose()?;
    Runner::new(options, interrupts).run_logged(config, log.as_mut())
}

/// `--report DIR`'s event log, [`EVENT_LOG`]: every event the worker sent, one JSON line each,
/// written as it arrives (one `write(2)` a line, nothing buffered), so that a run killed
/// half-way (memspike included) still leaves the events it had. Its memory is one line.
pub struct EventLog {
    file: File,
    path: PathBuf,
    line: Vec<u8>,
    written: u64,
    /// The write that failed: the log stops there (said once, in the log).
    failed: bool,
}

impl EventLog {
    /// Creates (or empties) `dir`'s event log.
    pub fn create(dir: &Path) -> Result<EventLog, UsageError> {
        let path = dir.join(EVENT_LOG);
        let file = File::create(&path).map_err(|e| UsageError::ReportDir {
            path: dir.to_owned(),
            why: format!("cannot write {EVENT_LOG} in it ({e})"),
        })?;
        Ok(EventLog {
            file,
            path,
            line: Vec::with_capacity(512),
            written: 0,
            failed: false,
        })
    }

    /// Appends one event as a line. A failure stops the log and is said once; the run goes on.
    pub fn write(&mut self, event: &Event) {
        if self.failed {
            return;
        }
        self.line.clear();
        let written = serde_json::to_writer(&mut self.line, event)
            .map_err(io::Error::from)
            .and_then(|()| {
                self.line.push(b'\n');
                self.file.write_all(&self.line)
            });
        match written {
            Ok(()) => self.written += 1,
            Err(e) => {
                self.failed = true;
                tracing::warn!(
                    "{}: {e}: the event log stops after {} events",
                    self.path.display(),
                    self.written
                );
            }
        }
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

/// Runs self-directed experiments one after another (`run`, `compare`, `threshold`), each in a
/// fresh group of its own, removed before the next is created, with the kernel's programs
/// loaded once for all of them: each run only points them at its group.
pub struct Runner<'a> {
    kernel: Kernel,
    interrupts: &'a Interrupts,
    inherit: Option<EffectiveLimit>,
}

impl<'a> Runner<'a> {
    /// Starts loading the kernel observer (in the background) unless `options` turn it off.
    pub fn new(options: &RunOptions, interrupts: &'a Interrupts) -> Runner<'a> {
        Runner {
            kernel: Kernel::start(options.trace),
            interrupts,
            inherit: options.inherit.clone(),
        }
    }

    /// One experiment, already [`validate`]d, in a fresh group.
    pub fn run(&mut self, config: &WorkerConfig) -> Result<RunFacts, SupervisorError> {
        self.run_logged(config, None)
    }

    /// [`Runner::run`], every event also written to `log`.
    fn run_logged(
        &mut self,
        config: &WorkerConfig,
        log: Option<&mut EventLog>,
    ) -> Result<RunFacts, SupervisorError> {
        let mut session = Session::for_worker(
            config,
            &mut self.kernel,
            self.interrupts,
            self.inherit.as_ref(),
        )?;
        let incarnation = session.run_worker(config, None, None, log);
        let kernel = session.close();
        let mut facts = incarnation?;
        facts.group.kernel = kernel;
        facts.group.duration = session.start.elapsed();
        Ok(facts)
    }
}

/// Serves the heap over HTTP from a worker in the group until a stop signal. When a worker dies
/// (an OOM kill, or anything else once it has served), hands an OOM kill's facts to `on_oom`,
/// which says it in brief for the next worker to show, or logs anything else, and starts a new
/// one unless `restart` is off. Returns the number of restarts.
pub fn run_interactive(
    config: &WorkerConfig,
    options: &RunOptions,
    interrupts: &Interrupts,
    mut on_oom: impl FnMut(RunFacts) -> OomSummary,
) -> Result<u32, SupervisorError> {
    let Some(interactive) = options.interactive.clone() else {
        return Err(SupervisorError::Usage("not an interactive run".into()));
    };
    validate(config, options)?;
    // Bound by root before any worker exists, so the address survives restarts.
    let listener = std::net::TcpListener::bind(interactive.listen).map_err(|e| {
        SupervisorError::Usage(format!("cannot listen on {}: {e}", interactive.listen))
    })?;
    let addr = listener.local_addr().map_err(SupervisorError::Spawn)?;
    let mut kernel = Kernel::start(options.trace);
    let mut session =
        Session::for_worker(config, &mut kernel, interrupts, options.inherit.as_ref())?;
    let mut feed = Feed {
        tracing: session
            .observer
            .as_ref()
            .map_or_else(String::new, |o| o.tracing_label().to_string()),
        ..Feed::default()
    };
    tracing::info!("serving the heap on http://{addr}/ (Ctrl-C stops)");
    let result = loop {
        // The observer outlives the workers: each report holds its own worker's share.
        let before = session.snapshot();
        let mut facts = match session.run_worker(config, Some(&listener), Some(&mut feed), None) {
            Ok(facts) => facts,
            // A stop signal before the next worker started: the normal end of a session.
            Err(SupervisorError::Interrupted(_)) => break Ok(feed.restarts),
            Err(e) => break Err(e),
        };
        if interrupts.received().is_some() {
            break Ok(feed.restarts);
        }
        facts.group.kernel = match (session.snapshot(), before) {
            (Ok(now), Ok(before)) => Ok(now.since(&before)),
            (now, _) => now,
        };
        let g = &facts.group;
        if g.oom_killed() {
            let summary = on_oom(facts);
            // The kill, on the live page's chart: the group was at its limit.
            feed.history.push(Moment {
                t_unix_ms: unix_ms(),
                cgroup_usage: Some(config.experiment.limit),
                mark: Some(MomentMark::OomKill {
                    died_in: summary.died_in.clone(),
                }),
                ..Moment::default()
            });
            feed.last_oom = Some(summary);
        } else if !facts.ready() {
            // A worker that never served fails the same way again: stop rather than loop.
            break Err(SupervisorError::Worker(format!(
                "the worker failed before it could serve: it {}{}",
                g.exit,
                tail(&facts.stderr_tail)
            )));
        } else {
            tracing::warn!(
                "worker {} {} (not an OOM kill){}",
                facts.pid().map_or("-".into(), |p| p.to_string()),
                g.exit,
                tail(&facts.stderr_tail)
            );
        }
        if !interactive.restart {
            break Ok(feed.restarts);
        }
        feed.restarts += 1;
        feed.history.push(Moment {
            t_unix_ms: unix_ms(),
            mark: Some(MomentMark::Restart {
                worker: feed.restarts + 1,
            }),
            ..Moment::default()
        });
        tracing::info!("starting worker #{} in the same group", feed.restarts + 1);
    };
    // The group's counters carry over between workers; the probe and group go now.
    let _ = session.close();
    result
}

/// The group and the observer of one supervisor run. The observer borrows the invocation's
/// [`Kernel`] (its eBPF programs), so several sessions in turn share one load.
pub(crate) struct Session<'k> {
    hierarchy: Hierarchy,
    group: Group,
    /// The kernel observer; `None` once closed.
    observer: Option<Observer<'k>>,
    /// The experiment's step names: step `steps[i]`'s page faults are counted in slot `i`.
    steps: Vec<String>,
    pub(crate) interrupts: Interrupts,
    pub(crate) start: Instant,
    /// The group's OOM kill count after the last worker ended (when it opened, at first: an
    /// inherited group may have counted kills before).
    oom_kills: u64,
    /// `--inherit`: the file that sets the limit.
    limit_source: Option<PathBuf>,
}

impl<'k> Session<'k> {
    /// The session a worker runs in: the experiment's limit, its steps, its credentials. The
    /// worker's files are read into the page cache first, while `kernel` may still be loading
    /// (their pages stay cached, outside the group, for every worker of the session).
    fn for_worker(
        config: &WorkerConfig,
        kernel: &'k mut Kernel,
        interrupts: &Interrupts,
        inherit: Option<&EffectiveLimit>,
    ) -> Result<Session<'k>, SupervisorError> {
        warm_page_cache();
        Session::open(
            config.experiment.limit,
            inherit,
            config.step_names(),
            &format!("the worker runs as {}", config.run_as),
            kernel,
            interrupts,
        )
    }

    /// A fresh group limited to `limit` with its observer, whose page faults are counted under
    /// `steps` (slot by slot); `who` says in the log what will run in it. The observer uses
    /// `kernel`'s eBPF programs (waiting for them if they are still loading) until the session
    /// closes; one [`Kernel`] serves any number of sessions in turn. With `inherit`, the
    /// session's group is this process's own, under that limit ([`Group::inherit`]): nothing
    /// is created in the memory hierarchy, no stale group is looked for, and the supervisor's
    /// own memory is charged to the same limit.
    pub(crate) fn open(
        limit: u64,
        inherit: Option<&EffectiveLimit>,
        steps: Vec<String>,
        who: &str,
        kernel: &'k mut Kernel,
        interrupts: &Interrupts,
    ) -> Result<Session<'k>, SupervisorError> {
        let start = Instant::now();
        let hierarchy = match inherit {
            None => Hierarchy::discover()?,
            Some(_) => Hierarchy::discover_inherited()?,
        };
        if inherit.is_none() {
            for dir in cgroup::remove_stale(&hierarchy) {
                tracing::info!("removed a group left by an earlier run: {}", dir.display());
            }
        }
        if let Some(sig) = interrupts.received() {
            return Err(SupervisorError::Interrupted(sig));
        }
        let slots =
            SlotNames::new(steps.clone()).map_err(|e| SupervisorError::Worker(e.to_string()))?;
        // From here the group (or, inherited, only its v2 twin) is removed when the session
        // drops, on every path.
        let group = match inherit {
            None => {
                let group = Group::create(&hierarchy, limit)?;
                tracing::info!(
                    "created {} {} with a {} limit and no swap; {who}",
                    hierarchy.version(),
                    group.dir().display(),
                    human(limit),
                );
                group
            }
            Some(l) => {
                let group = Group::inherit(&hierarchy);
                tracing::info!(
                    "running inside {} {} (--inherit) under its {} limit from {}; memspike \
                     itself is a member and shares that limit; {who}",
                    hierarchy.version(),
                    group.dir().display(),
                    human(l.limit),
                    l.source.display(),
                );
                group
            }
        };
        let oom_kills = group.counters().oom_kills.unwrap_or(0);
        let observer = kernel.observe(Target::of(&group), slots);
        tracing::info!("kernel observer: {}", observer.tracing_label());
        Ok(Session {
            hierarchy,
            group,
            observer: Some(observer),
            steps,
            interrupts: interrupts.clone(),
            start,
            oom_kills,
            limit_source: inherit.map(|l| l.source.clone()),
        })
    }

    pub(crate) fn group(&self) -> &Group {
        &self.group
    }

    /// `--inherit`: the file that sets the limit the session runs under.
    pub(crate) fn limit_source(&self) -> Option<&std::path::Path> {
        self.limit_source.as_deref()
    }

    /// The group's OOM kill count now, as the session last took it.
    pub(crate) fn oom_kills(&self) -> u64 {
        self.oom_kills
    }

    pub(crate) fn version(&self) -> cgroup::Version {
        self.hierarchy.version()
    }

    /// The observer's figures so far, or why there are none.
    pub(crate) fn snapshot(&mut self) -> Result<KernelEvidence, String> {
        match &mut self.observer {
            Some(o) => Ok(o.snapshot()),
            None => Err("the observer was closed".to_owned()),
        }
    }

    /// Tells the observer which step the worker's coming page faults belong to (its slot is
    /// its place among the experiment's step names; a name not among them counts as `other`).
    fn set_step(&mut self, step: &str) {
        let slot = self
            .steps
            .iter()
            .position(|s| s == step)
            .map_or(u32::MAX, |i| i as u32);
        if let Some(o) = &mut self.observer {
            o.set_step(slot);
        }
    }

    /// Ends the observer (returning what it saw) and removes the group.
    pub(crate) fn close(&mut self) -> Result<KernelEvidence, String> {
        let kernel = match self.observer.take() {
            Some(o) => Ok(o.finish()),
            None => Err("the observer was closed".to_owned()),
        };
        let name = self.group.name().to_owned();
        match self.group.remove() {
            Ok(()) if self.group.inherited() => {}
            Ok(()) => tracing::info!("removed {name}"),
            Err(e) => tracing::error!("{e}"),
        }
        kernel
    }

    /// The worker's command: the same binary, the hidden `worker` subcommand, joined to the
    /// group between fork and exec. What it runs comes on its stdin (the first control line).
    fn worker_command(
        &self,
        listener: Option<&std::net::TcpListener>,
    ) -> Result<Command, SupervisorError> {
        let exe = std::env::current_exe().map_err(SupervisorError::Spawn)?;
        let mut cmd = Command::new(&exe);
        cmd.arg("worker")
            .env(
                CGROUP_ENV,
                cgroup_env(self.group.dir(), self.group.version()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let listen_fd = listener.map(|l| l.as_raw_fd());
        if let Some(fd) = listen_fd {
            cmd.env(LISTEN_FD_ENV, fd.to_string());
        }
        self.confine(&mut cmd, listen_fd)?;
        Ok(cmd)
    }

    /// Makes `cmd` start inside the session's group (see [`confine`]).
    pub(crate) fn confine(
        &self,
        cmd: &mut Command,
        keep_fd: Option<std::os::fd::RawFd>,
    ) -> Result<(), SupervisorError> {
        confine(&self.group, cmd, keep_fd)
    }

    /// Starts a worker in the group, answers its steps (phase, ack) and, in interactive
    /// mode, keeps it fed; returns when it has exited or been killed. Every event also goes to
    /// `log` as it arrives.
    fn run_worker(
        &mut self,
        config: &WorkerConfig,
        listener: Option<&std::net::TcpListener>,
        mut feed: Option<&mut Feed>,
        mut log: Option<&mut EventLog>,
    ) -> Result<RunFacts, SupervisorError> {
        let mut cmd = self.worker_command(listener)?;
        // A new worker's start-up faults are its own, whatever step the last one ended in.
        self.set_step(STARTUP);
        if let Some(sig) = self.interrupts.received() {
            return Err(SupervisorError::Interrupted(sig));
        }
        let mut child = cmd.spawn().map_err(SupervisorError::Spawn)?;
        let pid = child.id();
        self.interrupts.set_worker(pid as i32);
        tracing::info!("worker {pid} started inside the group");

        let stderr = child.stderr.take().map(collect_stderr);
        let mut control = child.stdin.take();
        // The worker's first line: what to run. A worker that died already cannot read it; its
        // exit says why.
        if let Some(c) = &mut control {
            let start = Control::Start(Box::new(config.clone()));
            if let Err(e) = telemetry::send_control(c, &start) {
                tracing::debug!("could not send the worker its configuration: {e}");
            }
        }
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
        let mut events = History::default();
        let mut series = Thinned::default();
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
            // First: in the file before anything is done about it (or logged).
            if let Some(log) = log.as_deref_mut() {
                log.write(&event);
            }
            if let Some((step, ack)) = phase_change(&mut gate, &event.kind) {
                self.set_step(step);
                // A worker that is already dead cannot read the ack: nothing to do then.
                if let (true, Some(c)) = (ack, &mut control) {
                    let _ = telemetry::send_control(c, &Control::Ack);
                }
            }
            match event.kind {
                Kind::Ready { .. } => {
                    if let Some(feed) = feed.as_deref_mut() {
                        self.send_feed(feed, &mut control);
                    }
                }
                Kind::Paused { ref phase } => tracing::info!(
                    "worker {pid} paused before {phase}: inspect {}, then `kill -CONT {pid}`",
                    self.group.dir().display(),
                ),
                _ => {}
            }
            if let Some(feed) = feed.as_deref_mut() {
                feed.history.push(Moment {
                    t_unix_ms: unix_ms(),
                    heap_alloc: Some(event.heap.heap_alloc()),
                    next_gc: event.heap.next_gc,
                    cgroup_usage: event.cgroup_usage_bytes,
                    mark: None,
                });
            }
            series.push(event.clone());
            events.record(event, !config.interactive);
        }
        if failure.is_some() {
            // The worker must be reaped before its group can go.
            signals::kill(pid as i32);
        }
        drop(control);
        let status = child.wait().map_err(SupervisorError::Spawn)?;
        self.interrupts.set_worker(0);
        if let Some(e) = failure {
            return Err(SupervisorError::Telemetry(e));
        }
        let stderr_tail = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
        let oom_kills_before = self.oom_kills;
        let counters = self.group.counters();
        self.oom_kills = counters.oom_kills.unwrap_or(oom_kills_before);
        let facts = RunFacts {
            group: GroupFacts {
                limit_bytes: config.experiment.limit,
                limit_source: self.limit_source.clone(),
                version: self.group.version(),
                name: self.group.name().to_owned(),
                exit: exit_of(status),
                counters,
                oom_kills_before,
                kernel: Err("not collected yet".into()),
                stop_signal: self.interrupts.received().map(signal),
                duration: self.start.elapsed(),
            },
            experiment: config.experiment.clone(),
            interactive: config.interactive,
            events,
            series: series.into_vec(),
            stderr_tail,
        };
        if !facts.ready() && facts.group.oom_killed() {
            return Err(SupervisorError::Usage(format!(
                "--limit {} is below what the worker itself needs: it was OOM-killed while \
                 starting, before its first allocation (peak {}); raise the limit",
                human(config.experiment.limit),
                facts
                    .group
                    .counters
                    .peak_bytes
                    .map_or("unknown".into(), |p| human(p).to_string())
            )));
        }
        Ok(facts)
    }

    /// Sends the worker what only the supervisor knows (restarts, last OOM, kernel counters).
    fn send_feed(&mut self, feed: &mut Feed, control: &mut Option<ChildStdin>) {
        if let Ok(k) = self.snapshot() {
            feed.page_faults = k.all_faults().map(|f| f.total);
            feed.reclaim_stalls = k.reclaim.as_ref().map(|r| r.stalls);
            feed.reclaim_ns = k.reclaim.map(|r| r.total_ns);
        }
        if let Some(c) = control {
            let _ = telemetry::send_control(c, &Control::Feed(feed.clone()));
        }
    }
}

/// Makes `cmd` start inside `group`: between fork and exec the child arms its parent-death
/// signal, checks that this process is still its parent, keeps `keep_fd` open across exec,
/// joins the group and unblocks the stop signals.
pub(crate) fn confine(
    group: &Group,
    cmd: &mut Command,
    keep_fd: Option<std::os::fd::RawFd>,
) -> Result<(), SupervisorError> {
    let joiner = group.joiner()?;
    let listen_fd = keep_fd;
    // The worker's parent-death signal fires when the *thread* that forked it ends: this
    // runs on the supervisor's main thread, which lives as long as the process.
    let supervisor = Pid::this();
    let stop_before_exec = std::env::var_os(TEST_STOP_BEFORE_EXEC_ENV).is_some();
    // Runs in the forked child before exec: only async-signal-safe calls, through nix's thin
    // wrappers, which allocate nothing (their errors are errnos, and an io::Error made from
    // one is a raw OS error): raise, prctl, getppid, fcntl, open/write/close inside
    // Joiner::join_current (its paths were prepared before the fork) and pthread_sigmask.
    let in_child = move || -> io::Result<()> {
        if stop_before_exec {
            let _ = raise(Signal::SIGSTOP);
        }
        // Die with the supervisor: no stray worker if it is killed...
        prctl::set_pdeathsig(Signal::SIGKILL)?;
        // ...including when it died before the line above.
        if getppid() != supervisor {
            return Err(Errno::ESRCH.into());
        }
        // Keep the listening socket open across exec (std opens it close-on-exec).
        if let Some(fd) = listen_fd {
            // SAFETY: `fd` is the listening socket the caller keeps open until the child has
            // been spawned; the child's copy of it is open for this call.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
        }
        joiner
            .join_current()
            .map_err(io::Error::from_raw_os_error)?;
        // Last: a stop signal sent to this pid since the fork is delivered now, with
        // its default action, inside the group.
        signals::unblock().map_err(io::Error::from_raw_os_error)
    };
    // SAFETY: `in_child` makes only async-signal-safe calls and allocates nothing (above).
    unsafe {
        cmd.pre_exec(in_child);
    }
    Ok(())
}

/// The step the observer counts the worker's coming faults under after this event, and
/// whether the worker waits for an acknowledgement: a `begin` that opens a step (the
/// [`PhaseGate`] rule, which the worker follows too) is set, then acknowledged; once the
/// scenario is `done`, what the process does until it exits is `done`'s.
fn phase_change<'a>(gate: &mut PhaseGate, kind: &'a Kind) -> Option<(&'a str, bool)> {
    match kind {
        Kind::Begin { phase, .. } if gate.begin(phase) => Some((phase, true)),
        Kind::Done => Some((DONE, false)),
        _ => None,
    }
}

/// `: <the worker's last stderr>`, or nothing when it wrote none.
fn tail(stderr: &str) -> String {
    match stderr.trim() {
        "" => String::new(),
        t => format!(": {t}"),
    }
}

/// How often an interactive worker hears the kernel's counters.
const FEED_PERIOD: Duration = Duration::from_millis(500);

/// Now, in ms since the Unix epoch: the live page's clock.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use memspike_model::{event::HeapStats, scenario::ActionKind};

    /// Each event is in the file once written, before the next: a run killed half-way leaves
    /// every event it had. An existing log is emptied first.
    #[test]
    fn the_event_log_has_each_event_as_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVENT_LOG);
        std::fs::write(&path, "an earlier run's line\n").unwrap();
        let mut log = EventLog::create(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        for i in 0..3u64 {
            let event = Event {
                t_ns: i,
                sim_ns: i,
                cgroup_usage_bytes: None,
                step: 0,
                kind: Kind::Ready { pid: i as u32 },
                heap: HeapStats::default(),
            };
            log.write(&event);
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<Event> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len() as u64, i + 1, "{text}");
            assert_eq!(lines.last(), Some(&event));
        }
        assert_eq!(log.written(), 3);
        // A directory that is not one is a usage error, said once.
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = EventLog::create(&file).err().unwrap();
        assert!(e.to_string().contains("cannot write events.jsonl"), "{e}");
    }

    #[test]
    fn a_step_is_set_when_it_opens_and_done_after_the_script() {
        let begin = |phase: &str| Kind::Begin {
            phase: phase.to_owned(),
            action: ActionKind::Alloc,
            bytes: 1,
        };
        let mut gate = PhaseGate::default();
        let (spike, remainder) = (begin("spike"), begin("remainder"));
        assert_eq!(phase_change(&mut gate, &spike), Some(("spike", true)));
        assert_eq!(phase_change(&mut gate, &spike), None);
        assert_eq!(
            phase_change(&mut gate, &remainder),
            Some(("remainder", true))
        );
        assert_eq!(phase_change(&mut gate, &Kind::Done), Some(("done", false)));
        assert_eq!(phase_change(&mut gate, &Kind::Ready { pid: 1 }), None);
    }
}
