//! `supportlake import zendesk|gorgias|csv` on the shipped samples (`data/helpdesk`, written
//! from the vendors' documented formats) over the demo store (and a second shop with the same
//! order numbers) with a real index, so imported tickets are classified by the real model and
//! linked to the right store's customers and orders.

use std::path::{Path, PathBuf};

use serde_json::Value;

use testkit::copy_dir;

use crate::common::sql_json;

struct Lake {
    _dir: tempfile::TempDir,
    lake: PathBuf,
    index: PathBuf,
    state: PathBuf,
}

/// The demo store and a second shop, ingested and indexed once (`serving::built`); each test
/// imports into its own copy of the lake.
fn private_lake() -> Lake {
    let built = crate::serving::built();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&built.lake, &dir.path().join("lake"));
    Lake {
        lake: dir.path().join("lake"),
        index: built.index.clone(),
        state: dir.path().join("state"),
        _dir: dir,
    }
}

fn import(lake: &Lake, args: &[&str]) -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_supportlake"))
        .current_dir(crate::common::root())
        .env("SUPPORTLAKE_LAKE_URL", &lake.lake)
        .env("SUPPORTLAKE_INDEX_DIR", &lake.index)
        .env("SUPPORTLAKE_STATE_DIR", &lake.state)
        .arg("import")
        .args(args)
        // The lake holds two shops: the tickets are the demo store's.
        .args(["--shop", crate::serving::SHOP, "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "import {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn count(lake: &Path, query: &str) -> i64 {
    sql_json(lake, query)[0]["n"].as_i64().unwrap()
}

const ZENDESK: &[&str] = &[
    "zendesk",
    "data/helpdesk/zendesk",
    "--handle-time-field",
    "360041234512",
];
const GORGIAS: &[&str] = &["gorgias", "data/helpdesk/gorgias"];
const CSV: &[&str] = &[
    "csv",
    "data/helpdesk/csv/tickets.csv",
    "--map",
    "data/helpdesk/csv/mapping.toml",
];

#[test]
fn each_sample_imports_linked_classified_redacted_and_only_once() {
    let lake = private_lake();
    // (args, prefix, shopper-visible messages per data/helpdesk/README.md)
    for (args, prefix, messages) in [
        (ZENDESK, "zendesk", 92),
        (GORGIAS, "gorgias", 93),
        (CSV, "csv", 91),
    ] {
        let report = import(&lake, args);
        assert_eq!(report["tickets"], 25, "{prefix}: {report}");
        assert_eq!(report["messages"], messages, "{prefix}: {report}");
        assert_eq!(report["csat"], 20, "{prefix}: {report}");
        assert_eq!(report["notes_skipped"], 3, "{prefix}: {report}");
        assert_eq!(
            report["rejected"],
            serde_json::json!({}),
            "{prefix}: {report}"
        );
        assert_eq!(report["classified"], 25, "{prefix}: {report}");
        // The samples' shoppers are demo-store customers; most name one of their orders.
        assert_eq!(report["linked_customers"], 25, "{prefix}: {report}");
        assert!(
            report["linked_orders"].as_u64().unwrap() >= 15,
            "{prefix}: {report}"
        );

        let of_import = format!("id LIKE '{prefix}-%'");
        let l = &lake.lake;
        assert_eq!(
            count(
                l,
                &format!("SELECT count(*) AS n FROM conversations WHERE {of_import}")
            ),
            25
        );
        assert_eq!(
            count(
                l,
                &format!(
                    "SELECT count(*) AS n FROM conversations WHERE {of_import} AND resolution_path = 'human_only' AND customer_id IS NOT NULL AND primary_intent IS NOT NULL"
                )
            ),
            25,
            "{prefix}"
        );
        assert_eq!(
            count(
                l,
                &format!(
                    "SELECT count(*) AS n FROM tickets WHERE source = '{prefix}' AND conversation_id LIKE '{prefix}-%'"
                )
            ),
            25
        );
        assert_eq!(
            count(
                l,
                &format!(
                    "SELECT count(*) AS n FROM messages WHERE conversation_id LIKE '{prefix}-%'"
                )
            ),
            messages
        );
        assert_eq!(
            count(
                l,
                &format!("SELECT count(*) AS n FROM csat WHERE conversation_id LIKE '{prefix}-%'")
            ),
            20
        );
        // The samples' messages hold emails and phone numbers; none reach the lake.
        let leaked = count(
            l,
            &format!(
                "SELECT count(*) AS n FROM messages WHERE conversation_id LIKE '{prefix}-%' \
                 AND (regexp_like(text, '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[a-z]{{2,}}') \
                 OR regexp_like(text, '555[-. ][0-9]{{4}}'))"
            ),
        );
        assert_eq!(leaked, 0, "{prefix}: PII left in message texts");
        let redacted = count(
            l,
            &format!(
                "SELECT count(*) AS n FROM messages WHERE conversation_id LIKE '{prefix}-%' AND (strpos(text, '[email]') > 0 OR strpos(text, '[phone]') > 0)"
            ),
        );
        assert!(
            redacted > 0,
            "{prefix}: the samples' contact details were redacted, not absent"
        );

        // Tickets tagged with one of supportlake's intents: the classifier mostly agrees.
        let rows = sql_json(
            l,
            &format!("SELECT primary_intent, tags FROM conversations WHERE {of_import}"),
        );
        let intents: Vec<&str> = pipeline::intents::INTENTS.iter().map(|i| i.id).collect();
        let (mut tagged, mut agreed) = (0, 0);
        for row in &rows {
            let tags: Vec<&str> = row["tags"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            if let Some(tag) = tags.iter().find(|t| intents.contains(t)) {
                tagged += 1;
                agreed += usize::from(row["primary_intent"].as_str() == Some(*tag));
            }
        }
        assert!(tagged >= 15, "{prefix}: {tagged} tagged tickets");
        assert!(
            agreed * 2 >= tagged,
            "{prefix}: the classifier agreed with {agreed} of {tagged} tags"
        );

        // The same export again writes nothing.
        let again = import(&lake, args);
        for (table, counts) in again["ingest"]["tables"].as_object().unwrap() {
            assert_eq!(
                counts["written"], 0,
                "{prefix} re-import wrote to {table}: {again}"
            );
        }
    }
    // Every shopper-visible message of the three samples, no more: re-imports added none.
    assert_eq!(
        count(
            &lake.lake,
            "SELECT count(*) AS n FROM messages WHERE conversation_id LIKE 'zendesk-%' OR conversation_id LIKE 'gorgias-%' OR conversation_id LIKE 'csv-%'"
        ),
        92 + 93 + 91
    );
}

/// What importing a malformed sample must do: `(tickets, messages, ratings)` imported and
/// rejected, messages skipped with their rejected ticket, reasons quarantined.
struct Expected {
    args: &'static [&'static str],
    imported: (u64, u64, u64),
    rejected: (u64, u64, u64),
    skipped_with_ticket: u64,
    reasons: &'static [&'static str],
}

#[test]
fn malformed_exports_quarantine_exactly_the_broken_records_with_reasons() {
    let lake = private_lake();
    // Counts from data/helpdesk/README.md.
    let cases = [
        Expected {
            args: &["zendesk", "data/helpdesk/zendesk-malformed"],
            imported: (4, 14, 2),
            rejected: (3, 3, 1),
            skipped_with_ticket: 9,
            reasons: &[
                "wrong type: id = \"RL-3158\" is not an integer",
                "missing field: created_at",
                "bad timestamp: created_at = \"Sep 27, 2026 6:20 PM\"",
                "unknown enum value: satisfaction_rating.score = \"excellent\"",
                "unknown author: author_id",
                "unknown ticket: 3999",
            ],
        },
        Expected {
            args: &["gorgias", "data/helpdesk/gorgias-malformed"],
            imported: (5, 16, 3),
            rejected: (2, 3, 1),
            skipped_with_ticket: 6,
            reasons: &[
                "wrong type: id = \"T-48390093\" is not an integer",
                "missing field: created_datetime",
                "out of range: satisfaction_survey.score = 7",
                "bad timestamp: created_datetime",
                "unknown author: neither from_agent nor sender is set",
                "unknown ticket: ticket_id 48399999",
            ],
        },
        Expected {
            args: &[
                "csv",
                "data/helpdesk/csv-malformed/tickets.csv",
                "--map",
                "data/helpdesk/csv-malformed/mapping.toml",
            ],
            imported: (6, 17, 4),
            rejected: (0, 4, 1),
            skipped_with_ticket: 0,
            reasons: &[
                "wrong shape: 9 cells where the header has 23",
                "out of range: csat_score = \"7\"",
                "unknown enum value: role = \"Bot\"",
                "bad timestamp: message_time = \"19/09/2026 19:14\"",
                "missing field: conversation_id",
            ],
        },
    ];
    for Expected {
        args,
        imported,
        rejected: (bad_tickets, bad_messages, bad_ratings),
        skipped_with_ticket: skipped,
        reasons,
    } in cases
    {
        let report = import(&lake, args);
        let rejected = |kind: &str| report["rejected"][kind].as_u64().unwrap_or(0);
        assert_eq!(
            (
                report["tickets"].as_u64().unwrap(),
                report["messages"].as_u64().unwrap(),
                report["csat"].as_u64().unwrap()
            ),
            imported,
            "{args:?}: {report}"
        );
        assert_eq!(
            (
                rejected("conversations"),
                rejected("messages"),
                rejected("csat")
            ),
            (bad_tickets, bad_messages, bad_ratings),
            "{args:?}: {report}"
        );
        assert_eq!(report["skipped_with_ticket"], skipped, "{args:?}: {report}");
        let source = args[0];
        let quarantined = sql_json(
            &lake.lake,
            &format!("SELECT reason FROM quarantine WHERE source_file LIKE '{source}/%'"),
        );
        assert_eq!(
            quarantined.len() as u64,
            bad_tickets + bad_messages + bad_ratings,
            "{source}"
        );
        for reason in reasons {
            assert!(
                quarantined
                    .iter()
                    .any(|q| q["reason"].as_str().unwrap().contains(reason)),
                "{source}: no quarantined record says {reason:?}: {quarantined:?}"
            );
        }
        // Quarantine rows are keyed by content: importing again adds none.
        import(&lake, args);
        let after = count(
            &lake.lake,
            &format!("SELECT count(*) AS n FROM quarantine WHERE source_file LIKE '{source}/%'"),
        );
        assert_eq!(after as usize, quarantined.len(), "{source}");
    }
}
