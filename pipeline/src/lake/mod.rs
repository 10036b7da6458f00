//! The lake: Delta tables under one URL, written with keyed, versioned upserts.
//!
//! Each table lives at `<lake_url>/<table name>/`. Every write here is exactly one Delta
//! commit (or none, when the input changes nothing), so a reader sees a batch entirely or not
//! at all. The upsert is computed with DataFusion before anything is written:
//!
//! 1. the incoming batch is deduplicated by key, keeping the newest `updated_at`;
//! 2. it is joined against the table's keys and versions, keeping only rows that are new or
//!    strictly newer than what is stored — so replaying an input, or a late older event,
//!    writes nothing;
//! 3. only-new rows are appended (cheap); if any stored row is replaced, the rows go through
//!    a Delta MERGE keyed on the table key (and partition, for pruning).

pub mod rows;
pub mod schema;
pub mod vocab;

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::{Array, AsArray, BooleanArray, Int64Array, RecordBatch, UInt32Array};
use deltalake::arrow::compute::take_record_batch;
use deltalake::arrow::datatypes::TimestampMicrosecondType;
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext, col};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructType, Transaction};
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use url::Url;

pub use schema::{TABLES, TableSpec, WriteMode};

use crate::error::{PipelineError, Result};

/// What one write did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Rows that were inserted or replaced an older version.
    pub written: usize,
    /// Rows that matched what the lake already holds (same or older version): skipped.
    pub unchanged: usize,
}

/// A writer's position, committed atomically with the rows it covers (a Delta `txn`
/// action: application id and version, as kafka-delta-ingest records its offsets). A writer
/// that crashed after the commit reads [`Lake::applied_version`] on restart and skips what
/// the table already holds, so nothing is applied twice and nothing is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub app_id: String,
    pub version: i64,
}

impl Mark {
    fn commit_properties(mark: Option<&Mark>) -> CommitProperties {
        let properties = CommitProperties::default();
        match mark {
            Some(m) => properties
                .with_application_transaction(Transaction::new(m.app_id.clone(), m.version)),
            None => properties,
        }
    }
}

/// Handle on a lake location.
#[derive(Debug, Clone)]
pub struct Lake {
    url: Url,
}

/// Parquet files target this size: large enough for efficient scans, small enough that a
/// merge rewrites little. Delta's own default for optimize is 100 MiB.
const TARGET_FILE_BYTES: u64 = 128 * 1024 * 1024;

fn writer_properties() -> WriterProperties {
    // zstd level 3: most of zstd's ratio for a fraction of the CPU of higher levels.
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .build()
}

impl Lake {
    /// Opens (and for `file://`, creates) the lake location. Tables are created lazily.
    pub fn open(url: Url) -> Result<Self> {
        if url.scheme() == "file" {
            let path = url
                .to_file_path()
                .map_err(|()| PipelineError::Config(format!("bad file URL {url}")))?;
            std::fs::create_dir_all(&path).map_err(|e| PipelineError::io(&path, e))?;
        }
        let url = if url.path().ends_with('/') {
            url
        } else {
            Url::parse(&format!("{url}/")).expect("appending a slash keeps a URL valid")
        };
        Ok(Self { url })
    }

    /// The lake's URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// URL of one table's directory.
    pub fn table_url(&self, name: &str) -> Url {
        self.url
            .join(&format!("{name}/"))
            .expect("table names are URL-safe")
    }

    /// Loads a table, or `None` when it was never written.
    pub async fn load(&self, spec: &TableSpec) -> Result<Option<DeltaTable>> {
        let url = self.table_url(spec.name);
        if url.scheme() == "file" {
            let log = url.to_file_path().expect("file URL").join("_delta_log");
            if !log.exists() {
                return Ok(None);
            }
        }
        match DeltaTable::try_from_url(url).await {
            Ok(table) if table.version().is_some() => Ok(Some(table)),
            Ok(_) | Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Loads a table, creating it empty (schema, partitioning, comment) when missing.
    pub async fn ensure(&self, spec: &TableSpec) -> Result<DeltaTable> {
        if let Some(table) = self.load(spec).await? {
            return Ok(table);
        }
        let url = self.table_url(spec.name);
        if url.scheme() == "file" {
            let path = url.to_file_path().expect("file URL");
            std::fs::create_dir_all(&path).map_err(|e| PipelineError::io(&path, e))?;
        }
        let structure: StructType = spec.schema.as_ref().try_into_kernel()?;
        // Built without loading: there is no log to load yet, and loading would log an error.
        let table = DeltaTableBuilder::from_url(url)?.build()?;
        let table = table
            .create()
            .with_table_name(spec.name)
            .with_comment(spec.description)
            .with_columns(structure.fields().cloned())
            .with_partition_columns(spec.partition.into_iter().map(String::from))
            .with_save_mode(SaveMode::Ignore)
            .await?;
        Ok(table)
    }

    /// Creates every table that does not exist yet, so SQL sees the whole data model even
    /// before a source fills a table.
    pub async fn ensure_all(&self) -> Result<()> {
        for spec in TABLES.iter() {
            self.ensure(spec).await?;
        }
        Ok(())
    }

    /// Writes a batch with the table's [`WriteMode`], as at most one Delta commit.
    pub async fn write(&self, spec: &TableSpec, batch: RecordBatch) -> Result<WriteOutcome> {
        self.write_marked(spec, batch, None).await
    }

    /// [`Lake::write`], committing `mark` in the same Delta commit as the rows. When the
    /// rows change nothing there is no commit, and the mark is not recorded: replaying
    /// them is harmless.
    pub async fn write_marked(
        &self,
        spec: &TableSpec,
        batch: RecordBatch,
        mark: Option<&Mark>,
    ) -> Result<WriteOutcome> {
        if batch.num_rows() == 0 {
            return Ok(WriteOutcome::default());
        }
        let incoming = batch.num_rows();
        let table = self.ensure(spec).await?;
        if spec.mode == WriteMode::Append {
            append(table, spec, vec![batch], mark).await?;
            return Ok(WriteOutcome {
                written: incoming,
                unchanged: 0,
            });
        }
        let batch = newest_per_key(spec, &batch)?;
        if table.snapshot()?.log_data().num_files() == 0 {
            // Nothing stored yet: every (deduplicated) row is new, no join needed.
            let written = batch.num_rows();
            append(table, spec, vec![batch], mark).await?;
            return Ok(WriteOutcome {
                written,
                unchanged: incoming - written,
            });
        }
        let (rows, replaces_existing) = new_or_newer_rows(&table, spec, batch).await?;
        let written: usize = rows.iter().map(RecordBatch::num_rows).sum();
        let outcome = WriteOutcome {
            written,
            unchanged: incoming - written,
        };
        if written == 0 {
            return Ok(outcome);
        }
        if replaces_existing {
            merge(table, spec, rows, mark).await?;
        } else {
            append(table, spec, rows, mark).await?;
        }
        Ok(outcome)
    }

    /// The last version `app_id` committed to the table with a [`Mark`] (`None`: never).
    pub async fn applied_version(&self, spec: &TableSpec, app_id: &str) -> Result<Option<i64>> {
        let Some(table) = self.load(spec).await? else {
            return Ok(None);
        };
        Ok(table
            .snapshot()?
            .transaction_version(table.log_store().as_ref(), app_id)
            .await?)
    }

    /// Rows of the table matching a SQL `predicate` (the table is `t`).
    pub async fn count_where(&self, spec: &TableSpec, predicate: &str) -> Result<usize> {
        let Some(table) = self.load(spec).await? else {
            return Ok(0);
        };
        let ctx = session()?;
        table.update_datafusion_session(&ctx.state())?;
        ctx.register_table("t", table.table_provider().await?)?;
        let count = count_of(&ctx, &format!("SELECT count(*) FROM t WHERE {predicate}")).await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Deletes the rows matching a SQL `predicate` (one commit, none when nothing matches);
    /// returns how many.
    pub async fn delete_where(&self, spec: &TableSpec, predicate: &str) -> Result<usize> {
        let matching = self.count_where(spec, predicate).await?;
        if matching == 0 {
            return Ok(0);
        }
        let table = self.ensure(spec).await?;
        table
            .delete()
            .with_predicate(predicate)
            .with_writer_properties(writer_properties())
            .await?;
        Ok(matching)
    }

    /// Sets `columns` to SQL expressions in the rows matching `predicate` (one commit, none
    /// when nothing matches); returns how many rows.
    pub async fn update_where(
        &self,
        spec: &TableSpec,
        predicate: &str,
        columns: &[(&str, &str)],
    ) -> Result<usize> {
        let matching = self.count_where(spec, predicate).await?;
        if matching == 0 {
            return Ok(0);
        }
        let table = self.ensure(spec).await?;
        let update = columns.iter().fold(
            table
                .update()
                .with_predicate(predicate)
                .with_writer_properties(writer_properties()),
            |u, (column, value)| u.with_update(*column, *value),
        );
        update.await?;
        Ok(matching)
    }

    /// Deletes, now, every file the table's current version no longer references: after a
    /// privacy deletion the old files still hold the deleted rows, and Delta's default
    /// 7-day retention would keep them. Time travel to before this point stops working,
    /// which is the purpose. Returns the number of files deleted.
    pub async fn purge_history(&self, spec: &TableSpec) -> Result<usize> {
        let Some(table) = self.load(spec).await? else {
            return Ok(0);
        };
        let (_, vacuumed) = table
            .vacuum()
            .with_retention_period(chrono::Duration::zero())
            .with_enforce_retention_duration(false)
            .await?;
        Ok(vacuumed.files_deleted.len())
    }
}

async fn append(
    table: DeltaTable,
    spec: &TableSpec,
    batches: Vec<RecordBatch>,
    mark: Option<&Mark>,
) -> Result<()> {
    table
        .write(batches)
        .with_save_mode(SaveMode::Append)
        .with_commit_properties(Mark::commit_properties(mark))
        .with_partition_columns(spec.partition.into_iter().map(String::from))
        .with_writer_properties(writer_properties())
        .with_target_file_size(std::num::NonZeroU64::new(TARGET_FILE_BYTES))
        .await?;
    Ok(())
}

fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// Step 1 of the module doc: keeps one row per key, the one with the newest version (the
/// last of equal versions, as a replay of the same stream would).
fn newest_per_key(spec: &TableSpec, batch: &RecordBatch) -> Result<RecordBatch> {
    let key_columns: Vec<_> = spec
        .key
        .iter()
        .map(|k| {
            batch
                .column(
                    spec.schema
                        .index_of(k)
                        .expect("key columns are in the schema"),
                )
                .clone()
        })
        .collect();
    let converter = RowConverter::new(
        key_columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?;
    let keys = converter.convert_columns(&key_columns)?;
    let versions = spec.version_column.map(|v| {
        let index = spec
            .schema
            .index_of(v)
            .expect("version column is in the schema");
        batch
            .column(index)
            .as_primitive::<TimestampMicrosecondType>()
            .clone()
    });
    let version = |i: usize| versions.as_ref().map_or(0, |v| v.value(i));
    let mut newest: HashMap<_, usize> = HashMap::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        newest
            .entry(keys.row(i))
            .and_modify(|kept| {
                if version(i) >= version(*kept) {
                    *kept = i;
                }
            })
            .or_insert(i);
    }
    if newest.len() == batch.num_rows() {
        return Ok(batch.clone());
    }
    let mut indices: Vec<u32> = newest.into_values().map(|i| i as u32).collect();
    indices.sort_unstable();
    Ok(take_record_batch(batch, &UInt32Array::from(indices))?)
}

/// A DataFusion session for the lake: `DATAFUSION_*` variables tune it, and two dynamic
/// filter optimisations with known wrong-result bugs in DataFusion 55 are off unless the
/// environment turns them on:
///
/// * aggregate dynamic filters: a `min(x), max(y)` query may prune rows it needs and return a
///   wrong minimum, differently from run to run (apache/datafusion#24816). The reports'
///   default window is such a query; a knowledge-gaps run lost 4 of 1,998 rows in about one
///   run in three until this was switched off.
/// * join dynamic filters: a filter remapped by column name can land on the other side's
///   same-named column and drop rows silently (apache/datafusion#25244); our joins are all on
///   same-named keys (`shop_id`, `conversation_id`, `id`).
pub fn session() -> Result<SessionContext> {
    let mut config = SessionConfig::from_env()
        .map_err(|e| crate::PipelineError::Sql(format!("DATAFUSION_* settings: {e}")))?;
    let optimizer = &mut config.options_mut().optimizer;
    if std::env::var_os("DATAFUSION_OPTIMIZER_ENABLE_AGGREGATE_DYNAMIC_FILTER_PUSHDOWN").is_none() {
        optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    }
    if std::env::var_os("DATAFUSION_OPTIMIZER_ENABLE_JOIN_DYNAMIC_FILTER_PUSHDOWN").is_none() {
        optimizer.enable_join_dynamic_filter_pushdown = false;
    }
    Ok(SessionContext::new_with_config(config))
}

/// Step 2 of the module doc: returns the rows to write (with the table's schema) and
/// whether any of them replaces a stored row.
async fn new_or_newer_rows(
    table: &DeltaTable,
    spec: &TableSpec,
    batch: RecordBatch,
) -> Result<(Vec<RecordBatch>, bool)> {
    let ctx = session()?;
    let source = MemTable::try_new(spec.schema.clone(), vec![vec![batch]])?;
    ctx.register_table("source", Arc::new(source))?;
    table.update_datafusion_session(&ctx.state())?;
    ctx.register_table("target", table.table_provider().await?)?;

    let columns: Vec<String> = spec
        .schema
        .fields()
        .iter()
        .map(|f| quoted(f.name()))
        .collect();
    let keys: Vec<String> = spec.key.iter().map(|k| quoted(k)).collect();
    let join = keys
        .iter()
        .map(|k| format!("s.{k} = t.{k}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let first_key = &keys[0];
    let keep = match spec.version_column {
        Some(v) => format!("t.{first_key} IS NULL OR s.{v} > t.{v}", v = quoted(v)),
        None => format!("t.{first_key} IS NULL"),
    };
    // The target side only needs keys and version: a projection Parquet answers cheaply.
    let mut target_columns = keys.clone();
    if let Some(v) = spec.version_column {
        target_columns.push(quoted(v));
    }
    let sql = format!(
        "WITH tgt AS (SELECT {target_cols} FROM target) \
         SELECT {s_cols}, t.{first_key} IS NOT NULL AS _replaces \
         FROM source s LEFT JOIN tgt t ON {join} \
         WHERE {keep}",
        target_cols = target_columns.join(", "),
        s_cols = columns
            .iter()
            .map(|c| format!("s.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let found = ctx.sql(&sql).await?.collect().await?;
    let width = spec.schema.fields().len();
    let mut replaces_existing = false;
    let mut rows = Vec::with_capacity(found.len());
    for batch in found {
        if batch.num_rows() == 0 {
            continue;
        }
        let flags = batch
            .column(width)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| PipelineError::Sql("upsert flag is not boolean".into()))?;
        replaces_existing |= flags.true_count() > 0;
        let columns = batch.columns()[..width].to_vec();
        rows.push(RecordBatch::try_new(spec.schema.clone(), columns)?);
    }
    Ok((rows, replaces_existing))
}

async fn merge(
    table: DeltaTable,
    spec: &TableSpec,
    rows: Vec<RecordBatch>,
    mark: Option<&Mark>,
) -> Result<()> {
    let ctx = session()?;
    let source = ctx.read_batches(rows)?;
    let mut predicate: Vec<String> = spec
        .key
        .iter()
        .map(|k| format!("target.{k} = source.{k}", k = quoted(k)))
        .collect();
    if let Some(p) = spec.partition {
        predicate.push(format!("target.{p} = source.{p}", p = quoted(p)));
    }
    let names: Vec<String> = spec
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let version = spec.version_column;
    table
        .merge(source, predicate.join(" AND "))
        .with_source_alias("source")
        .with_target_alias("target")
        .with_writer_properties(writer_properties())
        .with_commit_properties(Mark::commit_properties(mark))
        .when_matched_update(|update| {
            let update = match version {
                Some(v) => update.predicate(format!("source.{v} > target.{v}", v = quoted(v))),
                None => update,
            };
            names.iter().fold(update, |u, n| {
                u.update(n.as_str(), col(format!("source.{}", quoted(n))))
            })
        })?
        .when_not_matched_insert(|insert| {
            names.iter().fold(insert, |i, n| {
                i.set(n.as_str(), col(format!("source.{}", quoted(n))))
            })
        })?
        .await?;
    Ok(())
}

/// Registers every existing table of the lake in a DataFusion session, by table name.
pub async fn register_all(lake: &Lake, ctx: &SessionContext) -> Result<Vec<&'static str>> {
    let mut registered = Vec::new();
    for spec in TABLES.iter() {
        if let Some(table) = lake.load(spec).await? {
            table.update_datafusion_session(&ctx.state())?;
            ctx.register_table(spec.name, table.table_provider().await?)?;
            registered.push(spec.name);
        }
    }
    Ok(registered)
}

/// What compacting one table did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Compaction {
    pub table: &'static str,
    /// Files the optimize wrote, and the small files it replaced.
    pub files_added: u64,
    pub files_removed: u64,
    /// Files deleted by vacuum: no version within the retention period needs them.
    pub files_vacuumed: usize,
}

/// Compacts every table: Delta `optimize` rewrites small files (each ingest batch and
/// upsert adds some) into files of about `TARGET_FILE_BYTES`, then `vacuum` deletes the
/// files no version inside the table's retention period (Delta's default, 7 days) still
/// references — so readers of a recent version, and time travel within a week, keep
/// working. Each step is its own commit; a crash between tables leaves every table valid.
pub async fn compact(lake: &Lake) -> Result<Vec<Compaction>> {
    let mut done = Vec::new();
    for spec in TABLES.iter() {
        let Some(table) = lake.load(spec).await? else {
            continue;
        };
        let (table, optimized) = table
            .optimize()
            .with_target_size(
                std::num::NonZeroU64::new(TARGET_FILE_BYTES).expect("non-zero constant"),
            )
            .with_writer_properties(writer_properties())
            .await?;
        let (_, vacuumed) = table.vacuum().await?;
        done.push(Compaction {
            table: spec.name,
            files_added: optimized.num_files_added,
            files_removed: optimized.num_files_removed,
            files_vacuumed: vacuumed.files_deleted.len(),
        });
    }
    Ok(done)
}

/// The single `count(*)` a query returns.
async fn count_of(ctx: &SessionContext, sql: &str) -> Result<i64> {
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok(batches
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>())
        .map_or(0, |a| a.value(0)))
}

/// Row counts of every existing table (for run summaries and tests).
pub async fn row_counts(lake: &Lake) -> Result<HashMap<&'static str, i64>> {
    let ctx = session()?;
    let mut counts = HashMap::new();
    for name in register_all(lake, &ctx).await? {
        let count = count_of(&ctx, &format!("SELECT count(*) FROM {name}")).await?;
        counts.insert(name, count);
    }
    Ok(counts)
}

impl Lake {
    /// The lake's shop when it holds exactly one: what a command acting on "the store" uses
    /// when it was given no shop.
    pub async fn only_shop(&self) -> Result<String> {
        let engine = crate::sql::SqlEngine::open(self).await?;
        let batches = engine
            .query("SELECT DISTINCT shop_id FROM shops ORDER BY shop_id")
            .await?;
        let mut shops: Vec<String> = crate::sql::strings(&batches, "shop_id")?
            .into_iter()
            .flatten()
            .collect();
        match shops.len() {
            1 => Ok(shops.remove(0)),
            0 => Err(PipelineError::NoShop),
            _ => Err(PipelineError::ManyShops(shops)),
        }
    }
}
