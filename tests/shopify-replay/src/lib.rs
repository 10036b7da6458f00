//! # shopify-replay — the one stand-in supportlake's tests use
//!
//! Shopify cannot run on a test machine, so `supportlake sync shopify` is tested against this
//! local HTTP server, which plays a store's Admin GraphQL API from its export files
//! ([`store::Store`]) in the API's real request and response shapes:
//!
//! * `POST /admin/api/{version}/graphql.json` with `X-Shopify-Access-Token` (anything else is
//!   `401` with Shopify's error body);
//! * `bulkOperationRunQuery` (one running operation per shop: a second gets the
//!   `OPERATION_IN_PROGRESS` user error), polling by `node(id:)` and
//!   `currentBulkOperation`, `objectCount` as a string, and the result as JSONL at `url`,
//!   nested objects as lines with `__parentId`;
//! * cursor pagination (`first`, `after`, `pageInfo { hasNextPage endCursor }`) with the
//!   search syntax `updated_at:>'…'` and `sortKey: UPDATED_AT`;
//! * calculated query cost in `extensions.cost` with a leaky bucket (`maximumAvailable`,
//!   `currentlyAvailable`, `restoreRate`); a query costing more than the bucket holds gets a
//!   `THROTTLED` error on an HTTP 200, as Shopify does.
//!
//! * OAuth as a public app meets it: `GET /admin/oauth/authorize` redirects to the app's
//!   `redirect_uri` with a code and the query signed as Shopify signs it (hex HMAC of the
//!   sorted, URL-encoded parameters under the client secret); `POST
//!   /admin/oauth/access_token` trades the code (with `expiring: "1"`, an access token that
//!   lives [`Config::token_lifetime`] and a refresh token) or a refresh token (a new pair;
//!   the old refresh token works until the new one is used, as Shopify's do), with
//!   `{"error": "invalid_grant"}` for anything else; GraphQL accepts the issued access
//!   tokens until they expire.
//!
//! * webhook subscriptions: `webhookSubscriptions` (paged) and `webhookSubscriptionCreate`
//!   with `uri`, refusing a topic already delivered to the same address with Shopify's
//!   user error ([`Replay::subscriptions`] shows what was made).
//!
//! It is not a GraphQL engine: it recognises the documents supportlake sends (by their root
//! fields) and answers with every field supportlake selects. [`Faults`] injects `THROTTLED`
//! answers, HTTP 429 with `Retry-After` and HTTP 500s at fixed request counts, so a test
//! knows exactly what a sync had to survive.

pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub use store::Store;

/// Faults injected by request number (1-based, counting every GraphQL request).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Every n-th request is answered `THROTTLED` (and costs nothing).
    pub throttle_every: Option<u64>,
    /// Every n-th request is answered HTTP 429 with `Retry-After: 0.2`.
    pub too_many_every: Option<u64>,
    /// Every n-th request is answered HTTP 500.
    pub server_error_every: Option<u64>,
}

/// How the replay behaves.
#[derive(Debug, Clone)]
pub struct Config {
    pub token: String,
    /// Bucket size in points (Shopify's single-query maximum is 1,000).
    pub bucket: f64,
    /// Points restored per second (Shopify: 100 on Standard, 1,000 on Plus).
    pub restore_rate: f64,
    /// How long a bulk operation runs before it completes.
    pub bulk_duration: Duration,
    pub faults: Faults,
    /// The app's client id and secret at this "Shopify" (OAuth).
    pub client_id: String,
    pub client_secret: String,
    /// How long an expiring access token lives (Shopify: an hour).
    pub token_lifetime: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            token: "shpat_replay_token".into(),
            bucket: 1000.0,
            restore_rate: 100.0,
            bulk_duration: Duration::from_millis(200),
            faults: Faults::default(),
            client_id: "replay-client-id".into(),
            client_secret: "replay-client-secret".into(),
            token_lifetime: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug)]
struct Operation {
    id: u64,
    query: String,
    started: Instant,
    lines: Vec<Value>,
    roots: usize,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    config: Config,
    available: f64,
    refilled: Instant,
    requests: u64,
    operations: Vec<Operation>,
    /// Status polls answered RUNNING: what a sync waited for.
    running_polls: u64,
    address: SocketAddr,
    oauth: OAuth,
    /// Webhook subscriptions made (`webhookSubscriptionCreate`): id, topic enum, uri.
    subscriptions: Vec<(u64, String, String)>,
}

/// What the OAuth endpoints issued and saw.
#[derive(Debug, Default)]
struct OAuth {
    /// Codes not yet traded.
    codes: Vec<String>,
    /// Access tokens issued, with when they expire.
    access: Vec<(String, Instant)>,
    /// Refresh tokens that still work, each with the one that replaced it (once used, the
    /// replacement retires it).
    refresh: Vec<(String, Option<String>)>,
    counts: OAuthCounts,
}

/// How often each grant was made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OAuthCounts {
    pub authorizations: u64,
    /// Codes traded for an expiring token (`expiring: "1"`).
    pub expiring_exchanges: u64,
    /// Codes traded for a token that does not expire.
    pub plain_exchanges: u64,
    pub refreshes: u64,
    /// Grants refused (`invalid_grant`, `invalid_client`).
    pub refused: u64,
}

type Shared = Arc<Mutex<Inner>>;

/// A running replay server, on a thread and runtime of its own for the rest of the process.
#[derive(Debug, Clone)]
pub struct Replay {
    pub address: SocketAddr,
    state: Shared,
}

impl Replay {
    /// Serves `store` on a free loopback port.
    pub fn start(store: Store, config: Config) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let state = Arc::new(Mutex::new(Inner {
            available: config.bucket,
            store,
            config,
            refilled: Instant::now(),
            requests: 0,
            operations: Vec::new(),
            running_polls: 0,
            address,
            oauth: OAuth::default(),
            subscriptions: Vec::new(),
        }));
        let app = Router::new()
            .route("/admin/oauth/authorize", get(authorize))
            .route("/admin/oauth/access_token", post(access_token))
            .route("/admin/api/{version}/graphql.json", post(graphql))
            .route("/bulk/{file}", get(bulk_result))
            .with_state(state.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("replay runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, app).await.expect("replay server");
            });
        });
        Ok(Self { address, state })
    }

    /// Loads a store directory and serves it.
    pub fn serve_dir(dir: &Path, config: Config) -> anyhow::Result<Self> {
        Self::start(Store::load(dir)?, config)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// GraphQL requests answered so far (faults included).
    pub fn requests(&self) -> u64 {
        self.state.lock().expect("replay state").requests
    }

    /// Status polls of a bulk operation answered "still running" so far.
    pub fn running_polls(&self) -> u64 {
        self.state.lock().expect("replay state").running_polls
    }

    /// The OAuth grants made so far.
    pub fn oauth_counts(&self) -> OAuthCounts {
        self.state.lock().expect("replay state").oauth.counts
    }

    /// The shop's webhook subscriptions: `(topic, uri)`, topics as GraphQL enum values
    /// (`ORDERS_UPDATED`), in the order they were made.
    pub fn subscriptions(&self) -> Vec<(String, String)> {
        let state = self.state.lock().expect("replay state");
        state
            .subscriptions
            .iter()
            .map(|(_, topic, uri)| (topic.clone(), uri.clone()))
            .collect()
    }

    /// Bulk operations started so far.
    pub fn bulk_operations(&self) -> usize {
        self.state.lock().expect("replay state").operations.len()
    }

    /// Changes the store as a merchant would: edits `products` products' titles and adds a
    /// tag to `orders` orders, stamping them updated now. Returns the changed ids.
    pub fn touch(&self, products: usize, orders: usize) -> (Vec<String>, Vec<String>) {
        let mut state = self.state.lock().expect("replay state");
        let now = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let mut product_ids = Vec::new();
        for p in state.store.products.iter_mut().step_by(7).take(products) {
            p["title"] = json!(format!(
                "{} (2027 edition)",
                p["title"].as_str().unwrap_or("")
            ));
            p["updatedAt"] = now.clone();
            product_ids.push(p["id"].as_str().unwrap_or("").to_string());
        }
        let mut order_ids = Vec::new();
        for o in state.store.orders.iter_mut().step_by(11).take(orders) {
            if let Some(tags) = o["tags"].as_array_mut() {
                tags.push(json!("vip"));
            }
            o["updatedAt"] = now.clone();
            order_ids.push(o["id"].as_str().unwrap_or("").to_string());
        }
        (product_ids, order_ids)
    }
}

/// Shopify's signature of an OAuth redirect's query: hex HMAC-SHA256 under the client
/// secret of every parameter but `hmac`, sorted, URL-encoded (`%20` for spaces), `&`-joined.
fn sign_query(secret: &str, params: &[(&str, String)]) -> String {
    use hmac::Mac;
    let mut sorted: Vec<_> = params.to_vec();
    sorted.sort();
    let encode = |text: &str| {
        url::form_urlencoded::byte_serialize(text.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    let message: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(message.join("&").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn token(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// `GET /admin/oauth/authorize`: the merchant consents at once; back to `redirect_uri`.
async fn authorize(
    State(state): State<Shared>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut state = state.lock().expect("replay state");
    if query.get("client_id") != Some(&state.config.client_id) {
        return shopify_error(
            StatusCode::BAD_REQUEST,
            json!({"errors": "The client_id is not valid for this shop"}),
        );
    }
    let Some(redirect) = query.get("redirect_uri").cloned() else {
        return shopify_error(
            StatusCode::BAD_REQUEST,
            json!({"errors": "redirect_uri is missing"}),
        );
    };
    let code = token("code");
    state.oauth.codes.push(code.clone());
    state.oauth.counts.authorizations += 1;
    let shop = state.store.shop["myshopifyDomain"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let params = [
        ("code", code),
        ("host", base64_host(&shop)),
        ("shop", shop),
        ("state", query.get("state").cloned().unwrap_or_default()),
        ("timestamp", chrono::Utc::now().timestamp().to_string()),
    ];
    let hmac = sign_query(&state.config.client_secret, &params);
    let mut target = url::Url::parse(&redirect).expect("an absolute redirect_uri");
    target
        .query_pairs_mut()
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
    target.query_pairs_mut().append_pair("hmac", &hmac);
    (StatusCode::FOUND, [("location", target.to_string())]).into_response()
}

/// The `host` parameter: the shop's admin host in base64, as Shopify sends it.
fn base64_host(shop: &str) -> String {
    use base64::Engine;
    let host = format!(
        "admin.shopify.com/store/{}",
        shop.trim_end_matches(".myshopify.com")
    );
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(host)
}

/// `POST /admin/oauth/access_token`: a code or a refresh token for a token pair.
async fn access_token(State(state): State<Shared>, body: Bytes) -> Response {
    let mut state = state.lock().expect("replay state");
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let refuse = |state: &mut Inner, error: &str| {
        state.oauth.counts.refused += 1;
        shopify_error(
            StatusCode::BAD_REQUEST,
            json!({"error": error, "error_description": "the grant was refused"}),
        )
    };
    if request["client_id"] != json!(state.config.client_id)
        || request["client_secret"] != json!(state.config.client_secret)
    {
        return refuse(&mut state, "invalid_client");
    }
    let lifetime = state.config.token_lifetime;
    let issue = |state: &mut Inner| {
        let (access, refresh) = (token("shpua"), token("shprt"));
        state
            .oauth
            .access
            .push((access.clone(), Instant::now() + lifetime));
        state.oauth.refresh.push((refresh.clone(), None));
        json!({"access_token": access, "scope": "read_products,read_orders",
            "expires_in": lifetime.as_secs(), "refresh_token": refresh,
            "refresh_token_expires_in": 7_776_000})
    };
    if request["grant_type"] == "refresh_token" {
        let presented = request["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(position) = state
            .oauth
            .refresh
            .iter()
            .position(|(t, _)| *t == presented)
        else {
            return refuse(&mut state, "invalid_grant");
        };
        // Using a replacement retires the token it replaced.
        state
            .oauth
            .refresh
            .retain(|(_, replaced_by)| replaced_by.as_ref() != Some(&presented));
        let position = state
            .oauth
            .refresh
            .iter()
            .position(|(t, _)| *t == presented)
            .unwrap_or(position);
        let grant = issue(&mut state);
        state.oauth.refresh[position].1 = grant["refresh_token"].as_str().map(String::from);
        state.oauth.counts.refreshes += 1;
        return axum::Json(grant).into_response();
    }
    let code = request["code"].as_str().unwrap_or_default().to_string();
    let Some(position) = state.oauth.codes.iter().position(|c| *c == code) else {
        return refuse(&mut state, "invalid_grant");
    };
    state.oauth.codes.remove(position);
    if request["expiring"] == "1" || request["expiring"] == 1 {
        state.oauth.counts.expiring_exchanges += 1;
        let grant = issue(&mut state);
        axum::Json(grant).into_response()
    } else {
        state.oauth.counts.plain_exchanges += 1;
        let access = token("shpat");
        state.oauth.access.push((
            access.clone(),
            Instant::now() + Duration::from_secs(100 * 365 * 86_400),
        ));
        axum::Json(json!({"access_token": access, "scope": "read_products,read_orders"}))
            .into_response()
    }
}

fn shopify_error(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Shopify's rule of thumb for a connection's cost: its page size times one node's cost.
fn requested_cost(query: &str, first: u64) -> f64 {
    let nested: u64 = query
        .match_indices("(first: ")
        .filter_map(|(i, _)| {
            let rest = &query[i + 8..];
            rest[..rest.find(')')?].parse::<u64>().ok()
        })
        .sum();
    (2 + first * (1 + nested)) as f64
}

/// Root connections a page query may ask for, with where the store keeps their nodes.
fn nodes_of<'a>(store: &'a Store, root: &str) -> Option<&'a [Value]> {
    Some(match root {
        "products" => &store.products,
        "customers" => &store.customers,
        "orders" => &store.orders,
        "inventoryItems" => &store.inventory_items,
        "articles" => &store.articles,
        _ => return None,
    })
}

/// The root field a document selects: the first word after the first `{`.
fn root_field(document: &str) -> &str {
    let after = document.split_once('{').map_or("", |(_, rest)| rest);
    after
        .trim_start()
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or("")
}

/// An order as the document asks for it: the returns pass selects only `id`, `updatedAt`
/// and `returns`; the orders pass everything but `returns`.
fn project(root: &str, document: &str, node: &Value) -> Value {
    if root != "orders" {
        return node.clone();
    }
    if document.contains("returns") {
        json!({"id": node["id"], "updatedAt": node["updatedAt"], "returns": node["returns"]})
    } else {
        let mut node = node.clone();
        if let Some(fields) = node.as_object_mut() {
            fields.remove("returns");
        }
        node
    }
}

/// `updated_at:>'2026-11-29T05:00:00Z'` → the bound, exclusive; `updated_at:>='…'` →
/// the bound, inclusive (`true`).
fn updated_after(search: &str) -> Option<(&str, bool)> {
    let rest = search.split_once("updated_at:>")?.1;
    let (rest, inclusive) = match rest.strip_prefix('=') {
        Some(rest) => (rest, true),
        None => (rest, false),
    };
    Some((
        rest.trim_matches(|c| c == '\'' || c == '"' || c == ' '),
        inclusive,
    ))
}

async fn graphql(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut state = state.lock().expect("replay state");
    let token = headers
        .get("X-Shopify-Access-Token")
        .and_then(|v| v.to_str().ok());
    let issued = token.is_some_and(|t| {
        state
            .oauth
            .access
            .iter()
            .any(|(issued, expires)| issued == t && *expires > Instant::now())
    });
    if token != Some(state.config.token.as_str()) && !issued {
        return shopify_error(
            StatusCode::UNAUTHORIZED,
            json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}),
        );
    }
    state.requests += 1;
    let n = state.requests;
    let faults = state.config.faults.clone();
    if faults.server_error_every.is_some_and(|k| n % k == 0) {
        return shopify_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"errors": "Internal Server Error"}),
        );
    }
    if faults.too_many_every.is_some_and(|k| n % k == 0) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", "0.2")],
            axum::Json(json!({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."})),
        )
            .into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return shopify_error(
            StatusCode::BAD_REQUEST,
            json!({"errors": {"query": "Required parameter missing or invalid"}}),
        );
    };
    let document = request["query"].as_str().unwrap_or("").to_string();
    let variables = &request["variables"];
    let root = root_field(&document).to_string();
    let first = variables["first"].as_u64().unwrap_or(0);
    let cost = match root.as_str() {
        "bulkOperationRunQuery" | "shop" | "webhookSubscriptionCreate" => 10.0,
        "webhookSubscriptions" => 2.0 + state.subscriptions.len().min(100) as f64,
        "node" | "currentBulkOperation" => 1.0,
        _ => requested_cost(&document, first),
    };
    // The leaky bucket refills between requests.
    let now = Instant::now();
    state.available = (state.available
        + state.config.restore_rate * now.duration_since(state.refilled).as_secs_f64())
    .min(state.config.bucket);
    state.refilled = now;
    let throttled_now = faults.throttle_every.is_some_and(|k| n % k == 0);
    let status = |available: f64, config: &Config| {
        json!({"maximumAvailable": config.bucket, "currentlyAvailable": available.floor(),
            "restoreRate": config.restore_rate})
    };
    if throttled_now || cost > state.available {
        return shopify_error(
            StatusCode::OK,
            json!({
                "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": {"requestedQueryCost": cost, "actualQueryCost": null,
                    "throttleStatus": status(state.available, &state.config)}},
            }),
        );
    }
    let (data, actual) = match root.as_str() {
        "bulkOperationRunQuery" => (start_bulk(&mut state, variables), cost),
        "node" => (
            json!({"node": operation_status(&mut state, variables["id"].as_str().unwrap_or(""))}),
            cost,
        ),
        "currentBulkOperation" => {
            let current = state.operations.last().map(|op| {
                let status = if op.started.elapsed() < state.config.bulk_duration {
                    "RUNNING"
                } else {
                    "COMPLETED"
                };
                json!({"id": format!("gid://shopify/BulkOperation/{}", op.id), "status": status, "query": op.query})
            });
            (json!({ "currentBulkOperation": current }), cost)
        }
        "shop" => (
            json!({"shop": state.store.shop, "blogs": {"nodes": state.store.blogs}}),
            cost,
        ),
        "webhookSubscriptions" => (list_subscriptions(&state, variables), cost),
        "webhookSubscriptionCreate" => (subscribe(&mut state, variables), cost),
        other => match nodes_of(&state.store, other) {
            Some(nodes) => {
                let page = page(other, &document, nodes, variables);
                // Shopify charges what was returned and refunds the rest of the request.
                let returned: u64 = page["edges"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| objects_in(&e["node"]))
                    .sum();
                (json!({ other: page }), (2 + returned) as f64)
            }
            None => {
                return shopify_error(
                    StatusCode::OK,
                    json!({"errors": [{"message": format!("Field '{other}' doesn't exist on type 'QueryRoot'"),
                        "extensions": {"code": "undefinedField", "typeName": "QueryRoot", "fieldName": other}}]}),
                );
            }
        },
    };
    state.available -= actual;
    let throttle = status(state.available, &state.config);
    axum::Json(json!({
        "data": data,
        "extensions": {"cost": {"requestedQueryCost": cost, "actualQueryCost": actual, "throttleStatus": throttle}},
    }))
    .into_response()
}

/// `webhookSubscriptions(first: 100, after: $after)`, a page of 100 by id.
fn list_subscriptions(state: &Inner, variables: &Value) -> Value {
    let after: u64 = variables["after"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let page: Vec<&(u64, String, String)> = state
        .subscriptions
        .iter()
        .filter(|(id, _, _)| *id > after)
        .take(100)
        .collect();
    let last = page.last().map(|(id, _, _)| *id);
    let more = last.is_some_and(|l| state.subscriptions.iter().any(|(id, _, _)| *id > l));
    json!({"webhookSubscriptions": {
        "nodes": page.iter().map(|(id, topic, uri)| json!({
            "id": format!("gid://shopify/WebhookSubscription/{id}"), "topic": topic, "uri": uri,
        })).collect::<Vec<_>>(),
        "pageInfo": {"hasNextPage": more, "endCursor": last.map(|l| l.to_string())},
    }})
}

/// `webhookSubscriptionCreate(topic:, webhookSubscription: {uri, format})`, refusing a
/// second subscription of a topic to one address as Shopify does.
fn subscribe(state: &mut Inner, variables: &Value) -> Value {
    let topic = variables["topic"].as_str().unwrap_or_default().to_string();
    let uri = variables["webhookSubscription"]["uri"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let refuse = |field: &str, message: &str| {
        json!({"webhookSubscriptionCreate": {"webhookSubscription": null,
            "userErrors": [{"field": ["webhookSubscription", field], "message": message}]}})
    };
    let enum_like = !topic.is_empty()
        && topic
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit());
    if !enum_like {
        return refuse("topic", "Topic is not a WebhookSubscriptionTopic");
    }
    if url::Url::parse(&uri).is_err() {
        return refuse("uri", "Address is invalid");
    }
    if state
        .subscriptions
        .iter()
        .any(|(_, t, u)| *t == topic && *u == uri)
    {
        return refuse("uri", "Address for this topic has already been taken");
    }
    let id = state.subscriptions.len() as u64 + 1;
    state.subscriptions.push((id, topic.clone(), uri.clone()));
    json!({"webhookSubscriptionCreate": {"userErrors": [], "webhookSubscription": {
        "id": format!("gid://shopify/WebhookSubscription/{id}"), "topic": topic, "uri": uri}}})
}

/// A node and every object of its nested connections.
fn objects_in(node: &Value) -> u64 {
    match node {
        Value::Object(fields) => {
            let own = u64::from(fields.contains_key("id"));
            own + fields
                .iter()
                .map(|(key, value)| {
                    if key == "edges" {
                        value
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|e| objects_in(&e["node"]).max(1))
                            .sum()
                    } else {
                        objects_in(value)
                    }
                })
                .sum::<u64>()
        }
        Value::Array(items) => items.iter().map(objects_in).sum(),
        _ => 0,
    }
}

fn page(root: &str, document: &str, nodes: &[Value], variables: &Value) -> Value {
    let first = variables["first"].as_u64().unwrap_or(50).min(250) as usize;
    let after = variables["after"]
        .as_str()
        .and_then(|c| c.strip_prefix("cursor:"))
        .and_then(|c| c.parse::<usize>().ok());
    let bound = variables["query"].as_str().and_then(updated_after);
    // Each node's `updatedAt` is looked up once: looking it up in every comparison of the
    // sort made the replay, not the rate limit, bound the paged sync benchmark at scale 10.
    let mut matching: Vec<(Option<&str>, usize, &Value)> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n["updatedAt"].as_str(), i, n))
        .filter(|(updated, _, _)| {
            bound.is_none_or(|(b, inclusive)| {
                updated.is_some_and(|u| u > b || (inclusive && u == b))
            })
        })
        .collect();
    if document.contains("sortKey: UPDATED_AT") {
        matching.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    }
    let start = after.map_or(0, |a| a + 1);
    let slice: Vec<(usize, &Value)> = matching
        .iter()
        .skip(start)
        .take(first)
        .map(|&(_, i, n)| (i, n))
        .collect();
    let end = start + slice.len();
    json!({
        "pageInfo": {"hasNextPage": end < matching.len(),
            "endCursor": slice.last().map(|_| format!("cursor:{}", end - 1))},
        "edges": slice.iter().enumerate().map(|(i, (_, n))| json!({
            "cursor": format!("cursor:{}", start + i), "node": project(root, document, n)})).collect::<Vec<_>>(),
    })
}

fn start_bulk(state: &mut Inner, variables: &Value) -> Value {
    let query = variables["query"].as_str().unwrap_or("").to_string();
    if let Some(op) = state.operations.last()
        && op.started.elapsed() < state.config.bulk_duration
    {
        return json!({"bulkOperationRunQuery": {"bulkOperation": null, "userErrors": [{
            "field": null, "code": "OPERATION_IN_PROGRESS",
            "message": format!("A bulk query operation for this app and shop is already in progress: gid://shopify/BulkOperation/{}.", op.id)}]}});
    }
    let root = root_field(&query).to_string();
    let Some(nodes) = nodes_of(&state.store, &root) else {
        return json!({"bulkOperationRunQuery": {"bulkOperation": null, "userErrors": [{
            "field": ["query"], "code": "INVALID", "message": format!("Invalid bulk query: Field '{root}' doesn't exist on type 'QueryRoot'")}]}});
    };
    let mut lines = Vec::new();
    for node in nodes {
        store::bulk_lines(&project(&root, &query, node), &mut lines);
    }
    let id = state.operations.len() as u64 + 1;
    state.operations.push(Operation {
        id,
        query,
        started: Instant::now(),
        roots: nodes.len(),
        lines,
    });
    json!({"bulkOperationRunQuery": {"bulkOperation": {"id": format!("gid://shopify/BulkOperation/{id}"),
        "status": "CREATED"}, "userErrors": []}})
}

fn operation_status(state: &mut Inner, gid: &str) -> Value {
    let Some(op) = gid
        .rsplit('/')
        .next()
        .and_then(|id| id.parse::<u64>().ok())
        .and_then(|id| state.operations.iter().find(|op| op.id == id))
    else {
        return Value::Null;
    };
    let done = op.started.elapsed() >= state.config.bulk_duration;
    if !done {
        state.running_polls += 1;
    }
    json!({
        "id": gid, "status": if done { "COMPLETED" } else { "RUNNING" }, "errorCode": null,
        "objectCount": (if done { op.lines.len() } else { op.lines.len() / 2 }).to_string(),
        "rootObjectCount": op.roots.to_string(),
        "url": (done && !op.lines.is_empty()).then(|| format!("http://{}/bulk/{}.jsonl", state.address, op.id)),
    })
}

async fn bulk_result(State(state): State<Shared>, UrlPath(file): UrlPath<String>) -> Response {
    let state = state.lock().expect("replay state");
    let op = file
        .strip_suffix(".jsonl")
        .and_then(|id| id.parse::<u64>().ok())
        .and_then(|id| state.operations.iter().find(|op| op.id == id));
    match op {
        Some(op) => {
            let mut text = String::new();
            for line in &op.lines {
                text.push_str(&line.to_string());
                text.push('\n');
            }
            ([("Content-Type", "application/jsonl")], text).into_response()
        }
        None => (StatusCode::NOT_FOUND, "NoSuchKey").into_response(),
    }
}
