//! Retrieval benchmarks, run by `bench/index` (release build, results in BENCHMARKS.md).
//!
//! ```text
//! retrieval_bench throughput LAKE_URL ASSETS_DIR [EVERY]
//!     embedding throughput of the index build's path (the embedding cache embedding every
//!     passage: length-sorted batches of 32) against fastembed called directly on the same
//!     texts (its own batching), alternating twice; every EVERY-th passage of the lake.
//! retrieval_bench latency LAKE_URL INDEX_DIR ASSETS_DIR QUERIES_JSONL [SEARCHES]
//!     per-search latency of hybrid search over the lake's passages, query embedding
//!     included, with the int8 scan the index uses and with the exact f32 scan; p50/p99 of
//!     each part, and how often the two agree on the top 10. Run it under `taskset -c 0`.
//! ```
//!
//! Latency at 10⁵ passages without embedding 10⁵ passages: this machine embeds about 13
//! product passages a second (BENCHMARKS.md), so a real 100k build takes two hours. The
//! latency step therefore takes the passages (and builds BM25 over all of them) from a large
//! catalog-only lake, and each passage's vector from INDEX_DIR's live generation when that
//! holds the same passage (same key and text: the generator's first products are the same at
//! every scale) — else the vector of a real passage, cycled, as a stand-in. A scan's cost does
//! not depend on the numbers it reads, and every query still ranks against real vectors
//! first; the run prints how many are real.
//!
//! An example rather than a bench target: `cargo test --all-targets` compiles it (so it
//! never rots) without running it, which it could not do without a built index. It lives in
//! the root package so it builds with the binary's dependency features (building it from
//! `index` alone would compile DataFusion a second time in another feature set).

use std::path::Path;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use index::bm25::{Bm25, Filter};
use index::cache::EmbeddingCache;
use index::documents::{Passage, all_passages};
use index::generation::IndexDir;
use index::search::{FusionWeights, Hit, Mode, rank};
use index::vectors::VectorMatrix;
use index::{Embedder, FastEmbedder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["throughput", lake, assets, rest @ ..] if rest.len() <= 1 => {
            let every = rest.first().map_or(Ok(1), |n| n.parse())?;
            throughput(lake, Path::new(assets), every)
        }
        ["latency", lake, index_dir, assets, queries, rest @ ..] if rest.len() <= 1 => {
            let searches = rest.first().map_or(Ok(1000), |n| n.parse())?;
            latency(
                lake,
                Path::new(index_dir),
                Path::new(assets),
                Path::new(queries),
                searches,
            )
        }
        _ => Err("usage: retrieval_bench throughput LAKE_URL ASSETS_DIR [EVERY] | latency LAKE_URL INDEX_DIR ASSETS_DIR QUERIES_JSONL [SEARCHES]".into()),
    }
}

/// Every passage of the lake, in build order.
fn lake_passages(lake: &str) -> Result<Vec<Passage>, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    Ok(runtime.block_on(async {
        let lake = pipeline::Lake::open(pipeline::config::lake_url_from(lake)?)?;
        let engine = pipeline::sql::SqlEngine::open(&lake).await?;
        all_passages(&engine, "*").await
    })?)
}

fn throughput(lake: &str, assets: &Path, every: usize) -> Result<(), Box<dyn std::error::Error>> {
    let texts: Vec<String> = lake_passages(lake)?
        .iter()
        .step_by(every.max(1))
        .map(Passage::embedding_text)
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embedder = FastEmbedder::load(assets)?;
    println!("passages: {}", texts.len());
    let scratch = tempfile::tempdir()?;
    for round in 1..=2 {
        let started = Instant::now();
        let raw = embedder.embed(&refs)?;
        let raw_seconds = started.elapsed().as_secs_f64();

        let mut cache = EmbeddingCache::open(
            &scratch.path().join(format!("round-{round}.bin")),
            embedder.dimension(),
        )?;
        let started = Instant::now();
        let (built, counts) = cache.vectors(&embedder, &texts)?;
        let build_seconds = started.elapsed().as_secs_f64();
        assert_eq!(
            counts.embedded,
            texts.len(),
            "an empty cache embeds every text"
        );
        let worst = raw
            .iter()
            .zip(&built)
            .map(|(a, b)| 1.0 - index::cosine(a, b))
            .fold(0.0_f32, f32::max);
        let n = texts.len() as f64;
        println!(
            "round {round}: raw fastembed {:.1} passages/s ({raw_seconds:.1} s), index build {:.1} passages/s ({build_seconds:.1} s), ratio build/raw {:.2}x, largest 1-cosine between the two {worst:.1e}",
            n / raw_seconds,
            n / build_seconds,
            raw_seconds / build_seconds
        );
    }
    Ok(())
}

/// p50 and p99 of durations, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99))
}

fn latency(
    lake: &str,
    index_dir: &Path,
    assets: &Path,
    queries: &Path,
    searches: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let passages = lake_passages(lake)?;
    let source = IndexDir::new(index_dir).open_current()?;
    let source_vectors = VectorMatrix::read(
        &index_dir
            .join("generations")
            .join(&source.name)
            .join("vectors.f32"),
        source.manifest.dimension,
    )?;
    let real: HashMap<(&str, &str), usize> = source
        .passages
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.key.as_str(), p.text.as_str()), i))
        .collect();
    let mut real_count = 0;
    let rows: Vec<Vec<f32>> = passages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let row = match real.get(&(p.key.as_str(), p.text.as_str())) {
                Some(&row) => {
                    real_count += 1;
                    row
                }
                None => i % source_vectors.rows(),
            };
            source_vectors.row(row).to_vec()
        })
        .collect();
    let exact = VectorMatrix::new(source.manifest.dimension, &rows);
    drop(rows);
    let quantized = exact.quantize();
    let scratch = tempfile::tempdir()?;
    let started = Instant::now();
    index::bm25::build(scratch.path(), &passages)?;
    let bm25 = Bm25::open(scratch.path())?;
    let bm25_seconds = started.elapsed().as_secs_f64();
    let embedder = FastEmbedder::load(assets)?;
    let queries = index::eval::read_retrieval_set(queries)?;
    println!(
        "{} passages ({real_count} with their own vector from {}, the rest stand-ins); BM25 built in {bm25_seconds:.1} s; {} queries cycled over {searches} searches",
        passages.len(),
        source.name,
        queries.len()
    );
    let weights = FusionWeights::default();
    let filter = Filter::default();
    let search = |query: &str, cosines: &[f32]| {
        rank(
            &passages,
            &bm25,
            cosines,
            &weights,
            query,
            &filter,
            10,
            Mode::Hybrid,
        )
    };
    let (mut embed, mut int8_scan, mut f32_scan, mut int8_total, mut f32_total) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut agree = 0usize;
    let warmup = 20;
    for n in 0..searches + warmup {
        let query = &queries[n % queries.len()].query;
        let t0 = Instant::now();
        let vector = index::embed_one(&embedder, query)?;
        let t1 = Instant::now();
        let int8_cosines = quantized.scores(&vector);
        let t2 = Instant::now();
        let int8_hits = search(query, &int8_cosines)?;
        let t3 = Instant::now();
        let f32_cosines = exact.scores(&vector);
        let t4 = Instant::now();
        let f32_hits = search(query, &f32_cosines)?;
        let t5 = Instant::now();
        if n < warmup {
            continue;
        }
        embed.push(t1 - t0);
        int8_scan.push(t2 - t1);
        f32_scan.push(t4 - t3);
        int8_total.push(t3 - t0);
        f32_total.push((t1 - t0) + (t5 - t3));
        let keys = |hits: &[Hit]| -> Vec<String> { hits.iter().map(|h| h.key.clone()).collect() };
        agree += usize::from(keys(&int8_hits) == keys(&f32_hits));
    }
    for (what, samples) in [
        ("query embedding", embed),
        ("int8 vector scan", int8_scan),
        ("f32 vector scan", f32_scan),
        ("hybrid search, int8 (what the index runs)", int8_total),
        ("hybrid search, f32", f32_total),
    ] {
        let (p50, p99) = percentiles(samples);
        println!("{what:<44} p50 {p50:>7.2} ms   p99 {p99:>7.2} ms");
    }
    println!(
        "int8 and f32 return the same top 10 in the same order for {agree} of {searches} searches"
    );
    Ok(())
}
