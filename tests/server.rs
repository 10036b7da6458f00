//! The answer server as a shopper, an agent and an operator meet it: the real binary on a
//! real loopback socket, over the demo store's lake and a real index (real embedding model).
//! Expected values come from the demo store's export files, never from the server.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use common::{ok, root};

const SHOP: &str = "ridgeline-outfitters.myshopify.com";
const AGENT_TOKEN: &str = "test-agent-token";
const STOREFRONT_SECRET: &str = "test-storefront-secret";

/// The demo lake with a second shop, and a built index, made once per test binary; each
/// server gets its own copy of the lake (it writes chat records into it).
struct Built {
    _dir: tempfile::TempDir,
    lake: PathBuf,
    index: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        ok(&lake, &["ingest", "data/demo-store"]);
        let other = dir.path().join("other-store");
        second_shop(&other);
        ok(&lake, &["ingest", other.to_str().unwrap()]);
        let index = dir.path().join("index");
        let out = Command::new(env!("CARGO_BIN_EXE_supportlake"))
            .current_dir(root())
            .env("SUPPORTLAKE_LAKE_URL", &lake)
            .env("SUPPORTLAKE_INDEX_DIR", &index)
            .args(["index", "build"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Built {
            _dir: dir,
            lake,
            index,
        }
    })
}

/// A copy of the demo store as another shop ("Summit Supply") whose shoppers have other
/// emails: same order numbers, different people.
fn second_shop(out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    for entry in std::fs::read_dir(root().join("data/demo-store")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text
            .replace("ridgeline-outfitters", "summit-supply")
            .replace("Ridgeline Outfitters", "Summit Supply")
            .replace("@example.", "@summit.example.")
            .replace("68310452233", "68310452299");
        std::fs::write(out.join(path.file_name().unwrap()), text).unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A running `supportlake serve` with its own lake copy and state directory.
struct Server {
    child: Child,
    address: String,
    dir: PathBuf,
    lake: PathBuf,
    index: PathBuf,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        let lake = dir.join("lake");
        copy_dir(&built().lake, &lake);
        Self::start_in(dir, lake, built().index.clone())
    }

    fn start_in(dir: PathBuf, lake: PathBuf, index: PathBuf) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_supportlake"))
            .current_dir(root())
            .env("SUPPORTLAKE_LAKE_URL", &lake)
            .env("SUPPORTLAKE_INDEX_DIR", &index)
            .env("SUPPORTLAKE_STATE_DIR", dir.join("state"))
            .env("SUPPORTLAKE_AGENT_TOKEN", AGENT_TOKEN)
            .env("SUPPORTLAKE_STOREFRONT_SECRET", STOREFRONT_SECRET)
            .env_remove("SUPPORTLAKE_LOG")
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let address = announced_address(&mut child);
        Self {
            child,
            address,
            dir,
            lake,
            index,
        }
    }

    /// Stops gracefully (SIGTERM: in-flight requests finish, the outbox is flushed).
    fn stop(mut self) -> (PathBuf, PathBuf, PathBuf) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = wait_bounded(&mut self.child, Duration::from_secs(60));
        assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
        (self.dir.clone(), self.lake.clone(), self.index.clone())
    }

    /// Kills without warning (SIGKILL): nothing is flushed.
    fn crash(mut self) -> (PathBuf, PathBuf, PathBuf) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        (self.dir.clone(), self.lake.clone(), self.index.clone())
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, &[], b"")
    }

    fn agent(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let auth = format!("Bearer {AGENT_TOKEN}");
        let body = body.map(Value::to_string).unwrap_or_default();
        self.request(
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        )
    }

    fn chat(&self, conversation: Option<&str>, message: &str) -> Value {
        let (status, body) = self.post(
            "/v1/chat",
            &json!({"shop": SHOP, "conversation_id": conversation, "message": message}),
        );
        assert_eq!(status, 200, "{body}");
        body
    }

    fn raw(&self, request: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let text = String::from_utf8_lossy(&response).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value) {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
            self.address,
            body.len()
        )
        .into_bytes();
        for (name, value) in headers {
            request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        let (status, body) = self.raw(&request);
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, value)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "the server did not stop within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the server's stdout until it announces its address; keeps draining it after.
fn announced_address(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && let Some(rest) = line.split("on http://").nth(1) {
                let address = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send(address);
                sent = true;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(300))
        .expect("the server announces its address")
}

fn reply(body: &Value) -> &Value {
    &body["reply"]
}

/// Orders of the demo store's export, as the shop's system of record has them.
fn orders() -> Vec<Value> {
    std::fs::read_to_string(root().join("data/demo-store/orders.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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
    let shipped = orders()
        .into_iter()
        .find(|o| {
            o["cancelled_at"].is_null()
                && o["fulfillments"].as_array().is_some_and(|f| {
                    f.len() == 1
                        && f[0]["shipment_status"] == "in_transit"
                        && f[0]["tracking_number"].is_string()
                })
        })
        .expect("the demo store has an order in transit");
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
        &format!("/v1/conversations/{conversation}/verify"),
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
            &format!("/v1/conversations/{locked_out}/verify"),
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
        &format!("/v1/conversations/{conversation}/verify"),
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
    let message = format!("{customer}:{email}:{expires}");
    let token = {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(STOREFRONT_SECRET.as_bytes()).unwrap();
        mac.update(message.as_bytes());
        format!("{message}:{}", hex::encode(mac.finalize().into_bytes()))
    };
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
    assert!(
        history.contains(&"where is my order?") && history.contains(&"I want to talk to a person"),
        "{history:?}"
    );
    assert!(
        history.len() >= 4,
        "both questions and both answers: {history:?}"
    );
    assert!(
        !packet["what_the_assistant_tried"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{packet}"
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
    let (_, thread) = server.get(&format!("/v1/conversations/{conversation}"));
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
        &format!("/v1/conversations/{conversation}/feedback"),
        &json!({"helpful": true}),
    );
    assert_eq!(status, 200);
    let (status, resolved) = server.post(
        &format!("/v1/conversations/{conversation}/resolve"),
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
        &format!("/v1/conversations/{conversation}/verify"),
        &json!({"order_number": number, "email": email}),
    );
    assert_eq!(verified["verified"], true, "{verified}");
    // The same conversation id under the other shop does not exist.
    let (status, crossed) = server.post(
        "/v1/chat",
        &json!({"shop": "summit-supply.myshopify.com", "conversation_id": conversation, "message": "where is my order?"}),
    );
    assert_eq!(
        (status, crossed["error"]["code"].as_str()),
        (404, Some("unknown_conversation")),
        "{crossed}"
    );
    // Shop A's shopper, verified in A, is a stranger in B: same order number, their email is not B's.
    let (_, other) = server.post(
        "/v1/chat",
        &json!({"shop": "summit-supply.myshopify.com", "message": format!("where is my order #{number}")}),
    );
    assert_eq!(other["reply"]["needs_verification"], true, "{other}");
    let other_conversation = other["conversation_id"].as_str().unwrap();
    let (_, refused) = server.post(
        &format!("/v1/conversations/{other_conversation}/verify"),
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
    let json = "application/json";
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"{not json".to_vec(), json, 400, "invalid_json"),
        (
            br#"{"shop": 7, "message": "hi"}"#.to_vec(),
            json,
            400,
            "invalid_field",
        ),
        (br#"{"shop": "x"}"#.to_vec(), json, 400, "invalid_field"),
        (
            br#"{"shop": "x", "message": "hi", "extra": 1}"#.to_vec(),
            json,
            400,
            "invalid_field",
        ),
        (
            b"{\"shop\": \"x\", \"message\": \"\xff\xfe\"}".to_vec(),
            json,
            400,
            "invalid_utf8",
        ),
        (
            format!(r#"{{"shop": "{SHOP}", "message": "   "}}"#).into_bytes(),
            json,
            400,
            "empty_message",
        ),
        (
            format!(
                r#"{{"shop": "{SHOP}", "message": "{}"}}"#,
                "a".repeat(10_000)
            )
            .into_bytes(),
            json,
            400,
            "message_too_long",
        ),
        (
            br#"{"shop": "no-such-shop.myshopify.com", "message": "hi"}"#.to_vec(),
            json,
            404,
            "unknown_shop",
        ),
        (
            format!(r#"{{"shop": "{SHOP}", "message": "hi", "conversation_id": "nope"}}"#)
                .into_bytes(),
            json,
            404,
            "unknown_conversation",
        ),
        (
            format!(r#"{{"shop": "{SHOP}", "message": "hi", "customer_token": "1:a@b.c:99:00"}}"#)
                .into_bytes(),
            json,
            401,
            "invalid_customer_token",
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
        (
            b"shop=x&message=hi".to_vec(),
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
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
    let conversation = server.chat(None, "what payment methods do you accept?")["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = server.post(
        &format!("/v1/conversations/{conversation}/csat"),
        &json!({"score": 9}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_score"))
    );
    let (status, body) = server.post(
        &format!("/v1/conversations/{conversation}/verify"),
        &json!({"order_number": "", "email": ""}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("missing_field"))
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
        &format!("/v1/conversations/{conversation}/verify"),
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
        &format!("/v1/conversations/{conversation}/csat"),
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
