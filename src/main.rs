//! The `supportlake` command: parses flags and hands off to the library crates.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use index::bm25::Filter;
use index::generation::IndexDir;
use index::{Embedder, FastEmbedder};
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::report::{ReportArgs, ReportFormat};
use pipeline::sql::{Format, SqlEngine, render};
use pipeline::{Config, Lake};

// Ingest allocates many small JSON values on two threads at once; glibc's allocator spent a
// third of the ingest profile in malloc/free and its arena locks (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "supportlake",
    version,
    about = "A Shopify store's support as data and answers"
)]
struct Cli {
    /// Config file (default: ./supportlake.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Lake location, a URL or a path (overrides config and SUPPORTLAKE_LAKE_URL).
    #[arg(long, global = true)]
    lake: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest the bundled demo store into the lake (if it is empty), build the index (if
    /// missing), show a few answers, then serve the chat API until Ctrl-C.
    Demo {
        /// Demo store directory.
        #[arg(long, default_value = "data/demo-store")]
        store: PathBuf,
        /// Address to serve on (default: `listen` from the config, 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Serve the chat API, the handoff inbox, /metrics and /openapi.json until Ctrl-C or SIGTERM.
    Serve {
        /// Address to serve on (default: `listen` from the config, 127.0.0.1:8080); port 0
        /// picks a free port, printed on start.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Write a demo store in Shopify's export formats, deterministic for a seed.
    Generate {
        #[arg(long, default_value_t = 1)]
        scale: u32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Output directory (required, so a bigger store never overwrites the bundled demo by accident).
        #[arg(long)]
        out: PathBuf,
        /// Only products, inventory, policies and articles (what the retrieval index reads):
        /// large catalogs for index benchmarks without gigabytes of orders.
        #[arg(long)]
        catalog_only: bool,
    },
    /// Ingest a directory of Shopify-format exports into the lake.
    Ingest {
        dir: PathBuf,
        /// Print the report as JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Run a read-only SQL query over the lake.
    Sql {
        query: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Run a support report over the lake (`--list` shows them all).
    Report {
        /// Report name, e.g. resolution, reopen, csat-by-path, knowledge-gaps.
        #[arg(required_unless_present = "list")]
        name: Option<String>,
        /// List the reports with their one-line definitions.
        #[arg(long, conflicts_with = "name")]
        list: bool,
        /// Start of the window: a date (2026-09-01) or an RFC 3339 time.
        #[arg(long)]
        from: Option<String>,
        /// End of the window (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// A shop_id or domain (default: every shop).
        #[arg(long)]
        shop: Option<String>,
        /// Another parameter as key=value, e.g. --param reopen_days=14 (repeatable).
        #[arg(long = "param", value_parser = key_value)]
        params: Vec<(String, String)>,
        #[arg(long, value_enum, default_value_t = ReportFormatArg::Table)]
        format: ReportFormatArg,
        /// Print the report's SQL file (definition and statement) instead of running it.
        #[arg(long)]
        sql: bool,
        /// Write the output to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Build or inspect the retrieval index (BM25 + vectors + intent examples).
    Index {
        #[command(subcommand)]
        action: IndexAction,
    },
    /// Search the store's products, policies and articles (hybrid BM25 + vectors).
    Search {
        query: String,
        /// Only this shop's passages (a shop_id).
        #[arg(long)]
        shop: Option<String>,
        /// Number of results.
        #[arg(long, short, default_value_t = 5)]
        k: usize,
        /// Only these doc types (product, policy, article; repeatable).
        #[arg(long = "type", value_parser = doc_type)]
        doc_types: Vec<index::documents::DocType>,
        /// Show each hit's BM25, vector and fused scores.
        #[arg(long)]
        explain: bool,
        #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
        format: TextOrJson,
    },
    /// Classify a shopper message: intent, confidence and entities.
    Classify {
        text: String,
        #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
        format: TextOrJson,
    },
    /// The nightly job: ingest what changed, compact the lake (optimize + vacuum), rebuild the
    /// index incrementally, validate it and switch; idempotent and locked.
    Rebuild {
        /// Exports to ingest first (a directory, as for `ingest`); without it the lake is used as is.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Canary set for the index (JSONL), as for `index build`.
        #[arg(long)]
        canary: Option<PathBuf>,
    },
    /// Measure the classifier or the retrieval on a judged data set.
    Eval {
        #[command(subcommand)]
        what: EvalWhat,
    },
    /// Shopify webhooks: feed captured deliveries through the live path.
    Webhooks {
        #[command(subcommand)]
        action: WebhooksAction,
    },
    /// Pull a store's data from a source into the lake.
    Sync {
        #[command(subcommand)]
        source: SyncSource,
    },
    /// Import a helpdesk's past tickets as conversations (resolution path human_only),
    /// classified by intent when an index exists. Re-importing writes nothing new.
    Import {
        #[command(subcommand)]
        format: ImportFormat,
    },
    /// List the lake's tables with their row counts.
    Tables,
    /// Print the resolved configuration.
    Config,
}

#[derive(Debug, Subcommand)]
enum WebhooksAction {
    /// Verify, deduplicate and apply a directory of deliveries, as the server does: captures
    /// (`{"headers": {...}, "body": "..."}`) or bare payloads named `<resource>__<action>.json`.
    /// With a server running on the same state directory, its applier applies them.
    Replay {
        dir: PathBuf,
        /// The shop's myshopify domain, for bare payloads.
        #[arg(long)]
        shop: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ImportFormat {
    /// A directory with tickets.json (Zendesk's incremental ticket export, users
    /// side-loaded) and ticket_comments.json (each ticket's comments under its id).
    Zendesk {
        path: PathBuf,
        /// Id of the custom field holding seconds spent (the Time Tracking app's).
        #[arg(long)]
        handle_time_field: Option<i64>,
        #[command(flatten)]
        common: ImportOptions,
    },
    /// A directory with tickets.json and messages.json (Gorgias's list responses).
    Gorgias {
        path: PathBuf,
        #[command(flatten)]
        common: ImportOptions,
    },
    /// A CSV export, one row per message, read through a column mapping.
    Csv {
        path: PathBuf,
        /// The mapping file (see data/helpdesk/csv/mapping.toml).
        #[arg(long)]
        map: PathBuf,
        #[command(flatten)]
        common: ImportOptions,
    },
}

#[derive(Debug, Args)]
struct ImportOptions {
    /// The shop the tickets belong to (default: the lake's only shop).
    #[arg(long)]
    shop: Option<String>,
    /// Print the report as JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum SyncSource {
    /// The Shopify Admin API (GraphQL): the first sync fetches everything through bulk
    /// operations, later ones only what changed since the last. Resumes a killed sync. The
    /// access token comes from `shopify_access_token` (env SUPPORTLAKE_SHOPIFY_ACCESS_TOKEN).
    Shopify {
        /// The shop's myshopify domain, e.g. ridgeline-outfitters.myshopify.com.
        #[arg(long)]
        shop: String,
        /// Fetch everything again, even when an earlier sync left a watermark.
        #[arg(long, conflicts_with = "since")]
        full: bool,
        /// Fetch, page by page, what changed after this time (RFC 3339), whatever the
        /// watermark says: a backfill of a window.
        #[arg(long)]
        since: Option<String>,
        /// How often a running bulk operation is polled, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        poll_ms: u64,
        /// Print the report as JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum IndexAction {
    /// Build a new generation from the lake and switch to it when its canary passes.
    Build {
        /// Index one shop only (a shop_id; default every shop).
        #[arg(long, default_value = "*")]
        shop: String,
        /// Canary set (JSONL `{"query","relevant"}`); default: each passage's title must
        /// find it.
        #[arg(long)]
        canary: Option<PathBuf>,
        /// Build even when nothing changed since the live generation.
        #[arg(long)]
        force: bool,
    },
    /// Show the live generation, the generations on disk and the cache.
    Status,
}

#[derive(Debug, Subcommand)]
enum EvalWhat {
    /// Accuracy, macro-F1, per-intent precision/recall and out-of-scope rates on a CSV (text,intent).
    Intents {
        #[arg(long)]
        dataset: Vec<PathBuf>,
        /// Which rows of the (concatenated) sets to score: tune on one half, report the other.
        #[arg(long, value_enum, default_value_t = Rows::All)]
        rows: Rows,
        /// Instead of the report, sweep the out-of-scope threshold (0.30..0.65).
        #[arg(long)]
        sweep: bool,
        #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
        format: TextOrJson,
    },
    /// nDCG@10, Recall@10 and MRR of bm25, vector and hybrid on a JSONL set.
    Retrieval {
        #[arg(long)]
        dataset: PathBuf,
        #[arg(long, value_enum, default_value_t = Rows::All)]
        rows: Rows,
        /// Also grid-search the fusion weight per doc type and print the best.
        #[arg(long)]
        tune: bool,
        #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
        format: TextOrJson,
    },
}

/// Rows of an evaluation set, numbered from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Rows {
    All,
    Odd,
    Even,
}

impl Rows {
    fn select<T>(self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| match self {
                Rows::All => true,
                Rows::Odd => i % 2 == 0,
                Rows::Even => i % 2 == 1,
            })
            .map(|(_, item)| item)
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TextOrJson {
    Text,
    Json,
}

fn doc_type(text: &str) -> Result<index::documents::DocType, String> {
    index::documents::DocType::parse(text)
        .ok_or_else(|| format!("unknown doc type {text:?} (product, policy or article)"))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Table,
    Csv,
    Json,
}

impl From<OutputFormat> for Format {
    fn from(f: OutputFormat) -> Self {
        match f {
            OutputFormat::Table => Format::Table,
            OutputFormat::Csv => Format::Csv,
            OutputFormat::Json => Format::Json,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormatArg {
    Table,
    Csv,
    Json,
    Html,
}

impl From<ReportFormatArg> for ReportFormat {
    fn from(f: ReportFormatArg) -> Self {
        match f {
            ReportFormatArg::Table => ReportFormat::Table,
            ReportFormatArg::Csv => ReportFormat::Csv,
            ReportFormatArg::Json => ReportFormat::Json,
            ReportFormatArg::Html => ReportFormat::Html,
        }
    }
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not key=value"))
}

fn main() -> std::process::ExitCode {
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
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<std::process::ExitCode> {
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
        } => {
            let contents = if catalog_only {
                pipeline::generate::Contents::CatalogOnly
            } else {
                pipeline::generate::Contents::Everything
            };
            let bar = progress_bar(0);
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
            let summary = pipeline::generate::generate(scale, seed, contents, &out, |what, n| {
                bar.set_message(format!("{what}: {n}"));
            })?;
            bar.finish_and_clear();
            println!(
                "wrote {}: {} products, {} variants, {} customers, {} orders, {} conversations, {} policies, {} articles",
                out.display(),
                summary.products,
                summary.variants,
                summary.customers,
                summary.orders,
                summary.conversations,
                summary.policies,
                summary.articles
            );
        }
        Command::Ingest { dir, json } => {
            let lake = Lake::open(config.lake_url()?)?;
            let report = ingest(&lake, &dir, &config).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
            if !report.succeeded() {
                eprintln!("error: nothing valid could be read from {}", dir.display());
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Sql { query, format } => {
            let lake = Lake::open(config.lake_url()?)?;
            let engine = SqlEngine::open(&lake).await?;
            let batches = engine.query(&query).await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", render(&batches, format.into())?)?;
        }
        Command::Report {
            name,
            list,
            from,
            to,
            shop,
            params,
            format,
            sql,
            output,
        } => {
            if list {
                for r in pipeline::report::catalog::reports() {
                    println!("{:<20} {}", r.name, r.summary);
                }
                return Ok(std::process::ExitCode::SUCCESS);
            }
            let name = name.expect("clap requires a name without --list");
            let definition = pipeline::report::catalog::report(&name)?;
            let text = if sql {
                format!(
                    "-- pipeline/reports/{}\n{}{}",
                    definition.path, definition.header, definition.sql
                )
            } else {
                let lake = Lake::open(config.lake_url()?)?;
                let engine = SqlEngine::open(&lake).await?;
                let args = ReportArgs {
                    from,
                    to,
                    shop,
                    params,
                };
                let assets = config.assets_dir.clone();
                let result = index::reports::run_report(&engine, &name, &args, || {
                    Ok(Arc::new(FastEmbedder::load(&assets)?) as Arc<dyn Embedder>)
                })
                .await?;
                pipeline::report::render(&result, format.into())?
            };
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => writeln!(std::io::stdout().lock(), "{text}")?,
            }
        }
        Command::Webhooks {
            action: WebhooksAction::Replay { dir, shop },
        } => {
            let state = open_state(&config).await?;
            let replayed = server::webhook::replay(&state, &dir, shop.as_deref()).await?;
            println!(
                "{} accepted, {} duplicates dropped, {} refused",
                replayed.accepted,
                replayed.duplicates,
                replayed.refused.len()
            );
            for (file, code, message) in &replayed.refused {
                println!("refused {file}: {code}: {message}");
            }
            match replayed.applied {
                Some(n) => println!("applied {n} outbox entries to the lake"),
                None => println!("a running server applies them (it holds the applier lock)"),
            }
            if !replayed.refused.is_empty() {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Sync {
            source:
                SyncSource::Shopify {
                    shop,
                    full,
                    since,
                    poll_ms,
                    json,
                },
        } => {
            let lake = Lake::open(config.lake_url()?)?;
            let report = sync_shopify(&lake, &config, shop, full, since, poll_ms).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} sync of {}{}: {} objects in {} requests ({:.0} points), {:.1} s waiting for the rate limit or retries ({} throttled, {} HTTP 429, {} server errors), {:.1} s for bulk operations to finish, {:.1} s in all",
                    report.mode,
                    report.shop,
                    if report.resumed { " (resumed)" } else { "" },
                    report.objects.values().sum::<u64>(),
                    report.requests,
                    report.cost,
                    report.waited_seconds,
                    report.throttled,
                    report.http_429,
                    report.server_errors,
                    report.bulk_waited_seconds,
                    report.seconds
                );
                print_report(&report.ingest);
            }
        }
        Command::Import { format } => {
            let (source, path, common) = match format {
                ImportFormat::Zendesk {
                    path,
                    handle_time_field,
                    common,
                } => (
                    pipeline::helpdesk::Source::Zendesk { handle_time_field },
                    path,
                    common,
                ),
                ImportFormat::Gorgias { path, common } => {
                    (pipeline::helpdesk::Source::Gorgias, path, common)
                }
                ImportFormat::Csv { path, map, common } => (
                    pipeline::helpdesk::Source::Csv(Box::new(
                        pipeline::helpdesk::csv::Mapping::load(&map)?,
                    )),
                    path,
                    common,
                ),
            };
            import(&config, &source, &path, common).await?;
        }
        Command::Tables => {
            let lake = Lake::open(config.lake_url()?)?;
            let counts = pipeline::lake::row_counts(&lake).await?;
            for spec in pipeline::lake::TABLES.iter() {
                let count = counts
                    .get(spec.name)
                    .map_or("-".to_string(), i64::to_string);
                println!("{:<18} {:>10}  {}", spec.name, count, spec.description);
            }
        }
        Command::Index { action } => return index_command(&config, action).await,
        Command::Search {
            query,
            shop,
            k,
            doc_types,
            explain,
            format,
        } => {
            let generation = IndexDir::new(&config.index_dir).open_current()?;
            let embedder = FastEmbedder::load(&config.assets_dir)?;
            let filter = Filter { shop, doc_types };
            let hits = generation.search(&embedder, &query, &filter, k.max(1))?;
            if format == TextOrJson::Json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else {
                print_hits(&hits, explain);
            }
        }
        Command::Classify { text, format } => {
            let generation = IndexDir::new(&config.index_dir).open_current()?;
            let embedder = FastEmbedder::load(&config.assets_dir)?;
            let classification = generation.classify(&embedder, &text)?;
            let entities = index::classifier::entities(&text, &generation.product_titles());
            if format == TextOrJson::Json {
                let both =
                    serde_json::json!({"classification": classification, "entities": entities});
                println!("{}", serde_json::to_string_pretty(&both)?);
            } else {
                println!(
                    "{} (confidence {:.2}, nearest example {:.2}, by {})",
                    classification.intent,
                    classification.confidence,
                    classification.nearest_similarity,
                    classification.decided_by
                );
                println!("entities: {}", serde_json::to_string(&entities)?);
            }
        }
        Command::Eval { what } => eval_command(&config, what)?,
        Command::Rebuild { from, canary } => {
            return rebuild(&config, from.as_deref(), canary.as_deref()).await;
        }
        Command::Config => print!("{}", toml::to_string_pretty(&config.redacted())?),
        Command::Demo { store, listen } => {
            demo(&config, &store).await?;
            serve(&config, listen, true).await?;
        }
        Command::Serve { listen } => serve(&config, listen, false).await?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn index_command(config: &Config, action: IndexAction) -> Result<std::process::ExitCode> {
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
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        IndexAction::Status => {
            let status = dir.status()?;
            match &status.current {
                Some(m) => {
                    let counts: Vec<String> = m
                        .by_doc_type
                        .iter()
                        .map(|(t, n)| format!("{t}={n}"))
                        .collect();
                    println!(
                        "live: {} built {} ({} passages: {}; {} intent examples; model {})",
                        m.generation,
                        m.built_at,
                        m.passages,
                        counts.join(" "),
                        m.intent_examples,
                        m.model
                    );
                }
                None => println!("live: none (run `supportlake index build`)"),
            }
            println!("generations on disk: {}", status.generations.join(", "));
            println!("embedding cache: {} vectors", status.cache_entries);
            if status.building {
                println!("a build is running");
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The nightly job: one summary line per step; a second run at the same time fails on the
/// lock.
async fn rebuild(
    config: &Config,
    from: Option<&Path>,
    canary: Option<&Path>,
) -> Result<std::process::ExitCode> {
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
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

fn print_hits(hits: &[index::search::Hit], explain: bool) {
    if hits.is_empty() {
        println!("no passage matches");
    }
    for (n, hit) in hits.iter().enumerate() {
        println!("{}. {} — {}", n + 1, hit.title, hit.key);
        if !hit.url.is_empty() {
            println!("   {}", hit.url);
        }
        println!("   {}", hit.snippet);
        if explain {
            let bm25 = hit.bm25.map_or("-".to_string(), |s| format!("{s:.3}"));
            println!(
                "   fused {:.3} = bm25 {bm25} (normalised {:.3}) + vector {:.3} (normalised {:.3}), {}",
                hit.fused, hit.bm25_normalised, hit.vector, hit.vector_normalised, hit.doc_type
            );
        }
    }
}

fn eval_command(config: &Config, what: EvalWhat) -> Result<()> {
    let generation = IndexDir::new(&config.index_dir).open_current()?;
    let embedder = FastEmbedder::load(&config.assets_dir)?;
    match what {
        EvalWhat::Intents {
            dataset,
            rows,
            sweep,
            format,
        } => {
            if dataset.is_empty() {
                bail!("give at least one --dataset CSV (text,intent)");
            }
            let mut set = Vec::new();
            for path in &dataset {
                set.extend(index::classifier::read_examples(path)?);
            }
            let set = rows.select(set);
            if sweep {
                let table = index::eval::sweep_out_of_scope(&generation, &embedder, &set)?;
                if format == TextOrJson::Json {
                    println!("{}", serde_json::to_string_pretty(&table)?);
                    return Ok(());
                }
                println!("{} messages", set.len());
                println!(
                    "{:>9} {:>9} {:>9} {:>11} {:>10}",
                    "threshold", "accuracy", "macro-F1", "oos recall", "false oos"
                );
                let rate = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.3}"));
                for row in &table {
                    println!(
                        "{:>9.3} {:>9.3} {:>9.3} {:>11} {:>10}",
                        row.threshold,
                        row.accuracy,
                        row.macro_f1,
                        rate(row.out_of_scope_recall),
                        rate(row.false_out_of_scope_rate)
                    );
                }
                return Ok(());
            }
            let report = index::eval::evaluate_intents(&generation, &embedder, &set)?;
            if format == TextOrJson::Json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
            println!(
                "{} messages: accuracy {:.3}, macro-F1 {:.3}",
                report.messages, report.accuracy, report.macro_f1
            );
            if let Some(r) = report.out_of_scope_recall {
                println!("out_of_scope recall {r:.3}");
            }
            if let Some(r) = report.false_out_of_scope_rate {
                println!("false out_of_scope rate {r:.3}");
            }
            println!(
                "{:<24} {:>7} {:>9} {:>7} {:>7}",
                "intent", "support", "precision", "recall", "f1"
            );
            for (intent, s) in &report.per_intent {
                println!(
                    "{intent:<24} {:>7} {:>9.3} {:>7.3} {:>7.3}",
                    s.support, s.precision, s.recall, s.f1
                );
            }
            if !report.confusions.is_empty() {
                println!("most frequent confusions (gold -> predicted):");
                for (gold, predicted, n) in &report.confusions {
                    println!("  {gold} -> {predicted}: {n}");
                }
            }
            if let Some(error) = report.expected_calibration_error {
                println!(
                    "confidence of intents decided by vote (expected calibration error {error:.3}):"
                );
                println!(
                    "  {:<9} {:>8} {:>15} {:>9}",
                    "bin", "messages", "mean confidence", "accuracy"
                );
                for bin in &report.reliability {
                    println!(
                        "  {:.1}-{:.1}   {:>8} {:>15.3} {:>9.3}",
                        bin.from, bin.to, bin.messages, bin.mean_confidence, bin.accuracy
                    );
                }
            }
        }
        EvalWhat::Retrieval {
            dataset,
            rows,
            tune,
            format,
        } => {
            let set = rows.select(index::eval::read_retrieval_set(&dataset)?);
            let report =
                index::eval::evaluate_retrieval(&generation, &embedder, &set, &Filter::default())?;
            let tuned = if tune {
                Some(index::eval::tune_weights(&generation, &embedder, &set)?)
            } else {
                None
            };
            if format == TextOrJson::Json {
                let json = serde_json::json!({"report": report, "tuned": tuned.map(|(w, s)| serde_json::json!({"weights": w, "hybrid": s}))});
                println!("{}", serde_json::to_string_pretty(&json)?);
                return Ok(());
            }
            println!("{} queries", report.queries);
            println!(
                "{:<8} {:>8} {:>10} {:>7}",
                "mode", "nDCG@10", "Recall@10", "MRR"
            );
            for (mode, s) in &report.modes {
                println!(
                    "{mode:<8} {:>8.3} {:>10.3} {:>7.3}",
                    s.ndcg_at_10, s.recall_at_10, s.mrr
                );
            }
            if !report.unknown_keys.is_empty() {
                println!(
                    "judged keys missing from the index: {}",
                    report.unknown_keys.join(", ")
                );
            }
            if let Some((w, s)) = tuned {
                println!(
                    "tuned BM25 weights: product {:.1}, policy {:.1}, article {:.1} -> hybrid nDCG@10 {:.3}, Recall@10 {:.3}, MRR {:.3}",
                    w.product, w.policy, w.article, s.ndcg_at_10, s.recall_at_10, s.mrr
                );
            }
        }
    }
    Ok(())
}

fn progress_bar(total: u64) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    }
}

/// A bar of bytes read, shown only on a terminal.
fn ingest_progress_bar() -> ProgressBar {
    let bar = progress_bar(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template"),
    );
    bar
}

/// The ingest's progress callback, moving `bar`.
fn advance(bar: &ProgressBar) -> impl FnMut(u64, u64) + '_ {
    |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    }
}

/// The lake's shop when it holds exactly one.
async fn only_shop(lake: &Lake) -> Result<String> {
    let engine = SqlEngine::open(lake).await?;
    let batches = engine
        .query("SELECT DISTINCT shop_id FROM shops ORDER BY shop_id")
        .await?;
    let shops: Vec<String> = pipeline::sql::strings(&batches, "shop_id")?
        .into_iter()
        .flatten()
        .collect();
    match shops.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("the lake holds no shop yet: ingest or sync the store first, or pass --shop"),
        many => bail!(
            "the lake holds {} shops ({}): pass --shop",
            many.len(),
            many.join(", ")
        ),
    }
}

async fn import(
    config: &Config,
    source: &pipeline::helpdesk::Source,
    path: &Path,
    options: ImportOptions,
) -> Result<()> {
    let lake = Lake::open(config.lake_url()?)?;
    let shop = match options.shop {
        Some(shop) => shop,
        None => only_shop(&lake).await?,
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
    let report = pipeline::helpdesk::import(&lake, config, source, path, &shop, &mut classify)
        .await
        .with_context(|| format!("importing {}", path.display()))?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} import into {shop}: {} tickets, {} messages, {} ratings; {} linked to customers, {} to orders, {} classified; rejected {:?}; {} internal notes and {} messages of rejected tickets skipped",
            report.source,
            report.tickets,
            report.messages,
            report.csat,
            report.linked_customers,
            report.linked_orders,
            report.classified,
            report.rejected,
            report.notes_skipped,
            report.skipped_with_ticket
        );
        print_report(&report.ingest);
    }
    Ok(())
}

async fn sync_shopify(
    lake: &Lake,
    config: &Config,
    shop: String,
    full: bool,
    since: Option<String>,
    poll_ms: u64,
) -> Result<pipeline::admin::SyncReport> {
    let base_url = if config.shopify_admin_url.is_empty() {
        format!("https://{shop}")
    } else {
        config.shopify_admin_url.clone()
    };
    let options = pipeline::admin::SyncOptions {
        shop,
        base_url,
        api_version: config.shopify_api_version.clone(),
        token: config.shopify_access_token.clone(),
        full,
        since,
        poll_interval: std::time::Duration::from_millis(poll_ms),
        retry: pipeline::admin::RetryPolicy::default(),
    };
    let bar = progress_bar(0);
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    let mut show = |p: &pipeline::admin::SyncProgress| {
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
    let report = pipeline::admin::sync_shopify(lake, config, &options, &mut show)
        .await
        .with_context(|| format!("syncing {}", options.shop))?;
    bar.finish_and_clear();
    Ok(report)
}

async fn ingest(
    lake: &Lake,
    dir: &Path,
    config: &Config,
) -> Result<pipeline::ingest::IngestReport> {
    let bar = ingest_progress_bar();
    let report = pipeline::ingest::ingest(lake, dir, config, &mut advance(&bar))
        .await
        .with_context(|| format!("ingesting {}", dir.display()))?;
    bar.finish_and_clear();
    Ok(report)
}

fn print_report(report: &pipeline::ingest::IngestReport) {
    println!(
        "ingest {} from {}: {} records read, {} ok, {} quarantined in {:.1}s",
        report.run_id,
        report.source,
        report.records_read,
        report.records_ok,
        report.quarantined,
        report.seconds
    );
    println!(
        "{:<18} {:>10} {:>10} {:>10}",
        "table", "rows", "written", "unchanged"
    );
    for (table, c) in &report.tables {
        println!(
            "{table:<18} {:>10} {:>10} {:>10}",
            c.rows, c.written, c.unchanged
        );
    }
    for (reason, n) in &report.quarantine_reasons {
        println!("quarantined ({reason}): {n}");
    }
}

/// Serves until Ctrl-C or SIGTERM; `demo` adds copy-and-paste examples.
/// The answer server's state over the configured lake, index and state directory.
async fn open_state(config: &Config) -> Result<server::AppState> {
    let lake = Lake::open(config.lake_url()?)?;
    // One single-threaded model per core, each with a worker batching the messages that wait.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let queries = server::embedding::QueryEmbedder::start(
        Arc::new(FastEmbedder::load_instances(&config.assets_dir, cores)?),
        cores,
        config.embedding_batch,
    )?;
    Ok(server::AppState::open(server::Settings::from_config(config), lake, queries).await?)
}

async fn serve(config: &Config, listen: Option<String>, demo: bool) -> Result<()> {
    let state = open_state(config).await?;
    let address = listen.unwrap_or_else(|| config.listen.clone());
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
    print_hits(
        &generation.search(&embedder, question, &Filter::default(), 3)?,
        true,
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

/// The questions the demo answers once the lake is filled.
const DEMO_QUERIES: &[(&str, &str)] = &[
    (
        "What is in the lake?",
        "SELECT (SELECT count(*) FROM products) AS products, (SELECT count(*) FROM variants) AS variants, (SELECT count(*) FROM orders) AS orders, (SELECT count(*) FROM conversations) AS conversations, (SELECT count(*) FROM messages) AS messages",
    ),
    (
        "How are conversations resolved? (the conversation_facts view every report builds on)",
        "SELECT path, outcome, count(*) AS conversations, round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct FROM conversation_facts GROUP BY path, outcome ORDER BY path, conversations DESC",
    ),
    (
        "What do shoppers ask about most, and how often does the AI abstain?",
        "SELECT intent, count(*) AS turns, round(avg(confidence), 2) AS avg_confidence, sum(CASE WHEN abstained THEN 1 ELSE 0 END) AS abstained FROM turns WHERE answer_kind <> 'verification' GROUP BY intent ORDER BY turns DESC LIMIT 8",
    ),
    (
        "CSAT by resolution path",
        "SELECT path, count(csat_score) AS ratings, round(avg(csat_score), 2) AS avg_score, round(100.0 * avg(CASE WHEN csat_score >= 4 THEN 1.0 ELSE 0.0 END), 1) AS pct_4_5 FROM conversation_facts WHERE csat_score IS NOT NULL GROUP BY path ORDER BY avg_score DESC",
    ),
];

async fn demo(config: &Config, store: &Path) -> Result<()> {
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
        let report = ingest(&lake, store, config).await?;
        print_report(&report);
    } else {
        println!(
            "The lake at {} already holds the demo store; querying it.",
            lake.url()
        );
    }
    let engine = SqlEngine::open(&lake).await?;
    for (question, sql) in DEMO_QUERIES {
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
