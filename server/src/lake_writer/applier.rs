//! The applier: everything the server learns reaches the lake through one path.
//!
//! Two outboxes feed it. Every chat turn writes its rows (`conversations`, `messages`,
//! `turns`, `handoffs`, `csat`) into the chat store's outbox in the same transaction as the
//! state change itself ([`crate::state::sqlite::enqueue_row`]); every acknowledged webhook
//! delivery is one `webhook_events` entry in the webhook store's outbox
//! ([`crate::lake_writer::acknowledger`]). The
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
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use index::Embedder;
use index::generation::IndexDir;
use pipeline::lake::{Mark, schema};
use pipeline::sources::webhooks::{Delivery, Effect, PrivacyRequest};
use pipeline::sources::{Context, Rows};
use pipeline::{Config, Lake};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::error::ServerError;
use crate::lake_writer::acknowledger::Acknowledger;
use crate::state::shops::ShopRegistry;
use crate::state::sqlite::Database;
use crate::state::{ChatStore, WebhookStore, chat};
use crate::unpoisoned;

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

/// One of the two outboxes the applier drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbox {
    /// The chat store's: turns, messages, conversations, handoffs, CSAT.
    Chat,
    /// The webhook store's: acknowledged deliveries.
    Webhooks,
}

impl Outbox {
    /// The Delta application id its marks carry.
    pub fn app_id(self) -> &'static str {
        match self {
            Self::Chat => CHAT_APP_ID,
            Self::Webhooks => WEBHOOK_APP_ID,
        }
    }
}

/// The embedding model index updates embed changed passages with.
#[derive(Clone)]
pub enum Model {
    /// The server's own (its query workers' model).
    Shared(Arc<dyn Embedder>),
    /// Loaded from this assets directory only when an index update needs it: a replay of
    /// files that changed no catalog or policy never loads a model.
    OnDemand(PathBuf),
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Shared(_) => f.write_str("Model::Shared"),
            Self::OnDemand(dir) => f.debug_tuple("Model::OnDemand").field(dir).finish(),
        }
    }
}

impl Model {
    pub(crate) fn get(&self) -> Result<Arc<dyn Embedder>, index::IndexError> {
        match self {
            Self::Shared(model) => Ok(model.clone()),
            Self::OnDemand(assets_dir) => Ok(Arc::new(index::FastEmbedder::load(assets_dir)?)),
        }
    }
}

/// What [`Applier::follow`] did to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexFollow {
    /// No indexed table changed, or there is no index yet: nothing to update, no model
    /// loaded.
    NotNeeded,
    /// Built a generation with the changed passages (`switched`: it passed its canary and
    /// went live).
    Updated { switched: bool },
    /// Another build holds the index; it reads the lake after these changes.
    Busy,
    /// The update failed (the message); the nightly rebuild catches up.
    Failed(String),
}

impl std::fmt::Display for IndexFollow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotNeeded => f.write_str("no index update needed"),
            Self::Updated { switched: true } => f.write_str("index updated"),
            Self::Updated { switched: false } => {
                f.write_str("index update built but kept the live generation")
            }
            Self::Busy => f.write_str("index busy: the running build includes the changes"),
            Self::Failed(error) => write!(f, "index update failed: {error}"),
        }
    }
}

/// The index part of [`Applier::follow`] and of a sync ([`super::syncer`]): builds a
/// generation when an indexed table changed, the first one too when `first` is set (a
/// server whose first shop has just been synced). The model is loaded only past those
/// checks.
pub(crate) async fn update_index(
    config: &Config,
    lake: &Lake,
    model: &Model,
    changed: &BTreeSet<&'static str>,
    first: bool,
) -> IndexFollow {
    let indexed = changed.iter().any(|t| INDEXED_TABLES.contains(t));
    let index_dir = IndexDir::new(&config.index_dir);
    let exists = index_dir.current().ok().flatten().is_some();
    if !indexed || !(exists || first) {
        return IndexFollow::NotNeeded;
    }
    let Ok(_lock) = index_dir.lock("rebuild") else {
        return IndexFollow::Busy;
    };
    let started = Instant::now();
    let model = match model.get() {
        Ok(model) => model,
        Err(error) => return IndexFollow::Failed(error.to_string()),
    };
    match index::rebuild::build_index(config, lake, model.as_ref(), "*", None, true).await {
        Ok(summary) => {
            tracing::info!(elapsed = ?started.elapsed(), %summary, "index updated after lake changes");
            IndexFollow::Updated {
                switched: summary.switched,
            }
        }
        Err(error) => IndexFollow::Failed(error.to_string()),
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
    /// Index updates need all of it ([`index::rebuild::build_index`]).
    config: Config,
    lake: Lake,
    chat: Arc<ChatStore>,
    webhooks: Arc<WebhookStore>,
    /// The webhook store's writer, which forgets applied entries itself (so that it never
    /// waits for the store's lock); the chat store's are forgotten here.
    acknowledger: Acknowledger,
    /// `app/uninstalled` and `shop/redact` change the shop's registry row.
    shops: Arc<ShopRegistry>,
    model: Model,
    /// Woken after changes were applied, so the server reloads its index and snapshot now
    /// rather than at its next refresh.
    changes: Arc<Notify>,
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
    /// The applier of the outboxes of `chat` and `webhooks` (the stores in the configured
    /// `state_dir`); fails when another process already has one.
    pub fn new(
        config: &Config,
        lake: Lake,
        chat: Arc<ChatStore>,
        webhooks: Arc<WebhookStore>,
        acknowledger: Acknowledger,
        shops: Arc<ShopRegistry>,
        model: Model,
    ) -> Result<Self, ServerError> {
        let lock = lock(&config.state_dir)?;
        Ok(Self {
            config: config.clone(),
            lake,
            chat,
            webhooks,
            shops,
            acknowledger,
            model,
            changes: Arc::new(Notify::new()),
            marks: Mutex::new(HashMap::new()),
            positions: Mutex::new(HashMap::new()),
            _lock: lock,
        })
    }

    /// Notified after each drain that changed the lake (see [`Applier::follow`]).
    pub fn changes(&self) -> Arc<Notify> {
        self.changes.clone()
    }

    fn database(&self, outbox: Outbox) -> &Database {
        match outbox {
            Outbox::Chat => self.chat.database(),
            Outbox::Webhooks => self.webhooks.database(),
        }
    }

    /// The entries of `outbox` up to and including `seq` are in the lake.
    fn forget_through(&self, outbox: Outbox, seq: i64) -> Result<(), ServerError> {
        match outbox {
            Outbox::Webhooks => {
                self.acknowledger.applied_through(seq);
                Ok(())
            }
            Outbox::Chat => self.chat.database().outbox_done(seq),
        }
    }

    async fn mark_of(
        &self,
        app_id: &'static str,
        spec: &'static schema::TableSpec,
    ) -> Result<i64, ServerError> {
        if let Some(mark) = unpoisoned(&self.marks).get(&(app_id, spec.name)) {
            return Ok(*mark);
        }
        let mark = self.lake.applied_version(spec, app_id).await?.unwrap_or(0);
        unpoisoned(&self.marks).insert((app_id, spec.name), mark);
        Ok(mark)
    }

    /// Applies the oldest entries of `outbox`.
    pub async fn drain_once(&self, outbox: Outbox) -> Result<Applied, ServerError> {
        let position = unpoisoned(&self.positions)
            .get(outbox.app_id())
            .copied()
            .unwrap_or(0);
        let entries = self.database(outbox).outbox(position, DRAIN_ROWS)?;
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
        let lake = &self.lake;
        let mark = Mark {
            app_id: outbox.app_id().to_string(),
            version: last,
        };
        for (table, rows) in by_table {
            let spec = schema::table(table).expect("grouped by known tables");
            let already = self.mark_of(outbox.app_id(), spec).await?;
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
                unpoisoned(&self.marks).insert((outbox.app_id(), table), last);
                applied.changed.insert(table);
            }
            tracing::debug!(table, rows = rows.len(), elapsed = ?started.elapsed(), "applied");
        }
        for (delivery, effect) in actions {
            self.act(&delivery, effect, &mut applied.changed).await?;
        }
        unpoisoned(&self.positions).insert(outbox.app_id(), last);
        self.forget_through(outbox, last)?;
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
            pii_key: self.config.pii_hash_key.clone(),
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
                self.chat.transaction(|tx| {
                    chat::bury(tx, &delivery.shop_id, table, id, delivery.version())
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
            if let Some(deleted_at) = self.chat.deleted_at(&delivery.shop_id, table, id)? {
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
        let lake = &self.lake;
        let config = &self.config;
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
            Effect::Uninstalled => {
                if self.shops.uninstall(shop, chrono::Utc::now())? {
                    tracing::info!(
                        shop,
                        "the app was uninstalled: tokens dropped, nothing served"
                    );
                }
                return Ok(());
            }
            Effect::Rows(_) | Effect::KeptRaw => return Ok(()),
        };
        let (action, customer, outcome) = match &request {
            PrivacyRequest::RedactCustomer(customer) => {
                let email_hash = customer
                    .email
                    .as_deref()
                    .map(|e| pipeline::pii::email_hash(&config.pii_hash_key, e));
                self.chat.transaction(|tx| {
                    chat::forget_customer(tx, shop, customer.id, email_hash.as_deref())
                })?;
                let outcome =
                    pipeline::privacy::redact_customer(lake, &config.pii_hash_key, shop, customer)
                        .await?;
                ("customer_redacted", Some(customer), outcome)
            }
            PrivacyRequest::ExportCustomer {
                customer,
                request_id,
            } => {
                let outcome = pipeline::privacy::export_customer(
                    lake,
                    &config.pii_hash_key,
                    shop,
                    customer,
                    *request_id,
                    &config.exports_dir,
                )
                .await?;
                ("customer_exported", Some(customer), outcome)
            }
            PrivacyRequest::RedactShop => {
                self.chat.transaction(|tx| chat::forget_shop(tx, shop))?;
                // Its registry row goes too: nothing of the shop is left to serve or sync.
                self.shops.remove(shop)?;
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
    pub async fn drain(&self, outbox: Outbox) -> Result<Applied, ServerError> {
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
    /// passages are embedded again; the others come from the embedding cache) when there
    /// is one to update, then wakes [`Applier::changes`] so the server switches to it and
    /// to the new commerce snapshot at once. Says what it did to the index; a failed update
    /// is logged and left to the nightly rebuild, never fatal.
    pub async fn follow(&self, changed: &BTreeSet<&'static str>) -> IndexFollow {
        if changed.is_empty() {
            return IndexFollow::NotNeeded;
        }
        let followed = update_index(&self.config, &self.lake, &self.model, changed, false).await;
        match &followed {
            IndexFollow::Failed(error) => {
                tracing::warn!(%error, "index update after webhook changes failed; the nightly rebuild will catch up");
            }
            IndexFollow::Busy => {
                tracing::info!("index busy; the running build will include the changes");
            }
            IndexFollow::NotNeeded | IndexFollow::Updated { .. } => {}
        }
        self.changes.notify_one();
        followed
    }

    /// Applies the webhook outbox every `every`, the chat outbox every `chat_every`, until
    /// `stop` fires; then drains both once more.
    pub async fn run(
        self,
        every: Duration,
        chat_every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
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
                match self.drain(Outbox::Chat).await {
                    Ok(applied) => changed.extend(applied.changed),
                    // The entries stay in the outbox; the next round retries them.
                    Err(error) => {
                        tracing::error!(%error, "writing chat records to the lake failed; will retry");
                    }
                }
            }
            match self.drain(Outbox::Webhooks).await {
                Ok(applied) => changed.extend(applied.changed),
                Err(error) => {
                    tracing::error!(%error, "applying webhook deliveries failed; will retry");
                }
            }
            self.follow(&changed).await;
        }
        for outbox in [Outbox::Chat, Outbox::Webhooks] {
            match self.drain(outbox).await {
                Ok(applied) => tracing::info!(
                    entries = applied.entries,
                    app = outbox.app_id(),
                    "outbox flushed to the lake"
                ),
                Err(error) => {
                    tracing::error!(%error, "final flush to the lake failed; entries stay in the outbox");
                }
            }
        }
    }
}
