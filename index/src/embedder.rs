//! Sentence embeddings: the [`Embedder`] trait everything in the crate embeds through, the
//! real model behind it ([`FastEmbedder`]: all-MiniLM-L6-v2 run by fastembed on ONNX Runtime,
//! both loaded from local asset files), and batched embedding.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};

use crate::IndexError;

#[cfg(feature = "test-embedder")]
mod hashing;
#[cfg(feature = "test-embedder")]
pub use hashing::HashingEmbedder;

/// Turns texts into L2-normalised vectors of one dimension.
pub trait Embedder: Send + Sync {
    /// Embeds a batch of texts.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, IndexError>;
    /// Length of every vector.
    fn dimension(&self) -> usize;
    /// Names the model and how it is run: an index's embedding cache and fingerprint are
    /// keyed by it, so vectors of two models never mix.
    fn model_id(&self) -> &str;
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

    fn model_id(&self) -> &str {
        MODEL_ID
    }
}
