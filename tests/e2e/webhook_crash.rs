//! A crash loses no acknowledged webhook, and none is applied twice: senders stream 20,000
//! signed deliveries at the real server while it is killed with SIGKILL at random points
//! and restarted; a sender retries whatever was not acknowledged, as Shopify does. In the
//! end every delivery is in the lake exactly once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::ok;
use crate::serving::Server;

const DELIVERIES: usize = 20_000;
const SENDERS: usize = 8;
/// The first customer id the deliveries use; far above the demo store's own ids.
const FIRST_ID: i64 = 91_000_000_000_000;
const CRASHES: usize = 4;

/// One `customers/update` per delivery, each for its own customer.
fn delivery(n: usize) -> (String, Vec<u8>) {
    let body = json!({
        "id": FIRST_ID + i64::try_from(n).unwrap(),
        "email": format!("crash{n}@example.org"), "first_name": "Crash", "last_name": format!("Test{n}"),
        "state": "enabled", "verified_email": true, "tags": "",
        "created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-28T00:00:00Z",
    });
    (format!("crash-{n}"), body.to_string().into_bytes())
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_delivery_and_duplicates_none() {
    let dir = tempfile::tempdir().unwrap().keep();
    let lake = dir.join("lake");
    ok(&lake, &["ingest", "data/demo-store"]);
    let no_index = dir.join("index");
    let server = Server::start_in(dir.clone(), lake.clone(), no_index.clone());
    let address = Arc::new(RwLock::new(server.address.clone()));
    let server = Arc::new(Mutex::new(Some(server)));
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));

    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (address, acknowledged, next, refused) = (
                address.clone(),
                acknowledged.clone(),
                next.clone(),
                refused.clone(),
            );
            std::thread::spawn(move || {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= DELIVERIES {
                        return;
                    }
                    let (event, body) = delivery(n);
                    let started = Instant::now();
                    // Retry until acknowledged: the server may be down or restarting.
                    loop {
                        assert!(
                            started.elapsed() < Duration::from_secs(300),
                            "{event} never acknowledged"
                        );
                        let current = address.read().unwrap().clone();
                        let status = crate::serving::post_webhook(
                            &current,
                            "customers/update",
                            &body,
                            &event,
                        );
                        if status == Some(200) {
                            acknowledged.lock().unwrap().insert(n);
                            break;
                        }
                        if status.is_some() {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();

    // Crash at random points (seeded), then restart on the same lake and state.
    let mut seed: u64 = 0x00c0_ffee;
    let mut random = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    for crash in 0..CRASHES {
        let at = (crash + 1) * DELIVERIES / (CRASHES + 2)
            + usize::try_from(random(u64::try_from(DELIVERIES / 10).unwrap())).unwrap();
        let started = Instant::now();
        while acknowledged.lock().unwrap().len() < at {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "senders stalled"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(random(300)));
        let running = server.lock().unwrap().take().unwrap();
        running.crash();
        eprintln!(
            "crash {crash}: killed after {} acknowledged",
            acknowledged.lock().unwrap().len()
        );
        let restarted = Server::start_in(dir.clone(), lake.clone(), no_index.clone());
        *address.write().unwrap() = restarted.address.clone();
        *server.lock().unwrap() = Some(restarted);
    }
    for sender in senders {
        sender.join().unwrap();
    }
    assert_eq!(acknowledged.lock().unwrap().len(), DELIVERIES);
    // A graceful stop applies what is still in the outbox.
    let (_, lake, _) = server.lock().unwrap().take().unwrap().stop();

    let query = format!(
        "SELECT count(*) AS events, count(DISTINCT event_id) AS distinct_events, \
         (SELECT count(*) FROM customers WHERE id >= {FIRST_ID}) AS customers, \
         (SELECT count(DISTINCT id) FROM customers WHERE id >= {FIRST_ID}) AS distinct_customers \
         FROM webhook_events WHERE event_id LIKE 'crash-%'"
    );
    let counts = ok(&lake, &["sql", &query, "--format", "json"]);
    let counts: Value = serde_json::from_str(counts.trim()).unwrap();
    let want = i64::try_from(DELIVERIES).unwrap();
    assert_eq!(
        counts[0]["distinct_events"], want,
        "every acknowledged delivery is in the lake"
    );
    assert_eq!(counts[0]["events"], want, "and only once");
    assert_eq!(counts[0]["customers"], want, "each applied to its table");
    assert_eq!(counts[0]["distinct_customers"], want, "each as its own row");
    assert_eq!(
        refused.load(Ordering::SeqCst),
        0,
        "a server that answers never refuses a valid delivery"
    );
}
