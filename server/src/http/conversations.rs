//! A conversation's endpoints: its messages (for the widget to show agent replies),
//! verification, feedback on the latest answer, CSAT and the shopper's "resolved".

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use chrono::Utc;
use pipeline::lake::vocab::ResolutionPath;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::ApiJson;
use super::storefront::{Caller, Tenant};
use crate::AppState;
use crate::conversation::answer::Understanding;
use crate::conversation::turn::{Turn, save_conversation};
use crate::conversation::verification::{VERIFY_FAILED, VERIFY_LOCKED, Verification};
use crate::error::AppError;
use crate::lake_writer::records;
use crate::state::chat::{self, Conversation, Status};
use crate::state::sqlite::enqueue_row;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub order_number: String,
    pub email: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub helpful: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsatRequest {
    pub score: i64,
    pub comment: Option<String>,
}

/// The conversation `id` of the request's shop: one of another shop is as unknown as one
/// that does not exist.
fn existing(
    tx: &rusqlite::Transaction<'_>,
    tenant: &Tenant,
    id: &str,
) -> Result<Conversation, AppError> {
    chat::conversation(tx, Some(tenant.id()), id)?.ok_or_else(AppError::unknown_conversation)
}

pub async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let tenant = caller.tenant(&state, None)?;
    state.chat().transaction(|tx| {
        let conversation = existing(tx, &tenant, &id)?;
        let messages: Vec<Value> = chat::messages(tx, &id, None)?
            .into_iter()
            .map(|m| json!({"seq": m.seq, "role": m.role, "author": m.author, "text": m.text, "created_at": m.created_at}))
            .collect();
        Ok(Json(json!({
            "conversation_id": conversation.id,
            "status": conversation.status,
            "verified": conversation.identity.is_some(),
            "messages": messages,
        })))
    })
}

pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> Result<Json<Value>, AppError> {
    let tenant = caller.tenant(&state, None)?;
    let started = Instant::now();
    if request.order_number.trim().is_empty() || request.email.trim().is_empty() {
        return Err(AppError::bad_request(
            "missing_field",
            "order_number and email are both required",
        ));
    }
    let snapshot = state.snapshot();
    let index = state.index()?;
    let now = Utc::now();
    state.chat().transaction(|tx| {
        let mut conversation = existing(tx, &tenant, &id)?;
        let turn = Turn {
            state: &state,
            snapshot: &snapshot,
            index: &index,
            now,
            started,
        };
        match turn.verify(
            tx,
            &mut conversation,
            &request.order_number,
            request.email.trim(),
            client.ip(),
        )? {
            Verification::Locked(wait) => Err(AppError::too_many(
                "verification_locked",
                VERIFY_LOCKED,
                wait,
            )),
            Verification::Failed => {
                save_conversation(tx, &conversation, None)?;
                Ok(Json(json!({"verified": false, "message": VERIFY_FAILED})))
            }
            Verification::Verified => {
                let Some(pending) = conversation.pending.take() else {
                    conversation.updated_at = now;
                    save_conversation(tx, &conversation, None)?;
                    return Ok(Json(json!({"verified": true})));
                };
                let understood = turn.restore(
                    &conversation.shop_id,
                    &pending,
                    Understanding {
                        intent: String::new(),
                        confidence: 0.0,
                        entities: Default::default(),
                        hits: Vec::new(),
                    },
                );
                let answer = turn.compose(&conversation, &pending.message, &understood);
                let reply = turn.finish(tx, &mut conversation, &understood, answer)?;
                Ok(Json(json!({"verified": true, "reply": reply})))
            }
        }
    })
}

pub async fn feedback(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<FeedbackRequest>,
) -> Result<Json<Value>, AppError> {
    let tenant = caller.tenant(&state, None)?;
    let now = Utc::now().timestamp_micros();
    state.chat().transaction(|tx| {
        let mut conversation = existing(tx, &tenant, &id)?;
        let Some(mut turn) = conversation.last_turn.take() else {
            return Err(AppError::conflict(
                "no_answer_yet",
                "the conversation has no automated answer to rate",
            ));
        };
        turn.helpful = Some(request.helpful);
        turn.updated_at = now;
        enqueue_row(tx, &turn)?;
        conversation.last_turn = Some(turn);
        chat::save_conversation(tx, &conversation)?;
        Ok(Json(json!({"recorded": true})))
    })
}

pub async fn csat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<CsatRequest>,
) -> Result<Json<Value>, AppError> {
    let tenant = caller.tenant(&state, None)?;
    if !(1..=5).contains(&request.score) {
        return Err(AppError::bad_request(
            "invalid_score",
            "score must be an integer from 1 to 5",
        ));
    }
    let now = Utc::now();
    state.chat().transaction(|tx| {
        let conversation = existing(tx, &tenant, &id)?;
        enqueue_row(
            tx,
            &records::csat_row(
                &conversation,
                request.score,
                request.comment.as_deref(),
                now,
            ),
        )?;
        Ok(Json(json!({"recorded": true})))
    })
}

pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let tenant = caller.tenant(&state, None)?;
    let now = Utc::now();
    state.chat().transaction(|tx| {
        let mut conversation = existing(tx, &tenant, &id)?;
        if conversation.status == Status::HandedOff {
            return Err(AppError::conflict(
                "handed_off",
                "a person has this conversation; they resolve it",
            ));
        }
        conversation.status = Status::Resolved;
        conversation
            .resolution_path
            .get_or_insert(ResolutionPath::AiOnly);
        conversation.updated_at = now;
        save_conversation(tx, &conversation, None)?;
        Ok(Json(
            json!({"status": conversation.status, "resolution_path": conversation.resolution_path}),
        ))
    })
}
