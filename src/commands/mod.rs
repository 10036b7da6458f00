//! Each command's glue: it calls one library function, shows progress on a terminal and
//! prints what came back (every result type knows how to print itself).

pub mod eval;
pub mod index;
pub mod lake;
pub mod report;
pub mod serve;
pub mod shops;
pub mod sources;

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar that draws only on a terminal, so piped and logged output stays clean.
fn progress_bar(total: u64) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    }
}

/// A spinner with a message, for work whose size is not known up front.
fn spinner() -> ProgressBar {
    let bar = progress_bar(0);
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    bar
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
