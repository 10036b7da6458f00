//! Getting a store's data in from elsewhere: a sync from the Shopify Admin API, an import
//! of a helpdesk's past tickets, a replay of captured webhook deliveries.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use index::FastEmbedder;
use index::generation::IndexDir;
use pipeline::{Config, Lake};

use super::spinner;
use crate::cli::{ImportFormat, ImportOptions};

/// `sync shopify`: with a spinner of the resource being fetched and the rate-limit bucket.
pub async fn sync_shopify(
    config: &Config,
    shop: String,
    full: bool,
    since: Option<String>,
    poll_ms: u64,
    json: bool,
) -> Result<()> {
    // The shop's own Admin token when the registry holds one, else the configured one (a
    // custom app run without a registry); never for a shop that uninstalled the app.
    let registry = server::shops::ShopRegistry::open_configured(config)?;
    if registry.get(&shop).is_some_and(|s| !s.is_installed()) {
        anyhow::bail!("{shop} has uninstalled the app: nothing of it is synced");
    }
    // An OAuth shop's token is refreshed first when it is about to expire.
    let token = server::fresh_token(config, &registry, &shop, chrono::Utc::now())
        .await?
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| config.shopify_access_token.clone());
    let lake = Lake::open(config.lake_url()?)?;
    let options = pipeline::sources::shopify_api::SyncOptions {
        full,
        since,
        poll_interval: std::time::Duration::from_millis(poll_ms),
        ..pipeline::sources::shopify_api::SyncOptions::for_shop(config, &shop, token)
    };
    let bar = spinner();
    let mut show = |p: &pipeline::sources::shopify_api::SyncProgress| {
        let bucket = p.client.throttle.map_or_else(String::new, |t| {
            format!(
                " · bucket {:.0}/{:.0} (+{:.0}/s)",
                t.available_now(),
                t.maximum,
                t.restore_rate
            )
        });
        bar.set_message(format!(
            "{}: {} objects · {} requests{bucket} · {}",
            p.resource, p.objects, p.client.requests, p.client.state
        ));
        bar.tick();
    };
    let report = pipeline::sources::shopify_api::sync_shopify(&lake, config, &options, &mut show)
        .await
        .with_context(|| format!("syncing {}", options.shop))?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

/// `import zendesk|gorgias|csv`.
pub async fn import(config: &Config, format: ImportFormat) -> Result<()> {
    let (source, path, common) = match format {
        ImportFormat::Zendesk {
            path,
            handle_time_field,
            common,
        } => (
            pipeline::sources::helpdesk::Source::Zendesk { handle_time_field },
            path,
            common,
        ),
        ImportFormat::Gorgias { path, common } => {
            (pipeline::sources::helpdesk::Source::Gorgias, path, common)
        }
        ImportFormat::Csv { path, map, common } => (
            pipeline::sources::helpdesk::Source::Csv(Box::new(
                pipeline::sources::helpdesk::generic_csv::Mapping::load(&map)?,
            )),
            path,
            common,
        ),
    };
    import_tickets(config, &source, &path, common).await
}

/// Imports into the given shop, or the lake's only one.
async fn import_tickets(
    config: &Config,
    source: &pipeline::sources::helpdesk::Source,
    path: &Path,
    options: ImportOptions,
) -> Result<()> {
    let lake = Lake::open(config.lake_url()?)?;
    let shop = match options.shop {
        Some(shop) => shop,
        None => lake.only_shop().await?,
    };
    // Intents come from the live index generation's classifier, when there is one.
    let classifier = match IndexDir::new(&config.index_dir).open_current() {
        Ok(generation) => Some((generation, FastEmbedder::load(&config.assets_dir)?)),
        Err(error) => {
            eprintln!(
                "note: intents are left empty: {error}; import again after it to fill them in"
            );
            None
        }
    };
    let mut classify = |text: &str| {
        let (generation, embedder) = classifier.as_ref()?;
        generation
            .classify(embedder, text)
            .map(|c| c.intent)
            .map_err(|e| tracing::warn!(error = %e, "classifying an imported message failed"))
            .ok()
    };
    let report =
        pipeline::sources::helpdesk::import(&lake, config, source, path, &shop, &mut classify)
            .await
            .with_context(|| format!("importing {}", path.display()))?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

/// `webhooks replay`: fails when a delivery was refused, after printing each refusal.
pub async fn webhooks_replay(config: &Config, dir: &Path, shop: Option<&str>) -> Result<ExitCode> {
    let replayed = server::replay(config, dir, shop).await?;
    println!("{replayed}");
    Ok(if replayed.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
