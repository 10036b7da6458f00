//! Errors: [`ServerError`] for what fails inside the server, [`AppError`] for what a client
//! sees. Every `AppError` carries a stable machine-readable `code` (clients branch on it;
//! the message is for people and may change) and maps to one HTTP status.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Failures inside the server: its state store, the lake, the index.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("state store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error(transparent)]
    Lake(#[from] pipeline::PipelineError),
    #[error(transparent)]
    Index(#[from] index::IndexError),
    #[error("state store: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A secret is missing, malformed, or does not open what it should (the shop
    /// registry's master key, a sealed row).
    #[error("secrets: {0}")]
    Secrets(String),
    /// The server is up but has nothing to answer with yet (no index generation).
    #[error("not ready: {0}")]
    NotReady(String),
}

/// An error as the HTTP client sees it: `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds to wait before retrying (sent as `Retry-After`).
    pub retry_after: Option<u64>,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn too_many(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        }
    }

    /// A request body that could not be read: too large for `limit` bytes, or cut short.
    pub fn unreadable_body(rejection: &BytesRejection, limit: usize) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than {limit} bytes"),
            )
        } else {
            Self::bad_request("unreadable_body", rejection.body_text())
        }
    }

    pub fn unknown_conversation() -> Self {
        // The same answer whether the id does not exist or belongs to another shop, so ids
        // cannot be probed across shops.
        Self::not_found(
            "unknown_conversation",
            "no conversation with this id in this shop",
        )
    }
}

impl From<ServerError> for AppError {
    fn from(error: ServerError) -> Self {
        match error {
            ServerError::NotReady(message) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
            }
            other => {
                // The details are for the operator's log, not for the shopper.
                tracing::error!(error = %other, "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side; please try again",
                )
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
