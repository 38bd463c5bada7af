//! The real experiment, end to end, as a user runs it (needs root): the memspike binary in a
//! real memory cgroup, killed by the real OOM killer, or surviving with `--gc`; and nothing
//! left behind afterwards, whatever happened.

mod common;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Output, Stdio},
};

use memspike::cgroup::Hierarchy;
use serde_json::Value;

const MIB: u64 = 1 << 20;
const LIMIT: u64 = 32 * MIB;

fn memspike() -> Command {
    Command::new(env!("CARGO_BIN_EXE_memspike"))
}

/// Directories of groups a supervisor with this pid created, in both hierarchies.
fn groups_of(pid: u32) -> Vec<PathBuf> {
    let h = Hierarchy::discover().expect("preflight passes on the test machine");
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

/// Runs `memspike run --json ARGS`, checks it cleaned up, and returns the exit code and report.
fn run_json(args: &[&str]) -> (i32, Value) {
    let _serial = serial();
    let child = memspike()
        .arg("run")
        .arg("--json")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start memspike");
    let pid = child.id();
    let Output {
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

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn the_default_run_is_oom_killed_in_the_remainder() {
    if !common::require_root("the default 32 MiB experiment") {
        return;
    }
    let (code, r) = run_json(&["--limit", "32MiB", "--expect", "oom"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["outcome"], "oom_killed", "{r:#}");
    assert_eq!(r["limit_bytes"], LIMIT);
    assert_eq!(r["died_in"], "remainder");
    assert_eq!(r["gc_cycles"], 1);
    let next_gc = u(&r["next_gc_after_spike_bytes"]);
    assert!(
        (55 * MIB..=66 * MIB).contains(&next_gc),
        "next GC {next_gc}"
    );
    let ratio = r["garbage_ratio"].as_f64().expect("ratio");
    assert!((7.0..=11.0).contains(&ratio), "ratio {ratio}");
    assert_eq!(r["needed_bytes"], LIMIT / 10);
    assert!(u(&r["cgroup"]["oom_kills"]) >= 1);
    assert!(u(&r["cgroup"]["peak_bytes"]) >= LIMIT - MIB);
    assert!(
        r["verdict"]
            .as_str()
            .unwrap()
            .starts_with("killed while allocating 3.2 MiB")
    );

    // The heap is real: after the spike, the group is charged at least the heap's resident
    // pages, plus the worker's own memory (well under 2 MiB after start-up transients).
    let end_of_spike = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "end" && e["phase"] == "spike")
        .expect("the spike ended");
    let heap = &end_of_spike["heap"];
    let resident = u(&heap["live"]) + u(&heap["garbage"]) + u(&heap["free"]);
    let charged = u(&end_of_spike["cgroup_usage_bytes"]);
    assert!(
        charged >= resident && charged <= resident + 2 * MIB,
        "charged {charged}, heap {resident}"
    );
}

#[test]
fn with_gc_after_release_it_survives_below_the_limit() {
    if !common::require_root("the --gc experiment") {
        return;
    }
    let (code, r) = run_json(&["--limit", "32MiB", "--gc", "--expect", "survive"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["outcome"], "survived", "{r:#}");
    assert_eq!(r["died_in"], Value::Null);
    assert_eq!(r["gc_cycles"], 2);
    assert!(u(&r["cgroup"]["peak_bytes"]) < LIMIT, "{r:#}");
    assert_eq!(r["cgroup"]["oom_kills"], 0);
    assert_eq!(r["kernel"]["oom_victim"], Value::Null);
}

#[test]
fn no_trace_says_so_and_still_reports() {
    if !common::require_root("--no-trace") {
        return;
    }
    let (code, r) = run_json(&["--no-trace", "--expect", "oom"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["kernel"]["tracing"], "unavailable: --no-trace");
    // --no-trace means no eBPF: the figures that need none still come, naming their source.
    assert_eq!(r["kernel"]["page_faults"]["source"], "memory.stat pgfault");
    assert_eq!(r["kernel"]["reclaim"], Value::Null);
    assert_eq!(r["died_in"], "remainder");
}

/// Runs of this binary go one at a time (every run holds this lock): they share the CPU and
/// the kernel log.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_foreign_process_faulting_meanwhile_is_not_counted_and_programs_are_unloaded() {
    if !common::require_root("filtering by cgroup") {
        return;
    }
    let _serial = serial();
    let mut child = memspike()
        .args(["run", "--json", "--pause-at", "spike"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let worker = wait_for_pause(&mut child, "spike");
    let ours = common::programs_of(child.id());
    assert!(!ours.is_empty(), "the observer is attached during the run");
    // While the worker waits, another process (outside the group) faults in 64 Ki pages.
    let foreign_pages = 65_536;
    let status = Command::new("/usr/bin/python3")
        .args([
            "-c",
            &format!(
                "b = bytearray({foreign_pages} * 4096)\nfor i in range(0, len(b), 4096): b[i] = 1"
            ),
        ])
        .status()
        .expect("run /usr/bin/python3");
    assert!(status.success());
    // SAFETY: resuming our own grandchild.
    unsafe { libc::kill(worker, libc::SIGCONT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = u(&r["kernel"]["page_faults"]["total"]);
    assert!(
        total < foreign_pages / 4,
        "{total} faults counted: the foreign ones leaked in"
    );
    assert!(
        total > 7_000,
        "{total} faults: the worker's were not counted"
    );
    common::assert_unloaded(&ours, "after the run");
}

/// Reads memspike's log until the worker says it paused before `phase`; returns its pid.
fn wait_for_pause(child: &mut std::process::Child, phase: &str) -> i32 {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "memspike ended before pausing"
        );
        if line.contains(&format!("paused before {phase}")) {
            let after = line
                .split("worker ")
                .nth(1)
                .expect("the line names the worker");
            // Keep draining stderr so memspike never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
            return after.split_whitespace().next().unwrap().parse().unwrap();
        }
    }
}

#[test]
fn an_unexpected_outcome_exits_3_and_report_dir_gets_the_json() {
    if !common::require_root("--expect and --report") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, r) = run_json(&[
        "--gc",
        "--expect",
        "oom",
        "--report",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 3);
    let written: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(written["outcome"], r["outcome"]);
    assert_eq!(written["events"], r["events"]);
}

#[test]
fn bad_input_exits_2_with_one_clear_message_and_leaves_nothing() {
    // Parsing happens before anything is created, so this needs no root.
    for (args, says) in [
        (&["--limit", "abc"][..], "invalid size"),
        (&["--limit", "0"], "below what the worker itself needs"),
        (&["--limit", "1MiB"], "below what the worker itself needs"),
        (&["--spike", "1.5"], "between 0 and 1"),
        (&["--gogc", "lots"], "GOGC"),
        (&["--pause-at", "never"], "invalid value"),
    ] {
        let child = memspike()
            .arg("run")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
        // Where groups can be listed (as root), none was created.
        if Hierarchy::discover().is_ok() {
            assert!(groups_of(pid).is_empty());
        }
    }
}

#[test]
fn ctrl_c_mid_run_kills_the_worker_and_removes_the_group() {
    if !common::require_root("interrupting a run") {
        return;
    }
    let _serial = serial();
    let mut child = memspike()
        .args(["run", "--json", "--pause-at", "remainder"])
        .env("MEMSPIKE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait (by reading, not sleeping) until the worker has stopped itself before the
    // remainder: the spike's 28.8 MiB are resident inside the group.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let worker: i32 = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "memspike ended before pausing"
        );
        if line.contains("paused before remainder") {
            let after = line
                .split("worker ")
                .nth(1)
                .expect("the line names the worker");
            break after.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let programs = common::programs_of(pid);
    assert!(
        !programs.is_empty(),
        "the observer is attached during the run"
    );
    let twin = Hierarchy::discover().unwrap().v2_twin_parent().is_some();
    assert_eq!(
        groups_of(pid).len(),
        if twin { 2 } else { 1 },
        "the group exists mid-run"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["outcome"], "error");
    assert!(r["error"].as_str().unwrap().contains("interrupted"));
    assert!(groups_of(pid).is_empty(), "group left behind");
    // SAFETY: signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(worker, 0) } == 0;
    assert!(!alive, "worker {worker} still alive");
    common::assert_unloaded(&programs, "after SIGINT");
}

#[test]
fn a_killed_supervisor_takes_its_worker_along_and_the_next_run_removes_its_group() {
    if !common::require_root("SIGKILL of the supervisor") {
        return;
    }
    let _serial = serial();
    let tracefs_before = std::path::Path::new("/sys/kernel/tracing/events").exists();
    let mut child = memspike()
        .args(["run", "--json", "--pause-at", "remainder"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let worker = wait_for_pause(&mut child, "remainder");
    let programs = common::programs_of(pid);
    assert!(
        !programs.is_empty(),
        "the observer is attached during the run"
    );
    // SAFETY: signalling our own child; SIGKILL leaves it no chance to clean up.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    child.wait().unwrap();
    // The worker dies with it (PR_SET_PDEATHSIG) and the kernel unloads the programs with
    // the last file descriptor; only the group directories stay behind.
    // SAFETY: signal 0 only checks whether the process exists.
    let gone = |pid: i32| unsafe { libc::kill(pid, 0) } != 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gone(worker) || !common::still_loaded(&programs).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "worker or programs outlived the supervisor"
        );
        std::thread::yield_now();
    }
    assert!(
        !groups_of(pid).is_empty(),
        "a SIGKILLed supervisor cannot remove its group"
    );
    // Nor unmount the tracefs it mounted for the OOM tracepoint: leave the machine as found.
    if !tracefs_before {
        let _ = Command::new("umount").arg("/sys/kernel/tracing").status();
    }
    // The next run, whatever it does, sweeps the stale group first.
    let out = memspike()
        .args(["run", "--json", "--no-trace"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        groups_of(pid).is_empty(),
        "the stale group survived the next run"
    );
}
