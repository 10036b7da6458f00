//! Every way data comes into the lake, one module each. Each maps what it reads to
//! [`Rows`] (or to a quarantine reason) with the same per-object mapping (the export's
//! `shopify` module), so an order reads the same whichever way it arrived.
//!
//! * [`export`] — a directory of Shopify-format exports (product CSV, Admin API JSON/JSONL,
//!   supportlake's conversation export): what `supportlake ingest` reads.
//! * [`shopify_api`] — `supportlake sync shopify`: the GraphQL Admin API, bulk and incremental.
//! * [`helpdesk`] — `supportlake import zendesk|gorgias|csv`: past tickets as conversations.
//! * [`webhooks`] — Shopify webhook deliveries and what each topic does to the lake.

pub mod export;
pub mod helpdesk;
pub mod shopify_api;
pub mod webhooks;

pub use export::{Context, Rows};
