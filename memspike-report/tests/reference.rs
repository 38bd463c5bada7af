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
