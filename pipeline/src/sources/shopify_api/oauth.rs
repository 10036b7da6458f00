//! Shopify's token endpoint: a new install's authorization code for an **expiring offline
//! access token** and its refresh token, and a refresh token for the next pair.
//!
//! Both grants are a JSON `POST https://<shop>/admin/oauth/access_token` (Shopify's own
//! libraries send JSON): `{client_id, client_secret, code, expiring: "1"}` for an install,
//! `{client_id, client_secret, grant_type: "refresh_token", refresh_token}` for a refresh.
//! The answer is `{access_token, scope, expires_in, refresh_token, refresh_token_expires_in}`
//! (seconds); a non-expiring token, which custom apps still get, has no `expires_in`. Every
//! refresh returns a new refresh token, and the caller must store the pair together.
//! Public apps must use expiring offline tokens from 2027-01-01, so an install always asks
//! for one.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::error::{PipelineError, Result};

/// What the token endpoint granted. `Debug` shows no token.
#[derive(Clone, Deserialize)]
pub struct Grant {
    pub access_token: String,
    /// Comma-separated scopes granted.
    pub scope: String,
    /// Seconds the access token lives (Shopify: 3600); absent when it does not expire.
    pub expires_in: Option<i64>,
    pub refresh_token: Option<String>,
    /// Seconds the refresh token lives.
    pub refresh_token_expires_in: Option<i64>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("scope", &self.scope)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<set>"),
            )
            .field("refresh_token_expires_in", &self.refresh_token_expires_in)
            .finish_non_exhaustive()
    }
}

/// The app's credentials at Shopify (its client id and secret).
#[derive(Clone, Copy)]
pub struct App<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
}

impl std::fmt::Debug for App<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Trades an install's authorization `code` for an expiring offline token. `base` is the
/// shop's origin (`https://<shop>`, or a stand-in's).
pub async fn exchange_code(base: &str, app: App<'_>, code: &str) -> Result<Grant> {
    grant(
        base,
        json!({"client_id": app.client_id, "client_secret": app.client_secret,
               "code": code, "expiring": "1"}),
    )
    .await
}

/// Trades a refresh token for a new access token and a new refresh token.
pub async fn refresh(base: &str, app: App<'_>, refresh_token: &str) -> Result<Grant> {
    grant(
        base,
        json!({"client_id": app.client_id, "client_secret": app.client_secret,
               "grant_type": "refresh_token", "refresh_token": refresh_token}),
    )
    .await
}

async fn grant(base: &str, body: serde_json::Value) -> Result<Grant> {
    let failed = |what: String| PipelineError::Shopify(format!("token endpoint: {what}"));
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("supportlake/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| failed(format!("cannot build the HTTP client: {e}")))?;
    let response = http
        .post(format!(
            "{}/admin/oauth/access_token",
            base.trim_end_matches('/')
        ))
        .header(reqwest::header::ACCEPT, "application/json")
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| failed(format!("unreachable ({})", e.without_url())))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| failed(format!("the answer was cut short ({})", e.without_url())))?;
    if !status.is_success() {
        // Shopify answers `{"error": "invalid_grant", "error_description": "…"}`; only the
        // error's name is repeated, never the body, which could echo what was sent.
        let error = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or_else(|| "no error name".into());
        return Err(failed(format!("HTTP {status}: {error}")));
    }
    serde_json::from_str(&text).map_err(|e| failed(format!("not a token grant ({e})")))
}
