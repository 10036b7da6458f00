//! The applier: everything the server learns reaches the lake through one path.
//!
//! Two outboxes feed it. Every chat turn writes its rows (`conversations`, `messages`,
//! `turns`, `handoffs`, `csat`) into the state store's outbox in the same transaction as the
//! state change itself ([`crate::store::enqueue`]); every acknowledged webhook delivery is
//! one `webhook_events` entry in the webhook store's outbox ([`crate::webhook`]). The
//! [`Applier`] drains both in the background, in order of their sequence numbers:
//!
//! 1. a `webhook_events` entry is expanded by [`pipeline::sources::webhooks::effect`] into the rows of
//!    its topic (orders, products, …), a deletion, or a privacy request; a payload that
//!    cannot be mapped is quarantined with its reason (the raw delivery is kept regardless);
//! 2. the rows are grouped per table and each table is written as one Delta commit (the
//!    keyed upsert keeps the newest version of a row, so a late, older delivery changes
//!    nothing). The commit carries a [`Mark`]: the outbox's app id and the last sequence
//!    number it covers, in the same atomic commit as the rows;
//! 3. deletions and privacy requests run, in order (each is idempotent);
//! 4. only then are the entries forgotten.
//!
//! A crash anywhere replays the entries still in the outbox, and each table skips those at
//! or below its mark: nothing is applied twice and nothing acknowledged is lost. One applier
//! runs per state directory (`applier.lock`), which is what makes the marks it remembers
//! trustworthy. Shopper-visible latency never waits for Delta.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline::lake::{Mark, schema};
use pipeline::sources::webhooks::{Delivery, Effect, PrivacyRequest};
use pipeline::sources::{Context, Rows};
use serde_json::{Value, json};

use crate::AppState;
use crate::answer::{Answer, Understanding};
use crate::error::ServerError;
use crate::store::{self, Conversation, Handoff, Message, Store};
use crate::webhook::Acknowledger;

/// Entries written per drain: bounds the memory and the size of one commit.
const DRAIN_ROWS: usize = 20_000;
/// The Delta application ids of the two outboxes' marks.
pub const CHAT_APP_ID: &str = "supportlake-chat-outbox";
pub const WEBHOOK_APP_ID: &str = "supportlake-webhook-outbox";
/// Tables whose rows `*/delete` topics remove (see [`Effect::Delete`]).
const TOMBSTONED_TABLES: &[&str] = &["orders", "products", "customers"];
/// Tables whose change means the retrieval index or its product facts are stale.
const INDEXED_TABLES: &[&str] = &[
    "products",
    "variants",
    "inventory_levels",
    "policies",
    "articles",
];

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

/// One outbox the applier drains, and the app id its marks carry.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub store: Arc<Store>,
    pub app_id: &'static str,
    /// The webhook store's writer, which forgets applied entries itself (so that it never
    /// waits for the store's lock); the chat store's are forgotten here.
    acknowledger: Option<Acknowledger>,
}

impl Outbox {
    /// The entries up to and including `seq` are in the lake.
    fn forget_through(&self, seq: i64) -> Result<(), ServerError> {
        match &self.acknowledger {
            Some(acknowledger) => {
                acknowledger.applied_through(seq);
                Ok(())
            }
            None => self.store.outbox_done(seq),
        }
    }
}

/// What one drain did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Outbox entries taken.
    pub entries: usize,
    /// Tables whose content changed.
    pub changed: BTreeSet<&'static str>,
}

/// Drains the outboxes into the lake (see the module doc).
#[derive(Debug)]
pub struct Applier {
    state: AppState,
    /// The mark each (app id, table) was last written with, read from the lake once.
    marks: Mutex<HashMap<(&'static str, &'static str), i64>>,
    /// The last entry of each outbox (by app id) this applier has put in the lake: the next
    /// drain reads after it, whether or not the entries are forgotten yet.
    positions: Mutex<HashMap<&'static str, i64>>,
    /// Held while this applier exists: one applier per state directory.
    _lock: std::fs::File,
}

/// Takes `<state_dir>/applier.lock`, or says who holds it.
fn lock(state_dir: &Path) -> Result<std::fs::File, ServerError> {
    std::fs::create_dir_all(state_dir)?;
    let path = state_dir.join("applier.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    file.try_lock().map_err(|_| {
        ServerError::NotReady(format!(
            "another process applies this state directory's outboxes ({} is locked): is a server running?",
            path.display()
        ))
    })?;
    Ok(file)
}

impl Applier {
    /// The applier of `state`'s outboxes; fails when another process already has one.
    pub fn new(state: AppState) -> Result<Self, ServerError> {
        let lock = lock(&state.settings().state_dir)?;
        Ok(Self {
            state,
            marks: Mutex::new(HashMap::new()),
            positions: Mutex::new(HashMap::new()),
            _lock: lock,
        })
    }

    pub fn chat(&self) -> Outbox {
        Outbox {
            store: self.state.inner.store.clone(),
            app_id: CHAT_APP_ID,
            acknowledger: None,
        }
    }

    pub fn webhooks(&self) -> Outbox {
        Outbox {
            store: self.state.inner.webhook_store.clone(),
            app_id: WEBHOOK_APP_ID,
            acknowledger: Some(self.state.inner.acknowledger.clone()),
        }
    }

    async fn mark_of(
        &self,
        app_id: &'static str,
        spec: &'static schema::TableSpec,
    ) -> Result<i64, ServerError> {
        if let Some(mark) = crate::unpoisoned(&self.marks).get(&(app_id, spec.name)) {
            return Ok(*mark);
        }
        let mark = self
            .state
            .inner
            .lake
            .applied_version(spec, app_id)
            .await?
            .unwrap_or(0);
        crate::unpoisoned(&self.marks).insert((app_id, spec.name), mark);
        Ok(mark)
    }

    /// Applies the oldest entries of `outbox`.
    pub async fn drain_once(&self, outbox: &Outbox) -> Result<Applied, ServerError> {
        let position = crate::unpoisoned(&self.positions)
            .get(outbox.app_id)
            .copied()
            .unwrap_or(0);
        let entries = outbox.store.outbox(position, DRAIN_ROWS)?;
        let Some(last) = entries.last().map(|e| e.seq) else {
            return Ok(Applied::default());
        };
        let mut applied = Applied {
            entries: entries.len(),
            ..Applied::default()
        };
        let mut by_table: BTreeMap<&'static str, Vec<(i64, Value)>> = BTreeMap::new();
        let mut actions = Vec::new();
        for entry in entries {
            let Some(spec) = schema::table(&entry.table) else {
                tracing::error!(
                    table = entry.table,
                    "outbox entry for a table the lake does not have; dropped"
                );
                continue;
            };
            if spec.name == "webhook_events" {
                self.expand(entry.seq, &entry.row, &mut by_table, &mut actions)?;
            }
            by_table
                .entry(spec.name)
                .or_default()
                .push((entry.seq, entry.row));
        }
        let lake = &self.state.inner.lake;
        let mark = Mark {
            app_id: outbox.app_id.to_string(),
            version: last,
        };
        for (table, rows) in by_table {
            let spec = schema::table(table).expect("grouped by known tables");
            let already = self.mark_of(outbox.app_id, spec).await?;
            let rows: Vec<Value> = rows
                .into_iter()
                .filter(|(seq, _)| *seq > already)
                .map(|(_, row)| row)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let started = Instant::now();
            let batch = pipeline::ingest::to_batch(spec, &rows)?;
            let outcome = lake.write_marked(spec, batch, Some(&mark)).await?;
            if outcome.written > 0 {
                crate::unpoisoned(&self.marks).insert((outbox.app_id, table), last);
                applied.changed.insert(table);
            }
            tracing::debug!(table, rows = rows.len(), elapsed = ?started.elapsed(), "applied");
        }
        for (delivery, effect) in actions {
            self.act(&delivery, effect, &mut applied.changed).await?;
        }
        crate::unpoisoned(&self.positions).insert(outbox.app_id, last);
        outbox.forget_through(last)?;
        Ok(applied)
    }

    /// Step 1 of the module doc: what a delivery's topic does.
    fn expand(
        &self,
        seq: i64,
        row: &Value,
        by_table: &mut BTreeMap<&'static str, Vec<(i64, Value)>>,
        actions: &mut Vec<(Delivery, Effect)>,
    ) -> Result<(), ServerError> {
        let delivery = match Delivery::from_event_row(row) {
            Ok(delivery) => delivery,
            Err(reason) => {
                tracing::error!(%reason, "unreadable webhook outbox entry; kept raw only");
                return Ok(());
            }
        };
        let ctx = Context {
            shop_id: delivery.shop_id.clone(),
            shop_domain: delivery.shop_domain.clone(),
            pii_key: self.state.settings().pii_hash_key.clone(),
            export_time: delivery.version(),
            blogs: HashMap::new(),
        };
        match pipeline::sources::webhooks::effect(&ctx, &delivery) {
            Ok(Effect::Rows(rows)) => {
                if self.deleted_since(&delivery, &rows)? {
                    tracing::debug!(
                        topic = delivery.topic,
                        event = delivery.event_id,
                        "an update older than the resource's deletion; kept raw only"
                    );
                    return Ok(());
                }
                for (table, row) in rows {
                    by_table.entry(table).or_default().push((seq, row));
                }
            }
            Ok(Effect::KeptRaw) => {}
            Ok(Effect::Delete { deleted, deletes }) => {
                // Buried before the rest of the batch is expanded, so a late update behind
                // it in this very batch is already turned away.
                let (table, id) = deleted;
                self.state.store().transaction(|tx| {
                    store::bury(tx, &delivery.shop_id, table, id, delivery.version())
                })?;
                actions.push((delivery, Effect::Delete { deleted, deletes }));
            }
            Ok(effect) => actions.push((delivery, effect)),
            Err(reason) => {
                let row = pipeline::ingest::quarantine_row(
                    &delivery.shop_id,
                    "webhooks",
                    &format!("webhook {}", delivery.topic),
                    &delivery.event_id,
                    "webhook_events",
                    &reason,
                    &delivery.body,
                );
                by_table.entry("quarantine").or_default().push((seq, row));
            }
        }
        Ok(())
    }

    /// Whether `rows`, one delivery's, describe a resource deleted later than they were
    /// written: a late update that must not bring it back. The version of a row is its
    /// `updated_at`, else the delivery's.
    fn deleted_since(&self, delivery: &Delivery, rows: &Rows) -> Result<bool, ServerError> {
        for (table, row) in rows {
            if !TOMBSTONED_TABLES.contains(table) {
                continue;
            }
            let Some(id) = row["id"].as_i64() else {
                continue;
            };
            if let Some(deleted_at) = self
                .state
                .store()
                .deleted_at(&delivery.shop_id, table, id)?
            {
                let version = row["updated_at"].as_i64().unwrap_or(delivery.version());
                if version <= deleted_at {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Step 3 of the module doc: a deletion or a privacy request.
    async fn act(
        &self,
        delivery: &Delivery,
        effect: Effect,
        changed: &mut BTreeSet<&'static str>,
    ) -> Result<(), ServerError> {
        let lake = &self.state.inner.lake;
        let settings = self.state.settings();
        let shop = delivery.shop_id.as_str();
        let request = match effect {
            Effect::Delete { deletes, .. } => {
                for (table, predicate) in deletes {
                    let spec = schema::table(table).expect("deletes name known tables");
                    if lake.delete_where(spec, &predicate).await? > 0 {
                        changed.insert(spec.name);
                    }
                }
                return Ok(());
            }
            Effect::Privacy(request) => request,
            Effect::Rows(_) | Effect::KeptRaw => return Ok(()),
        };
        let (action, customer, outcome) = match &request {
            PrivacyRequest::RedactCustomer(customer) => {
                let email_hash = customer
                    .email
                    .as_deref()
                    .map(|e| pipeline::pii::email_hash(&settings.pii_hash_key, e));
                self.state.store().transaction(|tx| {
                    store::forget_customer(tx, shop, customer.id, email_hash.as_deref())
                })?;
                let outcome = pipeline::privacy::redact_customer(
                    lake,
                    &settings.pii_hash_key,
                    shop,
                    customer,
                )
                .await?;
                ("customer_redacted", Some(customer), outcome)
            }
            PrivacyRequest::ExportCustomer {
                customer,
                request_id,
            } => {
                let outcome = pipeline::privacy::export_customer(
                    lake,
                    &settings.pii_hash_key,
                    shop,
                    customer,
                    *request_id,
                    &settings.config.exports_dir,
                )
                .await?;
                ("customer_exported", Some(customer), outcome)
            }
            PrivacyRequest::RedactShop => {
                self.state
                    .store()
                    .transaction(|tx| store::forget_shop(tx, shop))?;
                let outcome = pipeline::privacy::redact_shop(lake, shop).await?;
                ("shop_redacted", None, outcome)
            }
        };
        if action != "customer_exported" {
            changed.extend(outcome.table_counts.keys().copied());
        }
        tracing::info!(
            action,
            shop,
            rows = outcome.rows_affected(),
            files = outcome.files_purged,
            "privacy request carried out"
        );
        let audit = json!({
            "shop_id": shop,
            "id": format!("{}:{}", delivery.topic, delivery.event_id),
            "topic": delivery.topic,
            "customer_id": customer.and_then(|c| c.id),
            "order_ids": customer.map(|c| c.order_ids.clone()).unwrap_or_default(),
            "action": action,
            "rows_affected": outcome.rows_affected(),
            "table_counts": serde_json::to_string(&outcome.table_counts)?,
            "files_purged": outcome.files_purged,
            "export_path": outcome.export_path.map(|p| p.display().to_string()),
            "requested_at": delivery.version(),
            "completed_at": chrono::Utc::now().timestamp_micros(),
        });
        let spec = schema::table("privacy_audit").expect("privacy_audit is a table");
        lake.write(spec, pipeline::ingest::to_batch(spec, &[audit])?)
            .await?;
        Ok(())
    }

    /// Drains `outbox` until it is empty.
    pub async fn drain(&self, outbox: &Outbox) -> Result<Applied, ServerError> {
        let mut total = Applied::default();
        loop {
            let applied = self.drain_once(outbox).await?;
            total.entries += applied.entries;
            total.changed.extend(applied.changed);
            if applied.entries < DRAIN_ROWS {
                return Ok(total);
            }
        }
    }

    /// After catalog or policy changes: builds a new index generation (only the changed
    /// passages are embedded again; the others come from the embedding cache) and switches
    /// the server to it and to the new commerce snapshot at once.
    pub async fn follow(&self, changed: &BTreeSet<&'static str>) {
        if changed.is_empty() {
            return;
        }
        let settings = self.state.settings();
        let indexed = changed.iter().any(|t| INDEXED_TABLES.contains(t));
        if indexed && self.state.index().is_ok() {
            let index_dir = index::generation::IndexDir::new(&settings.index_dir);
            match index_dir.lock("rebuild") {
                Ok(_lock) => {
                    let started = Instant::now();
                    match index::rebuild::build_index(
                        &settings.config,
                        &self.state.inner.lake,
                        self.state.inner.queries.model().as_ref(),
                        "*",
                        None,
                        true,
                    )
                    .await
                    {
                        Ok(summary) => {
                            tracing::info!(elapsed = ?started.elapsed(), %summary, "index updated after webhook changes");
                        }
                        Err(error) => {
                            tracing::warn!(%error, "index update after webhook changes failed; the nightly rebuild will catch up");
                        }
                    }
                }
                Err(error) => {
                    tracing::info!(%error, "index busy; the running build will include the changes");
                }
            }
        }
        if let Err(error) = self.state.refresh().await {
            tracing::warn!(%error, "refresh after applying changes failed");
        }
    }

    /// Applies the webhook outbox every `every`, the chat outbox every `chat_every`, until
    /// `stop` fires; then drains both once more.
    pub async fn run(
        self,
        every: Duration,
        chat_every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let (chat, webhooks) = (self.chat(), self.webhooks());
        let mut last_chat = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
            let mut changed = BTreeSet::new();
            // Chat first: a redaction arriving by webhook must find the turns recorded before it.
            if last_chat.elapsed() >= chat_every {
                last_chat = Instant::now();
                match self.drain(&chat).await {
                    Ok(applied) => changed.extend(applied.changed),
                    // The entries stay in the outbox; the next round retries them.
                    Err(error) => {
                        tracing::error!(%error, "writing chat records to the lake failed; will retry");
                    }
                }
            }
            match self.drain(&webhooks).await {
                Ok(applied) => changed.extend(applied.changed),
                Err(error) => {
                    tracing::error!(%error, "applying webhook deliveries failed; will retry");
                }
            }
            self.follow(&changed).await;
        }
        for outbox in [&chat, &webhooks] {
            match self.drain(outbox).await {
                Ok(applied) => tracing::info!(
                    entries = applied.entries,
                    app = outbox.app_id,
                    "outbox flushed to the lake"
                ),
                Err(error) => {
                    tracing::error!(%error, "final flush to the lake failed; entries stay in the outbox");
                }
            }
        }
    }
}
