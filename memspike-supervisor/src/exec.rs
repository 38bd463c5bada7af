//! A real program under the same microscope as the simulation: one run of a command in a fresh
//! limited group (the same group, observer and clean-up as `run`), joined before exec, under
//! memspike's environment and, for `compare -- CMD` and `threshold -- CMD`, a policy given
//! through it. `exec` runs it once; [`ProgramRunner`] runs it as often as asked. Its stdin,
//! stdout and stderr are as [`Output`] says, and stop signals are passed on to it.
//!
//! While it runs, the supervisor samples the group's usage and `memory.stat` every
//! [`SAMPLE_PERIOD`] and takes the kernel observer's counts every time bucket, so page faults and
//! reclaim are split by time. A runtime whose trace memspike can read ([`memspike_model::trace`]: Go's
//! `GODEBUG=gctrace=1`) is asked to print it, and its cycles join the timeline.

use std::{
    collections::BTreeSet,
    ffi::OsString,
    io::{self, BufRead, BufReader, Read, Write},
    os::fd::{AsFd, OwnedFd},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;

use memspike_cgroup::{EffectiveLimit, sampler::Sampler};
use memspike_model::{
    policy::{Policy, Runtime},
    trace::{
        self, Invocation, PolicyVar, RuntimeTrace, gogc_from_env,
        jvm::{self, NativeTracking},
    },
};
use memspike_probe::{Kernel, KernelEvidence};
use memspike_report::facts::{
    Bucket, ExecFacts, GroupFacts, Reading, TimedCycle, Timeline,
    exec::{FIRST_BUCKET, SAMPLE_PERIOD},
};

use crate::{
    attach,
    preflight::{self, UsageError},
    signals::{Interrupts, exit_of, signal},
    supervisor::{Session, SupervisorError},
};

/// What to run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExecConfig {
    pub limit: u64,
    /// `--inherit`: run in memspike's own group under this limit (`limit` is its bytes).
    pub inherit: Option<EffectiveLimit>,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Start from [`CLEAN_ENV`] instead of memspike's whole environment.
    pub clean_env: bool,
    /// The policy the runtime is given through its environment (`compare -- CMD`), and the
    /// variables that give it.
    pub policy: Option<(Policy, Vec<PolicyVar>)>,
    /// Where the command's own output goes.
    pub output: Output,
    /// Whose runtime trace to read (`--trace`).
    pub trace: trace::TraceChoice,
}

/// Where a command's stdout and stderr go. Its stderr is always read for the runtime's trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Output {
    /// Both are the command's own: stdout memspike's stdout, stderr copied to memspike's.
    Own,
    /// Both go to memspike's stderr, so that memspike's stdout holds its report alone.
    Stderr,
    /// Neither is shown, and its stdin is empty (many runs of one command: `compare`,
    /// `threshold`); the end of its stderr is kept.
    Quiet,
}

/// The variables a command gets from memspike's environment with `--clean-env`: enough to
/// run (and the runtime's trace setting, which memspike adds).
pub const CLEAN_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TERM"];

/// The command's program: a path, or a name found on `PATH`, executable (`which` judges an
/// executable file as exec would: a regular file the kernel lets this process execute).
pub fn resolve(program: &str, path: Option<&std::ffi::OsStr>) -> Result<PathBuf, UsageError> {
    let found = if program.contains('/') {
        // A path is used as given (as execvp does), not searched for; `which` checks it.
        which::which_in(program, None::<&std::ffi::OsStr>, ".")
            .ok()
            .map(|_| PathBuf::from(program))
    } else {
        which::which_in_global(program, path)
            .ok()
            .and_then(|mut found| found.next())
    };
    found.ok_or_else(|| UsageError::Command(program.to_owned()))
}

/// The command's environment: memspike's (all of it, or [`CLEAN_ENV`]), with the policy's
/// variables set and the runtime's trace turned on; and those it set, as `NAME=value`.
fn environment(
    config: &ExecConfig,
    tracer: &mut dyn RuntimeTrace,
) -> (Vec<(OsString, OsString)>, Vec<String>) {
    let env = inherited_env(config.clean_env);
    let vars = config.policy.iter().flat_map(|(_, vars)| vars.iter());
    let mut env = vars.fold(env, set);
    let lookup = |var: &str| value_of(&env, var);
    let mut names: Vec<String> = config
        .policy
        .iter()
        .flat_map(|(_, vars)| vars.iter().map(|v| v.name.clone()))
        .collect();
    if let Some((name, value)) = tracer.env(&lookup) {
        env.retain(|(k, _)| *k != *name);
        env.push((name.clone().into(), value.into()));
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let set = names
        .iter()
        .filter_map(|name| {
            let (_, value) = env.iter().find(|(k, _)| k == name.as_str())?;
            Some(format!("{name}={}", value.to_string_lossy()))
        })
        .collect();
    (env, set)
}

/// What the command gets of memspike's environment: all of it, or with `clean_env`
/// [`CLEAN_ENV`].
fn inherited_env(clean_env: bool) -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| !clean_env || CLEAN_ENV.iter().any(|p| k == p))
        .collect()
}

/// The reader of the trace of `config`'s command's runtime (`--trace`, or the one its
/// program's name says).
pub fn tracer(config: &ExecConfig) -> Box<dyn RuntimeTrace> {
    let name = config
        .command
        .first()
        .and_then(|program| Path::new(program).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    config.trace.tracer(name)
}

/// The variables that give `config`'s command `policy` under a group of `limit` bytes, as its
/// runtime takes them from the environment it starts with; or why it cannot.
pub fn policy_vars(
    config: &ExecConfig,
    policy: &Policy,
    limit: u64,
) -> Result<Vec<PolicyVar>, String> {
    with_program(config, |trace, program| {
        trace.policy_env(policy, limit, program)
    })
}

/// `f` of the reader of `config`'s command's runtime and how the command starts (its
/// arguments, and the environment it gets before memspike's variables).
pub fn with_program<T>(
    config: &ExecConfig,
    f: impl FnOnce(&dyn RuntimeTrace, &Invocation) -> T,
) -> T {
    let env = inherited_env(config.clean_env);
    let lookup = |var: &str| value_of(&env, var);
    let program = Invocation {
        args: config.command.get(1..).unwrap_or_default(),
        env: &lookup,
    };
    f(tracer(config).as_ref(), &program)
}

/// `env` with `var` set: in place of the variable's value, or, for a list, after it.
fn set(mut env: Vec<(OsString, OsString)>, var: &PolicyVar) -> Vec<(OsString, OsString)> {
    let old = env
        .iter()
        .position(|(k, _)| k == var.name.as_str())
        .map(|i| env.remove(i).1);
    let value = match old {
        Some(old) if var.append && !old.is_empty() => {
            let mut v = old;
            v.push(",");
            v.push(&var.value);
            v
        }
        _ => OsString::from(&var.value),
    };
    env.push((var.name.clone().into(), value));
    env
}

/// The value of `var` in a command's environment, when it is text.
fn value_of(env: &[(OsString, OsString)], var: &str) -> Option<String> {
    env.iter()
        .find(|(k, _)| k == var)
        .and_then(|(_, v)| v.to_str().map(str::to_owned))
}

/// Checks the command before anything is created.
pub fn validate(config: &ExecConfig, report_dir: Option<&Path>) -> Result<PathBuf, UsageError> {
    preflight::check_limit(config.limit, preflight::Memory::read())?;
    let program = config
        .command
        .first()
        .ok_or_else(|| UsageError::Command(String::new()))?;
    let resolved = resolve(program, std::env::var_os("PATH").as_deref())?;
    if let Some(dir) = report_dir {
        preflight::check_report_dir(dir)?;
    }
    Ok(resolved)
}

/// Runs the command in a fresh group and returns what happened. Stop signals received through
/// `interrupts` are passed on to the command, which ends as it will.
pub fn run(
    config: &ExecConfig,
    trace_kernel: bool,
    report_dir: Option<&Path>,
    interrupts: &Interrupts,
) -> Result<ExecFacts, SupervisorError> {
    validate(config, report_dir)?;
    ProgramRunner::new(trace_kernel, interrupts).run(config)
}

/// Runs commands one after the other, each in a fresh group (or in memspike's own, with
/// `--inherit`), under one kernel observer: what `exec` runs once and `compare -- CMD` and
/// `threshold -- CMD` run many times.
pub struct ProgramRunner<'a> {
    kernel: Kernel,
    interrupts: &'a Interrupts,
}

impl<'a> ProgramRunner<'a> {
    pub fn new(trace_kernel: bool, interrupts: &'a Interrupts) -> ProgramRunner<'a> {
        ProgramRunner {
            kernel: Kernel::start(trace_kernel),
            interrupts,
        }
    }

    /// One run of `config`'s command (checked by [`validate`] first).
    pub fn run(&mut self, config: &ExecConfig) -> Result<ExecFacts, SupervisorError> {
        let program = resolve(&config.command[0], std::env::var_os("PATH").as_deref())?;
        let mut session = Session::open(
            config.limit,
            config.inherit.as_ref(),
            vec!["command".to_owned()],
            "the command runs with memspike's credentials",
            &mut self.kernel,
            self.interrupts,
        )?;
        let facts = run_in(&mut session, config, &program);
        let kernel = session.close();
        let mut facts = facts?;
        facts.group.kernel = kernel;
        Ok(facts)
    }
}

fn run_in(
    session: &mut Session,
    config: &ExecConfig,
    program: &Path,
) -> Result<ExecFacts, SupervisorError> {
    let mut tracer = tracer(config);
    let (env, environment) = environment(config, tracer.as_mut());
    let lookup = |var: &str| value_of(&env, var);
    let invocation = Invocation {
        args: &config.command[1..],
        env: &lookup,
    };
    if let Some(warning) = tracer.warning(&invocation, config.limit)
        && first_time(&warning)
    {
        tracing::warn!("{warning}");
    }
    let native = match tracer.runtime() {
        Some(Runtime::Jvm) => jvm::native_tracking(&invocation),
        _ => NativeTracking::Off,
    };
    if let NativeTracking::Closed(why) = native {
        let warning = format!(
            "Native Memory Tracking is on, but memspike will not ask the JVM for it: {why}"
        );
        if first_time(&warning) {
            tracing::warn!("{warning}");
        }
    }
    // Where the command's stdout goes; it is read, and passed on there, when the runtime
    // traces on it (V8).
    let stdout_sink = match config.output {
        Output::Own => Sink::Stdout,
        Output::Stderr => Sink::Stderr,
        Output::Quiet => Sink::Nowhere,
    };
    let traced_stdout = tracer.on_stdout();
    let gogc = gogc_from_env(value_of(&env, "GOGC").as_deref());
    let leading = tracer.leading_args(&config.command[1..]);
    if !leading.is_empty() {
        let note = format!(
            "{} gets {} ahead of its arguments: its runtime's trace",
            config.command[0],
            leading.join(" ")
        );
        if first_time(&note) {
            tracing::info!("{note}");
        }
    }
    let mut cmd = Command::new(program);
    cmd.args(&leading)
        .args(&config.command[1..])
        .env_clear()
        .envs(env)
        // Many runs of one command (`Quiet`) each start from no input, alike.
        .stdin(match config.output {
            Output::Quiet => Stdio::null(),
            Output::Own | Output::Stderr => Stdio::inherit(),
        })
        .stdout(match config.output {
            _ if traced_stdout => Stdio::piped(),
            Output::Own => Stdio::inherit(),
            Output::Stderr => io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .map_or_else(|_| Stdio::null(), Stdio::from),
            Output::Quiet => Stdio::null(),
        })
        .stderr(Stdio::piped());
    session.confine(&mut cmd, None)?;
    let mut sampler = Sampler::open(session.group().dir(), session.group().version())
        .map_err(SupervisorError::Spawn)?;
    let interrupts = session.interrupts.clone();
    if let Some(sig) = interrupts.received() {
        return Err(SupervisorError::Interrupted(sig));
    }
    interrupts.set_forward(true);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(SupervisorError::Spawn)?;
    let pid = child.id();
    // The pid the kernel's OOM victim record will carry (differs inside a PID namespace).
    let kernel_pid = memspike_cgroup::pidns::procfs_pid(pid);
    interrupts.set_worker(pid as i32);
    tracing::info!("command {pid} started inside the group");
    // The trace's relay reads the group as it reads each cycle's end, through files of its
    // own. Stderr is always relayed, its tail kept; stdout too when the trace is there.
    let mut ends = CycleEnds {
        group: Sampler::open(session.group().dir(), session.group().version()).ok(),
        go_heap_of: (tracer.runtime() == Some(Runtime::Go))
            .then(|| (PathBuf::from(format!("/proc/{pid}/smaps")), HEAP_READINGS)),
    };
    let stderr_sink = match config.output {
        Output::Quiet => Sink::Nowhere,
        Output::Own | Output::Stderr => Sink::Stderr,
    };
    let (stderr_tracer, stdout_relay): (Box<dyn RuntimeTrace>, _) = if traced_stdout {
        let stdout = child.stdout.take();
        let relayed = stdout.map(|out| {
            relay(
                out,
                tracer,
                started,
                stdout_sink,
                false,
                std::mem::take(&mut ends),
            )
        });
        (Box::new(trace::NoTrace), relayed)
    } else {
        (tracer, None)
    };
    let stderr_relay = child
        .stderr
        .take()
        .map(|err| relay(err, stderr_tracer, started, stderr_sink, true, ends));

    let mut timeline = Timeline::new();
    // The group as the command started: with the reading at its end, every timeline has at
    // least two samples, however short the command's life.
    timeline.sample(started.elapsed().as_millis() as u64, sampler.read());
    let native_sampler =
        (native == NativeTracking::Ask).then(|| attach::NativeSampler::start(pid, started));
    let exited = pidfd(pid);
    let mut bucket_start = Duration::ZERO;
    let mut last = session.snapshot().ok().map(|k| totals(&k));
    loop {
        let done = match &exited {
            Ok(fd) => wait_readable(fd, SAMPLE_PERIOD),
            // Without a pidfd (kernels before 5.3): poll the child.
            Err(_) => {
                thread::sleep(SAMPLE_PERIOD);
                child.try_wait().ok().flatten().is_some()
            }
        };
        let now = started.elapsed();
        let reading = sampler.read();
        if done {
            timeline.end(now.as_millis() as u64, reading);
        } else {
            timeline.sample(now.as_millis() as u64, reading);
        }
        if done || now >= bucket_start + FIRST_BUCKET {
            let current = session.snapshot().ok().map(|k| totals(&k));
            timeline.bucket(delta(bucket_start, last, current));
            last = current;
            bucket_start = now;
        }
        if done {
            break;
        }
    }
    // The command's own wall time: from its start to the moment its exit was seen.
    let wall = started.elapsed();
    // Before the command is reaped, while its pid is still its own.
    let native_memory = native_sampler
        .map(attach::NativeSampler::finish)
        .and_then(|read| {
            read.map_err(|why| tracing::warn!("no Native Memory Tracking summary: {why}"))
                .ok()
        });
    // The command has exited (the loop ends only then): no signal may go to its pid once it is
    // reaped and could be reused.
    interrupts.set_worker(0);
    interrupts.set_forward(false);
    let status = child.wait().map_err(SupervisorError::Spawn)?;
    // What the command left behind in its own group (a daemon) dies with it, as the group's
    // removal would have it: its stderr, which the relay reads, then closes.
    session.group().kill_members();
    let mut relayed = stderr_relay.map(Relay::finish).unwrap_or_default();
    if let Some(traced) = stdout_relay.map(Relay::finish) {
        relayed = Relayed {
            tail: relayed.tail,
            out_of_heap: relayed.out_of_heap,
            ..traced
        };
    }
    Ok(ExecFacts {
        group: GroupFacts {
            limit_bytes: config.limit,
            limit_source: session.limit_source().map(Path::to_path_buf),
            version: session.version(),
            name: session.group().name().to_owned(),
            exit: exit_of(status),
            counters: session.group().counters(),
            oom_kills_before: session.oom_kills(),
            kernel: Err("not collected yet".into()),
            stop_signal: interrupts.received().map(signal),
            duration: wall,
        },
        command: config.command.clone(),
        pid: kernel_pid,
        gogc,
        go_version: go_version(program),
        policy: config.policy.as_ref().map(|(p, _)| p.clone()),
        environment,
        runtime: relayed.runtime.map(str::to_owned),
        heap_limit_bytes: relayed.heap_limit,
        native_memory,
        cycles: relayed.cycles,
        stderr_tail: relayed.tail,
        out_of_heap: relayed.out_of_heap,
        timeline,
    })
}

/// Page faults (every one: user and kernel mode), reclaim stalls and their time, so far.
type Totals = (Option<u64>, Option<u64>, Option<u64>);

fn totals(k: &KernelEvidence) -> Totals {
    (
        k.all_faults().map(|f| f.total),
        k.reclaim.as_ref().map(|r| r.stalls),
        k.reclaim.as_ref().map(|r| r.total_ns),
    )
}

fn delta(t: Duration, before: Option<Totals>, now: Option<Totals>) -> Bucket {
    let d = |b: Option<u64>, n: Option<u64>| Some(n?.saturating_sub(b.unwrap_or(0)));
    let (b, n) = (before.unwrap_or_default(), now.unwrap_or_default());
    Bucket {
        t_ms: t.as_millis() as u64,
        page_faults: d(b.0, n.0),
        reclaim_stalls: d(b.1, n.1),
        reclaim_ns: d(b.2, n.2),
    }
}

/// What the command's output said: the runtime recognised, its cycles and its heap's ceiling,
/// and the last lines of stderr.
#[derive(Default)]
struct Relayed {
    runtime: Option<&'static str>,
    cycles: Vec<TimedCycle>,
    heap_limit: Option<u64>,
    tail: String,
    /// The line where the runtime said its own heap's limit ended the program.
    out_of_heap: Option<String>,
}

/// Where a relayed stream's lines go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sink {
    Stdout,
    Stderr,
    Nowhere,
}

/// The end of the command's stderr kept in its facts.
const TAIL_BYTES: usize = 2048;

/// The thread reading the command's stderr, and what it has read so far.
struct Relay {
    read: Arc<Mutex<Relayed>>,
    done: mpsc::Receiver<()>,
}

/// How long the relay may go on after the command exits: its stderr closes then, unless a
/// process it started (in an inherited group, where memspike kills nothing) still holds it.
const RELAY_GRACE: Duration = Duration::from_secs(2);

impl Relay {
    /// What the relay read: all of it once the stderr closed, or what it had when
    /// [`RELAY_GRACE`] passed after the command's exit.
    fn finish(self) -> Relayed {
        if self.done.recv_timeout(RELAY_GRACE).is_err() {
            tracing::warn!(
                "a process the command left still holds its stderr: lines after its exit are not read"
            );
        }
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *read)
    }
}

/// Reads one of the command's streams line by line: passes it on to `sink` unchanged, reads
/// the runtime's trace out of it (and, with each cycle, what `ends` reads), and, when it is the command's
/// `stderr`, keeps its last [`TAIL_BYTES`] of other lines and the line where the runtime said it
/// ran out of heap.
fn relay(
    stream: impl Read + Send + 'static,
    mut tracer: Box<dyn RuntimeTrace>,
    started: Instant,
    sink: Sink,
    stderr: bool,
    mut ends: CycleEnds,
) -> Relay {
    let read = Arc::new(Mutex::new(Relayed::default()));
    let (tell, done) = mpsc::channel();
    let shared = Arc::clone(&read);
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        // What was read at the last line, when that line marked the end of a cycle's marking
        // ([`RuntimeTrace::marks_end`]): the reading of the cycle line that follows it.
        let mut at_end = None;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let ended = at_end.take();
            if tracer.marks_end(&text) {
                at_end = Some(ends.read());
            }
            let echoes = tracer.echoes(&text);
            if echoes {
                let _ = match sink {
                    Sink::Stdout => pass_on(io::stdout().lock(), &line),
                    Sink::Stderr => pass_on(io::stderr().lock(), &line),
                    Sink::Nowhere => Ok(()),
                };
            }
            let mut relayed = shared.lock().unwrap_or_else(|e| e.into_inner());
            if stderr && relayed.out_of_heap.is_none() && trace::out_of_heap(&text).is_some() {
                relayed.out_of_heap = Some(text.trim_end().to_owned());
            }
            match tracer.parse_line(text.trim_end()) {
                Some(cycle) => {
                    let end = ended.unwrap_or_else(|| ends.read());
                    tracing::debug!(?end, "read at a cycle's end");
                    let with_group = end.smaps.filter(|_| end.paired);
                    relayed.cycles.push(TimedCycle {
                        read_ms: started.elapsed().as_secs_f64() * 1e3,
                        cycle,
                        group: end.group,
                        heap_resident_bytes: with_group.map(|r| r.heap_bytes),
                        anonymous_bytes: with_group.map(|r| r.anonymous_bytes),
                        runtime_mapped_bytes: end.smaps.map(|r| r.runtime_mapped_bytes),
                        heap_arenas: end.smaps.map(|r| r.heap_arenas),
                    });
                    relayed.runtime = Some(tracer.name());
                }
                None if echoes && stderr => keep_tail_of(&mut relayed.tail, &text),
                None => {}
            }
            relayed.heap_limit = tracer.heap_limit();
        }
        let _ = tell.send(());
    });
    Relay { read, done }
}

/// Whether this memspike has not said `message` yet (and from now on, it has): `compare` and
/// `threshold` run one command many times, and what is said of the command before each run is
/// the same each time.
fn first_time(message: &str) -> bool {
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    SAID.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(message.to_owned())
}

/// What the relay reads as a cycle ends, at once: the group, and a Go program's smaps (its
/// heap's resident pages, which `memspike exec`'s profile sets against the group's charge read
/// at the same moment, and the size of the runtime's mappings).
#[derive(Default)]
struct CycleEnds {
    group: Option<Sampler>,
    /// The Go program's `/proc/PID/smaps`, and how many more times it may be read: each
    /// reading costs a read of it whole, and the profile needs the first few cycles.
    go_heap_of: Option<(PathBuf, u32)>,
}

/// How many cycles of a Go program have their heap's resident pages read.
const HEAP_READINGS: u32 = 256;

/// What was read at one cycle's end.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct CycleEnd {
    group: Option<Reading>,
    /// The Go program's smaps, where read.
    smaps: Option<trace::go::Resident>,
    /// Whether `group` was read with the smaps, the group not shrinking meanwhile: only then
    /// may the heap's resident pages be set against the group's charge.
    paired: bool,
}

impl CycleEnds {
    /// The group, the smaps, and the group again. Pages the program writes meanwhile (it runs
    /// on while a cycle's own line is read) are charged but not counted as heap, so the
    /// second reading errs high, never low, and the profile's smallest is one read with the
    /// world stopped. A group that shrank meanwhile (the program exiting, or returning memory)
    /// is not paired with the smaps: its first reading stands alone.
    fn read(&mut self) -> CycleEnd {
        let before = self.group.as_mut().map(Sampler::read);
        let smaps = match &mut self.go_heap_of {
            Some((smaps, left)) if *left > 0 => {
                *left -= 1;
                std::fs::read_to_string(smaps)
                    .ok()
                    .and_then(|smaps| trace::go::resident(&smaps))
            }
            _ => None,
        };
        let unpaired = CycleEnd {
            group: before,
            smaps,
            paired: false,
        };
        if smaps.is_none() {
            return unpaired;
        }
        let after = self.group.as_mut().map(Sampler::read);
        let usage = |r: Option<Reading>| r.and_then(|r| r.usage_bytes);
        match (usage(before), usage(after)) {
            (Some(b), Some(a)) if a + CHARGE_BATCH >= b => CycleEnd {
                group: after,
                smaps,
                paired: true,
            },
            _ => unpaired,
        }
    }
}

/// How far the group's usage may seem to fall between two readings while nothing is
/// returned: the kernel charges pages in batches of 64 per CPU (256 KiB), uncharging alike.
const CHARGE_BATCH: u64 = 256 << 10;

/// Writes a line to `out` at once.
fn pass_on(mut out: impl Write, line: &[u8]) -> io::Result<()> {
    out.write_all(line)?;
    out.flush()
}

/// Appends `line` to `tail`, dropping whole lines from its front past [`TAIL_BYTES`] (and the
/// front of a line longer than that).
fn keep_tail_of(tail: &mut String, line: &str) {
    tail.push_str(line);
    while tail.len() > TAIL_BYTES {
        match tail.find('\n') {
            Some(i) if i + 1 < tail.len() => {
                tail.drain(..=i);
            }
            _ => {
                let cut = tail.len() - TAIL_BYTES;
                let cut = (cut..tail.len())
                    .find(|&i| tail.is_char_boundary(i))
                    .unwrap_or(0);
                tail.drain(..cut);
            }
        }
    }
}

/// The Go version in `program`'s build information (its `.go.buildinfo` section, read alone),
/// `None` for anything but a Go binary of go1.18 or later.
fn go_version(program: &Path) -> Option<String> {
    use object::{Object, ObjectSection};
    let cache = object::ReadCache::new(std::fs::File::open(program).ok()?);
    let binary = object::File::parse(&cache).ok()?;
    let section = binary.section_by_name(".go.buildinfo")?;
    trace::go::build_version(section.data().ok()?)
}

/// A descriptor that becomes readable when `pid` exits (`pidfd_open`, Linux 5.3; rustix's
/// wrapper, as nix has none).
fn pidfd(pid: u32) -> io::Result<OwnedFd> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Waits up to `timeout` for `fd` to be readable; true when it is.
fn wait_readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's gofmt is a Go binary: its build information names its Go version; a shell
    /// is not one.
    #[test]
    fn a_go_binary_names_its_version() {
        let gofmt = Path::new("/usr/bin/gofmt");
        if !gofmt.exists() {
            assert!(!memspike_testkit::under_ci(), "CI needs gofmt (golang-go)");
            memspike_testkit::skip("a Go binary's version", "no /usr/bin/gofmt");
            return;
        }
        let v = go_version(gofmt).expect("gofmt's build information");
        assert!(v.starts_with("go1."), "{v}");
        assert_eq!(go_version(Path::new("/bin/sh")), None);
        assert_eq!(go_version(Path::new("/nonexistent")), None);
    }

    /// Each `read` first sets the fake group's usage to the line's figure, then hands over
    /// the line: the usage a reading finds tells which line it was read at.
    struct Lines {
        lines: Vec<(&'static str, u64)>,
        usage: PathBuf,
    }

    impl io::Read for Lines {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.lines.is_empty() {
                return Ok(0);
            }
            let (line, usage) = self.lines.remove(0);
            std::fs::write(&self.usage, format!("{usage}\n"))?;
            buf[..line.len()].copy_from_slice(line.as_bytes());
            Ok(line.len())
        }
    }

    /// The group is read for a cycle at the pacer's line, printed as its marking ended, not
    /// at the cycle's own line, printed after the program started again (issue 18: read late,
    /// go1.19's calibration counted what the program allocated meanwhile as outside its
    /// heap); a cycle whose line does not follow one is read at its line.
    #[test]
    fn a_cycle_is_read_where_its_marking_ended() {
        const PACER: &str = "pacer: 25% CPU (25 exp.) for 89856+16576+4436144 B work (4541824 B exp.) in 44270280 B -> 45318864 B (∆goal 600160, cons/mark +0.000000e+000)\n";
        const CYCLE: &str = "gc 2 @0.034s 1%: 0.048+1.1+0.049 ms clock, 0.096+0/0.36/0.60+0.098 ms cpu, 42->43->24 MB, 42 MB goal, 0 MB stacks, 4 MB globals, 2 P\n";
        let dir = tempfile::tempdir().unwrap();
        let usage = dir.path().join("memory.usage_in_bytes");
        std::fs::write(&usage, "0\n").unwrap();
        std::fs::write(dir.path().join("memory.stat"), "cache 0\nrss 0\n").unwrap();
        let group = Sampler::open(dir.path(), memspike_cgroup::Version::V1).unwrap();
        let lines = Lines {
            lines: vec![
                (PACER, 100),
                (CYCLE, 110),
                (CYCLE, 120),
                (PACER, 130),
                ("the program's own line\n", 140),
                (CYCLE, 150),
            ],
            usage,
        };
        let mut trace = trace::go::GoTrace::default();
        trace.env(&|_| None);
        let relayed = relay(
            lines,
            Box::new(trace),
            Instant::now(),
            Sink::Nowhere,
            true,
            CycleEnds {
                group: Some(group),
                go_heap_of: None,
            },
        )
        .finish();
        let read: Vec<_> = relayed
            .cycles
            .iter()
            .map(|c| c.group.and_then(|g| g.usage_bytes))
            .collect();
        assert_eq!(read, [Some(100), Some(120), Some(150)]);
        assert_eq!(
            relayed.cycles[0].cycle.go.map(|g| g.heap_end_bytes),
            Some(45_318_864)
        );
    }

    /// Issue 18: a Go program's cycle is read with its heap's resident pages (its smaps,
    /// here go1.21's fixture), the group read after them; a program whose smaps holds no heap
    /// (or no longer exists) gives none, and a limited number of readings is taken.
    #[test]
    fn a_go_cycles_end_is_read_with_its_heaps_resident_pages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.usage_in_bytes"), "50000000\n").unwrap();
        std::fs::write(dir.path().join("memory.stat"), "cache 0\nrss 0\n").unwrap();
        let smaps = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../memspike-model/src/trace/testdata/go1.21.smaps");
        let mut ends = CycleEnds {
            group: Sampler::open(dir.path(), memspike_cgroup::Version::V1).ok(),
            go_heap_of: Some((smaps, 2)),
        };
        let end = ends.read();
        assert_eq!(end.group.and_then(|g| g.usage_bytes), Some(50_000_000));
        assert_eq!(end.smaps.map(|r| r.heap_bytes), Some(33_332 * 1024));
        assert!(end.paired);
        assert!(ends.read().smaps.is_some());
        assert_eq!(ends.read().smaps, None, "two readings were allowed");
        let mut gone = CycleEnds {
            group: None,
            go_heap_of: Some((dir.path().join("no-such-smaps"), 5)),
        };
        assert_eq!(gone.read(), CycleEnd::default());
    }

    /// Regression (issue 20): `compare --runs 2 -- java -Xmx…` warned of the heap maximum
    /// before each run, the same words each time.
    #[test]
    fn a_warning_is_said_once_per_memspike() {
        let heap =
            "the JVM's heap maximum -Xmx256m (256.0 MiB) is above the group's limit (a test)";
        assert!(first_time(heap));
        assert!(!first_time(heap));
        assert!(first_time("another warning (a test)"));
    }

    /// Regression (issue 18): a group that shrank while the smaps was read (the program
    /// exiting after its last cycle, net/http's reference at its calibration cell) left the
    /// cycle with no reading at all; the size of the runtime's mappings does not depend on
    /// the group, and is kept. The smaps is a pipe: the group shrinks once it is being read.
    #[test]
    fn a_group_that_shrinks_keeps_the_runtimes_mappings_but_not_the_heaps_pages() {
        let dir = tempfile::tempdir().unwrap();
        let usage = dir.path().join("memory.usage_in_bytes");
        std::fs::write(&usage, "50000000\n").unwrap();
        std::fs::write(dir.path().join("memory.stat"), "cache 0\nrss 0\n").unwrap();
        let smaps = dir.path().join("smaps");
        nix::unistd::mkfifo(&smaps, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../memspike-model/src/trace/testdata/go1.19.smaps");
        let writer = {
            let (smaps, usage) = (smaps.clone(), usage.clone());
            std::thread::spawn(move || {
                // Opening a pipe for writing waits for its reader.
                let mut pipe = std::fs::OpenOptions::new().write(true).open(smaps)?;
                std::fs::write(usage, "20000000\n")?;
                pipe.write_all(&std::fs::read(fixture)?)
            })
        };
        let mut ends = CycleEnds {
            group: Sampler::open(dir.path(), memspike_cgroup::Version::V1).ok(),
            go_heap_of: Some((smaps, 1)),
        };
        let end = ends.read();
        writer.join().unwrap().unwrap();
        assert!(!end.paired);
        assert_eq!(end.group.and_then(|g| g.usage_bytes), Some(50_000_000));
        let read = end.smaps.expect("the smaps, read");
        assert_eq!(read.heap_arenas, 1);
        assert!(read.runtime_mapped_bytes > 8 << 20, "{read:?}");
    }

    /// Regression (issue 20): Debian's Node 18 follows "JavaScript heap out of memory" with a
    /// native stack trace longer than the kept tail, and its abort read as a plain SIGABRT.
    #[test]
    fn a_runtimes_out_of_heap_line_is_kept_however_long_stderr_goes_on() {
        let mut stderr = String::from(
            "<--- Last few GCs --->\nFATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n",
        );
        for frame in 0..100 {
            stderr.push_str(&format!(
                "{frame}: 0x7fd695e1c938 node::Abort() [/usr/lib/x86_64-linux-gnu/libnode.so.108]\n"
            ));
        }
        let relayed = relay(
            std::io::Cursor::new(stderr.into_bytes()),
            Box::new(trace::NoTrace),
            Instant::now(),
            Sink::Nowhere,
            true,
            CycleEnds::default(),
        )
        .finish();
        assert!(
            !relayed.tail.contains("heap out of memory"),
            "{}",
            relayed.tail
        );
        assert_eq!(
            relayed.out_of_heap.as_deref(),
            Some(
                "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"
            )
        );
    }

    #[test]
    fn a_command_is_found_on_path_or_refused() {
        let path = Some(std::ffi::OsStr::new("/nonexistent:/bin:/usr/bin"));
        assert!(resolve("sh", path).is_ok());
        let e = resolve("memspike-no-such-command", path).unwrap_err();
        assert!(e.to_string().contains("memspike-no-such-command"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        assert!(
            resolve(plain.to_str().unwrap(), path).is_err(),
            "not executable"
        );
        assert!(resolve("./nope", path).is_err());
    }
}
