//! The command line: clap's types for every command, its flags and their value parsers.
//! What a command does is in [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pipeline::report::ReportFormat;
use pipeline::sql::Format;

#[derive(Debug, Parser)]
#[command(
    name = "supportlake",
    version,
    about = "A Shopify store's support as data and answers"
)]
pub struct Cli {
    /// Config file (default: ./supportlake.toml when present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Lake location, a URL or a path (overrides config and SUPPORTLAKE_LAKE_URL).
    #[arg(long, global = true)]
    pub lake: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// The shops this server serves (the shop registry in `state_dir/shops.sqlite`, its
    /// credentials sealed under `master_key`). A custom app's shop is added here.
    Shops {
        #[command(subcommand)]
        action: ShopsAction,
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
pub enum ShopsAction {
    /// Every shop with its status, grant and origins (never a credential).
    List,
    /// Install a shop of a custom app, or change one's settings: the fixed Admin token,
    /// the storefront secret its theme signs shopper tokens with (a new random one is made
    /// and printed once when the shop has none), and the storefront origins that may call
    /// the chat API directly.
    Add {
        /// The shop's `*.myshopify.com` domain.
        domain: String,
        /// The custom app's Admin API access token (`shpat_…`).
        #[arg(long)]
        token: Option<String>,
        /// The storefront secret (default: keep the shop's, or make one).
        #[arg(long)]
        storefront_secret: Option<String>,
        /// A storefront origin besides `https://<domain>`, e.g. the shop's custom domain
        /// (`https://shop.example.com`); repeat for more. Replaces the shop's list; left
        /// out, the list stays as it is.
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// The Admin API scopes the token grants, comma-separated.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// Forget a shop and its credentials. Its webhooks are refused from then on, `shop/redact`
    /// too: to erase its data, let `shop/redact` arrive before removing it.
    Remove { domain: String },
    /// Seal every shop's credentials under `master_key` after a rotation; then
    /// `previous_master_key` can be removed.
    Rekey,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksAction {
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
pub enum ImportFormat {
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
pub struct ImportOptions {
    /// The shop the tickets belong to (default: the lake's only shop).
    #[arg(long)]
    pub shop: Option<String>,
    /// Print the report as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SyncSource {
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
pub enum IndexAction {
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
pub enum EvalWhat {
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

/// `--rows`: which rows of an evaluation set to score ([`index::eval::Rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rows {
    All,
    Odd,
    Even,
}

impl From<Rows> for index::eval::Rows {
    fn from(rows: Rows) -> Self {
        match rows {
            Rows::All => Self::All,
            Rows::Odd => Self::Odd,
            Rows::Even => Self::Even,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TextOrJson {
    Text,
    Json,
}

fn doc_type(text: &str) -> Result<index::documents::DocType, String> {
    index::documents::DocType::parse(text)
        .ok_or_else(|| format!("unknown doc type {text:?} (product, policy or article)"))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
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
pub enum ReportFormatArg {
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
