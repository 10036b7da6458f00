//! What both state files share: how a connection is opened (WAL, the synchronous level,
//! the statement cache), one transaction at a time through the writing connection, and the
//! outbox of rows waiting for the lake.

use std::path::Path;
use std::sync::Mutex;

use pipeline::lake::rows::Row;
use rusqlite::{Connection, Transaction, params};
use serde_json::Value;

use crate::error::ServerError;
use crate::unpoisoned;

/// The outbox table, in both files: rows in the order they were written.
const OUTBOX_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL,
    row TEXT NOT NULL
);
";

/// Room in the prepared-statement cache: more than the distinct statements of a file.
const STATEMENTS: usize = 64;

/// Outbox entries forgotten per transaction (see [`Database::outbox_done`]).
pub const FORGET_AT_ONCE: usize = 500;

/// Rows waiting for the lake, in the order they were written.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub seq: i64,
    pub table: String,
    pub row: Value,
}

/// A state file: one writing connection, since SQLite has one writer anyway and every
/// transaction here takes microseconds, and one reading connection for the applier's bulk
/// reads, which in WAL mode read a snapshot without holding up the writer.
#[derive(Debug)]
pub struct Database {
    connection: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl Database {
    /// Opens (creating when missing) the file at `path` with its `schema` and the outbox,
    /// in WAL mode at the given `synchronous` level.
    pub fn open(path: &Path, schema: &str, synchronous: &str) -> Result<Self, ServerError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", synchronous)?;
        connection.pragma_update(None, "busy_timeout", 5000)?;
        connection.execute_batch(OUTBOX_SCHEMA)?;
        connection.execute_batch(schema)?;
        // Every statement is prepared once and reused (`prepare_cached`): parsing SQL per
        // request was a few percent of the server's CPU under load.
        connection.set_prepared_statement_cache_capacity(STATEMENTS);
        let reader = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.pragma_update(None, "busy_timeout", 5000)?;
        Ok(Self {
            connection: Mutex::new(connection),
            reader: Mutex::new(reader),
        })
    }

    /// The writing connection, for settings and statements outside a transaction.
    pub fn writer(&self) -> std::sync::MutexGuard<'_, Connection> {
        unpoisoned(&self.connection)
    }

    /// The reading connection (a snapshot that never holds up the writer).
    pub fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        unpoisoned(&self.reader)
    }

    /// Runs `work` in one transaction, committed only when it returns `Ok` (an error rolls
    /// every write of `work` back).
    pub fn transaction<T, E: From<ServerError>>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut connection = self.writer();
        let tx = connection.transaction().map_err(ServerError::from)?;
        let value = work(&tx)?;
        tx.commit().map_err(ServerError::from)?;
        Ok(value)
    }

    /// The oldest `limit` outbox entries after `after`. Read through the reading connection and parsed
    /// after it is released: a drain of thousands of deliveries never makes the writer
    /// (and so the acknowledgements waiting on it) wait.
    pub fn outbox(&self, after: i64, limit: usize) -> Result<Vec<OutboxEntry>, ServerError> {
        let rows = {
            let reader = self.reader();
            let mut statement = reader.prepare_cached(
                "SELECT seq, table_name, row FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            statement
                .query_map(params![after, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?
        };
        rows.into_iter()
            .map(|(seq, table, row)| {
                Ok(OutboxEntry {
                    seq,
                    table,
                    row: serde_json::from_str(&row)?,
                })
            })
            .collect()
    }

    /// Forgets outbox entries up to and including `seq` (they are in the lake), a few
    /// hundred per transaction so that the writer is never held for long.
    pub fn outbox_done(&self, seq: i64) -> Result<(), ServerError> {
        while self.forget_outbox(seq, FORGET_AT_ONCE)? == FORGET_AT_ONCE {}
        Ok(())
    }

    /// Forgets at most `limit` outbox entries up to and including `seq`; returns how many.
    /// The commit skips the fsync even in the webhook store: a forget lost in a power cut
    /// only brings back entries that the applier then skips by its marks in the lake.
    pub fn forget_outbox(&self, seq: i64, limit: usize) -> Result<usize, ServerError> {
        let mut connection = self.writer();
        let synchronous: i64 = connection.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        let forgotten = (|| {
            let tx = connection.transaction()?;
            let forgotten = tx
                .prepare_cached(
                    "DELETE FROM outbox WHERE seq IN \
                     (SELECT seq FROM outbox WHERE seq <= ?1 ORDER BY seq LIMIT ?2)",
                )?
                .execute(params![seq, limit])?;
            tx.commit()?;
            Ok::<_, rusqlite::Error>(forgotten)
        })();
        connection.pragma_update(None, "synchronous", synchronous)?;
        Ok(forgotten?)
    }

    /// Entries waiting for the lake.
    pub fn outbox_len(&self) -> Result<i64, ServerError> {
        Ok(self
            .reader()
            .prepare_cached("SELECT count(*) FROM outbox")?
            .query_row([], |r| r.get(0))?)
    }
}

/// Queues a lake row of its table (written by the applier).
pub fn enqueue_row<R: Row>(tx: &Transaction<'_>, row: &R) -> Result<(), ServerError> {
    enqueue_serialized(tx, R::TABLE, &serde_json::to_string(row)?)
}

/// Queues a lake row already serialized as JSON (the acknowledger's deliveries: serialized
/// by the request handlers in parallel, not on the committing thread).
pub fn enqueue_serialized(tx: &Transaction<'_>, table: &str, row: &str) -> Result<(), ServerError> {
    tx.prepare_cached("INSERT INTO outbox (table_name, row) VALUES (?1, ?2)")?
        .execute(params![table, row])?;
    Ok(())
}
