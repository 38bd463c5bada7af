//! What the report crate's integration tests share: the recorded facts, and every report
//! kind built from them.
#![allow(dead_code)] // each test binary uses some of it

use std::{collections::BTreeSet, path::Path};

use memspike_report::{
    compare::CompareReport,
    exec::ExecReport,
    facts::{CellFacts, CommandCompareFacts, CompareFacts, ExecFacts, RunFacts, ThresholdFacts},
    run::Report,
    sweep::{SweepReport, SweepRow},
    threshold::ThresholdReport,
};
use serde::de::DeserializeOwned;

/// The facts in `tests/fixtures/<name>` (see its README).
pub fn fixture<T: DeserializeOwned>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not facts of its kind: {e}"))
}

/// The sweep's report: the recorded cells' rows, merged.
pub fn sweep() -> SweepReport {
    let cells: Vec<CellFacts> = fixture("sweep-cells.json");
    SweepReport::merge(
        cells.into_iter().map(SweepRow::build).collect(),
        Vec::new(),
        None,
    )
    .unwrap()
}

/// Every report kind, built from the recorded facts, as JSON, by the name of its type.
pub fn every_kind() -> [(&'static str, serde_json::Value); 6] {
    let json = |r: serde_json::Result<serde_json::Value>| r.unwrap();
    [
        (
            "Report",
            json(serde_json::to_value(Report::build(fixture::<RunFacts>(
                "run-oom.json",
            )))),
        ),
        (
            "ExecReport",
            json(serde_json::to_value(ExecReport::build(
                fixture::<ExecFacts>("exec-go-oom.json"),
            ))),
        ),
        (
            "CompareReport",
            json(serde_json::to_value(CompareReport::build(fixture::<
                CompareFacts,
            >(
                "compare.json"
            )))),
        ),
        (
            "CompareReport",
            json(serde_json::to_value(CompareReport::build_command(
                fixture::<CommandCompareFacts>("compare-command.json"),
            ))),
        ),
        (
            "ThresholdReport",
            json(serde_json::to_value(ThresholdReport::build(fixture::<
                ThresholdFacts,
            >(
                "threshold.json",
            )))),
        ),
        ("SweepReport", json(serde_json::to_value(sweep()))),
    ]
}

/// Every key path of a JSON value, arrays as `[]`: `cgroup.peak_bytes`, `events[].heap.next_gc`.
pub fn key_paths(v: &serde_json::Value) -> BTreeSet<String> {
    fn walk(v: &serde_json::Value, at: &str, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, child) in m {
                    let path = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    out.insert(path.clone());
                    walk(child, &path, out);
                }
            }
            serde_json::Value::Array(items) => {
                for child in items {
                    walk(child, &format!("{at}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(v, "", &mut out);
    out
}
