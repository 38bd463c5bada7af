//! `memspike exec` as root, for real: a real Go program (the reference, built with Debian's Go
//! 1.19) is OOM-killed and its gctrace cycles are in the report; a Java program's GC log is read
//! too (the JVM's unified logging); a program in another language gets the kernel's evidence
//! only; exit codes and signals are passed on; Ctrl-C cleans up. (A
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

/// Issue 20: the seed on the JVM (reference/java, Debian's JDK 17). With a heap maximum of 512 MiB
/// over a 128 MiB group the kernel kills it; with 32 MiB the JVM throws OutOfMemoryError itself
/// and exits 1. Either way `exec` turned the GC log on through JAVA_TOOL_OPTIONS (the JVM's note
/// about it kept from the user) and read its pauses: kind, cause, heap before and after, the
/// committed heap, the pause.
#[test]
fn a_java_programs_gc_log_is_read_whether_the_kernel_or_the_jvm_ends_it() {
    if !common::require_root("exec of the Java reference") {
        return;
    }
    let Some(classes) = common::java_reference() else {
        return;
    };
    let classes = classes.to_str().unwrap();
    let run = |xmx: &str| {
        exec(
            &[
                "--json",
                "--limit",
                "128MiB",
                "--",
                "java",
                "-XX:+UseSerialGC",
                xmx,
                "-cp",
                classes,
                "Spike",
                "134217728",
                "0.9",
            ],
            b"",
        )
    };
    let (code, out, killed) = run("-Xmx512m");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(killed["outcome"], "oom_killed", "{killed:#}\n{stderr}");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(killed["runtime"], "jvm", "{killed:#}");
    assert_eq!(killed["kernel"]["oom_victim"]["comm"], "java", "{killed:#}");
    assert!(
        killed["environment"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "JAVA_TOOL_OPTIONS=-Xlog:gc,gc+init:stderr"),
        "{killed:#}"
    );
    assert!(!stderr.contains("Picked up JAVA_TOOL_OPTIONS"), "{stderr}");
    assert!(
        !stderr.contains("[gc,init]"),
        "memspike's own lines: {stderr}"
    );
    assert_eq!(u(&killed["heap_limit_bytes"]), 512 * MIB, "{killed:#}");
    assert!(
        stderr.contains(
            "the JVM's heap maximum -Xmx512m (512.0 MiB) is above the group's 128.0 MiB limit"
        ),
        "warned before the run: {stderr}"
    );
    let verdict = killed["verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with("killed by the kernel's OOM killer")
            && verdict.contains("after its last collection (Pause "),
        "{verdict}"
    );
    let cycles = killed["runtime_cycles"].as_array().unwrap();
    assert!(!cycles.is_empty(), "{killed:#}");
    for c in cycles {
        assert!(c["kind"].as_str().unwrap().starts_with("Pause "), "{c}");
        assert!(c["pause_ms"].as_f64().is_some(), "{c}");
        assert!(
            u(&c["heap_capacity_bytes"]) >= u(&c["heap_live_bytes"]),
            "{c}"
        );
        assert!(c.get("goal_bytes").is_none(), "no Go figures: {c}");
    }
    let (_, out, thrown) = run("-Xmx32m");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("heap maximum"), "{stderr}");
    assert_eq!(thrown["outcome"], "out_of_heap", "{thrown:#}\n{stderr}");
    assert_eq!(thrown["exit"]["code"], 1, "{thrown:#}");
    assert_eq!(thrown["runtime"], "jvm", "{thrown:#}");
    assert_eq!(u(&thrown["heap_limit_bytes"]), 32 * MIB, "{thrown:#}");
    assert!(
        thrown["verdict"]
            .as_str()
            .unwrap()
            .starts_with("the JVM threw java.lang.OutOfMemoryError (exited with status 1)"),
        "{thrown:#}"
    );
    assert!(
        thrown["stderr_tail"]
            .as_str()
            .unwrap()
            .contains("java.lang.OutOfMemoryError: Java heap space"),
        "{thrown:#}"
    );
    assert!(u(&thrown["cgroup"]["peak_bytes"]) < 64 * MIB, "{thrown:#}");
}

/// Issue 20: with Native Memory Tracking on, `exec` asks the running JVM for its summary
/// through the attach mechanism (as jcmd does) and splits what lay outside the heap by
/// category; it leaves no attach file or socket behind. With `-Xrs` the JVM would die of the
/// SIGQUIT that opens the mechanism: memspike says it will not ask, and the JVM ends as it
/// would have.
#[test]
fn native_memory_tracking_splits_a_jvms_memory_outside_its_heap() {
    if !common::require_root("exec of the Java reference with Native Memory Tracking") {
        return;
    }
    let Some(classes) = common::java_reference() else {
        return;
    };
    let classes = classes.to_str().unwrap();
    let run = |options: &[&str]| {
        let mut args = vec!["--json", "--limit", "128MiB", "--", "java"];
        args.extend_from_slice(options);
        // Half a second before the spike: the JVM is asked while it runs.
        args.extend(["-cp", classes, "Spike", "134217728", "0.9", "500"]);
        exec(&args, b"")
    };
    let (_, out, killed) = run(&["-XX:NativeMemoryTracking=summary", "-Xmx512m"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(killed["outcome"], "oom_killed", "{killed:#}\n{stderr}");
    let nmt = &killed["native_memory"];
    let categories = nmt["categories"]
        .as_array()
        .unwrap_or_else(|| panic!("no summary: {killed:#}\n{stderr}"));
    let committed = |name: &str| {
        categories
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| u(&c["committed_bytes"]))
    };
    assert!(committed("Java Heap").is_some_and(|b| b > 0), "{nmt:#}");
    assert!(committed("Thread").is_some_and(|b| b > 0), "{nmt:#}");
    assert!(
        u(&nmt["committed_bytes"]) > committed("Java Heap").unwrap(),
        "{nmt:#}"
    );
    assert!(
        nmt["t_ms"].as_f64().unwrap() >= 500.0,
        "asked while it ran: {nmt:#}"
    );
    assert!(
        killed["verdict"]
            .as_str()
            .unwrap()
            .contains("Native Memory Tracking at"),
        "{killed:#}"
    );
    let pid = killed["worker"]["pid"].as_u64().unwrap();
    for left in [
        format!("/tmp/.java_pid{pid}"),
        format!("/tmp/.attach_pid{pid}"),
    ] {
        assert!(!std::path::Path::new(&left).exists(), "{left} left behind");
    }

    let (_, out, closed) = run(&["-Xrs", "-XX:NativeMemoryTracking=summary", "-Xmx32m"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "Native Memory Tracking is on, but memspike will not ask the JVM for it: -Xrs"
        ),
        "{stderr}"
    );
    assert_eq!(closed["outcome"], "out_of_heap", "{closed:#}\n{stderr}");
    assert!(closed.get("native_memory").is_none(), "{closed:#}");
}

/// Issue 20: the seed on Node.js (reference/javascript, Debian's Node 18, or Node 20). With an old space of 512
/// MiB over a 128 MiB group the kernel kills it; with 32 MiB V8 aborts with "JavaScript heap
/// out of memory" itself. Either way `exec` put `--trace-gc` on node's command line (node
/// refuses it in NODE_OPTIONS), read the collections V8 printed on **stdout**, kept its
/// verbose lines from the user, and read V8's heap limit from them.
#[test]
fn a_node_programs_gc_trace_is_read_whether_the_kernel_or_v8_ends_it() {
    if !common::require_root("exec of the Node.js reference") {
        return;
    }
    let Some(script) = common::node_reference() else {
        return;
    };
    let script = script.to_str().unwrap();
    let run = |old_space: &str, work: &str| {
        exec(
            &[
                "--json", "--limit", "128MiB", "--", "node", old_space, script, work, "0.9",
            ],
            b"",
        )
    };
    // 32 MiB of work in 128 MiB: it survives, its own lines passed on (with --json, to
    // memspike's stderr), V8's kept back.
    let (_, out, survived) = run("--max-old-space-size=512", "33554432");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(survived["outcome"], "survived", "{survived:#}\n{stderr}");
    assert!(stderr.contains("phase=done"), "{stderr}");
    assert!(!stderr.contains("Memory allocator,"), "{stderr}");
    assert!(!stderr.contains(" ms: Scavenge"), "{stderr}");
    assert_eq!(survived["runtime"], "node", "{survived:#}");
    let (code, out, killed) = run("--max-old-space-size=512", "134217728");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(killed["outcome"], "oom_killed", "{killed:#}\n{stderr}");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(killed["runtime"], "node", "{killed:#}");
    assert_eq!(killed["kernel"]["oom_victim"]["comm"], "node", "{killed:#}");
    assert!(
        stderr.contains("V8's old space --max-old-space-size=512 (512.0 MiB) is above the group's 128.0 MiB limit"),
        "warned before the run: {stderr}"
    );
    let limit = u(&killed["heap_limit_bytes"]);
    assert!(limit > 512 * MIB && limit < 600 * MIB, "{killed:#}");
    let verdict = killed["verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with("killed by the kernel's OOM killer")
            && verdict.contains("V8's own heap limit was")
            && verdict.contains("above the group's 128.0 MiB"),
        "{verdict}"
    );
    let cycles = killed["runtime_cycles"].as_array().unwrap();
    assert!(cycles.len() > 10, "{killed:#}");
    for c in cycles {
        assert!(c["pause_ms"].as_f64().is_some(), "{c}");
        assert!(c["cause"].as_str().is_some(), "{c}");
        assert!(c.get("goal_bytes").is_none(), "no Go figures: {c}");
    }
    let (code, out, aborted) = run("--max-old-space-size=32", "134217728");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("old space"), "no warning: {stderr}");
    assert_eq!(aborted["outcome"], "out_of_heap", "{aborted:#}\n{stderr}");
    assert_eq!(aborted["exit"]["signal"], "SIGABRT", "{aborted:#}");
    // V8's limit is below the group's (Node 20: 35 MiB, the old space and three 1 MiB
    // semi-spaces; Node 18: 80 MiB, with 16 MiB semi-spaces).
    assert!(u(&aborted["heap_limit_bytes"]) < 128 * MIB, "{aborted:#}");
    assert!(
        aborted["verdict"]
            .as_str()
            .unwrap()
            .starts_with("V8 ran out of heap (\"JavaScript heap out of memory\") and aborted"),
        "{aborted:#}"
    );
    assert!(
        aborted["runtime_cycles"]
            .as_array()
            .unwrap()
            .iter()
            // Node 20's V8 says Mark-Compact, Node 18's Mark-sweep.
            .any(|c| c["kind"].as_str().is_some_and(|k| k.starts_with("Mark-"))),
        "{aborted:#}"
    );
    assert!(
        u(&aborted["cgroup"]["peak_bytes"]) < 100 * MIB,
        "{aborted:#}"
    );
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
    // gctrace went on to stderr unchanged, and its cycles are in the report; the pacer's
    // trace, which memspike asked for on its own account, did not (issue 18), but its scan
    // work reached the cycle it preceded.
    assert!(stderr.contains("gc 1 @"), "{stderr}");
    assert!(!stderr.contains("pacer: "), "{stderr}");
    let cycles = r["runtime_cycles"].as_array().expect("cycles");
    assert_eq!(r["gc_cycles"], cycles.len() as u64);
    assert!(
        cycles
            .iter()
            .any(|c| c["scan_work"]["globals_bytes"].as_u64() > Some(0)),
        "{cycles:#?}"
    );
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
        r["verdict"].as_str().unwrap().contains(", the command)"),
        "{r:#}"
    );
    // The timeline sampled the group from the start to the end, however soon the kill came
    // (regression: a kill within the first 10 ms period left one sample), and the group grew
    // to the limit. Whether a 10 ms sample caught the peak of a 25 ms life is chance: the
    // group's own peak says it.
    let samples = r["timeline"]["samples"].as_array().unwrap();
    assert!(samples.len() >= 2, "{:#}", r["timeline"]);
    assert!(
        samples
            .windows(2)
            .all(|w| u(&w[0]["t_ms"]) < u(&w[1]["t_ms"])),
        "{:#}",
        r["timeline"]
    );
    assert!(u(&r["cgroup"]["peak_bytes"]) > 24 * MIB, "{r:#}");
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

/// Regression (issue 17): the kernel killed a child of the command, the shell went on and
/// exited 0, and the report said SURVIVED, "exited 0", without a word about the kill. Any OOM
/// kill in the group is the outcome; the victim is listed with its parent, the shell.
#[test]
fn a_child_oom_killed_under_a_shell_is_an_oom_kill_with_its_parent_named() {
    if !common::require_root("exec of a shell whose child is OOM-killed") {
        return;
    }
    // /usr/bin/python3: a pyenv shim on PATH would start processes of its own.
    let script = r#"/usr/bin/python3 -c "x=bytearray(256<<20)"; echo "child status $?""#;
    let (code, out, r) = exec(
        &["--json", "--limit", "64MiB", "--", "sh", "-c", script],
        b"",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code, 0, "{stderr}");
    // The shell saw its child die of SIGKILL (128 + 9) and exited 0 itself.
    assert_eq!(
        line_of(&out, "child status ").as_deref(),
        Some("137"),
        "{stderr}"
    );
    assert_eq!(r["exit"]["code"], 0, "{r:#}");
    assert_eq!(r["outcome"], "oom_killed", "{r:#}");
    let shell = u(&r["worker"]["pid"]);
    let victims = r["oom_victims"].as_array().expect("oom_victims");
    let python = victims
        .iter()
        .find(|v| v["comm"] == "python3")
        .unwrap_or_else(|| panic!("python3 is not among the victims: {r:#}"));
    assert_ne!(u(&python["pid"]), shell, "{r:#}");
    assert_eq!(python["is_command"], false, "{r:#}");
    if r["kernel"]["oom_victim"]["source"] == "ebpf raw_tp/mark_victim" {
        assert_eq!(
            u(&python["parent_pid"]),
            shell,
            "its parent is the shell: {r:#}"
        );
    } else {
        // Only the raw eBPF program reads the parent; the other sources say it is unknown.
        assert_eq!(python["parent_pid"], Value::Null, "{r:#}");
    }
    let verdict = r["verdict"].as_str().unwrap_or_default();
    assert!(
        verdict.contains(&format!("killed python3 (pid {}", u(&python["pid"])))
            && verdict.contains("the command exited with status 0"),
        "{verdict}"
    );
    // The text report's headline says so too.
    let (code, out, _) = exec(&["--limit", "64MiB", "--", "sh", "-c", script], b"");
    assert_eq!(code, 0);
    let headline = line_of(&out, "memspike exec: ")
        .unwrap_or_else(|| panic!("no headline: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(
        headline.starts_with("OOM-KILLED") && !headline.contains("SURVIVED"),
        "{headline}"
    );
}

/// A process whose first thread has exited (`pthread_exit` in `main`) while another grows: the
/// kernel marks that other thread, and the victim is still the command, under its process id.
/// (Read as the thread's id, it was "a child of pid <memspike>, under the command".)
#[test]
fn a_victim_whose_first_thread_exited_is_the_command() {
    if !common::require_root("exec of a program whose main thread exited") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let program = dir.path().join("grow");
    let source = dir.path().join("grow.c");
    std::fs::write(
        &source,
        "#include <pthread.h>\n#include <stdlib.h>\n#include <string.h>\n\
         static void *grow(void *a) { for (;;) memset(malloc(1 << 20), 1, 1 << 20); return a; }\n\
         int main(void) { pthread_t t; pthread_create(&t, 0, grow, 0); pthread_exit(0); }\n",
    )
    .expect("write the program");
    // `cc`: the C compiler Rust links with.
    let built = std::process::Command::new("cc")
        .args(["-O1", "-pthread", "-o"])
        .arg(&program)
        .arg(&source)
        .status()
        .expect("cc runs");
    assert!(built.success(), "cc failed");
    let (code, _, r) = exec(
        &[
            "--json",
            "--limit",
            "32MiB",
            "--",
            program.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["outcome"], "oom_killed", "{r:#}");
    if r["kernel"]["oom_victim"]["source"] != "ebpf raw_tp/mark_victim" {
        // The other sources have only the marked thread's id.
        common::skip(
            "a victim's process id",
            "the raw mark_victim eBPF program is not attached here",
        );
        return;
    }
    let victims = r["oom_victims"].as_array().expect("oom_victims");
    assert_eq!(victims.len(), 1, "{r:#}");
    assert_eq!(victims[0]["pid"], r["worker"]["pid"], "{r:#}");
    assert_eq!(victims[0]["is_command"], true, "{r:#}");
    let verdict = r["verdict"].as_str().unwrap_or_default();
    assert!(verdict.contains("the command) holding"), "{verdict}");
}

/// What follows `tag` on the first line of memspike's output that starts with it, on stdout
/// or on stderr (where a command's own output goes depends on the output options).
fn line_of(out: &Output, tag: &str) -> Option<String> {
    [&out.stdout, &out.stderr]
        .into_iter()
        .flat_map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .filter_map(|l| l.strip_prefix(tag).map(|rest| rest.trim().to_owned()))
                .collect::<Vec<_>>()
        })
        .next()
}

/// Runs `python3 -c CODE` alone in a 512 MiB group; `CODE` prints its own getrusage faults
/// (minor + major, the kernel's per-process count) on a line `getrusage faults N`. Returns
/// those and the report. The group holds that one process from fork to exit, so the two count the same
/// faults, but for the few the process takes after it printed.
fn faults_of(code: &str) -> (u64, Value) {
    let (status, out, r) = exec(
        &[
            "--json",
            "--limit",
            "512MiB",
            "--",
            "/usr/bin/python3",
            "-c",
            code,
        ],
        b"",
    );
    assert_eq!(status, 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r["outcome"], "survived", "{r:#}");
    let own = line_of(&out, "getrusage faults ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no fault count from the program: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
    (own, r)
}

/// Regression (issue 17): `page_fault_user` sees user-mode faults only, so a program whose
/// faults are taken inside `read(2)` was reported with a few dozen faults instead of ~51,000.
/// memspike's total agrees with the kernel's own per-process count (getrusage) within 10 %,
/// for faults in user mode and for faults inside a system call alike.
#[test]
fn page_faults_agree_with_getrusage_in_user_and_kernel_mode() {
    if !common::require_root("exec page faults against getrusage") {
        return;
    }
    let rusage = "import resource; r = resource.getrusage(resource.RUSAGE_SELF); \
                  print('getrusage faults', r.ru_minflt + r.ru_majflt)";
    // A fresh anonymous mapping: its pages fault where they are first written, by Python's
    // own loop in user mode, or by the kernel inside read(2). (A bytearray would not do:
    // CPython zeroes it with memset, in user mode.)
    let user = format!(
        "import mmap\nm = mmap.mmap(-1, 200 << 20)\n\
         for i in range(0, len(m), 4096): m[i] = 1\n{rusage}"
    );
    let kernel = format!(
        "import mmap\nf = open('/dev/zero', 'rb', buffering=0)\nm = mmap.mmap(-1, 200 << 20)\n\
         assert f.readinto(m) == len(m)\n{rusage}"
    );
    let pages = (200 << 20) / 4096;
    for (case, code, mode) in [("user", user, "user_mode"), ("read", kernel, "kernel_mode")] {
        let (own, r) = faults_of(&code);
        let faults = &r["kernel"]["page_faults"];
        if r["kernel"]["tracing"] != "ebpf" {
            // Untraced, memory.stat counts every fault of the group without the split.
            assert!(
                !common::under_ci(),
                "CI traces with eBPF: {:#}",
                r["kernel"]
            );
            common::skip("page faults by mode", "no eBPF tracing here");
            return;
        }
        let total = u(&faults["total"]);
        assert_eq!(
            total,
            u(&faults["user_mode"]) + u(&faults["kernel_mode"]),
            "{case}: {faults:#}"
        );
        // The faults of the 200 MiB are in the mode the case takes them in (with THP they
        // may be fewer, larger faults).
        assert!(u(&faults[mode]) * 2 > pages.min(own), "{case}: {faults:#}");
        let off = total.abs_diff(own) as f64 / own as f64;
        assert!(
            off <= 0.10,
            "{case}: memspike counted {total} faults, getrusage {own} ({:.1} % apart): {faults:#}",
            off * 100.0
        );
        // The timeline's buckets count the same faults.
        let bucketed: u64 = r["timeline"]["buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .map(|b| u(&b["page_faults"]))
            .sum();
        assert!(
            bucketed * 10 >= total * 9,
            "{case}: {bucketed} of {total} in buckets"
        );
    }
}
