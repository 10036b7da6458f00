//! Serving: `serve` runs the answer server; `demo` first fills the lake and the index from
//! the bundled store and shows what they answer, then serves.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use index::FastEmbedder;
use index::bm25::Filter;
use index::generation::IndexDir;
use index::search::HitList;
use pipeline::sql::{Format, SqlEngine, render};
use pipeline::{Config, Lake};
use server::shops::{Credentials, ShopKind, ShopRegistry};

use super::lake::ingest_with_progress;

/// Serves until Ctrl-C or SIGTERM; `demo` adds copy-and-paste examples.
pub async fn serve(config: &Config, listen: Option<String>, demo: bool) -> Result<()> {
    let address = listen.unwrap_or_else(|| config.listen.clone());
    // Before anything is opened or loaded: a server that would answer with forgeable or
    // public secrets does not start at all.
    let mut resolved = tokio::net::lookup_host(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?
        .peekable();
    let on_loopback = resolved.peek().is_some() && resolved.all(|a| a.ip().is_loopback());
    config.check_serving_secrets(on_loopback)?;
    if !on_loopback {
        let registry = ShopRegistry::open_configured(config)?;
        for shop in registry.all().values().filter(|s| s.is_installed()) {
            if shop.credentials.storefront_secret == pipeline::config::DEMO_STOREFRONT_SECRET {
                bail!(
                    "refusing to serve: {} has the public demo storefront secret, which is refused off loopback (supportlake shops add {} --storefront-secret …)",
                    shop.domain,
                    shop.domain
                );
            }
        }
    }
    let state = server::AppState::from_config(config).await?;
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    println!(
        "
Serving the chat API on {url} (API document: {url}/openapi.json). Ctrl-C stops."
    );
    if demo {
        let shop = state
            .snapshot()
            .shops
            .first()
            .map(|s| s.id.clone())
            .unwrap_or_default();
        println!(
            "Try: curl -s {url}/v1/chat -H 'content-type: application/json' -d '{{\"shop\": \"{shop}\", \"message\": \"can I return sale items?\"}}'"
        );
        if config.agent_token == pipeline::config::DEMO_AGENT_TOKEN {
            println!(
                "Handoff inbox: curl -s {url}/v1/handoffs -H 'authorization: Bearer {}'  (the public demo token: set agent_token for a real store)",
                config.agent_token
            );
        }
    }
    std::io::stdout().flush()?;
    server::serve(state, listener, shutdown_signal()).await?;
    println!("Stopped; chat records are in the lake.");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (how systemd and `kill` stop a service).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// Builds the retrieval index when there is none, then searches and classifies as a shopper
/// would ask.
async fn demo_index(config: &Config, lake: &Lake) -> Result<()> {
    let dir = IndexDir::new(&config.index_dir);
    let embedder = FastEmbedder::load(&config.assets_dir)?;
    if dir.current()?.is_none() {
        println!(
            "\nBuilding the retrieval index in {} ...",
            config.index_dir.display()
        );
        let summary = index::rebuild::build_index(config, lake, &embedder, "*", None, true).await?;
        println!("{summary}");
    }
    let generation = dir.open_current()?;
    let question = "can I return sale items";
    println!(
        "\n## Which passages answer \"{question}\"?\n$ supportlake search \"{question}\" --explain"
    );
    let hits = generation.search(&embedder, question, &Filter::default(), 3)?;
    println!(
        "{}",
        HitList {
            hits: &hits,
            explain: true
        }
    );
    let message = "where is my order #1001? it was due monday";
    let c = generation.classify(&embedder, message)?;
    println!(
        "\n## What is the shopper asking?\n$ supportlake classify \"{message}\"\n{} (confidence {:.2}), entities {}",
        c.intent,
        c.confidence,
        serde_json::to_string(&index::classifier::entities(
            message,
            &generation.product_titles()
        ))?
    );
    Ok(())
}

/// Installs the lake's shops that the registry lacks as custom-app shops with the public
/// demo storefront secret, so the demo answers as before; `serve` refuses that secret's
/// companions off loopback, so this never reaches a real deployment unnoticed.
async fn register_demo_shops(config: &Config, lake: &Lake) -> Result<()> {
    let registry = ShopRegistry::open_configured(config)?;
    let snapshot = server::Snapshot::load(lake).await?;
    for shop in &snapshot.shops {
        if registry.get(&shop.id).is_none() {
            let credentials = Credentials {
                storefront_secret: pipeline::config::DEMO_STOREFRONT_SECRET.into(),
                ..Credentials::default()
            };
            registry.install(
                &shop.id,
                ShopKind::Custom,
                Vec::new(),
                credentials,
                chrono::Utc::now(),
            )?;
            println!(
                "Registered the demo shop {} (supportlake shops list).",
                shop.id
            );
        }
    }
    Ok(())
}

pub async fn demo(config: &Config, store: &Path) -> Result<()> {
    if !store.join("export.json").exists() {
        bail!(
            "{} is not a demo store (no export.json): run `supportlake generate --out {}`",
            store.display(),
            store.display()
        );
    }
    let lake = Lake::open(config.lake_url()?)?;
    let counts = pipeline::lake::row_counts(&lake).await?;
    if counts.get("products").copied().unwrap_or(0) == 0 {
        println!(
            "Ingesting the demo store from {} into {} ...",
            store.display(),
            lake.url()
        );
        let report = ingest_with_progress(&lake, store, config).await?;
        println!("{report}");
    } else {
        println!(
            "The lake at {} already holds the demo store; querying it.",
            lake.url()
        );
    }
    register_demo_shops(config, &lake).await?;
    let engine = SqlEngine::open(&lake).await?;
    for (question, sql) in pipeline::sql::DEMO_QUERIES {
        println!("\n## {question}\n$ supportlake sql \"{sql}\"");
        println!("{}", render(&engine.query(sql).await?, Format::Table)?);
    }
    println!("\nAsk your own: supportlake sql \"SELECT ...\"   (tables: supportlake tables)");
    println!(
        "The reports: supportlake report --list; e.g. supportlake report knowledge-gaps --format html -o gaps.html"
    );
    demo_index(config, &lake).await?;
    println!(
        "\nSearch and classify your own: supportlake search \"...\" --explain; supportlake classify \"...\""
    );
    Ok(())
}
