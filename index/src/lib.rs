//! # index — what the shopper is asking, and which passages answer it
//!
//! This crate turns the lake's catalog, policies and articles into a retrieval index and
//! classifies shopper messages. Everything rests on one [`Embedder`]: a sentence embedding
//! model (all-MiniLM-L6-v2, int8 ONNX) run by fastembed on ONNX Runtime, both loaded from
//! local files fetched by `scripts/fetch-assets` — nothing is downloaded at run time. The
//! same vector of a shopper's message serves retrieval and intent classification.
//!
//! The way through the crate, in build order:
//!
//! * [`Embedder`] — text to vector: [`FastEmbedder`] runs the model, [`embed_batched`]
//!   feeds it length-sorted batches;
//! * [`documents`] — products, policy and article sections as keyed passages with a
//!   content hash;
//! * [`cache`] — vectors by content hash, so a rebuild embeds only what changed;
//! * [`bm25`] — the Tantivy index (fielded boosts, English stemming, exact SKUs/handles);
//! * [`vectors`] — the exact vector matrix next to it;
//! * [`search`] — fusion of both per doc type, every hit carrying its scores;
//! * [`classifier`] — nearest-example intent classifier, out-of-scope threshold, entities;
//! * [`generation`] — builds, canary, atomic switch, cleanup;
//! * [`rebuild`] — the index build and the nightly job as the CLI and server run them;
//! * [`eval`] — nDCG/Recall/MRR and intent accuracy/F1 on judged sets;
//! * `knowledge_gaps`, [`reports`] — the knowledge-gaps report's clustering, and running
//!   a report whose last step needs the model.
//!
//! The embedder sits behind a trait so retrieval code can be exercised with any model;
//! [`FastEmbedder`] is the real one, and the tests that measure quality use it. With the
//! `test-embedder` feature the crate also offers `HashingEmbedder`: hashed words, word pairs
//! and character trigrams instead of a model, deterministic and instant, for tests that need
//! sensible retrieval and classification but not the model's quality.

pub mod bm25;
pub mod cache;
pub mod classifier;
pub mod documents;
pub mod eval;
pub mod generation;
mod knowledge_gaps;
pub mod rebuild;
pub mod reports;
pub mod search;
pub mod vectors;

mod embedder;

#[cfg(feature = "test-embedder")]
pub use embedder::HashingEmbedder;
pub use embedder::{
    DIMENSION, Embedder, FastEmbedder, MAX_TOKENS, MODEL_DIR, MODEL_FILE, MODEL_ID, ORT_LIBRARY,
    embed_batched, embed_one,
};

use std::path::{Path, PathBuf};

/// Errors of the index crate.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A model or runtime file is missing: the fix is to fetch the assets.
    #[error("embedding assets missing: {path} (run scripts/fetch-assets)")]
    MissingAsset { path: PathBuf },
    /// ONNX Runtime could not be loaded (wrong version, wrong architecture).
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    /// The model failed to load or run.
    #[error("embedding model: {0}")]
    Model(String),
    /// A report cannot be completed as asked.
    #[error("{0}")]
    Report(String),
    /// Reading the lake or running a report's SQL failed.
    #[error(transparent)]
    Lake(#[from] pipeline::PipelineError),
    /// A result table could not be built.
    #[error("arrow: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
    /// A file of the index could not be read or written.
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    /// The BM25 index failed.
    #[error("tantivy: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// A JSON file of the index is malformed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// An index file does not hold what its manifest says.
    #[error("corrupt index: {0}")]
    Corrupt(String),
    /// Input data (examples, evaluation sets, the lake's documents) is unusable as given.
    #[error("{0}")]
    Data(String),
    /// No generation has been built yet.
    #[error("no index in {}: run `supportlake index build`", .0.display())]
    NoIndex(PathBuf),
    /// Another process holds the lock.
    #[error("another process holds {} (an index build or rebuild is running)", .0.display())]
    Busy(PathBuf),
}

impl IndexError {
    pub fn io(path: &Path, error: &std::io::Error) -> Self {
        IndexError::Io {
            path: path.to_path_buf(),
            message: error.to_string(),
        }
    }
}

/// Cosine similarity of two L2-normalised vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    // Eight running sums: a float sum in one accumulator must be added in order, which
    // keeps the compiler from using vector instructions; independent lanes let it.
    const LANES: usize = 8;
    let mut sums = [0.0_f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            sums[lane] += x[lane] * y[lane];
        }
    }
    sums.iter().sum::<f32>() + tail
}
