//! `memspike exec` as root, for real: a real Go program (the reference, built with Debian's Go
//! 1.19) is OOM-killed and its gctrace cycles are in the report; a program in another language
//! gets the kernel's evidence only; exit codes and signals are passed on; Ctrl-C cleans up. (A
//! command that does not exist is among `experiment_root`'s bad command lines.)

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Output, Stdio},
};

use common::{groups_of, memspike, serial, u};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// Runs `memspike exec ARGS`, with `stdin` as the command's input; checks no group is left.
fn exec(args: &[&str], stdin: &[u8]) -> (i32, Output, Value) {
    let _serial = serial();
    let mut child = memspike()
        .arg("exec")
        .args(args)
        .env_remove("MEMSPIKE_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start memspike exec");
    let pid = child.id();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().expect("memspike exec runs");
    assert!(groups_of(pid).is_empty(), "groups left behind");
    // With --json, stdout is the report alone (the command's own output went to stderr).
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), out, report)
}

#[test]
fn a_real_go_program_is_oom_killed_with_its_gctrace_cycles_in_the_report() {
    if !common::require_root("exec of the Go reference") {
        return;
    }
    let Some(binary) = common::go_reference() else {
        return;
    };
    let binary = binary.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (code, out, r) = exec(
        &[
            "--json",
            "--limit",
            "32MiB",
            "--report",
            dir.path().to_str().unwrap(),
            "--",
            binary,
            "-limit",
            "32MiB",
        ],
        b"",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(r["outcome"], "oom_killed", "{r:#}");
    assert_eq!(r["limit_bytes"], 32 * MIB);
    assert_eq!(r["runtime"], "go");
    // The program's own output passed through (to stderr, as the report is on stdout): it
    // reported the spike, never the end.
    assert!(stderr.contains("phase=spike"), "{stderr}");
    assert!(!stderr.contains("phase=done"), "{stderr}");
    // gctrace went on to stderr unchanged, and its cycles are in the report.
    assert!(stderr.contains("gc 1 @"), "{stderr}");
    let cycles = r["runtime_cycles"].as_array().expect("cycles");
    assert_eq!(r["gc_cycles"], cycles.len() as u64);
    // The cycle that marked the spike: the goal after it is about twice what it left live.
    let spike = cycles
        .iter()
        .find(|c| u(&c["heap_live_bytes"]) >= 20 * MIB)
        .unwrap_or_else(|| panic!("no cycle marked the spike: {cycles:#?}"));
    let ratio = u(&spike["next_goal_bytes"]) as f64 / u(&spike["heap_live_bytes"]) as f64;
    assert!(
        (1.8..2.2).contains(&ratio),
        "next goal/live {ratio}: {spike:#}"
    );
    assert!(u(&r["next_goal_bytes"]) > 32 * MIB, "{r:#}");
    // The report's other forms: the group's usage, the goals gctrace gave, the kill.
    common::assert_report_dir(
        dir.path(),
        &r,
        &["cgroup usage", "next GC goal", "cgroup limit", "OOM kill"],
    );
    // The kernel's victim is the program.
    assert_eq!(
        r["kernel"]["oom_victim"]["pid"], r["worker"]["pid"],
        "{r:#}"
    );
    assert!(
        r["verdict"].as_str().unwrap().contains("(the command)"),
        "{r:#}"
    );
    // The timeline sampled the group as the heap grew to the limit.
    let samples = r["timeline"]["samples"].as_array().unwrap();
    assert!(samples.len() >= 2, "{:#}", r["timeline"]);
    let peak = samples
        .iter()
        .filter_map(|s| s["usage_bytes"].as_u64())
        .max();
    assert!(peak.unwrap_or(0) > 24 * MIB, "{:#}", r["timeline"]);
}

#[test]
fn a_program_in_another_language_gets_the_kernels_evidence_only() {
    if !common::require_root("exec of python3") {
        return;
    }
    let (code, _, r) = exec(
        &[
            "--json",
            "--limit",
            "32MiB",
            "--",
            "python3",
            "-c",
            "b = bytearray(64 << 20)",
        ],
        b"",
    );
    assert_eq!(code, 0);
    assert_eq!(r["outcome"], "oom_killed", "{r:#}");
    assert_eq!(r["runtime"], Value::Null);
    assert_eq!(r["runtime_cycles"], Value::Null);
    assert_eq!(r["gc_cycles"], Value::Null);
    assert_eq!(
        r["kernel"]["oom_victim"]["pid"], r["worker"]["pid"],
        "{r:#}"
    );
    assert!(u(&r["cgroup"]["peak_bytes"]) >= 30 * MIB, "{r:#}");
    assert!(
        r["verdict"]
            .as_str()
            .unwrap()
            .contains("no runtime trace was recognised"),
        "{r:#}"
    );
}

#[test]
fn exit_codes_signals_stdin_and_stdout_pass_through() {
    if !common::require_root("exec exit codes") {
        return;
    }
    // stdin reaches the command; its stdout goes to stderr, so that stdout is the report.
    let (code, out, r) = exec(
        &[
            "--json",
            "--no-trace",
            "--",
            "sh",
            "-c",
            "read x; echo got $x; exit 7",
        ],
        b"hello\n",
    );
    assert_eq!(code, 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("got hello\n"));
    assert_eq!(
        (r["outcome"].clone(), r["exit"]["code"].clone()),
        ("exited".into(), 7.into())
    );
    // --expect: exit means any end but an OOM kill; survive does not match status 7.
    let (code, _, _) = exec(
        &["--json", "--no-trace", "--expect", "exit", "--", "false"],
        b"",
    );
    assert_eq!(code, 0);
    let (code, _, _) = exec(
        &["--json", "--no-trace", "--expect", "survive", "--", "false"],
        b"",
    );
    assert_eq!(code, 3);
    let (code, _, r) = exec(&["--json", "--no-trace", "--", "true"], b"");
    assert_eq!((code, r["outcome"].clone()), (0, "survived".into()));
    // A signal the command takes is its own end.
    let (code, _, r) = exec(
        &["--json", "--no-trace", "--", "sh", "-c", "kill -TERM $$"],
        b"",
    );
    assert_eq!(code, 0);
    assert_eq!(r["outcome"], "signaled", "{r:#}");
    assert_eq!(r["exit"]["signal"], "SIGTERM");
}

/// SIGINT and SIGTERM to memspike are passed on to the command, which ends as it does; memspike
/// then reports, removes the group and exits 130.
#[test]
fn stop_signals_are_passed_on_and_everything_is_cleaned_up() {
    if !common::require_root("exec and a stop signal") {
        return;
    }
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        let _serial = serial();
        let mut child = memspike()
            .args(["exec", "--json", "--no-trace", "--", "sleep", "60"])
            .env_remove("MEMSPIKE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        // memspike logs the command's start once it runs in the group and stop signals are
        // passed on to it: read its log up to that line (the rest is kept for the asserts).
        let mut log = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                log.read_line(&mut line).expect("read memspike's log") > 0,
                "memspike ended before it started the command"
            );
            if line.contains("started inside the group") {
                break;
            }
        }
        let rest = std::thread::spawn(move || {
            let mut rest = String::new();
            log.read_to_string(&mut rest).map(|_| rest)
        });
        // Our own child.
        kill(Pid::from_raw(pid as i32), sig).expect("signal memspike");
        let out = child.wait_with_output().unwrap();
        let stderr = rest
            .join()
            .expect("the log reader")
            .expect("read memspike's log");
        assert_eq!(out.status.code(), Some(130), "{sig}: {stderr}");
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["outcome"], "signaled", "{r:#}");
        assert_eq!(
            r["exit"]["signal"],
            sig.as_str(),
            "the command got the signal itself"
        );
        assert!(groups_of(pid).is_empty());
    }
}
