//! The answer server as a shopper, an agent and an operator meet it: the real binary on a
//! real loopback socket, over the demo store's lake and a real index (real embedding model).
//! Expected values come from the demo store's export files, never from the server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::common::{ok, root};
use crate::serving::*;
use testkit::{SHOP_B, copy_dir, in_transit, orders, sign_token};

fn reply(body: &Value) -> &Value {
    &body["reply"]
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn long_date(t: DateTime<Utc>) -> String {
    t.format("%B %-d, %Y").to_string()
}

#[test]
fn order_status_is_withheld_until_verified_then_shows_carrier_and_tracking() {
    let server = Server::start();
    let shipped = in_transit();
    let number = shipped["order_number"].as_i64().unwrap().to_string();
    let email = shipped["email"].as_str().unwrap();
    let fulfillment = &shipped["fulfillments"][0];
    let carrier = fulfillment["tracking_company"].as_str().unwrap();
    let tracking = fulfillment["tracking_number"].as_str().unwrap();

    let first = server.chat(None, &format!("where is my order #{number}?"));
    let conversation = first["conversation_id"].as_str().unwrap();
    let text = reply(&first)["text"].as_str().unwrap();
    assert_eq!(reply(&first)["needs_verification"], true, "{first}");
    assert_eq!(reply(&first)["automated"], true);
    for secret in [carrier, tracking, "on its way", "delivered", "shipped"] {
        assert!(
            !text.contains(secret),
            "unverified reply reveals {secret:?}: {text}"
        );
    }
    assert!(
        reply(&first)["sources"].as_array().unwrap().is_empty(),
        "{first}"
    );

    let (status, verified) = server.post(
        &format!("/v1/conversations/{conversation}/verify?shop={SHOP}"),
        &json!({"order_number": number, "email": email.to_uppercase()}),
    );
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["verified"], true, "{verified}");
    let answer = verified["reply"]["text"].as_str().unwrap();
    assert!(
        answer.contains(carrier) && answer.contains(tracking),
        "{answer}"
    );
    assert_eq!(verified["reply"]["intent"], "order_status");
    assert_eq!(
        verified["reply"]["sources"][0]["doc_key"],
        format!("order:#{number}")
    );

    // Wrong emails: one generic refusal, for an unknown order too, until the limit.
    let second = server.chat(None, &format!("where is order #{number}"));
    let locked_out = second["conversation_id"].as_str().unwrap();
    let verify = |order: &str, email: &str| {
        server.post(
            &format!("/v1/conversations/{locked_out}/verify?shop={SHOP}"),
            &json!({"order_number": order, "email": email}),
        )
    };
    let (_, wrong) = verify(&number, "someone.else@example.net");
    let (_, unknown) = verify("999999", email);
    assert_eq!(wrong["verified"], false);
    assert_eq!(
        wrong, unknown,
        "a wrong email and an unknown order get the same answer"
    );
    for _ in 2..5 {
        assert_eq!(verify(&number, "nope@example.net").1["verified"], false);
    }
    let (status, refused) = verify(&number, email);
    assert_eq!(
        status, 429,
        "the right email is refused during the cool-down: {refused}"
    );
    assert_eq!(refused["error"]["code"], "verification_locked");
}

#[test]
fn a_return_question_applies_the_policy_window_to_the_real_delivery_date() {
    let server = Server::start();
    let order = orders()
        .into_iter()
        .find(|o| {
            o["cancelled_at"].is_null()
                && o["line_items"].as_array().unwrap().len() == 1
                && o["line_items"][0]["title"]
                    .as_str()
                    .unwrap()
                    .contains("Boot")
                && o["fulfillments"][0]["shipment_status"] == "delivered"
        })
        .expect("the demo store delivered boots");
    let number = order["order_number"].as_i64().unwrap().to_string();
    let delivered = time(&order["fulfillments"][0]["delivered_at"]);
    // The demo store's refund policy: 30 days from delivery, 60 for Gold and Platinum members.
    let customer = order["customer"]["id"].as_i64().unwrap();
    let tags = std::fs::read_to_string(root().join("data/demo-store/customers.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|c| c["id"] == customer)
        .map(|c| c["tags"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    let days = if tags.contains("gold") || tags.contains("platinum") {
        60
    } else {
        30
    };
    let deadline = delivered + chrono::Duration::days(days);

    let first = server.chat(None, "Can I return the boots I got?");
    let conversation = first["conversation_id"].as_str().unwrap();
    assert_eq!(reply(&first)["needs_verification"], true, "{first}");
    let (_, verified) = server.post(
        &format!("/v1/conversations/{conversation}/verify?shop={SHOP}"),
        &json!({"order_number": number, "email": order["email"]}),
    );
    let answer = verified["reply"]["text"].as_str().unwrap();
    assert_eq!(verified["reply"]["intent"], "return_exchange", "{verified}");
    assert!(answer.contains(&format!("{days} days")), "{answer}");
    assert!(
        answer.contains(&long_date(delivered)),
        "delivery date in {answer}"
    );
    assert!(
        answer.contains(&long_date(deadline)),
        "deadline in {answer}"
    );
    let expected = if Utc::now() <= deadline {
        "you can return it until"
    } else {
        "closed on"
    };
    assert!(answer.contains(expected), "{answer}");
    let sources: Vec<&str> = verified["reply"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["doc_key"].as_str().unwrap())
        .collect();
    assert!(
        sources.iter().any(|k| k.starts_with("policy:refund")),
        "{sources:?}"
    );
}

#[test]
fn asking_for_a_person_hands_off_with_history_and_identity_to_the_agent_inbox() {
    let server = Server::start();
    let order = &orders()[0];
    let customer = order["customer"]["id"].as_i64().unwrap();
    let email = order["email"].as_str().unwrap();
    let expires = Utc::now().timestamp() + 600;
    let token = sign_token(STOREFRONT_SECRET, SHOP, customer, email, expires);
    let (status, first) = server.post(
        "/v1/chat",
        &json!({"shop": SHOP, "message": "where is my order?", "customer_token": token}),
    );
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        reply(&first)["needs_verification"],
        false,
        "a signed-in shopper is verified: {first}"
    );
    let conversation = first["conversation_id"].as_str().unwrap().to_string();
    let handed = server.chat(Some(&conversation), "I want to talk to a person");
    let handoff = &reply(&handed)["handoff"];
    assert_eq!(handoff["reason"], "explicit_request", "{handed}");
    let id = handoff["id"].as_str().unwrap();

    let (status, _) = server.get("/v1/handoffs");
    assert_eq!(status, 401, "the inbox needs the agent token");
    let (status, inbox) = server.agent("GET", "/v1/handoffs?status=open", None);
    assert_eq!(status, 200, "{inbox}");
    let listed = inbox["handoffs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == id)
        .expect("listed");
    let packet = &listed["packet"];
    assert_eq!(
        packet["verified_identity"]["customer_id"], customer,
        "{packet}"
    );
    assert_eq!(packet["verified_identity"]["via"], "customer_token");
    let history: Vec<&str> = packet["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    // The packet's whole shape (answers in the history, what the assistant tried, nothing of
    // another shop) is asserted in memory (server/src/http/tests/rules.rs); here, that the
    // real model's path and a storefront token fill it.
    assert!(
        history.contains(&"where is my order?") && history.contains(&"I want to talk to a person"),
        "{history:?}"
    );

    // While a person has it, the assistant does not answer on its own.
    let waiting = server.chat(Some(&conversation), "hello?");
    assert!(
        reply(&waiting)["text"]
            .as_str()
            .unwrap()
            .contains("A person"),
        "{waiting}"
    );

    let (status, claimed) = server.agent(
        "POST",
        &format!("/v1/handoffs/{id}/claim"),
        Some(&json!({"agent": "sam"})),
    );
    assert_eq!(
        (status, claimed["status"].as_str()),
        (200, Some("claimed")),
        "{claimed}"
    );
    let (status, other) = server.agent(
        "POST",
        &format!("/v1/handoffs/{id}/claim"),
        Some(&json!({"agent": "alex"})),
    );
    assert_eq!(
        (status, other["error"]["code"].as_str()),
        (409, Some("already_claimed"))
    );
    let (status, _) = server.agent(
        "POST",
        &format!("/v1/handoffs/{id}/reply"),
        Some(&json!({"text": "Hi, Sam here. Let me check."})),
    );
    assert_eq!(status, 200);
    let (_, thread) = server.get(&format!("/v1/conversations/{conversation}?shop={SHOP}"));
    let last = thread["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["role"].as_str(), last["author"].as_str()),
        (Some("agent"), Some("sam")),
        "{thread}"
    );
    let (status, resolved) = server.agent("POST", &format!("/v1/handoffs/{id}/resolve"), None);
    assert_eq!(
        (status, resolved["status"].as_str()),
        (200, Some("resolved"))
    );
}

#[test]
fn an_unanswerable_question_says_so_and_is_reported_as_unanswered() {
    let server = Server::start();
    let question = "Do you sell replacement parts for Bosch dishwashers?";
    let body = server.chat(None, question);
    let text = reply(&body)["text"].as_str().unwrap();
    assert!(
        text.contains("can't help") || text.contains("couldn't find") || text.contains("not sure"),
        "{body}"
    );
    assert!(
        reply(&body)["sources"].as_array().unwrap().is_empty(),
        "{body}"
    );
    let (_, lake, _) = server.stop();
    let report = ok(&lake, &["report", "unanswered-intents", "--format", "json"]);
    assert!(
        report.contains(question),
        "the question is among the examples: {report}"
    );
    let turns = ok(
        &lake,
        &[
            "sql",
            "SELECT intent, abstained, abstain_reason FROM turns WHERE model_version LIKE 'all-MiniLM%'",
            "--format",
            "csv",
        ],
    );
    assert!(turns.contains("true"), "{turns}");
}

#[test]
fn policy_before_verification_typed_verification_feedback_resolve_and_repeated_failure() {
    let server = Server::start();
    let order = &orders()[2];
    let number = order["order_number"].as_i64().unwrap().to_string();
    let email = order["email"].as_str().unwrap();
    let first = server.chat(None, "I want to return the jacket from my order");
    assert_eq!(reply(&first)["needs_verification"], true, "{first}");
    let policy = reply(&first)["sources"].as_array().unwrap();
    assert!(
        !policy.is_empty(),
        "the general policy comes before verification: {first}"
    );
    let conversation = first["conversation_id"].as_str().unwrap().to_string();
    // Order number and email typed in the chat verify, and the waiting question is answered.
    let typed = server.chat(Some(&conversation), &format!("order #{number}, {email}"));
    assert_eq!(reply(&typed)["needs_verification"], false, "{typed}");
    assert_eq!(reply(&typed)["intent"], "return_exchange", "{typed}");
    assert!(
        reply(&typed)["text"]
            .as_str()
            .unwrap()
            .contains(&format!("#{number}")),
        "{typed}"
    );
    let (status, _) = server.post(
        &format!("/v1/conversations/{conversation}/feedback?shop={SHOP}"),
        &json!({"helpful": true}),
    );
    assert_eq!(status, 200);
    let (status, resolved) = server.post(
        &format!("/v1/conversations/{conversation}/resolve?shop={SHOP}"),
        &json!({}),
    );
    assert_eq!(
        (status, resolved["resolution_path"].as_str()),
        (200, Some("ai_only")),
        "{resolved}"
    );
    // Two answers in a row it cannot give: a person takes over.
    let once = server.chat(None, "what's the weather in Paris tomorrow?");
    assert!(reply(&once)["handoff"].is_null(), "{once}");
    let other = once["conversation_id"].as_str().unwrap();
    let twice = server.chat(Some(other), "who won the football game last night?");
    assert_eq!(
        reply(&twice)["handoff"]["reason"],
        "low_confidence",
        "{twice}"
    );
    let (_, lake, _) = server.stop();
    let sql = |q: &str| {
        ok(&lake, &["sql", q, "--format", "csv"])
            .lines()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        sql(&format!(
            "SELECT helpful FROM turns WHERE conversation_id = '{conversation}' AND answer_kind = 'return_eligibility'"
        )),
        "true"
    );
    assert_eq!(
        sql(&format!(
            "SELECT status || ' ' || resolution_path FROM conversations WHERE id = '{conversation}'"
        )),
        "resolved ai_only"
    );
    assert_eq!(
        sql(&format!(
            "SELECT reason FROM handoffs WHERE conversation_id = '{other}'"
        )),
        "low_confidence"
    );
}

#[test]
fn shops_are_isolated() {
    let server = Server::start();
    let order = &orders()[0];
    let number = order["order_number"].as_i64().unwrap().to_string();
    let email = order["email"].as_str().unwrap();
    let first = server.chat(None, &format!("where is my order #{number}"));
    let conversation = first["conversation_id"].as_str().unwrap();
    let (_, verified) = server.post(
        &format!("/v1/conversations/{conversation}/verify?shop={SHOP}"),
        &json!({"order_number": number, "email": email}),
    );
    assert_eq!(verified["verified"], true, "{verified}");
    // The same conversation id under the other shop does not exist.
    let (status, crossed) = server.post(
        "/v1/chat",
        &json!({"shop": SHOP_B, "conversation_id": conversation, "message": "where is my order?"}),
    );
    assert_eq!(
        (status, crossed["error"]["code"].as_str()),
        (404, Some("unknown_conversation")),
        "{crossed}"
    );
    // Shop A's shopper, verified in A, is a stranger in B: same order number, their email is not B's.
    let (_, other) = server.post(
        "/v1/chat",
        &json!({"shop": SHOP_B, "message": format!("where is my order #{number}")}),
    );
    assert_eq!(other["reply"]["needs_verification"], true, "{other}");
    let other_conversation = other["conversation_id"].as_str().unwrap();
    let (_, refused) = server.post(
        &format!("/v1/conversations/{other_conversation}/verify?shop={SHOP_B}"),
        &json!({"order_number": number, "email": email}),
    );
    assert_eq!(
        refused["verified"], false,
        "shop A's email does not open shop B's order: {refused}"
    );
}

#[test]
fn bad_input_gets_a_4xx_with_a_stable_code_and_never_a_5xx() {
    let server = Server::start();
    let chat = |body: &[u8], content_type: &str| {
        let mut request = format!(
            "POST /v1/chat HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        let (status, body) = server.raw(&request);
        let code = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
        (status, code.unwrap_or(body))
    };
    // Every code of the chat and inbox API is asserted in memory
    // (server/src/http/tests/codes.rs); here, raw bytes over a real socket: a body that is not
    // JSON or not UTF-8, the body limit against a declared length, wrong methods and routes,
    // and a server that survives all of it without a 5xx.
    let json = "application/json";
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"{not json".to_vec(), json, 400, "invalid_json"),
        (
            b"{\"shop\": \"x\", \"message\": \"\xff\xfe\"}".to_vec(),
            json,
            400,
            "invalid_utf8",
        ),
        (
            format!(
                r#"{{"shop": "{SHOP}", "message": "{}"}}"#,
                "a".repeat(70_000)
            )
            .into_bytes(),
            json,
            413,
            "body_too_large",
        ),
    ];
    for (body, content_type, status, code) in cases {
        let got = chat(&body, content_type);
        assert_eq!(
            got,
            (status, code.to_string()),
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
    }
    let (status, body) = server.get("/v1/chat");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, body) = server.get("/v1/nothing-here");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200, "the server survived all of it");
    let (_, metrics) = server.get("/metrics");
    assert!(
        !metrics.as_str().unwrap().contains("status=\"5"),
        "no 5xx: {metrics}"
    );
}

#[test]
fn a_crash_loses_no_state_and_every_turn_reaches_the_lake() {
    let server = Server::start();
    let order = &orders()[1];
    let number = order["order_number"].as_i64().unwrap().to_string();
    let first = server.chat(None, &format!("where is my order #{number}"));
    let conversation = first["conversation_id"].as_str().unwrap().to_string();
    let (_, verified) = server.post(
        &format!("/v1/conversations/{conversation}/verify?shop={SHOP}"),
        &json!({"order_number": number, "email": order["email"]}),
    );
    assert_eq!(verified["verified"], true);
    let (dir, lake, index) = server.crash();
    let server = Server::start_in(dir, lake, index);
    let again = server.chat(
        Some(&conversation),
        &format!("and what's the status of #{number} now?"),
    );
    assert_eq!(
        reply(&again)["needs_verification"],
        false,
        "still verified after the crash: {again}"
    );
    assert_eq!(reply(&again)["intent"], "order_status", "{again}");
    let (status, _) = server.post(
        &format!("/v1/conversations/{conversation}/csat?shop={SHOP}"),
        &json!({"score": 5}),
    );
    assert_eq!(status, 200);
    let (_, lake, _) = server.stop();
    let count = |sql: &str| {
        ok(&lake, &["sql", sql, "--format", "csv"])
            .lines()
            .nth(1)
            .unwrap()
            .to_string()
    };
    // Two questions; the request to verify, the answer on verifying, the answer after the restart.
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM messages WHERE conversation_id = '{conversation}'"
        )),
        "5"
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM turns WHERE conversation_id = '{conversation}'"
        )),
        "3"
    );
    assert_eq!(
        count(&format!(
            "SELECT score FROM csat WHERE conversation_id = '{conversation}'"
        )),
        "5"
    );
    assert_eq!(
        count(&format!(
            "SELECT customer_id FROM conversations WHERE id = '{conversation}'"
        )),
        order["customer"]["id"].to_string()
    );
}

#[test]
fn health_readiness_metrics_and_the_api_document() {
    let dir = tempfile::tempdir().unwrap().keep();
    let lake = dir.join("lake");
    copy_dir(&built().lake, &lake);
    let empty_index = dir.join("no-index");
    let unready = Server::start_in(dir.join("a"), lake.clone(), empty_index);
    assert_eq!(unready.get("/healthz").0, 200);
    let (status, body) = unready.get("/readyz");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("not_ready")),
        "{body}"
    );
    drop(unready);

    let server = Server::start_in(dir.join("b"), lake, built().index.clone());
    let (status, ready) = server.get("/readyz");
    assert_eq!(status, 200, "{ready}");
    assert!(ready["generation"].as_str().unwrap().starts_with("gen-"));
    server.chat(None, "I want to talk to a human");
    let (_, metrics) = server.get("/metrics");
    let metrics = metrics.as_str().unwrap();
    for line in [
        "supportlake_http_requests_total{method=\"POST\",route=\"/v1/chat\",status=\"200\"} 1",
        "supportlake_answers_total{intent=\"talk_to_human\"} 1",
        "supportlake_handoffs_total{reason=\"explicit_request\"} 1",
        "supportlake_http_request_duration_seconds_count{route=\"/v1/chat\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let (_, doc) = server.get("/openapi.json");
    for (path, method) in [
        ("/v1/chat", "post"),
        ("/v1/conversations/{id}/verify", "post"),
        ("/v1/handoffs", "get"),
        ("/v1/handoffs/{id}/claim", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{path} {method} documented"
        );
    }
}

#[test]
fn the_demo_ingests_builds_the_index_answers_and_serves_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_supportlake"))
        .current_dir(root())
        .env("SUPPORTLAKE_LAKE_URL", dir.path().join("lake"))
        .env("SUPPORTLAKE_INDEX_DIR", dir.path().join("index"))
        .env("SUPPORTLAKE_STATE_DIR", dir.path().join("state"))
        .env_remove("SUPPORTLAKE_LOG")
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("Serving the chat API on") {
                let _ = tx.send(seen.clone());
            }
        }
    });
    let out = rx
        .recv_timeout(Duration::from_secs(600))
        .expect("the demo starts serving");
    assert!(out.contains("Ingesting the demo store"), "{out}");
    assert!(out.contains("switched to gen-000001"), "{out}");
    let search = out
        .split("supportlake search")
        .nth(1)
        .expect("the demo searches");
    assert!(
        search.lines().nth(1).unwrap().contains("policy:refund"),
        "{out}"
    );
    assert!(out.contains(r#""order_numbers":["1001"]"#), "{out}");
    let address = out
        .split("on http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let server = Server {
        child,
        address,
        dir: dir.path().into(),
        lake: dir.path().join("lake"),
        index: dir.path().join("index"),
    };
    let body = server.chat(None, "can I return sale items?");
    assert_eq!(
        reply(&body)["sources"][0]["doc_key"]
            .as_str()
            .map(|k| k.starts_with("policy:refund")),
        Some(true),
        "{body}"
    );
    server.stop();
}

// -- webhooks ---------------------------------------------------------------------------------

fn fixture_dir() -> PathBuf {
    root().join("tests/fixtures/shopify/webhooks/2026-04")
}

/// `products__update.json` → (`products/update`, its bytes).
fn fixture(name: &str) -> (String, Vec<u8>) {
    let topic = name.trim_end_matches(".json").replacen("__", "/", 1);
    (topic, std::fs::read(fixture_dir().join(name)).unwrap())
}

/// Rows of a query over the lake, as JSON objects.
fn lake_rows(lake: &Path, sql: &str) -> Vec<Value> {
    let out = ok(lake, &["sql", sql, "--format", "json"]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn lake_count(lake: &Path, sql: &str) -> i64 {
    lake_rows(lake, sql)[0]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_i64()
        .unwrap()
}

/// Waits (bounded) until `sql`'s count reaches `want` in the server's lake.
fn await_count(lake: &Path, sql: &str, want: i64) {
    let started = Instant::now();
    loop {
        let count = lake_count(lake, sql);
        if count >= want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{sql}: {count}, wanted {want}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A deterministic shuffle (xorshift), so a failure replays the same order.
fn shuffled<T>(mut items: Vec<T>, mut seed: u64) -> Vec<T> {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, usize::try_from(seed % (i as u64 + 1)).unwrap());
    }
    items
}

#[test]
fn webhook_deliveries_are_checked_before_anything_is_stored() {
    let server = Server::start();
    let body = br#"{"id": 1}"#;
    let hmac = sign(WEBHOOK_SECRET, body);
    let headers = |hmac: &str, domain: &str| {
        vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("x-shopify-topic".into(), "app/uninstalled".into()),
            ("x-shopify-hmac-sha256".into(), hmac.to_string()),
            ("x-shopify-shop-domain".into(), domain.to_string()),
            ("x-shopify-webhook-id".into(), "wh-1".into()),
        ]
    };
    let send = |headers: Vec<(String, String)>, body: &[u8]| {
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        server.request("POST", "/webhooks/shopify", &pairs, body)
    };
    // Each header Shopify always sends is required.
    for dropped in [
        "x-shopify-topic",
        "x-shopify-hmac-sha256",
        "x-shopify-shop-domain",
        "x-shopify-webhook-id",
    ] {
        let mut h = headers(&hmac, SHOP);
        h.retain(|(n, _)| n != dropped);
        let (status, reply) = send(h, body);
        assert_eq!(status, 400, "without {dropped}: {reply}");
        assert_eq!(reply["error"]["code"], "missing_header");
    }
    let (status, reply) = send(headers(&sign("not the secret", body), SHOP), body);
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (401, Some("invalid_hmac"))
    );
    let (status, reply) = send(headers(&hmac, SHOP), br#"{"id": 2}"#);
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (401, Some("invalid_hmac")),
        "another body"
    );
    let (status, reply) = send(headers(&hmac, "someone-else.myshopify.com"), body);
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (401, Some("unknown_shop"))
    );
    let big = vec![b' '; 5 * 1024 * 1024];
    let (status, reply) = send(headers(&sign(WEBHOOK_SECRET, &big), SHOP), &big);
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );

    // Accepted: the current secret, the previous one during a rotation, the un-prefixed
    // header form; a repeat is acknowledged and dropped.
    let (status, reply) = send(headers(&hmac, SHOP), body);
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("accepted")),
        "{reply}"
    );
    let (status, reply) = send(headers(&hmac, SHOP), body);
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("duplicate")),
        "{reply}"
    );
    let mut rotated = headers(&sign(PREVIOUS_WEBHOOK_SECRET, body), SHOP);
    rotated[4].1 = "wh-2".into();
    let (status, reply) = send(rotated, body);
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("accepted")),
        "{reply}"
    );
    let unprefixed: Vec<(String, String)> = headers(&hmac, SHOP)
        .into_iter()
        .map(|(n, v)| (n.replace("x-shopify-", "shopify-"), v))
        .map(|(n, v)| {
            if v == "wh-1" {
                (n, "wh-3".to_string())
            } else {
                (n, v)
            }
        })
        .collect();
    let (status, reply) = send(unprefixed, body);
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("accepted")),
        "{reply}"
    );

    let (_, lake, _) = server.stop();
    let events = lake_rows(
        &lake,
        "SELECT event_id, topic FROM webhook_events ORDER BY event_id",
    );
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["wh-1", "wh-2", "wh-3"],
        "only accepted deliveries, once each"
    );
}

#[test]
fn every_fixture_delivery_lands_in_its_table_once_and_late_ones_change_nothing() {
    let server = Server::start();
    let lake = server.lake.clone();
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 33, "the 2026-04 sample of every topic");
    let (privacy, rest): (Vec<String>, Vec<String>) = names.into_iter().partition(|n| {
        n.starts_with("customers__redact")
            || n.starts_with("customers__data_request")
            || n.starts_with("shop__redact")
    });
    let (deletes, upserts): (Vec<String>, Vec<String>) =
        rest.into_iter().partition(|n| n.ends_with("__delete.json"));
    // Three versions of one product, and of one order: the newest must win whatever the
    // order of arrival.
    let versions = |name: &str, field: &str| -> Vec<(String, Vec<u8>, String)> {
        let (topic, bytes) = fixture(name);
        let base: Value = serde_json::from_slice(&bytes).unwrap();
        [
            ("2026-01-01", "v1"),
            ("2026-03-01", "v3"),
            ("2026-02-01", "v2"),
        ]
        .iter()
        .map(|(day, tag)| {
            let mut v = base.clone();
            v["updated_at"] = json!(format!("{day}T12:00:00Z"));
            v[field] = json!(format!("{field} {tag}"));
            (
                topic.clone(),
                serde_json::to_vec(&v).unwrap(),
                format!("{name}-{tag}"),
            )
        })
        .collect()
    };
    let mut deliveries: Vec<(String, Vec<u8>, String)> = upserts
        .iter()
        .map(|n| {
            let (topic, bytes) = fixture(n);
            (topic, bytes, n.clone())
        })
        .collect();
    deliveries.extend(versions("products__update.json", "title"));
    deliveries.extend(versions("orders__updated.json", "note"));
    // Everything twice, shuffled.
    let twice: Vec<_> = deliveries
        .iter()
        .chain(deliveries.iter())
        .cloned()
        .collect();
    let mut duplicates = 0;
    for (topic, body, event) in shuffled(twice, 0x5eed) {
        let (status, reply) = server.webhook(&topic, &body, &event);
        assert_eq!(status, 200, "{event}: {reply}");
        duplicates += usize::from(reply["status"] == "duplicate");
    }
    assert_eq!(
        duplicates,
        deliveries.len(),
        "each second copy is a duplicate"
    );
    let raw = i64::try_from(deliveries.len()).unwrap();
    await_count(&lake, "SELECT count(*) FROM webhook_events", raw);

    // The newest version, though it did not arrive last.
    let product = lake_rows(
        &lake,
        "SELECT title FROM products WHERE id = 788032119674292922",
    );
    assert_eq!(product, vec![json!({"title": "title v3"})]);
    await_count(
        &lake,
        "SELECT count(*) FROM variants WHERE product_id = 788032119674292922",
        2,
    );
    let order = lake_rows(
        &lake,
        "SELECT financial_status, updated_at FROM orders WHERE id = 820982911946154508",
    );
    assert_eq!(order.len(), 1);
    assert!(
        order[0]["updated_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-03-01"),
        "{order:?}"
    );
    for (table, id) in [
        ("order_lines", "order_id = 820982911946154508"),
        ("fulfillments", "id = 123456"),
        ("refunds", "id = 890088186047892319"),
        ("returns", "id = 123134564567890"),
        ("customers", "id = 706405506930370084"),
        ("variants", "id = 642667041472713922"),
    ] {
        let n = lake_count(&lake, &format!("SELECT count(*) FROM {table} WHERE {id}"));
        assert!(n >= 1, "{table} has no row with {id}");
    }
    let shop = lake_rows(
        &lake,
        &format!("SELECT name FROM shops WHERE myshopify_domain = '{SHOP}'"),
    );
    assert_eq!(
        shop,
        vec![json!({"name": "Super Toys"})],
        "shop/update applied"
    );
    // A payload that cannot be mapped is kept raw and quarantined with its reason.
    let quarantined = lake_rows(
        &lake,
        "SELECT source_file, reason FROM quarantine WHERE run_id = 'webhooks'",
    );
    assert!(
        quarantined
            .iter()
            .any(|q| q["source_file"] == "webhook inventory_levels/update"
                && q["reason"].as_str().unwrap().contains("inventory_item_id")),
        "{quarantined:?}"
    );
    // Topics supportlake does not map are kept, not dropped.
    for topic in [
        "app/uninstalled",
        "orders/edited",
        "fulfillment_holds/added",
    ] {
        let n = lake_count(
            &lake,
            &format!("SELECT count(*) FROM webhook_events WHERE topic = '{topic}'"),
        );
        assert_eq!(n, 1, "{topic}");
    }

    // Deletions remove the resource and what hangs off it.
    for name in &deletes {
        let (topic, body) = fixture(name);
        assert_eq!(server.webhook(&topic, &body, name).0, 200);
    }
    await_count(&lake, "SELECT count(*) FROM webhook_events", raw + 3);
    let started = Instant::now();
    while lake_count(
        &lake,
        "SELECT count(*) FROM products WHERE id = 788032119674292922",
    ) > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "products/delete not applied"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for (table, condition) in [
        ("variants", "product_id = 788032119674292922"),
        ("orders", "id = 820982911946154508"),
        ("order_lines", "order_id = 820982911946154508"),
        ("customers", "id = 706405506930370084"),
    ] {
        await_count(
            &lake,
            &format!(
                "SELECT count(*) - {n} FROM {table} WHERE {condition}",
                n = 0
            ),
            0,
        );
        let n = lake_count(
            &lake,
            &format!("SELECT count(*) FROM {table} WHERE {condition}"),
        );
        assert_eq!(n, 0, "{table} still has {condition}");
    }
    // A late update, written before the deletion, arrives after it: it must not bring the
    // product back (its raw delivery is kept). A product updated after a deletion would.
    let (topic, _) = fixture("products__update.json");
    let late = versions("products__update.json", "title")
        .into_iter()
        .find(|(_, _, tag)| tag.ends_with("-v3"))
        .unwrap();
    assert_eq!(server.webhook(&topic, &late.1, "late-after-delete").0, 200);
    await_count(&lake, "SELECT count(*) FROM webhook_events", raw + 4);
    assert_eq!(
        lake_count(
            &lake,
            "SELECT count(*) FROM products WHERE id = 788032119674292922"
        ),
        0,
        "a late, older update brought a deleted product back"
    );

    // The compliance topics are carried out and audited.
    for name in &privacy {
        let (topic, body) = fixture(name);
        assert_eq!(server.webhook(&topic, &body, name).0, 200);
    }
    await_count(&lake, "SELECT count(*) FROM privacy_audit", 3);
    let (dir, lake, _) = server.stop();
    let actions = lake_rows(&lake, "SELECT action FROM privacy_audit ORDER BY action");
    assert_eq!(
        actions,
        vec![
            json!({"action": "customer_exported"}),
            json!({"action": "customer_redacted"}),
            json!({"action": "shop_redacted"}),
        ]
    );
    let export = dir.join(format!("exports/{SHOP}/customer-191167-request-9999.json"));
    assert!(export.exists(), "{}", export.display());
    // shop/redact came from the demo shop: none of its rows are left, in any table but the
    // audit log; the other shop keeps everything.
    let tables = ok(&lake, &["tables"]);
    for table in tables.lines().filter_map(|l| l.split_whitespace().next()) {
        if table == "privacy_audit" || !table.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        let Some(row) = lake_rows(
            &lake,
            &format!("SELECT count(*) AS n FROM {table} WHERE shop_id = '{SHOP}'"),
        )
        .pop() else {
            continue;
        };
        assert_eq!(row["n"], 0, "{table} still holds rows of the redacted shop");
    }
    assert!(
        lake_count(&lake, "SELECT count(*) FROM orders") > 0,
        "the other shop's orders stay"
    );
}

/// Data files on disk that the table's Delta log no longer references (`add` minus
/// `remove` over every commit): after a redaction there must be none.
fn unreferenced_files(table: &Path) -> Vec<String> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    logs.sort();
    let mut live = std::collections::HashSet::new();
    for log in logs {
        for line in std::fs::read_to_string(&log).unwrap().lines() {
            let action: Value = serde_json::from_str(line).unwrap();
            let decode = |p: &Value| p.as_str().unwrap().replace("%3D", "=").replace("%2D", "-");
            if let Some(path) = action.get("add").map(|a| decode(&a["path"])) {
                live.insert(path);
            }
            if let Some(path) = action.get("remove").map(|r| decode(&r["path"])) {
                live.remove(&path);
            }
        }
    }
    let mut on_disk = Vec::new();
    let mut dirs = vec![table.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("_delta_log") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                on_disk.push(
                    path.strip_prefix(table)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    on_disk.retain(|p| !live.contains(p));
    on_disk
}

#[test]
fn customers_redact_removes_the_customer_from_lake_state_and_old_files() {
    let server = Server::start();
    let lake = server.lake.clone();
    // The demo customer with the most conversations.
    let who = lake_rows(
        &lake,
        &format!(
            "SELECT c.id, c.email_hash FROM customers c JOIN conversations v \
             ON v.shop_id = c.shop_id AND v.customer_id = c.id WHERE c.shop_id = '{SHOP}' \
             GROUP BY c.id, c.email_hash ORDER BY count(*) DESC, c.id LIMIT 1"
        ),
    );
    let id = who[0]["id"].as_i64().unwrap();
    let hash = who[0]["email_hash"].as_str().unwrap().to_string();
    let record: Value = std::fs::read_to_string(root().join("data/demo-store/customers.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|c| c["id"] == id)
        .unwrap();
    let email = record["email"].as_str().unwrap().to_string();
    let name = format!(
        "{} {}",
        record["first_name"].as_str().unwrap(),
        record["last_name"].as_str().unwrap()
    );
    let their_orders: Vec<Value> = orders()
        .into_iter()
        .filter(|o| o["customer"]["id"] == id)
        .collect();
    assert!(!their_orders.is_empty());
    let order_ids: Vec<i64> = their_orders
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    let conversations: Vec<String> = lake_rows(
        &lake,
        &format!("SELECT id FROM conversations WHERE shop_id = '{SHOP}' AND customer_id = {id}"),
    )
    .iter()
    .map(|c| c["id"].as_str().unwrap().to_string())
    .collect();

    // They also chat now and verify: operational state and fresh lake rows.
    let number = their_orders[0]["order_number"].as_i64().unwrap();
    let first = server.chat(None, &format!("where is my order #{number}?"));
    let chat = first["conversation_id"].as_str().unwrap().to_string();
    let (status, verified) = server.post(
        &format!("/v1/conversations/{chat}/verify?shop={SHOP}"),
        &json!({"order_number": number.to_string(), "email": email}),
    );
    assert_eq!(
        (status, &verified["verified"]),
        (200, &json!(true)),
        "{verified}"
    );
    await_count(
        &lake,
        &format!("SELECT count(*) FROM conversations WHERE id = '{chat}'"),
        1,
    );

    let request = json!({"shop_id": 1, "shop_domain": SHOP,
        "customer": {"id": id, "email": email, "phone": record["phone"]},
        "orders_to_redact": order_ids});
    let (status, _) = server.webhook(
        "customers/redact",
        request.to_string().as_bytes(),
        "redact-1",
    );
    assert_eq!(status, 200);
    await_count(
        &lake,
        "SELECT count(*) FROM privacy_audit WHERE action = 'customer_redacted'",
        1,
    );
    let (status, gone) = server.get(&format!("/v1/conversations/{chat}?shop={SHOP}"));
    assert_eq!(
        status, 404,
        "the live conversation is forgotten too: {gone}"
    );
    let (_, lake, _) = server.stop();

    let ids = order_ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut all_conversations = conversations.clone();
    all_conversations.push(chat);
    let quoted = all_conversations
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(", ");
    for (what, sql) in [
        (
            "customer row",
            format!("SELECT count(*) FROM customers WHERE id = {id} OR email_hash = '{hash}'"),
        ),
        (
            "orders pointing at them",
            format!(
                "SELECT count(*) FROM orders WHERE customer_id = {id} OR email_hash = '{hash}' OR (id IN ({ids}) AND ship_city IS NOT NULL)"
            ),
        ),
        (
            "conversations",
            format!(
                "SELECT count(*) FROM conversations WHERE customer_id = {id} OR id IN ({quoted})"
            ),
        ),
        (
            "messages",
            format!("SELECT count(*) FROM messages WHERE conversation_id IN ({quoted})"),
        ),
        (
            "turns",
            format!("SELECT count(*) FROM turns WHERE conversation_id IN ({quoted})"),
        ),
        (
            "handoffs",
            format!(
                "SELECT count(*) FROM handoffs WHERE conversation_id IN ({quoted}) OR packet LIKE '%{hash}%'"
            ),
        ),
        (
            "csat",
            format!("SELECT count(*) FROM csat WHERE conversation_id IN ({quoted})"),
        ),
        (
            "raw deliveries",
            format!("SELECT count(*) FROM webhook_events WHERE payload LIKE '%{email}%'"),
        ),
    ] {
        // The second shop reuses the demo's ids, so each check is about the redacting shop.
        let sql = sql.replacen(" WHERE ", &format!(" WHERE shop_id = '{SHOP}' AND ("), 1) + ")";
        assert_eq!(lake_count(&lake, &sql), 0, "{what} remain: {sql}");
    }
    let other_shop = lake_count(
        &lake,
        &format!("SELECT count(*) FROM customers WHERE id = {id} AND shop_id <> '{SHOP}'"),
    );
    assert_eq!(
        other_shop, 1,
        "the other shop's customer with the same id is not theirs to redact"
    );
    // Orders stay for the accounts.
    let kept = lake_count(
        &lake,
        &format!("SELECT count(*) FROM orders WHERE shop_id = '{SHOP}' AND id IN ({ids})"),
    );
    assert_eq!(kept, i64::try_from(order_ids.len()).unwrap());
    let audit = lake_rows(
        &lake,
        "SELECT customer_id, rows_affected, files_purged, table_counts FROM privacy_audit",
    );
    assert_eq!(audit[0]["customer_id"], id);
    assert!(
        audit[0]["rows_affected"].as_i64().unwrap() > i64::try_from(order_ids.len()).unwrap(),
        "{audit:?}"
    );
    // The old files that held them are gone.
    let lake_dir = PathBuf::from(&lake);
    for table in [
        "customers",
        "orders",
        "conversations",
        "messages",
        "turns",
        "webhook_events",
    ] {
        let stale = unreferenced_files(&lake_dir.join(table));
        assert!(stale.is_empty(), "{table} keeps old files: {stale:?}");
    }
    // No index document names them (the index holds catalog and knowledge, never people).
    let out = Command::new(env!("CARGO_BIN_EXE_supportlake"))
        .current_dir(root())
        .env("SUPPORTLAKE_LAKE_URL", &lake)
        .env("SUPPORTLAKE_INDEX_DIR", &built().index)
        .args([
            "search",
            &format!("{name} {email} {id}"),
            "-k",
            "50",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hits = String::from_utf8(out.stdout).unwrap();
    for needle in [email.as_str(), name.as_str(), &id.to_string(), &hash] {
        assert!(!hits.contains(needle), "the index returns {needle}");
    }
}

#[test]
fn a_product_webhook_reaches_the_index_within_seconds() {
    let dir = tempfile::tempdir().unwrap().keep();
    let lake = dir.join("lake");
    let index = dir.join("index");
    copy_dir(&built().lake, &lake);
    copy_dir(&built().index, &index);
    let server = Server::start_in(dir, lake.clone(), index.clone());
    let product = lake_rows(
        &lake,
        &format!(
            "SELECT id, handle, vendor FROM products WHERE shop_id = '{SHOP}' ORDER BY id LIMIT 1"
        ),
    )
    .remove(0);
    let title = "Aurora Borealis Expedition Parka";
    let body = json!({"id": product["id"], "handle": product["handle"], "title": title,
        "body_html": "<p>A down parka for polar nights, rated to minus forty.</p>",
        "vendor": product["vendor"], "product_type": "Jackets", "status": "active",
        "published_at": "2026-01-01T00:00:00Z", "tags": "parka, down", "options": [], "variants": [],
        "created_at": "2025-01-01T00:00:00Z", "updated_at": "2026-11-28T09:00:00Z"});
    let sent = Instant::now();
    let (status, _) = server.webhook("products/update", body.to_string().as_bytes(), "parka-1");
    assert_eq!(status, 200);
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_supportlake"))
            .current_dir(root())
            .env("SUPPORTLAKE_LAKE_URL", &lake)
            .env("SUPPORTLAKE_INDEX_DIR", &index)
            .args(["search", title, "-k", "1", "--format", "json"])
            .output()
            .unwrap();
        let hits: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if hits[0]["title"] == title {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(240),
            "the index never showed the new title"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "product webhook → searchable in {:?} (debug build)",
        sent.elapsed()
    );
}

/// `serve` as an operator might misconfigure it: it must exit at once, naming the setting,
/// before it opens a socket or loads a model. Bounded: a server that starts anyway is killed
/// and the test fails.
#[test]
fn serve_refuses_empty_secrets_and_public_demo_secrets_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let refusal = |env: &[(&str, &str)], listen: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_supportlake"));
        command
            .current_dir(root())
            .env("SUPPORTLAKE_LAKE_URL", dir.path().join("lake"))
            .env("SUPPORTLAKE_STATE_DIR", dir.path().join("state"))
            .env_remove("SUPPORTLAKE_LOG")
            .args(["serve", "--listen", listen])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("serve {listen} with {env:?} started instead of refusing");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!status.success(), "serve {listen} {env:?} succeeded");
        stderr
    };
    // The public demo secrets are fine on loopback only.
    let stderr = refusal(&[], "0.0.0.0:0");
    for setting in [
        "pii_hash_key",
        "master_key",
        "agent_token",
        "analyst_token",
        "shopify_client_secret",
    ] {
        assert!(
            stderr.contains(&format!("{setting} is the public demo value")),
            "{setting}: {stderr}"
        );
    }
    // An empty secret is refused anywhere.
    let stderr = refusal(&[("SUPPORTLAKE_AGENT_TOKEN", "")], "127.0.0.1:0");
    assert!(stderr.contains("agent_token is empty"), "{stderr}");
    let stderr = refusal(&[("SUPPORTLAKE_SHOPIFY_CLIENT_SECRET", " ")], "127.0.0.1:0");
    assert!(
        stderr.contains("shopify_client_secret is empty"),
        "{stderr}"
    );
}

/// Every `shop_id` in `value`, at any depth.
fn shop_ids(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                if key == "shop_id"
                    && let Some(id) = field.as_str()
                {
                    out.push(id.to_string());
                }
                shop_ids(field, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| shop_ids(item, out)),
        _ => {}
    }
}

/// `customers/data_request` for a customer id both shops have: each shop's export holds
/// its own shopper's rows only.
#[test]
fn a_data_request_exports_only_the_requesting_shops_rows() {
    let server = Server::start();
    let order = in_transit();
    let customer = order["customer"]["id"].as_i64().unwrap();
    let email = order["email"].as_str().unwrap().to_string();
    let key = pipeline::config::DEMO_PII_HASH_KEY;
    for (shop, email, other_email) in [
        (SHOP, email.clone(), testkit::in_shop_b(&email)),
        (SHOP_B, testkit::in_shop_b(&email), email.clone()),
    ] {
        let body = json!({"shop_domain": shop, "customer": {"id": customer, "email": email},
            "orders_requested": [order["id"]], "data_request": {"id": 4242}});
        let (status, reply) = server.webhook_from(
            shop,
            WEBHOOK_SECRET,
            "customers/data_request",
            body.to_string().as_bytes(),
            &format!("request-{shop}"),
        );
        assert_eq!(status, 200, "{reply}");
        let path = server.dir.join(format!(
            "exports/{shop}/customer-{customer}-request-4242.json"
        ));
        eventually(
            &format!("an export at {}", path.display()),
            300,
            Duration::from_millis(200),
            || path.exists().then_some(()),
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let export: Value = serde_json::from_str(&text).unwrap();
        for table in ["customers", "orders", "order_lines", "fulfillments"] {
            assert!(
                export["tables"][table]
                    .as_array()
                    .is_some_and(|rows| !rows.is_empty()),
                "{shop}: no {table} in its export"
            );
        }
        let mut ids = Vec::new();
        shop_ids(&export["tables"], &mut ids);
        assert!(
            ids.iter().all(|id| id == shop),
            "{shop}'s export holds rows of {ids:?}"
        );
        assert!(
            text.contains(&pipeline::pii::email_hash(key, &email)),
            "{shop}"
        );
        assert!(
            !text.contains(&pipeline::pii::email_hash(key, &other_email)),
            "{shop}'s export holds the other shop's shopper"
        );
    }
}
