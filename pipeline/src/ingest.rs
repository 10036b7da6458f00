//! `supportlake ingest DIR`: an export directory into the lake.
//!
//! Records stream from [`ExportDir::read`] into one buffer per table; a full buffer becomes
//! an Arrow batch (built against the table's explicit schema) and one upsert commit
//! ([`Lake::write`]). Bad records never stop a run: they become `quarantine` rows with the
//! file, the record's position and the reason. Every run appends one `ingest_runs` row.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use arrow_json::ReaderBuilder;
use deltalake::arrow::array::RecordBatch;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{PipelineError, Result};
use crate::lake::{Lake, TableSpec, schema};
use crate::source::{Context, ExportDir, Outcome, truncate};

/// Per-table counts of one run.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct TableCounts {
    /// Rows the input mapped to this table.
    pub rows: usize,
    /// Rows inserted or replacing an older version.
    pub written: usize,
    /// Rows the lake already held at the same or a newer version.
    pub unchanged: usize,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub run_id: String,
    pub shop_id: String,
    pub source: String,
    pub records_read: usize,
    pub records_ok: usize,
    pub quarantined: usize,
    /// Quarantined records by reason class (`missing id`, `invalid JSON`, …).
    pub quarantine_reasons: BTreeMap<String, usize>,
    pub tables: BTreeMap<&'static str, TableCounts>,
    pub seconds: f64,
}

impl IngestReport {
    /// A run fails only when the input held nothing usable at all.
    pub fn succeeded(&self) -> bool {
        self.records_ok > 0
    }
}

/// Progress callback: `(bytes read, total bytes)`.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

struct Buffers<'l> {
    lake: &'l Lake,
    limit: usize,
    rows: BTreeMap<&'static str, Vec<Value>>,
    counts: BTreeMap<&'static str, TableCounts>,
}

impl Buffers<'_> {
    async fn push(&mut self, table: &'static str, row: Value) -> Result<()> {
        let buffer = self.rows.entry(table).or_default();
        buffer.push(row);
        self.counts.entry(table).or_default().rows += 1;
        if buffer.len() >= self.limit {
            self.flush(table).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, table: &'static str) -> Result<()> {
        let Some(rows) = self.rows.get_mut(table).filter(|r| !r.is_empty()) else {
            return Ok(());
        };
        let rows = std::mem::take(rows);
        let spec = schema::table(table)
            .ok_or_else(|| PipelineError::Input(format!("unknown table {table}")))?;
        let batch = to_batch(spec, &rows)?;
        let outcome = self.lake.write(spec, batch).await?;
        let counts = self.counts.entry(table).or_default();
        counts.written += outcome.written;
        counts.unchanged += outcome.unchanged;
        Ok(())
    }

    async fn flush_all(&mut self) -> Result<()> {
        let tables: Vec<&'static str> = self.rows.keys().copied().collect();
        for table in tables {
            self.flush(table).await?;
        }
        Ok(())
    }
}

/// Builds a batch with the table's schema from JSON rows. Strict: a field the schema does
/// not know is a bug in a transform, and fails loudly rather than being dropped.
pub fn to_batch(spec: &TableSpec, rows: &[Value]) -> Result<RecordBatch> {
    let mut decoder = ReaderBuilder::new(spec.schema.clone())
        .with_strict_mode(true)
        .with_batch_size(rows.len().max(1))
        .build_decoder()?;
    decoder.serialize(rows)?;
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(spec.schema.clone())))
}

/// The reason's class: the text before the first `:`.
fn reason_class(reason: &str) -> String {
    reason
        .split(':')
        .next()
        .unwrap_or(reason)
        .trim()
        .to_string()
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Ingests `dir` into `lake`.
pub async fn ingest(
    lake: &Lake,
    dir: &Path,
    config: &Config,
    progress: Progress<'_>,
) -> Result<IngestReport> {
    let started = Instant::now();
    let started_at = now_micros();
    let export = ExportDir::open(dir)?;
    let run_id = uuid::Uuid::new_v4().to_string();
    let ctx = Context {
        shop_id: export.shop_id.clone(),
        shop_domain: export.shop_domain.clone(),
        pii_key: &config.pii_hash_key,
        export_time: export.export_time,
        blogs: export.blogs(),
    };
    lake.ensure_all().await?;
    let total = export.total_bytes();
    let mut buffers = Buffers {
        lake,
        limit: config.ingest_batch_rows,
        rows: BTreeMap::new(),
        counts: BTreeMap::new(),
    };
    let mut records_read = 0usize;
    let mut records_ok = 0usize;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut quarantined = 0usize;

    // Reading is synchronous and the writes are async: records are collected in chunks and
    // pushed between reads, so the buffers (not the chunk) bound memory.
    let mut pending: Vec<Outcome> = Vec::with_capacity(4096);
    let mut last_bytes = 0u64;
    let mut chunks: Vec<(Vec<Outcome>, u64)> = Vec::new();
    export.read(&ctx, |outcome, bytes| {
        pending.push(outcome);
        last_bytes = bytes;
        if pending.len() >= 4096 {
            chunks.push((std::mem::take(&mut pending), bytes));
        }
        Ok(())
    })?;
    chunks.push((pending, last_bytes));
    for (chunk, bytes) in chunks {
        for outcome in chunk {
            records_read += 1;
            match outcome {
                Outcome::Rows(rows) => {
                    records_ok += 1;
                    for (table, row) in rows {
                        buffers.push(table, row).await?;
                    }
                }
                Outcome::Quarantined {
                    file,
                    record_ref,
                    table,
                    reason,
                    raw,
                } => {
                    quarantined += 1;
                    *reasons.entry(reason_class(&reason)).or_default() += 1;
                    let id = hex::encode(
                        &Sha256::digest(format!("{file}\n{record_ref}\n{reason}\n{raw}"))[..16],
                    );
                    buffers.push("quarantine", json!({
                        "shop_id": ctx.shop_id, "id": id, "run_id": run_id, "target_table": table,
                        "source_file": file, "record_ref": record_ref, "reason": reason,
                        "raw": truncate(&raw), "quarantined_at": now_micros(),
                    })).await?;
                }
            }
        }
        progress(bytes, total);
    }
    buffers.flush_all().await?;
    let mut tables = buffers.counts;
    // Quarantine rows are reported by reason below, not as a data table.
    tables.remove("quarantine");
    let report = IngestReport {
        run_id: run_id.clone(),
        shop_id: ctx.shop_id.clone(),
        source: dir.display().to_string(),
        records_read,
        records_ok,
        quarantined,
        quarantine_reasons: reasons,
        tables,
        seconds: started.elapsed().as_secs_f64(),
    };
    let written: usize = report.tables.values().map(|c| c.written).sum();
    let unchanged: usize = report.tables.values().map(|c| c.unchanged).sum();
    let run = json!({
        "shop_id": ctx.shop_id, "run_id": run_id, "source": report.source, "lake_url": lake.url().as_str(),
        "started_at": started_at, "finished_at": now_micros(),
        "status": if report.succeeded() { "succeeded" } else { "failed" },
        "records_read": records_read, "rows_written": written, "rows_unchanged": unchanged,
        "quarantined": quarantined,
        "table_counts": serde_json::to_string(&report.tables).unwrap_or_default(),
        "quarantine_reasons": serde_json::to_string(&report.quarantine_reasons).unwrap_or_default(),
    });
    let spec = schema::table("ingest_runs").expect("ingest_runs is a lake table");
    lake.write(spec, to_batch(spec, &[run])?).await?;
    Ok(report)
}
