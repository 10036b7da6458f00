//! # pipeline — the lake and everything that fills and reads it
//!
//! supportlake keeps a Shopify store's support data in a lake of Delta tables (Parquet files
//! plus a transaction log), so that any engine — DataFusion here, Spark, DuckDB, pandas
//! elsewhere — can read it. This crate owns that lake.
//!
//! ## Layout
//!
//! * [`config`] — the one typed configuration (file, `SUPPORTLAKE_*` env, flags).
//! * [`lake`] — the tables ([`lake::schema::TABLES`]: explicit Arrow schemas, keys,
//!   partitioning) and [`lake::Lake`], which writes each batch as one Delta commit with a
//!   keyed, `updated_at`-ordered upsert; the typed rows of the support tables
//!   ([`lake::rows`]) and their vocabularies ([`lake::vocab`]).
//! * [`sources`] — every way data comes in, one module each:
//!   * [`sources::export`] — a directory of Shopify-format exports (product CSV, Admin API
//!     JSON/JSONL, conversation exports). Each record maps to rows or to a quarantine reason.
//!   * [`sources::shopify_api`] — `sync shopify`: the GraphQL Admin API (bulk operations,
//!     incremental pages, the cost-based rate limit), checkpointed and committed once per table.
//!   * [`sources::helpdesk`] — `import zendesk|gorgias|csv`: past tickets as conversations.
//!   * [`sources::webhooks`] — Shopify webhook deliveries, mapped to rows, deletions and
//!     privacy requests.
//! * [`ingest`] — the run: stream records, buffer per table, commit, quarantine, log the run.
//! * [`privacy`] — the compliance requests: redact or export a customer, redact a shop.
//! * [`pii`] — what the lake keeps instead of personal data (keyed hashes, masks, redaction).
//! * [`ids`] — stable ids for formats that carry none.
//! * [`text`] — readable text, sections, slugs and passage keys out of the store's HTML.
//! * [`sql`] — read-only SQL over every table and the analyst views.
//! * [`report`] — the support reports: shipped SQL files with their definitions, parameters
//!   bound at run time, output as table, CSV, JSON or a standalone HTML page.
//! * [`intents`] — the canonical intents, read from the `intents` view's SQL.
//!
//! The demo store that `supportlake generate` writes is the `demo-store` crate: it writes
//! the formats these sources read, and is compiled only into the binary.
//!
//! ## The flow of a record
//!
//! `orders.jsonl` line → [`sources::export::ExportDir::read_file`] parses it → the export's
//! `shopify::order` maps it to `orders`, `order_lines`, `fulfillments`, `refunds`, `returns`
//! rows (emails become keyed hashes) or to a quarantine reason → [`ingest`] decodes the rows
//! into Arrow batches against each table's schema and gathers them per table →
//! [`lake::Lake::write`] keeps the new-or-newer rows and commits them → [`sql::SqlEngine`]
//! reads them back by table name.

pub mod config;
mod error;
pub mod ids;
pub mod ingest;
pub mod intents;
pub mod lake;
pub mod pii;
pub mod privacy;
pub mod report;
pub mod sources;
pub mod sql;
pub mod text;

pub use config::Config;
pub use error::{PipelineError, Result};
pub use lake::Lake;
