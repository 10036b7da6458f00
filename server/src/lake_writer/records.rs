//! The chat's lake rows: what a conversation, a message, an automated turn, a handoff and a
//! CSAT rating look like in the lake (`conversations`, `messages`, `turns`, `handoffs`,
//! `csat`), as the typed rows of [`pipeline::lake::rows`]. They are built here, queued in
//! the chat outbox in the transaction of the change they describe, and written to Delta by
//! the applier.

use chrono::{DateTime, Utc};
use pipeline::lake::rows::{
    self, ConversationRow, CsatRow, HandoffRow, MessageRow, RetrievedDoc, TurnRow,
};
use pipeline::lake::vocab::ResolutionPath;

use crate::conversation::answer::{Answer, Understanding};
use crate::state::chat::{Conversation, Handoff, Message, Status, micros};

/// The month partition of a conversation's rows.
fn month(conversation: &Conversation) -> String {
    rows::month(conversation.started_at.timestamp_micros())
}

/// An `f32` score as the `f64` of its shortest decimal (0.85, not 0.8500000238…): the lake
/// held that value when these rows were JSON written from the `f32`s, and typing the rows
/// must not change the stored scores.
fn score(value: f32) -> f64 {
    value
        .to_string()
        .parse()
        .unwrap_or_else(|_| f64::from(value))
}

/// The `conversations` row of a conversation's current state.
pub fn conversation_row(
    c: &Conversation,
    ended_at: DateTime<Utc>,
    assignee: Option<&str>,
) -> ConversationRow {
    ConversationRow {
        shop_id: c.shop_id.clone(),
        id: c.id.clone(),
        channel: Some("chat".into()),
        customer_id: c.identity.as_ref().and_then(|i| i.customer_id),
        order_id: c.identity.as_ref().and_then(|i| i.order_id),
        primary_intent: c.primary_intent.clone(),
        status: Some(c.status.lake()),
        resolution_path: c.resolution_path,
        shopper_confirmed: Some(
            c.status == Status::Resolved && c.resolution_path == Some(ResolutionPath::AiOnly),
        ),
        reopened_from: None,
        assignee: assignee.map(str::to_string),
        agent_handle_seconds: None,
        tags: Vec::new(),
        started_at: c.started_at.timestamp_micros(),
        ended_at: Some(ended_at.timestamp_micros()),
        updated_at: c.updated_at.timestamp_micros(),
        month: month(c),
    }
}

/// The `messages` row of a message (its text is already redacted).
pub fn message_row(shop: &str, conversation: &Conversation, m: &Message) -> MessageRow {
    let created_at = micros(&m.created_at);
    MessageRow {
        shop_id: shop.to_string(),
        id: m.id.clone(),
        conversation_id: conversation.id.clone(),
        seq: Some(m.seq),
        role: m.role,
        author: m.author.clone(),
        text: Some(m.text.clone()),
        created_at,
        updated_at: created_at,
        month: month(conversation),
    }
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
) -> TurnRow {
    let created_at = micros(&message.created_at);
    TurnRow {
        shop_id: conversation.shop_id.clone(),
        id: format!("{}_t{}", conversation.id, message.seq),
        conversation_id: conversation.id.clone(),
        message_id: message.id.clone(),
        intent: Some(understood.intent.clone()),
        confidence: Some(score(understood.confidence)),
        retrieved: understood
            .hits
            .iter()
            .map(|h| RetrievedDoc {
                doc_key: Some(h.key.clone()),
                bm25: h.bm25.map(score),
                vector: Some(score(h.vector)),
                fused: Some(score(h.fused)),
            })
            .collect(),
        cited_doc_keys: answer.sources.iter().map(|s| s.doc_key.clone()).collect(),
        answer_kind: Some(answer.kind.as_str().into()),
        needs_verification: Some(answer.needs_verification),
        // Also true for a handoff after an abstention: the turn still said it did not know.
        abstained: Some(answer.abstain_reason.is_some()),
        abstain_reason: answer.abstain_reason.map(str::to_string),
        helpful: None,
        latency_ms: Some(latency_ms),
        model_version: Some(model_version.to_string()),
        created_at,
        updated_at: created_at,
        // The conversation's month, like its messages: one conversation, one partition.
        month: month(conversation),
    }
}

/// The `handoffs` row.
pub fn handoff_row(h: &Handoff) -> HandoffRow {
    HandoffRow {
        shop_id: h.shop_id.clone(),
        id: h.id.clone(),
        conversation_id: h.conversation_id.clone(),
        reason: Some(h.reason),
        intent: h.intent.clone(),
        status: Some(h.status),
        assignee: h.assignee.clone(),
        packet: Some(h.packet.to_string()),
        created_at: Some(micros(&h.created_at)),
        claimed_at: h.claimed_at.as_deref().map(micros),
        first_agent_reply_at: h.first_agent_reply_at.as_deref().map(micros),
        resolved_at: h.resolved_at.as_deref().map(micros),
        updated_at: micros(&h.updated_at),
    }
}

/// The `csat` row of the shopper's rating; a conversation not yet resolved is rated as the
/// assistant's alone.
pub fn csat_row(
    conversation: &Conversation,
    score: i64,
    comment: Option<&str>,
    at: DateTime<Utc>,
) -> CsatRow {
    CsatRow {
        shop_id: conversation.shop_id.clone(),
        conversation_id: conversation.id.clone(),
        score,
        comment: comment.map(pipeline::pii::redact_text),
        resolution_path: Some(
            conversation
                .resolution_path
                .unwrap_or(ResolutionPath::AiOnly),
        ),
        created_at: Some(at.timestamp_micros()),
        updated_at: at.timestamp_micros(),
    }
}
