//! What a client is told when it asks wrongly (a 4xx with a stable `code`, never a 5xx), and
//! the API document against the routes the router serves.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{AGENT_TOKEN, SHOP_A, Server};
use crate::http::openapi::ENDPOINTS;

/// A `POST /v1/chat` body as bytes with its content type, and the status and code it gets.
type Case = (Vec<u8>, &'static str, u16, &'static str);

#[tokio::test]
async fn bad_chat_requests_get_a_4xx_with_a_stable_code() {
    let server = Server::start().await;
    let json = "application/json";
    let body = |value: serde_json::Value| value.to_string().into_bytes();
    let cases: Vec<Case> = vec![
        (b"{not json".to_vec(), json, 400, "invalid_json"),
        (
            body(json!({"shop": 7, "message": "hi"})),
            json,
            400,
            "invalid_field",
        ),
        (body(json!({"shop": SHOP_A})), json, 400, "invalid_field"),
        (body(json!({"message": "hi"})), json, 400, "missing_shop"),
        (
            body(json!({"shop": SHOP_A, "message": "hi", "extra": 1})),
            json,
            400,
            "invalid_field",
        ),
        (
            b"{\"shop\": \"x\", \"message\": \"\xff\xfe\"}".to_vec(),
            json,
            400,
            "invalid_utf8",
        ),
        (
            body(json!({"shop": SHOP_A, "message": "   "})),
            json,
            400,
            "empty_message",
        ),
        (
            body(json!({"shop": SHOP_A, "message": "a".repeat(10_000)})),
            json,
            400,
            "message_too_long",
        ),
        (
            body(json!({"shop": "no-such-shop.myshopify.com", "message": "hi"})),
            json,
            404,
            "unknown_shop",
        ),
        (
            body(json!({"shop": SHOP_A, "message": "hi", "conversation_id": "nope"})),
            json,
            404,
            "unknown_conversation",
        ),
        (
            body(json!({"shop": SHOP_A, "message": "hi", "customer_token": "1:a@b.c:99:00"})),
            json,
            401,
            "invalid_customer_token",
        ),
        (
            body(json!({"shop": SHOP_A, "message": "a".repeat(70_000)})),
            json,
            413,
            "body_too_large",
        ),
        (
            b"shop=x&message=hi".to_vec(),
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
    ];
    for (bytes, content_type, status, code) in cases {
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
        let got = server
            .call(
                Method::POST,
                "/v1/chat",
                &[("content-type", content_type)],
                bytes,
            )
            .await;
        assert_eq!(got.error(), (status, Some(code)), "{shown}: {}", got.body);
    }
    assert_no_5xx(&server).await;
}

#[tokio::test]
async fn bad_conversation_and_inbox_requests_get_a_4xx_with_a_stable_code() {
    let server = Server::start().await;
    let unknown = server
        .get(&format!("/v1/conversations/nope?shop={SHOP_A}"))
        .await;
    assert_eq!(unknown.error(), (404, Some("unknown_conversation")));
    let unknown = server.verify("nope", "1001", "a@example.com").await;
    assert_eq!(unknown.error(), (404, Some("unknown_conversation")));

    let first = server
        .chat(SHOP_A, None, "what payment methods do you accept?")
        .await;
    let conversation = first["conversation_id"].as_str().unwrap();
    let missing = server.verify(conversation, "", " ").await;
    assert_eq!(missing.error(), (400, Some("missing_field")));
    let score = server
        .post(
            &format!("/v1/conversations/{conversation}/csat?shop={SHOP_A}"),
            &json!({"score": 9}),
        )
        .await;
    assert_eq!(score.error(), (400, Some("invalid_score")));

    // The inbox needs the agent token: none, a wrong one, and a malformed header are refused alike.
    for headers in [
        vec![],
        vec![("authorization", "Bearer not-the-token".to_string())],
        vec![("authorization", AGENT_TOKEN.to_string())],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        for path in ["/v1/handoffs", "/v1/handoffs/nope"] {
            let got = server
                .call(Method::GET, path, &headers, Body::empty())
                .await;
            assert_eq!(
                got.error(),
                (401, Some("agent_token_required")),
                "{path} {headers:?}"
            );
        }
    }
    let unknown = server.agent(Method::GET, "/v1/handoffs/nope", None).await;
    assert_eq!(unknown.error(), (404, Some("unknown_handoff")));
    let status = server
        .agent(Method::GET, "/v1/handoffs?status=lost", None)
        .await;
    assert_eq!(status.error(), (400, Some("invalid_status")));

    let nowhere = server.get("/v1/nothing-here").await;
    assert_eq!(nowhere.error(), (404, Some("not_found")));
    let method = server.get("/v1/chat").await;
    assert_eq!(method.error(), (405, Some("method_not_allowed")));
    let method = server
        .call(Method::DELETE, "/v1/handoffs", &[], Body::empty())
        .await;
    assert_eq!(method.error(), (405, Some("method_not_allowed")));
    assert_no_5xx(&server).await;
}

/// The server's own count of its answers has no 5xx in it.
async fn assert_no_5xx(server: &Server) {
    let metrics = server.get("/metrics").await;
    let text = metrics.body.as_str().unwrap();
    assert!(text.contains("supportlake_http_requests_total"), "{text}");
    assert!(!text.contains("status=\"5"), "no 5xx: {text}");
}

#[tokio::test]
async fn the_api_document_lists_every_route_the_router_serves() {
    let server = Server::start().await;
    let got = server.get("/openapi.json").await;
    assert_eq!(got.status, StatusCode::OK);
    let doc = &got.body;
    assert!(doc.is_object(), "the document is JSON: {doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths
        .values()
        .map(|operations| operations.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, ENDPOINTS.len(), "one operation per route");
    for e in ENDPOINTS {
        let method = e.method.as_str().to_lowercase();
        assert!(
            doc["paths"][e.path][&method].is_object(),
            "{} {} is documented",
            e.method,
            e.path
        );
        // The router serves the route with that method: whatever the handler makes of an
        // empty request, it is not the router's "no such route" or "not that method".
        let path = e.path.replace("{id}", "nope").replace("{name}", "nope");
        let served = server
            .call(e.method.clone(), &path, &[], Body::empty())
            .await;
        assert!(
            !matches!(served.code(), Some("not_found" | "method_not_allowed")),
            "{} {path}: {:?}",
            e.method,
            served.error()
        );
    }
    // The pages are served, and are not part of the JSON API's document.
    for page in ["/", "/widget.js", "/ui.js", "/inbox", "/dashboard"] {
        let got = server.get(page).await;
        assert_eq!(got.status, StatusCode::OK, "{page}");
        assert!(doc["paths"].get(page).is_none(), "{page} is not documented");
    }
}

#[tokio::test]
async fn an_empty_configured_token_lets_nobody_in() {
    let server = Server::start_with(|config| {
        config.agent_token.clear();
        config.analyst_token.clear();
    })
    .await;
    for (path, code) in [
        ("/v1/handoffs", "agent_token_required"),
        ("/v1/reports", "analyst_token_required"),
    ] {
        let bare = server.get(path).await;
        assert_eq!(bare.error(), (401, Some(code)), "{path} without a header");
        let empty = server
            .call(Method::GET, path, &[("authorization", "Bearer ")], "")
            .await;
        assert_eq!(
            empty.error(),
            (401, Some(code)),
            "{path} with an empty bearer"
        );
    }
}
