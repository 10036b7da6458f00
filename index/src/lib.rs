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
//! * [`documents`] — products, policy and article sections as keyed passages with a
//!   content hash;
//! * [`cache`] — vectors by content hash, so a rebuild embeds only what changed;
//! * [`bm25`] — the Tantivy index (fielded boosts, English stemming, exact SKUs/handles);
//! * [`vectors`] — the exact vector matrix next to it;
//! * [`search`] — fusion of both per doc type, every hit carrying its scores;
//! * [`intents`] — nearest-example intent classifier, out-of-scope threshold, entities;
//! * [`generation`] — builds, canary, atomic switch, cleanup;
//! * [`rebuild`] — the index build and the nightly job as the CLI and server run them;
//! * [`eval`] — nDCG/Recall/MRR and intent accuracy/F1 on judged sets;
//! * [`gaps`], [`report`] — the knowledge-gaps report's clustering.
//!
//! The embedder sits behind a trait so retrieval code can be exercised with any model;
//! [`FastEmbedder`] is the real one, and the tests that measure quality use it.

pub mod bm25;
pub mod cache;
pub mod documents;
pub mod eval;
pub mod gaps;
pub mod generation;
pub mod intents;
pub mod rebuild;
pub mod report;
pub mod search;
pub mod vectors;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// Turns texts into L2-normalised vectors of one dimension.
pub trait Embedder: Send + Sync {
    /// Embeds a batch of texts.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, IndexError>;
    /// Length of every vector.
    fn dimension(&self) -> usize;
}

/// Names the model and how it is run; cached vectors are only valid for the same id.
pub const MODEL_ID: &str = "all-MiniLM-L6-v2-qint8-per-channel-256";
/// Length of every vector the model produces.
pub const DIMENSION: usize = 384;
/// Texts per model call: long enough to keep both cores busy, short enough that
/// length-sorted batches pad little.
const BATCH: usize = 32;

/// Embeds many texts in length-sorted batches (similar lengths pad less), returning the
/// vectors in the texts' order.
pub fn embed_batched(
    embedder: &dyn Embedder,
    texts: &[String],
) -> Result<Vec<Vec<f32>>, IndexError> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut vectors = vec![Vec::new(); texts.len()];
    for chunk in order.chunks(BATCH) {
        let refs: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
        for (&i, vector) in chunk.iter().zip(embedder.embed(&refs)?) {
            vectors[i] = vector;
        }
    }
    Ok(vectors)
}

/// Embeds one text.
pub fn embed_one(embedder: &dyn Embedder, text: &str) -> Result<Vec<f32>, IndexError> {
    embedder
        .embed(&[text])?
        .pop()
        .ok_or_else(|| IndexError::Model("the model returned no vector".into()))
}

/// Where the model files live inside the assets directory.
pub const MODEL_DIR: &str = "models/all-MiniLM-L6-v2";
/// The model inside `MODEL_DIR`: dynamically quantized with one scale per channel by
/// `scripts/quantize-model.py`, so its matrix products run in int8 (a query embeds in about
/// half the time of the PyPI file, which dequantizes to fp32; BENCHMARKS.md has both).
pub const MODEL_FILE: &str = "model-qint8-per-channel.onnx";
/// Word pieces the model reads per text; the rest is truncated.
pub const MAX_TOKENS: usize = 256;
/// The ONNX Runtime shared library inside the assets directory.
pub const ORT_LIBRARY: &str = "onnxruntime/libonnxruntime.so";

/// all-MiniLM-L6-v2 through fastembed, loaded from `assets_dir`.
///
/// One loaded model runs one call at a time (fastembed's `embed` takes `&mut self`). A
/// build wants one instance whose calls use every core; a server answering many shoppers
/// wants one single-threaded instance per core, so short queries run side by side instead
/// of queueing behind one model ([`FastEmbedder::load_instances`]).
pub struct FastEmbedder {
    instances: Vec<Mutex<TextEmbedding>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for FastEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastEmbedder")
            .field("model", &MODEL_ID)
            .field("instances", &self.instances.len())
            .finish()
    }
}

/// ONNX Runtime's environment: one per process (a second is refused), shared by every
/// model loaded in it, e.g. the demo's build-time embedder and then the server's.
fn runtime_environment(library: &Path) -> Result<ort::environment::Environment, IndexError> {
    static ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);
    let mut slot = ENVIRONMENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(environment) = slot.as_ref() {
        return Ok(environment.clone());
    }
    // Loading explicitly turns a missing or too-old library into an error instead of the
    // panic ort raises on its lazy path.
    let environment = ort::init_from(library)
        .map_err(|e| IndexError::Runtime(e.to_string()))?
        .with_name("supportlake")
        .build()
        .map_err(|e| IndexError::Runtime(e.to_string()))?;
    *slot = Some(environment.clone());
    Ok(environment)
}

fn read(path: &Path) -> Result<Vec<u8>, IndexError> {
    std::fs::read(path).map_err(|_| IndexError::MissingAsset {
        path: path.to_path_buf(),
    })
}

impl FastEmbedder {
    /// Loads ONNX Runtime and the model from `assets_dir` (see `scripts/fetch-assets`) as one
    /// instance whose calls use every core: the right shape for batch embedding.
    pub fn load(assets_dir: &Path) -> Result<Self, IndexError> {
        Self::build(assets_dir, 1, None)
    }

    /// Loads `instances` single-threaded copies of the model, for many concurrent short
    /// calls (the answer server: one per core).
    pub fn load_instances(assets_dir: &Path, instances: usize) -> Result<Self, IndexError> {
        Self::build(assets_dir, instances.max(1), Some(1))
    }

    fn build(
        assets_dir: &Path,
        instances: usize,
        threads: Option<usize>,
    ) -> Result<Self, IndexError> {
        let library = assets_dir.join(ORT_LIBRARY);
        if !library.exists() {
            return Err(IndexError::MissingAsset { path: library });
        }
        let dir = assets_dir.join(MODEL_DIR);
        let model_bytes = read(&dir.join(MODEL_FILE))?;
        let tokenizer = TokenizerFiles {
            tokenizer_file: read(&dir.join("tokenizer.json"))?,
            config_file: read(&dir.join("config.json"))?,
            special_tokens_map_file: read(&dir.join("special_tokens_map.json"))?,
            tokenizer_config_file: read(&dir.join("tokenizer_config.json"))?,
        };
        let environment = runtime_environment(&library)?;
        let mut loaded = Vec::with_capacity(instances);
        for _ in 0..instances {
            let model = UserDefinedEmbeddingModel::new(model_bytes.clone(), tokenizer.clone())
                .with_pooling(Pooling::Mean);
            // all-MiniLM-L6-v2 was trained on at most 256 word pieces and sentence-transformers
            // truncates there; fastembed's default of 512 only makes long passages slower (and
            // different from the reference model).
            let mut options = InitOptionsUserDefined::default()
                .with_environment(environment.clone())
                .with_max_length(MAX_TOKENS);
            if let Some(threads) = threads {
                options = options.with_intra_threads(threads);
            }
            let model = TextEmbedding::try_new_from_user_defined(model, options)
                .map_err(|e| IndexError::Model(e.to_string()))?;
            loaded.push(Mutex::new(model));
        }
        Ok(Self {
            instances: loaded,
            next: AtomicUsize::new(0),
        })
    }
}

impl Embedder for FastEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, IndexError> {
        // A free instance if there is one, else wait for the next in turn.
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.instances.len();
        let free = (0..count).find_map(|i| self.instances[(start + i) % count].try_lock().ok());
        let mut model = match free {
            Some(model) => model,
            None => self.instances[start % count]
                .lock()
                .map_err(|_| IndexError::Model("embedder lock poisoned".into()))?,
        };
        model
            .embed(texts, None)
            .map_err(|e| IndexError::Model(e.to_string()))
    }

    fn dimension(&self) -> usize {
        DIMENSION
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
