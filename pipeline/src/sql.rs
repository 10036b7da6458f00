//! `supportlake sql`: read-only DataFusion SQL over every table of the lake.
//!
//! The statement is planned with DDL, DML and other statements disallowed
//! ([`SQLOptions`]), so `DROP`, `INSERT`, `DELETE`, `COPY` and `CREATE` are refused before
//! anything runs; the Delta tables are registered read-only in any case.

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::util::pretty::pretty_format_batches;
use deltalake::datafusion::execution::context::SQLOptions;
use deltalake::datafusion::prelude::SessionContext;

use crate::error::{PipelineError, Result};
use crate::lake::{Lake, register_all};

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
    /// Registered table names, offered when a query names one that does not exist.
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
    /// Registers every table of `lake` by name.
    pub async fn open(lake: &Lake) -> Result<Self> {
        let ctx = SessionContext::new();
        let registered = register_all(lake, &ctx).await?;
        if registered.is_empty() {
            return Err(PipelineError::Sql(format!(
                "the lake at {} has no tables yet: run `supportlake ingest DIR` (or `supportlake demo`) first",
                lake.url()
            )));
        }
        Ok(Self {
            ctx,
            tables: registered,
        })
    }

    /// Runs one read-only statement.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let frame = self.ctx.sql_with_options(sql, options).await.map_err(|e| {
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
        })?;
        frame
            .collect()
            .await
            .map_err(|e| PipelineError::Sql(format!("query error: {e}")))
    }
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
            let mut writer = arrow_json::ArrayWriter::new(Vec::new());
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
