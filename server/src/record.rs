//! Every turn reaches the lake (`conversations`, `messages`, `turns`, `handoffs`, `csat`),
//! so the analysts' reports see live chat.
//!
//! A request writes the rows it produces into the state store's outbox in the same
//! transaction as the state change itself ([`crate::store::enqueue`]). The [`Recorder`]
//! drains the outbox in the background: it groups the oldest entries per table, writes each
//! table as one Delta commit (the lake's keyed upsert keeps the newest row per key), and only
//! then forgets the entries. A crash between the commit and the forgetting replays rows the
//! lake already holds, which the upsert ignores; a crash before the commit loses nothing,
//! because the entries are still in the outbox. Shopper-visible latency never waits for
//! Delta.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pipeline::Lake;
use pipeline::lake::schema;
use serde_json::{Value, json};

use crate::answer::{Answer, Understanding};
use crate::error::ServerError;
use crate::store::{self, Conversation, Handoff, Message, Store};

/// Entries written per drain: bounds the memory and the size of one commit.
const DRAIN_ROWS: usize = 20_000;

/// `2026-11-28T…` → `2026-11`, the month partition.
fn month(timestamp: &str) -> String {
    timestamp.get(..7).unwrap_or("unknown").to_string()
}

/// The `conversations` row of a conversation's current state.
pub fn conversation_row(c: &Conversation, ended_at: &str, assignee: Option<&str>) -> Value {
    let started = store::timestamp(c.started_at);
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
        "updated_at": store::timestamp(c.updated_at),
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
        "month": month(&store::timestamp(conversation.started_at)),
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
        "month": month(&store::timestamp(conversation.started_at)),
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

/// Drains the outbox into the lake.
#[derive(Debug)]
pub struct Recorder {
    store: Arc<Store>,
    lake: Lake,
}

impl Recorder {
    pub fn new(store: Arc<Store>, lake: Lake) -> Self {
        Self { store, lake }
    }

    /// Writes the oldest outbox entries to the lake; returns how many were written.
    pub async fn drain_once(&self) -> Result<usize, ServerError> {
        let entries = self.store.transaction(|tx| store::outbox(tx, DRAIN_ROWS))?;
        let Some(last) = entries.last().map(|e| e.seq) else {
            return Ok(0);
        };
        let mut by_table: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for entry in &entries {
            by_table
                .entry(entry.table.clone())
                .or_default()
                .push(entry.row.clone());
        }
        for (table, rows) in by_table {
            let Some(spec) = schema::table(&table) else {
                tracing::error!(
                    table,
                    "outbox row for a table the lake does not have; dropped"
                );
                continue;
            };
            let started = std::time::Instant::now();
            let batch = pipeline::ingest::to_batch(spec, &rows)?;
            self.lake.write(spec, batch).await?;
            tracing::debug!(table, rows = rows.len(), elapsed = ?started.elapsed(), "recorded");
        }
        self.store.transaction(|tx| store::outbox_done(tx, last))?;
        Ok(entries.len())
    }

    /// Drains until the outbox is empty.
    pub async fn drain(&self) -> Result<usize, ServerError> {
        let mut total = 0;
        loop {
            let written = self.drain_once().await?;
            total += written;
            if written < DRAIN_ROWS {
                return Ok(total);
            }
        }
    }

    /// Drains every `every` until `stop` fires, then once more.
    pub async fn run(self, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
            if let Err(error) = self.drain().await {
                // The entries stay in the outbox; the next round retries them.
                tracing::error!(%error, "writing chat records to the lake failed; will retry");
            }
        }
        match self.drain().await {
            Ok(n) => tracing::info!(rows = n, "chat records flushed to the lake"),
            Err(error) => {
                tracing::error!(%error, "final flush to the lake failed; rows stay in the outbox");
            }
        }
    }
}
