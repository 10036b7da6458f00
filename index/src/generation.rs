//! Index generations: every build writes a complete new generation and switches to it
//! atomically, so a reader sees the old index or the new one, never half of one.
//!
//! ```text
//! <index_dir>/CURRENT                  the live generation's name (replaced by rename)
//! <index_dir>/generations/gen-000007/  bm25/ vectors.f32 passages.json intents.json
//!                                      intents.f32 manifest.json
//! <index_dir>/cache/<model>.bin        the embedding cache shared by builds
//! <index_dir>/build.lock               held while a build runs
//! ```
//!
//! A build: reads the passages from the lake, takes the lock (a second build fails fast
//! instead of colliding), embeds what the cache lacks, writes the generation under a
//! temporary name and renames it into place, then runs the **canary** — recall@10 of the
//! canary queries on the new generation against the live one — and only then replaces
//! `CURRENT`. The two newest generations are kept, so a reader that resolved `CURRENT` just
//! before a switch still finds its directory; older ones are removed.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::bm25::{Bm25, Filter};
use crate::cache::EmbeddingCache;
use crate::classifier::{Calibration, Classification, Example, IntentClassifier};
use crate::documents::{DocType, Passage};
use crate::eval::{RetrievalQuery, recall_at};
use crate::search::{FusionWeights, Hit, Mode, rank};
use crate::vectors::{QuantizedMatrix, VectorMatrix};
use crate::{Embedder, IndexError};

/// Generations kept on disk: the live one and the one before it.
const KEEP: usize = 2;
/// Version of the generation's file layout: a change (a Tantivy schema, a file format) makes
/// every older generation's fingerprint stale, so the next build replaces it.
const FORMAT: u32 = 2;
/// Canary queries drawn from the passages' own titles when no set is given.
const SELF_CANARY_QUERIES: usize = 200;

/// Facts about one generation, written last into it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub generation: String,
    pub built_at: String,
    pub model: String,
    pub dimension: usize,
    pub shop: String,
    pub passages: usize,
    pub by_doc_type: BTreeMap<String, usize>,
    pub intent_examples: usize,
    pub passages_embedded: usize,
    pub passages_cached: usize,
    pub examples_embedded: usize,
    pub examples_cached: usize,
    pub build_seconds: f64,
    pub weights: FusionWeights,
    /// SHA-256 over the file format, model, weights, passages and examples: equal fingerprints mean an
    /// identical index, so a rebuild can keep the live generation.
    #[serde(default)]
    pub fingerprint: String,
    /// The intent classifier's confidence calibration, fitted on the examples at build.
    #[serde(default)]
    pub calibration: Calibration,
}

/// The index directory and its pointer.
#[derive(Debug, Clone)]
pub struct IndexDir {
    root: PathBuf,
}

/// A loaded generation: everything a search or a classification needs.
#[derive(Debug)]
pub struct Generation {
    pub name: String,
    pub manifest: Manifest,
    pub passages: Vec<Passage>,
    bm25: Bm25,
    vectors: QuantizedMatrix,
    classifier: IntentClassifier,
}

/// Where the canary's queries come from.
#[derive(Debug, Clone)]
pub enum Canary {
    /// Each sampled passage's title should find that passage in the top 10.
    SelfRetrieval,
    /// A judged set (`{"query", "relevant"}` lines).
    Set(Vec<RetrievalQuery>),
}

/// How a build went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildSummary {
    pub manifest: Manifest,
    pub canary_queries: usize,
    pub canary_recall: f64,
    /// The live generation's recall on the same queries, when there was one.
    pub previous_recall: Option<f64>,
    pub switched: bool,
    /// Nothing changed since the live generation, which stays live; nothing was built.
    pub unchanged: bool,
    pub previous: Option<String>,
    pub removed: Vec<String>,
}

/// What `index status` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub current: Option<Manifest>,
    pub generations: Vec<String>,
    pub cache_entries: usize,
    pub building: bool,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> IndexError + '_ {
    move |e| IndexError::io(path, &e)
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let mut file = fs::File::create(path).map_err(io(path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(path))
}

impl IndexDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn generations(&self) -> PathBuf {
        self.root.join("generations")
    }

    fn pointer(&self) -> PathBuf {
        self.root.join("CURRENT")
    }

    fn cache_path(&self, model_id: &str) -> PathBuf {
        self.root.join("cache").join(format!("{model_id}.bin"))
    }

    fn lock_path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.lock"))
    }

    /// Takes the exclusive lock `<index_dir>/<name>.lock`, or fails at once with
    /// [`IndexError::Busy`] when another process holds it. The lock is released when the
    /// returned file is dropped, also when the process dies.
    pub fn lock(&self, name: &str) -> Result<fs::File, IndexError> {
        fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let path = self.lock_path(name);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.try_lock()
            .map_err(|_| IndexError::Busy(path.clone()))?;
        Ok(file)
    }

    /// The live generation's name, if any.
    pub fn current(&self) -> Result<Option<String>, IndexError> {
        match fs::read_to_string(self.pointer()) {
            Ok(name) => Ok(Some(name.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IndexError::io(&self.pointer(), &e)),
        }
    }

    /// Loads the live generation. A generation removed between reading `CURRENT` and
    /// opening it (two builds finished meanwhile) is retried once from the new pointer.
    pub fn open_current(&self) -> Result<Generation, IndexError> {
        let mut last_error = None;
        for _ in 0..2 {
            let name = self
                .current()?
                .ok_or(IndexError::NoIndex(self.root.clone()))?;
            match Generation::open(&self.generations().join(&name)) {
                Ok(g) => return Ok(g),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("the loop ran"))
    }

    /// Generation directories on disk, oldest first.
    pub fn list(&self) -> Result<Vec<String>, IndexError> {
        let dir = self.generations();
        let mut names: Vec<String> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("gen-"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(IndexError::io(&dir, &e)),
        };
        names.sort();
        Ok(names)
    }

    pub fn status(&self) -> Result<Status, IndexError> {
        let current = match self.current()? {
            Some(name) => Some(read_manifest(&self.generations().join(name))?),
            None => None,
        };
        let building = match fs::File::open(self.lock_path("build")) {
            Ok(file) => file.try_lock_shared().is_err(),
            Err(_) => false,
        };
        let cache = EmbeddingCache::open(
            &self.cache_path(
                current
                    .as_ref()
                    .map_or(crate::MODEL_ID, |m| m.model.as_str()),
            ),
            current.as_ref().map_or(crate::DIMENSION, |m| m.dimension),
        )?;
        Ok(Status {
            current,
            generations: self.list()?,
            cache_entries: cache.len(),
            building,
        })
    }

    /// Builds a generation of `passages` (the lake's, from [`all_passages`], or a test's
    /// hand-made ones) and switches to it when the canary passes, all under the build lock.
    /// With `keep_if_unchanged`, passages and examples identical to the live generation's
    /// leave it live without building (what makes `rebuild` idempotent).
    ///
    /// [`all_passages`]: crate::documents::all_passages
    pub fn build(
        &self,
        passages: &[Passage],
        embedder: &dyn Embedder,
        examples: &[Example],
        shop: &str,
        canary: &Canary,
        keep_if_unchanged: bool,
    ) -> Result<BuildSummary, IndexError> {
        if passages.is_empty() {
            return Err(IndexError::Data(format!(
                "no products, policies or articles in the lake for shop {shop:?}: ingest first"
            )));
        }
        let started = Instant::now();
        fs::create_dir_all(self.generations()).map_err(io(&self.generations()))?;
        let lock = self.lock("build")?;
        let weights = FusionWeights::default();
        let fingerprint = fingerprint(embedder.model_id(), passages, examples, &weights)?;
        let previous = self.current()?;
        if keep_if_unchanged && let Some(live) = &previous {
            let manifest = read_manifest(&self.generations().join(live))?;
            if manifest.fingerprint == fingerprint {
                return Ok(BuildSummary {
                    manifest,
                    canary_queries: 0,
                    canary_recall: 0.0,
                    previous_recall: None,
                    switched: false,
                    unchanged: true,
                    previous,
                    removed: Vec::new(),
                });
            }
        }
        let mut cache =
            EmbeddingCache::open(&self.cache_path(embedder.model_id()), embedder.dimension())?;
        let texts: Vec<String> = passages.iter().map(Passage::embedding_text).collect();
        let (passage_vectors, passage_counts) = cache.vectors(embedder, &texts)?;
        let example_texts: Vec<String> = examples.iter().map(|e| e.text.clone()).collect();
        let (example_vectors, example_counts) = cache.vectors(embedder, &example_texts)?;

        let name = self.next_name()?;
        let staging = self.generations().join(format!(".building-{name}"));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io(&staging))?;
        }
        fs::create_dir_all(staging.join("bm25")).map_err(io(&staging))?;
        crate::bm25::build(&staging.join("bm25"), passages)?;
        VectorMatrix::new(embedder.dimension(), &passage_vectors)
            .write(&staging.join("vectors.f32"))?;
        let example_matrix = VectorMatrix::new(embedder.dimension(), &example_vectors);
        example_matrix.write(&staging.join("intents.f32"))?;
        let calibration = IntentClassifier::new(
            examples.iter().map(|e| e.intent.clone()).collect(),
            example_matrix,
            Calibration::default(),
        )
        .fit_calibration();
        write_durably(
            &staging.join("passages.json"),
            &serde_json::to_vec(passages)?,
        )?;
        write_durably(
            &staging.join("intents.json"),
            &serde_json::to_vec(examples)?,
        )?;
        let mut by_doc_type = BTreeMap::new();
        for p in passages {
            *by_doc_type
                .entry(p.doc_type.as_str().to_string())
                .or_insert(0) += 1;
        }
        let manifest = Manifest {
            generation: name.clone(),
            built_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            model: embedder.model_id().into(),
            dimension: embedder.dimension(),
            shop: shop.into(),
            passages: passages.len(),
            by_doc_type,
            intent_examples: examples.len(),
            passages_embedded: passage_counts.embedded,
            passages_cached: passage_counts.cached,
            examples_embedded: example_counts.embedded,
            examples_cached: example_counts.cached,
            build_seconds: 0.0,
            weights,
            fingerprint,
            calibration,
        };
        // The manifest is written last: a generation without one was never finished.
        write_durably(
            &staging.join("manifest.json"),
            &serde_json::to_vec_pretty(&manifest)?,
        )?;
        let final_dir = self.generations().join(&name);
        fs::rename(&staging, &final_dir).map_err(io(&final_dir))?;

        let fresh = Generation::open(&final_dir)?;
        let queries = canary_queries(canary, &fresh.passages);
        let query_texts: Vec<String> = queries.iter().map(|q| q.query.clone()).collect();
        let (query_vectors, _) = cache.vectors(embedder, &query_texts)?;
        let canary_recall = canary_recall(&fresh, &queries, &query_vectors)?;
        let previous_recall = match &previous {
            Some(old) => match Generation::open(&self.generations().join(old)) {
                Ok(live) => Some(canary_recall_of(&live, &queries, &query_vectors)),
                // A live generation that no longer opens is no reason to keep it.
                Err(_) => None,
            },
            None => None,
        };
        cache.save()?;
        let passes = canary_recall >= MIN_CANARY_RECALL
            && previous_recall.is_none_or(|old| canary_recall + MAX_RECALL_DROP >= old);
        let mut removed = Vec::new();
        if passes {
            let tmp = self.root.join("CURRENT.tmp");
            write_durably(&tmp, name.as_bytes())?;
            fs::rename(&tmp, self.pointer()).map_err(io(&self.pointer()))?;
            removed = self.remove_old(&name)?;
        } else {
            // Kept for inspection under a name readers never resolve.
            let rejected = self.generations().join(format!("rejected-{name}"));
            // The number is reused by the next build, so an older rejection of it goes.
            if rejected.exists() {
                fs::remove_dir_all(&rejected).map_err(io(&rejected))?;
            }
            fs::rename(&final_dir, &rejected).map_err(io(&rejected))?;
        }
        let mut manifest = manifest;
        manifest.build_seconds = started.elapsed().as_secs_f64();
        drop(lock);
        Ok(BuildSummary {
            manifest,
            canary_queries: queries.len(),
            canary_recall,
            previous_recall,
            switched: passes,
            unchanged: false,
            previous,
            removed,
        })
    }

    fn next_name(&self) -> Result<String, IndexError> {
        let last = self
            .list()?
            .iter()
            .filter_map(|n| n.strip_prefix("gen-")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        Ok(format!("gen-{:06}", last + 1))
    }

    /// Removes generations beyond the newest [`KEEP`] (never the live one).
    fn remove_old(&self, live: &str) -> Result<Vec<String>, IndexError> {
        let names = self.list()?;
        let mut removed = Vec::new();
        for name in names.iter().take(names.len().saturating_sub(KEEP)) {
            if name != live {
                let dir = self.generations().join(name);
                fs::remove_dir_all(&dir).map_err(io(&dir))?;
                removed.push(name.clone());
            }
        }
        Ok(removed)
    }
}

/// A new generation's canary recall@10 may not fall below this…
pub const MIN_CANARY_RECALL: f64 = 0.5;
/// …nor more than this below the live generation's on the same queries.
pub const MAX_RECALL_DROP: f64 = 0.05;

fn canary_queries(canary: &Canary, passages: &[Passage]) -> Vec<RetrievalQuery> {
    match canary {
        Canary::Set(queries) => queries.clone(),
        Canary::SelfRetrieval => {
            let stride = passages.len().div_ceil(SELF_CANARY_QUERIES).max(1);
            passages
                .iter()
                .step_by(stride)
                .map(|p| RetrievalQuery {
                    query: p.title.clone(),
                    relevant: vec![p.key.clone()],
                })
                .collect()
        }
    }
}

fn canary_recall(
    g: &Generation,
    queries: &[RetrievalQuery],
    vectors: &[Vec<f32>],
) -> Result<f64, IndexError> {
    let mut total = 0.0;
    for (q, v) in queries.iter().zip(vectors) {
        let hits = g.search_vector(&q.query, v, &Filter::default(), 10, Mode::Hybrid, None)?;
        total += recall_at(&hits, &q.relevant, 10);
    }
    Ok(if queries.is_empty() {
        1.0
    } else {
        total / queries.len() as f64
    })
}

/// The live generation's recall; a failure to search counts as 0 (it is being replaced).
fn canary_recall_of(g: &Generation, queries: &[RetrievalQuery], vectors: &[Vec<f32>]) -> f64 {
    canary_recall(g, queries, vectors).unwrap_or(0.0)
}

fn fingerprint(
    model_id: &str,
    passages: &[Passage],
    examples: &[Example],
    weights: &FusionWeights,
) -> Result<String, IndexError> {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(FORMAT.to_le_bytes());
    hash.update(model_id.as_bytes());
    hash.update(serde_json::to_vec(weights)?);
    hash.update(serde_json::to_vec(passages)?);
    hash.update(serde_json::to_vec(examples)?);
    Ok(hex::encode(hash.finalize()))
}

fn read_manifest(dir: &Path) -> Result<Manifest, IndexError> {
    let path = dir.join("manifest.json");
    let bytes = fs::read(&path).map_err(io(&path))?;
    Ok(serde_json::from_slice(&bytes)?)
}

impl Generation {
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let manifest = read_manifest(dir)?;
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read(&path).map_err(|e| IndexError::io(&path, &e))
        };
        let passages: Vec<Passage> = serde_json::from_slice(&read("passages.json")?)?;
        let examples: Vec<Example> = serde_json::from_slice(&read("intents.json")?)?;
        let vectors = VectorMatrix::read(&dir.join("vectors.f32"), manifest.dimension)?;
        let example_vectors = VectorMatrix::read(&dir.join("intents.f32"), manifest.dimension)?;
        if vectors.rows() != passages.len() || example_vectors.rows() != examples.len() {
            return Err(IndexError::Corrupt(format!(
                "{}: vectors and passages/examples differ in number",
                dir.display()
            )));
        }
        let classifier = IntentClassifier::new(
            examples.into_iter().map(|e| e.intent).collect(),
            example_vectors,
            manifest.calibration.clone(),
        );
        Ok(Self {
            name: manifest.generation.clone(),
            bm25: Bm25::open(&dir.join("bm25"))?,
            manifest,
            passages,
            vectors: vectors.quantize(),
            classifier,
        })
    }

    /// Searches with an already embedded query, with the generation's fusion weights or
    /// others (tuning tries them).
    pub fn search_vector(
        &self,
        query: &str,
        query_vector: &[f32],
        filter: &Filter,
        k: usize,
        mode: Mode,
        weights: Option<&FusionWeights>,
    ) -> Result<Vec<Hit>, IndexError> {
        rank(
            &self.passages,
            &self.bm25,
            &self.vectors.scores(query_vector),
            weights.unwrap_or(&self.manifest.weights),
            query,
            filter,
            k,
            mode,
        )
    }

    /// Embeds `query` and searches.
    pub fn search(
        &self,
        embedder: &dyn Embedder,
        query: &str,
        filter: &Filter,
        k: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        let vector = crate::embed_one(embedder, query)?;
        self.search_vector(query, &vector, filter, k, Mode::Hybrid, None)
    }

    pub fn classifier(&self) -> &IntentClassifier {
        &self.classifier
    }

    /// Embeds and classifies one message.
    pub fn classify(
        &self,
        embedder: &dyn Embedder,
        text: &str,
    ) -> Result<Classification, IndexError> {
        let vector = crate::embed_one(embedder, text)?;
        Ok(self.classifier.classify(text, &vector))
    }

    /// `(handle, title)` of the generation's products, for entity extraction.
    pub fn product_titles(&self) -> Vec<(String, String)> {
        self.passages
            .iter()
            .filter_map(|p| self.product_title(p))
            .collect()
    }

    /// `(handle, title)` of `passage` if it is a product's (what entity extraction matches).
    pub fn product_title(&self, passage: &Passage) -> Option<(String, String)> {
        (passage.doc_type == DocType::Product)
            .then(|| passage.key.strip_prefix("product:"))
            .flatten()
            .map(|handle| (handle.to_string(), passage.title.clone()))
    }
}

/// Counts of a build, as `index build` prints them.
impl std::fmt::Display for BuildSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.manifest;
        if self.unchanged {
            return write!(
                f,
                "unchanged: {} stays live (same passages, examples, weights and model)",
                m.generation
            );
        }
        writeln!(
            f,
            "generation {}: {} passages ({})",
            m.generation,
            m.passages,
            m.doc_type_counts()
        )?;
        writeln!(
            f,
            "embedded {} passages, {} from cache; {} intent examples ({} embedded)",
            m.passages_embedded, m.passages_cached, m.intent_examples, m.examples_embedded
        )?;
        let previous = self
            .previous_recall
            .map_or("no live generation".to_string(), |r| {
                format!("live generation {r:.3}")
            });
        writeln!(
            f,
            "canary recall@10 {:.3} over {} queries ({previous})",
            self.canary_recall, self.canary_queries
        )?;
        if self.switched {
            write!(
                f,
                "switched to {} in {:.1} s",
                m.generation, m.build_seconds
            )?;
            if !self.removed.is_empty() {
                write!(f, "; removed {}", self.removed.join(", "))?;
            }
            Ok(())
        } else {
            write!(
                f,
                "NOT switched: the canary failed; kept as rejected-{}",
                m.generation
            )
        }
    }
}

impl Manifest {
    /// Its passages per document type, as `product=120 policy=14 …`.
    fn doc_type_counts(&self) -> String {
        self.by_doc_type
            .iter()
            .map(|(t, n)| format!("{t}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What `supportlake index status` prints: the live generation, those on disk, the cache.
impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.current {
            Some(m) => {
                writeln!(
                    f,
                    "live: {} built {} ({} passages: {}; {} intent examples; model {})",
                    m.generation,
                    m.built_at,
                    m.passages,
                    m.doc_type_counts(),
                    m.intent_examples,
                    m.model
                )?;
            }
            None => writeln!(f, "live: none (run `supportlake index build`)")?,
        }
        writeln!(f, "generations on disk: {}", self.generations.join(", "))?;
        write!(f, "embedding cache: {} vectors", self.cache_entries)?;
        if self.building {
            write!(f, "\na build is running")?;
        }
        Ok(())
    }
}

#[cfg(all(test, feature = "test-embedder"))]
mod tests {
    use super::*;
    use crate::HashingEmbedder;

    const SHOP: &str = "gid://shopify/Shop/1";

    fn passage(key: &str, doc_type: DocType, title: &str, text: &str) -> Passage {
        Passage {
            key: key.into(),
            doc_type,
            shop_id: SHOP.into(),
            title: title.into(),
            url: format!("https://shop.example/{key}"),
            tags: String::new(),
            text: text.into(),
            exact: Vec::new(),
            updated_at: String::new(),
        }
    }

    fn example(text: &str, intent: &str) -> Example {
        Example {
            text: text.into(),
            intent: intent.into(),
        }
    }

    /// A generation built, switched to, searched and asked, all in a temp directory with
    /// the hashing embedder: what a test of the server can stand on without the model.
    #[test]
    fn a_generation_builds_and_answers_with_any_embedder() {
        let passages = [
            passage(
                "policy:shipping",
                DocType::Policy,
                "Shipping policy › Where is my order",
                "Orders ship within two days; track your package with the tracking link.",
            ),
            passage(
                "policy:refund",
                DocType::Policy,
                "Refund policy › Return window",
                "Return unworn items within 30 days for a refund; sale items are final.",
            ),
            passage(
                "product:trail-tent",
                DocType::Product,
                "Trail Tent 2P",
                "A two person backpacking tent, waterproof, 1.8 kg.",
            ),
            passage(
                "article:sizing",
                DocType::Article,
                "Sizing guide › Jackets",
                "Measure your chest and pick the jacket size from the chart.",
            ),
        ];
        let examples = [
            example("where is my order", "order_status"),
            example("has my package shipped yet", "order_status"),
            example("track my order", "order_status"),
            example("I want to return these boots", "return_request"),
            example("how do I send an item back for a refund", "return_request"),
            example("can I return sale items", "return_request"),
            example("do you sell tents", "product_question"),
            example("is this jacket waterproof", "product_question"),
            example("what size jacket should I get", "product_question"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let index = IndexDir::new(dir.path());
        let embedder = HashingEmbedder;
        let build = || {
            index
                .build(
                    &passages,
                    &embedder,
                    &examples,
                    SHOP,
                    &Canary::SelfRetrieval,
                    true,
                )
                .unwrap()
        };
        let summary = build();
        assert!(summary.switched, "{summary:?}");
        assert_eq!(summary.manifest.model, embedder.model_id());
        assert_eq!(summary.manifest.passages_embedded, passages.len());
        assert!(
            dir.path()
                .join(format!("cache/{}.bin", embedder.model_id()))
                .exists()
        );

        let generation = index.open_current().unwrap();
        let top = |query: &str| {
            generation
                .search(&embedder, query, &Filter::default(), 3)
                .unwrap()[0]
                .key
                .clone()
        };
        assert_eq!(top("can I return sale items?"), "policy:refund");
        assert_eq!(top("where's my package"), "policy:shipping");
        assert_eq!(top("waterproof tent"), "product:trail-tent");
        let elsewhere = Filter {
            shop: Some("gid://shopify/Shop/2".into()),
            doc_types: Vec::new(),
        };
        assert!(
            generation
                .search(&embedder, "return", &elsewhere, 3)
                .unwrap()
                .is_empty()
        );

        let intent = |text: &str| generation.classify(&embedder, text).unwrap().intent;
        assert_eq!(intent("where is my package"), "order_status");
        assert_eq!(intent("I want to return my boots"), "return_request");
        assert_eq!(intent("do you sell two person tents"), "product_question");

        // The same passages and examples again: nothing is built, the generation stays.
        let again = build();
        assert!(again.unchanged, "{again:?}");
    }
}
