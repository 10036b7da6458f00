//! The nightly job and the index build as the CLI and the server run them: read the intent
//! examples and the canary set named by the configuration, then build a generation; and
//! `rebuild` — ingest what changed, compact the lake, rebuild the index incrementally,
//! validate, switch — under one lock so two runs cannot collide.
//!
//! Every step is idempotent: ingest upserts, compaction of a compacted table rewrites
//! nothing, and an index whose inputs did not change keeps its live generation (same
//! fingerprint), so a rerun after a failure simply finishes the job.

use std::path::Path;
use std::time::Instant;

use pipeline::ingest::{IngestReport, Progress};
use pipeline::lake::Compaction;
use pipeline::sql::SqlEngine;
use pipeline::{Config, Lake};

use crate::generation::{BuildSummary, Canary, IndexDir};
use crate::{Embedder, IndexError};

/// Reads the intent examples in `config.intents_dir` and the canary set (a retrieval JSONL
/// file, or self-retrieval over the passages' titles), then builds a generation of `shop`
/// (`*` for every shop).
pub async fn build_index(
    config: &Config,
    lake: &Lake,
    embedder: &dyn Embedder,
    shop: &str,
    canary: Option<&Path>,
    keep_if_unchanged: bool,
) -> Result<BuildSummary, IndexError> {
    let engine = SqlEngine::open(lake).await?;
    let examples = crate::classifier::read_example_dir(&config.intents_dir)?;
    let canary = match canary {
        Some(path) => Canary::Set(crate::eval::read_retrieval_set(path)?),
        None => Canary::SelfRetrieval,
    };
    let passages = crate::documents::all_passages(&engine, shop).await?;
    IndexDir::new(&config.index_dir).build(
        &passages,
        embedder,
        &examples,
        shop,
        &canary,
        keep_if_unchanged,
    )
}

/// What each step of a rebuild did.
#[derive(Debug)]
pub struct RebuildReport {
    /// `None` when no export directory was given.
    pub ingest: Option<IngestReport>,
    pub compacted: Vec<Compaction>,
    pub compact_seconds: f64,
    /// `None` when the ingest read nothing usable and the run stopped there.
    pub index: Option<BuildSummary>,
}

impl RebuildReport {
    /// The run did its job: the index is live and current.
    pub fn succeeded(&self) -> bool {
        self.index
            .as_ref()
            .is_some_and(|s| s.switched || s.unchanged)
    }
}

/// Runs the nightly job. `from` is a directory of Shopify-format exports to ingest first;
/// `progress` sees the ingest's bytes read of total.
pub async fn rebuild(
    config: &Config,
    lake: &Lake,
    embedder: &dyn Embedder,
    from: Option<&Path>,
    canary: Option<&Path>,
    progress: Progress<'_>,
) -> Result<RebuildReport, IndexError> {
    let _lock = IndexDir::new(&config.index_dir).lock("rebuild")?;
    let ingest = match from {
        Some(dir) => Some(pipeline::ingest::ingest(lake, dir, config, progress).await?),
        None => None,
    };
    if ingest.as_ref().is_some_and(|r| !r.succeeded()) {
        return Ok(RebuildReport {
            ingest,
            compacted: Vec::new(),
            compact_seconds: 0.0,
            index: None,
        });
    }
    let started = Instant::now();
    let compacted = pipeline::lake::compact(lake).await?;
    let compact_seconds = started.elapsed().as_secs_f64();
    let index = build_index(config, lake, embedder, "*", canary, true).await?;
    Ok(RebuildReport {
        ingest,
        compacted,
        compact_seconds,
        index: Some(index),
    })
}

/// One summary line per step, as a log or a cron mail shows them.
impl std::fmt::Display for RebuildReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(r) = &self.ingest {
            let written: usize = r.tables.values().map(|c| c.written).sum();
            writeln!(
                f,
                "ingest   {} records read, {} ok, {} quarantined, {written} rows written ({:.1} s)",
                r.records_read, r.records_ok, r.quarantined, r.seconds
            )?;
        }
        let Some(index) = &self.index else {
            return write!(
                f,
                "stopped: nothing valid could be read (the records are in the quarantine table); no compaction, the index is unchanged"
            );
        };
        writeln!(
            f,
            "compact  {} tables: {} small files rewritten into {}, {} unreferenced files vacuumed ({:.1} s)",
            self.compacted.len(),
            self.compacted.iter().map(|c| c.files_removed).sum::<u64>(),
            self.compacted.iter().map(|c| c.files_added).sum::<u64>(),
            self.compacted
                .iter()
                .map(|c| c.files_vacuumed)
                .sum::<usize>(),
            self.compact_seconds
        )?;
        for (n, line) in index.to_string().lines().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}{line}",
                if n == 0 { "index    " } else { "         " }
            )?;
        }
        Ok(())
    }
}
