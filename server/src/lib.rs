//! # server — the answer server (Axum)
//!
//! The shopper-facing side of supportlake: the chat API that verifies before it reveals,
//! answers from the lake's system-of-record rows and the index's passages, and hands off to a
//! person with the whole context; the Shopify webhook receiver; the analyst SQL/report API;
//! and the web pages. It depends on [`index`] and [`pipeline`], never the other way round.
//!
//! This crate is where the answer-server issue lands; today it only fixes the dependency
//! direction of the workspace (server → index → pipeline), which the binary relies on.

pub use index;
pub use pipeline;
