//! The fast tier of the server's tests: the conversation rules and the API's codes, asked of
//! [`router`] in memory (`router(state).oneshot(request)`), with no model, no subprocess and
//! no socket.
//!
//! What is real: the demo store and a second shop whose customer and order ids collide with
//! it, ingested into Delta tables, and an index generation (Tantivy and vectors) built from
//! that lake, both in a temp directory made once per test binary. What is not: the model —
//! [`HashingEmbedder`] embeds the passages, the intent examples and every message, so
//! retrieval and classification are deterministic and instant. Each test opens its own
//! [`AppState`] with its own state directory, so no test sees another's conversations.
//! Expected values come from the demo store's export files, never from the server.

mod background;
mod codes;
mod install;
mod rules;
mod tenancy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::Utc;
use index::HashingEmbedder;
use pipeline::{Config, Lake};
use serde_json::{Value, json};
use testkit::{SHOP_A, SHOP_B, demo_store, second_shop};
use tower::ServiceExt;

use crate::state::chat;
use crate::state::shops::{Credentials, ShopKind};
use crate::{AppState, QueryEmbedder, router};

const AGENT_TOKEN: &str = "in-memory-agent-token";
/// The storefront secrets the two shops are installed with.
const STOREFRONT_A: &str = "in-memory-storefront-secret-a";
const STOREFRONT_B: &str = "in-memory-storefront-secret-b";
/// Shop A's custom storefront domain, allowed to call the chat API directly.
const ORIGIN_A: &str = "https://ridgeline.example";
const INTENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/intents");
/// Where requests come from unless a test says otherwise (verification counts failures per
/// client address).
const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

/// The lake and the index every test reads, in a temp directory kept for the whole run.
#[derive(Debug)]
struct Fixture {
    dir: tempfile::TempDir,
    lake_url: String,
    index_dir: PathBuf,
}

impl Fixture {
    /// The configuration of a server over the fixture with `state_dir` of its own.
    fn config(&self, state_dir: &Path) -> Config {
        Config {
            lake_url: self.lake_url.clone(),
            index_dir: self.index_dir.clone(),
            intents_dir: INTENTS.into(),
            state_dir: state_dir.to_path_buf(),
            exports_dir: state_dir.join("exports"),
            agent_token: AGENT_TOKEN.into(),
            ..Config::default()
        }
    }
}

/// The fixture, built by whichever test asks first.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Each test runs on a runtime of its own, which cannot block on another future:
        // the build gets its own thread and runtime.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the fixture")
                .block_on(build_fixture())
        })
        .join()
        .expect("the fixture builds")
    })
}

/// Ingests the two shops and builds an index generation of both with [`HashingEmbedder`].
async fn build_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let lake_path = dir.path().join("lake");
    let fixture = Fixture {
        lake_url: lake_path.to_str().unwrap().to_string(),
        index_dir: dir.path().join("index"),
        dir,
    };
    let config = fixture.config(&fixture.dir.path().join("build-state"));
    let lake = Lake::open(config.lake_url().unwrap()).unwrap();
    let other = fixture.dir.path().join("other-store");
    second_shop(&other);
    for store in [demo_store().as_path(), other.as_path()] {
        let report = pipeline::ingest::ingest(&lake, store, &config, &mut |_, _| {})
            .await
            .unwrap();
        assert!(
            report.succeeded(),
            "nothing ingested from {}",
            store.display()
        );
    }
    let summary = index::rebuild::build_index(&config, &lake, &HashingEmbedder, "*", None, false)
        .await
        .unwrap();
    assert!(
        summary.switched,
        "the generation passes its canary: {summary:?}"
    );
    fixture
}

/// Its order number and email as a shopper types them.
fn number_and_email(order: &Value) -> (String, String) {
    (
        order["order_number"].as_i64().unwrap().to_string(),
        order["email"].as_str().unwrap().to_string(),
    )
}

/// A question about order `number`, worded as the intent examples word it: the hashing
/// embedder matches words, not meaning, so "where is my order #1042?" is out of its scope.
fn asking_about(number: &str) -> String {
    format!("check the status of order #{number}")
}

/// A response: its status, headers, and body as JSON (a string when it is not JSON).
#[derive(Debug)]
struct Answered {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answered {
    /// The stable error code, if the body is an error.
    fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    /// `(status, code)`, for comparing an error in one assertion.
    fn error(&self) -> (u16, Option<&str>) {
        (self.status.as_u16(), self.code())
    }
}

/// A server over the fixture, called in memory.
#[derive(Debug)]
struct Server {
    state: AppState,
    router: Router,
    /// The state directory [`Server::start`] made, removed with the server.
    _state_dir: Option<tempfile::TempDir>,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// [`Server::start`] with the fixture's configuration changed by `change`.
    async fn start_with(change: impl FnOnce(&mut Config)) -> Self {
        let fixture = fixture();
        let state_dir = tempfile::tempdir().unwrap();
        let mut config = fixture.config(state_dir.path());
        change(&mut config);
        let lake = Lake::open(config.lake_url().unwrap()).unwrap();
        let queries =
            QueryEmbedder::start(Arc::new(HashingEmbedder), 1, config.embedding_batch).unwrap();
        let state = AppState::open(&config, lake, queries).await.unwrap();
        Self {
            _state_dir: Some(state_dir),
            ..Self::over(state)
        }
    }

    /// A server over a state of the test's own making (its own lake, for instance), with
    /// both shops installed, each with its own storefront secret; shop A also allows its
    /// custom domain's origin ([`ORIGIN_A`]).
    fn over(state: AppState) -> Self {
        for (shop, secret) in [(SHOP_A, STOREFRONT_A), (SHOP_B, STOREFRONT_B)] {
            let credentials = Credentials {
                storefront_secret: secret.into(),
                ..Credentials::default()
            };
            state
                .shops()
                .install(shop, ShopKind::Custom, Vec::new(), credentials, Utc::now())
                .unwrap();
        }
        state
            .shops()
            .set_origins(SHOP_A, vec![ORIGIN_A.into()])
            .unwrap();
        Self {
            router: router(state.clone()),
            state,
            _state_dir: None,
        }
    }

    /// Sends `request` from [`CLIENT`] unless it names its own client address.
    async fn send(&self, mut request: Request<Body>) -> Answered {
        if request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_none()
        {
            request.extensions_mut().insert(ConnectInfo(CLIENT));
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answered {
            status,
            headers,
            body,
        }
    }

    /// A request with `headers` and a body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Answered {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(body.into()).unwrap()).await
    }

    async fn get(&self, path: &str) -> Answered {
        self.call(Method::GET, path, &[], Body::empty()).await
    }

    async fn post(&self, path: &str, body: &Value) -> Answered {
        self.post_from(CLIENT, path, body).await
    }

    /// A JSON POST from another client address.
    async fn post_from(&self, client: SocketAddr, path: &str, body: &Value) -> Answered {
        let mut request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        request.extensions_mut().insert(ConnectInfo(client));
        self.send(request).await
    }

    /// A request with the agent's bearer token.
    async fn agent(&self, method: Method, path: &str, body: Option<&Value>) -> Answered {
        let auth = format!("Bearer {AGENT_TOKEN}");
        let body = body.map(Value::to_string).unwrap_or_default();
        self.call(
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }

    /// A shopper's message, which must be answered (200).
    async fn chat(&self, shop: &str, conversation: Option<&str>, message: &str) -> Value {
        let got = self
            .post(
                "/v1/chat",
                &json!({"shop": shop, "conversation_id": conversation, "message": message}),
            )
            .await;
        assert_eq!(got.status, StatusCode::OK, "{message:?}: {}", got.body);
        got.body
    }

    /// Verifies `conversation` with an order number and email.
    async fn verify(&self, conversation: &str, number: &str, email: &str) -> Answered {
        self.verify_from(CLIENT, conversation, number, email).await
    }

    /// [`Server::verify`] from another client address.
    async fn verify_from(
        &self,
        client: SocketAddr,
        conversation: &str,
        number: &str,
        email: &str,
    ) -> Answered {
        // The conversation's own shop, as the widget sends it.
        let shop = self
            .state
            .chat()
            .transaction(|tx| chat::conversation(tx, None, conversation))
            .unwrap()
            .map_or_else(|| SHOP_A.to_string(), |c| c.shop_id);
        self.post_from(
            client,
            &format!("/v1/conversations/{conversation}/verify?shop={shop}"),
            &json!({"order_number": number, "email": email}),
        )
        .await
    }
}
