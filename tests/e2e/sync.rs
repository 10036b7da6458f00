//! `supportlake sync shopify` against the Shopify replay server (`tests/shopify-replay`, the
//! project's one stand-in: Shopify itself cannot run here). The replay serves the demo
//! store's export files as the Admin GraphQL API, so a sync must arrive at the same lake as
//! ingesting those files.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shopify_replay::{Config, Faults, Replay};

use crate::common::{demo_lake, root, sql_json};

const SHOP: &str = "ridgeline-outfitters.myshopify.com";
const TOKEN: &str = "shpat_0123456789abcdef_replay_secret";

fn replay(config: Config) -> Replay {
    Replay::serve_dir(&root().join("data/demo-store"), config).unwrap()
}

fn sync_command(replay: &Replay, work: &Path, token: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_supportlake"));
    command
        .current_dir(root())
        .env("SUPPORTLAKE_LAKE_URL", work.join("lake"))
        .env("SUPPORTLAKE_STATE_DIR", work.join("state"))
        .env("SUPPORTLAKE_SHOPIFY_ADMIN_URL", replay.url())
        .env("SUPPORTLAKE_SHOPIFY_ACCESS_TOKEN", token)
        .env(
            "SUPPORTLAKE_LOG",
            "supportlake=debug,pipeline=debug,reqwest=debug",
        )
        .args([
            "sync",
            "shopify",
            "--shop",
            SHOP,
            "--poll-ms",
            "50",
            "--json",
        ]);
    command
}

/// Runs a sync to the end (bounded) and returns its report and everything it printed.
fn sync(replay: &Replay, work: &Path) -> (Value, String) {
    let output = bounded(sync_command(replay, work, TOKEN), Duration::from_secs(300));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "sync failed:\n{printed}");
    (serde_json::from_slice(&output.stdout).unwrap(), printed)
}

/// Runs `command` to its end within `limit`. Its output goes through files, which cannot
/// fill up and stall it as an unread pipe would.
fn bounded(mut command: Command, limit: Duration) -> Output {
    let logs = tempfile::tempdir().unwrap();
    let (out, err) = (logs.path().join("out"), logs.path().join("err"));
    let mut child = command
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!(
                "sync ran longer than {limit:?}:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

/// `(table, key, columns a sync cannot reproduce from GraphQL)`: the product CSV has no
/// creation time, and REST's deprecated `restock` flag has no GraphQL counterpart.
const SHOPIFY_TABLES: &[(&str, &str, &str)] = &[
    ("shops", "shop_id", ""),
    ("products", "id", "created_at"),
    ("variants", "id", ""),
    ("inventory_levels", "inventory_item_id, location_id", ""),
    ("policies", "policy_type", ""),
    ("articles", "id", ""),
    ("customers", "id", ""),
    ("orders", "id", ""),
    ("order_lines", "id", ""),
    ("fulfillments", "id", ""),
    ("refunds", "id", "restock"),
    ("returns", "id", ""),
];

fn rows(lake: &Path, table: &str, key: &str, excluded: &str) -> Vec<Value> {
    let columns = if excluded.is_empty() {
        "*".to_string()
    } else {
        format!("* EXCLUDE ({excluded})")
    };
    sql_json(
        lake,
        &format!("SELECT {columns} FROM {table} ORDER BY {key}"),
    )
}

/// Every Shopify table of `synced` holds exactly the rows of the ingested demo store, once.
fn assert_same_as_ingest(synced: &Path) {
    for (table, key, excluded) in SHOPIFY_TABLES {
        let expected = rows(demo_lake(), table, key, excluded);
        let got = rows(synced, table, key, excluded);
        assert!(
            !expected.is_empty(),
            "{table} is empty in the ingested lake"
        );
        assert_eq!(got.len(), expected.len(), "{table}: row count");
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g, e, "{table}: first differing row");
        }
        let distinct = sql_json(
            synced,
            &format!("SELECT count(*) AS n FROM (SELECT DISTINCT {key} FROM {table})"),
        )[0]["n"]
            .as_i64()
            .unwrap();
        assert_eq!(distinct as usize, got.len(), "{table}: duplicate keys");
    }
    let quarantined = sql_json(synced, "SELECT count(*) AS n FROM quarantine")[0]["n"].clone();
    assert_eq!(quarantined, 0, "nothing the replay serves is malformed");
}

/// The token must not be in anything the sync printed or wrote.
fn assert_token_nowhere(printed: &str, work: &Path) {
    assert!(!printed.contains(TOKEN), "the token was printed");
    let mut stack = vec![work.to_path_buf()];
    let mut files = 0;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files += 1;
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
                "the token is in {}",
                path.display()
            );
        }
    }
    assert!(
        files > 20,
        "the lake and state were searched ({files} files)"
    );
}

fn written(report: &Value, table: &str) -> u64 {
    report["ingest"]["tables"][table]["written"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_full_sync_equals_ingesting_the_files_and_an_incremental_one_touches_only_what_changed() {
    let replay = replay(Config {
        token: TOKEN.into(),
        bucket: 1000.0,
        restore_rate: 1000.0,
        ..Config::default()
    });
    let work = tempfile::tempdir().unwrap();
    let (full, printed) = sync(&replay, work.path());
    assert_eq!(full["mode"], "full", "{full}");
    assert_eq!(full["objects"]["orders"], 3200, "{full}");
    assert_same_as_ingest(&work.path().join("lake"));
    assert_token_nowhere(&printed, work.path());

    let (products, orders) = replay.touch(10, 5);
    let (incremental, printed) = sync(&replay, work.path());
    assert_eq!(incremental["mode"], "incremental", "{incremental}");
    assert_eq!(incremental["objects"]["products"], 10, "{incremental}");
    assert_eq!(incremental["objects"]["orders"], 5, "{incremental}");
    assert_eq!(incremental["objects"]["customers"], 0, "{incremental}");
    assert_eq!(incremental["objects"]["inventory"], 0, "{incremental}");
    assert_eq!(
        incremental["bulk_polls"], 0,
        "an incremental sync runs no bulk operation: {incremental}"
    );
    assert_eq!(written(&incremental, "products"), 10, "{incremental}");
    assert_eq!(written(&incremental, "orders"), 5, "{incremental}");
    let lake = work.path().join("lake");
    let ids = |gids: &[String]| {
        gids.iter()
            .map(|g| g.rsplit('/').next().unwrap().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // An order's lines are versioned by the order: only the touched orders' lines move.
    let touched_lines = sql_json(
        &lake,
        &format!(
            "SELECT count(*) AS n FROM order_lines WHERE order_id IN ({})",
            ids(&orders)
        ),
    )[0]["n"]
        .as_u64()
        .unwrap();
    assert_eq!(written(&incremental, "order_lines"), touched_lines);
    for (table, _, _) in SHOPIFY_TABLES {
        if !["products", "orders", "order_lines"].contains(table) {
            assert_eq!(written(&incremental, table), 0, "{table}: {incremental}");
        }
    }
    let renamed = sql_json(
        &lake,
        &format!(
            "SELECT count(*) AS n FROM products WHERE id IN ({}) AND title LIKE '%(2027 edition)'",
            ids(&products)
        ),
    );
    assert_eq!(renamed[0]["n"], 10);
    let tagged = sql_json(
        &lake,
        &format!(
            "SELECT count(*) AS n FROM orders WHERE id IN ({}) AND array_has(tags, 'vip')",
            ids(&orders)
        ),
    );
    assert_eq!(tagged[0]["n"], 5);
    assert_token_nowhere(&printed, work.path());
}

#[test]
fn a_sync_through_throttling_429s_500s_and_a_kill_completes_without_duplicates() {
    let replay = replay(Config {
        token: TOKEN.into(),
        bucket: 1000.0,
        restore_rate: 500.0,
        bulk_duration: Duration::from_millis(1500),
        faults: Faults {
            throttle_every: Some(5),
            too_many_every: Some(7),
            server_error_every: Some(11),
        },
        ..Config::default()
    });
    let work = tempfile::tempdir().unwrap();
    // Killed while the third bulk operation (customers) runs: products and inventory are
    // staged, one operation is in flight.
    let mut child = sync_command(&replay, work.path(), TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while replay.bulk_operations() < 3 {
        assert!(child.try_wait().unwrap().is_none(), "the sync ended early");
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let checkpoint: Value = serde_json::from_slice(
        &std::fs::read(
            work.path()
                .join(format!("state/sync/{SHOP}/checkpoint.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        checkpoint["done"],
        serde_json::json!(["shop", "products", "inventory"])
    );
    let killed_at = replay.bulk_operations();
    let running_at_kill = replay.running_polls();

    let (report, printed) = sync(&replay, work.path());
    assert_eq!(report["resumed"], true, "{report}");
    assert_eq!(report["mode"], "full");
    // The operation in flight was adopted, not started again.
    assert_eq!(replay.bulk_operations(), killed_at + 2, "{report}");
    // Operations of 1.5 s were waited for, and each wait is reported as Shopify's: the run
    // polled until the replay stopped answering "running" (a poll the killed run had in
    // flight may reach the replay after the kill, hence at most).
    let polls = report["bulk_polls"].as_u64().unwrap();
    assert!(polls >= 1, "{report}");
    assert!(
        polls <= replay.running_polls() - running_at_kill,
        "{report}"
    );
    for fault in ["throttled", "http_429", "server_errors"] {
        assert!(report[fault].as_u64().unwrap() > 0, "{fault}: {report}");
    }
    assert_same_as_ingest(&work.path().join("lake"));
    assert_token_nowhere(&printed, work.path());
}

#[test]
fn a_refused_token_fails_clearly_without_repeating_it() {
    let replay = replay(Config {
        token: TOKEN.into(),
        ..Config::default()
    });
    let work = tempfile::tempdir().unwrap();
    let wrong = "shpat_wrong_token_that_must_not_be_echoed";
    let output = bounded(
        sync_command(&replay, work.path(), wrong),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("refused the access token"), "{stderr}");
    assert!(!stderr.contains(wrong), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains(wrong));
}
