//! Helpers shared by the integration tests: what CI is, and gating tests that need what only
//! some machines have.
//!
//! A test may skip only outside CI, and says so; under CI a missing capability is a failure.
#![allow(dead_code)] // each test binary compiles its own copy and may not use every helper

// CI, skipping and root: the same rule as every crate's tests.
#[allow(unused_imports)] // each test binary uses some of them
pub use memspike_testkit::{require_root, skip, under_ci};

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// How long a wait on an event may last before the test fails instead of hanging. A guard,
/// not a measurement: every event waited for here comes within seconds.
pub const GUARD: Duration = Duration::from_secs(60);

/// Waits until `fd` is readable (or its other end has gone), on poll(2); false if `guard`
/// passed first (the caller decides whether that is a failure).
pub fn readable_within(fd: impl AsFd, guard: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let timeout = Timespec {
        tv_sec: guard.as_secs() as i64,
        tv_nsec: i64::from(guard.subsec_nanos()),
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    loop {
        match poll(&mut fds, Some(&timeout)) {
            Ok(n) => return n > 0,
            // A signal for this process (the harness's own): poll again.
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
}

/// Waits until process `pid` has exited, on a pidfd, which the kernel makes readable when the
/// process exits (whoever its parent is; a zombie has exited). A pid already gone has exited
/// too. Fails naming `what` only after [`GUARD`].
pub fn wait_for_exit(pid: i32, what: &str) {
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    let pid = Pid::from_raw(pid).expect("a pid above 0");
    let fd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return,
        Err(e) => panic!("pidfd_open({pid:?}): {e}"),
    };
    assert!(
        readable_within(&fd, GUARD),
        "{what}: process {pid:?} still runs after {GUARD:?}"
    );
}

/// Checks `cond` every millisecond until it holds, failing naming `what` after [`GUARD`].
///
/// Only for a state the kernel announces to nobody this test can be: each caller says why no
/// event exists for its condition. Everything else waits on its event (a pipe, a pidfd, a log
/// line, a channel).
pub fn poll_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not so after {GUARD:?}");
        // Not a spin: the process being watched needs the CPU (two here) to get there.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `pid` (a process this test is neither the parent nor the tracer of) is stopped
/// (state `T`). The kernel tells a stop only to the parent (waitid's WSTOPPED, SIGCHLD) and
/// to a tracer; a pidfd becomes readable only on exit, and the proc connector has no stop
/// event. Tracing the worker with ptrace would change how it stops. So /proc/PID/stat is
/// read until it says `T`.
pub fn wait_until_stopped(pid: i32, what: &str) {
    poll_until(what, || process_state(pid) == Some('T'));
}

/// Whether a process exists (no signal: only the check).
pub fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Sends `sig` to `pid` (a process the test started, or a member of its own group).
pub fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// A process's state letter from /proc/PID/stat (`R`, `S`, `T`, ...).
pub fn process_state(pid: i32) -> Option<char> {
    procfs::process::Process::new(pid)
        .and_then(|p| p.stat())
        .ok()
        .map(|s| s.state)
}

/// Reads memspike's log until the worker says it paused before `phase`, then waits until it
/// has really stopped (it says so first, then stops itself: a SIGCONT sent in between would be
/// lost and the stop would last for ever); returns its pid. stderr is drained from then on, so
/// memspike never blocks on a full pipe.
pub fn wait_for_pause(child: &mut Child, phase: &str) -> i32 {
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).expect("read stderr") > 0,
            "memspike ended before pausing"
        );
        if line.contains(&format!("paused before {phase}")) {
            let worker: i32 = line
                .split("worker ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse().ok())
                .expect("the line names the worker");
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
            // The line came, the stop follows: that is all the waiting that has an event.
            wait_until_stopped(worker, "the paused worker to stop itself");
            return worker;
        }
    }
}

/// Directories of the groups a supervisor with this pid created, in both hierarchies.
pub fn groups_of(pid: u32) -> Vec<PathBuf> {
    let h = memspike_cgroup::Hierarchy::discover().expect("preflight passes here");
    let prefix = format!("memspike-{pid}-");
    let mut dirs = vec![h.own_dir()];
    dirs.extend(h.v2_twin_parent().map(PathBuf::from));
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// A JSON number as u64 (panics naming the value if it is not one).
pub fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Ids of the BPF programs process `pid` holds open (its program and link descriptors'
/// `prog_id` in /proc/PID/fdinfo): ours, whatever other BPF users load meanwhile.
pub fn programs_of(pid: u32) -> std::collections::BTreeSet<u32> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return Default::default();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .flat_map(|info| {
            info.lines()
                .filter_map(|l| l.strip_prefix("prog_id:")?.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Which of `ids` the kernel still lists as loaded programs.
pub fn still_loaded(ids: &std::collections::BTreeSet<u32>) -> Vec<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|p| p.id())
        .filter(|id| ids.contains(id))
        .collect()
}

/// Waits until the kernel lists none of `ids`; panics naming `when` if some are still listed
/// after [`GUARD`].
///
/// A poll, because no event reaches this process: the programs' last references go with
/// their holder's descriptors and links, and the kernel frees them (and their ids) after
/// that, from RCU callbacks and work queues. The only notice it gives is perf's
/// PERF_RECORD_BPF_EVENT, which needs a system-wide perf event on every CPU, and is sent
/// before the id leaves the list anyway.
pub fn assert_unloaded(ids: &std::collections::BTreeSet<u32>, when: &str) {
    let deadline = Instant::now() + GUARD;
    loop {
        let left = still_loaded(ids);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{when}: programs {left:?} are still loaded after {GUARD:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The memspike binary this package built.
pub fn memspike() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_memspike"))
}

/// Runs of a test binary go one at a time (every run holds this lock): they share the CPU and
/// the kernel log.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `memspike run --json ARGS` (one run at a time), checks it cleaned up, and returns the
/// exit code and report.
pub fn run_json(args: &[&str]) -> (i32, serde_json::Value) {
    command_json("run", args)
}

/// Runs `memspike COMMAND --json ARGS` as [`run_json`] does.
pub fn command_json(command: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let _serial = serial();
    let child = memspike()
        .arg(command)
        .arg("--json")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start memspike");
    let pid = child.id();
    let std::process::Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("memspike runs");
    let stderr = String::from_utf8_lossy(&stderr);
    assert_eq!(
        groups_of(pid),
        Vec::<PathBuf>::new(),
        "groups left behind; stderr: {stderr}"
    );
    let report = serde_json::from_slice(&stdout)
        .unwrap_or_else(|e| panic!("not a JSON report ({e}); stderr: {stderr}"));
    (status.code().expect("exit code"), report)
}

/// Checks a `--report DIR`: report.json is `report`, timeline.svg parses as SVG and shows
/// `chart_texts` (legend entries, marks), report.html carries the chart and the verdict.
pub fn assert_report_dir(dir: &std::path::Path, report: &serde_json::Value, chart_texts: &[&str]) {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{name} in {}: {e}", dir.display()))
    };
    let written: serde_json::Value = serde_json::from_str(&read("report.json")).unwrap();
    assert_eq!(written["outcome"], report["outcome"]);
    assert_eq!(written["verdict"], report["verdict"]);
    let svg = read("timeline.svg");
    let doc = roxmltree::Document::parse(&svg).expect("timeline.svg parses");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for want in chart_texts {
        assert!(
            texts.iter().any(|t| t.starts_with(want)),
            "the chart lacks {want:?}: {texts:?}"
        );
    }
    let html = read("report.html");
    assert!(
        html.starts_with("<!doctype html>") && html.contains("<svg"),
        "report.html"
    );
    let verdict = report["verdict"].as_str().unwrap_or_default();
    let first_words: String = verdict.chars().take(30).collect();
    assert!(html.contains(&first_words), "report.html lacks the verdict");
}

/// A memory group the test owns under its own group (v1 here: under the memory hierarchy),
/// with `limit` or none; emptied and removed on drop.
pub struct TestGroup {
    pub dir: PathBuf,
}

impl TestGroup {
    pub fn new(tag: &str, limit: Option<u64>) -> TestGroup {
        let h = memspike_cgroup::Hierarchy::discover().expect("preflight passes here");
        let dir = h
            .own_dir()
            .join(format!("memspike-test-{tag}-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("create the test's group");
        let group = TestGroup { dir };
        if let Some(limit) = limit {
            let files: &[&str] = match h.version() {
                memspike_cgroup::Version::V1 => {
                    &["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
                }
                memspike_cgroup::Version::V2 => &["memory.max"],
            };
            for f in files {
                std::fs::write(group.dir.join(f), limit.to_string()).expect("set the limit");
            }
        }
        group
    }

    /// Runs memspike with `args` inside the group, through new mount, PID and UTS namespaces.
    pub fn memspike(&self, args: &[&str]) -> std::process::Output {
        let procs = self.dir.join("cgroup.procs");
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(r#"echo $$ > "$0" && exec unshare --mount --pid --uts --fork "$@""#)
            .arg(&procs)
            .arg(env!("CARGO_BIN_EXE_memspike"))
            .args(args);
        cmd.output().expect("run sh")
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        // Everything run inside has normally exited (output() waited); an empty group rmdirs
        // at once. Whatever is left is killed, and its exit waited for on a pidfd: a process
        // leaves its group's cgroup.procs as it exits, before its pidfd becomes readable. A
        // member may have forked meanwhile: read again until the group is empty.
        loop {
            let left = read_procs(&self.dir);
            if left.is_empty() {
                break;
            }
            for pid in left {
                // pidfd first, so that the wait is for this process even once it is reaped.
                let fd = rustix::process::Pid::from_raw(pid as i32).and_then(|p| {
                    rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
                });
                // A member of the test's own group.
                signal(pid as i32, nix::sys::signal::Signal::SIGKILL);
                if let Some(fd) = fd {
                    assert!(
                        readable_within(&fd, GUARD),
                        "member {pid} of the test's group outlived SIGKILL for {GUARD:?}"
                    );
                }
            }
        }
        std::fs::remove_dir(&self.dir).expect("remove the test's group");
    }
}

pub fn read_procs(dir: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// The reference Go program (`reference/go`, without its HTTP server, as the fidelity harness
/// builds it), built once per test binary with Debian's Go; `None` outside CI when there is no
/// Go here (under CI that is a failure: `cargo xtask test` installs golang-go).
pub fn go_reference() -> Option<&'static std::path::Path> {
    use std::path::Path;
    static BUILT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let go = Path::new("/usr/bin/go");
            if !go.exists() {
                assert!(
                    !under_ci(),
                    "CI needs Go to build reference/go (cargo xtask test installs golang-go)"
                );
                skip("a real Go program", "no /usr/bin/go");
                return None;
            }
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-reference");
            std::fs::create_dir_all(&out).unwrap();
            let binary = out.join("memspike-ref");
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reference/go");
            let status = std::process::Command::new(go)
                .args(["build", "-tags", "nointeractive", "-o"])
                .arg(&binary)
                .arg(".")
                .current_dir(&src)
                .env("GOCACHE", out.join("gocache"))
                .env("GOPATH", out.join("gopath"))
                .env("GOTOOLCHAIN", "local")
                .env("CGO_ENABLED", "0")
                .status()
                .expect("go build runs");
            assert!(status.success(), "go build of reference/go failed");
            Some(binary)
        })
        .as_deref()
}

/// The reference JavaScript program (`reference/javascript/spike.js`), for `node`; `None`
/// outside CI when there is no Debian `node` here (under CI that is a failure: `cargo xtask
/// test` installs nodejs).
pub fn node_reference() -> Option<PathBuf> {
    if !std::path::Path::new("/usr/bin/node").exists() {
        assert!(
            !under_ci(),
            "CI needs Node.js for reference/javascript (cargo xtask test installs nodejs)"
        );
        skip("a real Node.js program", "no /usr/bin/node");
        return None;
    }
    Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../reference/javascript/spike.js"))
}

/// The reference Java program (`reference/java/Spike.java`), compiled once per test binary with
/// Debian's JDK into a directory for `java -cp`; `None` outside CI when there is no JDK here
/// (under CI that is a failure: `cargo xtask test` installs openjdk-17-jdk-headless).
pub fn java_reference() -> Option<&'static std::path::Path> {
    use std::path::Path;
    static BUILT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let javac = Path::new("/usr/bin/javac");
            if !javac.exists() || !Path::new("/usr/bin/java").exists() {
                assert!(
                    !under_ci(),
                    "CI needs a JDK for reference/java (cargo xtask test installs openjdk-17-jdk-headless)"
                );
                skip("a real Java program", "no /usr/bin/javac or /usr/bin/java");
                return None;
            }
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("java-reference");
            std::fs::create_dir_all(&out).unwrap();
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reference/java/Spike.java");
            let status = std::process::Command::new(javac)
                .arg("-d")
                .arg(&out)
                .arg(&src)
                .status()
                .expect("javac runs");
            assert!(status.success(), "javac of reference/java failed");
            Some(out)
        })
        .as_deref()
}
