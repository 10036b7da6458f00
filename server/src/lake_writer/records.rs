//! The chat's lake rows: what a conversation, a message, an automated turn and a handoff
//! look like in the lake (`conversations`, `messages`, `turns`, `handoffs`). They are
//! built here, queued in the chat outbox in the transaction of the change they describe,
//! and written to Delta by the applier.

use serde_json::{Value, json};

use crate::conversation::answer::{Answer, Understanding};
use crate::state::chat::{Conversation, Handoff, Message, timestamp};

/// `2026-11-28T…` → `2026-11`, the month partition.
fn month(timestamp: &str) -> String {
    timestamp.get(..7).unwrap_or("unknown").to_string()
}

/// The `conversations` row of a conversation's current state.
pub fn conversation_row(c: &Conversation, ended_at: &str, assignee: Option<&str>) -> Value {
    let started = timestamp(c.started_at);
    json!({
        "shop_id": c.shop_id,
        "id": c.id,
        "channel": "chat",
        "customer_id": c.identity.as_ref().and_then(|i| i.customer_id),
        "order_id": c.identity.as_ref().and_then(|i| i.order_id),
        "primary_intent": c.primary_intent,
        // `handed_off` is the server's own state; in the lake the conversation is open
        // until someone resolves it.
        "status": if c.status == "resolved" { "resolved" } else { "open" },
        "resolution_path": c.resolution_path,
        "shopper_confirmed": c.status == "resolved" && c.resolution_path.as_deref() == Some("ai_only"),
        "reopened_from": Value::Null,
        "assignee": assignee,
        "agent_handle_seconds": Value::Null,
        "tags": [],
        "started_at": started,
        "ended_at": ended_at,
        "updated_at": timestamp(c.updated_at),
        "month": month(&started),
    })
}

/// The `messages` row of a message (its text is already redacted).
pub fn message_row(shop: &str, conversation: &Conversation, m: &Message) -> Value {
    json!({
        "shop_id": shop,
        "id": m.id,
        "conversation_id": conversation.id,
        "seq": m.seq,
        "role": m.role,
        "author": m.author,
        "text": m.text,
        "created_at": m.created_at,
        "updated_at": m.created_at,
        "month": month(&timestamp(conversation.started_at)),
    })
}

/// The `turns` row of an automated answer: what was understood, retrieved (in rank order,
/// with BM25, vector and fused scores) and cited, and how the answer went.
pub fn turn_row(
    conversation: &Conversation,
    message: &Message,
    understood: &Understanding,
    answer: &Answer,
    latency_ms: i64,
    model_version: &str,
) -> Value {
    json!({
        "shop_id": conversation.shop_id,
        "id": format!("{}_t{}", conversation.id, message.seq),
        "conversation_id": conversation.id,
        "message_id": message.id,
        "intent": understood.intent,
        "confidence": understood.confidence,
        "retrieved": understood.hits.iter().map(|h| json!({
            "doc_key": h.key, "bm25": h.bm25, "vector": h.vector, "fused": h.fused})).collect::<Vec<_>>(),
        "cited_doc_keys": answer.sources.iter().map(|s| &s.doc_key).collect::<Vec<_>>(),
        "answer_kind": answer.kind.as_str(),
        "needs_verification": answer.needs_verification,
        // Also true for a handoff after an abstention: the turn still said it did not know.
        "abstained": answer.abstain_reason.is_some(),
        "abstain_reason": answer.abstain_reason,
        "helpful": Value::Null,
        "latency_ms": latency_ms,
        "model_version": model_version,
        "created_at": message.created_at,
        "updated_at": message.created_at,
        // The conversation's month, like its messages: one conversation, one partition.
        "month": month(&timestamp(conversation.started_at)),
    })
}

/// The `handoffs` row.
pub fn handoff_row(h: &Handoff) -> Value {
    json!({
        "shop_id": h.shop_id,
        "id": h.id,
        "conversation_id": h.conversation_id,
        "reason": h.reason,
        "intent": h.intent,
        "status": h.status,
        "assignee": h.assignee,
        "packet": h.packet.to_string(),
        "created_at": h.created_at,
        "claimed_at": h.claimed_at,
        "first_agent_reply_at": h.first_agent_reply_at,
        "resolved_at": h.resolved_at,
        "updated_at": h.updated_at,
    })
}
