//! The retrieval index: build and inspect it, search and classify with it, and the nightly
//! rebuild that refreshes the lake and the index together.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use index::FastEmbedder;
use index::bm25::Filter;
use index::documents::DocType;
use index::generation::IndexDir;
use index::search::HitList;
use pipeline::{Config, Lake};

use super::{advance, ingest_progress_bar};
use crate::cli::{IndexAction, TextOrJson};

/// `index build` (fails when the new generation's canary failed) and `index status`.
pub async fn index(config: &Config, action: IndexAction) -> Result<ExitCode> {
    let dir = IndexDir::new(&config.index_dir);
    match action {
        IndexAction::Build {
            shop,
            canary,
            force,
        } => {
            let lake = Lake::open(config.lake_url()?)?;
            let summary = index::rebuild::build_index(
                config,
                &lake,
                &FastEmbedder::load(&config.assets_dir)?,
                &shop,
                canary.as_deref(),
                !force,
            )
            .await?;
            println!("{summary}");
            if !summary.switched && !summary.unchanged {
                return Ok(ExitCode::FAILURE);
            }
        }
        IndexAction::Status => println!("{}", dir.status()?),
    }
    Ok(ExitCode::SUCCESS)
}

/// `search`: the live generation's top `k` hits (at least one).
pub fn search(
    config: &Config,
    query: &str,
    shop: Option<String>,
    k: usize,
    doc_types: Vec<DocType>,
    explain: bool,
    format: TextOrJson,
) -> Result<()> {
    let generation = IndexDir::new(&config.index_dir).open_current()?;
    let embedder = FastEmbedder::load(&config.assets_dir)?;
    let filter = Filter { shop, doc_types };
    let hits = generation.search(&embedder, query, &filter, k.max(1))?;
    if format == TextOrJson::Json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
    } else {
        println!(
            "{}",
            HitList {
                hits: &hits,
                explain
            }
        );
    }
    Ok(())
}

/// `classify`: the intent of one message and the entities named in it.
pub fn classify(config: &Config, text: &str, format: TextOrJson) -> Result<()> {
    let generation = IndexDir::new(&config.index_dir).open_current()?;
    let embedder = FastEmbedder::load(&config.assets_dir)?;
    let classification = generation.classify(&embedder, text)?;
    let entities = index::classifier::entities(text, &generation.product_titles());
    if format == TextOrJson::Json {
        let both = serde_json::json!({"classification": classification, "entities": entities});
        println!("{}", serde_json::to_string_pretty(&both)?);
    } else {
        println!("{classification}");
        println!("entities: {}", serde_json::to_string(&entities)?);
    }
    Ok(())
}

/// `rebuild`, the nightly job: one summary line per step; a second run at the same time
/// fails on the lock.
pub async fn rebuild(
    config: &Config,
    from: Option<&Path>,
    canary: Option<&Path>,
) -> Result<ExitCode> {
    let lake = Lake::open(config.lake_url()?)?;
    let bar = ingest_progress_bar();
    let report = index::rebuild::rebuild(
        config,
        &lake,
        &FastEmbedder::load(&config.assets_dir)?,
        from,
        canary,
        &mut advance(&bar),
    )
    .await?;
    bar.finish_and_clear();
    println!("{report}");
    Ok(if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
