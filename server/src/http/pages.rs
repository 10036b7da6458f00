//! The faces the server shows people: the demo storefront with the chat widget (`/`), the
//! widget script a store embeds (`/widget.js`), the agents' handoff inbox (`/inbox`) and the
//! analysts' dashboard (`/dashboard`). The dashboard reads the report API
//! ([`crate::http::reports`]).
//!
//! The pages are plain HTML and JavaScript compiled into the binary (`server/assets/`): no
//! build step, no framework, nothing fetched from elsewhere. They use the same JSON API as any
//! other client; the inbox and dashboard hold their bearer token in the tab's session storage,
//! never in a URL.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::storefront::unknown_shop;
use crate::AppState;
use crate::error::AppError;

const WIDGET: &str = include_str!("../../assets/widget.js");
const STOREFRONT: &str = include_str!("../../assets/storefront.html");
const INBOX: &str = include_str!("../../assets/inbox.html");
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");
const UI: &str = include_str!("../../assets/ui.js");

fn escape(text: &str) -> String {
    pipeline::report::html::escape(text)
}

/// `/`: a storefront of the lake's first shop (or `?shop=`), with the widget on it.
pub async fn storefront(
    State(state): State<AppState>,
    Query(query): Query<ShopQuery>,
) -> Result<Html<String>, AppError> {
    let snapshot = state.snapshot();
    let shop = match &query.shop {
        Some(id) => snapshot.shop(id),
        None => snapshot.shops().first(),
    }
    .ok_or_else(|| unknown_shop(query.shop.as_deref().unwrap_or("(none in the lake)")))?;
    let products: String = snapshot
        .products_of(&shop.id)
        .into_iter()
        .take(8)
        .map(|p| {
            let kind = p.product_type.as_deref().unwrap_or("");
            format!(
                "<article class=\"card\"><h3>{}</h3><p>{}</p></article>",
                escape(&p.title),
                escape(kind)
            )
        })
        .collect();
    Ok(Html(
        STOREFRONT
            .replace("{{shop_name}}", &escape(&shop.name))
            .replace("{{shop}}", &escape(&shop.id))
            .replace("{{products}}", &products),
    ))
}

#[derive(Debug, Deserialize)]
pub struct ShopQuery {
    shop: Option<String>,
}

/// A script, cached briefly so a new release reaches stores within minutes.
fn script(body: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}

/// `/widget.js`, loaded by the store's pages.
pub async fn widget() -> Response {
    script(WIDGET)
}

/// `/ui.js`, the inbox's and dashboard's shared helpers.
pub async fn ui() -> Response {
    script(UI)
}

pub async fn inbox() -> Html<&'static str> {
    Html(INBOX)
}

pub async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_widget_stays_within_its_weight_budget_and_the_pages_carry_no_external_assets() {
        // A store pays for every byte of the widget on every page view.
        assert!(WIDGET.len() < 50_000, "widget.js is {} bytes", WIDGET.len());
        for (name, page) in [
            ("widget", WIDGET),
            ("storefront", STOREFRONT),
            ("inbox", INBOX),
            ("dashboard", DASHBOARD),
            ("ui", UI),
        ] {
            assert!(!page.contains("http://"), "{name} fetches from elsewhere");
            assert!(!page.contains("https://cdn"), "{name} fetches from a CDN");
        }
    }
}
