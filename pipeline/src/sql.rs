//! `supportlake sql`: read-only DataFusion SQL over every table of the lake.
//!
//! The statement is planned with DDL, DML and other statements disallowed
//! ([`SQLOptions`]), so `DROP`, `INSERT`, `DELETE`, `COPY` and `CREATE` are refused before
//! anything runs; the Delta tables are registered read-only in any case. Next to the tables,
//! every session has the analyst views of [`crate::report`] (`conversation_facts`,
//! `turn_facts`, `intents`).

use std::collections::HashMap;

use deltalake::arrow::array::{
    Array, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;
use deltalake::arrow::util::pretty::pretty_format_batches;
use deltalake::datafusion::common::ParamValues;
use deltalake::datafusion::dataframe::DataFrame;
use deltalake::datafusion::execution::context::SQLOptions;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::datafusion::scalar::ScalarValue;

use crate::error::{PipelineError, Result};
use crate::lake::{Lake, register_all};

/// Quotes a string for a SQL literal (`'` doubled), for the statements built from ids.
pub fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Output formats of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// A query session over the lake.
pub struct SqlEngine {
    ctx: SessionContext,
    /// Registered table and view names, offered when a query names one that does not exist.
    tables: Vec<&'static str>,
}

impl std::fmt::Debug for SqlEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEngine")
            .field("session", &self.ctx.session_id())
            .finish()
    }
}

impl SqlEngine {
    /// Registers every table of `lake` by name, then the views built on them.
    pub async fn open(lake: &Lake) -> Result<Self> {
        let ctx = crate::lake::session()?;
        let mut registered = register_all(lake, &ctx).await?;
        if registered.is_empty() {
            return Err(PipelineError::Sql(format!(
                "the lake at {} has no tables yet: run `supportlake ingest DIR` (or `supportlake demo`) first",
                lake.url()
            )));
        }
        // A lake written before some table existed cannot define the views over it; its
        // tables stay queryable.
        let complete = registered.len() == crate::lake::TABLES.len();
        for view in crate::report::definitions::views() {
            match ctx.sql(&view.sql).await {
                Ok(frame) => {
                    ctx.register_table(view.name.as_str(), frame.into_view())?;
                    registered.push(view.name.as_str());
                }
                Err(e) if complete => {
                    return Err(PipelineError::Sql(format!(
                        "view {} (pipeline/reports/{}): {e}",
                        view.name, view.path
                    )));
                }
                Err(e) => tracing::debug!(view = %view.name, error = %e, "view skipped"),
            }
        }
        Ok(Self {
            ctx,
            tables: registered,
        })
    }

    /// Whether a table or view of this name is registered.
    pub fn has_table(&self, name: &str) -> bool {
        self.tables.contains(&name)
    }

    /// Runs one read-only statement.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.query_with_params(sql, HashMap::new()).await
    }

    /// Runs one read-only statement with `$name` placeholders bound to `params`: the values
    /// become typed literals in the plan, never text in the statement.
    pub async fn query_with_params(
        &self,
        sql: &str,
        params: HashMap<String, ScalarValue>,
    ) -> Result<Vec<RecordBatch>> {
        let frame = self.plan(sql).await?;
        let frame = if params.is_empty() {
            frame
        } else {
            frame
                .with_param_values(ParamValues::Map(
                    params.into_iter().map(|(k, v)| (k, v.into())).collect(),
                ))
                .map_err(|e| PipelineError::Sql(format!("query parameters: {e}")))?
        };
        frame
            .collect()
            .await
            .map_err(|e| PipelineError::Sql(format!("query error: {e}")))
    }

    async fn plan(&self, sql: &str) -> Result<DataFrame> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        self.ctx.sql_with_options(sql, options).await.map_err(|e| {
            let text = e.to_string();
            if text.contains("not supported")
                && (text.contains("DDL") || text.contains("DML") || text.contains("Statement"))
            {
                PipelineError::Sql(format!(
                    "refused: the lake is read-only through `sql` ({text}); queries may only read"
                ))
            } else if text.contains("table '") && text.contains("not found") {
                let tables = self.tables.join(", ");
                PipelineError::Sql(format!("query error: {text} (the lake's tables: {tables})"))
            } else {
                PipelineError::Sql(format!("query error: {text}"))
            }
        })
    }
}

/// One column of a query result, across its batches, cast to `to` and typed as `A`.
fn typed_column<A: Array + Clone + 'static>(
    batches: &[RecordBatch],
    name: &str,
    to: &DataType,
) -> Result<Vec<A>> {
    batches
        .iter()
        .map(|batch| {
            let column = batch
                .column_by_name(name)
                .ok_or_else(|| PipelineError::Sql(format!("result has no column `{name}`")))?;
            let cast = cast(column, to)?;
            Ok(cast
                .as_any()
                .downcast_ref::<A>()
                .expect("cast returns the requested type")
                .clone())
        })
        .collect()
}

/// A result column as strings (any type, as Arrow casts it to text).
pub fn strings(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<String>>> {
    Ok(typed_column::<StringArray>(batches, name, &DataType::Utf8)?
        .iter()
        .flat_map(|a| a.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>())
        .collect())
}

/// A result column as 64-bit integers.
pub fn integers(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<i64>>> {
    Ok(typed_column::<Int64Array>(batches, name, &DataType::Int64)?
        .iter()
        .flat_map(|a| a.iter().collect::<Vec<_>>())
        .collect())
}

/// A result column as booleans.
pub fn booleans(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<bool>>> {
    Ok(
        typed_column::<BooleanArray>(batches, name, &DataType::Boolean)?
            .iter()
            .flat_map(|a| a.iter().collect::<Vec<_>>())
            .collect(),
    )
}

/// A result column as 64-bit floats.
pub fn floats(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<f64>>> {
    Ok(
        typed_column::<Float64Array>(batches, name, &DataType::Float64)?
            .iter()
            .flat_map(|a| a.iter().collect::<Vec<_>>())
            .collect(),
    )
}

/// Renders batches in a format.
pub fn render(batches: &[RecordBatch], format: Format) -> Result<String> {
    match format {
        Format::Table => Ok(pretty_format_batches(batches)?.to_string()),
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut writer = deltalake::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                for batch in batches {
                    writer.write(batch)?;
                }
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
        Format::Json => {
            // Explicit nulls: every row carries every column, so readers see a stable shape.
            let mut writer = arrow_json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow_json::writer::JsonArray>(Vec::new());
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            let out = writer.into_inner();
            Ok(if out.is_empty() {
                "[]".into()
            } else {
                String::from_utf8_lossy(&out).into_owned()
            })
        }
    }
}

/// The questions `supportlake demo` asks of a filled lake, `(question, SQL)`: one per kind
/// of thing the lake knows, each a query a user can copy and change.
pub const DEMO_QUERIES: &[(&str, &str)] = &[
    (
        "What is in the lake?",
        "SELECT (SELECT count(*) FROM products) AS products, (SELECT count(*) FROM variants) AS variants, (SELECT count(*) FROM orders) AS orders, (SELECT count(*) FROM conversations) AS conversations, (SELECT count(*) FROM messages) AS messages",
    ),
    (
        "How are conversations resolved? (the conversation_facts view every report builds on)",
        "SELECT path, outcome, count(*) AS conversations, round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct FROM conversation_facts GROUP BY path, outcome ORDER BY path, conversations DESC",
    ),
    (
        "What do shoppers ask about most, and how often does the AI abstain?",
        "SELECT intent, count(*) AS turns, round(avg(confidence), 2) AS avg_confidence, sum(CASE WHEN abstained THEN 1 ELSE 0 END) AS abstained FROM turns WHERE answer_kind <> 'verification' GROUP BY intent ORDER BY turns DESC LIMIT 8",
    ),
    (
        "CSAT by resolution path",
        "SELECT path, count(csat_score) AS ratings, round(avg(csat_score), 2) AS avg_score, round(100.0 * avg(CASE WHEN csat_score >= 4 THEN 1.0 ELSE 0.0 END), 1) AS pct_4_5 FROM conversation_facts WHERE csat_score IS NOT NULL GROUP BY path ORDER BY avg_score DESC",
    ),
];
