//! # index — what the shopper is asking, and which passages answer it
//!
//! This crate turns the lake's catalog, policies and articles into a retrieval index and
//! classifies shopper messages. Its foundation, here now, is the [`Embedder`]: a sentence
//! embedding model (all-MiniLM-L6-v2, int8 ONNX) run by fastembed on ONNX Runtime, both
//! loaded from local files fetched by `scripts/fetch-assets` — nothing is downloaded at run
//! time. BM25 (Tantivy), hybrid fusion and the intent classifier build on it.
//!
//! The embedder sits behind a trait so retrieval code can be exercised with any model;
//! [`FastEmbedder`] is the real one, and the tests use it.
//!
//! * [`documents`] — policies and articles split into keyed passages.
//! * [`gaps`] — the knowledge-gaps report's clustering of unanswered questions.
//! * [`report`] — runs any report, applying the steps that need the model.

pub mod documents;
pub mod gaps;
pub mod report;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};

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
}

/// Turns texts into L2-normalised vectors of one dimension.
pub trait Embedder: Send + Sync {
    /// Embeds a batch of texts.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, IndexError>;
    /// Length of every vector.
    fn dimension(&self) -> usize;
}

/// Where the model files live inside the assets directory.
pub const MODEL_DIR: &str = "models/all-MiniLM-L6-v2";
/// Word pieces the model reads per text; the rest is truncated.
pub const MAX_TOKENS: usize = 256;
/// The ONNX Runtime shared library inside the assets directory.
pub const ORT_LIBRARY: &str = "onnxruntime/libonnxruntime.so";

/// all-MiniLM-L6-v2 through fastembed, loaded from `assets_dir`.
pub struct FastEmbedder {
    // fastembed's `embed` takes `&mut self`; the mutex lets one loaded model serve callers
    // that share the embedder.
    model: Mutex<TextEmbedding>,
}

impl std::fmt::Debug for FastEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastEmbedder")
            .field("model", &"all-MiniLM-L6-v2")
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, IndexError> {
    std::fs::read(path).map_err(|_| IndexError::MissingAsset {
        path: path.to_path_buf(),
    })
}

impl FastEmbedder {
    /// Loads ONNX Runtime and the model from `assets_dir` (see `scripts/fetch-assets`).
    pub fn load(assets_dir: &Path) -> Result<Self, IndexError> {
        let library = assets_dir.join(ORT_LIBRARY);
        if !library.exists() {
            return Err(IndexError::MissingAsset { path: library });
        }
        // Loading explicitly turns a missing or too-old library into an error instead of
        // the panic ort raises on its lazy path.
        let environment = ort::init_from(&library)
            .map_err(|e| IndexError::Runtime(e.to_string()))?
            .with_name("supportlake")
            .build()
            .map_err(|e| IndexError::Runtime(e.to_string()))?;
        let dir = assets_dir.join(MODEL_DIR);
        let tokenizer = TokenizerFiles {
            tokenizer_file: read(&dir.join("tokenizer.json"))?,
            config_file: read(&dir.join("config.json"))?,
            special_tokens_map_file: read(&dir.join("special_tokens_map.json"))?,
            tokenizer_config_file: read(&dir.join("tokenizer_config.json"))?,
        };
        let model = UserDefinedEmbeddingModel::new(read(&dir.join("model.onnx"))?, tokenizer)
            .with_pooling(Pooling::Mean);
        // all-MiniLM-L6-v2 was trained on at most 256 word pieces and sentence-transformers
        // truncates there; fastembed's default of 512 only makes long passages slower (and
        // different from the reference model).
        let options = InitOptionsUserDefined::default()
            .with_environment(environment)
            .with_max_length(MAX_TOKENS);
        let model = TextEmbedding::try_new_from_user_defined(model, options)
            .map_err(|e| IndexError::Model(e.to_string()))?;
        Ok(Self {
            model: Mutex::new(model),
        })
    }
}

impl Embedder for FastEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, IndexError> {
        let mut model = self
            .model
            .lock()
            .map_err(|_| IndexError::Model("embedder lock poisoned".into()))?;
        model
            .embed(texts, None)
            .map_err(|e| IndexError::Model(e.to_string()))
    }

    fn dimension(&self) -> usize {
        384
    }
}

/// Cosine similarity of two L2-normalised vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
