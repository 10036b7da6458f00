//! `supportlake webhooks replay`: captured deliveries fed through the same checks,
//! acknowledger and applier as live ones, without a server (and without its embedding
//! model: one is loaded only if an index update needs it).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderMap;
use pipeline::{Config, Lake};
use serde_json::Value;
use sha2::Sha256;

use crate::error::ServerError;
use crate::lake_writer::acknowledger::{Ack, Acknowledger};
use crate::lake_writer::applier::{Applier, IndexFollow, Model, Outbox};
use crate::shopify::webhook::{sign, verify};
use crate::state::shops::ShopRegistry;
use crate::state::{ChatStore, WebhookStore};

/// What `supportlake webhooks replay` did.
#[derive(Debug, Default)]
pub struct Replayed {
    pub accepted: usize,
    pub duplicates: usize,
    /// `(file, error code, message)` of each delivery refused.
    pub refused: Vec<(String, &'static str, String)>,
    /// Outbox entries applied to the lake by this run, and what that did to the index
    /// (`None`: a running server applies them).
    pub applied: Option<(usize, IndexFollow)>,
}

/// Feeds a directory of captured deliveries through the same checks, store and applier as
/// live ones, in file-name order. A file is either a capture, `{"headers": {...}, "body":
/// "<raw body>"}` (signature checked), or a bare payload named `<resource>__<action>.json`
/// as Shopify documents them (`products__update.json`): trusted local input for a
/// backfill, which needs `shop` (its domain) and is deduplicated by its content.
pub async fn replay(
    config: &Config,
    dir: &Path,
    shop: Option<&str>,
) -> Result<Replayed, ServerError> {
    let lake = Lake::open(config.lake_url()?)?;
    let chat = Arc::new(ChatStore::open(&config.state_dir)?);
    let webhooks = Arc::new(WebhookStore::open(&config.state_dir)?);
    let acknowledger = Acknowledger::start(webhooks.clone())?;
    let shops = Arc::new(ShopRegistry::open_configured(config)?);
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
        let (headers, body) = match capture(&text, &name, shop, &config.shopify_client_secret) {
            Ok(parts) => parts,
            Err(message) => {
                replayed.refused.push((name, "unreadable_capture", message));
                continue;
            }
        };
        let received_at = chrono::Utc::now().timestamp_micros();
        match verify(config, &shops, &headers, &Bytes::from(body), received_at) {
            Ok(delivery) => match acknowledger.acknowledge(delivery).await? {
                Ack::Accepted => replayed.accepted += 1,
                Ack::Duplicate => replayed.duplicates += 1,
            },
            Err(refusal) => replayed
                .refused
                .push((name, refusal.code(), refusal.to_string())),
        }
    }
    let model = Model::OnDemand(config.assets_dir.clone());
    match Applier::new(config, lake, chat, webhooks, acknowledger, shops, model) {
        Ok(applier) => {
            let mut entries = 0;
            let mut changed = BTreeSet::new();
            for outbox in [Outbox::Chat, Outbox::Webhooks] {
                let applied = applier.drain(outbox).await?;
                entries += applied.entries;
                changed.extend(applied.changed);
            }
            let index = applier.follow(&changed).await;
            replayed.applied = Some((entries, index));
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
        match &self.applied {
            Some((n, index)) => write!(f, "\napplied {n} outbox entries to the lake; {index}"),
            None => write!(
                f,
                "\na running server applies them (it holds the applier lock)"
            ),
        }
    }
}
