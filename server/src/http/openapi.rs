//! The route table ([`ENDPOINTS`]) and the OpenAPI document made from it: a route cannot
//! exist without its documentation or the other way round.

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodRouter, get, post};
use serde_json::{Value, json};

use super::{chat, conversations, handoffs, health, install, reports, webhooks};
use crate::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone (probes, the API document, Shopify's signed webhooks).
    Public,
    /// A shopper's browser on the shop's storefront: CORS for the shop's origins, and the
    /// same route under `/proxy` for Shopify's app proxy (`http::storefront`). The shop is
    /// named in the body or `?shop=`.
    Shopper,
    /// Support agents (`agent_token`).
    Agent,
    /// Analysts and content owners (`analyst_token`).
    Analyst,
}

impl Auth {
    /// The OpenAPI security scheme's name.
    fn scheme(self) -> Option<&'static str> {
        match self {
            Self::Public | Self::Shopper => None,
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
        handler: || get(health::healthz),
    },
    Endpoint {
        method: Method::GET,
        path: "/readyz",
        summary: "Readiness: an index generation is loaded (503 with code not_ready otherwise).",
        auth: Auth::Public,
        request: None,
        response: || json!({"type": "object", "properties": {"ready": {"type": "boolean"}, "generation": {"type": "string"}, "orders": {"type": "integer"}}}),
        handler: || get(health::readyz),
    },
    Endpoint {
        method: Method::GET,
        path: "/metrics",
        summary: "Prometheus metrics: requests, latencies, intents, handoffs, abstentions.",
        auth: Auth::Public,
        request: None,
        response: || json!({"type": "string"}),
        handler: || get(health::metrics),
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
        auth: Auth::Shopper,
        request: Some(|| {
            json!({"type": "object", "required": ["message"], "additionalProperties": false, "properties": {
            "shop": {"type": "string", "description": "the shop's myshopify domain (or a domain the lake knows for it); required unless the request came through the app proxy"},
            "conversation_id": {"type": ["string", "null"], "description": "omit to start a conversation"},
            "message": {"type": "string", "minLength": 1, "maxLength": chat::MESSAGE_LIMIT},
            "customer_token": {"type": ["string", "null"], "description": "shop:customer_id:email:expires:hex(HMAC-SHA256(the shop's storefront secret, shop:customer_id:email:expires)), living at most 24 h"}}})
        }),
        response: || {
            json!({"type": "object", "required": ["conversation_id", "reply"], "properties": {
            "conversation_id": {"type": "string"}, "reply": reply_schema()}})
        },
        handler: || post(chat::chat),
    },
    Endpoint {
        method: Method::GET,
        path: "/v1/conversations/{id}",
        summary: "The conversation's messages (for the chat widget to show agent replies).",
        auth: Auth::Shopper,
        request: None,
        response: || {
            json!({"type": "object", "properties": {"conversation_id": {"type": "string"}, "status": {"type": "string"},
            "messages": {"type": "array", "items": {"type": "object"}}}})
        },
        handler: || get(conversations::messages),
    },
    Endpoint {
        method: Method::POST,
        path: "/v1/conversations/{id}/verify",
        summary: "Verify with order number and email. One generic failure; attempts limited per conversation and client address (429 verification_locked). Answers a waiting question on success.",
        auth: Auth::Shopper,
        request: Some(|| {
            json!({"type": "object", "required": ["order_number", "email"], "additionalProperties": false,
            "properties": {"order_number": {"type": "string"}, "email": {"type": "string"}}})
        }),
        response: || {
            json!({"type": "object", "required": ["verified"], "properties": {"verified": {"type": "boolean"},
            "message": {"type": "string"}, "reply": reply_schema()}})
        },
        handler: || post(conversations::verify),
    },
    Endpoint {
        method: Method::POST,
        path: "/v1/conversations/{id}/feedback",
        summary: "Was the latest automated answer helpful?",
        auth: Auth::Shopper,
        request: Some(
            || json!({"type": "object", "required": ["helpful"], "properties": {"helpful": {"type": "boolean"}}}),
        ),
        response: || json!({"type": "object", "properties": {"recorded": {"type": "boolean"}}}),
        handler: || post(conversations::feedback),
    },
    Endpoint {
        method: Method::POST,
        path: "/v1/conversations/{id}/csat",
        summary: "The shopper's satisfaction score, 1 to 5.",
        auth: Auth::Shopper,
        request: Some(
            || json!({"type": "object", "required": ["score"], "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}, "comment": {"type": ["string", "null"]}}}),
        ),
        response: || json!({"type": "object", "properties": {"recorded": {"type": "boolean"}}}),
        handler: || post(conversations::csat),
    },
    Endpoint {
        method: Method::POST,
        path: "/v1/conversations/{id}/resolve",
        summary: "The shopper says their question is answered.",
        auth: Auth::Shopper,
        request: None,
        response: || json!({"type": "object", "properties": {"status": {"type": "string"}, "resolution_path": {"type": "string"}}}),
        handler: || post(conversations::resolve),
    },
    Endpoint {
        method: Method::GET,
        path: "/v1/handoffs",
        summary: "The handoff inbox, oldest first; ?status=open|claimed|resolved&shop=…",
        auth: Auth::Agent,
        request: None,
        response: || json!({"type": "object", "properties": {"handoffs": {"type": "array", "items": handoff_schema()}}}),
        handler: || get(handoffs::list),
    },
    Endpoint {
        method: Method::GET,
        path: "/v1/handoffs/{id}",
        summary: "One handoff with its packet.",
        auth: Auth::Agent,
        request: None,
        response: handoff_schema,
        handler: || get(handoffs::get),
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
        handler: || post(handoffs::claim),
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
        handler: || post(handoffs::reply),
    },
    Endpoint {
        method: Method::POST,
        path: "/v1/handoffs/{id}/resolve",
        summary: "The agent closes the handoff and its conversation.",
        auth: Auth::Agent,
        request: None,
        response: handoff_schema,
        handler: || post(handoffs::resolve),
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
        handler: || get(reports::list),
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
        handler: || get(reports::report),
    },
    Endpoint {
        method: Method::GET,
        path: "/auth",
        summary: "Install on a shop: ?shop=<shop>.myshopify.com (400 invalid_shop). 303 to the shop's OAuth consent screen, with a signed state cookie.",
        auth: Auth::Public,
        request: None,
        response: || json!({"type": "object"}),
        handler: || get(install::begin),
    },
    Endpoint {
        method: Method::GET,
        path: "/auth/callback",
        summary: "Shopify's redirect after consent: hmac (401 invalid_hmac), timestamp (401 stale_oauth_callback), state cookie (403 invalid_oauth_state); the code is traded for an expiring offline token, sealed in the shop registry (502 code_exchange_failed).",
        auth: Auth::Public,
        request: None,
        response: || json!({"type": "string", "description": "an HTML page"}),
        handler: || get(install::callback),
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
            post(webhooks::receive).layer(DefaultBodyLimit::max(webhooks::WEBHOOK_BODY_LIMIT))
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
        let mut parameters: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if e.auth == Auth::Shopper && e.path.starts_with("/v1/conversations/") {
            parameters.push(json!({"name": "shop", "in": "query", "required": true,
                "description": "the conversation's shop (through the app proxy, Shopify's signed `shop`)",
                "schema": {"type": "string"}}));
        }
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

async fn openapi_json() -> Json<Value> {
    Json(openapi())
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
}
