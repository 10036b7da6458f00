//! The widget, the handoff inbox and the dashboard in real Chromium: `tests/browser/run.mjs`
//! (playwright-core driving Debian's /usr/bin/chromium, both installed by `scripts/test`)
//! against `supportlake serve` on the demo store. Screenshots land in
//! `target/browser-screenshots/`.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::root;
use crate::serving::{AGENT_TOKEN, SHOP, Server, WEBHOOK_SECRET, built, shops};
use testkit::copy_dir;

/// A shipped order of the demo store with one tracking number: its name, email, tracking
/// number and customer id.
fn shipped_order() -> (String, String, String, String) {
    let text = std::fs::read_to_string(root().join("data/demo-store/orders.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|o| {
            o["cancelled_at"].is_null()
                && o["fulfillments"].as_array().is_some_and(|f| f.len() == 1)
                && o["fulfillments"][0]["tracking_number"].is_string()
        })
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_string(),
                o["email"].as_str().unwrap().to_string(),
                o["fulfillments"][0]["tracking_number"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                o["customer"]["id"].as_i64().unwrap().to_string(),
            )
        })
        .unwrap()
}

/// Waits (bounded: 1,500 looks 200 ms apart) for a browser script to end; a script still
/// running then is killed and fails the test.
fn finish(mut child: std::process::Child) -> std::process::ExitStatus {
    for _ in 0..1_500 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    panic!("the browser script did not end after 1,500 looks");
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_widget_inbox_and_dashboard_work_in_chromium() {
    let server = Server::start();
    let (order, email, tracking, _) = shipped_order();
    let shots = root().join("target/browser-screenshots");
    let child = Command::new("node")
        .current_dir(root().join("tests/browser"))
        .arg("run.mjs")
        .env("BASE", format!("http://{}", server.address))
        .env("AGENT_TOKEN", AGENT_TOKEN)
        .env("ANALYST_TOKEN", pipeline::config::DEMO_ANALYST_TOKEN)
        .env("ORDER", &order)
        .env("EMAIL", &email)
        .env("TRACKING", &tracking)
        .env("SCREENSHOTS", &shots)
        .spawn()
        .expect("node runs (scripts/test installs Node packages and Chromium)");
    let status = finish(child);
    assert!(status.success(), "browser tests failed: {status}");
    for shot in ["widget-desktop", "widget-360", "inbox", "dashboard"] {
        let path = shots.join(format!("{shot}.png"));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 10_000,
            "{} is a real screenshot ({size} bytes)",
            path.display()
        );
    }
    server.stop();
}

/// `tests/browser/storefronts.mjs`: the widget on a shop page at another origin than the
/// server (CORS), refused on an origin the shop does not allow, and through an app proxy
/// that signs as Shopify does, with a logged-in customer.
#[test]
fn the_widget_works_from_the_shops_origins_and_through_the_app_proxy() {
    let (page, other, shopify) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap().keep();
    let lake = dir.join("lake");
    copy_dir(&built().lake, &lake);
    shops(
        &dir,
        &["add", SHOP, "--origin", &format!("http://localhost:{page}")],
    );
    let server = Server::start_in(dir, lake, built().index.clone());
    let (order, email, tracking, customer) = shipped_order();
    let child = Command::new("node")
        .current_dir(root().join("tests/browser"))
        .arg("storefronts.mjs")
        .env("BASE", format!("http://{}", server.address))
        .env("SHOP", SHOP)
        .env("AGENT_TOKEN", AGENT_TOKEN)
        .env("ORDER", &order)
        .env("EMAIL", &email)
        .env("TRACKING", &tracking)
        .env("CUSTOMER_ID", &customer)
        .env("CLIENT_SECRET", WEBHOOK_SECRET)
        .env("PAGE_PORT", page.to_string())
        .env("OTHER_PORT", other.to_string())
        .env("SHOPIFY_PORT", shopify.to_string())
        .env("SCREENSHOTS", root().join("target/browser-screenshots"))
        .spawn()
        .expect("node runs (scripts/test installs Node packages and Chromium)");
    let status = finish(child);
    assert!(
        status.success(),
        "the storefront browser tests failed: {status}"
    );
    server.stop();
}
