//! The end-to-end tests: the `supportlake` binary run as users run it, against real lakes,
//! a real index (the real embedding model), the Shopify replay and real sockets.
//!
//! One test binary rather than one per file: the workspace is linked once, and the demo
//! store's lake and index ([`common::demo_index`]), and its two-shop variant the servers run
//! on ([`serving::built`]), are built once per `cargo test` run for every module that needs
//! them. Tests that change a lake or index work on their own copy, so the modules run in
//! parallel in one process; none sets process-wide state (environment, current directory):
//! what a run needs is passed to the subprocess.

mod browser;
mod cli;
mod common;
mod golden;
mod imports;
mod index;
mod install;
mod notebooks;
mod reports;
mod server;
mod serving;
mod sync;
mod webhook_crash;
