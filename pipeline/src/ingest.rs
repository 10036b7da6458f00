//! `supportlake ingest DIR`: an export directory into the lake.
//!
//! Records stream from [`ExportDir::read_file`] on reader threads, one per file, which map
//! them to rows and decode the rows into Arrow batches against each table's explicit schema;
//! the writer gathers a table's batches until it has `ingest_batch_rows` rows and makes them
//! one upsert commit ([`Lake::write`]). Bad records never stop a run: they become
//! `quarantine` rows with the file, the record's position and the reason. Every run appends
//! one `ingest_runs` row.

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
use crate::sources::export::{Context, ExportDir, FileKind, Outcome, truncate};

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

/// Rows decoded into one Arrow batch at a time, on the reader's side.
const DECODE_ROWS: usize = 8192;
/// Batches the reader may run ahead of the writer: bounds what is in flight.
const READ_AHEAD_BATCHES: usize = 16;
/// Records between two progress reports.
const PROGRESS_EVERY: usize = 4096;

/// Progress callback: `(bytes read, total bytes)`.
pub type Progress<'a> = &'a mut (dyn FnMut(u64, u64) + Send);

/// What the reader thread hands the writer.
enum Handoff {
    Batch(&'static TableSpec, RecordBatch),
    Progress(u64),
}

/// The reader's side of the buffers: one strict Arrow JSON decoder per table, turning rows
/// into columnar batches as they arrive, so no JSON tree outlives its record.
#[derive(Default)]
struct Decoders {
    tables: BTreeMap<&'static str, (&'static TableSpec, Decoder)>,
}

impl Decoders {
    /// Adds a row; returns a batch once the table has [`DECODE_ROWS`] of them.
    fn push(&mut self, table: &'static str, row: &Value) -> Result<Option<Handoff>> {
        let (spec, decoder) = match self.tables.entry(table) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let spec = schema::table(table)
                    .ok_or_else(|| PipelineError::Input(format!("unknown table {table}")))?;
                e.insert((spec, decoder(spec)?))
            }
        };
        decoder.serialize(std::slice::from_ref(row))?;
        if decoder.len() >= DECODE_ROWS {
            return Ok(decoder.flush()?.map(|batch| Handoff::Batch(spec, batch)));
        }
        Ok(None)
    }

    /// The rows still held, as batches.
    fn finish(self) -> Result<Vec<Handoff>> {
        let mut out = Vec::new();
        for (spec, mut decoder) in self.tables.into_values() {
            if let Some(batch) = decoder.flush()? {
                out.push(Handoff::Batch(spec, batch));
            }
        }
        Ok(out)
    }
}

/// What a reader saw.
#[derive(Default)]
struct ReadStats {
    records_read: usize,
    records_ok: usize,
    quarantined: usize,
    reasons: BTreeMap<String, usize>,
    rows: BTreeMap<&'static str, usize>,
}

impl ReadStats {
    fn add(&mut self, other: ReadStats) {
        self.records_read += other.records_read;
        self.records_ok += other.records_ok;
        self.quarantined += other.quarantined;
        for (reason, n) in other.reasons {
            *self.reasons.entry(reason).or_default() += n;
        }
        for (table, n) in other.rows {
            *self.rows.entry(table).or_default() += n;
        }
    }
}

/// The writer's side: batches per table until a table has `limit` rows, then one write.
struct Pending<'l> {
    lake: &'l Lake,
    limit: usize,
    tables: BTreeMap<&'static str, (&'static TableSpec, Vec<RecordBatch>, usize)>,
    counts: BTreeMap<&'static str, TableCounts>,
}

impl Pending<'_> {
    async fn add(&mut self, spec: &'static TableSpec, batch: RecordBatch) -> Result<()> {
        let (_, batches, rows) = self
            .tables
            .entry(spec.name)
            .or_insert((spec, Vec::new(), 0));
        *rows += batch.num_rows();
        batches.push(batch);
        if *rows >= self.limit {
            self.write(spec.name).await?;
        }
        Ok(())
    }

    async fn write(&mut self, table: &'static str) -> Result<()> {
        let Some((spec, batches, rows)) =
            self.tables.get_mut(table).filter(|(_, _, rows)| *rows > 0)
        else {
            return Ok(());
        };
        let spec: &'static TableSpec = spec;
        let batch = concat_batches(&spec.schema, &std::mem::take(batches))?;
        *rows = 0;
        let outcome = self.lake.write(spec, batch).await?;
        let counts = self.counts.entry(table).or_default();
        counts.written += outcome.written;
        counts.unchanged += outcome.unchanged;
        Ok(())
    }

    async fn write_all(&mut self) -> Result<()> {
        let tables: Vec<&'static str> = self.tables.keys().copied().collect();
        for table in tables {
            self.write(table).await?;
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

/// Builds one batch with the table's schema from JSON rows, strictly: a field the schema
/// does not know is an error.
pub fn to_batch(spec: &TableSpec, rows: &[Value]) -> Result<RecordBatch> {
    decode(spec, rows)
}

/// [`to_batch`] for any serialisable rows (the typed rows of `lake::rows` too).
pub(crate) fn decode<S: Serialize>(spec: &TableSpec, rows: &[S]) -> Result<RecordBatch> {
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

/// The `quarantine` row of a record that cannot be ingested. Keyed by content, so
/// replaying the same bad input adds nothing.
pub fn quarantine_row(
    shop_id: &str,
    run_id: &str,
    file: &str,
    record_ref: &str,
    table: &str,
    reason: &str,
    raw: &str,
) -> Value {
    let id = hex::encode(&Sha256::digest(format!("{file}\n{record_ref}\n{reason}\n{raw}"))[..16]);
    json!({
        "shop_id": shop_id, "id": id, "run_id": run_id, "target_table": table,
        "source_file": file, "record_ref": record_ref, "reason": reason,
        "raw": truncate(raw), "quarantined_at": now_micros(),
    })
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// One reader thread: maps one file's records and decodes the rows to Arrow batches.
fn decode_file(
    ctx: &Context,
    kind: FileKind,
    path: &Path,
    handoff: &tokio::sync::mpsc::Sender<Handoff>,
    run_id: &str,
) -> Result<ReadStats> {
    let send = |message: Handoff| {
        handoff
            .blocking_send(message)
            .map_err(|_| PipelineError::Input("ingest writer stopped".into()))
    };
    let mut decoders = Decoders::default();
    let mut stats = ReadStats::default();
    let mut reported = 0u64;
    ExportDir::read_file(ctx, kind, path, |outcome, bytes| {
        stats.records_read += 1;
        let rows = match outcome {
            Outcome::Rows(rows) => {
                stats.records_ok += 1;
                rows
            }
            Outcome::Quarantined {
                file,
                record_ref,
                table,
                reason,
                raw,
            } => {
                stats.quarantined += 1;
                *stats.reasons.entry(reason_class(&reason)).or_default() += 1;
                vec![(
                    "quarantine",
                    quarantine_row(
                        &ctx.shop_id,
                        run_id,
                        &file,
                        &record_ref,
                        table,
                        &reason,
                        &raw,
                    ),
                )]
            }
        };
        for (table, row) in rows {
            *stats.rows.entry(table).or_default() += 1;
            if let Some(batch) = decoders.push(table, &row)? {
                send(batch)?;
            }
        }
        if stats.records_read.is_multiple_of(PROGRESS_EVERY) {
            // Records of a REST envelope all report 0 bytes: never count backwards.
            send(Handoff::Progress(bytes.saturating_sub(reported)))?;
            reported = bytes;
        }
        Ok(())
    })?;
    for batch in decoders.finish()? {
        send(batch)?;
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(reported);
    send(Handoff::Progress(size.saturating_sub(reported)))?;
    Ok(stats)
}

/// Ingests `dir` into `lake`.
pub async fn ingest(
    lake: &Lake,
    dir: &Path,
    config: &Config,
    progress: Progress<'_>,
) -> Result<IngestReport> {
    ingest_labelled(lake, dir, config, &dir.display().to_string(), progress).await
}

/// [`ingest`], recording `source` as where the run's data came from (a sync's staging
/// directory is gone afterwards; the shop it came from is what an engineer needs to see).
pub async fn ingest_labelled(
    lake: &Lake,
    dir: &Path,
    config: &Config,
    source: &str,
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

    // Parsing, mapping and decoding to Arrow run on reader threads, one per file (files are
    // independent), handing batches over a small bounded channel to this task, which encodes
    // Parquet and commits: the big files are read in parallel with each other and with the
    // writing, and a slow lake slows the readers instead of filling memory.
    let (handoff, mut received) = tokio::sync::mpsc::channel::<Handoff>(READ_AHEAD_BATCHES);
    let ctx = std::sync::Arc::new(ctx);
    let readers: Vec<_> = export
        .files
        .iter()
        .filter(|(kind, _)| *kind != FileKind::Blogs)
        .map(|(kind, path)| {
            let (ctx, handoff, run_id, kind, path) = (
                ctx.clone(),
                handoff.clone(),
                run_id.clone(),
                *kind,
                path.clone(),
            );
            tokio::task::spawn_blocking(move || decode_file(&ctx, kind, &path, &handoff, &run_id))
        })
        .collect();
    // The readers hold the only senders now: the channel closes when the last one is done.
    drop(handoff);
    let mut done = 0u64;
    let mut pending = Pending {
        lake,
        limit: config.ingest_batch_rows,
        tables: BTreeMap::new(),
        counts: BTreeMap::new(),
    };
    while let Some(message) = received.recv().await {
        match message {
            Handoff::Batch(spec, batch) => pending.add(spec, batch).await?,
            Handoff::Progress(bytes) => {
                done += bytes;
                progress(done, total);
            }
        }
    }
    let mut stats = ReadStats::default();
    for reader in readers {
        let file = reader
            .await
            .map_err(|e| PipelineError::Input(format!("ingest reader failed: {e}")))??;
        stats.add(file);
    }
    pending.write_all().await?;
    let mut tables = pending.counts;
    for (table, rows) in &stats.rows {
        tables.entry(table).or_default().rows = *rows;
    }
    let ReadStats {
        records_read,
        records_ok,
        quarantined,
        reasons,
        ..
    } = stats;
    // Quarantine rows are reported by reason below, not as a data table.
    tables.remove("quarantine");
    let report = IngestReport {
        run_id: run_id.clone(),
        shop_id: shop_id.clone(),
        source: source.to_string(),
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

/// The summary `supportlake ingest` prints: the run, then one row per table and one line
/// per quarantine reason.
impl std::fmt::Display for IngestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "ingest {} from {}: {} records read, {} ok, {} quarantined in {:.1}s",
            self.run_id,
            self.source,
            self.records_read,
            self.records_ok,
            self.quarantined,
            self.seconds
        )?;
        write!(
            f,
            "{:<18} {:>10} {:>10} {:>10}",
            "table", "rows", "written", "unchanged"
        )?;
        for (table, c) in &self.tables {
            write!(
                f,
                "\n{table:<18} {:>10} {:>10} {:>10}",
                c.rows, c.written, c.unchanged
            )?;
        }
        for (reason, n) in &self.quarantine_reasons {
            write!(f, "\nquarantined ({reason}): {n}")?;
        }
        Ok(())
    }
}
