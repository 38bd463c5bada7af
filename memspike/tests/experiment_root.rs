//! The real experiment, end to end, as a user runs it (needs root): the memspike binary in a
//! real memory cgroup, killed by the real OOM killer, or surviving with `--gc`; and nothing
//! left behind afterwards, whatever happened.

mod common;

use common::{groups_of, memspike, run_json, serial, u, wait_for_pause};

use std::process::Stdio;

use memspike_cgroup::Hierarchy;
use nix::sys::signal::Signal;
use serde_json::Value;

const MIB: u64 = 1 << 20;
const LIMIT: u64 = 32 * MIB;

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
    // While the worker waits, another process (this test, outside the group) takes 64 Ki
    // user-mode page faults.
    let foreign_pages = 65_536;
    fault_pages(foreign_pages);
    common::signal(worker, Signal::SIGCONT);
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

/// Maps `pages` fresh 4 KiB pages (no THP) and writes one byte in each: one user-mode page
/// fault per page, in this process.
fn fault_pages(pages: u64) {
    use nix::sys::mman::{MapFlags, MmapAdvise, ProtFlags, madvise, mmap_anonymous, munmap};
    let len = (pages * 4096) as usize;
    let size = std::num::NonZeroUsize::new(len).expect("at least one page");
    // SAFETY: a fresh private anonymous mapping of our own, written inside its bounds and
    // unmapped before returning; nothing else refers to it.
    unsafe {
        let p = mmap_anonymous(
            None,
            size,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_PRIVATE,
        )
        .expect("a private anonymous mapping");
        madvise(p, len, MmapAdvise::MADV_NOHUGEPAGE).expect("no huge pages");
        for i in (0..len).step_by(4096) {
            std::ptr::write_volatile(p.cast::<u8>().as_ptr().add(i), 1);
        }
        munmap(p, len).expect("unmapped");
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
    assert_eq!(written["events"], r["events"]);
    // The chart and the page beside it: the survivor's heap, its goals, its two collections.
    common::assert_report_dir(
        dir.path(),
        &r,
        &[
            "live",
            "garbage",
            "next GC goal",
            "GC trigger",
            "cgroup usage",
            "cgroup limit",
        ],
    );
}

/// This machine's memory, for a limit that cannot fit it.
fn mem_total() -> u64 {
    use procfs::Current;
    procfs::Meminfo::current().expect("/proc/meminfo").mem_total
}

#[test]
fn bad_input_exits_2_with_one_clear_message_and_leaves_nothing() {
    // Everything here is refused before anything is created (and before the root check).
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let file = file.to_str().unwrap();
    let broken = scratch.path().join("broken.toml");
    std::fs::write(&broken, "name = \"broken\"\n\n[[step]]\nalloc = \"lots\"\n").unwrap();
    let broken = broken.to_str().unwrap();
    let broken_says = format!("{broken}:4:9: invalid size \"lots\"");
    let huge = scratch.path().join("huge.toml");
    std::fs::write(&huge, "name = \"huge\"\n[[step]]\nalloc = \"1EiB\"\n").unwrap();
    let huge = huge.to_str().unwrap();
    let typo = scratch.path().join("typo.toml");
    std::fs::write(
        &typo,
        "name = \"typo\"\n[[step]]\nrepeat = 100000\n[[step.steps]]\nalloc = \"1MiB\"\nchunk = \"1KiB\"\n",
    )
    .unwrap();
    let typo = typo.to_str().unwrap();
    let long = scratch.path().join("long.toml");
    std::fs::write(&long, "name = \"long\"\n[[step]]\nwait = \"30days\"\n").unwrap();
    let long = long.to_str().unwrap();
    let too_big = format!("{}", 2 * mem_total());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "--limit", "abc"], "invalid size"),
        (
            vec!["run", "--limit", "0"],
            "below what the worker itself needs",
        ),
        (
            vec!["run", "--limit", "1MiB"],
            "below what the worker itself needs",
        ),
        (vec!["run", "--limit", "5EiB"], "does not fit this machine"),
        (vec!["run", "--limit", "1PiB"], "does not fit this machine"),
        (
            vec!["run", "--limit", &too_big],
            "does not fit this machine",
        ),
        (
            vec!["run", "--interactive", "--limit", &too_big],
            "does not fit this machine",
        ),
        (vec!["run", "--spike", "1.5"], "between 0 and 1"),
        (
            vec!["run", "--spike", "1e-300"],
            "leaves a spike of 0 bytes",
        ),
        (vec!["run", "--spike", "-0.1"], "between 0 and 1"),
        (vec!["run", "--spike", "abc"], "not a number"),
        (vec!["run", "--gogc", "lots"], "GOGC"),
        (
            vec!["run", "--gogc", "-1"],
            "GOGC must be a whole non-negative",
        ),
        (
            vec!["run", "--pause-at", "never"],
            "no step has that name; the steps are spike, release, remainder",
        ),
        (vec!["run", "--scenario", "nope"], "memspike scenarios"),
        (vec!["run", "--scenario", broken], &broken_says),
        (vec!["run", "--scenario", huge], "do not fit in the heap"),
        (vec!["run", "--scenario", typo], "at most 1000000"),
        (vec!["run", "--scenario", long], "waits 30days"),
        (
            vec![
                "run",
                "--watchdog",
                "adaptive:0.5",
                "--watchdog-interval",
                "1ms",
            ],
            "shorter than 100ms",
        ),
        (vec!["run", "--alloc-rate", "0"], "below 1MiB"),
        (
            vec!["run", "--scenario", "churn", "--spike", "0.5"],
            "shape the seed scenario only",
        ),
        (vec!["run", "--memory-limit", "lots"], "or off"),
        (vec!["run", "--runtime", "go1.18"], "go1.19 to go1.27"),
        (vec!["run", "--watchdog", "magic:1"], "watermarks:F,F,..."),
        (
            vec!["run", "--watchdog-driver", "cgroup"],
            "--watchdog <POLICY>",
        ),
        (vec!["run", "--user", "no-such-user-x"], "no such user"),
        (vec!["run", "--user", "root"], "must not run as root"),
        (vec!["run", "--user", ""], "--user is empty"),
        (
            vec!["run", "--report", file],
            "it is a file, not a directory",
        ),
        (vec!["run", "--report", "/proc/x"], "cannot create it"),
        (vec!["run", "--report", "/sys/x"], "cannot create it"),
        (vec![], "no command given"),
        (
            vec!["compare", "--policies", "gogc100,nosuch"],
            "no built-in policy is called \"nosuch\"",
        ),
        (vec!["compare", "--policies", "gogc100,gogc100"], "gogc100"),
        (
            vec!["threshold", "--knob", "spike", "--scenario", "churn"],
            "--knob spike varies the seed scenario's spike",
        ),
        (vec!["threshold", "--range", "0.5"], "is not LO,HI"),
        (
            vec!["threshold", "--range", "0.9,0.5"],
            "the low end must be below",
        ),
        (
            vec!["threshold", "--knob", "gogc", "--range", "0,50"],
            "[1, 10000]",
        ),
        (
            vec!["threshold", "--knob", "limit", "--range", "1MiB,64MiB"],
            "the range's end 1.0 MiB cannot run",
        ),
        (
            vec!["threshold", "--knob", "heap"],
            "give spike, limit, gogc or gomemlimit",
        ),
        (
            vec!["exec", "--", "memspike-no-such-command", "x"],
            "memspike: error: cannot run \"memspike-no-such-command\"",
        ),
    ];
    for (args, says) in cases {
        let child = memspike()
            .args(&args)
            .env_remove("MEMSPIKE_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got {stderr}");
        assert!(
            lines[0].starts_with("memspike: error: "),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        // Where groups can be listed (as root), none was created.
        if Hierarchy::discover().is_ok() {
            assert!(groups_of(pid).is_empty(), "{args:?}");
        }
    }
    assert!(!std::path::Path::new("/proc/x").exists() && !std::path::Path::new("/sys/x").exists());
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
    let worker = wait_for_pause(&mut child, "remainder");
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
    common::signal(pid as i32, Signal::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["outcome"], "interrupted");
    assert_eq!(
        r["error"],
        "interrupted by SIGINT before the experiment finished"
    );
    assert!(groups_of(pid).is_empty(), "group left behind");
    // SAFETY: signal 0 only checks whether the process exists.
    let alive = common::alive(worker);
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
    common::signal(pid as i32, Signal::SIGKILL);
    child.wait().unwrap();
    // The worker dies with it (PR_SET_PDEATHSIG) and the kernel unloads the programs with
    // the last file descriptor; only the group directories stay behind.
    common::wait_for_exit(worker, "the worker to die with its SIGKILLed supervisor");
    common::assert_unloaded(&programs, "after SIGKILL of the supervisor");
    assert!(
        !groups_of(pid).is_empty(),
        "a SIGKILLed supervisor cannot remove its group"
    );
    // It mounted tracefs only in a namespace of its own, which died with it.
    assert_eq!(
        std::path::Path::new("/sys/kernel/tracing/events").exists(),
        tracefs_before,
        "a tracefs mount outlived the supervisor"
    );
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

/// The children of `parent` whose state (from /proc/PID/stat) is `state`.
fn children_in_state(parent: u32, state: char) -> Vec<i32> {
    procfs::process::all_processes()
        .expect("/proc")
        .flatten()
        .filter_map(|p| p.stat().ok())
        .filter(|s| s.state == state && u32::try_from(s.ppid).ok() == Some(parent))
        .map(|s| s.pid)
        .collect()
}

#[test]
fn a_signal_sent_to_the_worker_between_fork_and_exec_is_not_lost() {
    if !common::require_root("a signal in the worker's fork-exec window") {
        return;
    }
    let _serial = serial();
    // The hook stops the forked worker before it execs; the signal is sent then.
    let child = memspike()
        .args(["run", "--json", "--no-trace"])
        .env("MEMSPIKE_TEST_STOP_BEFORE_EXEC", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // The forked worker stops itself before it execs, and nothing says so: the supervisor is
    // blocked in spawn() until the exec, so it logs nothing, and of a process this test is not
    // the parent of, no stop is reported (see `common::wait_until_stopped`). So /proc is read.
    let mut stopped = Vec::new();
    common::poll_until("the forked worker to stop", || {
        stopped = children_in_state(pid, 'T');
        !stopped.is_empty()
    });
    let worker = stopped[0];
    // The supervisor's stopped child, which this test started.
    common::signal(worker, Signal::SIGTERM);
    common::signal(worker, Signal::SIGCONT);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The signal was the worker's: it died of it. The supervisor was not interrupted.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["outcome"], "error", "{r:#}");
    assert_eq!(r["worker"]["exit"], "killed by SIGTERM", "{r:#}");
    assert!(groups_of(pid).is_empty());
}

#[test]
fn a_stop_signal_while_the_report_is_written_still_exits_130_and_keeps_the_outcome() {
    if !common::require_root("a late stop signal") {
        return;
    }
    let _serial = serial();
    // memspike's stdout is a one-page pipe nobody reads yet: it blocks writing the report,
    // after the worker has been OOM-killed and the outcome decided.
    let (read_end, write_end, capacity) = small_pipe();
    let mut child = memspike()
        .args(["run", "--json", "--no-trace"])
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // The report's first bytes in the pipe: the outcome is decided and memspike is writing.
    // The report is larger than the pipe (checked below), so it cannot finish until this test
    // reads: the signal comes while the report is written, whenever it is delivered.
    assert!(
        common::readable_within(&read_end, common::GUARD),
        "memspike wrote no report within {:?}",
        common::GUARD
    );
    common::signal(pid as i32, Signal::SIGINT);
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(read_end), &mut json).unwrap();
    assert!(
        json.len() > capacity,
        "a report of {} bytes fits the {capacity}-byte pipe: memspike was not held writing it",
        json.len()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "a late signal is not ignored");
    let r: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(r["outcome"], "oom_killed", "what was observed is kept");
    assert!(groups_of(pid).is_empty());
}

/// A pipe with the smallest capacity the kernel allows (one page), and that capacity.
fn small_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd, usize) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("a pipe");
    let capacity = fcntl(&write, FcntlArg::F_SETPIPE_SZ(4096)).expect("a one-page pipe");
    (read, write, capacity as usize)
}

#[test]
fn gogc_off_collects_nothing_and_is_killed() {
    if !common::require_root("--gogc off") {
        return;
    }
    let (code, r) = run_json(&["--gogc", "off", "--no-trace", "--expect", "oom"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["outcome"], "oom_killed");
    assert_eq!(r["settings"]["gogc"], "off");
    assert_eq!(r["gc_cycles"], 0);
    assert_eq!(r["died_in"], "remainder");
    assert_eq!(
        r["next_gc_after_spike_bytes"],
        Value::Null,
        "no goal with GOGC=off"
    );
    let verdict = r["verdict"].as_str().unwrap();
    assert!(verdict.contains("GOGC=off"), "{verdict}");
    // Every event's heap says so too: no goal and no trigger.
    for e in r["events"].as_array().unwrap() {
        assert_eq!(e["heap"]["num_gc"], 0, "{e}");
    }
}

/// `/proc/PID/status`, as procfs reads it.
fn status(pid: i32) -> procfs::process::Status {
    procfs::process::Process::new(pid)
        .and_then(|p| p.status())
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"))
}

#[test]
fn the_worker_runs_unprivileged_with_no_way_back() {
    if !common::require_root("the worker's credentials") {
        return;
    }
    let _serial = serial();
    let mut child = memspike()
        .args(["run", "--json", "--no-trace", "--pause-at", "spike"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let worker = wait_for_pause(&mut child, "spike");
    let s = status(worker);
    common::signal(worker, Signal::SIGCONT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let uids = [s.ruid, s.euid, s.suid, s.fuid];
    assert!(
        uids.iter().all(|u| *u == s.ruid && *u != 0),
        "Uid: {uids:?}"
    );
    let gids = [s.rgid, s.egid, s.sgid, s.fgid];
    assert!(gids.iter().all(|g| *g != 0), "Gid: {gids:?}");
    assert_ne!(
        s.ruid, 65534,
        "not nobody: a private uid nothing else runs as"
    );
    assert_eq!(
        (s.capeff, s.capprm, s.capbnd),
        (0, 0, Some(0)),
        "effective, permitted and bounding sets"
    );
    assert_eq!(s.nonewprivs, Some(1));
    // The OOM victim the kernel saw runs as that uid too.
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["outcome"], "oom_killed");
}

/// Issue 17: churn at 64 MiB sends some 3,000 events and many collections, far more than the
/// bounded timeline keeps. Its report lists every collection it counts, and `--report DIR`
/// holds every event in `events.jsonl` (its collections the same), next to the three report
/// files and nothing else (no temporary file left).
#[test]
fn a_long_run_lists_every_collection_and_logs_every_event() {
    if !common::require_root("churn at 64 MiB") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, r) = run_json(&[
        "--scenario",
        "churn",
        "--limit",
        "64MiB",
        "--report",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        code == 0 || r["outcome"] == "oom_killed",
        "exit {code}: {r}"
    );
    let gc = u(&r["gc_cycles"]);
    assert!(gc > 1, "{gc} collections");
    let cycles = r["cycles"].as_array().expect("cycles");
    assert_eq!(cycles.len() as u64, gc);
    let numbers: Vec<u64> = cycles.iter().map(|c| u(&c["n"])).collect();
    assert_eq!(numbers, (1..=gc).collect::<Vec<_>>());
    let total = u(&r["events_total"]);
    assert!(
        total > r["events"].as_array().unwrap().len() as u64,
        "{total} events, all in the timeline: the test would prove nothing"
    );
    assert!(r["steps"].as_array().unwrap().len() > 1_000, "steps");

    let log = std::fs::read_to_string(dir.path().join("events.jsonl")).expect("events.jsonl");
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events.len() as u64, total);
    assert_eq!(events[0]["event"], "ready");
    let logged: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "gc")
        .map(|e| u(&e["cycle"]["n"]))
        .collect();
    assert_eq!(logged, numbers);

    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["events.jsonl", "report.html", "report.json", "timeline.svg"]
    );
}

/// `events.jsonl` is written as the run goes: while the worker is paused before `release`, the
/// file already holds every event up to the pause (a run killed there would leave them), and
/// after the run every event.
#[test]
fn the_event_log_is_written_as_the_run_goes() {
    if !common::require_root("--report DIR's event log") {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut child = memspike()
        .args(["run", "--json", "--pause-at", "release", "--report"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let worker = wait_for_pause(&mut child, "release");
    let log = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let kinds: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].to_string())
        .collect();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("\"ready\""),
        "{log}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("\"paused\""),
        "{log}"
    );
    assert!(!dir.path().join("report.json").exists());
    common::signal(worker, Signal::SIGCONT);
    let out = child.wait_with_output().unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let whole = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    assert!(
        whole.starts_with(&log),
        "the file grew, and was not written anew"
    );
    assert_eq!(whole.lines().count() as u64, u(&r["events_total"]));
}
