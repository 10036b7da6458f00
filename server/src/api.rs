//! The HTTP API: the routes, their handlers, and the OpenAPI document — all from one table
//! ([`ENDPOINTS`]), so a route cannot exist without its documentation or the other way round.
//!
//! Bodies go through [`ApiJson`], which turns every kind of bad input (too large, not JSON,
//! not UTF-8, wrong types, unknown fields) into a 4xx with a stable code.

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, MatchedPath, Path, Query, Request, State,
};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::answer::{self, Answer, CONFIDENCE_FLOOR, Context, Kind, Source, Understanding};
use crate::commerce::Snapshot;
use crate::error::{AppError, ServerError};
use crate::identity::{self, TokenError};
use crate::record;
use crate::store::{self, Conversation, Handoff, Pending};
use crate::{AppState, LoadedIndex};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest shopper message, in characters.
pub const MESSAGE_LIMIT: usize = 2000;

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

// -- request and response bodies ------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    pub shop: String,
    pub conversation_id: Option<String>,
    pub message: String,
    pub customer_token: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct HandoffRef {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct Reply {
    pub text: String,
    pub automated: bool,
    pub intent: Option<String>,
    pub confidence: Option<f32>,
    pub sources: Vec<Source>,
    pub needs_verification: bool,
    pub handoff: Option<HandoffRef>,
}

#[derive(Debug, Serialize)]
pub struct ChatResponse {
    pub conversation_id: String,
    pub reply: Reply,
}

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

// -- the endpoint table ---------------------------------------------------------------------

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Shoppers and anyone else.
    Public,
    /// Support agents (`agent_token`).
    Agent,
    /// Analysts and content owners (`analyst_token`).
    Analyst,
}

impl Auth {
    /// The OpenAPI security scheme's name.
    fn scheme(self) -> Option<&'static str> {
        match self {
            Self::Public => None,
            Self::Agent => Some("agentToken"),
            Self::Analyst => Some("analystToken"),
        }
    }
}

/// One route with its documentation.
#[derive(Debug)]
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub summary: &'static str,
    /// Which bearer token it requires, if any.
    pub auth: Auth,
    pub request: Option<fn() -> Value>,
    pub response: fn() -> Value,
    pub handler: fn() -> MethodRouter<AppState>,
}

fn error_schema() -> Value {
    json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
        "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}})
}

fn reply_schema() -> Value {
    json!({"type": "object", "required": ["text", "automated", "sources", "needs_verification", "handoff"], "properties": {
        "text": {"type": "string"}, "automated": {"type": "boolean"},
        "intent": {"type": ["string", "null"]}, "confidence": {"type": ["number", "null"]},
        "sources": {"type": "array", "items": {"type": "object", "properties": {
            "doc_key": {"type": "string"}, "title": {"type": "string"}, "url": {"type": "string"}, "snippet": {"type": "string"}}}},
        "needs_verification": {"type": "boolean"},
        "handoff": {"type": ["object", "null"], "properties": {"id": {"type": "string"}, "reason": {"type": "string"}}}}})
}

fn handoff_schema() -> Value {
    json!({"type": "object", "properties": {"id": {"type": "string"}, "shop_id": {"type": "string"},
        "conversation_id": {"type": "string"}, "reason": {"type": "string"}, "intent": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["open", "claimed", "resolved"]}, "assignee": {"type": ["string", "null"]},
        "packet": {"type": "object"}, "created_at": {"type": "string"}}})
}

/// Every route of the API.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::GET,
        path: "/healthz",
        summary: "Liveness: the process answers.",
        auth: Auth::Public,
        request: None,
        response: || json!({"type": "object", "properties": {"status": {"type": "string"}}}),
        handler: || get(healthz),
    },
    Endpoint {
        method: Method::GET,
        path: "/readyz",
        summary: "Readiness: an index generation is loaded (503 with code not_ready otherwise).",
        auth: Auth::Public,
        request: None,
        response: || json!({"type": "object", "properties": {"ready": {"type": "boolean"}, "generation": {"type": "string"}, "orders": {"type": "integer"}}}),
        handler: || get(readyz),
    },
    Endpoint {
        method: Method::GET,
        path: "/metrics",
        summary: "Prometheus metrics: requests, latencies, intents, handoffs, abstentions.",
        auth: Auth::Public,
        request: None,
        response: || json!({"type": "string"}),
        handler: || get(metrics),
    },
    Endpoint {
        method: Method::GET,
        path: "/openapi.json",
        summary: "This document.",
        auth: Auth::Public,
        request: None,
        response: || json!({"type": "object"}),
        handler: || get(openapi_json),
    },
    Endpoint {
        method: Method::POST,
        path: "/v1/chat",
        summary: "Send a shopper message; get an automated, sourced reply (or a verification request, or a handoff).",
        auth: Auth::Public,
        request: Some(|| {
            json!({"type": "object", "required": ["shop", "message"], "additionalProperties": false, "properties": {
            "shop": {"type": "string", "description": "shop id, domain or myshopify domain"},
            "conversation_id": {"type": ["string", "null"], "description": "omit to start a conversation"},
            "message": {"type": "string", "minLength": 1, "maxLength": MESSAGE_LIMIT},
            "customer_token": {"type": ["string", "null"], "description": "customer_id:email:expires:hex(HMAC-SHA256(secret, customer_id:email:expires))"}}})
        }),
        response: || {
            json!({"type": "object", "required": ["conversation_id", "reply"], "properties": {
            "conversation_id": {"type": "string"}, "reply": reply_schema()}})
        },
        handler: || post(chat),
    },
    Endpoint {
        method: Method::GET,
        path: "/v1/conversations/{id}",
        summary: "The conversation's messages (for the chat widget to show agent replies).",
        auth: Auth::Public,
        request: None,
        response: || {
            json!({"type": "object", "properties": {"conversation_id": {"type": "string"}, "status": {"type": "string"},
            "messages": {"type": "array", "items": {"type": "object"}}}})
        },
        handler: || get(conversation_messages),
    },
    Endpoint {
        method: Method::POST,
        path: "/v1/conversations/{id}/verify",
        summary: "Verify with order number and email. One generic failure; attempts limited per conversation and client address (429 verification_locked). Answers a waiting question on success.",
        auth: Auth::Public,
        request: Some(|| {
            json!({"type": "object", "required": ["order_number", "email"], "additionalProperties": false,
            "properties": {"order_number": {"type": "string"}, "email": {"type": "string"}}})
        }),
        response: || {
            json!({"type": "object", "required": ["verified"], "properties": {"verified": {"type": "boolean"},
            "message": {"type": "string"}, "reply": reply_schema()}})
        },
        handler: || post(verify),
    },
    Endpoint {
        method: Method::POST,
        path: "/v1/conversations/{id}/feedback",
        summary: "Was the latest automated answer helpful?",
        auth: Auth::Public,
        request: Some(
            || json!({"type": "object", "required": ["helpful"], "properties": {"helpful": {"type": "boolean"}}}),
        ),
        response: || json!({"type": "object", "properties": {"recorded": {"type": "boolean"}}}),
        handler: || post(feedback),
    },
    Endpoint {
        method: Method::POST,
        path: "/v1/conversations/{id}/csat",
        summary: "The shopper's satisfaction score, 1 to 5.",
        auth: Auth::Public,
        request: Some(
            || json!({"type": "object", "required": ["score"], "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}, "comment": {"type": ["string", "null"]}}}),
        ),
        response: || json!({"type": "object", "properties": {"recorded": {"type": "boolean"}}}),
        handler: || post(csat),
    },
    Endpoint {
        method: Method::POST,
        path: "/v1/conversations/{id}/resolve",
        summary: "The shopper says their question is answered.",
        auth: Auth::Public,
        request: None,
        response: || json!({"type": "object", "properties": {"status": {"type": "string"}, "resolution_path": {"type": "string"}}}),
        handler: || post(resolve),
    },
    Endpoint {
        method: Method::GET,
        path: "/v1/handoffs",
        summary: "The handoff inbox, oldest first; ?status=open|claimed|resolved&shop=…",
        auth: Auth::Agent,
        request: None,
        response: || json!({"type": "object", "properties": {"handoffs": {"type": "array", "items": handoff_schema()}}}),
        handler: || get(list_handoffs),
    },
    Endpoint {
        method: Method::GET,
        path: "/v1/handoffs/{id}",
        summary: "One handoff with its packet.",
        auth: Auth::Agent,
        request: None,
        response: handoff_schema,
        handler: || get(get_handoff),
    },
    Endpoint {
        method: Method::POST,
        path: "/v1/handoffs/{id}/claim",
        summary: "An agent takes the handoff (409 already_claimed when another has).",
        auth: Auth::Agent,
        request: Some(
            || json!({"type": "object", "required": ["agent"], "properties": {"agent": {"type": "string"}}}),
        ),
        response: handoff_schema,
        handler: || post(claim_handoff),
    },
    Endpoint {
        method: Method::POST,
        path: "/v1/handoffs/{id}/reply",
        summary: "The agent's reply, recorded as a message with role agent.",
        auth: Auth::Agent,
        request: Some(
            || json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}),
        ),
        response: handoff_schema,
        handler: || post(reply_handoff),
    },
    Endpoint {
        method: Method::POST,
        path: "/v1/handoffs/{id}/resolve",
        summary: "The agent closes the handoff and its conversation.",
        auth: Auth::Agent,
        request: None,
        response: handoff_schema,
        handler: || post(resolve_handoff),
    },
    Endpoint {
        method: Method::GET,
        path: "/v1/reports",
        summary: "The support reports (name, title, summary) and the shops to filter them by.",
        auth: Auth::Analyst,
        request: None,
        response: || {
            json!({"type": "object", "properties": {"reports": {"type": "array", "items": {"type": "object"}},
            "shops": {"type": "array", "items": {"type": "string"}}}})
        },
        handler: || get(crate::pages::list_reports),
    },
    Endpoint {
        method: Method::GET,
        path: "/v1/reports/{name}",
        summary: "One report over the lake; ?from=&to= (dates), ?shop=, ?format=json|csv|html (default json). 400 bad_report_parameter, 404 unknown_report.",
        auth: Auth::Analyst,
        request: None,
        response: || {
            json!({"type": "object", "properties": {"report": {"type": "string"}, "params": {"type": "object"},
            "rows": {"type": "array", "items": {"type": "object"}}}})
        },
        handler: || get(crate::pages::report),
    },
    Endpoint {
        method: Method::POST,
        path: "/webhooks/shopify",
        summary: "Shopify webhook deliveries (any topic). Verified by X-Shopify-Hmac-Sha256 (401 invalid_hmac), shop (401 unknown_shop) and headers (400 missing_header); 200 only once the delivery is durable; repeats of an event are acknowledged as duplicate and dropped. Body limit 4 MiB.",
        auth: Auth::Public,
        request: Some(
            || json!({"type": "object", "description": "the topic's payload, exactly as Shopify signed it"}),
        ),
        response: || json!({"type": "object", "properties": {"status": {"type": "string", "enum": ["accepted", "duplicate"]}}}),
        handler: || {
            post(crate::webhook::receive)
                .layer(DefaultBodyLimit::max(crate::webhook::WEBHOOK_BODY_LIMIT))
        },
    },
];

/// The OpenAPI 3.1 document of [`ENDPOINTS`].
pub fn openapi() -> Value {
    let mut paths = serde_json::Map::new();
    for e in ENDPOINTS {
        let mut operation = json!({
            "summary": e.summary,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": (e.response)()}}},
                "4XX": {"description": "Bad request; `error.code` is stable", "content": {"application/json": {"schema": error_schema()}}},
            },
        });
        if let Some(request) = e.request {
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": request()}}});
        }
        if let Some(scheme) = e.auth.scheme() {
            operation["security"] = json!([{ scheme: [] }]);
        }
        let parameters: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        paths
            .entry(e.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path items are objects")
            .insert(e.method.as_str().to_lowercase(), operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "supportlake answer server", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"securitySchemes": {"agentToken": {"type": "http", "scheme": "bearer"},
            "analystToken": {"type": "http", "scheme": "bearer"}}},
    })
}

/// The router of [`ENDPOINTS`], with the body limit, JSON 404/405s and request metrics.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for e in ENDPOINTS {
        let handler = (e.handler)();
        router = router.route(
            e.path,
            handler.fallback(|| async {
                AppError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "this route does not take that method",
                )
            }),
        );
    }
    // The pages are not part of the JSON API (and not in the OpenAPI document).
    router = router
        .route("/", get(crate::pages::storefront))
        .route("/widget.js", get(crate::pages::widget))
        .route("/ui.js", get(crate::pages::ui))
        .route("/inbox", get(crate::pages::inbox))
        .route("/dashboard", get(crate::pages::dashboard));
    router
        .fallback(|| async { AppError::not_found("not_found", "no such route; see /openapi.json") })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Counts and times every request by its route pattern.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    state.metrics().request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

// -- operations -----------------------------------------------------------------------------

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let index = state.index()?;
    Ok(Json(json!({
        "ready": true,
        "generation": index.generation.name,
        "orders": state.snapshot().orders(),
    })))
}

async fn metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let outbox = state.store().outbox_len()?;
    let webhook_outbox = state.webhook_store().outbox_len()?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(outbox, webhook_outbox),
    )
        .into_response())
}

async fn openapi_json() -> Json<Value> {
    Json(openapi())
}

// -- chat -----------------------------------------------------------------------------------

fn unknown_shop(shop: &str) -> AppError {
    AppError::not_found(
        "unknown_shop",
        format!("this server does not answer for shop {shop:?}"),
    )
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
    }
}

/// Trims and checks a shopper message.
fn checked_message(message: &str) -> Result<String, AppError> {
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

async fn chat(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(request): ApiJson<ChatRequest>,
) -> Result<Json<ChatResponse>, AppError> {
    let started = Instant::now();
    let message = checked_message(&request.message)?;
    let snapshot = state.snapshot();
    let shop = snapshot
        .shop(&request.shop)
        .ok_or_else(|| unknown_shop(&request.shop))?
        .id
        .clone();
    let now = Utc::now();
    let token_identity = request
        .customer_token
        .as_deref()
        .map(|token| {
            identity::verify_token(
                &state.settings().storefront_secret,
                &state.settings().pii_hash_key,
                token,
                now,
            )
        })
        .transpose()
        .map_err(token_error)?;
    let index = state.index()?;
    let understood = state
        .understand(index.clone(), message.clone(), shop.clone())
        .await?;
    let response = state.store().transaction(|tx| {
        let mut conversation = match &request.conversation_id {
            Some(id) => store::conversation(tx, Some(&shop), id)?
                .ok_or_else(AppError::unknown_conversation)?,
            None => Conversation {
                id: uuid::Uuid::new_v4().to_string(),
                shop_id: shop.clone(),
                started_at: now,
                updated_at: now,
                status: "open".into(),
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
        let reply = turn.take(tx, &mut conversation, &message, understood, client)?;
        Ok::<_, AppError>(ChatResponse {
            conversation_id: conversation.id,
            reply,
        })
    })?;
    Ok(Json(response))
}

/// One shopper message being answered, inside the store transaction.
struct Turn<'a> {
    state: &'a AppState,
    snapshot: &'a Snapshot,
    index: &'a LoadedIndex,
    now: DateTime<Utc>,
    started: Instant,
}

enum Verification {
    Verified,
    Failed,
    Locked(u64),
}

const VERIFY_FAILED: &str = "We couldn't verify those details. Please check the order number and the email used at checkout, and try again.";
const VERIFY_LOCKED: &str = "Too many attempts to verify. For your security, please wait a few minutes before trying again, or ask for a person.";

impl Turn<'_> {
    /// Records the shopper's message, answers it and records the answer.
    fn take(
        &self,
        tx: &rusqlite::Transaction<'_>,
        conversation: &mut Conversation,
        message: &str,
        mut understood: Understanding,
        client: SocketAddr,
    ) -> Result<Reply, AppError> {
        let shopper = store::append_message(
            tx,
            &conversation.id,
            "shopper",
            None,
            &pipeline::pii::redact_text(message),
            self.now,
            None,
        )?;
        store::enqueue(
            tx,
            "messages",
            &record::message_row(&conversation.shop_id, conversation, &shopper),
        )?;
        if conversation.status == "handed_off" {
            // A person has the conversation: the message waits for them.
            conversation.updated_at = self.now;
            save_conversation(tx, conversation, None)?;
            return Ok(Reply {
                text: "A person from our team has this conversation and will reply here.".into(),
                automated: true,
                intent: None,
                confidence: None,
                sources: Vec::new(),
                needs_verification: false,
                handoff: conversation.handoff_id.clone().map(|id| HandoffRef {
                    id,
                    reason: "already_handed_off".into(),
                }),
            });
        }
        let mut question = message.to_string();
        // "Order #1042, ana@example.com" typed in the chat is a verification attempt.
        if conversation.identity.is_none()
            && let (Some(number), Some(email)) = (
                understood.entities.order_numbers.first().cloned(),
                understood.entities.emails.first().cloned(),
            )
        {
            match attempt_verification(
                self.state,
                self.snapshot,
                tx,
                conversation,
                &number,
                &email,
                client,
                self.now,
            )? {
                Verification::Verified => {
                    if let Some(pending) = conversation.pending.take() {
                        understood = self.restore(&pending, understood);
                        question = pending.message;
                    }
                }
                Verification::Failed => {
                    let answer = Answer {
                        needs_verification: true,
                        ..Answer::new(Kind::Verification, VERIFY_FAILED)
                    };
                    return self.finish(tx, conversation, &understood, answer);
                }
                Verification::Locked(_) => {
                    let answer = Answer {
                        needs_verification: true,
                        ..Answer::new(Kind::Verification, VERIFY_LOCKED)
                    };
                    return self.finish(tx, conversation, &understood, answer);
                }
            }
        }
        let answer = self.compose(conversation, &question, &understood);
        if answer.needs_verification {
            conversation.pending = Some(Pending {
                message: question,
                intent: understood.intent.clone(),
                confidence: understood.confidence,
            });
        }
        self.finish(tx, conversation, &understood, answer)
    }

    /// The understanding of a question that waited for verification: its own intent and
    /// entities (retrieval is not needed for order intents).
    fn restore(&self, pending: &Pending, understood: Understanding) -> Understanding {
        Understanding {
            intent: pending.intent.clone(),
            confidence: pending.confidence,
            decided_by: "pending",
            entities: index::classifier::entities(&pending.message, &self.index.products),
            hits: understood.hits,
        }
    }

    fn compose(
        &self,
        conversation: &Conversation,
        message: &str,
        understood: &Understanding,
    ) -> Answer {
        let passage = |key: &str| self.index.passage(key);
        let ctx = Context {
            shop: &conversation.shop_id,
            snapshot: self.snapshot,
            identity: conversation.identity.as_ref(),
            now: self.now,
            passage: &passage,
        };
        answer::answer(&ctx, message, understood)
    }

    /// Escalates when the conversation keeps failing, records the answer, and builds the reply.
    fn finish(
        &self,
        tx: &rusqlite::Transaction<'_>,
        conversation: &mut Conversation,
        understood: &Understanding,
        mut answer: Answer,
    ) -> Result<Reply, AppError> {
        let low = answer.abstained()
            || (understood.confidence < CONFIDENCE_FLOOR && answer.kind != Kind::Handoff);
        conversation.low_confidence_streak = if low {
            conversation.low_confidence_streak + 1
        } else {
            0
        };
        if low && conversation.low_confidence_streak >= 2 && answer.handoff_reason.is_none() {
            // Two turns in a row without a good answer: a person takes over.
            answer.handoff_reason = Some(if answer.abstain_reason == Some("missing_data") {
                "missing_data"
            } else {
                "low_confidence"
            });
            answer.kind = Kind::Handoff;
            answer
                .text
                .push_str(" I'm connecting you with a person who can help; they'll reply here.");
        } else if answer.abstain_reason == Some("missing_data") && answer.handoff_reason.is_none() {
            // The records cannot answer it: a person can look further.
            answer.handoff_reason = Some("missing_data");
            answer
                .text
                .push_str(" I've asked a person on our team to look into it; they'll reply here.");
        }
        if conversation.primary_intent.is_none() && understood.intent != "out_of_scope" {
            conversation.primary_intent = Some(understood.intent.clone());
        }
        let latency_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let meta = json!({
            "intent": understood.intent,
            "confidence": understood.confidence,
            "answer_kind": answer.kind.as_str(),
            "abstain_reason": answer.abstain_reason,
            "sources": answer.sources.iter().map(|s| &s.doc_key).collect::<Vec<_>>(),
        });
        let ai = store::append_message(
            tx,
            &conversation.id,
            "ai",
            None,
            &answer.text,
            self.now,
            Some(meta),
        )?;
        let handoff = match answer.handoff_reason {
            Some(reason) => Some(self.hand_off(tx, conversation, understood, &answer, reason)?),
            None => None,
        };
        let turn_row = record::turn_row(
            conversation,
            &ai,
            understood,
            &answer,
            latency_ms,
            &format!("{}/{}", index::MODEL_ID, self.index.generation.name),
        );
        store::enqueue(
            tx,
            "messages",
            &record::message_row(&conversation.shop_id, conversation, &ai),
        )?;
        store::enqueue(tx, "turns", &turn_row)?;
        conversation.last_turn = Some(turn_row);
        conversation.updated_at = self.now;
        save_conversation(tx, conversation, None)?;
        self.state.metrics().answer(
            &understood.intent,
            answer.abstain_reason,
            answer.handoff_reason,
        );
        Ok(Reply {
            text: answer.text,
            automated: true,
            intent: Some(understood.intent.clone()),
            confidence: Some(understood.confidence),
            sources: answer.sources,
            needs_verification: answer.needs_verification,
            handoff,
        })
    }

    /// Opens a handoff with the packet an agent needs.
    fn hand_off(
        &self,
        tx: &rusqlite::Transaction<'_>,
        conversation: &mut Conversation,
        understood: &Understanding,
        answer: &Answer,
        reason: &str,
    ) -> Result<HandoffRef, AppError> {
        let history = store::messages(tx, &conversation.id, None)?;
        let orders: Vec<Value> = answer
            .order
            .or_else(|| conversation.identity.as_ref().and_then(|i| i.order_id))
            .and_then(|id| self.snapshot.order_by_id(&conversation.shop_id, id))
            .map(|o| json!({"name": o.name, "status": answer::order_status(o, self.now)}))
            .into_iter()
            .collect();
        let tried: Vec<&Value> = history.iter().filter_map(|m| m.meta.as_ref()).collect();
        let packet = json!({
            "summary": format!("{} ({}): {}", understood.intent, reason, history.iter().rev().find(|m| m.role == "shopper").map_or("", |m| m.text.as_str())),
            "reason": reason,
            "intent": understood.intent,
            "verified_identity": conversation.identity.as_ref().map(|i| json!({
                "via": i.via, "customer_id": i.customer_id,
                "order": i.order_id.and_then(|id| self.snapshot.order_by_id(&conversation.shop_id, id)).map(|o| o.name.clone())})),
            "orders": orders,
            "products": answer.products.iter().chain(understood.entities.products.iter()).collect::<std::collections::BTreeSet<_>>(),
            "what_the_assistant_tried": tried,
            "history": history,
        });
        let at = store::timestamp(self.now);
        let handoff = Handoff {
            id: format!("{}_h{}", conversation.id, history.len()),
            shop_id: conversation.shop_id.clone(),
            conversation_id: conversation.id.clone(),
            reason: reason.into(),
            intent: Some(understood.intent.clone()),
            status: "open".into(),
            assignee: None,
            packet,
            created_at: at.clone(),
            claimed_at: None,
            first_agent_reply_at: None,
            resolved_at: None,
            updated_at: at,
        };
        store::save_handoff(tx, &handoff)?;
        store::enqueue(tx, "handoffs", &record::handoff_row(&handoff))?;
        conversation.status = "handed_off".into();
        conversation.resolution_path = Some("ai_then_human".into());
        conversation.handoff_id = Some(handoff.id.clone());
        Ok(HandoffRef {
            id: handoff.id,
            reason: reason.into(),
        })
    }
}

/// Saves the conversation's state and queues its lake row.
fn save_conversation(
    tx: &rusqlite::Transaction<'_>,
    conversation: &Conversation,
    assignee: Option<&str>,
) -> Result<(), ServerError> {
    store::save_conversation(tx, conversation)?;
    let ended = store::timestamp(conversation.updated_at);
    store::enqueue(
        tx,
        "conversations",
        &record::conversation_row(conversation, &ended, assignee),
    )
}

/// Checks order number + email under the attempt limits, and on success stores the identity.
#[allow(clippy::too_many_arguments)] // one call site each in chat and verify, all borrowed
fn attempt_verification(
    state: &AppState,
    snapshot: &Snapshot,
    tx: &rusqlite::Transaction<'_>,
    conversation: &mut Conversation,
    order_number: &str,
    email: &str,
    client: SocketAddr,
    now: DateTime<Utc>,
) -> Result<Verification, ServerError> {
    let by_conversation = format!("conversation:{}", conversation.id);
    let by_address = format!("address:{}", client.ip());
    let since = now.timestamp() - identity::ATTEMPT_WINDOW_SECONDS;
    for (scope, limit) in [
        (&by_conversation, identity::CONVERSATION_ATTEMPTS),
        (&by_address, identity::ADDRESS_ATTEMPTS),
    ] {
        if store::failures_since(tx, scope, since)? >= limit {
            let oldest = store::oldest_failure_since(tx, scope, since)?.unwrap_or(now.timestamp());
            let wait = (oldest + identity::ATTEMPT_WINDOW_SECONDS - now.timestamp()).max(1);
            return Ok(Verification::Locked(u64::try_from(wait).unwrap_or(1)));
        }
    }
    match identity::verify_order(
        snapshot,
        &state.settings().pii_hash_key,
        &conversation.shop_id,
        order_number,
        email,
    ) {
        Some(identity) => {
            conversation.identity = Some(identity);
            Ok(Verification::Verified)
        }
        None => {
            store::record_failure(tx, &[&by_conversation, &by_address], now.timestamp(), since)?;
            Ok(Verification::Failed)
        }
    }
}

// -- conversation endpoints -----------------------------------------------------------------

fn existing(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Conversation, AppError> {
    store::conversation(tx, None, id)?.ok_or_else(AppError::unknown_conversation)
}

async fn conversation_messages(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    state.store().transaction(|tx| {
        let conversation = existing(tx, &id)?;
        let messages: Vec<Value> = store::messages(tx, &id, None)?
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

async fn verify(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> Result<Json<Value>, AppError> {
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
    state.store().transaction(|tx| {
        let mut conversation = existing(tx, &id)?;
        match attempt_verification(
            &state,
            &snapshot,
            tx,
            &mut conversation,
            &request.order_number,
            request.email.trim(),
            client,
            now,
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
                let turn = Turn {
                    state: &state,
                    snapshot: &snapshot,
                    index: &index,
                    now,
                    started,
                };
                let understood = turn.restore(
                    &pending,
                    Understanding {
                        intent: String::new(),
                        confidence: 0.0,
                        decided_by: "pending",
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

async fn feedback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<FeedbackRequest>,
) -> Result<Json<Value>, AppError> {
    let now = store::timestamp(Utc::now());
    state.store().transaction(|tx| {
        let mut conversation = existing(tx, &id)?;
        let Some(mut turn) = conversation.last_turn.take() else {
            return Err(AppError::conflict(
                "no_answer_yet",
                "the conversation has no automated answer to rate",
            ));
        };
        turn["helpful"] = json!(request.helpful);
        turn["updated_at"] = json!(now);
        store::enqueue(tx, "turns", &turn)?;
        conversation.last_turn = Some(turn);
        store::save_conversation(tx, &conversation)?;
        Ok(Json(json!({"recorded": true})))
    })
}

async fn csat(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<CsatRequest>,
) -> Result<Json<Value>, AppError> {
    if !(1..=5).contains(&request.score) {
        return Err(AppError::bad_request(
            "invalid_score",
            "score must be an integer from 1 to 5",
        ));
    }
    let now = store::timestamp(Utc::now());
    state.store().transaction(|tx| {
        let conversation = existing(tx, &id)?;
        store::enqueue(
            tx,
            "csat",
            &json!({
                "shop_id": conversation.shop_id,
                "conversation_id": conversation.id,
                "score": request.score,
                "comment": request.comment.as_deref().map(pipeline::pii::redact_text),
                "resolution_path": conversation.resolution_path.as_deref().unwrap_or("ai_only"),
                "created_at": now,
                "updated_at": now,
            }),
        )?;
        Ok(Json(json!({"recorded": true})))
    })
}

async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let now = Utc::now();
    state.store().transaction(|tx| {
        let mut conversation = existing(tx, &id)?;
        if conversation.status == "handed_off" {
            return Err(AppError::conflict(
                "handed_off",
                "a person has this conversation; they resolve it",
            ));
        }
        conversation.status = "resolved".into();
        conversation
            .resolution_path
            .get_or_insert_with(|| "ai_only".into());
        conversation.updated_at = now;
        save_conversation(tx, &conversation, None)?;
        Ok(Json(
            json!({"status": conversation.status, "resolution_path": conversation.resolution_path}),
        ))
    })
}

// -- the agents' handoff inbox --------------------------------------------------------------

/// Checks the agent bearer token (constant time).
fn agent(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    crate::pages::bearer(
        headers,
        &state.settings().agent_token,
        "agent_token_required",
        "agent",
    )
}

fn handoff_or_404(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Handoff, AppError> {
    store::handoff(tx, id)?
        .ok_or_else(|| AppError::not_found("unknown_handoff", "no handoff with this id"))
}

async fn list_handoffs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HandoffQuery>,
) -> Result<Json<Value>, AppError> {
    agent(&state, &headers)?;
    if let Some(status) = query.status.as_deref()
        && !["open", "claimed", "resolved"].contains(&status)
    {
        return Err(AppError::bad_request(
            "invalid_status",
            "status is open, claimed or resolved",
        ));
    }
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
    state.store().transaction(|tx| {
        let handoffs = store::handoffs(tx, query.status.as_deref(), shop.as_deref(), 500)?;
        Ok(Json(json!({"handoffs": handoffs})))
    })
}

async fn get_handoff(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Handoff>, AppError> {
    agent(&state, &headers)?;
    state
        .store()
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
    let now = store::timestamp(Utc::now());
    state.store().transaction(|tx| {
        let mut handoff = handoff_or_404(tx, id)?;
        let mut conversation = existing(tx, &handoff.conversation_id)?;
        change(tx, &mut handoff, &mut conversation, &now)?;
        handoff.updated_at = now.clone();
        store::save_handoff(tx, &handoff)?;
        store::enqueue(tx, "handoffs", &record::handoff_row(&handoff))?;
        conversation.updated_at = Utc::now();
        save_conversation(tx, &conversation, handoff.assignee.as_deref())?;
        Ok(Json(handoff))
    })
}

async fn claim_handoff(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ClaimRequest>,
) -> Result<Json<Handoff>, AppError> {
    agent(&state, &headers)?;
    let name = request.agent.trim().to_string();
    if name.is_empty() {
        return Err(AppError::bad_request("missing_field", "agent is required"));
    }
    update_handoff(&state, &id, |_, handoff, _, now| {
        match (&handoff.status[..], handoff.assignee.as_deref()) {
            ("resolved", _) => {
                return Err(AppError::conflict(
                    "already_resolved",
                    "the handoff is resolved",
                ));
            }
            ("claimed", Some(other)) if other != name => {
                return Err(AppError::conflict(
                    "already_claimed",
                    format!("{other} has claimed this handoff"),
                ));
            }
            _ => {}
        }
        handoff.status = "claimed".into();
        handoff.assignee = Some(name.clone());
        handoff.claimed_at.get_or_insert_with(|| now.to_string());
        Ok(())
    })
}

async fn reply_handoff(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AgentReplyRequest>,
) -> Result<Json<Handoff>, AppError> {
    agent(&state, &headers)?;
    let text = checked_message(&request.text)?;
    update_handoff(&state, &id, |tx, handoff, conversation, now| {
        if handoff.status != "claimed" {
            return Err(AppError::conflict(
                "not_claimed",
                "claim the handoff before replying",
            ));
        }
        let message = store::append_message(
            tx,
            &conversation.id,
            "agent",
            handoff.assignee.as_deref(),
            &text,
            Utc::now(),
            None,
        )?;
        store::enqueue(
            tx,
            "messages",
            &record::message_row(&conversation.shop_id, conversation, &message),
        )?;
        handoff
            .first_agent_reply_at
            .get_or_insert_with(|| now.to_string());
        Ok(())
    })
}

async fn resolve_handoff(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Handoff>, AppError> {
    agent(&state, &headers)?;
    update_handoff(&state, &id, |_, handoff, conversation, now| {
        if handoff.status == "resolved" {
            return Err(AppError::conflict(
                "already_resolved",
                "the handoff is resolved",
            ));
        }
        handoff.status = "resolved".into();
        handoff.resolved_at = Some(now.to_string());
        conversation.status = "resolved".into();
        conversation.resolution_path = Some("ai_then_human".into());
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_documented_once_with_its_method() {
        let doc = openapi();
        let mut seen = std::collections::BTreeSet::new();
        for e in ENDPOINTS {
            assert!(
                seen.insert((e.method.as_str(), e.path)),
                "{} {} twice",
                e.method,
                e.path
            );
            let operation = &doc["paths"][e.path][e.method.as_str().to_lowercase()];
            assert_eq!(operation["summary"], e.summary, "{}", e.path);
            assert_eq!(
                operation.get("requestBody").is_some(),
                e.request.is_some(),
                "{}",
                e.path
            );
            assert_eq!(
                operation["security"][0]
                    .as_object()
                    .and_then(|o| o.keys().next().cloned()),
                e.auth.scheme().map(String::from),
                "{}",
                e.path
            );
        }
        assert_eq!(
            doc["paths"]
                .as_object()
                .unwrap()
                .values()
                .map(|p| p.as_object().unwrap().len())
                .sum::<usize>(),
            ENDPOINTS.len()
        );
    }

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
