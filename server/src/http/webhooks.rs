//! `POST /webhooks/shopify`: Shopify's deliveries, verified and durably acknowledged.
//!
//! A delivery is checked by [`crate::shopify::webhook::verify`], each failure with its own
//! stable code: the headers it must carry (400 `missing_header`), its signature (401
//! `invalid_hmac`), its shop (401 `unknown_shop`) and its body (400 `invalid_utf8`).
//!
//! Then the acknowledger ([`crate::lake_writer::acknowledger`]) makes it durable, together
//! with the deliveries that arrived meanwhile, and only then does the 200 go out.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::{Json, response::IntoResponse};
use serde_json::json;

use crate::AppState;
use crate::error::AppError;
use crate::lake_writer::acknowledger::Ack;
use crate::shopify::webhook::{DeliveryError, verify};

/// Largest delivery accepted: an order with hundreds of line items stays well below it.
pub const WEBHOOK_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// A refused delivery as Shopify sees it: 400 for a malformed one, 401 for one that is not
/// signed by this app or not for a shop installed here.
impl From<DeliveryError> for AppError {
    fn from(refusal: DeliveryError) -> Self {
        let status = match refusal {
            DeliveryError::MissingHeader(_) | DeliveryError::InvalidUtf8 => StatusCode::BAD_REQUEST,
            DeliveryError::InvalidHmac | DeliveryError::UnknownShop(_) => StatusCode::UNAUTHORIZED,
        };
        AppError::new(status, refusal.code(), refusal.to_string())
    }
}

/// The handler: verify, make durable, then 200.
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, AppError> {
    let body =
        body.map_err(|rejection| AppError::unreadable_body(&rejection, WEBHOOK_BODY_LIMIT))?;
    let received_at = chrono::Utc::now().timestamp_micros();
    let delivery = verify(state.config(), state.shops(), &headers, &body, received_at)?;
    let topic = delivery.topic.clone();
    let ack = state.acknowledger().acknowledge(delivery).await?;
    state.metrics().webhook(&topic, ack == Ack::Duplicate);
    Ok((
        StatusCode::OK,
        Json(json!({"status": match ack {
            Ack::Accepted => "accepted",
            Ack::Duplicate => "duplicate",
        }})),
    ))
}
