//! `memspike exec`: a real program under the same microscope as the simulation. The command
//! runs in a fresh limited group (the same group, observer and clean-up as `run`), joined before
//! exec; its stdin and stdout are its own, its stderr passes through memspike unchanged, and
//! stop signals are passed on to it.
//!
//! While it runs, the supervisor samples the group's usage and `memory.stat` every
//! [`SAMPLE_PERIOD`] and takes the kernel observer's counts every time bucket, so page faults and
//! reclaim are split by time. A runtime whose trace memspike can read ([`memspike_model::trace`]: Go's
//! `GODEBUG=gctrace=1`) is asked to print it, and its cycles join the timeline.

use std::{
    ffi::OsString,
    io::{self, BufRead, BufReader, Read, Write},
    os::fd::{AsFd, OwnedFd},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;

use memspike_cgroup::{EffectiveLimit, sampler::Sampler};
use memspike_model::trace::{self, RuntimeTrace, gogc_from_env};
use memspike_probe::{Kernel, KernelEvidence};
use memspike_report::facts::{
    Bucket, ExecFacts, GroupFacts, TimedCycle, Timeline,
    exec::{FIRST_BUCKET, SAMPLE_PERIOD},
};

use crate::{
    preflight::{self, UsageError},
    signals::{Interrupts, exit_of, signal},
    supervisor::{Session, SupervisorError},
};

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
    facts.group.kernel = kernel;
    facts.group.duration = session.start.elapsed();
    Ok(facts)
}

fn run_in(
    session: &mut Session,
    config: &ExecConfig,
    program: &Path,
) -> Result<ExecFacts, SupervisorError> {
    let tracer: Box<dyn RuntimeTrace> = Box::new(trace::GoTrace);
    let env = environment(config, tracer.as_ref());
    let gogc = gogc_from_env(
        env.iter()
            .find(|(k, _)| k == "GOGC")
            .and_then(|(_, v)| v.to_str()),
    );
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
    let kernel_pid = memspike_cgroup::pidns::procfs_pid(pid);
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
    let (runtime, cycles) = relay
        .and_then(|h| h.join().ok())
        .unwrap_or((None, Vec::new()));
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
            duration: started.elapsed(),
        },
        command: config.command.clone(),
        pid: kernel_pid,
        gogc,
        runtime: runtime.map(str::to_owned),
        cycles,
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

/// Copies the command's stderr to ours unchanged, line by line, and reads the runtime's trace
/// out of it; returns the runtime recognised and its cycles.
fn relay_stderr(
    stderr: impl Read + Send + 'static,
    mut tracer: Box<dyn RuntimeTrace>,
    started: Instant,
) -> thread::JoinHandle<(Option<&'static str>, Vec<TimedCycle>)> {
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
                cycles.push(TimedCycle {
                    read_ms: started.elapsed().as_secs_f64() * 1e3,
                    cycle,
                });
            }
        }
        let runtime = (!cycles.is_empty()).then(|| tracer.name());
        (runtime, cycles)
    })
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
