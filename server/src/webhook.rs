//! `POST /webhooks/shopify`: Shopify's deliveries, verified and durably acknowledged.
//!
//! A delivery is checked in this order, each failure with its own stable code: the
//! headers it must carry (400 `missing_header`; both the `X-Shopify-*` names and the newer
//! un-prefixed `shopify-*` ones, any case), its signature (401 `invalid_hmac`: base64
//! HMAC-SHA256 of the raw body with the app's client secret, or the previous one during a
//! rotation, compared in constant time), and its shop (401 `unknown_shop`).
//!
//! Then the [`Acknowledger`] makes it durable before the 200 goes out: one thread owns the
//! webhook store and commits every delivery that arrived while the previous commit was
//! being fsync'd, together, in one transaction (group commit). In that transaction a
//! delivery's key (shop, topic, event id) is recorded, and only a first sighting is queued
//! in the outbox: Shopify's retries of a delivery we already have are acknowledged and
//! dropped. The applier ([`crate::record`]) takes it from the outbox to the lake.
//!
//! That thread is the webhook store's only writer, so an acknowledgement never waits for
//! a lock: it also forgets the entries the applier has put in the lake and checkpoints the
//! WAL, both in small steps between groups, after the previous group's replies went out.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::{Json, response::IntoResponse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use pipeline::webhook::{Delivery, triggered_at};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;
use tokio::sync::oneshot;

use crate::AppState;
use crate::error::{AppError, ServerError};
use crate::store::{self, Store};

/// Largest delivery accepted: an order with hundreds of line items stays well below it.
pub const WEBHOOK_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Most deliveries committed in one transaction.
const GROUP_LIMIT: usize = 1024;
/// A group commit slower than this is logged: a fifth of Shopify's delivery timeout.
const SLOW_GROUP_COMMIT: Duration = Duration::from_secs(1);
/// Outbox rows written or forgotten between two WAL checkpoints: about SQLite's own
/// default of 1,000 pages, since a delivery is about a page.
const CHECKPOINT_AFTER_ROWS: usize = 1000;
/// How long the committing thread sleeps with nothing to do before it looks again for
/// entries to forget.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How long a delivery key is remembered: Shopify retries for 4 hours.
const REMEMBER_FOR: Duration = Duration::from_secs(24 * 3600);

/// Whether `header` is the base64 HMAC-SHA256 of `body` under `secret`. Whitespace around
/// the header is ignored (Ruby's encoder appends a newline); the comparison is constant
/// time.
pub fn signature_valid(secret: &str, body: &[u8], header: &str) -> bool {
    let Ok(claimed) = STANDARD.decode(header.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&claimed).is_ok()
}

/// The base64 HMAC-SHA256 Shopify would send for `body` (for replays and tests).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// A Shopify header by its suffix, in either naming scheme.
fn shopify_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(format!("x-shopify-{name}"))
        .or_else(|| headers.get(format!("shopify-{name}")))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn missing(name: &str) -> AppError {
    AppError::bad_request(
        "missing_header",
        format!("the delivery has no X-Shopify-{name} header"),
    )
}

/// Checks a delivery's headers, signature and shop; returns it ready to acknowledge.
pub fn verify(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    received_at: i64,
) -> Result<Delivery, AppError> {
    let hmac = shopify_header(headers, "hmac-sha256").ok_or_else(|| missing("Hmac-Sha256"))?;
    let topic = shopify_header(headers, "topic").ok_or_else(|| missing("Topic"))?;
    let domain = shopify_header(headers, "shop-domain").ok_or_else(|| missing("Shop-Domain"))?;
    let webhook_id = shopify_header(headers, "webhook-id");
    let event_id = shopify_header(headers, "event-id")
        .or(webhook_id)
        .ok_or_else(|| missing("Webhook-Id"))?;
    let config = &state.settings().config;
    let signed = signature_valid(&config.shopify_client_secret, body, hmac)
        || (!config.shopify_previous_client_secret.is_empty()
            && signature_valid(&config.shopify_previous_client_secret, body, hmac));
    if !signed {
        return Err(AppError::unauthorized(
            "invalid_hmac",
            "the X-Shopify-Hmac-Sha256 signature does not match the body",
        ));
    }
    let shop = state
        .snapshot()
        .shop(domain)
        .map(|s| s.id.clone())
        .ok_or_else(|| {
            AppError::unauthorized(
                "unknown_shop",
                format!("no shop {domain:?} is installed here"),
            )
        })?;
    let body = String::from_utf8(body.to_vec())
        .map_err(|_| AppError::bad_request("invalid_utf8", "the body is not valid UTF-8"))?;
    let api_version = shopify_header(headers, "api-version").map(String::from);
    let triggered = shopify_header(headers, "triggered-at").and_then(triggered_at);
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_string(), Value::from(v)))
        })
        .collect();
    Ok(Delivery {
        shop_id: shop,
        shop_domain: domain.to_string(),
        topic: topic.to_string(),
        event_id: event_id.to_string(),
        webhook_id: webhook_id.map(String::from),
        api_version,
        triggered_at: triggered,
        received_at,
        headers: Value::Object(headers),
        body,
    })
}

/// Whether a delivery was new or a repeat of one already acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    Accepted,
    Duplicate,
}

/// A delivery on its way to the committing thread: its key and its `webhook_events` row,
/// serialized by the request's own task.
#[derive(Debug)]
struct Waiting {
    shop_id: String,
    topic: String,
    event_id: String,
    received_at: i64,
    row: String,
    reply: oneshot::Sender<Result<Ack, String>>,
}

/// Makes deliveries durable, in groups (see the module doc).
#[derive(Debug, Clone)]
pub struct Acknowledger {
    queue: Sender<Waiting>,
    /// The last outbox entry the lake holds (the applier's word); the committing thread
    /// forgets up to it.
    applied: Arc<AtomicI64>,
}

impl Acknowledger {
    /// Starts the committing thread over `store` (the webhook store).
    pub fn start(store: Arc<Store>) -> Result<Self, ServerError> {
        let (queue, waiting) = channel();
        let applied = Arc::new(AtomicI64::new(0));
        let thread_applied = applied.clone();
        std::thread::Builder::new()
            .name("webhook-ack".into())
            .spawn(move || commit_groups(&store, &waiting, &thread_applied))?;
        Ok(Self { queue, applied })
    }

    /// The outbox entries up to and including `seq` are in the lake: they may be forgotten.
    pub fn applied_through(&self, seq: i64) {
        self.applied.fetch_max(seq, Ordering::Release);
    }

    /// Returns once the delivery is durable (or known already).
    pub async fn acknowledge(&self, delivery: Delivery) -> Result<Ack, ServerError> {
        let (reply, done) = oneshot::channel();
        let row = delivery.event_json();
        self.queue
            .send(Waiting {
                shop_id: delivery.shop_id,
                topic: delivery.topic,
                event_id: delivery.event_id,
                received_at: delivery.received_at,
                row,
                reply,
            })
            .map_err(|_| ServerError::NotReady("the webhook store has stopped".into()))?;
        done.await
            .map_err(|_| ServerError::NotReady("the webhook store has stopped".into()))?
            .map_err(ServerError::NotReady)
    }
}

fn commit_groups(store: &Store, waiting: &Receiver<Waiting>, applied: &AtomicI64) {
    let mut groups: u64 = 0;
    // Entries up to here are forgotten; rows written or forgotten since the last checkpoint.
    let mut forgotten_through: i64 = 0;
    let mut unsaved_rows: usize = 0;
    loop {
        let backlog = applied.load(Ordering::Acquire) > forgotten_through;
        let first = match waiting.recv_timeout(if backlog { Duration::ZERO } else { IDLE_WAIT }) {
            Ok(first) => Some(first),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let idle = first.is_none();
        if let Some(first) = first {
            groups += 1;
            unsaved_rows += commit_group(store, waiting, first, groups);
        }
        // Housekeeping, one small step at a time, only once the group's replies are out.
        let through = applied.load(Ordering::Acquire);
        if through > forgotten_through {
            match store.forget_outbox(through, store::FORGET_AT_ONCE) {
                Ok(forgotten) => {
                    unsaved_rows += forgotten;
                    if forgotten < store::FORGET_AT_ONCE {
                        forgotten_through = through;
                    }
                }
                Err(error) => {
                    // Tried again when the applier reports its next commit.
                    forgotten_through = through;
                    tracing::warn!(%error, "could not forget applied webhook entries");
                }
            }
        }
        let idle = idle && through <= forgotten_through;
        if unsaved_rows >= CHECKPOINT_AFTER_ROWS || (idle && unsaved_rows > 0) {
            match store.checkpoint() {
                Ok(()) => unsaved_rows = 0,
                Err(error) => tracing::warn!(%error, "could not checkpoint the webhook store"),
            }
        }
    }
}
/// Commits `first` and whatever else is waiting, up to [`GROUP_LIMIT`], in one transaction
/// (one fsync), then replies to each; returns how many outbox rows it wrote.
fn commit_group(store: &Store, waiting: &Receiver<Waiting>, first: Waiting, groups: u64) -> usize {
    let mut group = vec![first];
    while group.len() < GROUP_LIMIT {
        match waiting.try_recv() {
            Ok(next) => group.push(next),
            Err(_) => break,
        }
    }
    let started = std::time::Instant::now();
    let result = store.transaction(|tx| {
        let mut acks = Vec::with_capacity(group.len());
        for delivery in &group {
            let first = store::first_sighting(
                tx,
                &delivery.shop_id,
                &delivery.topic,
                &delivery.event_id,
                delivery.received_at,
            )?;
            if first {
                store::enqueue_serialized(tx, "webhook_events", &delivery.row)?;
                acks.push(Ack::Accepted);
            } else {
                acks.push(Ack::Duplicate);
            }
        }
        // Now and then, forget keys older than any retry.
        if groups.is_multiple_of(1000) {
            let horizon =
                group[0].received_at - i64::try_from(REMEMBER_FOR.as_micros()).unwrap_or(i64::MAX);
            store::forget_sightings(tx, horizon)?;
        }
        Ok::<_, ServerError>(acks)
    });
    let took = started.elapsed();
    if took > SLOW_GROUP_COMMIT {
        tracing::warn!(
            deliveries = group.len(),
            ?took,
            "slow webhook group commit: Shopify waits for it (5 s timeout); is the disk's fsync slow?"
        );
    }
    match result {
        Ok(acks) => {
            let written = acks.iter().filter(|a| **a == Ack::Accepted).count();
            for (delivery, ack) in group.into_iter().zip(acks) {
                let _ = delivery.reply.send(Ok(ack));
            }
            written
        }
        Err(error) => {
            tracing::error!(%error, "could not store webhook deliveries; they are refused");
            for delivery in group {
                let _ = delivery.reply.send(Err(error.to_string()));
            }
            0
        }
    }
}

/// The handler: verify, make durable, then 200.
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, AppError> {
    let body =
        body.map_err(|rejection| AppError::unreadable_body(&rejection, WEBHOOK_BODY_LIMIT))?;
    let received_at = chrono::Utc::now().timestamp_micros();
    let delivery = verify(&state, &headers, &body, received_at)?;
    let topic = delivery.topic.clone();
    let ack = state.acknowledger().acknowledge(delivery).await?;
    state.metrics().webhook(&topic, ack == Ack::Duplicate);
    Ok((
        StatusCode::OK,
        Json(json!({"status": match ack {
            Ack::Accepted => "accepted",
            Ack::Duplicate => "duplicate",
        }})),
    ))
}

/// What `supportlake webhooks replay` did.
#[derive(Debug, Default)]
pub struct Replayed {
    pub accepted: usize,
    pub duplicates: usize,
    /// `(file, error code, message)` of each delivery refused.
    pub refused: Vec<(String, &'static str, String)>,
    /// Outbox entries applied to the lake by this run (`None`: a running server applies them).
    pub applied: Option<usize>,
}

/// Feeds a directory of captured deliveries through the same checks, store and applier as
/// live ones, in file-name order. A file is either a capture, `{"headers": {...}, "body":
/// "<raw body>"}` (signature checked), or a bare payload named `<resource>__<action>.json`
/// as Shopify documents them (`products__update.json`): trusted local input for a
/// backfill, which needs `shop` (its domain) and is deduplicated by its content.
pub async fn replay(
    state: &AppState,
    dir: &std::path::Path,
    shop: Option<&str>,
) -> Result<Replayed, ServerError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut replayed = Replayed::default();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path)?;
        let (headers, body) = match capture(
            &text,
            &name,
            shop,
            &state.settings().config.shopify_client_secret,
        ) {
            Ok(parts) => parts,
            Err(message) => {
                replayed.refused.push((name, "unreadable_capture", message));
                continue;
            }
        };
        let received_at = chrono::Utc::now().timestamp_micros();
        match verify(state, &headers, &Bytes::from(body), received_at) {
            Ok(delivery) => match state.acknowledger().acknowledge(delivery).await? {
                Ack::Accepted => replayed.accepted += 1,
                Ack::Duplicate => replayed.duplicates += 1,
            },
            Err(refusal) => replayed.refused.push((name, refusal.code, refusal.message)),
        }
    }
    match state.applier() {
        Ok(applier) => {
            let mut entries = 0;
            let mut changed = std::collections::BTreeSet::new();
            for outbox in [applier.chat(), applier.webhooks()] {
                let applied = applier.drain(&outbox).await?;
                entries += applied.entries;
                changed.extend(applied.changed);
            }
            applier.follow(&changed).await;
            replayed.applied = Some(entries);
        }
        Err(ServerError::NotReady(reason)) => {
            tracing::info!(%reason, "leaving the deliveries to the running server's applier");
        }
        Err(other) => return Err(other),
    }
    Ok(replayed)
}

/// The headers and raw body of one replay file (see [`replay`]). A bare payload is signed
/// here with the configured secret: it passes the same checks as a live delivery.
fn capture(
    text: &str,
    name: &str,
    shop: Option<&str>,
    secret: &str,
) -> Result<(HeaderMap, String), String> {
    let parsed: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut headers = HeaderMap::new();
    let mut set = |name: &str, value: &str| -> Result<(), String> {
        let name = axum::http::HeaderName::try_from(name.to_ascii_lowercase())
            .map_err(|e| e.to_string())?;
        let value = axum::http::HeaderValue::try_from(value).map_err(|e| e.to_string())?;
        headers.insert(name, value);
        Ok(())
    };
    if let (Some(recorded), Some(body)) = (
        parsed.get("headers").and_then(Value::as_object),
        parsed.get("body").and_then(Value::as_str),
    ) {
        for (name, value) in recorded {
            set(
                name,
                value
                    .as_str()
                    .ok_or_else(|| format!("header {name} is not a string"))?,
            )?;
        }
        return Ok((headers, body.to_string()));
    }
    let stem = name.trim_end_matches(".json");
    let (resource, action) = stem.split_once("__").ok_or_else(|| {
        "neither a capture ({\"headers\", \"body\"}) nor named <resource>__<action>.json"
            .to_string()
    })?;
    let shop = shop.ok_or("a bare payload needs --shop DOMAIN")?;
    let digest = hex::encode(&<Sha256 as sha2::Digest>::digest(text.as_bytes())[..12]);
    set("x-shopify-topic", &format!("{resource}/{action}"))?;
    set("x-shopify-shop-domain", shop)?;
    set("x-shopify-event-id", &format!("replay-{digest}"))?;
    set("x-shopify-hmac-sha256", &sign(secret, text.as_bytes()))?;
    Ok((headers, text.to_string()))
}

/// What `supportlake webhooks replay` prints: the counts, each refusal, who applies.
impl std::fmt::Display for Replayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} accepted, {} duplicates dropped, {} refused",
            self.accepted,
            self.duplicates,
            self.refused.len()
        )?;
        for (file, code, message) in &self.refused {
            write!(f, "\nrefused {file}: {code}: {message}")?;
        }
        match self.applied {
            Some(n) => write!(f, "\napplied {n} outbox entries to the lake"),
            None => write!(
                f,
                "\na running server applies them (it holds the applier lock)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shopify's own libraries' vectors (fixtures/shopify, see its MANIFEST).
    fn vectors() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/shopify/hmac_test_vectors.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn delivery(event_id: &str) -> Delivery {
        Delivery {
            shop_id: "shop-1".into(),
            shop_domain: "shop-1.myshopify.com".into(),
            topic: "products/update".into(),
            event_id: event_id.into(),
            webhook_id: None,
            api_version: None,
            triggered_at: None,
            received_at: 1,
            headers: json!({}),
            // About a page, as real deliveries are (see CHECKPOINT_AFTER_ROWS).
            body: format!(r#"{{"id": 1, "note": "{}"}}"#, "x".repeat(3000)),
        }
    }

    /// The acknowledger dedupes, and forgets exactly the entries the applier reports
    /// applied, by itself, while the outbox is read after the applier's position.
    #[tokio::test]
    async fn acknowledged_deliveries_wait_in_the_outbox_until_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_webhooks(dir.path()).unwrap());
        let acknowledger = Acknowledger::start(store.clone()).unwrap();
        for n in 0..1200 {
            let ack = acknowledger.acknowledge(delivery(&format!("e{n}"))).await;
            assert_eq!(ack.unwrap(), Ack::Accepted);
        }
        let again = acknowledger.acknowledge(delivery("e7")).await.unwrap();
        assert_eq!(again, Ack::Duplicate);
        assert_eq!(store.outbox_len().unwrap(), 1200);
        let entries = store.outbox(0, 10_000).unwrap();
        assert_eq!(entries.len(), 1200);
        assert_eq!(entries[0].row["event_id"], "e0");
        let applied = entries[1099].seq;
        assert_eq!(store.outbox(applied, 10_000).unwrap().len(), 100);

        acknowledger.applied_through(applied);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.outbox_len().unwrap() > 100 {
            assert!(
                std::time::Instant::now() < deadline,
                "entries not forgotten"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = store.outbox(0, 10_000).unwrap();
        assert_eq!(left.len(), 100);
        assert_eq!(left[0].seq, applied + 1);

        // SQLite's own checkpoint is off for this file; the acknowledger's, after more than
        // CHECKPOINT_AFTER_ROWS rows, has copied the pages into the database file.
        let database = dir.path().join("webhooks.sqlite");
        while std::fs::metadata(&database).unwrap().len() < 1_000_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was never checkpointed into {}",
                database.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn shopify_library_vectors_verify() {
        let vectors = vectors();
        let valid = vectors["webhook_valid"].as_array().unwrap();
        assert!(valid.len() >= 4);
        for v in valid {
            let secret = v["secret"].as_str().unwrap();
            let body = v["body"].as_str().unwrap().as_bytes();
            let header = v["expected_header"].as_str().unwrap();
            assert!(signature_valid(secret, body, header), "{}", v["id"]);
            assert_eq!(sign(secret, body), header, "{}", v["id"]);
            // Ruby sends the header with a trailing newline.
            assert!(signature_valid(secret, body, &format!("{header}\n")));
        }
    }

    #[test]
    fn every_negative_vector_is_rejected() {
        let vectors = vectors();
        let invalid = vectors["webhook_invalid"].as_array().unwrap();
        assert!(invalid.len() >= 6);
        for v in invalid {
            let secret = v["secret"].as_str().unwrap();
            let body = v["body"].as_str().unwrap().as_bytes();
            let header = v["header"].as_str().unwrap();
            assert!(!signature_valid(secret, body, header), "{}", v["id"]);
        }
    }

    #[test]
    fn signed_fixture_payloads_verify_over_their_exact_bytes() {
        let vectors = vectors();
        for v in vectors["derived_payload_vectors"].as_array().unwrap() {
            let file = v["file"].as_str().unwrap();
            let path = format!(
                "{}/../tests/fixtures/shopify/{file}",
                env!("CARGO_MANIFEST_DIR")
            );
            let body = std::fs::read(&path).unwrap();
            let header = v["expected_header"].as_str().unwrap();
            assert!(signature_valid("test_secret_key", &body, header), "{file}");
            let mut changed = body.clone();
            changed.push(b' ');
            assert!(
                !signature_valid("test_secret_key", &changed, header),
                "{file}"
            );
        }
    }
}
