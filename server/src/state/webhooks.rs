//! `webhooks.sqlite`: the outbox of acknowledged deliveries and the keys seen recently
//! (Shopify retries for 4 hours; a key is kept a day). Its only writer is the
//! acknowledger's thread.

use std::path::Path;

use rusqlite::{Transaction, params};

use crate::error::ServerError;
use crate::state::sqlite::Database;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS webhook_seen (
    shop_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    event_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (shop_id, topic, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS webhook_seen_age ON webhook_seen (received_at);
";

/// The webhook store.
#[derive(Debug)]
pub struct WebhookStore {
    database: Database,
}

impl WebhookStore {
    /// Opens (creating when missing) `webhooks.sqlite` in `dir`: acknowledged deliveries.
    /// Every commit is fsync'd (`synchronous = FULL`): a delivery Shopify was told we have
    /// must survive a power cut too, not only a crash. The acknowledger commits deliveries
    /// in groups, so the fsync is shared.
    ///
    /// SQLite checkpoints the WAL inside the commit that crosses its threshold, which made
    /// that group's acknowledgements wait for a copy of megabytes and an fsync of the
    /// database; here it is off, and the acknowledger checkpoints after it has replied
    /// ([`WebhookStore::checkpoint`]).
    pub fn open(dir: &Path) -> Result<Self, ServerError> {
        let database = Database::open(&dir.join("webhooks.sqlite"), SCHEMA, "FULL")?;
        database
            .writer()
            .pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(Self { database })
    }

    /// The file's connections and outbox.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Copies the WAL's committed pages into the database file (a passive checkpoint by the
    /// only writer: it always completes, so the next write starts the WAL over).
    pub fn checkpoint(&self) -> Result<(), ServerError> {
        self.database
            .writer()
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Records a delivery's key; `false` when it was seen already (a duplicate to drop).
pub fn first_sighting(
    tx: &Transaction<'_>,
    shop: &str,
    topic: &str,
    event_id: &str,
    received_at: i64,
) -> Result<bool, ServerError> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO webhook_seen (shop_id, topic, event_id, received_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![shop, topic, event_id, received_at])?;
    Ok(inserted == 1)
}

/// Forgets delivery keys first seen before `before` (µs).
pub fn forget_sightings(tx: &Transaction<'_>, before: i64) -> Result<usize, ServerError> {
    Ok(tx
        .prepare_cached("DELETE FROM webhook_seen WHERE received_at < ?1")?
        .execute(params![before])?)
}
