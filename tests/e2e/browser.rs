//! The widget, the handoff inbox and the dashboard in real Chromium: `tests/browser/run.mjs`
//! (playwright-core driving Debian's /usr/bin/chromium, both installed by `scripts/test`)
//! against `supportlake serve` on the demo store. Screenshots land in
//! `target/browser-screenshots/`.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::root;
use crate::serving::{AGENT_TOKEN, Server};

/// A shipped order of the demo store with one tracking number, and its email.
fn shipped_order() -> (String, String, String) {
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
            )
        })
        .unwrap()
}

#[test]
fn the_widget_inbox_and_dashboard_work_in_chromium() {
    let server = Server::start();
    let (order, email, tracking) = shipped_order();
    let shots = root().join("target/browser-screenshots");
    let mut child = Command::new("node")
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
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(300) {
            child.kill().unwrap();
            panic!("the browser tests ran longer than 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
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
