//! The `supportlake` command as a user runs it: generate, ingest, query, refuse, and read the
//! lake back with a second engine. Each test works in its own temp directory.

use std::collections::BTreeMap;

use std::path::Path;
use std::process::Command;

use crate::common::{ok, root, sql_json, supportlake};

fn count(lake: &Path, table: &str) -> i64 {
    sql_json(lake, &format!("SELECT count(*) AS n FROM {table}"))[0]["n"]
        .as_i64()
        .unwrap()
}

/// Every file of a Delta table's log: if these are unchanged, no row changed.
fn delta_log(lake: &Path, table: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(lake.join(table).join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

const DATA_TABLES: &[&str] = &[
    "shops",
    "products",
    "variants",
    "inventory_levels",
    "policies",
    "articles",
    "customers",
    "orders",
    "order_lines",
    "fulfillments",
    "refunds",
    "returns",
    "conversations",
    "messages",
    "turns",
    "handoffs",
    "csat",
];

#[test]
fn the_demo_store_ingests_with_the_promised_shape_and_a_second_ingest_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    ok(&lake, &["ingest", "data/demo-store"]);

    let counts: BTreeMap<&str, i64> = DATA_TABLES.iter().map(|t| (*t, count(&lake, t))).collect();
    assert!(counts["products"] >= 150, "{counts:?}");
    assert!(counts["variants"] >= 600, "{counts:?}");
    assert!(counts["articles"] >= 30, "{counts:?}");
    assert!(counts["policies"] >= 4, "{counts:?}");
    assert!(counts["conversations"] >= 2000, "{counts:?}");
    assert!(
        counts["messages"] > counts["conversations"] * 2,
        "{counts:?}"
    );
    for table in DATA_TABLES {
        assert!(counts[table] > 0, "{table} is empty: {counts:?}");
    }
    assert_eq!(count(&lake, "quarantine"), 0, "the demo store is clean");

    // Every order state the demo promises is there.
    let states = sql_json(
        &lake,
        "SELECT DISTINCT coalesce(fulfillment_status, 'unfulfilled') AS f, financial_status AS p FROM orders",
    );
    let has = |f: &str, p: &str| states.iter().any(|s| s["f"] == f && s["p"] == p);
    assert!(
        has("unfulfilled", "paid") && has("partial", "paid") && has("fulfilled", "paid"),
        "{states:?}"
    );
    assert!(
        has("unfulfilled", "voided")
            && has("fulfilled", "refunded")
            && has("fulfilled", "partially_refunded"),
        "{states:?}"
    );
    let shipments = sql_json(
        &lake,
        "SELECT DISTINCT shipment_status AS s FROM fulfillments",
    );
    for status in ["in_transit", "delivered"] {
        assert!(shipments.iter().any(|s| s["s"] == status), "{shipments:?}");
    }
    let paths = sql_json(
        &lake,
        "SELECT DISTINCT resolution_path AS p FROM conversations ORDER BY p",
    );
    assert_eq!(paths.len(), 4, "{paths:?}");
    assert!(count(&lake, "conversations WHERE reopened_from IS NOT NULL") > 0);
    assert!(count(&lake, "turns WHERE abstained") > 0);

    // No raw emails anywhere in the lake's text.
    assert_eq!(count(&lake, "messages WHERE text LIKE '%@example.%'"), 0);
    assert_eq!(
        count(
            &lake,
            "customers WHERE email_masked NOT LIKE '%***@example.%'"
        ),
        0
    );

    // Second ingest: same counts, and no data table gets a new commit.
    let logs: BTreeMap<&str, Vec<String>> = DATA_TABLES
        .iter()
        .map(|t| (*t, delta_log(&lake, t)))
        .collect();
    let report: serde_json::Value =
        serde_json::from_str(&ok(&lake, &["ingest", "data/demo-store", "--json"])).unwrap();
    for table in DATA_TABLES {
        assert_eq!(
            report["tables"][table]["written"], 0,
            "{table} rewrote rows: {report}"
        );
        assert_eq!(
            delta_log(&lake, table),
            logs[table],
            "{table} got a new commit"
        );
        assert_eq!(count(&lake, table), counts[table], "{table} count changed");
    }
    assert_eq!(count(&lake, "ingest_runs"), 2, "every run is recorded");

    // A second engine (delta-rs's Python package) reads the same tables.
    let python = root().join("vendor/pyenv/bin/python");
    // A clean environment: the test harness's variables are not the reader's business.
    let output = Command::new(&python)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg(root().join("tests/read_lake.py"))
        .arg(&lake)
        .args(["orders", "messages", "variants"])
        .output()
        .expect("vendor/pyenv/bin/python: run scripts/fetch-assets");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let python_counts: BTreeMap<String, i64> = serde_json::from_slice(&output.stdout).unwrap();
    for table in ["orders", "messages", "variants"] {
        assert_eq!(
            python_counts[table], counts[table],
            "{table}: python deltalake disagrees"
        );
    }
}

#[test]
fn broken_records_go_to_quarantine_with_reasons_and_the_good_ones_land() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let input = tmp.path().join("export");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("export.json"),
        r#"{"shop": "test.myshopify.com", "exported_at": "2026-10-31T00:00:00Z"}"#,
    )
    .unwrap();
    let good =
        std::fs::read_to_string(root().join("tests/fixtures/shopify/orders__fulfilled.json"))
            .unwrap();
    let good: serde_json::Value = serde_json::from_str(&good).unwrap();
    let mut lines = Vec::new();
    for i in 0..5 {
        let mut order = good.clone();
        order["id"] = serde_json::json!(1000 + i);
        order["line_items"][0]["id"] = serde_json::json!(5000 + i);
        lines.push(order.to_string());
        if i == 1 {
            lines.push("{\"id\": 77, \"updated_at\": ".into()); // truncated JSON
        }
        if i == 2 {
            let mut no_id = good.clone();
            no_id.as_object_mut().unwrap().remove("id");
            lines.push(no_id.to_string());
        }
        if i == 3 {
            let mut bad_enum = good.clone();
            bad_enum["id"] = serde_json::json!(9999);
            bad_enum["financial_status"] = serde_json::json!("teleported");
            lines.push(bad_enum.to_string());
        }
    }
    std::fs::write(input.join("orders.jsonl"), lines.join("\n")).unwrap();

    let stdout = ok(&lake, &["ingest", input.to_str().unwrap()]);
    assert!(stdout.contains("3 quarantined"), "{stdout}");
    assert_eq!(count(&lake, "orders"), 5);
    let rows = sql_json(
        &lake,
        "SELECT source_file, record_ref, reason FROM quarantine ORDER BY record_ref",
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
    let reasons: Vec<&str> = rows.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("invalid JSON")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("missing id: id")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("teleported")),
        "{reasons:?}"
    );
    assert!(rows.iter().all(|r| r["source_file"] == "orders.jsonl"
        && r["record_ref"].as_str().unwrap().starts_with("line ")));

    // Re-ingesting the same file adds no quarantine rows either, and the report counts the
    // bad records by reason.
    let report: serde_json::Value =
        serde_json::from_str(&ok(&lake, &["ingest", input.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(count(&lake, "quarantine"), 3);
    assert_eq!(
        report["quarantine_reasons"],
        serde_json::json!({"invalid JSON": 1, "missing id": 1, "unknown enum value": 1}),
        "{report}"
    );
}

#[test]
fn ingest_fails_only_when_nothing_valid_was_read() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("export");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("export.json"),
        r#"{"shop": "test.myshopify.com"}"#,
    )
    .unwrap();
    std::fs::write(
        input.join("orders.jsonl"),
        "not json\n{\"also\": \"no id\"}\n",
    )
    .unwrap();
    let output = supportlake(
        &tmp.path().join("lake"),
        &["ingest", input.to_str().unwrap()],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing valid"));
}

#[test]
fn sql_refuses_to_write_and_leaves_the_lake_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let input = tmp.path().join("export");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(
        root().join("data/demo-store/export.json"),
        input.join("export.json"),
    )
    .unwrap();
    std::fs::copy(
        root().join("data/demo-store/policies.json"),
        input.join("policies.json"),
    )
    .unwrap();
    ok(&lake, &["ingest", input.to_str().unwrap()]);
    let before = delta_log(&lake, "policies");
    let policies = count(&lake, "policies");
    for statement in [
        "DROP TABLE policies",
        "INSERT INTO policies (shop_id, policy_type, updated_at) VALUES ('x', 'y', now())",
        "DELETE FROM policies",
        "COPY policies TO '/tmp/supportlake-copy-test.parquet'",
        "CREATE TABLE t AS SELECT * FROM policies",
    ] {
        let output = supportlake(&lake, &["sql", statement]);
        assert!(!output.status.success(), "{statement} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("error"), "{statement}: {stderr}");
    }
    assert!(!Path::new("/tmp/supportlake-copy-test.parquet").exists());
    assert_eq!(delta_log(&lake, "policies"), before);
    assert_eq!(count(&lake, "policies"), policies);

    // The --lake flag beats SUPPORTLAKE_LAKE_URL (here pointing at an empty place).
    let elsewhere = tmp.path().join("no-lake-here");
    let flagged = Command::new(env!("CARGO_BIN_EXE_supportlake"))
        .current_dir(root())
        .env("SUPPORTLAKE_LAKE_URL", &elsewhere)
        .args([
            "--lake",
            lake.to_str().unwrap(),
            "sql",
            "SELECT count(*) AS n FROM policies",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        flagged.status.success(),
        "{}",
        String::from_utf8_lossy(&flagged.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&flagged.stdout).unwrap();
    assert_eq!(rows[0]["n"].as_i64().unwrap(), policies);

    let output = supportlake(&lake, &["sql", "SELECT nope FROM policies"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("nope"),
        "errors point at the problem"
    );
}

/// Byte equality, reported as the first differing line rather than two megabyte dumps.
fn assert_same(name: &str, left: &[u8], right: &[u8], context: &str) {
    if left == right {
        return;
    }
    let (l, r) = (
        String::from_utf8_lossy(left),
        String::from_utf8_lossy(right),
    );
    let line = l
        .lines()
        .zip(r.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(l.lines().count().min(r.lines().count()));
    let show = |text: &str| {
        text.lines()
            .nth(line)
            .unwrap_or("<end of file>")
            .chars()
            .take(300)
            .collect::<String>()
    };
    panic!(
        "{name} differs {context} at line {}:\n  {}\n  {}",
        line + 1,
        show(&l),
        show(&r)
    );
}

fn generate(lake: &Path, seed: u64, out: &Path) {
    let seed = seed.to_string();
    ok(
        lake,
        &[
            "generate",
            "--scale",
            "1",
            "--seed",
            &seed,
            "--out",
            out.to_str().unwrap(),
        ],
    );
}

#[test]
fn generate_is_byte_identical_for_a_seed_and_is_the_bundled_demo_store() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("unused-lake");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    generate(&lake, 7, &a);
    generate(&lake, 7, &b);
    let mut names: Vec<String> = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 9, "{names:?}");
    for name in &names {
        let left = std::fs::read(a.join(name)).unwrap();
        assert_same(
            name,
            &left,
            &std::fs::read(b.join(name)).unwrap(),
            "between two runs",
        );
        let bundled = std::fs::read(root().join("data/demo-store").join(name)).unwrap();
        assert_same(
            name,
            &left,
            &bundled,
            "from data/demo-store (regenerate it)",
        );
    }
    let c = tmp.path().join("c");
    generate(&lake, 8, &c);
    assert_ne!(
        std::fs::read(a.join("orders.jsonl")).unwrap(),
        std::fs::read(c.join("orders.jsonl")).unwrap()
    );
}

#[test]
fn a_catalog_only_store_holds_the_same_catalog_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake, out) = (tmp.path().join("lake"), tmp.path().join("catalog"));
    ok(
        &lake,
        &[
            "generate",
            "--scale",
            "1",
            "--seed",
            "7",
            "--out",
            out.to_str().unwrap(),
            "--catalog-only",
        ],
    );
    for name in ["orders.jsonl", "customers.jsonl", "conversations.jsonl"] {
        assert!(!out.join(name).exists(), "{name} is not catalog");
    }
    // Byte for byte the catalog and content of the full demo store.
    for name in [
        "products.csv",
        "inventory_levels.jsonl",
        "policies.json",
        "articles.json",
        "shop.json",
    ] {
        assert_same(
            name,
            &std::fs::read(out.join(name)).unwrap(),
            &std::fs::read(root().join("data/demo-store").join(name)).unwrap(),
            "from the full store",
        );
    }
    ok(&lake, &["ingest", out.to_str().unwrap()]);
    assert!(count(&lake, "products") > 0);
    assert_eq!(count(&lake, "orders"), 0);
}
