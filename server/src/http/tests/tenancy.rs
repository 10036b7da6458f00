//! Shops that never see each other: two installed shops whose customer ids, order ids and
//! order numbers collide, reached the three ways a storefront reaches the API (a signed
//! customer token, Shopify's app proxy, CORS from the shop's own origin). One test per
//! path; each would fail if the path forgot the shop.

use axum::http::{Method, StatusCode};
use chrono::Utc;
use serde_json::{Value, json};
use testkit::{SHOP_A, SHOP_B, in_shop_b, in_transit, sign_token};

use super::{ORIGIN_A, STOREFRONT_A, STOREFRONT_B, Server, asking_about, number_and_email};
use crate::shopify::proxy;

/// The order's shopper: customer id and email.
fn shopper(order: &Value) -> (i64, String) {
    (
        order["customer"]["id"].as_i64().unwrap(),
        order["email"].as_str().unwrap().to_string(),
    )
}

impl Server {
    /// `POST path` with a JSON body from a browser page at `origin`.
    async fn post_with_origin(&self, origin: &str, path: &str, body: &Value) -> super::Answered {
        self.call(
            Method::POST,
            path,
            &[("content-type", "application/json"), ("origin", origin)],
            body.to_string(),
        )
        .await
    }

    /// The CORS preflight a browser at `origin` sends before `POST /v1/chat`.
    async fn preflight(&self, origin: &str) -> super::Answered {
        self.call(
            Method::OPTIONS,
            "/v1/chat",
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
            "",
        )
        .await
    }

    /// `POST /proxy/<path>` as Shopify forwards a storefront call for `shop`, signed with
    /// the app's client secret, `customer` signed in (or nobody), at `timestamp`.
    async fn through_proxy(
        &self,
        shop: &str,
        customer: Option<i64>,
        timestamp: i64,
        path: &str,
        body: &Value,
    ) -> super::Answered {
        let query = format!(
            "shop={shop}&logged_in_customer_id={}&path_prefix=%2Fapps%2Fsupportlake&timestamp={timestamp}",
            customer.map(|c| c.to_string()).unwrap_or_default()
        );
        let signature = proxy::sign(&self.state.config().shopify_client_secret, &query);
        let separator = if path.contains('?') { '&' } else { '?' };
        self.call(
            Method::POST,
            &format!("/proxy{path}{separator}{query}&signature={signature}"),
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
    }
}

#[tokio::test]
async fn a_customer_token_answers_only_in_the_shop_whose_secret_signed_it() {
    let server = Server::start().await;
    let order = in_transit();
    let (number, _) = number_and_email(&order);
    let (customer, email) = shopper(&order);
    let expires = Utc::now().timestamp() + 600;
    let ask = |shop: &str, token: String| json!({"shop": shop, "message": asking_about(&number), "customer_token": token});

    // Shop A's token in shop A: verified, answered from shop A's order.
    let token_a = sign_token(STOREFRONT_A, SHOP_A, customer, &email, expires);
    let answered = server.post("/v1/chat", &ask(SHOP_A, token_a.clone())).await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.body);
    assert_eq!(
        answered.body["reply"]["needs_verification"], false,
        "{}",
        answered.body
    );
    assert_eq!(
        answered.body["reply"]["sources"][0]["doc_key"],
        format!("order:#{number}")
    );

    // The same token sent to shop B, whose customer has the same id: refused.
    let crossed = server.post("/v1/chat", &ask(SHOP_B, token_a)).await;
    assert_eq!(
        crossed.error(),
        (401, Some("token_for_another_shop")),
        "{}",
        crossed.body
    );
    // Relabelled for shop B but signed with A's secret: refused.
    let forged = sign_token(STOREFRONT_A, SHOP_B, customer, &in_shop_b(&email), expires);
    let forged = server.post("/v1/chat", &ask(SHOP_B, forged)).await;
    assert_eq!(
        forged.error(),
        (401, Some("invalid_customer_token")),
        "{}",
        forged.body
    );
    // Shop B's own token for its own shopper opens shop B's order.
    let token_b = sign_token(STOREFRONT_B, SHOP_B, customer, &in_shop_b(&email), expires);
    let in_b = server.post("/v1/chat", &ask(SHOP_B, token_b)).await;
    assert_eq!(in_b.status, StatusCode::OK, "{}", in_b.body);
    assert_eq!(
        in_b.body["reply"]["needs_verification"], false,
        "{}",
        in_b.body
    );
}

#[tokio::test]
async fn an_app_proxy_request_speaks_for_its_signed_shop_and_customer_only() {
    let server = Server::start().await;
    let order = in_transit();
    let (number, _) = number_and_email(&order);
    let (customer, _) = shopper(&order);
    let now = Utc::now().timestamp();
    let ask = json!({"message": asking_about(&number)});

    // Signed in on shop A's storefront: answered without the order form.
    let signed_in = server
        .through_proxy(SHOP_A, Some(customer), now, "/v1/chat", &ask)
        .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(
        signed_in.body["reply"]["needs_verification"], false,
        "{}",
        signed_in.body
    );
    assert_eq!(
        signed_in.body["reply"]["sources"][0]["doc_key"],
        format!("order:#{number}")
    );
    let conversation = signed_in.body["conversation_id"].as_str().unwrap();

    // Nobody signed in: the order form, as on any page.
    let anonymous = server
        .through_proxy(SHOP_A, None, now, "/v1/chat", &ask)
        .await;
    assert_eq!(
        anonymous.body["reply"]["needs_verification"], true,
        "{}",
        anonymous.body
    );

    // Shop A's conversation through shop B's proxy does not exist, however it is asked.
    let crossed = server
        .through_proxy(
            SHOP_B,
            Some(customer),
            now,
            "/v1/chat",
            &json!({"conversation_id": conversation, "message": "where is my order?"}),
        )
        .await;
    assert_eq!(
        crossed.error(),
        (404, Some("unknown_conversation")),
        "{}",
        crossed.body
    );
    let resolved = server
        .through_proxy(
            SHOP_B,
            None,
            now,
            &format!("/v1/conversations/{conversation}/resolve"),
            &json!({}),
        )
        .await;
    assert_eq!(
        resolved.error(),
        (404, Some("unknown_conversation")),
        "{}",
        resolved.body
    );
    // A body naming shop A cannot ride on shop B's signature.
    let mismatch = server
        .through_proxy(
            SHOP_B,
            None,
            now,
            "/v1/chat",
            &json!({"shop": SHOP_A, "message": "hi"}),
        )
        .await;
    assert_eq!(
        mismatch.error(),
        (403, Some("shop_mismatch")),
        "{}",
        mismatch.body
    );

    // Stale, unsigned and altered requests are refused with their codes.
    let stale = server
        .through_proxy(SHOP_A, Some(customer), now - 600, "/v1/chat", &ask)
        .await;
    assert_eq!(
        stale.error(),
        (401, Some("stale_proxy_request")),
        "{}",
        stale.body
    );
    let unsigned = server.post("/proxy/v1/chat?shop=x", &ask).await;
    assert_eq!(unsigned.error(), (401, Some("proxy_signature_required")));
    let query = format!("shop={SHOP_A}&logged_in_customer_id={customer}&timestamp={now}");
    let signature = proxy::sign(&server.state.config().shopify_client_secret, &query);
    let altered = query.replace(&customer.to_string(), &(customer + 1).to_string());
    let altered = server
        .post(
            &format!("/proxy/v1/chat?{altered}&signature={signature}"),
            &ask,
        )
        .await;
    assert_eq!(altered.error(), (401, Some("invalid_proxy_signature")));
}

#[tokio::test]
async fn a_shops_answer_cites_only_its_own_passages() {
    let server = Server::start().await;
    // The second shop's policies are the demo's with the shop's name changed, under the
    // same passage keys: a lookup by key alone would mix them.
    let index = server.state.index().unwrap();
    let key = index
        .generation
        .passages
        .iter()
        .find(|p| p.shop_id == SHOP_A && p.key.starts_with("policy:refund"))
        .map(|p| p.key.clone())
        .expect("shop A has a refund policy");
    let in_a = index.passage(SHOP_A, &key).unwrap();
    let in_b = index.passage(SHOP_B, &key).unwrap();
    assert!(in_a.text.contains("Ridgeline"), "{}", in_a.text);
    assert!(
        in_b.text.contains("Summit") && !in_b.text.contains("Ridgeline"),
        "{}",
        in_b.text
    );

    let reply = server
        .chat(SHOP_B, None, "what is your return policy for refunds")
        .await;
    let sources = reply["reply"]["sources"].as_array().unwrap();
    assert!(!sources.is_empty(), "{reply}");
    let text = reply.to_string();
    assert!(
        !text.contains("Ridgeline"),
        "shop B's answer quotes shop A: {text}"
    );
}

#[tokio::test]
async fn a_storefront_origin_reaches_only_its_own_shop() {
    let server = Server::start().await;
    let allowed = server.preflight(ORIGIN_A).await;
    assert!(allowed.status.is_success(), "{:?}", allowed.status);
    assert_eq!(allowed.headers["access-control-allow-origin"], ORIGIN_A);
    assert!(
        allowed
            .headers
            .get("access-control-allow-credentials")
            .is_none(),
        "no credentials: the API uses no cookies"
    );
    let stranger = server.preflight("https://elsewhere.example").await;
    assert!(
        stranger
            .headers
            .get("access-control-allow-origin")
            .is_none(),
        "an origin no shop allows gets no CORS headers: {:?}",
        stranger.headers
    );

    let hello = json!({"shop": SHOP_A, "message": "do you sell tents"});
    let own = server.post_with_origin(ORIGIN_A, "/v1/chat", &hello).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(own.headers["access-control-allow-origin"], ORIGIN_A);
    // Shop A's page driving shop B's chat, and shop B's own origin driving shop A's.
    let hello_b = json!({"shop": SHOP_B, "message": "do you sell tents"});
    let crossed = server
        .post_with_origin(ORIGIN_A, "/v1/chat", &hello_b)
        .await;
    assert_eq!(
        crossed.error(),
        (403, Some("origin_not_allowed")),
        "{}",
        crossed.body
    );
    let b_origin = format!("https://{SHOP_B}");
    let crossed = server.post_with_origin(&b_origin, "/v1/chat", &hello).await;
    assert_eq!(
        crossed.error(),
        (403, Some("origin_not_allowed")),
        "{}",
        crossed.body
    );
    let b_own = server
        .post_with_origin(&b_origin, "/v1/chat", &hello_b)
        .await;
    assert_eq!(b_own.status, StatusCode::OK, "{}", b_own.body);
}
