//! Typed rows of the support tables a conversation writes: `conversations`, `messages`,
//! `turns`, `handoffs`, `csat` and `tickets`. Every producer of these rows (the conversation
//! export, helpdesk imports through it, the answer server's recorder) builds them here, so
//! their columns, their vocabularies ([`super::vocab`]) and their month partition
//! ([`month`]) are written down once.
//!
//! Field names are the table's column names; timestamps are UTC microseconds since the epoch,
//! the lake's timestamp type. [`to_batch`] decodes rows against the table's schema strictly,
//! so a row and [`super::schema::TABLES`] cannot drift apart unnoticed; [`Row::entry`] gives
//! the sources' `(table, row)` pair for the ingest.

use deltalake::arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schema;
use super::vocab::{ConversationStatus, HandoffReason, HandoffStatus, ResolutionPath, Role};
use crate::error::{PipelineError, Result};

/// A row of one table.
pub trait Row: Serialize {
    /// The table it belongs to (a name in [`super::schema::TABLES`]).
    const TABLE: &'static str;

    /// The row as the sources' `(table, row)` pair.
    fn entry(&self) -> (&'static str, Value) {
        // Strings, numbers, options and lists only: serialising a row cannot fail.
        let row = serde_json::to_value(self).expect("a row serialises to JSON");
        (Self::TABLE, row)
    }
}

/// Rows of one table → one Arrow batch with the table's schema.
pub fn to_batch<R: Row>(rows: &[R]) -> Result<RecordBatch> {
    let spec = schema::table(R::TABLE)
        .ok_or_else(|| PipelineError::Input(format!("no table named {}", R::TABLE)))?;
    crate::ingest::decode(spec, rows)
}

/// The month partition of a conversation's rows (`2026-09`), from when it started (µs):
/// one conversation, one partition, whatever day its later messages fall on.
pub fn month(started_at: i64) -> String {
    chrono::DateTime::from_timestamp_micros(started_at)
        .map(|t| t.format("%Y-%m").to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A `conversations` row: one support conversation (chat, email or imported ticket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRow {
    pub shop_id: String,
    pub id: String,
    pub channel: Option<String>,
    pub customer_id: Option<i64>,
    pub order_id: Option<i64>,
    pub primary_intent: Option<String>,
    pub status: Option<ConversationStatus>,
    pub resolution_path: Option<ResolutionPath>,
    pub shopper_confirmed: Option<bool>,
    pub reopened_from: Option<String>,
    pub assignee: Option<String>,
    pub agent_handle_seconds: Option<i64>,
    pub tags: Vec<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub updated_at: i64,
    /// [`month`] of `started_at`.
    pub month: String,
}

impl Row for ConversationRow {
    const TABLE: &'static str = "conversations";
}

/// A `messages` row; `text` is already PII-redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRow {
    pub shop_id: String,
    pub id: String,
    pub conversation_id: String,
    pub seq: Option<i64>,
    pub role: Role,
    pub author: Option<String>,
    pub text: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The conversation's [`month`], not the message's.
    pub month: String,
}

impl Row for MessageRow {
    const TABLE: &'static str = "messages";
}

/// One retrieved passage of a turn, with its scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievedDoc {
    pub doc_key: Option<String>,
    pub bm25: Option<f64>,
    pub vector: Option<f64>,
    pub fused: Option<f64>,
}

/// A `turns` row: one automated answer, what was understood, retrieved and cited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRow {
    pub shop_id: String,
    pub id: String,
    pub conversation_id: String,
    pub message_id: String,
    pub intent: Option<String>,
    pub confidence: Option<f64>,
    /// In rank order.
    pub retrieved: Vec<RetrievedDoc>,
    pub cited_doc_keys: Vec<String>,
    pub answer_kind: Option<String>,
    pub needs_verification: Option<bool>,
    pub abstained: Option<bool>,
    pub abstain_reason: Option<String>,
    /// The shopper's feedback, when given (a later version of the row).
    pub helpful: Option<bool>,
    pub latency_ms: Option<i64>,
    pub model_version: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The conversation's [`month`], like its messages.
    pub month: String,
}

impl Row for TurnRow {
    const TABLE: &'static str = "turns";
}

/// A `handoffs` row: an escalation to a person, with the packet the agent sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffRow {
    pub shop_id: String,
    pub id: String,
    pub conversation_id: String,
    pub reason: Option<HandoffReason>,
    pub intent: Option<String>,
    pub status: Option<HandoffStatus>,
    pub assignee: Option<String>,
    /// The packet as JSON text, PII-redacted.
    pub packet: Option<String>,
    pub created_at: Option<i64>,
    pub claimed_at: Option<i64>,
    pub first_agent_reply_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// The latest of the timestamps above: each step is a newer version of the row.
    pub updated_at: i64,
}

impl Row for HandoffRow {
    const TABLE: &'static str = "handoffs";
}

/// A `csat` row: the shopper's rating of a conversation (one per conversation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsatRow {
    pub shop_id: String,
    pub conversation_id: String,
    /// 1 to 5.
    pub score: i64,
    /// PII-redacted.
    pub comment: Option<String>,
    pub resolution_path: Option<ResolutionPath>,
    pub created_at: Option<i64>,
    pub updated_at: i64,
}

impl Row for CsatRow {
    const TABLE: &'static str = "csat";
}

/// A `tickets` row: an imported helpdesk ticket, linked to its conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketRow {
    pub shop_id: String,
    pub id: String,
    pub source: Option<String>,
    pub external_id: Option<String>,
    pub conversation_id: String,
    /// PII-redacted.
    pub subject: Option<String>,
    pub status: Option<ConversationStatus>,
    pub channel: Option<String>,
    pub customer_id: Option<i64>,
    pub assignee: Option<String>,
    pub handle_seconds: Option<i64>,
    pub created_at: Option<i64>,
    pub solved_at: Option<i64>,
    pub updated_at: i64,
}

impl Row for TicketRow {
    const TABLE: &'static str = "tickets";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_the_utc_month_of_the_start() {
        // 2026-09-30T23:30:00Z
        assert_eq!(month(1_790_811_000_000_000), "2026-09");
        assert_eq!(month(i64::MAX), "unknown");
    }

    #[test]
    fn rows_decode_against_their_tables_schema() {
        let message = MessageRow {
            shop_id: "shop".into(),
            id: "m1".into(),
            conversation_id: "c1".into(),
            seq: Some(1),
            role: Role::Shopper,
            author: None,
            text: Some("where is my order?".into()),
            created_at: 1_790_811_000_000_000,
            updated_at: 1_790_811_000_000_000,
            month: month(1_790_811_000_000_000),
        };
        let batch = to_batch(&[message.clone()]).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(
            batch.schema(),
            schema::table("messages").unwrap().schema.clone()
        );
        let (table, value) = message.entry();
        assert_eq!(table, "messages");
        assert_eq!(value["role"], "shopper");
    }
}
