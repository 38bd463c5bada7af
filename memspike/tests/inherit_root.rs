//! `--inherit` as the kernel sees it, without a container runtime: the test makes a memory
//! group of its own (48 MiB, or none), puts a shell in it, and that shell enters new mount, PID
//! and UTS namespaces (`unshare`) and runs memspike there. The group is removed at the end.

mod common;

use std::process::{Command, Output};

use common::TestGroup;

use serde_json::Value;

const MIB: u64 = 1 << 20;
const LIMIT: u64 = 48 * MIB;

fn json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let start = stdout.find("\n{").map_or(0, |i| i + 1);
    serde_json::from_str(&stdout[start..]).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): stdout {stdout}\nstderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The inherited group holds no process and no group memspike made.
fn assert_left_as_it_was(dir: &std::path::Path) {
    assert!(
        common::read_procs(dir).is_empty(),
        "nothing left in the group"
    );
    let made: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    assert!(made.is_empty(), "memspike created groups: {made:?}");
}

fn skip_without_unshare(what: &str) -> bool {
    if Command::new("unshare").arg("--version").output().is_ok() {
        return false;
    }
    common::skip(what, "util-linux's unshare is not installed");
    true
}

#[test]
fn run_inherit_in_a_48mib_group_through_namespaces_reports_the_limit_and_the_oom() {
    const WHAT: &str = "run --inherit in a 48 MiB group";
    if !common::require_root(WHAT) || skip_without_unshare(WHAT) {
        return;
    }
    let group = TestGroup::new("run", Some(LIMIT));
    let out = group.memspike(&["run", "--inherit", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let r = json(&out);
    assert_eq!(r["limit_bytes"], LIMIT, "{r:#}");
    let source = r["limit_source"].as_str().expect("limit_source");
    assert!(
        source.starts_with(&group.dir.display().to_string()),
        "{source} names the test's group {}",
        group.dir.display()
    );
    assert_eq!(r["outcome"], "oom_killed", "{r:#}");
    assert_eq!(
        r["kernel"]["oom_victim"]["pid"], r["worker"]["pid"],
        "the kernel's victim is the worker: {r:#}"
    );
    assert!(
        stderr.contains("memspike itself is a member and shares that limit"),
        "{stderr}"
    );
    assert_left_as_it_was(&group.dir);
}

#[test]
fn exec_inherit_of_a_96mib_program_is_oom_killed_with_the_victim_named() {
    const WHAT: &str = "exec --inherit in a 48 MiB group";
    if !common::require_root(WHAT) || skip_without_unshare(WHAT) {
        return;
    }
    let group = TestGroup::new("exec", Some(LIMIT));
    // Writes every byte (b"x" * n), so all 96 MiB are resident.
    let out = group.memspike(&[
        "exec",
        "--inherit",
        "--json",
        "--",
        "python3",
        "-c",
        "b = b'x' * (96 << 20)",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    assert_eq!(r["outcome"], "oom_killed", "{r:#}");
    assert_eq!(r["limit_bytes"], LIMIT, "{r:#}");
    assert!(
        r["limit_source"]
            .as_str()
            .is_some_and(|s| s.starts_with(&group.dir.display().to_string())),
        "{r:#}"
    );
    let victim = &r["kernel"]["oom_victim"];
    assert_eq!(victim["pid"], r["worker"]["pid"], "{r:#}");
    assert!(
        victim["comm"]
            .as_str()
            .is_some_and(|c| c.starts_with("python")),
        "{r:#}"
    );
}

/// `compare --inherit -- CMD`: every run of every policy in the inherited group, one after the
/// other, each policy's GOMEMLIMIT resolved against the inherited limit; no group is made.
#[test]
fn compare_inherit_of_a_command_runs_every_policy_in_the_inherited_group() {
    const WHAT: &str = "compare --inherit -- CMD in a 48 MiB group";
    if !common::require_root(WHAT) || skip_without_unshare(WHAT) {
        return;
    }
    let group = TestGroup::new("compare", Some(LIMIT));
    let out = group.memspike(&[
        "compare",
        "--inherit",
        "--json",
        "--runs",
        "2",
        "--policies",
        "gogc100,memlimit90",
        "--",
        "python3",
        "-c",
        "b = b'x' * (96 << 20)",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let r = json(&out);
    assert_eq!(r["limit_bytes"], LIMIT, "{r:#}");
    assert!(
        r["limit_source"]
            .as_str()
            .is_some_and(|s| s.starts_with(&group.dir.display().to_string())),
        "{r:#}"
    );
    for p in r["policies"].as_array().unwrap() {
        assert_eq!(
            (p["runs"].clone(), p["survived"].clone()),
            (2.into(), 0.into()),
            "{p:#}"
        );
        assert_eq!(p["outcome"], "oom_killed", "{p:#}");
    }
    let memlimit90 = &r["policies"][1];
    assert!(
        memlimit90["environment"]
            .as_array()
            .unwrap()
            .contains(&format!("GOMEMLIMIT={}", LIMIT * 9 / 10).into()),
        "{memlimit90:#}"
    );
    assert_left_as_it_was(&group.dir);
}

#[test]
fn run_inherit_without_a_limit_exits_2_and_says_so() {
    const WHAT: &str = "run --inherit in a group without a limit";
    if !common::require_root(WHAT) || skip_without_unshare(WHAT) {
        return;
    }
    let group = TestGroup::new("nolimit", None);
    let out = group.memspike(&["run", "--inherit"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no memory limit"), "{stderr}");
    assert!(
        stderr.contains(&group.dir.display().to_string()),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.contains("error")).count(),
        1,
        "one message: {stderr}"
    );
    assert!(out.stdout.is_empty());
}
