//! `POST /v1/chat`: a shopper's message, checked (shop, storefront token, length),
//! understood off the async runtime, then answered in one chat-store transaction
//! ([`crate::conversation::turn`]).

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::extract::ApiJson;
use super::storefront::Caller;
use crate::AppState;
use crate::conversation::turn::{Reply, Turn};
use crate::conversation::verification::{
    TOKEN_MAX_LIFETIME_SECONDS, TokenError, proxied_identity, verify_token,
};
use crate::error::AppError;
use crate::state::chat::{self, Conversation, Status};

/// Longest shopper message, in characters.
pub const MESSAGE_LIMIT: usize = 2000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The shop's myshopify domain (or a domain the lake knows for it). Through the app
    /// proxy it may be left out: the signed `shop` decides.
    pub shop: Option<String>,
    pub conversation_id: Option<String>,
    pub message: String,
    pub customer_token: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ChatResponse {
    pub conversation_id: String,
    pub reply: Reply,
}

fn token_error(error: TokenError) -> AppError {
    match error {
        TokenError::Expired => AppError::unauthorized(
            "expired_customer_token",
            "the customer token has expired; the storefront should issue a new one",
        ),
        TokenError::Malformed | TokenError::BadSignature => AppError::unauthorized(
            "invalid_customer_token",
            "the customer token is not valid for this shop",
        ),
        TokenError::OtherShop => AppError::unauthorized(
            "token_for_another_shop",
            "the customer token was signed for another shop",
        ),
        TokenError::TooLong => AppError::unauthorized(
            "customer_token_lifetime_too_long",
            format!(
                "the customer token lives longer than {} hours; sign a short-lived one with each page",
                TOKEN_MAX_LIFETIME_SECONDS / 3600
            ),
        ),
    }
}

/// Trims and checks a shopper message.
pub(super) fn checked_message(message: &str) -> Result<String, AppError> {
    let trimmed = message.trim();
    if trimmed.is_empty() {
        return Err(AppError::bad_request(
            "empty_message",
            "the message is empty",
        ));
    }
    let length = trimmed.chars().count();
    if length > MESSAGE_LIMIT {
        return Err(AppError::bad_request(
            "message_too_long",
            format!("the message has {length} characters; the limit is {MESSAGE_LIMIT}"),
        ));
    }
    Ok(trimmed.to_string())
}

pub async fn chat(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    caller: Caller,
    ApiJson(request): ApiJson<ChatRequest>,
) -> Result<Json<ChatResponse>, AppError> {
    let started = Instant::now();
    let message = checked_message(&request.message)?;
    let tenant = caller.tenant(&state, request.shop.as_deref())?;
    let shop = tenant.id().to_string();
    let snapshot = state.snapshot();
    let now = Utc::now();
    let token_identity = match (&request.customer_token, tenant.proxied_customer) {
        (_, Some(customer)) => Some(proxied_identity(customer)),
        (Some(token), None) => Some(
            verify_token(
                &shop,
                &tenant.shop.credentials.storefront_secret,
                &state.config().pii_hash_key,
                token,
                now,
            )
            .map_err(token_error)?,
        ),
        (None, None) => None,
    };
    let index = state.index()?;
    let understood = state
        .understand(index.clone(), message.clone(), shop.clone())
        .await?;
    let response = state.chat().transaction(|tx| {
        let mut conversation = match &request.conversation_id {
            Some(id) => chat::conversation(tx, Some(&shop), id)?
                .ok_or_else(AppError::unknown_conversation)?,
            None => Conversation {
                id: uuid::Uuid::new_v4().to_string(),
                shop_id: shop.clone(),
                started_at: now,
                updated_at: now,
                status: Status::Open,
                resolution_path: None,
                primary_intent: None,
                identity: None,
                pending: None,
                low_confidence_streak: 0,
                handoff_id: None,
                last_turn: None,
            },
        };
        if token_identity.is_some() {
            conversation.identity = token_identity.clone();
        }
        let turn = Turn {
            state: &state,
            snapshot: &snapshot,
            index: &index,
            now,
            started,
        };
        let reply = turn.take(tx, &mut conversation, &message, understood, client.ip())?;
        Ok::<_, AppError>(ChatResponse {
            conversation_id: conversation.id,
            reply,
        })
    })?;
    Ok(Json(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_trimmed_and_bounded() {
        assert_eq!(checked_message("  hi  ").unwrap(), "hi");
        assert_eq!(checked_message(" \n ").unwrap_err().code, "empty_message");
        assert_eq!(
            checked_message(&"a".repeat(MESSAGE_LIMIT + 1))
                .unwrap_err()
                .code,
            "message_too_long"
        );
        assert!(checked_message(&"é".repeat(MESSAGE_LIMIT)).is_ok());
    }
}
