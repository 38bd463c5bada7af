//! The generated references under `docs/reference/` are what the code says now. After a change,
//! `UPDATE_EXPECT=1 cargo test -p memspike-report --test reference` rewrites them; review the
//! diff.

mod common;

use std::collections::BTreeSet;

use common::{every_kind, key_paths};

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

/// Every key path the schema allows under `at`: properties, list items (`[]`), through
/// `$ref`s and alternatives.
fn schema_paths(
    node: &serde_json::Value,
    defs: &serde_json::Value,
    at: &str,
    depth: usize,
    out: &mut BTreeSet<String>,
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
    // A map: any key, written `*`.
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        let path = if at.is_empty() {
            "*".to_owned()
        } else {
            format!("{at}.*")
        };
        out.insert(path.clone());
        schema_paths(values, defs, &path, depth + 1, out);
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

/// Whether the schema allows `path`: as written, or with a map's key in place of a segment.
fn allows(allowed: &BTreeSet<String>, path: &str) -> bool {
    if allowed.contains(path) {
        return true;
    }
    let segments: Vec<&str> = path.split('.').collect();
    (0..segments.len()).any(|i| {
        let mut s = segments.clone();
        s[i] = "*";
        allowed.contains(&s.join("."))
    })
}

/// Where the registry says a report holds a figure, the reports' schema has that key, and the
/// keys every real report has are in the schema: figures, schema and reports cannot drift
/// apart.
#[test]
fn every_figures_json_path_is_a_report_key() {
    let schema: serde_json::Value = serde_json::from_str(&memspike_report::schema()).unwrap();
    let mut allowed = BTreeSet::new();
    schema_paths(&schema, &schema["$defs"], "", 0, &mut allowed);
    let missing: Vec<(&str, &str)> = memspike_report::figures::all()
        .filter_map(|f| f.json.map(|p| (f.key, p)))
        .filter(|(_, p)| !allows(&allowed, p))
        .collect();
    assert!(
        missing.is_empty(),
        "figures whose JSON path no report has: {missing:?}"
    );
    let real: BTreeSet<String> = every_kind()
        .iter()
        .flat_map(|(_, json)| key_paths(json))
        .collect();
    let unknown: Vec<&String> = real
        .iter()
        .filter(|k| {
            !allows(&allowed, k) && !k.contains(".per_phase.") && !k.starts_with("survival.")
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
    for (kind, json) in every_kind() {
        let errors: Vec<String> = of_kind(kind)
            .iter_errors(&json)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .take(5)
            .collect();
        assert!(errors.is_empty(), "{kind}: {}", errors.join("; "));
    }
}

/// The JSON report's keys are an interface: a key may be added, never removed. The keys of
/// version 0.1.0 are checked in (`tests/golden/report-keys-0.1.0.txt`): a recorded run's report
/// still has every one.
#[test]
fn json_keys_are_only_ever_added() {
    let (_, run) = &every_kind()[0];
    let keys = key_paths(run);
    let baseline = include_str!("golden/report-keys-0.1.0.txt");
    let gone: Vec<&str> = baseline.lines().filter(|k| !keys.contains(*k)).collect();
    assert!(
        gone.is_empty(),
        "keys removed from the JSON report: {gone:?}"
    );
}
