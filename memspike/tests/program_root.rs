//! Your own program under every policy, as root, for real: `compare -- CMD` and
//! `threshold -- CMD` on the reference Go program and on a Go program nobody here wrote
//! (Debian's `gofmt`), `exec`'s machine-readable output whatever the program prints, the
//! environment passed whole or clean, and bad command lines refused before any group exists.

mod common;

use std::{
    path::Path,
    process::{Child, Output, Stdio},
};

use common::{groups_of, memspike, serial, u};
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// Runs `memspike ARGS` (one at a time), checks that no group is left, and returns its exit
/// code and output.
fn memspike_run(args: &[&str]) -> (i32, Output) {
    memspike_env(args, &[])
}

fn memspike_env(args: &[&str], env: &[(&str, &str)]) -> (i32, Output) {
    let _serial = serial();
    finish(start(args, env, Stdio::null()))
}

/// `memspike ARGS` started with `env` set and `stdin`, its stdout and stderr piped.
fn start(args: &[&str], env: &[(&str, &str)], stdin: Stdio) -> Child {
    memspike()
        .args(args)
        .envs(env.iter().copied())
        .env_remove("MEMSPIKE_LOG")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start memspike")
}

/// Waits for a started memspike, checks that no group is left, and gives its exit code and
/// output.
fn finish(child: Child) -> (i32, Output) {
    let pid = child.id();
    let out = child.wait_with_output().expect("memspike runs");
    assert!(groups_of(pid).is_empty(), "groups left behind");
    (out.status.code().unwrap_or(-1), out)
}

/// The JSON document on stdout (all of it), or a failure that shows what was there.
fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn row<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["policies"]
        .as_array()
        .and_then(|rows| rows.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no row {name}: {r:#}"))
}

/// A Go source file of `functions` small functions: `gofmt` on it holds about 4 KiB of heap
/// per function.
fn generated_go(dir: &Path, functions: usize) -> String {
    let path = dir.join("gen.go");
    let mut text = String::from("package gen\n\n");
    for i in 0..functions {
        text.push_str(&format!(
            "func F{i}(a, b int) int {{ x := a + b*{i}; if x > {i} {{ return x - 1 }}; return x + {i} }}\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn the_reference_program_under_every_policy() {
    if !common::require_root("compare -- CMD on the Go reference") {
        return;
    }
    let Some(binary) = common::go_reference() else {
        return;
    };
    let binary = binary.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The seed's cell, the remainder in 1 MiB chunks, five runs of each default policy.
    let (code, out) = memspike_run(&[
        "compare",
        "--json",
        "--limit",
        "32MiB",
        "--runs",
        "5",
        "--report",
        dir.path().to_str().unwrap(),
        "--",
        binary,
        "-limit",
        "32MiB",
        "-chunk",
        "1MiB",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code, 0, "{stderr}");
    let r = json(&out);
    assert_eq!(r["subject"]["command"][0], binary, "{r:#}");
    assert_eq!(r["repeats"], 5);
    let names: Vec<&str> = r["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "gogc100",
            "gogc50",
            "memlimit90",
            "gogc-off-memlimit90",
            "memlimit95"
        ]
    );
    // What needs code inside the program is named, not dropped.
    let skipped: Vec<&str> = r["not_applicable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        skipped,
        [
            "gc-after-release",
            "watchdog-watermarks",
            "watchdog-adaptive"
        ]
    );
    // gogc100 is killed in every run, by the kernel, each time with the program as its victim
    // and its gctrace cycles read.
    let gogc100 = row(&r, "gogc100");
    assert_eq!(
        (gogc100["outcome"].clone(), gogc100["survived"].clone()),
        ("oom_killed".into(), 0.into()),
        "{gogc100:#}"
    );
    for t in gogc100["trials"].as_array().unwrap() {
        assert_eq!(t["outcome"], "oom_killed");
        assert!(
            t["victim"].as_str().unwrap().contains("memspike-ref"),
            "{t:#}"
        );
        assert!(u(&t["gc_cycles"]) >= 1, "{t:#}");
    }
    // Each run got its policy through the environment.
    assert!(
        gogc100["environment"]
            .as_array()
            .unwrap()
            .contains(&"GOMEMLIMIT=off".into()),
        "{gogc100:#}"
    );
    let memlimit90 = row(&r, "memlimit90");
    assert!(
        memlimit90["environment"]
            .as_array()
            .unwrap()
            .contains(&format!("GOMEMLIMIT={}", 32 * MIB * 9 / 10).into()),
        "{memlimit90:#}"
    );
    // The memory limit made the runtime collect more often than GOGC alone.
    assert!(
        u(&memlimit90["gc_cycles"]) > u(&gogc100["gc_cycles"]),
        "{memlimit90:#}"
    );
    // A row's outcome is there only when every run agreed; the count says the rest.
    for p in r["policies"].as_array().unwrap() {
        let trials = p["trials"].as_array().unwrap();
        assert_eq!(trials.len(), 5);
        let survived = trials.iter().filter(|t| t["outcome"] == "survived").count();
        assert_eq!(u(&p["survived"]), survived as u64, "{p:#}");
        let agreed = trials.iter().all(|t| t["outcome"] == trials[0]["outcome"]);
        assert_eq!(p["outcome"].is_null(), !agreed, "{p:#}");
    }
    // Progress went to stderr: policy i of n, run j of N.
    assert!(stderr.contains("policy 1/5 gogc100, run 5/5"), "{stderr}");
    common::assert_report_dir(dir.path(), &r, &["gogc100", "memlimit90", "cgroup limit"]);

    // With a little more room, the memory limit saves the program in most runs.
    let (code, out) = memspike_run(&[
        "compare",
        "--json",
        "--limit",
        "48MiB",
        "--runs",
        "5",
        "--policies",
        "gogc100,memlimit90",
        "--",
        binary,
        "-limit",
        "48MiB",
        "-chunk",
        "1MiB",
    ]);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let r = json(&out);
    assert_eq!(row(&r, "gogc100")["survived"], 0, "{r:#}");
    assert!(u(&row(&r, "memlimit90")["survived"]) >= 1, "{r:#}");
}

#[test]
fn gofmt_dies_small_survives_large_and_threshold_brackets_the_limit() {
    if !common::require_root("compare -- gofmt") {
        return;
    }
    let gofmt = Path::new("/usr/bin/gofmt");
    if !gofmt.exists() {
        assert!(!common::under_ci(), "CI needs gofmt (golang-go)");
        common::skip("gofmt under every policy", "no /usr/bin/gofmt");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = generated_go(dir.path(), 20_000);
    let compare = |limit: &str| {
        let (code, out) = memspike_run(&[
            "compare",
            "--json",
            "--limit",
            limit,
            "--runs",
            "1",
            "--policies",
            "gogc100",
            "--",
            "gofmt",
            &input,
        ]);
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out.stderr));
        json(&out)
    };
    let small = compare("32MiB");
    let p = row(&small, "gogc100");
    assert_eq!(p["outcome"], "oom_killed", "{p:#}");
    assert!(u(&p["gc_cycles"]) >= 1, "gofmt's gctrace was read: {p:#}");
    assert!(p["trials"][0]["victim"].as_str().unwrap().contains("gofmt"));
    let large = compare("512MiB");
    let p = row(&large, "gogc100");
    assert_eq!(p["outcome"], "survived", "{p:#}");
    assert!(u(&p["gc_cycles"]) >= 1, "{p:#}");

    let (code, out) = memspike_run(&[
        "threshold",
        "--json",
        "--knob",
        "limit",
        "--range",
        "32MiB,512MiB",
        "--runs",
        "2",
        "--policies",
        "gogc100",
        "--",
        "gofmt",
        &input,
    ]);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let t = json(&out);
    let p = &t["policies"][0];
    let (survives, dies) = (p["survives"].as_f64(), p["dies"].as_f64());
    let (Some(survives), Some(dies)) = (survives, dies) else {
        panic!("no bracket: {t:#}");
    };
    assert!(
        (32.0 * MIB as f64) <= dies && dies < survives && survives <= 512.0 * MIB as f64,
        "{t:#}"
    );
    // Every run is in the JSON, each with its outcome at its limit.
    let probes = p["probes"].as_array().unwrap();
    assert_eq!(probes.len(), p["runs"].as_array().unwrap().len(), "{t:#}");
    assert!(probes.iter().any(|r| r["outcome"] == "oom_killed"));
    assert!(probes.iter().any(|r| r["outcome"] == "survived"));
}

#[test]
fn the_report_stays_machine_readable_whatever_the_program_prints() {
    if !common::require_root("exec and compare output") {
        return;
    }
    let noisy = "echo '{\"not\": \"the report\"'; echo noise >&2";
    // exec --json: stdout is the report alone; the program's output went to stderr.
    let (code, out) = memspike_run(&["exec", "--json", "--", "sh", "-c", noisy]);
    assert_eq!(code, 0);
    let r = json(&out);
    assert_eq!(r["outcome"], "survived");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("{\"not\": \"the report\""), "{stderr}");
    // -o FILE: the report goes to the file and stdout stays the program's.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    let (code, out) = memspike_run(&[
        "exec",
        "--json",
        "-o",
        file.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        noisy,
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"not\": \"the report\"\n"
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(r["command"][0], "sh");
    // compare -- CMD: the program's output is not shown, and stdout parses.
    let (code, out) = memspike_run(&[
        "compare",
        "--json",
        "--runs",
        "1",
        "--policies",
        "gogc100",
        "--",
        "sh",
        "-c",
        noisy,
    ]);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let r = json(&out);
    assert_eq!(row(&r, "gogc100")["outcome"], "survived");
}

#[test]
fn the_environment_is_passed_whole_unless_asked_to_start_clean() {
    if !common::require_root("exec environment") {
        return;
    }
    let show = "echo JAVA_TOOL_OPTIONS=$JAVA_TOOL_OPTIONS; echo GODEBUG=$GODEBUG";
    let var = [("JAVA_TOOL_OPTIONS", "-Xmx64m")];
    let (code, out) = memspike_env(&["exec", "--no-trace", "--", "sh", "-c", show], &var);
    assert_eq!(code, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("JAVA_TOOL_OPTIONS=-Xmx64m\n"), "{stdout}");
    assert!(
        stdout.contains("GODEBUG=gctrace=1,gcpacertrace=1\n"),
        "{stdout}"
    );
    let (code, out) = memspike_env(
        &["exec", "--no-trace", "--clean-env", "--", "sh", "-c", show],
        &var,
    );
    assert_eq!(code, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("JAVA_TOOL_OPTIONS=\n"), "{stdout}");
    assert!(
        stdout.contains("GODEBUG=gctrace=1,gcpacertrace=1\n"),
        "{stdout}"
    );
}

/// Each refused with exit 2 and one line, before any group exists.
#[test]
fn bad_command_lines_are_refused_before_any_group() {
    if !common::require_root("bad command lines") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let above = dir.path().join("above.toml");
    std::fs::write(
        &above,
        "[[policy]]\nname = \"big\"\nmemory_limit = \"64MiB\"\n",
    )
    .unwrap();
    let above = above.to_str().unwrap();
    let cases: [(&[&str], &str); 9] = [
        (&["exec"], "required"),
        (&["compare", "--runs", "0", "--", "true"], "--runs"),
        (
            &["compare", "--policies", "gc-after-release", "--", "true"],
            "inside the program",
        ),
        (
            &[
                "compare",
                "--limit",
                "32MiB",
                "--policies",
                above,
                "--",
                "true",
            ],
            "above the group's 32.0 MiB",
        ),
        (
            &["compare", "--", "memspike-no-such-command"],
            "no such executable",
        ),
        (
            &["threshold", "--knob", "spike", "--", "true"],
            "--knob spike",
        ),
        (&["compare", "--clean-env"], "<CMD>"),
        (
            &["compare", "--calibrate", "r.json", "--", "true"],
            "cannot be used with",
        ),
        (
            &[
                "threshold",
                "--knob",
                "limit",
                "--gc-cpu-max",
                "40%",
                "--",
                "true",
            ],
            "--gc-cpu-max bounds the cost edge of --knob gomemlimit",
        ),
    ];
    for (args, says) in cases {
        let (code, out) = memspike_run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("created cgroup"), "{args:?}: {stderr}");
    }
}

/// Calibration from a Go program nobody here wrote: `exec --report` records gofmt's runtime
/// profile (its Go version from its build information), and `run --calibrate` simulates the
/// seed with it, under gofmt's release unless `--runtime` says otherwise; every report says
/// which profile it used. A calibration file that is no Go program's exec report is refused.
#[test]
fn a_program_calibrates_the_model_and_bad_calibration_files_are_refused() {
    if !common::require_root("calibration from gofmt") {
        return;
    }
    if !Path::new("/usr/bin/gofmt").exists() {
        assert!(!common::under_ci(), "CI needs gofmt (golang-go)");
        common::skip("calibration from gofmt", "no /usr/bin/gofmt");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = generated_go(dir.path(), 20_000);
    let recorded = dir.path().join("gofmt");
    let (code, out) = memspike_run(&[
        "exec",
        "--json",
        "--limit",
        "256MiB",
        "--report",
        recorded.to_str().unwrap(),
        "--",
        "gofmt",
        &input,
    ]);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let exec = json(&out);
    let version = exec["go_version"].as_str().expect("gofmt's Go version");
    assert!(version.starts_with("go1."), "{exec:#}");
    let profile = &exec["runtime_profile"];
    assert_eq!(profile["go_version"], version, "{profile:#}");
    assert!(u(&profile["cycles"]) >= 2, "{profile:#}");
    assert!(u(&profile["outside_heap_bytes"]) > 0, "{profile:#}");
    let report = recorded.join("report.json");
    let report = report.to_str().unwrap();

    let (code, out) = memspike_run(&["run", "--json", "--calibrate", report]);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let r = json(&out);
    let release: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    assert_eq!(
        r["settings"]["runtime"],
        release.as_str(),
        "{:#}",
        r["settings"]
    );
    assert!(
        r["settings"]["profile"]
            .as_str()
            .is_some_and(|p| p.starts_with("calibrated from `gofmt ")),
        "{:#}",
        r["settings"]
    );
    assert_eq!(r["experiment"]["profile"]["go_version"], version);
    let (_, out) = memspike_run(&[
        "run",
        "--json",
        "--calibrate",
        report,
        "--runtime",
        "go1.27",
    ]);
    assert_eq!(json(&out)["settings"]["runtime"], "go1.27");
    // Without --calibrate: the reference program.
    let (_, out) = memspike_run(&["run", "--json", "--no-trace"]);
    assert_eq!(
        json(&out)["settings"]["profile"],
        "the reference program (reference/go)"
    );
    let (code, out) = memspike_run(&[
        "compare",
        "--json",
        "--policies",
        "gogc100",
        "--calibrate",
        report,
    ]);
    assert_eq!(code, 0);
    assert!(
        json(&out)["subject"]["scenario"]["profile"]
            .as_str()
            .is_some_and(|p| p.contains("gofmt")),
    );

    // Refused, exit 2, one line, before any group: another report, a program that is not Go,
    // a file that is not JSON.
    let compare_report = dir.path().join("compare.json");
    std::fs::write(&compare_report, &out.stdout).unwrap();
    let python = dir.path().join("python");
    let (code, _) = memspike_run(&[
        "exec",
        "--no-trace",
        "--report",
        python.to_str().unwrap(),
        "--",
        "python3",
        "-c",
        "pass",
    ]);
    assert_eq!(code, 0);
    let not_json = dir.path().join("not.json");
    std::fs::write(&not_json, "hello").unwrap();
    for (file, says) in [
        (compare_report, "not the report of `memspike exec`"),
        (python.join("report.json"), "is not a Go program"),
        (not_json, "not JSON"),
    ] {
        let (code, out) = memspike_run(&["run", "--calibrate", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}

/// Regression: a process the command left behind holding its stderr (a daemon) kept memspike
/// reading it forever, and the group was never removed. It dies with the command's group now.
#[test]
fn a_daemon_the_command_left_does_not_hold_memspike() {
    if !common::require_root("exec with a daemon left behind") {
        return;
    }
    let _serial = serial();
    let args = [
        "exec",
        "--no-trace",
        "--json",
        "--",
        "sh",
        "-c",
        "sleep 1000 & echo started",
    ];
    let child = start(&args, &[], Stdio::null());
    // A guard, not a measurement: memspike ends as soon as the shell does.
    common::wait_for_exit(child.id() as i32, "memspike exec after its command exited");
    let (code, out) = finish(child);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["outcome"], "survived");
}

/// Regression: every run of a command read memspike's stdin, so the first run took the input
/// and the others found it empty: the same policy flipped for no reason of its own.
#[test]
fn every_run_of_a_command_starts_from_the_same_empty_input() {
    if !common::require_root("compare -- CMD stdin") {
        return;
    }
    let _serial = serial();
    let args = [
        "compare",
        "--json",
        "--no-trace",
        "--runs",
        "2",
        "--policies",
        "gogc100",
        "--",
        "sh",
        "-c",
        "if read line; then exit 1; fi",
    ];
    let mut child = start(&args, &[], Stdio::piped());
    use std::io::Write;
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"only once\n").unwrap();
    drop(input); // the end of the input

    let (code, out) = finish(child);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let r = json(&out);
    assert_eq!(row(&r, "gogc100")["survived"], 2, "{r:#}");
}

/// Issue 20: a Java program under the JVM's policies and a Node program under Node's, each
/// given through its runtime's own variable (JAVA_TOOL_OPTIONS, NODE_OPTIONS) in place of the
/// user's settings of the same options, each run told apart as survived, out of heap (the
/// runtime's own limit) or OOM-killed (the group's), k/N each; a command line that sets them
/// itself, and another runtime's policy, refused before any group exists.
#[test]
fn java_and_node_programs_under_their_runtimes_policies() {
    if !common::require_root("compare -- java and node") {
        return;
    }
    let Some(classes) = common::java_reference() else {
        return;
    };
    let classes = classes.to_str().unwrap();
    let java = |extra: &[&str]| {
        let mut args = vec!["java"];
        args.extend_from_slice(extra);
        args.extend(["-cp", classes, "Spike", "134217728", "0.3"]);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    // The four heap maxima of the issue, the user's own -Xmx in JAVA_TOOL_OPTIONS set aside.
    let mut args = vec!["compare", "--limit", "128MiB", "--runs", "2", "--json"];
    args.extend(["--policies", "xmx25,xmx50,xmx75,xmx200", "--"]);
    let command = java(&[]);
    args.extend(command.iter().map(String::as_str));
    let (code, out) = memspike_env(&args, &[("JAVA_TOOL_OPTIONS", "-Xmx1g -Xss1m")]);
    let report = json(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code, 0, "{stderr}");
    // xmx200's heap maximum is above the group's limit: said once, not before each run.
    assert_eq!(
        stderr
            .matches("-Xmx256m (256.0 MiB) is above the group's")
            .count(),
        1,
        "{stderr}"
    );
    for (name, xmx) in [
        ("xmx25", "-Xmx32m"),
        ("xmx50", "-Xmx64m"),
        ("xmx75", "-Xmx96m"),
        ("xmx200", "-Xmx256m"),
    ] {
        let r = row(&report, name);
        assert_eq!(r["runs"], 2, "{r:#}");
        let environment = r["environment"].to_string();
        assert!(
            environment.contains(&format!("JAVA_TOOL_OPTIONS=-Xss1m {xmx} -Xlog:gc")),
            "{name}: {environment}"
        );
        assert!(!environment.contains("-Xmx1g"), "{name}: {environment}");
        let outcomes: Vec<&str> = r["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["outcome"].as_str().unwrap())
            .collect();
        assert!(
            outcomes
                .iter()
                .all(|o| ["survived", "out_of_heap", "oom_killed"].contains(o)),
            "{name}: {outcomes:?}"
        );
        assert_eq!(
            u(&r["survived"]) as usize,
            outcomes.iter().filter(|o| **o == "survived").count()
        );
    }
    // A 38 MiB slab does not fit a 32 MiB heap: the JVM's own limit ends it, not the kernel.
    assert_eq!(
        row(&report, "xmx25")["outcome"],
        "out_of_heap",
        "{report:#}"
    );
    // At 256 MiB of heap the slab and the rest fit the heap, and (measured) the group.
    assert_eq!(row(&report, "xmx200")["outcome"], "survived", "{report:#}");
    let verdict = report["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("out of heap (the runtime's own limit ended them, not the kernel): xmx25"),
        "{verdict}"
    );

    // The command's own -Xmx would win over JAVA_TOOL_OPTIONS; a Go policy is not the JVM's.
    for (policies, extra, why) in [
        ("xmx50", &["-Xmx512m"][..], "gives -Xmx512m, which wins"),
        (
            "gogc50",
            &[][..],
            "its settings are Go's, and this program runs the JVM",
        ),
    ] {
        let mut args = vec!["compare", "--limit", "128MiB", "--policies", policies, "--"];
        let command = java(extra);
        args.extend(command.iter().map(String::as_str));
        let (code, out) = memspike_run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(!stderr.contains("created cgroup"), "{stderr}");
    }

    // threshold -- java: the smallest limit at which a heap allowed to outgrow the group
    // survives (measured: about 107.5 MiB; the slab, the rest and the JVM's own memory).
    let mut args = vec!["threshold", "--json", "--runs", "1", "--policies", "xmx200"];
    args.extend(["--range", "96MiB,160MiB", "--"]);
    args.extend(command.iter().map(String::as_str));
    let (code, out) = memspike_run(&args);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let t = json(&out);
    let p = &t["policies"][0];
    let (Some(survives), Some(dies)) = (p["survives"].as_f64(), p["dies"].as_f64()) else {
        panic!("no bracket: {t:#}");
    };
    assert!(
        96.0 * MIB as f64 <= dies && dies < survives && survives <= 128.0 * MIB as f64,
        "{t:#}"
    );

    // Node: a quarter of the group for the old space is too little for the slab; V8 says so.
    let Some(script) = common::node_reference() else {
        return;
    };
    let (code, out) = memspike_run(&[
        "compare",
        "--limit",
        "128MiB",
        "--runs",
        "1",
        "--json",
        "--policies",
        "old-space25,node-default",
        "--",
        "node",
        script.to_str().unwrap(),
        "134217728",
        "0.3",
    ]);
    let report = json(&out);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let quarter = row(&report, "old-space25");
    assert_eq!(quarter["outcome"], "out_of_heap", "{quarter:#}");
    assert!(
        quarter["environment"]
            .to_string()
            .contains("NODE_OPTIONS=--max-old-space-size=32"),
        "{quarter:#}"
    );
    // V8's own default (Node 18: from the machine's memory; Node 20: from the group's, twice
    // it here) is never the limit that ends this one.
    assert_ne!(
        row(&report, "node-default")["outcome"],
        "out_of_heap",
        "{report:#}"
    );
}
