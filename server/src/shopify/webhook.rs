//! A webhook delivery as Shopify signs it: the headers it must carry (both the
//! `X-Shopify-*` names and the newer un-prefixed `shopify-*` ones, any case), its
//! signature (base64 HMAC-SHA256 of the raw body with the app's client secret, or the
//! previous one during a rotation, compared in constant time), and its shop (one in the
//! shop registry, installed or since uninstalled), checked in that order. The live endpoint (`http::webhooks`) and `webhooks replay` both call
//! [`verify`], so a replayed capture passes exactly the checks a live delivery does.

use axum::body::Bytes;
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use pipeline::Config;
use pipeline::sources::webhooks::{Delivery, triggered_at};
use serde_json::Value;
use sha2::Sha256;

use crate::state::shops::ShopRegistry;

/// Why a delivery is refused, each with its stable code ([`DeliveryError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the delivery has no X-Shopify-{0} header")]
    MissingHeader(&'static str),
    #[error("the X-Shopify-Hmac-Sha256 signature does not match the body")]
    InvalidHmac,
    #[error("no shop {0:?} has installed this app here")]
    UnknownShop(String),
    #[error("the body is not valid UTF-8")]
    InvalidUtf8,
}

impl DeliveryError {
    /// The stable code a client or an operator branches on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::InvalidHmac => "invalid_hmac",
            Self::UnknownShop(_) => "unknown_shop",
            Self::InvalidUtf8 => "invalid_utf8",
        }
    }
}

/// Whether `header` is the base64 HMAC-SHA256 of `body` under `secret`. Whitespace around
/// the header is ignored (Ruby's encoder appends a newline); the comparison is constant
/// time.
pub fn signature_valid(secret: &str, body: &[u8], header: &str) -> bool {
    // An empty secret would let anyone sign: it verifies nothing.
    if secret.is_empty() {
        return false;
    }
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

/// Checks a delivery's headers, signature and shop; returns it ready to acknowledge.
pub fn verify(
    config: &Config,
    shops: &ShopRegistry,
    headers: &HeaderMap,
    body: &Bytes,
    received_at: i64,
) -> Result<Delivery, DeliveryError> {
    let hmac = shopify_header(headers, "hmac-sha256")
        .ok_or(DeliveryError::MissingHeader("Hmac-Sha256"))?;
    let topic = shopify_header(headers, "topic").ok_or(DeliveryError::MissingHeader("Topic"))?;
    let domain = shopify_header(headers, "shop-domain")
        .ok_or(DeliveryError::MissingHeader("Shop-Domain"))?;
    let webhook_id = shopify_header(headers, "webhook-id");
    let event_id = shopify_header(headers, "event-id")
        .or(webhook_id)
        .ok_or(DeliveryError::MissingHeader("Webhook-Id"))?;
    let signed = signature_valid(&config.shopify_client_secret, body, hmac)
        || (!config.shopify_previous_client_secret.is_empty()
            && signature_valid(&config.shopify_previous_client_secret, body, hmac));
    if !signed {
        return Err(DeliveryError::InvalidHmac);
    }
    // Installed or uninstalled: after an uninstall Shopify still sends `shop/redact`.
    let shop = shops
        .get(domain)
        .map(|s| s.domain)
        .ok_or_else(|| DeliveryError::UnknownShop(domain.to_string()))?;
    let body = String::from_utf8(body.to_vec()).map_err(|_| DeliveryError::InvalidUtf8)?;
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
        assert!(
            !signature_valid("", b"{}", &sign("", b"{}")),
            "an empty secret signs nothing"
        );
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
