//! The agents' handoff inbox: list and read handoffs, claim one, reply in its
//! conversation, resolve it. Every change is recorded with its conversation's.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use chrono::Utc;
use pipeline::lake::vocab::{HandoffStatus, ResolutionPath, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth;
use super::chat::{checked_message, unknown_shop};
use super::conversations::existing;
use super::extract::ApiJson;
use crate::AppState;
use crate::conversation::turn::save_conversation;
use crate::error::AppError;
use crate::lake_writer::records;
use crate::state::chat::{self, Conversation, Handoff, Status};
use crate::state::sqlite::enqueue_row;

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

fn handoff_or_404(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Handoff, AppError> {
    chat::handoff(tx, id)?
        .ok_or_else(|| AppError::not_found("unknown_handoff", "no handoff with this id"))
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
        .transaction(|tx| Ok(Json(handoff_or_404(tx, &id)?)))
}

/// Applies an agent's change to a handoff and its conversation, recording both.
fn update_handoff(
    state: &AppState,
    id: &str,
    change: impl FnOnce(
        &rusqlite::Transaction<'_>,
        &mut Handoff,
        &mut Conversation,
        &str,
    ) -> Result<(), AppError>,
) -> Result<Json<Handoff>, AppError> {
    let now = chat::timestamp(Utc::now());
    state.chat().transaction(|tx| {
        let mut handoff = handoff_or_404(tx, id)?;
        let mut conversation = existing(tx, &handoff.conversation_id)?;
        change(tx, &mut handoff, &mut conversation, &now)?;
        handoff.updated_at = now.clone();
        chat::save_handoff(tx, &handoff)?;
        enqueue_row(tx, &records::handoff_row(&handoff))?;
        conversation.updated_at = Utc::now();
        save_conversation(tx, &conversation, handoff.assignee.as_deref())?;
        Ok(Json(handoff))
    })
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
    update_handoff(&state, &id, |_, handoff, _, now| {
        match (handoff.status, handoff.assignee.as_deref()) {
            (HandoffStatus::Resolved, _) => {
                return Err(AppError::conflict(
                    "already_resolved",
                    "the handoff is resolved",
                ));
            }
            (HandoffStatus::Claimed, Some(other)) if other != name => {
                return Err(AppError::conflict(
                    "already_claimed",
                    format!("{other} has claimed this handoff"),
                ));
            }
            _ => {}
        }
        handoff.status = HandoffStatus::Claimed;
        handoff.assignee = Some(name.clone());
        handoff.claimed_at.get_or_insert_with(|| now.to_string());
        Ok(())
    })
}

pub async fn reply(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AgentReplyRequest>,
) -> Result<Json<Handoff>, AppError> {
    auth::agent(&state, &headers)?;
    let text = checked_message(&request.text)?;
    update_handoff(&state, &id, |tx, handoff, conversation, now| {
        if handoff.status != HandoffStatus::Claimed {
            return Err(AppError::conflict(
                "not_claimed",
                "claim the handoff before replying",
            ));
        }
        let message = chat::append_message(
            tx,
            &conversation.id,
            Role::Agent,
            handoff.assignee.as_deref(),
            &text,
            Utc::now(),
            None,
        )?;
        enqueue_row(
            tx,
            &records::message_row(&conversation.shop_id, conversation, &message),
        )?;
        handoff
            .first_agent_reply_at
            .get_or_insert_with(|| now.to_string());
        Ok(())
    })
}

pub async fn resolve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Handoff>, AppError> {
    auth::agent(&state, &headers)?;
    update_handoff(&state, &id, |_, handoff, conversation, now| {
        if handoff.status == HandoffStatus::Resolved {
            return Err(AppError::conflict(
                "already_resolved",
                "the handoff is resolved",
            ));
        }
        handoff.status = HandoffStatus::Resolved;
        handoff.resolved_at = Some(now.to_string());
        conversation.status = Status::Resolved;
        conversation.resolution_path = Some(ResolutionPath::AiThenHuman);
        Ok(())
    })
}
