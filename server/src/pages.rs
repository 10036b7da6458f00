//! The faces the server shows people: the demo storefront with the chat widget (`/`), the
//! widget script a store embeds (`/widget.js`), the agents' handoff inbox (`/inbox`) and the
//! analysts' dashboard (`/dashboard`), plus the report API the dashboard reads.
//!
//! The pages are plain HTML and JavaScript compiled into the binary (`server/assets/`): no
//! build step, no framework, nothing fetched from elsewhere. They use the same JSON API as any
//! other client; the inbox and dashboard hold their bearer token in the tab's session storage,
//! never in a URL.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use pipeline::report::{ReportArgs, ReportFormat};
use pipeline::sql::SqlEngine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{AppError, ServerError};

const WIDGET: &str = include_str!("../assets/widget.js");
const STOREFRONT: &str = include_str!("../assets/storefront.html");
const INBOX: &str = include_str!("../assets/inbox.html");
const DASHBOARD: &str = include_str!("../assets/dashboard.html");
const UI: &str = include_str!("../assets/ui.js");

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
    .ok_or_else(|| AppError::not_found("unknown_shop", "no such shop in the lake"))?;
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

/// Checks a bearer token in constant time.
pub fn bearer(
    headers: &HeaderMap,
    expected: &str,
    code: &'static str,
    who: &str,
) -> Result<(), AppError> {
    use subtle::ConstantTimeEq;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(AppError::unauthorized(
            code,
            format!("send the {who} token as `Authorization: Bearer …`"),
        ))
    }
}

fn analyst(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    bearer(
        headers,
        &state.settings().config.analyst_token,
        "analyst_token_required",
        "analyst",
    )
}

/// `/v1/reports`: the reports with their one-line summaries, and the shops to filter by.
pub async fn list_reports(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, AppError> {
    analyst(&state, &headers)?;
    let reports: Vec<Value> = pipeline::report::catalog::reports()
        .map(|r| json!({"name": r.name, "title": r.title, "summary": r.summary}))
        .collect();
    let snapshot = state.snapshot();
    let shops: Vec<&str> = snapshot.shops().iter().map(|s| s.id.as_str()).collect();
    Ok(axum::Json(json!({"reports": reports, "shops": shops})))
}

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    shop: Option<String>,
    format: Option<String>,
}

/// `/v1/reports/{name}`: one report as JSON (default), CSV or a standalone HTML page.
pub async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, AppError> {
    analyst(&state, &headers)?;
    if pipeline::report::catalog::reports().all(|r| r.name != name) {
        return Err(AppError::not_found(
            "unknown_report",
            "no report with this name; GET /v1/reports lists them",
        ));
    }
    let (format, content_type) = match query.format.as_deref().unwrap_or("json") {
        "json" => (ReportFormat::Json, "application/json"),
        "csv" => (ReportFormat::Csv, "text/csv; charset=utf-8"),
        "html" => (ReportFormat::Html, "text/html; charset=utf-8"),
        other => {
            return Err(AppError::bad_request(
                "bad_format",
                format!("format {other:?} is not one of json, csv, html"),
            ));
        }
    };
    let args = ReportArgs {
        from: query.from,
        to: query.to,
        shop: query.shop,
        params: Vec::new(),
    };
    let engine = SqlEngine::open(state.lake())
        .await
        .map_err(ServerError::from)?;
    // The knowledge-gap report clusters questions with the model the server already holds.
    let model = state.model();
    let output = index::reports::run_report(&engine, &name, &args, move || Ok(model))
        .await
        .map_err(|error| match error {
            // Parameters the analyst typed (a date, a shop) are the client's to fix.
            index::IndexError::Lake(pipeline::PipelineError::Report(message)) => {
                AppError::bad_request("bad_report_parameter", message)
            }
            other => ServerError::from(other).into(),
        })?;
    let text = pipeline::report::render(&output, format).map_err(ServerError::from)?;
    let mut response =
        (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], text).into_response();
    if format == ReportFormat::Csv {
        let disposition = format!("attachment; filename=\"{name}.csv\"");
        if let Ok(value) = disposition.parse() {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
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
