//! What happens behind the requests: the applier takes acknowledged deliveries to the lake
//! and wakes the refresher, and `webhooks replay` loads a model only for an index update.
//! Each test works on its own copy of the fixture's lake and index, since it changes them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use index::HashingEmbedder;
use pipeline::{Config, Lake};
use testkit::{SHOP_A, SHOP_B, copy_dir};

use super::{Server, fixture};
use crate::lake_writer::applier::{IndexFollow, Outbox};
use crate::lake_writer::replay::replay;
use crate::shopify::webhook::sign;
use crate::state::shops::{Credentials, ShopKind, ShopStatus};
use crate::{AppState, QueryEmbedder};

/// Shopify's own example payloads, one per topic.
const PAYLOADS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/shopify/webhooks/2026-04"
);

/// How long a test waits for background work before it fails: a bound, not a measurement.
const PATIENCE: Duration = Duration::from_secs(60);

/// A configuration over copies of the fixture's lake and index in `dir`, and an assets
/// directory with no model in it.
fn own_copy(dir: &Path) -> Config {
    let fixture = fixture();
    copy_dir(Path::new(&fixture.lake_url), &dir.join("lake"));
    copy_dir(&fixture.index_dir, &dir.join("index"));
    Config {
        lake_url: dir.join("lake").to_str().unwrap().to_string(),
        index_dir: dir.join("index"),
        assets_dir: dir.join("no-model"),
        ..fixture.config(&dir.join("state"))
    }
}

/// A folder holding one of Shopify's example payloads as a bare replay file.
fn captures(dir: &Path, file: &str) -> PathBuf {
    let folder = dir.join(file.trim_end_matches(".json"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(Path::new(PAYLOADS).join(file), folder.join(file)).unwrap();
    folder
}

/// A server over its own copy of the fixture (it may change the lake), and its applier.
async fn own_server(dir: &Path) -> (Server, crate::lake_writer::applier::Applier) {
    let config = own_copy(dir);
    let lake = Lake::open(config.lake_url().unwrap()).unwrap();
    let queries =
        QueryEmbedder::start(Arc::new(HashingEmbedder), 1, config.embedding_batch).unwrap();
    let state = AppState::open(&config, lake, queries).await.unwrap();
    let applier = state.applier().unwrap();
    (Server::over(state), applier)
}

impl Server {
    /// Delivers Shopify's example payload for `topic` as `shop`'s webhook, signed; it must
    /// be accepted.
    async fn deliver(&self, shop: &str, topic: &str, id: &str) {
        let file = format!("{}.json", topic.replace('/', "__"));
        let body = std::fs::read(Path::new(PAYLOADS).join(file)).unwrap();
        let signature = sign(&self.state.config().shopify_client_secret, &body);
        let delivered = self
            .call(
                Method::POST,
                "/webhooks/shopify",
                &[
                    ("content-type", "application/json"),
                    ("x-shopify-topic", topic),
                    ("x-shopify-shop-domain", shop),
                    ("x-shopify-webhook-id", id),
                    ("x-shopify-hmac-sha256", &signature),
                ],
                body,
            )
            .await;
        assert_eq!(
            delivered.status,
            StatusCode::OK,
            "{topic}: {}",
            delivered.body
        );
    }
}

#[tokio::test]
async fn uninstalling_the_app_stops_serving_that_shop_and_drops_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (server, applier) = own_server(dir.path()).await;
    server.chat(SHOP_B, None, "do you sell tents").await;
    server
        .deliver(SHOP_B, "app/uninstalled", "in-memory-uninstall")
        .await;
    applier.drain(Outbox::Webhooks).await.unwrap();

    let refused = server
        .post(
            "/v1/chat",
            &serde_json::json!({"shop": SHOP_B, "message": "do you sell tents"}),
        )
        .await;
    assert_eq!(
        refused.error(),
        (404, Some("unknown_shop")),
        "{}",
        refused.body
    );
    let record = server.state.shops().get(SHOP_B).unwrap();
    assert_eq!(record.status, ShopStatus::Uninstalled);
    assert_eq!(record.credentials, Credentials::default(), "tokens dropped");
    // The other shop is untouched, and the uninstalled one's later compliance webhook
    // (shop/redact comes 48 hours on) is still taken.
    server.chat(SHOP_A, None, "do you sell tents").await;
    server
        .deliver(SHOP_B, "shop/redact", "in-memory-redact")
        .await;
}

#[tokio::test]
async fn a_replay_loads_the_model_only_when_the_index_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = own_copy(dir.path());
    crate::state::shops::ShopRegistry::open_configured(&config)
        .unwrap()
        .install(
            SHOP_A,
            ShopKind::Custom,
            Vec::new(),
            Credentials::default(),
            chrono::Utc::now(),
        )
        .unwrap();

    // An order changes no passage: applied without a model (the assets folder is empty).
    let orders = replay(
        &config,
        &captures(dir.path(), "orders__create.json"),
        Some(SHOP_A),
    )
    .await
    .unwrap();
    assert_eq!((orders.accepted, orders.refused.len()), (1, 0), "{orders}");
    assert_eq!(
        orders.applied,
        Some((1, IndexFollow::NotNeeded)),
        "{orders}"
    );

    // A product does: the update asks for the model, which is not there, and says so.
    let products = replay(
        &config,
        &captures(dir.path(), "products__update.json"),
        Some(SHOP_A),
    )
    .await
    .unwrap();
    assert_eq!(
        (products.accepted, products.refused.len()),
        (1, 0),
        "{products}"
    );
    // (The count may include the order again: this run's applier takes entries from the
    // outbox's start and skips, by the lake's marks, what the last run applied.)
    match &products.applied {
        Some((_, IndexFollow::Failed(error))) => assert!(
            error.contains("no-model"),
            "the failure names the missing assets: {error}"
        ),
        other => panic!("a product update needs the model: {other:?}"),
    }
}

#[tokio::test]
async fn the_applier_wakes_the_refresher_as_soon_as_it_has_changed_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let (server, applier) = own_server(dir.path()).await;
    let state = server.state.clone();
    let before = state.snapshot().stamp.clone();

    // The refresher's own tick is an hour away: only the applier's wake-up can reload now.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let refresher = tokio::spawn(crate::refresher(
        state.clone(),
        applier.changes(),
        Duration::from_secs(3600),
        stopped,
    ));

    server
        .deliver(SHOP_A, "orders/create", "in-memory-wake-up")
        .await;
    let applied = applier.drain(Outbox::Webhooks).await.unwrap();
    assert!(applied.changed.contains("orders"), "{applied:?}");
    assert_eq!(
        applier.follow(&applied.changed).await,
        IndexFollow::NotNeeded
    );

    let waited = tokio::time::timeout(PATIENCE, async {
        while state.snapshot().stamp == before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "the snapshot is still of table versions {before:?}: the refresher was not woken"
    );
    let reloaded = state.snapshot();
    assert!(
        reloaded.orders_of(SHOP_A, 115310627314723954).len() == 1,
        "the delivered order is in the reloaded snapshot"
    );
    stop.send(true).unwrap();
    refresher.await.unwrap();
}
