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
use arrow_json::reader::Decoder;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::concat_batches;
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

/// Records handed from the reader thread to the writer at a time.
const CHUNK_RECORDS: usize = 2048;
/// Chunks the reader may run ahead of the writer: bounds the records in flight.
const READ_AHEAD_CHUNKS: usize = 4;

/// Progress callback: `(bytes read, total bytes)`.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Rows of one table waiting for their commit, already columnar: JSON rows go into an
/// Arrow decoder as they arrive and leave it as record batches every [`DECODE_ROWS`], so a
/// buffer costs Arrow's compact memory, not a JSON tree per row.
struct TableBuffer {
    spec: &'static TableSpec,
    decoder: Decoder,
    batches: Vec<RecordBatch>,
    rows: usize,
}

/// Rows decoded into one Arrow batch at a time.
const DECODE_ROWS: usize = 8192;

struct Buffers<'l> {
    lake: &'l Lake,
    limit: usize,
    tables: BTreeMap<&'static str, TableBuffer>,
    counts: BTreeMap<&'static str, TableCounts>,
}

impl Buffers<'_> {
    async fn push(&mut self, table: &'static str, row: Value) -> Result<()> {
        let buffer = match self.tables.entry(table) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let spec = schema::table(table)
                    .ok_or_else(|| PipelineError::Input(format!("unknown table {table}")))?;
                e.insert(TableBuffer {
                    spec,
                    decoder: decoder(spec)?,
                    batches: Vec::new(),
                    rows: 0,
                })
            }
        };
        buffer.decoder.serialize(std::slice::from_ref(&row))?;
        buffer.rows += 1;
        if buffer.decoder.len() >= DECODE_ROWS {
            buffer.batches.extend(buffer.decoder.flush()?);
        }
        self.counts.entry(table).or_default().rows += 1;
        if buffer.rows >= self.limit {
            self.flush(table).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, table: &'static str) -> Result<()> {
        let Some(buffer) = self.tables.get_mut(table).filter(|b| b.rows > 0) else {
            return Ok(());
        };
        buffer.batches.extend(buffer.decoder.flush()?);
        let batch = concat_batches(&buffer.spec.schema, &std::mem::take(&mut buffer.batches))?;
        buffer.rows = 0;
        let outcome = self.lake.write(buffer.spec, batch).await?;
        let counts = self.counts.entry(table).or_default();
        counts.written += outcome.written;
        counts.unchanged += outcome.unchanged;
        Ok(())
    }

    async fn flush_all(&mut self) -> Result<()> {
        let tables: Vec<&'static str> = self.tables.keys().copied().collect();
        for table in tables {
            self.flush(table).await?;
        }
        Ok(())
    }
}

/// A strict decoder for a table: a field the schema does not know is a bug in a transform,
/// and fails loudly rather than being dropped.
fn decoder(spec: &TableSpec) -> Result<Decoder> {
    Ok(ReaderBuilder::new(spec.schema.clone())
        .with_strict_mode(true)
        .with_batch_size(DECODE_ROWS)
        .build_decoder()?)
}

/// Builds one batch with the table's schema from JSON rows (strict, as [`decoder`]).
pub fn to_batch(spec: &TableSpec, rows: &[Value]) -> Result<RecordBatch> {
    let batches = rows
        .chunks(DECODE_ROWS)
        .map(|chunk| {
            let mut decoder = decoder(spec)?;
            decoder.serialize(chunk)?;
            Ok(decoder.flush()?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(concat_batches(&spec.schema, batches.iter().flatten())?)
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
        pii_key: config.pii_hash_key.clone(),
        export_time: export.export_time,
        blogs: export.blogs(),
    };
    let shop_id = ctx.shop_id.clone();
    lake.ensure_all().await?;
    let total = export.total_bytes();
    let mut buffers = Buffers {
        lake,
        limit: config.ingest_batch_rows,
        tables: BTreeMap::new(),
        counts: BTreeMap::new(),
    };
    let mut records_read = 0usize;
    let mut records_ok = 0usize;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut quarantined = 0usize;

    // Parsing and mapping run on a thread of their own and hand over chunks of outcomes
    // through a small bounded channel: one core reads while the other builds and writes
    // Parquet, and a slow lake slows the reader instead of filling memory.
    let (chunks, mut received) =
        tokio::sync::mpsc::channel::<(Vec<Outcome>, u64)>(READ_AHEAD_CHUNKS);
    let reader = tokio::task::spawn_blocking(move || {
        let mut pending: Vec<Outcome> = Vec::with_capacity(CHUNK_RECORDS);
        let mut last_bytes = 0u64;
        export.read(&ctx, |outcome, bytes| {
            pending.push(outcome);
            last_bytes = bytes;
            if pending.len() >= CHUNK_RECORDS {
                let chunk = std::mem::replace(&mut pending, Vec::with_capacity(CHUNK_RECORDS));
                chunks
                    .blocking_send((chunk, bytes))
                    .map_err(|_| PipelineError::Input("ingest writer stopped".into()))?;
            }
            Ok(())
        })?;
        // If the writer stopped, its own error is the one to report.
        let _ = chunks.blocking_send((pending, last_bytes));
        Ok::<(), PipelineError>(())
    });
    while let Some((chunk, bytes)) = received.recv().await {
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
                    buffers
                        .push(
                            "quarantine",
                            json!({
                                "shop_id": shop_id, "id": id, "run_id": run_id, "target_table": table,
                                "source_file": file, "record_ref": record_ref, "reason": reason,
                                "raw": truncate(&raw), "quarantined_at": now_micros(),
                            }),
                        )
                        .await?;
                }
            }
        }
        progress(bytes, total);
    }
    reader
        .await
        .map_err(|e| PipelineError::Input(format!("ingest reader failed: {e}")))??;
    buffers.flush_all().await?;
    let mut tables = buffers.counts;
    // Quarantine rows are reported by reason below, not as a data table.
    tables.remove("quarantine");
    let report = IngestReport {
        run_id: run_id.clone(),
        shop_id: shop_id.clone(),
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
        "shop_id": shop_id, "run_id": run_id, "source": report.source, "lake_url": lake.url().as_str(),
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
