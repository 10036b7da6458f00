//! The commands on the lake itself: write a demo store, ingest exports, query with SQL, list
//! the tables, show the configuration.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use pipeline::ingest::IngestReport;
use pipeline::sql::{Format, SqlEngine, render};
use pipeline::{Config, Lake};

use super::{advance, ingest_progress_bar, spinner};

/// `generate`: writes a demo store, showing what it is writing.
pub fn generate(scale: u32, seed: u64, out: &Path, catalog_only: bool) -> Result<()> {
    let contents = if catalog_only {
        demo_store::Contents::CatalogOnly
    } else {
        demo_store::Contents::Everything
    };
    let bar = spinner();
    let summary = demo_store::generate(scale, seed, contents, out, |what, n| {
        bar.set_message(format!("{what}: {n}"));
    })?;
    bar.finish_and_clear();
    println!("wrote {}: {summary}", out.display());
    Ok(())
}

/// `ingest`: fails when nothing valid could be read, after printing the report.
pub async fn ingest(config: &Config, dir: &Path, json: bool) -> Result<ExitCode> {
    let lake = Lake::open(config.lake_url()?)?;
    let report = ingest_with_progress(&lake, dir, config).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    if !report.succeeded() {
        eprintln!("error: nothing valid could be read from {}", dir.display());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Ingests `dir` with a bar of bytes read.
pub async fn ingest_with_progress(
    lake: &Lake,
    dir: &Path,
    config: &Config,
) -> Result<IngestReport> {
    let bar = ingest_progress_bar();
    let report = pipeline::ingest::ingest(lake, dir, config, &mut advance(&bar))
        .await
        .with_context(|| format!("ingesting {}", dir.display()))?;
    bar.finish_and_clear();
    Ok(report)
}

/// `sql`: one read-only query, rendered.
pub async fn sql(config: &Config, query: &str, format: Format) -> Result<()> {
    let lake = Lake::open(config.lake_url()?)?;
    let engine = SqlEngine::open(&lake).await?;
    let batches = engine.query(query).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", render(&batches, format)?)?;
    Ok(())
}

/// `tables`: every lake table, its row count (`-` before it exists) and what it holds.
pub async fn tables(config: &Config) -> Result<()> {
    let lake = Lake::open(config.lake_url()?)?;
    let counts = pipeline::lake::row_counts(&lake).await?;
    for spec in pipeline::lake::TABLES.iter() {
        let count = counts
            .get(spec.name)
            .map_or("-".to_string(), i64::to_string);
        println!("{:<18} {:>10}  {}", spec.name, count, spec.description);
    }
    Ok(())
}

/// `config`: the resolved configuration, secrets redacted.
pub fn config(config: &Config) -> Result<()> {
    print!("{}", toml::to_string_pretty(&config.redacted())?);
    Ok(())
}
