//! The `supportlake` command: parses flags and hands off to the library crates.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
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
    /// Ingest the bundled demo store into the lake (if it is empty) and answer a few questions with SQL.
    Demo {
        /// Demo store directory.
        #[arg(long, default_value = "data/demo-store")]
        store: PathBuf,
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
    /// List the lake's tables with their row counts.
    Tables,
    /// Print the resolved configuration.
    Config,
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
                .unwrap_or_else(|_| "warn".into()),
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
        Command::Generate { scale, seed, out } => {
            let bar = progress_bar(0);
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
            let summary = pipeline::generate::generate(scale, seed, &out, |what, n| {
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
                let result = index::report::run_report(&engine, &name, &args, || {
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
        Command::Config => print!("{}", toml::to_string_pretty(&config)?),
        Command::Demo { store } => demo(&config, &store).await?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn progress_bar(total: u64) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    }
}

async fn ingest(
    lake: &Lake,
    dir: &Path,
    config: &Config,
) -> Result<pipeline::ingest::IngestReport> {
    let bar = progress_bar(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template"),
    );
    let report = pipeline::ingest::ingest(lake, dir, config, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
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
    Ok(())
}
