//! The real embedding model, loaded through fastembed with ONNX Runtime loaded dynamically.
//! Needs `scripts/fetch-assets` to have run (the test command does it); it fails, not skips,
//! without them, because a silently skipped model test proves nothing.

use std::path::PathBuf;

use index::{Embedder, FastEmbedder, cosine};

fn assets_dir() -> PathBuf {
    std::env::var_os("SUPPORTLAKE_ASSETS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vendor"))
}

#[test]
fn order_tracking_is_closer_to_tracking_than_to_returns() {
    let embedder =
        FastEmbedder::load(&assets_dir()).expect("load the model: run scripts/fetch-assets first");
    let vectors = embedder
        .embed(&["where is my order", "track my package", "return policy"])
        .unwrap();
    assert_eq!(vectors.len(), 3);
    assert!(vectors.iter().all(|v| v.len() == embedder.dimension()));
    let norm: f32 = vectors[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() < 1e-3,
        "vectors are normalised, got norm {norm}"
    );
    let to_tracking = cosine(&vectors[0], &vectors[1]);
    let to_returns = cosine(&vectors[0], &vectors[2]);
    assert!(
        to_tracking > to_returns + 0.1,
        "tracking {to_tracking} vs returns {to_returns}"
    );
}

#[test]
fn a_missing_runtime_is_an_error_not_a_panic() {
    let err = FastEmbedder::load(std::path::Path::new("/nonexistent-assets")).unwrap_err();
    assert!(err.to_string().contains("fetch-assets"), "{err}");
}
