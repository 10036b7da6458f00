//! The JSON body extractor: every kind of bad input (too large, not JSON, not UTF-8, wrong
//! types, unknown fields) becomes a 4xx with a stable code.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body, or a 4xx that says exactly what is wrong with it.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        let json_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if !json_type {
            return Err(AppError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| AppError::unreadable_body(&rejection, BODY_LIMIT))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| AppError::bad_request("invalid_utf8", "the body is not valid UTF-8"))?;
        serde_json::from_str(text).map(ApiJson).map_err(|e| {
            if e.classify() == serde_json::error::Category::Data {
                AppError::bad_request("invalid_field", e.to_string())
            } else {
                AppError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
            }
        })
    }
}
