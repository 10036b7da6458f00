//! Golden tests for the report definitions.
//!
//! `tests/golden/store-a` and `store-b` are two tiny hand-built shops (12 and 1 conversations)
//! chosen for the edge cases: a reopen exactly at the 7-day edge and one a second past it, a
//! conversation that changed subject, an answer marked unhelpful, a handoff nobody answered
//! yet, conversations without CSAT, an order placed 7 days and 1 second after a pre-sale chat,
//! paraphrased unanswered questions. Every expected row in `tests/golden/expected/*.json` was
//! worked out by hand from the definitions in `pipeline/reports/` (each file's `note` says
//! what it pins), not copied from an output, so changing a definition shows up here as a diff.
//!
//! The lake, the SQL and the embedding model (knowledge-gaps) are the real ones.

use std::path::PathBuf;

use crate::common::{ok as supportlake, root};
use serde_json::Value;

/// Numbers compare by value (JSON writers differ on 1 vs 1.0, decimals come as strings).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Differences between expected rows (column list + value arrays, `"*"` = any value,
/// `"prefix*"` = a text starting with the prefix) and
/// actual rows (objects; a missing key is NULL). Empty when they match.
fn differences(columns: &[String], expected: &[Vec<Value>], actual: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    if expected.len() != actual.len() {
        out.push(format!(
            "{} rows expected, {} returned",
            expected.len(),
            actual.len()
        ));
    }
    for (i, (want, got)) in expected.iter().zip(actual).enumerate() {
        let got = got.as_object().expect("rows are objects");
        let label = want
            .iter()
            .take(2)
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        for (column, want) in columns.iter().zip(want) {
            let value = got.get(column).unwrap_or(&Value::Null);
            let same = match (want, number(want), number(value)) {
                (Value::String(s), _, _) if s == "*" => true,
                (Value::String(s), _, _) if s.ends_with('*') => value
                    .as_str()
                    .is_some_and(|v| v.starts_with(s.trim_end_matches('*'))),
                (Value::String(_), _, _) | (Value::Bool(_), _, _) | (Value::Null, _, _) => {
                    want == value
                }
                (_, Some(a), Some(b)) => (a - b).abs() < 1e-9,
                _ => false,
            };
            if !same {
                out.push(format!(
                    "row {i} ({label}): {column} expected {want}, got {value}"
                ));
            }
        }
        for key in got.keys() {
            if !columns.contains(key) && !got[key].is_null() {
                out.push(format!("row {i}: unexpected column {key}"));
            }
        }
    }
    out
}

fn golden_lake() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for store in ["store-a", "store-b"] {
        let path = root().join("tests/golden").join(store);
        supportlake(dir.path(), &["ingest", path.to_str().unwrap()]);
    }
    dir
}

#[test]
fn every_report_matches_its_hand_computed_rows() {
    let lake = golden_lake();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root().join("tests/golden/expected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    let mut covered = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(case).unwrap()).unwrap();
        let mut args: Vec<String> = serde_json::from_value(expected["command"].clone()).unwrap();
        args.extend(["--format".into(), "json".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if args[0] == "report" {
            covered.insert(args[1].to_string());
        }
        let output: Value = serde_json::from_str(&supportlake(lake.path(), &args)).unwrap();
        // Reports wrap their rows with the parameters used; `sql` prints the rows alone.
        let rows = output
            .get("rows")
            .unwrap_or(&output)
            .as_array()
            .unwrap()
            .clone();
        let columns: Vec<String> = serde_json::from_value(expected["columns"].clone()).unwrap();
        let want: Vec<Vec<Value>> = serde_json::from_value(expected["rows"].clone()).unwrap();
        for problem in differences(&columns, &want, &rows) {
            failures.push(format!(
                "{}: {problem}",
                case.file_name().unwrap().to_string_lossy()
            ));
        }
        if args[1] == "knowledge-gaps" {
            for row in &rows {
                let similarity = row["similarity"].as_f64().unwrap();
                assert!(
                    similarity > 0.0 && similarity <= 1.0,
                    "similarity {similarity}"
                );
                assert!(
                    row["closest_url"]
                        .as_str()
                        .unwrap()
                        .starts_with("https://golden-a.example/")
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "golden differences:\n{}",
        failures.join("\n")
    );
    // Every shipped report has at least one golden case.
    let listed: std::collections::BTreeSet<String> =
        supportlake(lake.path(), &["report", "--list"])
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
    assert_eq!(covered, listed);
}

#[test]
fn the_comparison_catches_a_changed_value() {
    let columns = vec!["intent".to_string(), "rate".to_string(), "n".to_string()];
    let expected = vec![vec![Value::from("all"), Value::from(0.25), Value::Null]];
    let same = vec![serde_json::json!({"intent": "all", "rate": 0.25})];
    assert!(differences(&columns, &expected, &same).is_empty());
    let prefixed = vec![vec![Value::from("al*"), Value::from(0.25), Value::Null]];
    assert!(differences(&columns, &prefixed, &same).is_empty());
    let other = vec![serde_json::json!({"intent": "none", "rate": 0.25})];
    assert_eq!(differences(&columns, &prefixed, &other).len(), 1);
    let changed = vec![serde_json::json!({"intent": "all", "rate": 0.2501})];
    assert_eq!(differences(&columns, &expected, &changed).len(), 1);
    let extra = vec![serde_json::json!({"intent": "all", "rate": 0.25, "n": 3, "new": 1})];
    assert_eq!(differences(&columns, &expected, &extra).len(), 2);
    assert_eq!(differences(&columns, &expected, &[]).len(), 1);
}

#[test]
fn parameters_are_bound_not_pasted() {
    let lake = golden_lake();
    // A shop "name" that would widen the filter if it were pasted into the SQL text.
    let hostile = "x' OR '1'='1";
    let output: Value = serde_json::from_str(&supportlake(
        lake.path(),
        &[
            "report",
            "csat-by-path",
            "--shop",
            hostile,
            "--format",
            "json",
        ],
    ))
    .unwrap();
    let rows = output["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["conversations"], 0);
    assert_eq!(output["params"]["shop"], hostile);
}
