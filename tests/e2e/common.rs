//! Running the `supportlake` binary as a user does, shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (tests run the binary from there, as the README does).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `supportlake ARGS` against the lake at `lake`.
pub fn supportlake(lake: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_supportlake"))
        .current_dir(root())
        .env("SUPPORTLAKE_LAKE_URL", lake)
        .env_remove("SUPPORTLAKE_LOG")
        .args(args)
        .output()
        .expect("run supportlake")
}

/// Runs `supportlake ARGS`, which must succeed, and returns its standard output.
pub fn ok(lake: &Path, args: &[&str]) -> String {
    let output = supportlake(lake, args);
    assert!(
        output.status.success(),
        "supportlake {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Copies a lake or index directory tree, for a test that changes its own copy.
#[allow(dead_code, reason = "not every test binary works on a private copy")]
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The rows of a query over the lake at `lake`, as JSON objects.
#[allow(dead_code, reason = "not every test binary queries the lake")]
pub fn sql_json(lake: &Path, query: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&ok(lake, &["sql", query, "--format", "json"])).expect("JSON rows")
}
