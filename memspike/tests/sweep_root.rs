//! `memspike sweep` end to end: every cell of `examples/sweep.toml` run here (`--local`), and
//! again one by one as pods run them (`--index I --inherit` inside a group with the cell's
//! limit, entered through new namespaces); `sweep merge` gives the same table from both.
//! Merging refuses rows it cannot join, and merges what it can read of files cut short. (The
//! manifests themselves are `deploy`'s test.)

mod common;

use std::path::Path;
use std::process::Output;

use common::memspike;
use serde_json::Value;

fn plan() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/sweep.toml")
        .display()
        .to_string()
}

fn run(args: &[&str]) -> Output {
    let _serial = common::serial();
    memspike().args(args).output().expect("memspike runs")
}

/// The columns the model decides (the peak to the page and the fault counts are measured).
/// A killed run's GC CPU share is not among them: it is taken at the last event, and which
/// 1 MiB piece of the remainder the kernel killed it in depends on what else the group was
/// charged (a pod's group and a local one differ by a few pages).
fn decided(merged: &Value) -> Vec<String> {
    merged["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| {
            let share = if c["outcome"] == "survived" {
                c["gc_cpu_share"].clone()
            } else {
                Value::Null
            };
            format!(
                "{} {} {} {} {}",
                c["cell"], c["outcome"], c["died_in"], c["gc_cycles"], share
            )
        })
        .collect()
}

fn merge(dir: &Path, files: &[&str]) -> Value {
    let mut args = vec!["sweep", "merge", "--json"];
    args.extend_from_slice(files);
    let out = memspike().args(&args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the merged report")
}

#[test]
fn local_and_one_pod_at_a_time_give_the_same_table() {
    if !common::require_root("sweep in real cgroups") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = plan();
    let cells = memspike_model::sweep::Plan::load(Path::new(&plan))
        .expect("the example plan")
        .cells();
    let out = run(&[
        "sweep",
        "--plan",
        &plan,
        "--local",
        "--jobs",
        "2",
        "--no-trace",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.path().join("local.jsonl"), &out.stdout).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 24);

    // As the pods of deploy/sweep-jobs.json do: each cell alone, by its index, inside a group
    // with the cell's limit, entered through new namespaces, under --inherit.
    let mut pods = Vec::new();
    for cell in &cells {
        let _serial = common::serial();
        let pod = common::TestGroup::new("pod", Some(cell.spec.limit_bytes));
        let i = cell.spec.index.to_string();
        let out = pod.memspike(&[
            "sweep",
            "--plan",
            &plan,
            "--index",
            &i,
            "--inherit",
            "--no-trace",
        ]);
        assert!(
            out.status.success(),
            "cell {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pods.extend_from_slice(&out.stdout);
    }
    std::fs::write(dir.path().join("pods.jsonl"), &pods).unwrap();

    let local = merge(dir.path(), &["local.jsonl"]);
    let cluster = merge(dir.path(), &["pods.jsonl"]);
    assert_eq!(decided(&local), decided(&cluster));
    assert_eq!(local["verdict"], cluster["verdict"]);
    // The seed's story at both limits: GOGC 100 dies in the remainder, a collection after the
    // release survives.
    let rows = local["cells"].as_array().unwrap();
    for (gogc100, gc) in [(0, 1), (12, 13)] {
        assert_eq!(rows[gogc100]["cell"]["policy"], "gogc100");
        assert_eq!(
            (&rows[gogc100]["outcome"], &rows[gogc100]["died_in"]),
            (&Value::from("oom_killed"), &Value::from("remainder")),
            "{:#}",
            rows[gogc100]
        );
        assert_eq!(rows[gc]["outcome"], "survived", "{:#}", rows[gc]);
    }
    // A pod whose limit is not its cell's is refused, and --offset adds to --index, as a
    // limit's Job passes them.
    let pod = common::TestGroup::new("offset", Some(128 << 20));
    let out = pod.memspike(&[
        "sweep",
        "--plan",
        &plan,
        "--index",
        "1",
        "--offset",
        "12",
        "--inherit",
        "--no-trace",
    ]);
    let row: Value = serde_json::from_slice(&out.stdout).expect("a row");
    assert_eq!(row["cell"], rows[13]["cell"]);
    assert_eq!(row["outcome"], rows[13]["outcome"]);
    let out = pod.memspike(&[
        "sweep",
        "--plan",
        &plan,
        "--index",
        "0",
        "--inherit",
        "--no-trace",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cell 0 is for a 64.0 MiB limit"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A row of plan `plan` for cell `index`, as a line.
fn row(plan: &str, index: usize) -> String {
    let r = serde_json::json!({
        "plan": plan,
        "cell": {"index": index, "scenario": "seed", "limit_bytes": 33554432u64,
                 "runtime": "go1.27", "policy": "gogc100", "repetition": 0},
        "name": "gogc100",
        "settings": {"gogc": "100", "memory_limit": null, "gc_after_release": false,
                     "watchdog": null, "watchdog_driver": null, "watchdog_force": null,
                     "watchdog_interval": null},
        "runs": 1, "survived": 0,
        "outcome": "oom_killed", "died_in": "remainder", "died_at_ms": 30.0,
        "peak_bytes": 33554432u64, "margin_bytes": 0, "gc_cycles": 1, "gc_cpu_share": 0.004,
        "page_faults": null, "reclaim_stalls": null, "duration_ms": 50.0, "winner": false,
        "trials": [{"outcome": "oom_killed", "died_in": "remainder", "died_at_ms": 30.0,
                    "peak_bytes": 33554432u64, "gc_cycles": 1, "gc_cpu_share": 0.004,
                    "page_faults": null, "reclaim_stalls": null, "exit": "killed by SIGKILL",
                    "victim": null, "duration_ms": 50.0, "verdict": "killed"}],
        "usage": []
    });
    format!("{r}\n")
}

/// Regression (issue 17): a file whose last line was cut (a pod killed while printing) refused
/// the whole merge. It merges what it can read, exit 0, naming the cut line, a line that is not
/// JSON, and the plan's cells without a row; `--complete` makes that exit 3.
#[test]
fn a_cut_row_file_still_merges_and_complete_asks_for_all() {
    let dir = tempfile::tempdir().unwrap();
    let cut = row("example", 2);
    let text = row("example", 0) + "not json\n" + &row("example", 1) + &cut[..cut.len() / 2];
    std::fs::write(dir.path().join("cut.jsonl"), text).unwrap();
    let plan = plan();
    let merge = |extra: &[&str]| {
        let mut args = vec!["sweep", "merge", "cut.jsonl", "--plan", plan.as_str()];
        args.extend_from_slice(extra);
        memspike()
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = merge(&["--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("cut.jsonl:4: cut off: EOF while parsing"),
        "{stderr}"
    );
    assert!(stderr.contains("cut.jsonl:2: not a row"), "{stderr}");
    let merged: Value = serde_json::from_slice(&out.stdout).expect("the merged report");
    assert_eq!(merged["cells"].as_array().map(Vec::len), Some(2));
    // The example plan has 24 cells: 2 to 23 have no row.
    assert_eq!(merged["planned"], 24);
    assert_eq!(
        merged["missing"],
        serde_json::json!((2..24).collect::<Vec<_>>())
    );
    let lines: Vec<(u64, bool)> = merged["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["line"].as_u64().unwrap(), u["cut"].as_bool().unwrap()))
        .collect();
    assert_eq!(lines, [(2, false), (4, true)]);

    let out = merge(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 cells, 22 without a row"), "{text}");
    assert!(text.contains("(no row: missing)"), "{text}");
    assert!(text.contains("cut.jsonl:4"), "{text}");

    let out = merge(&["--complete"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("--complete: 22 cells without a row (#2, #3,")
            && stderr.contains("2 unreadable lines skipped (cut.jsonl:2, cut.jsonl:4 cut off)"),
        "{stderr}"
    );
    assert!(!out.stdout.is_empty(), "the report is printed first");
    // Whole rows of the whole plan: --complete is satisfied.
    let whole: String = (0..24).map(|i| row("example", i)).collect();
    std::fs::write(dir.path().join("cut.jsonl"), whole).unwrap();
    let out = merge(&["--complete"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Rows that cannot be joined, and cells that do not exist, are refused with exit 2 and one
/// line that says why.
#[test]
fn bad_rows_and_cells_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        std::fs::write(dir.path().join(name), text).unwrap();
        name.to_owned()
    };
    let twice = write("twice.jsonl", row("a", 0) + &row("a", 0));
    let two_plans = write("plans.jsonl", row("a", 0) + &row("b", 1));
    let outside = write("outside.jsonl", row("example", 24));
    let nothing = write("nothing.jsonl", "not json\n".to_owned());
    let good = write("good.jsonl", row("a", 0) + &row("a", 1));
    let plan = plan();
    for (args, says) in [
        (
            vec!["sweep", "merge", twice.as_str()],
            "cell 0 is there twice",
        ),
        (
            vec!["sweep", "merge", two_plans.as_str()],
            "rows of two plans",
        ),
        (
            vec!["sweep", "merge", outside.as_str(), "--plan", plan.as_str()],
            "cell 24 is not in the plan \"example\", whose cells are 0 to 23",
        ),
        (
            vec!["sweep", "merge", nothing.as_str()],
            "no rows to merge (1 unreadable lines, the first nothing.jsonl:1: not a row",
        ),
        (vec!["sweep", "merge", "missing.jsonl"], "missing.jsonl"),
        (
            vec!["sweep", "--plan", plan.as_str(), "--index", "24"],
            "the plan example has 24 cells (0 to 23)",
        ),
        (
            vec!["sweep", "--plan", "nosuch.toml", "--local"],
            "cannot read the plan nosuch.toml",
        ),
        (vec!["sweep", "--plan", plan.as_str()], "--local"),
    ] {
        let out = memspike()
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let merged = merge(dir.path(), &[good.as_str()]);
    assert_eq!(merged["cells"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        merged["verdict"],
        "cells by policy: gogc100 survived 0 of 2"
    );
}
