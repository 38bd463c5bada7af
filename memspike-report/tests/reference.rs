//! The generated references under `docs/reference/` are what the code says now. After a change,
//! `UPDATE_EXPECT=1 cargo test -p memspike-report --test reference` rewrites them; review the
//! diff.

use std::path::Path;

use memspike_report::{
    compare::CompareReport,
    exec::ExecReport,
    facts::{CellFacts, CompareFacts, ExecFacts, RunFacts, ThresholdFacts},
    run::Report,
    sweep::{SweepReport, SweepRow},
    threshold::ThresholdReport,
};
use serde::de::DeserializeOwned;

fn fixture<T: DeserializeOwned>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_json_schema_is_the_report_types() {
    expect_test::expect_file!["../../docs/reference/report.schema.json"]
        .assert_eq(&memspike_report::schema());
}

#[test]
fn the_figures_reference_is_the_registry() {
    expect_test::expect_file!["../../docs/reference/figures.md"]
        .assert_eq(&memspike_report::figures::reference());
}

/// Every key path of a JSON value, arrays as `[]`: `cgroup.peak_bytes`, `events[].heap.next_gc`.
fn key_paths(v: &serde_json::Value, at: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                out.insert(path.clone());
                key_paths(child, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for child in items {
                key_paths(child, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

/// Every key path the schema allows under `at`: properties, list items (`[]`), through
/// `$ref`s and alternatives.
fn schema_paths(
    node: &serde_json::Value,
    defs: &serde_json::Value,
    at: &str,
    depth: usize,
    out: &mut std::collections::BTreeSet<String>,
) {
    if depth > 12 {
        return;
    }
    if let Some(r) = node["$ref"].as_str() {
        let name = r.trim_start_matches("#/$defs/");
        schema_paths(&defs[name], defs, at, depth + 1, out);
    }
    for alt in ["anyOf", "oneOf", "allOf"] {
        for n in node[alt].as_array().into_iter().flatten() {
            schema_paths(n, defs, at, depth + 1, out);
        }
    }
    if let Some(items) = node.get("items") {
        schema_paths(items, defs, &format!("{at}[]"), depth + 1, out);
    }
    for (k, child) in node["properties"].as_object().into_iter().flatten() {
        let path = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        out.insert(path.clone());
        schema_paths(child, defs, &path, depth + 1, out);
    }
}

/// Where the registry says a report holds a figure, the reports' schema has that key, and the
/// keys every real report has are in the schema: figures, schema and reports cannot drift
/// apart.
#[test]
fn every_figures_json_path_is_a_report_key() {
    let schema: serde_json::Value = serde_json::from_str(&memspike_report::schema()).unwrap();
    let mut allowed = std::collections::BTreeSet::new();
    schema_paths(&schema, &schema["$defs"], "", 0, &mut allowed);
    let missing: Vec<(&str, &str)> = memspike_report::figures::ALL
        .iter()
        .filter_map(|f| f.json.map(|p| (f.key, p)))
        .filter(|(_, p)| !allowed.contains(*p))
        .collect();
    assert!(
        missing.is_empty(),
        "figures whose JSON path no report has: {missing:?}"
    );
    let cells: Vec<CellFacts> = fixture("sweep-cells.json");
    let mut real = std::collections::BTreeSet::new();
    for json in [
        serde_json::to_value(Report::build(fixture::<RunFacts>("run-oom.json"))),
        serde_json::to_value(ExecReport::build(fixture::<ExecFacts>("exec-go-oom.json"))),
        serde_json::to_value(CompareReport::build(fixture::<CompareFacts>(
            "compare.json",
        ))),
        serde_json::to_value(ThresholdReport::build(fixture::<ThresholdFacts>(
            "threshold.json",
        ))),
        serde_json::to_value(
            SweepReport::merge(cells.into_iter().map(SweepRow::build).collect()).unwrap(),
        ),
    ] {
        key_paths(&json.unwrap(), "", &mut real);
    }
    // Keys under a free-form map (page faults per step) are data, not schema.
    let unknown: Vec<&String> = real
        .iter()
        .filter(|k| {
            !allowed.contains(*k) && !k.contains(".per_phase.") && !k.starts_with("survival.")
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "report keys the schema lacks: {unknown:?}"
    );
}

/// The schema is true of real reports: every report kind, built from a real run's facts,
/// validates against its own definition in it.
#[test]
fn real_reports_validate_against_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(&memspike_report::schema()).unwrap();
    let of_kind = |kind: &str| {
        let mut one = schema.clone();
        one["anyOf"] = serde_json::json!([{ "$ref": format!("#/$defs/{kind}") }]);
        jsonschema::validator_for(&one).unwrap()
    };
    let cells: Vec<CellFacts> = fixture("sweep-cells.json");
    let reports = [
        (
            "Report",
            serde_json::to_value(Report::build(fixture::<RunFacts>("run-oom.json"))),
        ),
        (
            "ExecReport",
            serde_json::to_value(ExecReport::build(fixture::<ExecFacts>("exec-go-oom.json"))),
        ),
        (
            "CompareReport",
            serde_json::to_value(CompareReport::build(fixture::<CompareFacts>(
                "compare.json",
            ))),
        ),
        (
            "ThresholdReport",
            serde_json::to_value(ThresholdReport::build(fixture::<ThresholdFacts>(
                "threshold.json",
            ))),
        ),
        (
            "SweepReport",
            serde_json::to_value(
                SweepReport::merge(cells.into_iter().map(SweepRow::build).collect()).unwrap(),
            ),
        ),
    ];
    for (kind, json) in reports {
        let json = json.unwrap();
        let errors: Vec<String> = of_kind(kind)
            .iter_errors(&json)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .take(5)
            .collect();
        assert!(errors.is_empty(), "{kind}: {}", errors.join("; "));
    }
}
