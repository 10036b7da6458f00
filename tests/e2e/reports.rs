//! Every report on the bundled demo store, in every format, as an analyst runs them: the
//! numbers must be plausible (rates within 0..1, scores within 1..5, the three resolution
//! paths present) and the HTML page must stand alone.

use std::path::Path;

use crate::common::{demo_lake, ok, supportlake};
use serde_json::Value;

fn rows(lake: &Path, report: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["report", report, "--format", "json"];
    args.extend_from_slice(extra);
    let output: Value = serde_json::from_str(&ok(lake, &args)).unwrap();
    output["rows"].as_array().unwrap().clone()
}

fn f(row: &Value, column: &str) -> f64 {
    match &row[column] {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("{column} is {other}"),
    }
}

#[test]
fn every_report_runs_in_every_format_on_the_demo_store() {
    let lake = demo_lake();
    let list = ok(lake, &["report", "--list"]);
    let names: Vec<&str> = list
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names.len(), 8, "{list}");
    for name in names {
        let table = ok(lake, &["report", name]);
        assert!(table.lines().count() > 4, "{name} table:\n{table}");
        let csv = ok(lake, &["report", name, "--format", "csv"]);
        let json: Value =
            serde_json::from_str(&ok(lake, &["report", name, "--format", "json"])).unwrap();
        let rows = json["rows"].as_array().unwrap();
        assert!(!rows.is_empty(), "{name} has no rows");
        // Header line plus one line per row (no field of these reports spans lines).
        assert_eq!(csv.trim_end().lines().count(), rows.len() + 1, "{name} csv");
        assert!(
            json["params"]["from"]
                .as_str()
                .unwrap()
                .starts_with("2026-"),
            "{name}: {}",
            json["params"]
        );

        let out = tempfile::NamedTempFile::new().unwrap();
        ok(
            lake,
            &[
                "report",
                name,
                "--format",
                "html",
                "--output",
                out.path().to_str().unwrap(),
            ],
        );
        let html = std::fs::read_to_string(out.path()).unwrap();
        assert!(html.starts_with("<!doctype html>"), "{name}");
        assert!(
            html.contains("<svg") && html.contains("<table>"),
            "{name}: chart and table"
        );
        // Standalone: nothing to fetch, nothing to run.
        for forbidden in ["<script", "<link", "src=", "@import", "url("] {
            assert!(
                !html.contains(forbidden),
                "{name}: page contains {forbidden}"
            );
        }
        // Every row is in the table.
        assert_eq!(
            html.matches("<tr>").count(),
            rows.len() + 1,
            "{name} html rows"
        );
    }
}

#[test]
fn demo_numbers_are_plausible() {
    let lake = demo_lake();

    let csat = rows(lake, "csat-by-path", &[]);
    let paths: Vec<&Value> = csat
        .iter()
        .filter(|r| r["intent"] == "all" && r["path"] != "all")
        .collect();
    let names: Vec<&str> = paths.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(names, ["ai_only", "ai_then_human", "human_only"]);
    for row in &paths {
        assert!(f(row, "responses") >= 30.0, "{row}");
        assert!((1.0..=5.0).contains(&f(row, "avg_score")), "{row}");
        assert!((0.0..=1.0).contains(&f(row, "pct_4_5")), "{row}");
        assert!(
            f(row, "response_rate") > 0.0 && f(row, "response_rate") < 1.0,
            "{row}"
        );
    }

    let reopen = rows(lake, "reopen", &[]);
    let total = reopen
        .iter()
        .find(|r| r["intent"] == "all" && r["path"] == "all")
        .unwrap();
    let rate = f(total, "reopen_rate");
    assert!(rate > 0.0 && rate < 1.0, "{total}");
    // A longer window can only find more reopens.
    let longer = rows(lake, "reopen", &["--param", "reopen_days=30"]);
    let longer = longer
        .iter()
        .find(|r| r["intent"] == "all" && r["path"] == "all")
        .unwrap();
    assert!(
        f(longer, "reopened") > f(total, "reopened"),
        "{longer} vs {total}"
    );

    let gaps = rows(lake, "knowledge-gaps", &[]);
    assert!(gaps.len() >= 5, "{} clusters", gaps.len());
    for cluster in gaps.iter().take(5) {
        assert!(
            !cluster["example_questions"].as_str().unwrap().is_empty(),
            "{cluster}"
        );
        let closest = cluster["closest_doc"].as_str().unwrap();
        assert!(
            closest.starts_with("article:") || closest.starts_with("policy:"),
            "{cluster}"
        );
        assert!(f(cluster, "similarity") > 0.0, "{cluster}");
    }
    let impacts: Vec<f64> = gaps.iter().map(|g| f(g, "impact")).collect();
    assert!(
        impacts.windows(2).all(|w| w[0] >= w[1]),
        "ranked by impact: {impacts:?}"
    );
    // Some clusters gather paraphrases, not only one question each.
    assert!(gaps.iter().any(|g| f(g, "distinct_questions") >= 3.0));
}

#[test]
fn bad_report_requests_are_refused_with_a_reason() {
    let lake = demo_lake();
    let cases: &[(&[&str], &str)] = &[
        (
            &["report", "nope"],
            "no report named `nope`; the reports are: resolution",
        ),
        (
            &["report", "reopen", "--param", "reopen_dayz=3"],
            "has no parameter `reopen_dayz`",
        ),
        (
            &["report", "reopen", "--param", "reopen_days=week"],
            "`week` is not an integer",
        ),
        (
            &["report", "reopen", "--from", "yesterday"],
            "is not a date",
        ),
        (
            &[
                "report",
                "reopen",
                "--from",
                "2026-09-02",
                "--to",
                "2026-09-01",
            ],
            "after to",
        ),
        (
            &[
                "report",
                "unanswered-intents",
                "--param",
                "prev_from=2026-01-01",
            ],
            "cannot be set",
        ),
        (
            &["report", "reopen", "--shop", "a", "--param", "shop=b"],
            "given twice",
        ),
    ];
    for (args, message) in cases {
        let output = supportlake(lake, args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // --sql prints the file a reader can rerun: header with the parameters, includes expanded.
    let sql = ok(lake, &["report", "unanswered-intents", "--sql"]);
    assert!(
        sql.contains("-- report: unanswered-intents")
            && sql.contains("-- param: confidence_threshold"),
        "{sql}"
    );
    assert!(
        sql.contains("FROM turn_facts tf") && !sql.contains("-- include:"),
        "{sql}"
    );
    // JSON rows carry every column, NULLs included, in the report's column order.
    let json = ok(lake, &["report", "resolution", "--format", "json"]);
    let first_row = &json[json.find("\"rows\"").unwrap()..];
    let week = first_row.find("\"week\"").unwrap();
    assert!(
        week < first_row.find("\"intent\"").unwrap() && first_row.contains("\"answer_rate\":null"),
        "{json}"
    );
    // The views are there for analysts, and stay read-only.
    let facts = ok(
        lake,
        &[
            "sql",
            "SELECT count(*) AS n FROM conversation_facts",
            "--format",
            "csv",
        ],
    );
    let conversations = ok(
        lake,
        &[
            "sql",
            "SELECT count(*) AS n FROM conversations",
            "--format",
            "csv",
        ],
    );
    assert_eq!(facts, conversations, "one row per conversation");
}

/// Each report for one shop reads the same rows whether or not the lake also holds another
/// shop whose customer, order and conversation ids are all the same as this one's.
#[test]
fn a_report_for_one_shop_is_the_same_beside_a_colliding_shop() {
    let alone = demo_lake();
    let beside = &crate::serving::built().lake;
    let list = ok(alone, &["report", "--list"]);
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let sorted = |lake: &Path| {
            let mut rows: Vec<String> = rows(lake, name, &["--shop", testkit::SHOP_A])
                .iter()
                .map(Value::to_string)
                .collect();
            rows.sort();
            rows
        };
        let own = sorted(alone);
        assert!(!own.is_empty(), "{name} has no rows for the demo shop");
        assert_eq!(
            sorted(beside),
            own,
            "{name} for the demo shop changed beside Summit Supply"
        );
        let text = own.join("\n");
        assert!(
            !text.contains("summit-supply") && !text.contains("Summit Supply"),
            "{name}: {text}"
        );
    }
}
