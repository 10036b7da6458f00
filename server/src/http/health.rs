//! Operations: liveness, readiness and the Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::AppError;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let index = state.index()?;
    Ok(Json(json!({
        "ready": true,
        "generation": index.generation.name,
        "orders": state.snapshot().orders(),
    })))
}

pub async fn metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let outbox = state.chat().database().outbox_len()?;
    let webhook_outbox = state.webhooks().database().outbox_len()?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(outbox, webhook_outbox),
    )
        .into_response())
}
