//! `GET /auth` and `GET /auth/callback`: a merchant installs the app on a shop with OAuth
//! ([`crate::shopify::oauth`] has the rules; this file only speaks HTTP).

use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::error::AppError;
use crate::shopify::oauth::{self, InstallError, STATE_COOKIE, STATE_SECONDS};

#[derive(Debug, Deserialize)]
pub struct AuthQuery {
    pub shop: String,
}

impl From<InstallError> for AppError {
    fn from(refusal: InstallError) -> Self {
        let status = match refusal {
            InstallError::InvalidShop(_) | InstallError::MissingCode => StatusCode::BAD_REQUEST,
            InstallError::InvalidHmac | InstallError::Stale(_) => StatusCode::UNAUTHORIZED,
            InstallError::InvalidState => StatusCode::FORBIDDEN,
            InstallError::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        AppError::new(status, refusal.code(), refusal.to_string())
    }
}

/// Sends the merchant to the shop's consent screen, with the state cookie set.
pub async fn begin(
    State(state): State<AppState>,
    Query(query): Query<AuthQuery>,
) -> Result<Response, AppError> {
    let begun = oauth::begin(state.config(), &query.shop)?;
    let secure = if state.config().app_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{STATE_COOKIE}={}; Path=/auth/callback; Max-Age={STATE_SECONDS}; HttpOnly; SameSite=Lax{secure}",
        begun.cookie
    );
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, begun.authorize_url),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response())
}

/// The state cookie of the request, if any.
fn state_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == STATE_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Checks Shopify's redirect, trades the code, installs the shop, and says what is next.
pub async fn callback(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let now = chrono::Utc::now();
    let checked = oauth::check_callback(
        state.config(),
        query.as_deref().unwrap_or_default(),
        state_cookie(&headers).as_deref(),
        now.timestamp(),
    )?;
    let installed = oauth::install(state.config(), state.shops(), &checked, now)
        .await
        .map_err(|error| {
            tracing::warn!(shop = %checked.shop, %error, "the install's code exchange failed");
            AppError::new(
                StatusCode::BAD_GATEWAY,
                "code_exchange_failed",
                "Shopify did not grant a token for this install; start again from the shop's admin",
            )
        })?;
    tracing::info!(shop = %installed.domain, scopes = ?installed.scopes, "installed");
    // Its webhook subscriptions and first full sync start now, in the background.
    state.wake_syncer();
    let shop = pipeline::report::html::escape(&installed.domain);
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>supportlake installed</title>\
         <h1>supportlake is installed on {shop}</h1>\
         <p>Its catalog, policies and orders are being read now; the chat answers from them once the first sync is done.</p>\
         <p>Turn on the chat in the theme editor (Theme settings › App embeds › supportlake chat).</p>"
    );
    // The state has done its job: the cookie goes.
    let expired =
        format!("{STATE_COOKIE}=; Path=/auth/callback; Max-Age=0; HttpOnly; SameSite=Lax");
    Ok(([(header::SET_COOKIE, expired)], Html(page)).into_response())
}
