//! `report`: the catalog of support reports, their SQL, and running one over the lake.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use index::{Embedder, FastEmbedder};
use pipeline::report::{ReportArgs, ReportFormat};
use pipeline::sql::SqlEngine;
use pipeline::{Config, Lake};

/// `report --list`: each report's name and one-line definition.
pub fn list() {
    for r in pipeline::report::definitions::reports() {
        println!("{:<20} {}", r.name, r.summary);
    }
}

/// `report NAME`: runs the report (or, with `sql`, shows its SQL file) to stdout or `output`.
pub async fn run(
    config: &Config,
    name: &str,
    args: &ReportArgs,
    format: ReportFormat,
    sql: bool,
    output: Option<&Path>,
) -> Result<()> {
    let definition = pipeline::report::definitions::report(name)?;
    let text = if sql {
        format!(
            "-- pipeline/reports/{}\n{}{}",
            definition.path, definition.header, definition.sql
        )
    } else {
        let lake = Lake::open(config.lake_url()?)?;
        let engine = SqlEngine::open(&lake).await?;
        let assets = config.assets_dir.clone();
        // Only the reports that embed text load the model.
        let result = index::reports::run_report(&engine, name, args, || {
            Ok(Arc::new(FastEmbedder::load(&assets)?) as Arc<dyn Embedder>)
        })
        .await?;
        pipeline::report::render(&result, format)?
    };
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        None => writeln!(std::io::stdout().lock(), "{text}")?,
    }
    Ok(())
}
