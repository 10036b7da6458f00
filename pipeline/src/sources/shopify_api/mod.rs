//! # Syncing a store from the Shopify Admin API
//!
//! Exports and webhooks cover a store that already sends us data; a store being connected
//! for the first time, or one whose webhooks were missed, is read from the GraphQL Admin API.
//! `supportlake sync shopify --shop DOMAIN` does that in two modes:
//!
//! * **full** (the first sync, or `--full`): one bulk operation per resource — products with
//!   their variants, inventory levels, customers, orders with lines, fulfillments and refunds,
//!   and the orders' returns. Shopify runs the query on its side and hands back a JSONL file
//!   in which nested objects are separate lines pointing at their parent (`__parentId`);
//!   `query::Forest` puts them back together.
//! * **incremental** (every later sync): cursor-paginated queries for what changed since the
//!   last sync began (`query: "updated_at:>='…'"`, from two minutes before it), pages sized to stay under Shopify's
//!   1,000-point single-query limit.
//!
//! Either way `client::AdminClient` paces requests by the shop's cost bucket and retries
//! what Shopify asks to be retried; `sync` checkpoints every step so a killed sync resumes
//! where it stopped, and commits the whole sync at the end, one Delta commit per table,
//! through the same mapping (`mapping` to REST shapes, then the export's `shopify` mapping)
//! and the same upsert as every other source.
//!
//! An installed shop is also subscribed to the webhook topics supportlake maps
//! (`subscriptions`), checked again before every scheduled sync.
//!
//! The access token travels only in the `X-Shopify-Access-Token` header: it is never
//! logged, never part of an error and never written to the lake or the staging area.

mod client;
mod mapping;
pub mod oauth;
mod query;
pub mod subscriptions;
mod sync;

pub use client::{ClientStats, RetryPolicy, Throttle};
pub use sync::{SyncOptions, SyncProgress, SyncReport, last_synced, sync_dir, sync_shopify};
