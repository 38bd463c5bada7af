//! `cargo xtask soak`: a bounded soak of the real binary with faults injected at random times.
//!
//! It builds memspike as `cargo xtask run` does, then runs experiments `--jobs` at a time until
//! `--runs` are done or `--minutes` have passed: self-directed runs (OOM-killed, or surviving
//! with `--gc`), traced and untraced, the built-in scenarios under the other policies (memory
//! limit, watchdogs, an older Go release), interactive sessions driven over HTTP into an OOM
//! kill, and bad command lines. Into most of them it injects SIGKILL, SIGINT or SIGTERM, to the
//! supervisor or to its worker, after a random delay. Every run's exit must be one its fault
//! allows, and no run may panic or hang. At the end it checks that nothing is left: no
//! `memspike-*` cgroup, no BPF program of ours, no tracefs mount beyond those there before, no
//! memspike process; it prints those counts and a summary, and fails if anything was wrong.
//!
//! Delays here are the point (faults at random times), not synchronisation: this is a soak,
//! not a test.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use memspike_common::names;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use procfs::process::{MountInfo, Process};

use crate::apt::{self, Package};
use crate::privilege;
use crate::progress::{self, Step};
use crate::run_cmd;

/// How long one run may take before it counts as hung (and is killed).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a worker may outlive its SIGKILLed supervisor.
const ORPHAN_GRACE: Duration = Duration::from_secs(5);
/// `BPF_OBJ_NAME_LEN` less its NUL.
const KERNEL_NAME_LEN: usize = 15;

const PACKAGES: [Package; 1] = [(
    "bpftool",
    "lists the kernel's BPF programs, to check that no program of memspike's is left",
)];

#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Experiments to run.
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    /// Experiments at once.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Seed for the random choices (printed, so a soak can be replayed).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop starting new runs after this many minutes.
    #[arg(long, default_value_t = 14)]
    minutes: u64,
}

/// What one run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// The default experiment (`--expect oom`), traced.
    Oom,
    /// The same, untraced.
    OomNoTrace,
    /// `--gc --expect survive`.
    Survive,
    /// A built-in scenario under another policy (either outcome is fine).
    Scenario,
    /// Interactive: a few requests, one of them over the limit, then SIGINT.
    Interactive,
    /// A command line that must be refused with exit 2.
    BadFlags,
}

/// The fault injected into a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    None,
    Supervisor(Signal),
    Worker(Signal),
}

const BAD_FLAGS: [&[&str]; 11] = [
    &["run", "--limit", "5EiB"],
    &["run", "--limit", "abc"],
    &["run", "--spike", "1e-300"],
    &["run", "--spike", "-0.1"],
    &["run", "--gogc", "-1"],
    &["run", "--user", "no-such-user-soak"],
    &["run", "--report", "/proc/x"],
    &["run", "--scenario", "no-such-scenario"],
    &["run", "--runtime", "go1.18"],
    &["run", "--memory-limit", "lots"],
    &[],
];

const SCENARIOS: [&[&str]; 5] = [
    &["--scenario", "bursty", "--memory-limit", "90%"],
    &[
        "--scenario",
        "churn",
        "--watchdog",
        "watermarks:0.5,0.75,0.9",
        "--watchdog-driver",
        "cgroup",
        "--watchdog-force",
        "free-os-memory",
    ],
    &[
        "--scenario",
        "leak",
        "--gogc",
        "off",
        "--memory-limit",
        "90%",
    ],
    &[
        "--scenario",
        "churn",
        "--watchdog",
        "adaptive:0.5",
        "--runtime",
        "go1.19",
    ],
    &[
        "--limit",
        "256MiB",
        "--spike",
        "0.5",
        "--chunk",
        "1MiB",
        "--runtime",
        "go1.21",
    ],
];

/// One run's plan.
#[derive(Clone, Debug)]
struct Plan {
    index: usize,
    kind: Kind,
    fault: Fault,
    delay: Duration,
    bad_flags: usize,
    scenario: usize,
}

/// One run's plan, drawn from the soak's generator (seeded once, so `--seed` replays a soak).
fn plan(index: usize, rng: &mut fastrand::Rng) -> Plan {
    let kind = match rng.u64(..20) {
        0..=4 => Kind::Oom,
        5..=6 => Kind::OomNoTrace,
        7..=8 => Kind::Survive,
        9..=12 => Kind::Scenario,
        13..=16 => Kind::Interactive,
        _ => Kind::BadFlags,
    };
    let sig = [Signal::SIGKILL, Signal::SIGINT, Signal::SIGTERM][rng.usize(..3)];
    let fault = match (kind, rng.u64(..10)) {
        (Kind::BadFlags, _) | (_, 0..=2) => Fault::None,
        (_, 3..=6) => Fault::Supervisor(sig),
        _ => Fault::Worker(sig),
    };
    Plan {
        index,
        kind,
        fault,
        delay: Duration::from_millis(rng.u64(..400)),
        bad_flags: rng.usize(..BAD_FLAGS.len()),
        scenario: rng.usize(..SCENARIOS.len()),
    }
}

/// What happened to one run.
#[derive(Debug)]
struct Outcome {
    plan: Plan,
    /// The fault was delivered to a live process.
    landed: bool,
    status: Option<ExitStatus>,
    problems: Vec<String>,
}

pub fn soak(opts: &Options) -> Result<ExitCode> {
    if !privilege::is_root() {
        bail!("the soak creates cgroups and loads eBPF: run `cargo xtask soak` as root");
    }
    apt::ensure(&PACKAGES, |missing| {
        apt::announce(&PACKAGES, missing);
        apt::install(missing)
    })
    .context("installing bpftool")?;
    let binary = run_cmd::build_release()?;
    let seed = opts.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let logs = binary
        .parent()
        .map_or_else(|| PathBuf::from("soak"), |d| d.join("soak"));
    let _ = fs::remove_dir_all(&logs);
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    // What other sessions left is theirs: the soak answers for what appears while it runs.
    let before = Leftovers::now(&binary, &Leftovers::default());
    if !before.is_empty() {
        progress::warn(format!(
            "already there before the soak (not counted against it): {before:?}"
        ));
    }
    progress::say(format!(
        "soak: {} runs, {} at once, seed {seed}, at most {} minutes; logs of failed runs in {}",
        opts.runs,
        opts.jobs,
        opts.minutes,
        logs.display()
    ));

    let mut rng = fastrand::Rng::with_seed(seed);
    let plans: Vec<Plan> = (0..opts.runs).map(|i| plan(i, &mut rng)).collect();
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    let started = Instant::now();
    let budget = Duration::from_secs(opts.minutes * 60);
    let step = Step::start("soak runs");
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= plans.len() || started.elapsed() > budget {
                        break;
                    }
                    let outcome = run_one(&binary, &plans[i], &logs);
                    let mut all = outcomes.lock().unwrap_or_else(|e| e.into_inner());
                    all.push(outcome);
                    if all.len() % 40 == 0 {
                        progress::say(format!("soak: {} runs done", all.len()));
                    }
                }
            });
        }
    });
    step.done();
    let outcomes = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());

    // A last, clean run sweeps what SIGKILLed supervisors could not remove themselves.
    let sweep = Command::new(&binary)
        .args(["run", "--no-trace"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("the final sweeping run")?;
    let leftovers = Leftovers::wait_for_zero(&binary, &before);
    let ok = summarise(&outcomes, &leftovers, sweep, seed, started.elapsed());
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Starts a run with its output in files (so that no pipe can fill and block it).
fn spawn(binary: &Path, plan: &Plan, logs: &Path) -> Result<Child> {
    let args: Vec<&str> = match plan.kind {
        Kind::Oom => vec!["run", "--json", "--expect", "oom"],
        Kind::OomNoTrace => vec!["run", "--json", "--no-trace", "--expect", "oom"],
        Kind::Survive => vec!["run", "--json", "--gc", "--expect", "survive"],
        Kind::Scenario => [&["run", "--json"][..], SCENARIOS[plan.scenario]].concat(),
        Kind::Interactive => vec!["run", "--interactive", "--listen", "127.0.0.1:0", "--json"],
        Kind::BadFlags => BAD_FLAGS[plan.bad_flags].to_vec(),
    };
    let out = fs::File::create(logs.join(format!("{}.out", plan.index)))?;
    let err = fs::File::create(logs.join(format!("{}.err", plan.index)))?;
    Ok(Command::new(binary)
        .args(&args)
        .env_remove("MEMSPIKE_LOG")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()?)
}

fn run_one(binary: &Path, plan: &Plan, logs: &Path) -> Outcome {
    let mut outcome = Outcome {
        plan: plan.clone(),
        landed: false,
        status: None,
        problems: Vec::new(),
    };
    let mut child = match spawn(binary, plan, logs) {
        Ok(c) => c,
        Err(e) => {
            outcome.problems.push(format!("could not start: {e}"));
            return outcome;
        }
    };
    let sup = Pid::from_raw(child.id() as i32);
    let started = Instant::now();
    if plan.kind == Kind::Interactive {
        drive_interactive(&mut outcome, plan, logs, sup);
    }
    let mut orphan = None;
    if plan.fault != Fault::None {
        let (target, sig) = match plan.fault {
            Fault::Supervisor(sig) => {
                std::thread::sleep(plan.delay);
                (Some(sup), sig)
            }
            // A worker lives a few hundred milliseconds: find it first, then strike within
            // its life.
            Fault::Worker(sig) => {
                let worker = first_child(sup);
                std::thread::sleep(plan.delay / 4);
                (worker, sig)
            }
            Fault::None => (None, Signal::SIGKILL),
        };
        if let Some(pid) = target {
            if sig == Signal::SIGKILL && pid == sup {
                orphan = children(sup).first().copied();
            }
            // A process of this soak (the run or its worker).
            outcome.landed = kill(pid, sig).is_ok();
        }
    }
    if plan.kind == Kind::Interactive && !matches!(plan.fault, Fault::Supervisor(_)) {
        // Our own child: the normal end of an interactive session.
        let _ = kill(sup, Signal::SIGINT);
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < RUN_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                outcome
                    .problems
                    .push(format!("hung: still running after {RUN_TIMEOUT:?}"));
                break None;
            }
        }
    };
    outcome.status = status;
    if let Some(worker) = orphan {
        let deadline = Instant::now() + ORPHAN_GRACE;
        while alive(worker) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if alive(worker) {
            outcome
                .problems
                .push(format!("worker {worker} outlived its SIGKILLed supervisor"));
        }
    }
    check(&mut outcome, logs);
    if outcome.problems.is_empty() {
        let _ = fs::remove_file(logs.join(format!("{}.out", plan.index)));
        let _ = fs::remove_file(logs.join(format!("{}.err", plan.index)));
    }
    outcome
}

/// Interactive: wait until it serves, then add 8 MiB, then 64 MiB (an OOM kill and a
/// restart), then read the statistics.
fn drive_interactive(outcome: &mut Outcome, plan: &Plan, logs: &Path, sup: Pid) {
    let err = logs.join(format!("{}.err", plan.index));
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        let text = fs::read_to_string(&err).unwrap_or_default();
        if let Some(addr) = text
            .split("serving the heap on http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse::<SocketAddr>().ok())
        {
            break addr;
        }
        if Instant::now() > deadline || !alive(sup) {
            outcome
                .problems
                .push("the interactive server never said where it serves".into());
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    for path in ["/add?bytes=8MiB", "/add?bytes=64MiB", "/stats"] {
        // A request may meet the worker's OOM kill, or an injected fault: only a hang matters.
        let _ = get(addr, path);
    }
}

/// One GET over a fresh connection; the status, or why there is none.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))
}

/// The exit codes (or the death by signal) a run's fault allows, and the log's health.
fn check(outcome: &mut Outcome, logs: &Path) {
    let plan = &outcome.plan;
    let err = fs::read_to_string(logs.join(format!("{}.err", plan.index))).unwrap_or_default();
    if err.contains("panicked") {
        outcome.problems.push("panicked".into());
    }
    let Some(status) = outcome.status else { return };
    let code = status.code();
    let allowed: &[i32] = match (plan.kind, plan.fault) {
        (Kind::BadFlags, _) => &[2],
        (Kind::Interactive, Fault::Supervisor(Signal::SIGKILL)) => &[],
        (Kind::Interactive, _) => &[0],
        (_, Fault::None) => &[0],
        (_, Fault::Supervisor(Signal::SIGKILL)) => &[0],
        // The signal arrived before it exited (130), or it had finished (0).
        (_, Fault::Supervisor(_)) => &[0, 130],
        // The worker died of the signal (1), or had been OOM-killed or finished first (0).
        (_, Fault::Worker(_)) => &[0, 1],
    };
    let killed = status.signal() == Some(Signal::SIGKILL as i32)
        && plan.fault == Fault::Supervisor(Signal::SIGKILL)
        && outcome.landed;
    // A stop signal that lands while the process is still starting (before main blocks it, so
    // before it has said or created anything) takes its default action, as for any program.
    let before_main = matches!(plan.fault, Fault::Supervisor(sig) if status.signal() == Some(sig as i32))
        && err.trim().is_empty();
    let fine = killed || before_main || code.is_some_and(|c| allowed.contains(&c));
    if !fine {
        outcome.problems.push(format!(
            "exit {status} is not what {:?} with {:?} allows",
            plan.kind, plan.fault
        ));
    }
    if plan.kind == Kind::BadFlags {
        let lines = err.lines().filter(|l| !l.trim().is_empty()).count();
        if lines != 1 {
            outcome
                .problems
                .push(format!("a bad command line printed {lines} lines"));
        }
    }
}

/// What a soak must not leave behind.
#[derive(Debug, Default)]
struct Leftovers {
    groups: Vec<PathBuf>,
    programs: Vec<String>,
    tracefs_mounts: Vec<String>,
    processes: Vec<String>,
}

impl Leftovers {
    /// What is there now and was not in `before`.
    fn now(binary: &Path, before: &Leftovers) -> Leftovers {
        fn new<T: PartialEq>(now: Vec<T>, before: &[T]) -> Vec<T> {
            now.into_iter().filter(|x| !before.contains(x)).collect()
        }
        Leftovers {
            groups: new(groups(), &before.groups),
            programs: new(our_programs(), &before.programs),
            tracefs_mounts: new(tracefs_mounts(), &before.tracefs_mounts),
            processes: new(processes_of(binary), &before.processes),
        }
    }

    fn is_empty(&self) -> bool {
        self.groups.is_empty()
            && self.programs.is_empty()
            && self.tracefs_mounts.is_empty()
            && self.processes.is_empty()
    }

    /// The leftovers once the kernel has caught up (it frees programs and reaps processes a
    /// little after their owners end); bounded.
    fn wait_for_zero(binary: &Path, before: &Leftovers) -> Leftovers {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = Leftovers::now(binary, before);
            if now.is_empty() || Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// This process's mounts (none when /proc cannot be read).
fn mounts() -> Vec<MountInfo> {
    Process::myself()
        .and_then(|me| me.mountinfo())
        .map(|m| m.0)
        .unwrap_or_default()
}

/// `memspike-*` directories under every cgroup mount.
fn groups() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for mount in mounts() {
        if mount.fs_type.starts_with("cgroup") {
            walk(&mount.mount_point, 0, &mut found);
        }
    }
    found.sort();
    found.dedup();
    found
}

fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with("memspike-") {
            found.push(path);
        } else if depth < 6 {
            walk(&path, depth + 1, found);
        }
    }
}

/// Our programs among those the kernel has loaded (bpftool), as `name (id N)`: by id, so
/// that a program of ours left by the soak is new even when another session holds one of the
/// same name (a run no longer waits for the kernel to free its programs: the kernel does so
/// shortly after, which [`Leftovers::wait_for_zero`] allows for).
fn our_programs() -> Vec<String> {
    let Ok(out) = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
    else {
        return vec!["(bpftool could not run)".into()];
    };
    let Ok(list) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return vec!["(bpftool printed no JSON)".into()];
    };
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p.get("name")?.as_str()?, p.get("id")?.as_u64()?)))
        .filter(|(name, _)| is_ours(name))
        .map(|(name, id)| format!("{name} (id {id})"))
        .collect()
}

/// Whether a kernel program name (cut to [`KERNEL_NAME_LEN`]) is one of memspike's.
fn is_ours(name: &str) -> bool {
    names::PROGRAMS
        .iter()
        .any(|ours| name == &ours[..ours.len().min(KERNEL_NAME_LEN)])
}

/// Tracefs mounts, each as its id and mount point (a new mount has a new id).
fn tracefs_mounts() -> Vec<String> {
    mounts()
        .into_iter()
        .filter(|m| m.fs_type == "tracefs")
        .map(|m| format!("{} {}", m.mnt_id, m.mount_point.display()))
        .collect()
}

/// Every process /proc lists now (those that end while being read are left out).
fn processes() -> Vec<Process> {
    procfs::process::all_processes()
        .map(|all| all.flatten().collect())
        .unwrap_or_default()
}

/// Processes running `binary` (supervisors or workers), as "pid cmdline".
fn processes_of(binary: &Path) -> Vec<String> {
    processes()
        .into_iter()
        .filter(|p| p.exe().is_ok_and(|exe| exe == binary))
        .map(|p| {
            let cmd = p.cmdline().unwrap_or_default();
            format!("{} {}", p.pid(), cmd.join(" "))
        })
        .collect()
}

/// The first child `parent` starts, waited for (bounded; `None` if it starts none, or ends).
fn first_child(parent: Pid) -> Option<Pid> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && alive(parent) {
        if let Some(&pid) = children(parent).first() {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// The children of `parent` (from /proc/PID/stat).
fn children(parent: Pid) -> Vec<Pid> {
    processes()
        .into_iter()
        .filter(|p| p.stat().is_ok_and(|stat| stat.ppid == parent.as_raw()))
        .map(|p| Pid::from_raw(p.pid()))
        .collect()
}

/// Whether `pid` exists (no signal is sent).
fn alive(pid: Pid) -> bool {
    kill(pid, None).is_ok()
}

/// Prints the summary; true when every run was fine and nothing is left.
fn summarise(
    outcomes: &[Outcome],
    left: &Leftovers,
    sweep: ExitStatus,
    seed: u64,
    took: Duration,
) -> bool {
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_fault: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for o in outcomes {
        *by_kind.entry(format!("{:?}", o.plan.kind)).or_default() += 1;
        let fault = match o.plan.fault {
            Fault::None => "none".to_owned(),
            Fault::Supervisor(s) => format!("{} to the supervisor", s.as_str()),
            Fault::Worker(s) => format!("{} to the worker", s.as_str()),
        };
        let entry = by_fault.entry(fault).or_default();
        entry.0 += 1;
        entry.1 += usize::from(o.landed);
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.problems.is_empty()).collect();
    println!("soak summary (seed {seed}, {:.0} s)", took.as_secs_f64());
    println!("  runs: {}", outcomes.len());
    for (kind, n) in &by_kind {
        println!("    {kind}: {n}");
    }
    println!("  faults injected (landed on a live process):");
    for (fault, (n, landed)) in &by_fault {
        println!("    {fault}: {n} ({landed})");
    }
    println!("  runs with a problem: {}", failed.len());
    for o in failed.iter().take(20) {
        println!(
            "    run {} ({:?}, {:?} after {} ms): {}",
            o.plan.index,
            o.plan.kind,
            o.plan.fault,
            o.plan.delay.as_millis(),
            o.problems.join("; ")
        );
    }
    println!(
        "  final sweeping run: {}",
        sweep
            .code()
            .map_or_else(|| sweep.to_string(), |c| format!("exit {c}"))
    );
    println!("  left behind (new since the soak began):");
    println!(
        "    memspike-* cgroups: {} {:?}",
        left.groups.len(),
        left.groups
    );
    println!(
        "    BPF programs of ours: {} {:?}",
        left.programs.len(),
        left.programs
    );
    println!(
        "    tracefs mounts of ours: {} {:?}",
        left.tracefs_mounts.len(),
        left.tracefs_mounts
    );
    println!(
        "    memspike processes: {} {:?}",
        left.processes.len(),
        left.processes
    );
    failed.is_empty() && left.is_empty() && sweep.success()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_are_found_by_parent_and_by_binary() {
        let mut child = Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = Pid::from_raw(child.id() as i32);
        let found = children(Pid::this());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&pid), "{found:?} lacks {pid}");
        let me = std::env::current_exe().expect("this test's binary");
        let mine = processes_of(&me);
        assert!(
            mine.iter()
                .any(|p| p.starts_with(&format!("{} ", std::process::id()))),
            "{mine:?}"
        );
    }

    #[test]
    fn our_programs_are_known_by_their_names_as_the_kernel_cuts_them() {
        for name in ["page_fault_user", "memcg_reclaim_b", "oom_mark_victim"] {
            assert!(is_ours(name), "{name}");
        }
        for name in ["page_fault_use", "sd_fw_ingress", ""] {
            assert!(!is_ours(name), "{name}");
        }
    }
}
