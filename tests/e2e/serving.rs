//! A running `supportlake serve` for the end-to-end tests (`server`, `webhook_crash`,
//! `browser`, `imports`): the demo lake with a second shop and its index, built once per
//! test run, and a client that speaks raw HTTP/1.1 over loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use testkit::{SHOP_B, copy_dir, second_shop};

use crate::common::{demo_index, ok, ok_with_index, root};

/// The demo store's shop, the one most tests talk to.
pub const SHOP: &str = testkit::SHOP_A;
pub const AGENT_TOKEN: &str = "test-agent-token";
/// The storefront secrets the two shops are installed with.
pub const STOREFRONT_SECRET: &str = "test-storefront-secret";
pub const STOREFRONT_SECRET_B: &str = "test-storefront-secret-of-summit-supply";
/// The secret of Shopify's own test vectors, so the fixtures' signatures apply.
pub const WEBHOOK_SECRET: &str = "test_secret_key";
pub const PREVIOUS_WEBHOOK_SECRET: &str = "test_previous_secret";

/// `X-Shopify-Hmac-Sha256` for `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The demo lake with a second shop, and a built index, made once per test run; each
/// server gets its own copy of the lake (it writes chat records into it).
pub struct Built {
    _dir: tempfile::TempDir,
    pub lake: PathBuf,
    pub index: PathBuf,
}

pub fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let demo = demo_index();
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        copy_dir(&demo.lake, &lake);
        let other = dir.path().join("other-store");
        second_shop(&other);
        ok(&lake, &["ingest", other.to_str().unwrap()]);
        // Starting from the demo index's embedding cache, the build embeds only the second
        // shop's passages whose text differs: the model runs over the demo store once.
        let index = dir.path().join("index");
        copy_dir(&demo.index.join("cache"), &index.join("cache"));
        ok_with_index(&lake, &index, &["index", "build"]);
        Built {
            _dir: dir,
            lake,
            index,
        }
    })
}

/// Checks `check` up to `tries` times, `pause` apart, until it returns something; panics
/// saying `what` never happened. The bound is a number of looks, so a slow machine gets as
/// many as a fast one and nothing is asserted about how long they took.
pub fn eventually<T>(
    what: &str,
    tries: u32,
    pause: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    for _ in 0..tries {
        if let Some(found) = check() {
            return found;
        }
        std::thread::sleep(pause);
    }
    panic!("{what}: not after {tries} looks, {pause:?} apart");
}

/// `supportlake shops ARGS` on the registry of the state directory under `dir`: what it
/// printed (it must succeed).
pub fn shops(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_supportlake"))
        .current_dir(root())
        .env("SUPPORTLAKE_STATE_DIR", dir.join("state"))
        .arg("shops")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "shops {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A running `supportlake serve` with its own lake copy and state directory.
pub struct Server {
    pub child: Child,
    pub address: String,
    pub dir: PathBuf,
    pub lake: PathBuf,
    pub index: PathBuf,
}

impl Server {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        let lake = dir.join("lake");
        copy_dir(&built().lake, &lake);
        Self::start_in(dir, lake, built().index.clone())
    }

    pub fn start_in(dir: PathBuf, lake: PathBuf, index: PathBuf) -> Self {
        // Both shops installed as custom-app shops, each with a storefront secret of its own.
        let shops = [(SHOP, STOREFRONT_SECRET), (SHOP_B, STOREFRONT_SECRET_B)];
        let settings = [
            ("SUPPORTLAKE_SHOPIFY_CLIENT_SECRET", WEBHOOK_SECRET),
            (
                "SUPPORTLAKE_SHOPIFY_PREVIOUS_CLIENT_SECRET",
                PREVIOUS_WEBHOOK_SECRET,
            ),
        ];
        Self::launch(dir, lake, index, &shops, &settings, "127.0.0.1:0")
    }

    /// `serve` on `listen` with `shops` installed first (domain, storefront secret) and
    /// `settings` as its environment.
    pub fn launch(
        dir: PathBuf,
        lake: PathBuf,
        index: PathBuf,
        shops: &[(&str, &str)],
        settings: &[(&str, &str)],
        listen: &str,
    ) -> Self {
        for (shop, secret) in shops {
            self::shops(&dir, &["add", shop, "--storefront-secret", secret]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_supportlake"))
            .current_dir(root())
            .env("SUPPORTLAKE_LAKE_URL", &lake)
            .env("SUPPORTLAKE_INDEX_DIR", &index)
            .env("SUPPORTLAKE_STATE_DIR", dir.join("state"))
            .env("SUPPORTLAKE_AGENT_TOKEN", AGENT_TOKEN)
            .env("SUPPORTLAKE_EXPORTS_DIR", dir.join("exports"))
            .env_remove("SUPPORTLAKE_LOG")
            .envs(settings.iter().copied())
            .args(["serve", "--listen", listen])
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
    pub fn stop(mut self) -> (PathBuf, PathBuf, PathBuf) {
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
    pub fn crash(mut self) -> (PathBuf, PathBuf, PathBuf) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        (self.dir.clone(), self.lake.clone(), self.index.clone())
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, &[], b"")
    }

    pub fn agent(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
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

    /// Delivers a signed webhook from the demo shop as Shopify would.
    pub fn webhook(&self, topic: &str, body: &[u8], event_id: &str) -> (u16, Value) {
        self.webhook_from(SHOP, WEBHOOK_SECRET, topic, body, event_id)
    }

    /// Delivers a webhook from `shop`, signed with `secret`.
    pub fn webhook_from(
        &self,
        shop: &str,
        secret: &str,
        topic: &str,
        body: &[u8],
        event_id: &str,
    ) -> (u16, Value) {
        let request = webhook_request(&self.address, shop, secret, topic, body, event_id);
        let (status, body) = self.raw(&request);
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, value)
    }

    pub fn chat(&self, conversation: Option<&str>, message: &str) -> Value {
        let (status, body) = self.post(
            "/v1/chat",
            &json!({"shop": SHOP, "conversation_id": conversation, "message": message}),
        );
        assert_eq!(status, 200, "{body}");
        body
    }

    pub fn raw(&self, request: &[u8]) -> (u16, String) {
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

    pub fn request(
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

/// The bytes of a webhook delivery from `shop` signed with `secret`, as Shopify sends one.
pub fn webhook_request(
    address: &str,
    shop: &str,
    secret: &str,
    topic: &str,
    body: &[u8],
    event_id: &str,
) -> Vec<u8> {
    let mut request = format!(
        "POST /webhooks/shopify HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\
         content-length: {}\r\ncontent-type: application/json\r\nX-Shopify-Topic: {topic}\r\n\
         X-Shopify-Hmac-Sha256: {}\r\nX-Shopify-Shop-Domain: {shop}\r\nX-Shopify-API-Version: 2026-04\r\n\
         X-Shopify-Webhook-Id: w-{event_id}\r\nX-Shopify-Event-Id: {event_id}\r\n\
         X-Shopify-Triggered-At: 2026-11-28T10:00:00.000000Z\r\n\r\n",
        body.len(),
        sign(secret, body)
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Posts a signed delivery to `address`; the status, or `None` when the server could not
/// be reached or hung up (it may have just been killed).
pub fn post_webhook(address: &str, topic: &str, body: &[u8], event_id: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    stream
        .write_all(&webhook_request(
            address,
            SHOP,
            WEBHOOK_SECRET,
            topic,
            body,
            event_id,
        ))
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
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
pub fn announced_address(child: &mut Child) -> String {
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
