//! `state.sqlite`: the chat state — conversations in progress (with their verified
//! identity), their messages, verification failures (for attempt limits), the handoff
//! queue, the tombstones of deleted store records, and the outbox of chat rows waiting to
//! be written to the lake.
//!
//! Every state change and the lake rows that describe it are written in one transaction,
//! so the lake can never miss a change the shopper saw, nor record one that did not happen.
//!
//! Durability: WAL with `synchronous = NORMAL` survives a crash of the process (the case a
//! restart is about) without an fsync per turn; a power cut can lose the last commits.

use std::path::Path;

use chrono::{DateTime, Utc};
use pipeline::lake::rows::TurnRow;
use pipeline::lake::vocab::{
    ConversationStatus, HandoffReason, HandoffStatus, ResolutionPath, Role, UnknownWord, Vocabulary,
};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ServerError;
use crate::state::sqlite::Database;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    shop_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    status TEXT NOT NULL,
    resolution_path TEXT,
    primary_intent TEXT,
    identity TEXT,
    pending TEXT,
    low_confidence_streak INTEGER NOT NULL DEFAULT 0,
    handoff_id TEXT,
    last_turn TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    role TEXT NOT NULL,
    author TEXT,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    meta TEXT,
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS verification_failures (
    scope TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS verification_failures_scope ON verification_failures (scope, at);
CREATE TABLE IF NOT EXISTS handoffs (
    id TEXT PRIMARY KEY,
    shop_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    intent TEXT,
    status TEXT NOT NULL,
    assignee TEXT,
    packet TEXT NOT NULL,
    created_at TEXT NOT NULL,
    claimed_at TEXT,
    first_agent_reply_at TEXT,
    resolved_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS handoffs_status ON handoffs (status, created_at);
CREATE TABLE IF NOT EXISTS tombstones (
    shop_id TEXT NOT NULL,
    table_name TEXT NOT NULL,
    id INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL,
    PRIMARY KEY (shop_id, table_name, id)
) WITHOUT ROWID;
";

/// Who the shopper proved to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub customer_id: Option<i64>,
    /// The keyed hash of the verified email (the lake's `email_hash`), never the email.
    pub email_hash: String,
    /// The order the shopper verified with, when they did so by order number.
    pub order_id: Option<i64>,
    /// `order_and_email` or `customer_token`.
    pub via: String,
}

/// A question that waits for verification, answered once the shopper has verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub message: String,
    pub intent: String,
    pub confidence: f32,
}

/// Where a conversation stands in the server. `handed_off` is the server's own state (a
/// person has the conversation, so the assistant stays quiet); the lake knows only
/// [`ConversationStatus`], see [`Status::lake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    HandedOff,
    Resolved,
}

impl Status {
    /// The conversation's status in the lake: a handed-off conversation is open until
    /// someone resolves it.
    pub fn lake(self) -> ConversationStatus {
        match self {
            Status::Open | Status::HandedOff => ConversationStatus::Open,
            Status::Resolved => ConversationStatus::Resolved,
        }
    }
}

impl Vocabulary for Status {
    const ALL: &'static [Self] = &[Status::Open, Status::HandedOff, Status::Resolved];

    fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::HandedOff => "handed_off",
            Status::Resolved => "resolved",
        }
    }
}

/// A conversation's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: String,
    pub shop_id: String,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub status: Status,
    pub resolution_path: Option<ResolutionPath>,
    pub primary_intent: Option<String>,
    pub identity: Option<Identity>,
    pub pending: Option<Pending>,
    /// Consecutive automated turns below the confidence floor (two hand off).
    pub low_confidence_streak: i64,
    pub handoff_id: Option<String>,
    /// The latest turn's lake row, so feedback can update it.
    pub last_turn: Option<TurnRow>,
}

/// One message of a conversation (text already redacted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub seq: i64,
    pub id: String,
    pub role: Role,
    pub author: Option<String>,
    pub text: String,
    pub created_at: String,
    /// For automated answers: what the assistant did (intent, confidence, answer kind,
    /// sources), which the handoff packet shows the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// One escalation and its packet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Handoff {
    pub id: String,
    pub shop_id: String,
    pub conversation_id: String,
    pub reason: HandoffReason,
    pub intent: Option<String>,
    pub status: HandoffStatus,
    pub assignee: Option<String>,
    pub packet: Value,
    pub created_at: String,
    pub claimed_at: Option<String>,
    pub first_agent_reply_at: Option<String>,
    pub resolved_at: Option<String>,
    pub updated_at: String,
}

/// The chat state file.
#[derive(Debug)]
pub struct ChatStore {
    database: Database,
}

/// How times are stored (and written to the lake): RFC 3339 in UTC, to the microsecond.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).map_or_else(|_| Utc::now(), |t| t.with_timezone(&Utc))
}

/// A stored time ([`timestamp`]) as the lake's µs.
pub fn micros(text: &str) -> i64 {
    parse_time(text).timestamp_micros()
}

/// The JSON column `name`; one that no longer reads (written by another version) is logged
/// and read as empty, so the conversation goes on rather than failing every request. The log
/// names the column and where the text broke, never the text (it may quote a shopper).
fn json_column<T: for<'de> Deserialize<'de>>(name: &str, text: Option<String>) -> Option<T> {
    serde_json::from_str(&text?)
        .map_err(|error| {
            tracing::warn!(
                column = name,
                line = error.line(),
                at = error.column(),
                "a JSON column of state.sqlite does not read; read as empty"
            );
        })
        .ok()
}

/// Column `index` as a word of `T`: a word this version does not know is an error naming
/// the words it does, never a guess.
fn word<T: Vocabulary>(r: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<T> {
    parse_word(index, &r.get::<_, String>(index)?)
}

/// [`word`] of a nullable column.
fn optional_word<T: Vocabulary>(
    r: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<T>> {
    r.get::<_, Option<String>>(index)?
        .map(|text| parse_word(index, &text))
        .transpose()
}

fn parse_word<T: Vocabulary>(index: usize, text: &str) -> rusqlite::Result<T> {
    T::parse(text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            Box::new(UnknownWord {
                value: text.to_string(),
                expected: T::word_list(),
            }),
        )
    })
}

impl ChatStore {
    /// Opens (creating when missing) `state.sqlite` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ServerError> {
        Ok(Self {
            database: Database::open(&dir.join("state.sqlite"), SCHEMA, "NORMAL")?,
        })
    }

    /// The file's connections and outbox.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Runs `work` in one transaction (see [`Database::transaction`]).
    pub fn transaction<T, E: From<ServerError>>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.database.transaction(work)
    }

    /// When `table`'s row `id` of `shop` was last deleted (µs), if it was (see [`bury`]).
    pub fn deleted_at(&self, shop: &str, table: &str, id: i64) -> Result<Option<i64>, ServerError> {
        Ok(self
            .database
            .reader()
            .prepare_cached(
                "SELECT deleted_at FROM tombstones WHERE shop_id = ?1 AND table_name = ?2 AND id = ?3",
            )?
            .query_row(params![shop, table, id], |r| r.get(0))
            .optional()?)
    }
}

/// The conversation `id`, of `shop` when given; `None` when it does not exist or belongs to
/// another shop.
pub fn conversation(
    tx: &Transaction<'_>,
    shop: Option<&str>,
    id: &str,
) -> Result<Option<Conversation>, ServerError> {
    Ok(tx
        .query_row(
            "SELECT id, shop_id, started_at, updated_at, status, resolution_path, primary_intent,
                    identity, pending, low_confidence_streak, handoff_id, last_turn
             FROM conversations WHERE id = ?1 AND (?2 IS NULL OR shop_id = ?2)",
            params![id, shop],
            |r| {
                Ok(Conversation {
                    id: r.get(0)?,
                    shop_id: r.get(1)?,
                    started_at: parse_time(&r.get::<_, String>(2)?),
                    updated_at: parse_time(&r.get::<_, String>(3)?),
                    status: word(r, 4)?,
                    resolution_path: optional_word(r, 5)?,
                    primary_intent: r.get(6)?,
                    identity: json_column("identity", r.get(7)?),
                    pending: json_column("pending", r.get(8)?),
                    low_confidence_streak: r.get(9)?,
                    handoff_id: r.get(10)?,
                    last_turn: json_column("last_turn", r.get(11)?),
                })
            },
        )
        .optional()?)
}

/// Inserts or replaces a conversation's state.
pub fn save_conversation(tx: &Transaction<'_>, c: &Conversation) -> Result<(), ServerError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO conversations (id, shop_id, started_at, updated_at, status,
             resolution_path, primary_intent, identity, pending, low_confidence_streak, handoff_id, last_turn)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
        .execute(params![
            c.id,
            c.shop_id,
            timestamp(c.started_at),
            timestamp(c.updated_at),
            c.status.as_str(),
            c.resolution_path.map(ResolutionPath::as_str),
            c.primary_intent,
            c.identity.as_ref().map(serde_json::to_string).transpose()?,
            c.pending.as_ref().map(serde_json::to_string).transpose()?,
            c.low_confidence_streak,
            c.handoff_id,
            c.last_turn.as_ref().map(serde_json::to_string).transpose()?,
        ],
    )?;
    Ok(())
}

/// Messages a conversation keeps in the state store: its memory is bounded, whatever the
/// length of the chat (the lake keeps every message).
pub const KEPT_MESSAGES: i64 = 200;

/// Appends a message, numbering it after the conversation's last one, and forgets the
/// conversation's messages beyond the last [`KEPT_MESSAGES`].
pub fn append_message(
    tx: &Transaction<'_>,
    conversation_id: &str,
    role: Role,
    author: Option<&str>,
    text: &str,
    at: DateTime<Utc>,
    meta: Option<Value>,
) -> Result<Message, ServerError> {
    let seq: i64 = tx
        .prepare_cached(
            "SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE conversation_id = ?1",
        )?
        .query_row(params![conversation_id], |r| r.get(0))?;
    let message = Message {
        seq,
        id: format!("{conversation_id}_m{seq}"),
        role,
        author: author.map(str::to_string),
        text: text.into(),
        created_at: timestamp(at),
        meta,
    };
    tx.prepare_cached(
        "INSERT INTO messages (conversation_id, seq, id, role, author, text, created_at, meta)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        conversation_id,
        message.seq,
        message.id,
        message.role.as_str(),
        message.author,
        message.text,
        message.created_at,
        message.meta.as_ref().map(Value::to_string),
    ])?;
    tx.prepare_cached("DELETE FROM messages WHERE conversation_id = ?1 AND seq <= ?2")?
        .execute(params![conversation_id, seq - KEPT_MESSAGES])?;
    Ok(message)
}

/// The conversation's messages in order; with `last`, only that many of the latest.
pub fn messages(
    tx: &Transaction<'_>,
    conversation_id: &str,
    last: Option<usize>,
) -> Result<Vec<Message>, ServerError> {
    let limit = last.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let mut statement = tx.prepare_cached(
        "SELECT seq, id, role, author, text, created_at, meta FROM messages
         WHERE conversation_id = ?1 ORDER BY seq DESC LIMIT ?2",
    )?;
    let mut rows = statement
        .query_map(params![conversation_id, limit], |r| {
            Ok(Message {
                seq: r.get(0)?,
                id: r.get(1)?,
                role: word(r, 2)?,
                author: r.get(3)?,
                text: r.get(4)?,
                created_at: r.get(5)?,
                meta: json_column("meta", r.get(6)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.reverse();
    Ok(rows)
}

/// Failed verifications of `scope` since `since` (unix seconds).
pub fn failures_since(tx: &Transaction<'_>, scope: &str, since: i64) -> Result<i64, ServerError> {
    Ok(tx
        .prepare_cached("SELECT count(*) FROM verification_failures WHERE scope = ?1 AND at >= ?2")?
        .query_row(params![scope, since], |r| r.get(0))?)
}

/// The oldest failure of `scope` since `since`, to tell when a lock-out ends.
pub fn oldest_failure_since(
    tx: &Transaction<'_>,
    scope: &str,
    since: i64,
) -> Result<Option<i64>, ServerError> {
    Ok(tx
        .prepare_cached("SELECT min(at) FROM verification_failures WHERE scope = ?1 AND at >= ?2")?
        .query_row(params![scope, since], |r| r.get(0))?)
}

/// Records a failed verification for each scope, and forgets failures older than `forget_before`.
pub fn record_failure(
    tx: &Transaction<'_>,
    scopes: &[&str],
    at: i64,
    forget_before: i64,
) -> Result<(), ServerError> {
    for scope in scopes {
        tx.prepare_cached("INSERT INTO verification_failures (scope, at) VALUES (?1, ?2)")?
            .execute(params![scope, at])?;
    }
    tx.prepare_cached("DELETE FROM verification_failures WHERE at < ?1")?
        .execute(params![forget_before])?;
    Ok(())
}

/// Inserts or replaces a handoff.
pub fn save_handoff(tx: &Transaction<'_>, h: &Handoff) -> Result<(), ServerError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO handoffs (id, shop_id, conversation_id, reason, intent, status,
             assignee, packet, created_at, claimed_at, first_agent_reply_at, resolved_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
        .execute(params![
            h.id,
            h.shop_id,
            h.conversation_id,
            h.reason.as_str(),
            h.intent,
            h.status.as_str(),
            h.assignee,
            serde_json::to_string(&h.packet)?,
            h.created_at,
            h.claimed_at,
            h.first_agent_reply_at,
            h.resolved_at,
            h.updated_at,
        ],
    )?;
    Ok(())
}

const HANDOFF_COLUMNS: &str =
    "id, shop_id, conversation_id, reason, intent, status, assignee, packet,
     created_at, claimed_at, first_agent_reply_at, resolved_at, updated_at";

fn handoff_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Handoff> {
    Ok(Handoff {
        id: r.get(0)?,
        shop_id: r.get(1)?,
        conversation_id: r.get(2)?,
        reason: word(r, 3)?,
        intent: r.get(4)?,
        status: word(r, 5)?,
        assignee: r.get(6)?,
        packet: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or(Value::Null),
        created_at: r.get(8)?,
        claimed_at: r.get(9)?,
        first_agent_reply_at: r.get(10)?,
        resolved_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

pub fn handoff(tx: &Transaction<'_>, id: &str) -> Result<Option<Handoff>, ServerError> {
    Ok(tx
        .query_row(
            &format!("SELECT {HANDOFF_COLUMNS} FROM handoffs WHERE id = ?1"),
            params![id],
            handoff_row,
        )
        .optional()?)
}

/// Handoffs oldest first, optionally of one status and one shop.
pub fn handoffs(
    tx: &Transaction<'_>,
    status: Option<HandoffStatus>,
    shop: Option<&str>,
    limit: usize,
) -> Result<Vec<Handoff>, ServerError> {
    let mut statement = tx.prepare_cached(&format!(
        "SELECT {HANDOFF_COLUMNS} FROM handoffs
         WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR shop_id = ?2)
         ORDER BY created_at, id LIMIT ?3"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(statement
        .query_map(
            params![status.map(HandoffStatus::as_str), shop, limit],
            handoff_row,
        )?
        .collect::<Result<Vec<_>, _>>()?)
}

/// Deletes the conversations that match `condition` (SQL over `conversations`, with
/// `?1` bound to `value`), with their messages, handoffs and waiting outbox rows: a
/// redaction reaches the operational state as well as the lake. Returns how many.
fn forget_conversations_where(
    tx: &Transaction<'_>,
    condition: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<usize, ServerError> {
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY); DELETE FROM doomed;",
    )?;
    tx.execute(
        &format!("INSERT INTO doomed SELECT id FROM conversations WHERE {condition}"),
        [value],
    )?;
    tx.execute_batch(
        "DELETE FROM messages WHERE conversation_id IN (SELECT id FROM doomed);
         DELETE FROM handoffs WHERE conversation_id IN (SELECT id FROM doomed);
         DELETE FROM outbox WHERE json_extract(row, '$.conversation_id') IN (SELECT id FROM doomed)
            OR (table_name = 'conversations' AND json_extract(row, '$.id') IN (SELECT id FROM doomed));",
    )?;
    let forgotten = tx.execute(
        "DELETE FROM conversations WHERE id IN (SELECT id FROM doomed)",
        [],
    )?;
    Ok(forgotten)
}

/// `customers/redact` in the operational state: the customer's conversations (by verified
/// customer id or email hash) of `shop`.
pub fn forget_customer(
    tx: &Transaction<'_>,
    shop: &str,
    customer_id: Option<i64>,
    email_hash: Option<&str>,
) -> Result<usize, ServerError> {
    let shop_sql = pipeline::sql::sql_string(shop);
    let mut forgotten = 0;
    if let Some(id) = customer_id {
        forgotten += forget_conversations_where(
            tx,
            &format!("shop_id = {shop_sql} AND json_extract(identity, '$.customer_id') = ?1"),
            &id,
        )?;
    }
    if let Some(hash) = email_hash {
        forgotten += forget_conversations_where(
            tx,
            &format!("shop_id = {shop_sql} AND json_extract(identity, '$.email_hash') = ?1"),
            &hash,
        )?;
    }
    Ok(forgotten)
}

/// `shop/redact` in the operational state: every conversation of the shop.
pub fn forget_shop(tx: &Transaction<'_>, shop: &str) -> Result<usize, ServerError> {
    let forgotten = forget_conversations_where(tx, "shop_id = ?1", &shop)?;
    tx.execute("DELETE FROM handoffs WHERE shop_id = ?1", [shop])?;
    tx.execute("DELETE FROM tombstones WHERE shop_id = ?1", [shop])?;
    Ok(forgotten)
}

/// Remembers that `table`'s row `id` was deleted at `deleted_at` (µs, the deletion's
/// version), keeping the latest deletion.
pub fn bury(
    tx: &Transaction<'_>,
    shop: &str,
    table: &str,
    id: i64,
    deleted_at: i64,
) -> Result<(), ServerError> {
    tx.prepare_cached(
        "INSERT INTO tombstones (shop_id, table_name, id, deleted_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (shop_id, table_name, id) DO UPDATE SET deleted_at = max(deleted_at, excluded.deleted_at)",
    )?
    .execute(params![shop, table, id, deleted_at])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_stored_and_sent_as_their_words() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(*status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(Status::HandedOff.lake(), ConversationStatus::Open);
        let unknown = parse_word::<Status>(4, "closed").unwrap_err().to_string();
        assert!(
            unknown
                .contains("unknown value \"closed\" (expected one of open, handed_off, resolved)"),
            "{unknown}"
        );
    }

    #[test]
    fn a_last_turn_saved_with_rfc_3339_times_still_reads() {
        // What the version before typed rows saved in `conversations.last_turn`.
        let old = r#"{"shop_id":"s","id":"c_t2","conversation_id":"c","message_id":"c_m2",
            "intent":"order_status","confidence":0.85,
            "retrieved":[{"doc_key":"policy:refund","bm25":1.5,"vector":0.5,"fused":0.9}],
            "cited_doc_keys":["policy:refund"],"answer_kind":"order_data",
            "needs_verification":false,"abstained":false,"abstain_reason":null,"helpful":null,
            "latency_ms":12,"model_version":"m/g1","created_at":"2026-09-30T23:30:00.000000Z",
            "updated_at":"2026-09-30T23:30:00.000000Z","month":"2026-09"}"#;
        let turn: TurnRow = json_column("last_turn", Some(old.to_string())).unwrap();
        assert_eq!(turn.created_at, 1_790_811_000_000_000);
        assert_eq!(turn.confidence, Some(0.85));
        assert_eq!(turn.retrieved[0].doc_key.as_deref(), Some("policy:refund"));
    }
}
