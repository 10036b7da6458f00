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

/// Whether a spreadsheet would take `text` as a formula: it starts with `=`, `+`, `-` or
/// `@`, or with a tab or carriage return that some spreadsheets skip first.
fn starts_like_formula(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// The batches with every text cell that starts like a formula prefixed with `'`, so a
/// report CSV opened in a spreadsheet shows shopper text instead of running it (OWASP's
/// advice on CSV injection). Numbers are left as they are: a negative amount stays one.
fn spreadsheet_safe(batches: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    use deltalake::arrow::array::{Array, ArrayRef, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};
    batches
        .iter()
        .map(|batch| {
            let schema = batch.schema();
            let mut fields = Vec::with_capacity(batch.num_columns());
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                if !matches!(
                    field.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    fields.push(field.as_ref().clone());
                    columns.push(column.clone());
                    continue;
                }
                let text = deltalake::arrow::compute::cast(column, &DataType::Utf8)?;
                let text = text
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("a cast to Utf8 is a StringArray");
                let safe: StringArray = text
                    .iter()
                    .map(|cell| {
                        cell.map(|t| {
                            if starts_like_formula(t) {
                                format!("'{t}")
                            } else {
                                t.to_string()
                            }
                        })
                    })
                    .collect();
                fields.push(Field::new(
                    field.name(),
                    DataType::Utf8,
                    field.is_nullable(),
                ));
                columns.push(std::sync::Arc::new(safe));
            }
            Ok(RecordBatch::try_new(
                std::sync::Arc::new(Schema::new(fields)),
                columns,
            )?)
        })
        .collect()
}

/// Renders a report. JSON carries the report's name and parameters next to its rows, so a
/// saved file says what it is; CSV and the table are the rows alone.
pub fn render(output: &ReportOutput, format: ReportFormat) -> Result<String> {
    match format {
        ReportFormat::Table => render_rows(&output.batches, Format::Table),
        ReportFormat::Csv => render_rows(&spreadsheet_safe(&output.batches)?, Format::Csv),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Int64Array, RecordBatch, StringArray, StringViewArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn report_csv_cells_that_start_like_formulas_are_neutralised_and_numbers_kept() {
        let schema = Schema::new(vec![
            Field::new("example", DataType::Utf8, true),
            Field::new("view", DataType::Utf8View, true),
            Field::new("amount", DataType::Int64, false),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("=HYPERLINK(\"http://evil\")"),
                    Some("where is my order"),
                    None,
                ])),
                Arc::new(StringViewArray::from(vec![
                    Some("@SUM(A1)"),
                    Some("-2+3"),
                    Some("\tcmd"),
                ])),
                Arc::new(Int64Array::from(vec![-5, 7, 0])),
            ],
        )
        .unwrap();
        let csv = render_rows(&spreadsheet_safe(&[batch]).unwrap(), Format::Csv).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "example,view,amount");
        assert_eq!(
            lines[1],
            "\"'=HYPERLINK(\"\"http://evil\"\")\",'@SUM(A1),-5"
        );
        assert_eq!(lines[2], "where is my order,'-2+3,7");
        assert_eq!(lines[3], ",'\tcmd,0");
    }
}
