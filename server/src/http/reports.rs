//! The report API the dashboard reads: the catalog of reports (`/v1/reports`) and one
//! report over the lake as JSON, CSV or HTML (`/v1/reports/{name}`).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pipeline::report::{ReportArgs, ReportFormat};
use pipeline::sql::SqlEngine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth;
use crate::AppState;
use crate::error::{AppError, ServerError};

/// `/v1/reports`: the reports with their one-line summaries, and the shops to filter by.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, AppError> {
    auth::analyst(&state, &headers)?;
    let reports: Vec<Value> = pipeline::report::definitions::reports()
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
    auth::analyst(&state, &headers)?;
    if pipeline::report::definitions::reports().all(|r| r.name != name) {
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
