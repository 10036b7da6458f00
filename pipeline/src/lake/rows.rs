//! Typed rows of the support tables a conversation writes: `conversations`, `messages`,
//! `turns`, `handoffs`, `csat` and `tickets`. Every producer of these rows (the conversation
//! export, helpdesk imports through it, the answer server's recorder) builds them here, so
//! their columns, their vocabularies ([`super::vocab`]) and their month partition
//! ([`month`]) are written down once.
//!
//! Field names are the table's column names; timestamps are UTC microseconds since the epoch,
//! the lake's timestamp type. [`to_batch`] decodes rows against the table's schema strictly,
//! so a row and [`super::schema::TABLES`] cannot drift apart unnoticed; [`Row::entry`] gives
//! the sources' `(table, row)` pair for the ingest. Timestamps also read from RFC 3339 text
//! ([`micros`]), the form rows had before they were typed.

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

/// Reads the rows' timestamps from µs or from RFC 3339 text. Rows are written with µs, but
/// rows saved before they were typed hold RFC 3339 strings (the answer server keeps its
/// conversations' latest turn in `state.sqlite` to update it on feedback): reading both keeps
/// those rows instead of losing them, and text that is neither is an error, not a default.
/// (The lake's own JSON decoder takes both forms too, so old outbox entries still apply.)
pub mod micros {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    /// A timestamp as stored: µs, or RFC 3339 text.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Micros(i64),
        Text(String),
    }

    fn to_micros<E: Error>(stored: Stored) -> Result<i64, E> {
        match stored {
            Stored::Micros(micros) => Ok(micros),
            Stored::Text(text) => chrono::DateTime::parse_from_rfc3339(&text)
                .map(|t| t.timestamp_micros())
                .map_err(|e| {
                    E::custom(format!(
                        "timestamp {text:?} is neither µs nor RFC 3339: {e}"
                    ))
                }),
        }
    }

    /// A required timestamp.
    pub fn required<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        to_micros(Stored::deserialize(deserializer)?)
    }

    /// An optional timestamp (`null` or absent is `None`).
    pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        Option::<Stored>::deserialize(deserializer)?
            .map(to_micros)
            .transpose()
    }
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
    #[serde(deserialize_with = "micros::required")]
    pub started_at: i64,
    #[serde(default, deserialize_with = "micros::optional")]
    pub ended_at: Option<i64>,
    #[serde(deserialize_with = "micros::required")]
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
    #[serde(deserialize_with = "micros::required")]
    pub created_at: i64,
    #[serde(deserialize_with = "micros::required")]
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
    #[serde(deserialize_with = "micros::required")]
    pub created_at: i64,
    #[serde(deserialize_with = "micros::required")]
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
    #[serde(default, deserialize_with = "micros::optional")]
    pub created_at: Option<i64>,
    #[serde(default, deserialize_with = "micros::optional")]
    pub claimed_at: Option<i64>,
    #[serde(default, deserialize_with = "micros::optional")]
    pub first_agent_reply_at: Option<i64>,
    #[serde(default, deserialize_with = "micros::optional")]
    pub resolved_at: Option<i64>,
    /// The latest of the timestamps above: each step is a newer version of the row.
    #[serde(deserialize_with = "micros::required")]
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
    #[serde(default, deserialize_with = "micros::optional")]
    pub created_at: Option<i64>,
    #[serde(deserialize_with = "micros::required")]
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
    #[serde(default, deserialize_with = "micros::optional")]
    pub created_at: Option<i64>,
    #[serde(default, deserialize_with = "micros::optional")]
    pub solved_at: Option<i64>,
    #[serde(deserialize_with = "micros::required")]
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
        let batch = to_batch(std::slice::from_ref(&message)).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(
            batch.schema(),
            schema::table("messages").unwrap().schema.clone()
        );
        let (table, value) = message.entry();
        assert_eq!(table, "messages");
        assert_eq!(value["role"], "shopper");
    }

    #[test]
    fn timestamps_read_from_micros_and_from_rfc_3339_text() {
        let micros: HandoffRow = serde_json::from_value(serde_json::json!({
            "shop_id": "shop", "id": "h1", "conversation_id": "c1", "reason": "explicit_request",
            "intent": null, "status": "open", "assignee": null, "packet": null,
            "created_at": 1_790_811_000_000_000_i64, "updated_at": 1_790_811_000_000_000_i64,
        }))
        .unwrap();
        // A row as the answer server wrote it before rows were typed.
        let text: HandoffRow = serde_json::from_value(serde_json::json!({
            "shop_id": "shop", "id": "h1", "conversation_id": "c1", "reason": "explicit_request",
            "intent": null, "status": "open", "assignee": null, "packet": null,
            "created_at": "2026-09-30T23:30:00.000000Z", "claimed_at": null,
            "first_agent_reply_at": null, "resolved_at": null,
            "updated_at": "2026-09-30T23:30:00.000000Z",
        }))
        .unwrap();
        assert_eq!(micros, text);
        assert_eq!(text.created_at, Some(1_790_811_000_000_000));
        assert_eq!(text.claimed_at, None);
        let bad = serde_json::from_value::<CsatRow>(serde_json::json!({
            "shop_id": "shop", "conversation_id": "c1", "score": 5, "comment": null,
            "resolution_path": null, "updated_at": "yesterday",
        }));
        assert!(bad.unwrap_err().to_string().contains("\"yesterday\""));
    }
}
