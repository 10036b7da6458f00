//! The pipeline's error type: one enum, so callers can tell a bad config from a bad query
//! from a storage failure without parsing strings.

use deltalake::datafusion::error::DataFusionError;

/// Everything that can go wrong in the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The configuration could not be read or a value is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading an input file failed (not a bad record: those are quarantined).
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The Delta log or its object store failed.
    #[error("delta lake: {0}")]
    Delta(#[from] deltalake::DeltaTableError),
    /// Arrow could not build or convert a batch.
    #[error("arrow: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
    /// A SQL statement was refused or failed.
    #[error("{0}")]
    Sql(String),
    /// DataFusion failed while planning or executing.
    #[error("query: {0}")]
    DataFusion(#[from] DataFusionError),
    /// A report name or parameter is wrong, or a report failed to run.
    #[error("{0}")]
    Report(String),
    /// The Shopify Admin API refused or failed a sync (after its retries).
    #[error("shopify: {0}")]
    Shopify(String),
    /// The input directory is not a Shopify export supportlake understands.
    #[error("input: {0}")]
    Input(String),
    /// A command needed the lake's one shop, and the lake holds none yet.
    #[error("the lake holds no shop yet: ingest or sync the store first, or pass --shop")]
    NoShop,
    /// A command needed the lake's one shop, and the lake holds these.
    #[error("the lake holds {} shops ({}): pass --shop", .0.len(), .0.join(", "))]
    ManyShops(Vec<String>),
}

/// Shorthand used across the crate.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

impl PipelineError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
