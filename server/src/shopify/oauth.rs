//! Installing the app on a shop with OAuth, and keeping its expiring token fresh.
//!
//! 1. `GET /auth?shop=<shop>.myshopify.com` ([`begin`]): the shop must be a
//!    `*.myshopify.com` domain; a random state nonce goes into a cookie signed with the
//!    client secret (scoped to the callback path, 10 minutes, `HttpOnly`, `SameSite=Lax`),
//!    and the merchant is sent to the shop's `/admin/oauth/authorize` with the app's client
//!    id, scopes, redirect URL and the nonce.
//! 2. `GET /auth/callback?code&hmac&host&shop&state&timestamp` ([`callback`]): the query's
//!    HMAC (hex, over every other parameter sorted and URL-encoded, under the client secret
//!    or the previous one), its timestamp (90 s), the shop, and the state against the
//!    cookie; then the code is traded for an expiring offline token and its refresh token
//!    ([`pipeline::sources::shopify_api::oauth`]), which are sealed in the shop registry.
//! 3. [`fresh_token`]: before any Admin API call, and every minute for every installed shop
//!    (the server's token keeper), an access token within [`REFRESH_AHEAD_SECONDS`] of its
//!    expiry is refreshed. The registry's revision check makes two refreshes racing safe:
//!    the loser keeps the winner's newer pair instead of overwriting it.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use pipeline::Config;
use pipeline::sources::shopify_api::oauth::{self, App, Grant};
use sha2::Sha256;

use crate::error::ServerError;
use crate::state::shops::{Credentials, ShopKind, ShopRecord, ShopRegistry, generate_secret};

/// How far a callback's `timestamp` may be from now (Shopify's libraries allow 90 s).
pub const FRESH_SECONDS: i64 = 90;
/// An access token this close to its expiry is refreshed before it is used (Shopify's own
/// app library refreshes within five minutes).
pub const REFRESH_AHEAD_SECONDS: i64 = 5 * 60;
/// The state cookie's name and lifetime.
pub const STATE_COOKIE: &str = "supportlake_oauth_state";
pub const STATE_SECONDS: i64 = 600;

/// Why an install callback is refused, each with its stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    #[error("{0:?} is not a shop's *.myshopify.com domain")]
    InvalidShop(String),
    #[error("the callback's hmac does not match its parameters")]
    InvalidHmac,
    #[error("the callback is {0} s from now; at most {FRESH_SECONDS} s is accepted")]
    Stale(i64),
    #[error("the callback's state is not the one this browser was sent with: start again at /auth")]
    InvalidState,
    #[error("the callback carries no authorization code")]
    MissingCode,
    #[error("the app is not configured for installs: {0} is empty")]
    NotConfigured(&'static str),
}

impl InstallError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidShop(_) => "invalid_shop",
            Self::InvalidHmac => "invalid_hmac",
            Self::Stale(_) => "stale_oauth_callback",
            Self::InvalidState => "invalid_oauth_state",
            Self::MissingCode => "missing_code",
            Self::NotConfigured(_) => "install_not_configured",
        }
    }
}

fn mac(secret: &str) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key")
}

/// The message Shopify signs for a callback query: every parameter but `hmac` and
/// `signature`, sorted by name, each `name=value` URL-encoded as a browser's
/// `URLSearchParams` would (spaces as `%20`), joined by `&`.
fn callback_message(query: &str) -> (String, Option<String>) {
    let mut hmac = None;
    let mut params: Vec<(String, String)> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "hmac" => hmac = Some(value.into_owned()),
            "signature" => {}
            _ => params.push((key.into_owned(), value.into_owned())),
        }
    }
    params.sort();
    let encode = |text: &str| {
        url::form_urlencoded::byte_serialize(text.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    let message = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    (message, hmac)
}

/// Whether the callback `query` is signed by Shopify under one of `secrets`.
pub fn callback_signed(query: &str, secrets: &[&str]) -> bool {
    let (message, claimed) = callback_message(query);
    let Some(claimed) = claimed.and_then(|h| hex::decode(h.trim()).ok()) else {
        return false;
    };
    secrets.iter().filter(|s| !s.is_empty()).any(|secret| {
        let mut mac = mac(secret);
        mac.update(message.as_bytes());
        mac.verify_slice(&claimed).is_ok()
    })
}

/// The signed state cookie's value for `shop` and `nonce`: `shop.nonce.hex(hmac)`.
pub fn state_cookie(secret: &str, shop: &str, nonce: &str) -> String {
    let mut mac = mac(secret);
    mac.update(format!("oauth-state:{shop}:{nonce}").as_bytes());
    format!(
        "{shop}.{nonce}.{}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Whether `cookie` is this app's state for `shop` and `nonce`.
fn state_matches(secret: &str, cookie: &str, shop: &str, nonce: &str) -> bool {
    let Some((signed, tag)) = cookie.rsplit_once('.') else {
        return false;
    };
    let Ok(tag) = hex::decode(tag) else {
        return false;
    };
    let mut mac = mac(secret);
    mac.update(format!("oauth-state:{shop}:{nonce}").as_bytes());
    signed == format!("{shop}.{nonce}") && mac.verify_slice(&tag).is_ok()
}

/// What `GET /auth` sends the merchant to, and the cookie it sets.
#[derive(Debug)]
pub struct Begun {
    pub authorize_url: String,
    pub cookie: String,
}

fn required<'a>(value: &'a str, setting: &'static str) -> Result<&'a str, InstallError> {
    if value.trim().is_empty() {
        Err(InstallError::NotConfigured(setting))
    } else {
        Ok(value)
    }
}

/// Step 1 of the module doc.
pub fn begin(config: &Config, shop: &str) -> Result<Begun, InstallError> {
    let domain = crate::state::shops::shop_domain(shop)
        .ok_or_else(|| InstallError::InvalidShop(shop.to_string()))?;
    let client_id = required(&config.shopify_client_id, "shopify_client_id")?;
    let app_url = required(&config.app_url, "app_url")?;
    let nonce = generate_secret();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("scope", &config.shopify_scopes)
        .append_pair(
            "redirect_uri",
            &format!("{}/auth/callback", app_url.trim_end_matches('/')),
        )
        .append_pair("state", &nonce)
        // Empty: an offline token, the app's own, not one tied to the merchant's login.
        .append_pair("grant_options[]", "")
        .finish();
    Ok(Begun {
        authorize_url: format!(
            "{}/admin/oauth/authorize?{query}",
            config.admin_base_url(&domain).trim_end_matches('/')
        ),
        cookie: state_cookie(&config.shopify_client_secret, &domain, &nonce),
    })
}

/// The checked parts of a callback.
#[derive(Debug)]
pub struct Callback {
    pub shop: String,
    pub code: String,
}

/// Step 2's checks (everything but the code exchange).
pub fn check_callback(
    config: &Config,
    query: &str,
    cookie: Option<&str>,
    now: i64,
) -> Result<Callback, InstallError> {
    if !callback_signed(
        query,
        &[
            &config.shopify_client_secret,
            &config.shopify_previous_client_secret,
        ],
    ) {
        return Err(InstallError::InvalidHmac);
    }
    let param = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let timestamp: i64 = param("timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or(InstallError::InvalidHmac)?;
    if (now - timestamp).abs() > FRESH_SECONDS {
        return Err(InstallError::Stale(now - timestamp));
    }
    let named = param("shop").unwrap_or_default();
    let shop = crate::state::shops::shop_domain(&named).ok_or(InstallError::InvalidShop(named))?;
    let nonce = param("state").unwrap_or_default();
    if !cookie.is_some_and(|c| state_matches(&config.shopify_client_secret, c, &shop, &nonce)) {
        return Err(InstallError::InvalidState);
    }
    let code = param("code")
        .filter(|c| !c.is_empty())
        .ok_or(InstallError::MissingCode)?;
    Ok(Callback { shop, code })
}

fn app(config: &Config) -> App<'_> {
    App {
        client_id: &config.shopify_client_id,
        client_secret: &config.shopify_client_secret,
    }
}

/// A grant as the registry keeps it, times made absolute from `now`.
fn credentials(grant: Grant, storefront_secret: String, now: DateTime<Utc>) -> Credentials {
    let at = |seconds: Option<i64>| seconds.map(|s| now.timestamp() + s);
    Credentials {
        storefront_secret,
        access_expires_at: at(grant.expires_in),
        refresh_expires_at: at(grant.refresh_token_expires_in),
        access_token: Some(grant.access_token),
        refresh_token: grant.refresh_token,
    }
}

/// Step 2's exchange: trades the code and installs the shop with the grant (keeping the
/// storefront secret of an earlier install, so the theme's setting stays valid).
pub async fn install(
    config: &Config,
    shops: &ShopRegistry,
    callback: &Callback,
    now: DateTime<Utc>,
) -> Result<ShopRecord, ServerError> {
    let grant = oauth::exchange_code(
        &config.admin_base_url(&callback.shop),
        app(config),
        &callback.code,
    )
    .await?;
    let scopes = grant
        .scope
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let secret = shops
        .get(&callback.shop)
        .map(|s| s.credentials.storefront_secret)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(generate_secret);
    shops.install(
        &callback.shop,
        ShopKind::Oauth,
        scopes,
        credentials(grant, secret, now),
        now,
    )
}

/// The shop's Admin access token, refreshed first when it expires within
/// five minutes (step 3 of the module doc). `None`: the shop has no token.
pub async fn fresh_token(
    config: &Config,
    shops: &ShopRegistry,
    shop: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, ServerError> {
    let Some(record) = shops.installed(shop) else {
        return Ok(None);
    };
    let current = record.credentials.clone();
    let due = current
        .access_expires_at
        .is_some_and(|at| at - now.timestamp() <= REFRESH_AHEAD_SECONDS);
    let (true, Some(refresh_token)) = (due, current.refresh_token.as_deref()) else {
        return Ok(current.access_token);
    };
    let grant = oauth::refresh(&config.admin_base_url(shop), app(config), refresh_token).await?;
    let renewed = credentials(grant, current.storefront_secret.clone(), now);
    if shops.replace_credentials(shop, record.revision, &renewed)? {
        tracing::info!(shop, "refreshed the shop's Admin access token");
        return Ok(renewed.access_token);
    }
    // Another refresh stored its pair first: its refresh token is the newer one, and ours,
    // from the same old token, must not replace it.
    Ok(shops
        .installed(shop)
        .and_then(|s| s.credentials.access_token))
}

/// Refreshes every installed shop's token that is due (the server's token keeper, every
/// minute); a failure is logged and retried at the next round.
pub async fn keep_fresh(config: &Config, shops: &ShopRegistry) {
    let due: Vec<String> = shops
        .all()
        .values()
        .filter(|s| s.is_installed() && s.credentials.refresh_token.is_some())
        .map(|s| s.domain.clone())
        .collect();
    for shop in due {
        if let Err(error) = fresh_token(config, shops, &shop, Utc::now()).await {
            tracing::warn!(%shop, %error, "refreshing the shop's Admin token failed; retrying next round");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shopify's documented callback examples, secret `hush` (see tests/fixtures/shopify).
    #[test]
    fn the_documented_callback_examples_verify() {
        let with_state = "code=0907a61c0c8d55e99db179b68161bc00&shop=some-shop.myshopify.com&state=0.6784241404160823&timestamp=1337178173&hmac=700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf";
        let without = "shop=some-shop.myshopify.com&code=0907a61c0c8d55e99db179b68161bc00&timestamp=1337178173&hmac=4712bf92ffc2917d15a2f5a273e39f0116667419aa4b6ac0b3baaf26fa3c4d20";
        assert!(callback_signed(with_state, &["hush"]));
        assert!(
            callback_signed(without, &["rotated", "hush"]),
            "the previous secret"
        );
        assert!(!callback_signed(with_state, &["other"]));
        assert!(!callback_signed(
            &with_state.replace("some-shop", "evil-shop"),
            &["hush"]
        ));
        assert!(
            !callback_signed(with_state, &[""]),
            "an empty secret signs nothing"
        );
        let vectors: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/shopify/hmac_test_vectors.json"
            ))
            .unwrap(),
        )
        .unwrap();
        for v in vectors["oauth_query_hmac_hex"].as_array().unwrap() {
            let params = v["params"].as_object().unwrap();
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter().map(|(k, v)| (k, v.as_str().unwrap())))
                .append_pair("hmac", v["expected_hmac_hex"].as_str().unwrap())
                .finish();
            assert!(
                callback_signed(&query, &[v["secret"].as_str().unwrap()]),
                "{}",
                v["id"]
            );
        }
    }

    #[test]
    fn the_state_cookie_binds_the_shop_and_the_nonce() {
        let cookie = state_cookie("secret", "a.myshopify.com", "n1");
        assert!(state_matches("secret", &cookie, "a.myshopify.com", "n1"));
        assert!(!state_matches("secret", &cookie, "b.myshopify.com", "n1"));
        assert!(!state_matches("secret", &cookie, "a.myshopify.com", "n2"));
        assert!(!state_matches("other", &cookie, "a.myshopify.com", "n1"));
        assert!(!state_matches(
            "secret",
            "a.myshopify.com.n1.00",
            "a.myshopify.com",
            "n1"
        ));
    }
}
