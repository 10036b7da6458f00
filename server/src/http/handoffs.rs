//! The agents' handoff inbox: list and read handoffs, claim one, reply in its
//! conversation, resolve it. Every change is recorded with its conversation's.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use pipeline::lake::vocab::HandoffStatus;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth;
use super::chat::checked_message;
use super::extract::ApiJson;
use super::storefront::unknown_shop;
use crate::AppState;
use crate::conversation::inbox::{self, InboxError};
use crate::error::AppError;
use crate::state::chat::{self, Handoff};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub agent: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentReplyRequest {
    pub text: String,
}

#[derive(Debug, Deserialize)]
pub struct HandoffQuery {
    pub status: Option<String>,
    pub shop: Option<String>,
}

/// The statuses the inbox filters by (the server never abandons a handoff).
const LISTED: [HandoffStatus; 3] = [
    HandoffStatus::Open,
    HandoffStatus::Claimed,
    HandoffStatus::Resolved,
];

/// Each refusal of the inbox rules as the agent's client sees it.
impl From<InboxError> for AppError {
    fn from(error: InboxError) -> Self {
        let message = error.to_string();
        match error {
            InboxError::UnknownHandoff => Self::not_found("unknown_handoff", message),
            InboxError::UnknownConversation => Self::unknown_conversation(),
            InboxError::AlreadyResolved => Self::conflict("already_resolved", message),
            InboxError::AlreadyClaimed(_) => Self::conflict("already_claimed", message),
            InboxError::NotClaimed => Self::conflict("not_claimed", message),
            InboxError::State(error) => error.into(),
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HandoffQuery>,
) -> Result<Json<Value>, AppError> {
    auth::agent(&state, &headers)?;
    let status = query
        .status
        .as_deref()
        .map(|word| {
            LISTED
                .into_iter()
                .find(|s| s.as_str() == word)
                .ok_or_else(|| {
                    AppError::bad_request("invalid_status", "status is open, claimed or resolved")
                })
        })
        .transpose()?;
    let shop = match query.shop.as_deref() {
        Some(name) => Some(
            state
                .snapshot()
                .shop(name)
                .ok_or_else(|| unknown_shop(name))?
                .id
                .clone(),
        ),
        None => None,
    };
    state.chat().transaction(|tx| {
        let handoffs = chat::handoffs(tx, status, shop.as_deref(), 500)?;
        Ok(Json(json!({"handoffs": handoffs})))
    })
}

pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Handoff>, AppError> {
    auth::agent(&state, &headers)?;
    state
        .chat()
        .transaction(|tx| Ok(Json(inbox::handoff(tx, &id)?)))
}

pub async fn claim(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ClaimRequest>,
) -> Result<Json<Handoff>, AppError> {
    auth::agent(&state, &headers)?;
    let name = request.agent.trim().to_string();
    if name.is_empty() {
        return Err(AppError::bad_request("missing_field", "agent is required"));
    }
    Ok(Json(inbox::claim(state.chat(), &id, &name)?))
}

pub async fn reply(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AgentReplyRequest>,
) -> Result<Json<Handoff>, AppError> {
    auth::agent(&state, &headers)?;
    let text = checked_message(&request.text)?;
    Ok(Json(inbox::reply(state.chat(), &id, &text)?))
}

pub async fn resolve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Handoff>, AppError> {
    auth::agent(&state, &headers)?;
    Ok(Json(inbox::resolve(state.chat(), &id)?))
}
