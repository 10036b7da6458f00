//! The support reports: shipped SQL that anyone can read, rerun and recompute.
//!
//! A report is a file under `pipeline/reports/` — a header stating the metric's definition,
//! parameters and columns (see [`definitions`]) followed by one DataFusion statement over the
//! lake. The statements build on three views that every SQL session has as well
//! (`supportlake sql "SELECT * FROM conversation_facts"`): `turn_facts` (one row per automated
//! answer), `conversation_facts` (one row per conversation: path, outcome, reopen, CSAT) and
//! `intents` (what each intent needs). Definitions live in one place, so the resolution rate a
//! dashboard shows and the one an analyst recomputes in a notebook cannot drift apart.
//!
//! Running a report ([`run`]) resolves its parameters ([`params`]), binds them to the
//! statement's `$placeholders` and collects the result. A report whose header names a `post`
//! step (knowledge-gaps clusters its questions with the embedding model) returns the SQL
//! stage's rows; the `index` crate applies the step and hands back the final table.
//! [`render`] prints any result as a table, CSV, JSON (with the parameters used) or a
//! standalone HTML page with an SVG chart ([`html`]).

pub mod definitions;
pub mod html;
pub mod params;

use std::collections::HashMap;

use deltalake::arrow::array::RecordBatch;

pub use definitions::Definition;
pub use params::{Bound, ReportArgs};

use crate::error::{PipelineError, Result};
use crate::sql::{Format, SqlEngine, render as render_rows};

/// A report's result and what produced it.
#[derive(Debug, Clone)]
pub struct ReportOutput {
    pub definition: &'static Definition,
    /// Every parameter with the value it was run with.
    pub params: Vec<Bound>,
    pub batches: Vec<RecordBatch>,
}

impl ReportOutput {
    /// The bound value of a parameter.
    pub fn param(&self, name: &str) -> Option<&Bound> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Rows in the result.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Runs the SQL of report `name` over the lake.
pub async fn run(engine: &SqlEngine, name: &str, args: &ReportArgs) -> Result<ReportOutput> {
    let definition = definitions::report(name)?;
    let started = std::time::Instant::now();
    let params = params::resolve(engine, definition, args).await?;
    let bound: HashMap<String, _> = params
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    let batches = engine
        .query_with_params(&definition.sql, bound)
        .await
        .map_err(|e| PipelineError::Report(format!("report {name}: {e}")))?;
    tracing::info!(
        report = name,
        rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        seconds = started.elapsed().as_secs_f64(),
        "report sql ran"
    );
    Ok(ReportOutput {
        definition,
        params,
        batches,
    })
}

/// Output formats of `supportlake report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
    Html,
}

/// Renders a report. JSON carries the report's name and parameters next to its rows, so a
/// saved file says what it is; CSV and the table are the rows alone.
pub fn render(output: &ReportOutput, format: ReportFormat) -> Result<String> {
    match format {
        ReportFormat::Table => render_rows(&output.batches, Format::Table),
        ReportFormat::Csv => render_rows(&output.batches, Format::Csv),
        ReportFormat::Json => {
            let params: serde_json::Map<String, serde_json::Value> = output
                .params
                .iter()
                .map(|p| (p.name.clone(), p.display.clone().into()))
                .collect();
            // The rows are spliced in as written, so their columns keep the report's order.
            Ok(format!(
                "{{\n  \"report\": {},\n  \"params\": {},\n  \"rows\": {}\n}}",
                serde_json::Value::from(output.definition.name.as_str()),
                serde_json::Value::Object(params),
                render_rows(&output.batches, Format::Json)?
            ))
        }
        ReportFormat::Html => html::page(output),
    }
}
