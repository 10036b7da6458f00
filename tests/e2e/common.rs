//! Running the `supportlake` binary as a user does, and the demo store's lake and index that
//! the tests share: each is made once per test run, whichever test asks first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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

/// Runs `supportlake ARGS` against the lake at `lake` and the index at `index`.
pub fn with_index(lake: &Path, index: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_supportlake"))
        .current_dir(root())
        .env("SUPPORTLAKE_LAKE_URL", lake)
        .env("SUPPORTLAKE_INDEX_DIR", index)
        .env_remove("SUPPORTLAKE_LOG")
        .args(args)
        .output()
        .expect("run supportlake")
}

/// [`with_index`], which must succeed; its standard output.
pub fn ok_with_index(lake: &Path, index: &Path, args: &[&str]) -> String {
    let output = with_index(lake, index, args);
    assert!(
        output.status.success(),
        "supportlake {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The demo store (`data/demo-store`) ingested once per test run. Tests only read it; a test
/// that writes works on a [`testkit::copy_dir`] of it.
pub fn demo_lake() -> &'static Path {
    static LAKE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &LAKE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let lake = dir.path().join("lake");
            ok(&lake, &["ingest", "data/demo-store"]);
            (dir, lake)
        })
        .1
}

/// The demo lake and an index built from it with the real model, once per test run
/// (building embeds every passage and intent example). Tests only read them.
pub struct DemoIndex {
    _dir: tempfile::TempDir,
    pub lake: PathBuf,
    pub index: PathBuf,
}

pub fn demo_index() -> &'static DemoIndex {
    static BUILT: OnceLock<DemoIndex> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let lake = demo_lake().to_path_buf();
        let index = dir.path().join("index");
        let out = ok_with_index(&lake, &index, &["index", "build"]);
        assert!(out.contains("switched to gen-000001"), "{out}");
        DemoIndex {
            _dir: dir,
            lake,
            index,
        }
    })
}

/// The rows of a query over the lake at `lake`, as JSON objects.
pub fn sql_json(lake: &Path, query: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&ok(lake, &["sql", query, "--format", "json"])).expect("JSON rows")
}
