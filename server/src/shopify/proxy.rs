//! A storefront request forwarded by Shopify's app proxy.
//!
//! The widget on a shop's own storefront calls `https://<shop>/apps/<prefix>/…`; Shopify
//! forwards it to the app's proxy URL (`https://<server>/proxy/…`), adding `shop`,
//! `logged_in_customer_id` (empty when nobody is signed in), `path_prefix`, `timestamp` and
//! `signature` to the query. The signature is, as Shopify documents it, the hex
//! HMAC-SHA256 under the app's client secret of every other parameter as `key=value`
//! (repeated keys' values joined by commas), sorted, and concatenated with no separator.
//!
//! What a verified request proves is narrow, and the server uses no more of it: the
//! request came through Shopify for **that** shop, and, when `logged_in_customer_id` is
//! set, that customer of **that** shop is signed in. Shopify strips cookies on the way, so
//! nothing else about the shopper arrives.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a request's `timestamp` may be from now, either way (Shopify's own libraries
/// allow 90 s for their signed query parameters).
pub const FRESH_SECONDS: i64 = 90;

/// What a verified proxy request proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxied {
    /// The shop the request came through (a `*.myshopify.com` domain).
    pub shop: String,
    /// The signed-in customer of that shop, if any.
    pub customer_id: Option<i64>,
}

/// Why a proxy request is refused, each with its stable code ([`ProxyError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "the request has no app proxy signature: call it through https://<shop>/apps/<prefix>/"
    )]
    Unsigned,
    #[error("the app proxy signature does not match the request's parameters")]
    BadSignature,
    #[error("the app proxy request is {0} s from now; at most {FRESH_SECONDS} s is accepted")]
    Stale(i64),
    #[error("the app proxy request names no valid shop or customer")]
    Malformed,
}

impl ProxyError {
    /// The stable code a client branches on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unsigned => "proxy_signature_required",
            Self::BadSignature => "invalid_proxy_signature",
            Self::Stale(_) => "stale_proxy_request",
            Self::Malformed => "invalid_proxy_request",
        }
    }
}

/// The message Shopify signs for the query string `query` (its `signature` left out).
fn signed_message(query: &str) -> (String, Option<String>) {
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    let mut signature = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key == "signature" {
            signature = Some(value.into_owned());
            continue;
        }
        match params.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => values.push(value.into_owned()),
            None => params.push((key.into_owned(), vec![value.into_owned()])),
        }
    }
    let mut pairs: Vec<String> = params
        .into_iter()
        .map(|(key, values)| format!("{key}={}", values.join(",")))
        .collect();
    pairs.sort();
    (pairs.concat(), signature)
}

/// The signature Shopify would send with `query` under `secret`.
#[cfg(test)]
pub fn sign(secret: &str, query: &str) -> String {
    let (message, _) = signed_message(query);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a forwarded request's query string against the app's client secrets (the
/// current one, and the previous one during a rotation) at `now` (unix seconds).
pub fn verify(query: &str, secrets: &[&str], now: i64) -> Result<Proxied, ProxyError> {
    let (message, signature) = signed_message(query);
    let signature = signature.ok_or(ProxyError::Unsigned)?;
    let claimed = hex::decode(signature.trim()).map_err(|_| ProxyError::BadSignature)?;
    let signed = secrets.iter().filter(|s| !s.is_empty()).any(|secret| {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        mac.update(message.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&claimed).is_ok()
    });
    if !signed {
        return Err(ProxyError::BadSignature);
    }
    // The parameters Shopify sets must each come once: a page could add its own `shop` or
    // `logged_in_customer_id` to the URL, and a repeat would be signed along with Shopify's
    // (joined by a comma) while a reader of "the first one" took the page's.
    let param = |name: &str| {
        let mut values = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned());
        match (values.next(), values.next()) {
            (Some(value), None) => Ok(Some(value)),
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(ProxyError::Malformed),
        }
    };
    let (timestamp, shop, customer) = (
        param("timestamp")?,
        param("shop")?,
        param("logged_in_customer_id")?,
    );
    let timestamp: i64 = timestamp
        .and_then(|t| t.parse().ok())
        .ok_or(ProxyError::Malformed)?;
    let skew = now - timestamp;
    if skew.abs() > FRESH_SECONDS {
        return Err(ProxyError::Stale(skew));
    }
    let shop = shop
        .and_then(|s| crate::state::shops::shop_domain(&s))
        .ok_or(ProxyError::Malformed)?;
    let customer_id = match customer.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) => Some(id.parse().map_err(|_| ProxyError::Malformed)?),
    };
    Ok(Proxied { shop, customer_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shopify's documented example ("Authenticate app proxies"), with the shop the
    /// published signature was computed for.
    const DOCUMENTED: &str = "extra=1&extra=2&shop=shop-name.myshopify.com&logged_in_customer_id=1&path_prefix=%2Fapps%2Fawesome_reviews&timestamp=1317327555&signature=4c68c8624d737112c91818c11017d24d334b524cb5c2b8ba08daa056f7395ddb";
    const SECRET: &str = "hush";
    const THEN: i64 = 1_317_327_555;

    #[test]
    fn the_documented_example_verifies() {
        assert_eq!(
            verify(DOCUMENTED, &[SECRET], THEN),
            Ok(Proxied {
                shop: "shop-name.myshopify.com".into(),
                customer_id: Some(1),
            })
        );
        let unsigned = DOCUMENTED.split("&signature").next().unwrap();
        assert_eq!(
            sign(SECRET, unsigned),
            "4c68c8624d737112c91818c11017d24d334b524cb5c2b8ba08daa056f7395ddb"
        );
        // The previous secret during a rotation.
        assert!(verify(DOCUMENTED, &["new-secret", SECRET], THEN).is_ok());
    }

    #[test]
    fn altered_stale_or_foreign_requests_are_refused_with_their_codes() {
        let cases = [
            (
                DOCUMENTED.replace("logged_in_customer_id=1", "logged_in_customer_id=2"),
                THEN,
                SECRET,
                "invalid_proxy_signature",
            ),
            (
                DOCUMENTED.replace("extra=2", "extra=3"),
                THEN,
                SECRET,
                "invalid_proxy_signature",
            ),
            (
                DOCUMENTED.replace("shop-name", "other-shop"),
                THEN,
                SECRET,
                "invalid_proxy_signature",
            ),
            (
                DOCUMENTED.into(),
                THEN,
                "another-apps-secret",
                "invalid_proxy_signature",
            ),
            (
                DOCUMENTED.into(),
                THEN + FRESH_SECONDS + 1,
                SECRET,
                "stale_proxy_request",
            ),
            (
                DOCUMENTED.into(),
                THEN - FRESH_SECONDS - 1,
                SECRET,
                "stale_proxy_request",
            ),
            (
                DOCUMENTED.split("&signature").next().unwrap().into(),
                THEN,
                SECRET,
                "proxy_signature_required",
            ),
        ];
        for (query, now, secret, code) in cases {
            let got = verify(&query, &[secret], now).map_err(|e| e.code());
            assert_eq!(got, Err(code), "{query} at {now}");
        }
        assert_eq!(
            verify(DOCUMENTED, &[""], THEN).map_err(|e| e.code()),
            Err("invalid_proxy_signature")
        );
    }

    #[test]
    fn a_signed_request_without_a_customer_proves_only_the_shop() {
        let query = "shop=summit-supply.myshopify.com&logged_in_customer_id=&path_prefix=%2Fapps%2Fsupportlake&timestamp=1700000000";
        let signed = format!("{query}&signature={}", sign("s", query));
        assert_eq!(
            verify(&signed, &["s"], 1_700_000_000),
            Ok(Proxied {
                shop: "summit-supply.myshopify.com".into(),
                customer_id: None,
            })
        );
        // A page's own `shop` or customer beside Shopify's: refused, signed or not.
        for extra in [
            "shop=ridgeline-outfitters.myshopify.com",
            "logged_in_customer_id=7",
        ] {
            let query = format!(
                "{extra}&shop=summit-supply.myshopify.com&logged_in_customer_id=&timestamp=1700000000"
            );
            let signed = format!("{query}&signature={}", sign("s", &query));
            assert_eq!(
                verify(&signed, &["s"], 1_700_000_000).map_err(|e| e.code()),
                Err("invalid_proxy_request"),
                "{extra}"
            );
        }
        // A signed but non-Shopify shop domain is still refused.
        let query = "shop=evil.example.com&timestamp=1700000000";
        let signed = format!("{query}&signature={}", sign("s", query));
        assert_eq!(
            verify(&signed, &["s"], 1_700_000_000).map_err(|e| e.code()),
            Err("invalid_proxy_request")
        );
    }
}
