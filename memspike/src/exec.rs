//! `memspike exec`: a real program under the same microscope as the simulation. The command
//! runs in a fresh limited group (the same group, observer and clean-up as `run`), joined before
//! exec; its stdin and stdout are its own, its stderr passes through memspike unchanged, and
//! stop signals are passed on to it.
//!
//! While it runs, the supervisor samples the group's usage and `memory.stat` every
//! [`SAMPLE_PERIOD`] and takes the kernel observer's counts every time bucket, so page faults and
//! reclaim are split by time. A runtime whose trace memspike can read ([`crate::trace`]: Go's
//! `GODEBUG=gctrace=1`) is asked to print it, and its cycles join the timeline.

use std::{
    ffi::OsString,
    io::{self, BufRead, BufReader, Read, Write},
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    cgroup::{
        Counters, EffectiveLimit,
        sampler::{Reading, Sampler},
    },
    preflight::{self, UsageError},
    probe::{Kernel, KernelEvidence},
    report::Exit,
    signals::Interrupts,
    supervisor::{Session, SupervisorError},
    trace::{self, RuntimeCycle, RuntimeTrace},
};

/// How often the group's usage and `memory.stat` are read.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(10);
/// The first width of a time bucket of kernel counts; it doubles whenever [`MAX_BUCKETS`] are
/// full (neighbours merge), so a long run keeps its whole span in as many buckets.
pub const FIRST_BUCKET: Duration = Duration::from_millis(100);
pub const MAX_BUCKETS: usize = 64;
/// Samples kept; past it every other is dropped and the kept period doubles.
pub const MAX_SAMPLES: usize = 1024;

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExecConfig {
    pub limit: u64,
    /// `--inherit`: run in memspike's own group under this limit (`limit` is its bytes).
    pub inherit: Option<EffectiveLimit>,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Pass memspike's whole environment on (otherwise only [`PASSED_ENV`]).
    pub inherit_env: bool,
}

/// The variables a command gets from memspike's environment without `--inherit-env`: enough to
/// run, and the Go runtime's own knobs.
pub const PASSED_ENV: [&str; 9] = [
    "PATH",
    "HOME",
    "LANG",
    "TERM",
    "GOGC",
    "GOMEMLIMIT",
    "GOMAXPROCS",
    "GODEBUG",
    "GOTRACEBACK",
];

/// One reading of the group, `t_ms` after the command started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub t_ms: u64,
    #[serde(flatten)]
    pub reading: Reading,
}

/// The kernel's counts in one time bucket (`t_ms` is its start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub t_ms: u64,
    pub page_faults: Option<u64>,
    pub reclaim_stalls: Option<u64>,
    pub reclaim_ns: Option<u64>,
}

/// The group over time.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Timeline {
    /// Milliseconds between kept samples.
    pub sample_period_ms: u64,
    pub samples: Vec<Sample>,
    pub bucket_ms: u64,
    pub buckets: Vec<Bucket>,
}

impl Timeline {
    fn new() -> Timeline {
        Timeline {
            sample_period_ms: SAMPLE_PERIOD.as_millis() as u64,
            bucket_ms: FIRST_BUCKET.as_millis() as u64,
            ..Timeline::default()
        }
    }

    /// Keeps a reading if a period has passed since the last kept one, thinning the kept ones
    /// when they are too many.
    fn sample(&mut self, t_ms: u64, reading: Reading) {
        if self
            .samples
            .last()
            .is_some_and(|s| t_ms < s.t_ms + self.sample_period_ms)
        {
            return;
        }
        if self.samples.len() == MAX_SAMPLES {
            let mut i = 0;
            self.samples.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.sample_period_ms *= 2;
        }
        self.samples.push(Sample { t_ms, reading });
    }

    /// Adds the counts seen during the bucket that starts at `t_ms`; when the buckets are full,
    /// neighbours merge and the width doubles.
    fn bucket(&mut self, counts: Bucket) {
        if self.buckets.len() == MAX_BUCKETS {
            let merged: Vec<Bucket> = self
                .buckets
                .chunks(2)
                .map(|pair| {
                    let sum = |f: fn(&Bucket) -> Option<u64>| {
                        pair.iter().map(f).try_fold(0u64, |a, v| Some(a + v?))
                    };
                    Bucket {
                        t_ms: pair[0].t_ms,
                        page_faults: sum(|b| b.page_faults),
                        reclaim_stalls: sum(|b| b.reclaim_stalls),
                        reclaim_ns: sum(|b| b.reclaim_ns),
                    }
                })
                .collect();
            self.buckets = merged;
            self.bucket_ms *= 2;
        }
        // A bucket may have been merged into the last one's span: add to it.
        match self.buckets.last_mut() {
            Some(last) if counts.t_ms < last.t_ms + self.bucket_ms => {
                let add = |a: Option<u64>, b: Option<u64>| Some(a? + b?);
                last.page_faults = add(last.page_faults, counts.page_faults);
                last.reclaim_stalls = add(last.reclaim_stalls, counts.reclaim_stalls);
                last.reclaim_ns = add(last.reclaim_ns, counts.reclaim_ns);
            }
            _ => self.buckets.push(counts),
        }
    }
}

/// A cycle the runtime traced, `t_ms` after the command started (when memspike read its line).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TracedCycle {
    pub t_ms: f64,
    #[serde(flatten)]
    pub cycle: RuntimeCycle,
    /// The goal the runtime set for the next cycle: the one the next cycle's line reports, or,
    /// after the last, GOGC's rule applied to what this cycle left live (`null` with GOGC=off).
    pub next_goal_bytes: Option<u64>,
    /// `next_goal_bytes` is GOGC's rule, not a traced figure (a memory limit may lower it).
    pub next_goal_estimated: bool,
}

/// Fills in each cycle's next goal: the following cycle's, or GOGC's rule (`gogc` percent,
/// `None` for off) after the last: live + (live + stacks + globals) x GOGC/100, at least
/// 4 MiB x GOGC/100.
fn next_goals(cycles: &mut [TracedCycle], gogc: Option<u64>) {
    for i in 0..cycles.len() {
        let next = cycles.get(i + 1).map(|n| n.cycle.goal_bytes);
        let c = &cycles[i].cycle;
        let estimate = gogc.map(|p| {
            let roots =
                c.heap_live_bytes + c.stacks_bytes.unwrap_or(0) + c.globals_bytes.unwrap_or(0);
            (c.heap_live_bytes + roots * p / 100).max((4 << 20) * p / 100)
        });
        cycles[i].next_goal_estimated = next.is_none() && estimate.is_some();
        cycles[i].next_goal_bytes = next.or(estimate);
    }
}

/// GOGC as the command's environment sets it (the runtime's rule: `off` or a negative number is
/// off, a number is a percentage, anything else is 100).
fn gogc(env: &[(OsString, OsString)]) -> Option<u64> {
    let value = env
        .iter()
        .find(|(k, _)| k == "GOGC")
        .and_then(|(_, v)| v.to_str());
    match value {
        Some("off") => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as u64),
            Err(_) => Some(100),
        },
        None => Some(100),
    }
}

/// Everything an `exec` left behind, as the supervisor collected it.
#[derive(Clone, Debug)]
pub struct ExecFacts {
    pub config: ExecConfig,
    pub cgroup_version: &'static str,
    pub group: String,
    pub pid: u32,
    pub exit: Exit,
    pub counters: Counters,
    /// OOM kills the group had counted before the command started (an inherited group's
    /// earlier kills are not the command's).
    pub oom_kills_before: u64,
    /// `--inherit`: the file that sets the limit.
    pub limit_source: Option<PathBuf>,
    pub kernel: Result<KernelEvidence, String>,
    /// The runtime whose trace was read, if any line of it was.
    pub runtime: Option<&'static str>,
    pub cycles: Vec<TracedCycle>,
    pub timeline: Timeline,
    pub stop_signal: Option<i32>,
    pub duration: Duration,
}

/// The command's program: a path, or a name found on `PATH`, executable.
pub fn resolve(program: &str, path: Option<&std::ffi::OsStr>) -> Result<PathBuf, UsageError> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.contains('/') {
        Some(PathBuf::from(program)).filter(|p| executable(p))
    } else {
        path.into_iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join(program))
            .find(|p| executable(p))
    };
    found.ok_or_else(|| UsageError::Command(program.to_owned()))
}

/// The command's environment: memspike's (all of it, or [`PASSED_ENV`]), with the runtime's
/// trace turned on.
fn environment(config: &ExecConfig, tracer: &dyn RuntimeTrace) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| config.inherit_env || PASSED_ENV.iter().any(|p| k == p))
        .collect();
    let lookup = |var: &str| {
        env.iter()
            .find(|(k, _)| k == var)
            .and_then(|(_, v)| v.to_str().map(str::to_owned))
    };
    if let Some((name, value)) = tracer.env(&lookup) {
        env.retain(|(k, _)| *k != *name);
        env.push((name.into(), value.into()));
    }
    env
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
    let program = validate(config, report_dir)?;
    let mut kernel = Kernel::start(trace_kernel);
    let mut session = Session::open(
        config.limit,
        config.inherit.as_ref(),
        vec!["command".to_owned()],
        "the command runs with memspike's credentials",
        &mut kernel,
        interrupts,
    )?;
    let facts = run_in(&mut session, config, &program);
    let kernel = session.close();
    let mut facts = facts?;
    facts.kernel = kernel;
    facts.duration = session.start.elapsed();
    Ok(facts)
}

fn run_in(
    session: &mut Session,
    config: &ExecConfig,
    program: &Path,
) -> Result<ExecFacts, SupervisorError> {
    let tracer: Box<dyn RuntimeTrace> = Box::new(trace::GoTrace);
    let env = environment(config, tracer.as_ref());
    let gogc = gogc(&env);
    let mut cmd = Command::new(program);
    cmd.args(&config.command[1..])
        .env_clear()
        .envs(env)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
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
    let kernel_pid = crate::pidns::procfs_pid(pid);
    interrupts.set_worker(pid as i32);
    tracing::info!("command {pid} started inside the group");
    let relay = child
        .stderr
        .take()
        .map(|stderr| relay_stderr(stderr, tracer, started));

    let mut timeline = Timeline::new();
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
        timeline.sample(now.as_millis() as u64, sampler.read());
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
    // The command has exited (the loop ends only then): no signal may go to its pid once it is
    // reaped and could be reused.
    interrupts.set_worker(0);
    interrupts.set_forward(false);
    let status = child.wait().map_err(SupervisorError::Spawn)?;
    let (runtime, mut cycles) = relay
        .and_then(|h| h.join().ok())
        .unwrap_or((None, Vec::new()));
    next_goals(&mut cycles, gogc);
    let exit = match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Code(-1),
    };
    Ok(ExecFacts {
        config: config.clone(),
        cgroup_version: session.version(),
        group: session.group().name().to_owned(),
        pid: kernel_pid,
        exit,
        counters: session.group().counters(),
        oom_kills_before: session.oom_kills(),
        limit_source: session.limit_source().map(Path::to_path_buf),
        kernel: Err("not collected yet".into()),
        runtime,
        cycles,
        timeline,
        stop_signal: interrupts.received(),
        duration: started.elapsed(),
    })
}

/// Page faults, reclaim stalls and their time, so far.
type Totals = (Option<u64>, Option<u64>, Option<u64>);

fn totals(k: &KernelEvidence) -> Totals {
    (
        k.page_faults.as_ref().map(|f| f.total),
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

/// Copies the command's stderr to ours unchanged, line by line, and reads the runtime's trace
/// out of it; returns the runtime recognised and its cycles.
fn relay_stderr(
    stderr: impl Read + Send + 'static,
    mut tracer: Box<dyn RuntimeTrace>,
    started: Instant,
) -> thread::JoinHandle<(Option<&'static str>, Vec<TracedCycle>)> {
    thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        let mut cycles = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let mut out = io::stderr().lock();
            let _ = out.write_all(&line);
            let _ = out.flush();
            drop(out);
            if let Some(cycle) = std::str::from_utf8(&line)
                .ok()
                .and_then(|l| tracer.parse_line(l.trim_end()))
            {
                cycles.push(TracedCycle {
                    t_ms: started.elapsed().as_secs_f64() * 1e3,
                    cycle,
                    next_goal_bytes: None,
                    next_goal_estimated: false,
                });
            }
        }
        let runtime = (!cycles.is_empty()).then(|| tracer.name());
        (runtime, cycles)
    })
}

/// A descriptor that becomes readable when `pid` exits (`pidfd_open`, Linux 5.3).
fn pidfd(pid: u32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits up to `timeout` for `fd` to be readable; true when it is.
fn wait_readable(fd: &std::os::fd::OwnedFd, timeout: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, owned here, for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) };
    n > 0 && p.revents & libc::POLLIN != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_thin_out_and_buckets_merge_as_a_run_grows() {
        let mut t = Timeline::new();
        for ms in (0..20_000).step_by(10) {
            t.sample(ms, Reading::default());
        }
        assert!(t.samples.len() <= MAX_SAMPLES);
        assert!(t.sample_period_ms >= 20);
        assert_eq!(t.samples[0].t_ms, 0);
        assert!(t.samples.windows(2).all(|w| w[1].t_ms > w[0].t_ms));
        for i in 0..1_000u64 {
            t.bucket(Bucket {
                t_ms: i * 100,
                page_faults: Some(1),
                reclaim_stalls: Some(2),
                reclaim_ns: None,
            });
        }
        assert!(t.buckets.len() <= MAX_BUCKETS);
        let faults: u64 = t.buckets.iter().filter_map(|b| b.page_faults).sum();
        assert_eq!(faults, 1_000, "merging keeps every count");
        assert_eq!(t.buckets[0].t_ms, 0);
        assert_eq!(t.bucket_ms, 1_600);
        assert!(t.buckets.iter().all(|b| b.reclaim_ns.is_none()));
    }

    /// The seed's cycle on real Go: "28->28->28 MB, 4 MB goal, 0 MB stacks, 0 MB globals":
    /// the goal after it is GOGC's rule on the 28 MiB it left live, about 2x.
    #[test]
    fn the_next_goal_is_the_next_cycles_or_gogcs_rule() {
        let cycle = |n, live_mib: u64, goal_mib: u64| TracedCycle {
            t_ms: 0.0,
            cycle: RuntimeCycle {
                n,
                t_ms: 0.0,
                heap_start_bytes: live_mib << 20,
                heap_end_bytes: live_mib << 20,
                heap_live_bytes: live_mib << 20,
                goal_bytes: goal_mib << 20,
                cpu_percent: 0.0,
                forced: false,
                stacks_bytes: Some(0),
                globals_bytes: Some(1 << 20),
                procs: 2,
            },
            next_goal_bytes: None,
            next_goal_estimated: false,
        };
        let mut cycles = vec![cycle(1, 1, 4), cycle(2, 28, 4)];
        next_goals(&mut cycles, Some(100));
        assert_eq!(cycles[0].next_goal_bytes, Some(4 << 20));
        assert!(!cycles[0].next_goal_estimated);
        assert_eq!(cycles[1].next_goal_bytes, Some((28 + 29) << 20));
        assert!(cycles[1].next_goal_estimated);
        next_goals(&mut cycles, None);
        assert_eq!(cycles[1].next_goal_bytes, None, "GOGC=off plans none");
        let env = |v: &str| vec![(OsString::from("GOGC"), OsString::from(v))];
        assert_eq!(gogc(&[]), Some(100));
        assert_eq!(gogc(&env("50")), Some(50));
        assert_eq!(gogc(&env("off")), None);
        assert_eq!(gogc(&env("-1")), None);
        assert_eq!(gogc(&env("lots")), Some(100));
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
