//! The conversation rules as a shopper and an agent meet them: no order fact before
//! verification, escalation to a person, throttled verification, and shops that never
//! answer for each other.

use std::net::SocketAddr;

use axum::http::{Method, StatusCode};
use index::{Embedder, HashingEmbedder};
use serde_json::{Value, json};

use testkit::{SHOP_A, SHOP_B, in_shop_b, in_transit, orders};

use super::{Server, asking_about, number_and_email};
use crate::conversation::verification::{
    ADDRESS_ATTEMPTS, ATTEMPT_WINDOW_SECONDS, CONVERSATION_ATTEMPTS, VERIFY_FAILED, VERIFY_LOCKED,
};
use crate::state::chat;

/// Starts a conversation in `shop` by asking about order `number`; its id.
async fn order_question(server: &Server, shop: &str, number: &str) -> String {
    let first = server.chat(shop, None, &asking_about(number)).await;
    assert_eq!(first["reply"]["needs_verification"], true, "{first}");
    first["conversation_id"].as_str().unwrap().to_string()
}

/// The texts of a handoff packet's history.
fn history(packet: &Value) -> Vec<String> {
    packet["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

/// Asserts that `text` says nothing about the order's shipment.
fn reveals_nothing(text: &str, order: &Value) {
    let shipment = &order["fulfillments"][0];
    for secret in [
        shipment["tracking_company"].as_str().unwrap(),
        shipment["tracking_number"].as_str().unwrap(),
        "on its way",
        "in transit",
        "delivered",
        "shipped",
    ] {
        assert!(
            !text.contains(secret),
            "an unverified reply reveals {secret:?}: {text}"
        );
    }
}

#[tokio::test]
async fn an_order_question_is_answered_only_after_verification() {
    let server = Server::start().await;
    let order = in_transit();
    let (number, email) = number_and_email(&order);
    let shipment = &order["fulfillments"][0];

    let first = server.chat(SHOP_A, None, &asking_about(&number)).await;
    let reply = &first["reply"];
    assert_eq!(reply["intent"], "order_status", "{first}");
    assert_eq!(reply["needs_verification"], true, "{first}");
    assert!(reply["sources"].as_array().unwrap().is_empty(), "{first}");
    reveals_nothing(reply["text"].as_str().unwrap(), &order);
    let conversation = first["conversation_id"].as_str().unwrap();
    let thread = server
        .get(&format!("/v1/conversations/{conversation}?shop={SHOP_A}"))
        .await;
    assert_eq!(thread.body["verified"], false, "{}", thread.body);

    // The email is compared as the lake holds it (case does not matter), and the question
    // that waited is answered from the order.
    let verified = server
        .verify(conversation, &number, &email.to_uppercase())
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(verified.body["verified"], true, "{}", verified.body);
    let reply = &verified.body["reply"];
    let text = reply["text"].as_str().unwrap();
    for fact in [
        shipment["tracking_company"].as_str().unwrap(),
        shipment["tracking_number"].as_str().unwrap(),
    ] {
        assert!(text.contains(fact), "{fact:?} in {text}");
    }
    assert_eq!(reply["intent"], "order_status", "{reply}");
    assert_eq!(reply["needs_verification"], false, "{reply}");
    assert_eq!(reply["sources"][0]["doc_key"], format!("order:#{number}"));
    let thread = server
        .get(&format!("/v1/conversations/{conversation}?shop={SHOP_A}"))
        .await;
    assert_eq!(thread.body["verified"], true, "{}", thread.body);
}

#[tokio::test]
async fn an_order_number_and_email_typed_in_the_chat_verify_and_answer_the_waiting_question() {
    let server = Server::start().await;
    let order = in_transit();
    let (number, email) = number_and_email(&order);
    let first = server.chat(SHOP_A, None, &asking_about(&number)).await;
    assert_eq!(first["reply"]["needs_verification"], true, "{first}");
    let conversation = first["conversation_id"].as_str().unwrap();
    let typed = server
        .chat(
            SHOP_A,
            Some(conversation),
            &format!("order #{number}, {email}"),
        )
        .await;
    let reply = &typed["reply"];
    assert_eq!(reply["needs_verification"], false, "{typed}");
    assert_eq!(reply["intent"], "order_status", "{typed}");
    let tracking = order["fulfillments"][0]["tracking_number"]
        .as_str()
        .unwrap();
    assert!(
        reply["text"].as_str().unwrap().contains(tracking),
        "{typed}"
    );
}

#[tokio::test]
async fn a_turn_records_the_model_that_understood_it() {
    let server = Server::start().await;
    let first = server
        .chat(SHOP_A, None, "what payment methods do you accept?")
        .await;
    let id = first["conversation_id"].as_str().unwrap();
    let conversation = server
        .state
        .chat()
        .transaction(|tx| chat::conversation(tx, None, id))
        .unwrap()
        .expect("the conversation is stored");
    let generation = server.state.index().unwrap().generation.name.clone();
    assert_eq!(
        conversation.last_turn.unwrap().model_version,
        Some(format!("{}/{generation}", HashingEmbedder.model_id()))
    );
}

#[tokio::test]
async fn two_answers_in_a_row_without_confidence_hand_off_to_a_person() {
    let server = Server::start().await;
    let once = server
        .chat(SHOP_A, None, "what's the weather in Paris tomorrow?")
        .await;
    assert!(
        once["reply"]["handoff"].is_null(),
        "one miss is not enough: {once}"
    );
    assert!(
        once["reply"]["sources"].as_array().unwrap().is_empty(),
        "{once}"
    );
    let conversation = once["conversation_id"].as_str().unwrap();
    let twice = server
        .chat(
            SHOP_A,
            Some(conversation),
            "who won the football game last night?",
        )
        .await;
    let handoff = &twice["reply"]["handoff"];
    assert_eq!(handoff["reason"], "low_confidence", "{twice}");

    let got = server
        .agent(
            Method::GET,
            &format!("/v1/handoffs/{}", handoff["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    assert_eq!(got.body["shop_id"], SHOP_A);
    assert_eq!(got.body["conversation_id"], conversation);
    let packet = &got.body["packet"];
    assert_eq!(packet["reason"], "low_confidence", "{packet}");
    assert_eq!(packet["intent"], twice["reply"]["intent"], "{packet}");
    assert!(packet["verified_identity"].is_null(), "{packet}");
    let history = history(packet);
    for asked in [
        "what's the weather in Paris tomorrow?",
        "who won the football game last night?",
    ] {
        assert!(
            history.iter().any(|m| m == asked),
            "{asked:?} in {history:?}"
        );
    }
}

#[tokio::test]
async fn asking_for_a_person_hands_off_at_once_with_the_conversation_and_the_identity() {
    let server = Server::start().await;
    let order = &orders()[0];
    let (number, email) = number_and_email(order);
    let customer = order["customer"]["id"].as_i64().unwrap();
    let first = server.chat(SHOP_A, None, &asking_about(&number)).await;
    let conversation = first["conversation_id"].as_str().unwrap().to_string();
    assert_eq!(
        server.verify(&conversation, &number, &email).await.body["verified"],
        true
    );
    let handed = server
        .chat(SHOP_A, Some(&conversation), "I want to talk to a person")
        .await;
    let reply = &handed["reply"];
    assert_eq!(reply["intent"], "talk_to_human", "{handed}");
    assert_eq!(reply["handoff"]["reason"], "explicit_request", "{handed}");
    let id = reply["handoff"]["id"].as_str().unwrap();

    let got = server
        .agent(Method::GET, &format!("/v1/handoffs/{id}"), None)
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    assert_eq!(got.body["shop_id"], SHOP_A);
    assert_eq!(got.body["status"], "open");
    let packet = &got.body["packet"];
    assert_eq!(packet["intent"], "talk_to_human", "{packet}");
    assert_eq!(packet["reason"], "explicit_request", "{packet}");
    let identity = &packet["verified_identity"];
    assert_eq!(identity["customer_id"], customer, "{packet}");
    assert_eq!(identity["via"], "order_and_email", "{packet}");
    assert_eq!(identity["order"], format!("#{number}"), "{packet}");
    assert_eq!(
        packet["orders"][0]["name"],
        format!("#{number}"),
        "{packet}"
    );
    let history = history(packet);
    for asked in [
        asking_about(&number),
        "I want to talk to a person".to_string(),
    ] {
        assert!(history.contains(&asked), "{asked:?} in {history:?}");
    }
    assert!(
        history.len() >= 4,
        "both questions and the answers: {history:?}"
    );
    assert!(
        !packet["what_the_assistant_tried"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{packet}"
    );
    assert!(
        !packet.to_string().contains("summit"),
        "nothing of the other shop: {packet}"
    );

    // The inbox lists it under its own shop only.
    let listed = |body: &Value| {
        body["handoffs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["id"] == id)
    };
    let mine = server
        .agent(
            Method::GET,
            &format!("/v1/handoffs?status=open&shop={SHOP_A}"),
            None,
        )
        .await;
    assert!(listed(&mine.body), "{}", mine.body);
    let theirs = server
        .agent(Method::GET, &format!("/v1/handoffs?shop={SHOP_B}"), None)
        .await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.body);
    assert!(!listed(&theirs.body), "{}", theirs.body);

    // While a person has it, the assistant does not answer on its own.
    let waiting = server.chat(SHOP_A, Some(&conversation), "hello?").await;
    assert!(
        waiting["reply"]["text"]
            .as_str()
            .unwrap()
            .contains("A person"),
        "{waiting}"
    );
    assert_eq!(waiting["reply"]["handoff"]["id"], id, "{waiting}");

    // One agent claims it; another cannot take it from them.
    let claimed = server
        .agent(
            Method::POST,
            &format!("/v1/handoffs/{id}/claim"),
            Some(&json!({"agent": "sam"})),
        )
        .await;
    assert_eq!(
        (claimed.status, claimed.body["status"].as_str()),
        (StatusCode::OK, Some("claimed")),
        "{}",
        claimed.body
    );
    let other = server
        .agent(
            Method::POST,
            &format!("/v1/handoffs/{id}/claim"),
            Some(&json!({"agent": "alex"})),
        )
        .await;
    assert_eq!(other.error(), (409, Some("already_claimed")));
}

#[tokio::test]
async fn failed_verifications_get_one_answer_and_are_throttled_per_conversation() {
    let server = Server::start().await;
    let order = in_transit();
    let (number, email) = number_and_email(&order);
    let conversation = order_question(&server, SHOP_A, &number).await;

    // A wrong email and an unknown order get the same answer, so neither can be probed.
    let wrong = server
        .verify(&conversation, &number, "someone.else@example.net")
        .await;
    let unknown = server.verify(&conversation, "999999", &email).await;
    assert_eq!(wrong.status, StatusCode::OK);
    assert_eq!(
        wrong.body,
        json!({"verified": false, "message": VERIFY_FAILED})
    );
    assert_eq!(wrong.body, unknown.body);
    for _ in 2..CONVERSATION_ATTEMPTS {
        let again = server
            .verify(&conversation, &number, "nope@example.net")
            .await;
        assert_eq!(again.body["verified"], false, "{}", again.body);
    }

    // Past the limit the right details are refused too, with the time to wait.
    let refused = server.verify(&conversation, &number, &email).await;
    assert_eq!(
        refused.error(),
        (429, Some("verification_locked")),
        "{}",
        refused.body
    );
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=ATTEMPT_WINDOW_SECONDS.unsigned_abs()).contains(&wait),
        "Retry-After: {wait}"
    );
    // Typed in the chat, the same details get the same refusal and no order facts.
    let typed = server
        .chat(
            SHOP_A,
            Some(&conversation),
            &format!("order #{number}, {email}"),
        )
        .await;
    assert_eq!(typed["reply"]["text"], VERIFY_LOCKED, "{typed}");
    assert_eq!(typed["reply"]["needs_verification"], true, "{typed}");
    reveals_nothing(typed["reply"]["text"].as_str().unwrap(), &order);
    let thread = server
        .get(&format!("/v1/conversations/{conversation}?shop={SHOP_A}"))
        .await;
    assert_eq!(thread.body["verified"], false);

    // Another conversation is not locked by this one's failures.
    let fresh = order_question(&server, SHOP_A, &number).await;
    let verified = server.verify(&fresh, &number, &email).await;
    assert_eq!(verified.body["verified"], true, "{}", verified.body);
}

#[tokio::test]
async fn one_client_address_is_throttled_across_its_conversations() {
    let server = Server::start().await;
    let order = in_transit();
    let (number, email) = number_and_email(&order);
    let script: SocketAddr = "198.51.100.7:5000".parse().unwrap();
    // Each conversation fails up to its own limit, until the address has used up its own.
    for _ in 0..ADDRESS_ATTEMPTS / CONVERSATION_ATTEMPTS {
        let conversation = order_question(&server, SHOP_A, &number).await;
        for _ in 0..CONVERSATION_ATTEMPTS {
            let failed = server
                .verify_from(script, &conversation, &number, "nope@example.net")
                .await;
            assert_eq!(failed.body["verified"], false, "{}", failed.body);
        }
    }
    let conversation = order_question(&server, SHOP_A, &number).await;
    let refused = server
        .verify_from(script, &conversation, &number, &email)
        .await;
    assert_eq!(
        refused.error(),
        (429, Some("verification_locked")),
        "{}",
        refused.body
    );
    // The same conversation from another address is not refused.
    let shopper: SocketAddr = "203.0.113.9:6000".parse().unwrap();
    let verified = server
        .verify_from(shopper, &conversation, &number, &email)
        .await;
    assert_eq!(verified.body["verified"], true, "{}", verified.body);
}

#[tokio::test]
async fn a_shop_never_answers_with_another_shops_conversations_or_orders() {
    let server = Server::start().await;
    let order = in_transit();
    let (number, email) = number_and_email(&order);
    let email_b = in_shop_b(&email);

    let first = server.chat(SHOP_A, None, &asking_about(&number)).await;
    let conversation = first["conversation_id"].as_str().unwrap();
    assert_eq!(
        server.verify(conversation, &number, &email).await.body["verified"],
        true
    );
    // Shop A's conversation does not exist under shop B, verified or not.
    let crossed = server
        .post(
            "/v1/chat",
            &json!({"shop": SHOP_B, "conversation_id": conversation, "message": "where is my order?"}),
        )
        .await;
    assert_eq!(
        crossed.error(),
        (404, Some("unknown_conversation")),
        "{}",
        crossed.body
    );

    // The same order number in shop B is shop B's order: its shopper's email opens it, shop
    // A's shopper's does not.
    let other = server.chat(SHOP_B, None, &asking_about(&number)).await;
    assert_eq!(other["reply"]["needs_verification"], true, "{other}");
    let in_b = other["conversation_id"].as_str().unwrap();
    let refused = server.verify(in_b, &number, &email).await;
    assert_eq!(
        refused.body["verified"], false,
        "shop A's email does not open shop B's order: {}",
        refused.body
    );
    let verified = server.verify(in_b, &number, &email_b).await;
    assert_eq!(verified.body["verified"], true, "{}", verified.body);
    assert_eq!(
        verified.body["reply"]["sources"][0]["doc_key"],
        format!("order:#{number}"),
        "{}",
        verified.body
    );
    // And shop B's shopper is a stranger in shop A.
    let again = server.chat(SHOP_A, None, &asking_about(&number)).await;
    let stranger = server
        .verify(
            again["conversation_id"].as_str().unwrap(),
            &number,
            &email_b,
        )
        .await;
    assert_eq!(stranger.body["verified"], false, "{}", stranger.body);

    // Under both shops the number names an order with the same id, each with its own
    // shopper's email.
    let snapshot = server.state.snapshot();
    let key = &server.state.config().pii_hash_key;
    let n: i64 = number.parse().unwrap();
    let order_in = |shop: &str| snapshot.order(&snapshot.shop(shop).unwrap().id, n).unwrap();
    let (a, b) = (order_in(SHOP_A), order_in(SHOP_B));
    assert_eq!(a.id, b.id, "the second shop reuses the demo's ids");
    assert_eq!(a.email_hash, Some(pipeline::pii::email_hash(key, &email)));
    assert_eq!(b.email_hash, Some(pipeline::pii::email_hash(key, &email_b)));
}
