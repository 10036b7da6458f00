//! The bearer checks: agents (`agent_token`) for the handoff inbox, analysts
//! (`analyst_token`) for the reports, each compared in constant time. An empty token
//! configured lets nobody in.

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::AppError;

/// Checks a bearer token in constant time.
fn bearer(
    headers: &HeaderMap,
    expected: &str,
    code: &'static str,
    who: &str,
) -> Result<(), AppError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // An empty expected token must not match an absent header: `serve` refuses to start
    // without one, and this holds even if it did.
    if !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(AppError::unauthorized(
            code,
            format!("send the {who} token as `Authorization: Bearer …`"),
        ))
    }
}

/// Checks the analyst bearer token.
pub fn analyst(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    bearer(
        headers,
        &state.config().analyst_token,
        "analyst_token_required",
        "analyst",
    )
}

/// Checks the agent bearer token.
pub fn agent(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    bearer(
        headers,
        &state.config().agent_token,
        "agent_token_required",
        "agent",
    )
}
