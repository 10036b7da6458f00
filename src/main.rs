//! The `supportlake` command: parses flags and hands each command to its glue in
//! `commands`, which calls the library crates and prints what they return.

mod cli;
mod commands;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use cli::{Cli, Command, SyncSource, WebhooksAction};
use pipeline::Config;
use pipeline::report::ReportArgs;

// Ingest allocates many small JSON values on two threads at once; glibc's allocator spent a
// third of the ingest profile in malloc/free and its arena locks (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SUPPORTLAKE_LOG")
                // delta-rs warns on every merge that a file-pruning metric is missing
                // (harmless, and the server merges every few seconds).
                .unwrap_or_else(|_| "warn,deltalake_core::operations::merge=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves the configuration (file, environment, `--lake`), then runs the command.
async fn run(cli: Cli) -> Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref(), |var| std::env::var(var).ok())?;
    if let Some(lake) = &cli.lake {
        config.apply_override("lake_url", lake)?;
    }
    match cli.command {
        Command::Generate {
            scale,
            seed,
            out,
            catalog_only,
        } => commands::lake::generate(scale, seed, &out, catalog_only)?,
        Command::Ingest { dir, json } => return commands::lake::ingest(&config, &dir, json).await,
        Command::Sql { query, format } => {
            commands::lake::sql(&config, &query, format.into()).await?;
        }
        Command::Report { list: true, .. } => commands::report::list(),
        Command::Report {
            name,
            from,
            to,
            shop,
            params,
            format,
            sql,
            output,
            ..
        } => {
            let name = name.expect("clap requires a name without --list");
            let args = ReportArgs {
                from,
                to,
                shop,
                params,
            };
            commands::report::run(&config, &name, &args, format.into(), sql, output.as_deref())
                .await?;
        }
        Command::Webhooks {
            action: WebhooksAction::Replay { dir, shop },
        } => return commands::sources::webhooks_replay(&config, &dir, shop.as_deref()).await,
        Command::Sync {
            source:
                SyncSource::Shopify {
                    shop,
                    full,
                    since,
                    poll_ms,
                    json,
                },
        } => commands::sources::sync_shopify(&config, shop, full, since, poll_ms, json).await?,
        Command::Shops { action } => commands::shops::shops(&config, action)?,
        Command::Import { format } => commands::sources::import(&config, format).await?,
        Command::Tables => commands::lake::tables(&config).await?,
        Command::Index { action } => return commands::index::index(&config, action).await,
        Command::Search {
            query,
            shop,
            k,
            doc_types,
            explain,
            format,
        } => commands::index::search(&config, &query, shop, k, doc_types, explain, format)?,
        Command::Classify { text, format } => commands::index::classify(&config, &text, format)?,
        Command::Eval { what } => commands::eval::eval(&config, what)?,
        Command::Rebuild { from, canary } => {
            return commands::index::rebuild(&config, from.as_deref(), canary.as_deref()).await;
        }
        Command::Config => commands::lake::config(&config)?,
        Command::Demo { store, listen } => {
            commands::serve::demo(&config, &store).await?;
            commands::serve::serve(&config, listen, true).await?;
        }
        Command::Serve { listen } => commands::serve::serve(&config, listen, false).await?,
    }
    Ok(ExitCode::SUCCESS)
}
