//! The server's operational state, one type per SQLite file under `state_dir`:
//! [`chat::ChatStore`] (`state.sqlite`: conversations, their messages, verification
//! failures, handoffs, tombstones and the chat outbox) and [`webhooks::WebhookStore`]
//! (`webhooks.sqlite`: acknowledged deliveries waiting for the lake, and the keys of those
//! seen recently), and [`shops::ShopRegistry`] (`shops.sqlite`: the shops served, their
//! credentials sealed). They share their connection setup ([`sqlite`]).
//!
//! Why SQLite and not memory: a restart must not forget who is verified, lose a handoff an
//! agent has not seen, drop a turn before it reached the lake, or lose a delivery Shopify
//! was told we have. Two files because they need different durability: a chat commit may
//! skip the fsync, an acknowledged delivery may not, and the webhook file's one writer (the
//! acknowledger) must never wait for a chat transaction.

pub mod chat;
pub mod shops;
pub mod sqlite;
pub mod webhooks;

pub use chat::ChatStore;
pub use webhooks::WebhookStore;
