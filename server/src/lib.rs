//! # server — the answer server (Axum)
//!
//! The shopper-facing side of supportlake: a chat API that verifies before it reveals,
//! answers from the store's system of record and its knowledge with sources, says what it
//! does not know, and hands off to a person with the whole context. It depends on [`index`]
//! and [`pipeline`], never the other way round.
//!
//! Five rooms: `http` (everything that knows HTTP: the [`router`], the handlers, the
//! OpenAPI table, the pages), `conversation` (the rules, with no HTTP in them: a turn, the
//! handoff packet, verification, the answers, the commerce snapshot), `shopify` (what
//! Shopify signs and how it is checked), `state` (one type per SQLite file) and
//! `lake_writer` (what takes the server's records and Shopify's deliveries to the lake,
//! off the request path). [`AppState`] holds what they share.
//!
//! ## A message's way through
//!
//! `POST /v1/chat` (`http::chat`) checks the body (stable error codes, [`AppError`]),
//! resolves the shop and any signed storefront token (`conversation::verification`),
//! then, off the async runtime, embeds the message once and uses that vector twice: the
//! intent classifier and the hybrid search of the live index generation. One transaction
//! of the chat store (`state::chat`, `state.sqlite`) then runs the turn
//! (`conversation::turn`): it loads the conversation, lets `conversation::answer` compose
//! the reply from the in-memory snapshot of orders, shipments, refunds, stock and the
//! return window (`conversation::commerce`), escalates when it must (a handoff with its
//! packet, `conversation::handoff`), saves the new state, and queues the turn's lake rows
//! (`lake_writer::records`) in the chat outbox. The applier (`lake_writer::applier`)
//! writes those to Delta in the background, so a shopper never waits on a lake commit and
//! a restart loses nothing.
//!
//! ## A webhook's way through
//!
//! `POST /webhooks/shopify` (`http::webhooks`) checks the headers, the HMAC signature and
//! the shop (`shopify::webhook`), then hands the delivery to the acknowledger (`lake_writer::acknowledger`),
//! which commits it with the others that arrived meanwhile (one fsync for the group) into
//! the webhook store's outbox (`state::webhooks`, `webhooks.sqlite`), dropping repeats of
//! an event already held, and only then answers 200. The applier maps it into the lake
//! ([`pipeline::sources::webhooks`]) with the outbox position in the same Delta commit, carries out
//! deletions and privacy requests ([`pipeline::privacy`]), and updates the index and the
//! commerce snapshot when the catalog or policies changed. [`replay`] feeds captured
//! deliveries through the same checks, acknowledger and applier without a server.
//!
//! ## The pages
//!
//! `http::pages` serves what people look at — the chat widget (`/widget.js`) on a demo
//! storefront (`/`), the agents' handoff inbox (`/inbox`) and the analysts' dashboard
//! (`/dashboard`) with the report API behind it (`/v1/reports`, `http::reports`) — as
//! plain HTML and JavaScript compiled in, using the same JSON API as any client.
//!
//! ## What runs beside the requests
//!
//! * the applier (chat outbox → lake every five seconds, webhook outbox → lake every
//!   second, and a last flush of both on shutdown);
//! * the syncer (`lake_writer::syncer`): each installed shop with an Admin token is
//!   subscribed to its webhooks and synced from the Admin API, in full after its install,
//!   then every `sync_every_seconds`;
//! * a token keeper that refreshes expiring Admin tokens ahead of their expiry;
//! * a refresher that switches to a new index generation when `CURRENT` moves (after
//!   `supportlake rebuild`) and reloads the commerce snapshot when a commerce table's Delta
//!   version changes, at once when the applier has changed them.
//!
//! Operational state is in two SQLite files under `state_dir` (`state.sqlite` for chats,
//! `webhooks.sqlite` for deliveries); answer state never lives only in memory.

mod conversation;
mod embedding;
mod error;
mod http;
mod lake_writer;
mod metrics;
mod shopify;
mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use index::bm25::Filter;
use index::generation::{Generation, IndexDir};
use index::search::Mode;
use index::{FastEmbedder, IndexError};
use pipeline::{Config, Lake};

pub use conversation::commerce::{Shop, Snapshot};
pub use embedding::QueryEmbedder;
pub use error::{AppError, ServerError};
pub use http::router;
pub use lake_writer::replay::{Replayed, replay};
pub use shopify::oauth::fresh_token;
pub use state::shops;

use crate::conversation::answer::{self, Cited, Source, Understanding};
use crate::lake_writer::acknowledger::Acknowledger;
use crate::lake_writer::applier::{Applier, Model};
use crate::lake_writer::syncer::Syncer;
use crate::metrics::Metrics;
use crate::state::shops::ShopRegistry;
use crate::state::{ChatStore, WebhookStore};

/// Passages retrieved per turn (recorded with their scores; the best are cited).
const RETRIEVED: usize = 5;
/// How often the refresher looks for a new index generation or changed commerce tables.
const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// How often the applier writes chat records into the lake: soon enough for reports on live
/// chat, seldom enough that the commits stay few and large (each costs about the same
/// whatever its size; every second cost 15% of the server's capacity, BENCHMARKS.md).
const RECORD_EVERY: Duration = Duration::from_secs(5);
/// How often the applier applies webhook deliveries: store changes should reach answers
/// within seconds. An empty outbox costs one SQLite read.
const APPLY_EVERY: Duration = Duration::from_secs(1);

/// The live index generation with what answering looks up in it.
#[derive(Debug)]
pub(crate) struct LoadedIndex {
    pub(crate) generation: Generation,
    /// `(handle, title)` of its products, for entity extraction.
    products: HashMap<String, Vec<(String, String)>>,
    /// `(shop, key)` → passage: a key is unique within a shop only, and a shop's answer must
    /// never cite another's passage.
    by_key: HashMap<(String, String), usize>,
}

impl LoadedIndex {
    fn new(generation: Generation) -> Self {
        let mut products: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for p in &generation.passages {
            products
                .entry(p.shop_id.clone())
                .or_default()
                .extend(generation.product_title(p));
        }
        let by_key = generation
            .passages
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.shop_id.clone(), p.key.clone()), i))
            .collect();
        Self {
            generation,
            products,
            by_key,
        }
    }

    /// `(handle, title)` of `shop`'s products.
    pub(crate) fn products_of(&self, shop: &str) -> &[(String, String)] {
        self.products.get(shop).map_or(&[], Vec::as_slice)
    }

    /// A whole passage of `shop` by key.
    pub(crate) fn passage(&self, shop: &str, key: &str) -> Option<Cited> {
        let p =
            &self.generation.passages[*self.by_key.get(&(shop.to_string(), key.to_string()))?];
        Some(Cited {
            source: Source {
                doc_key: p.key.clone(),
                title: p.title.clone(),
                url: p.url.clone(),
                snippet: p.text.chars().take(240).collect(),
            },
            text: p.text.clone(),
        })
    }
}

/// Everything a request handler reaches; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    chat: Arc<ChatStore>,
    webhooks: Arc<WebhookStore>,
    acknowledger: Acknowledger,
    shops: Arc<ShopRegistry>,
    lake: Lake,
    queries: QueryEmbedder,
    snapshot: RwLock<Arc<Snapshot>>,
    index: RwLock<Option<Arc<LoadedIndex>>>,
    metrics: Metrics,
    /// Wakes the syncer: a shop was just installed.
    sync_wake: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("lake", &self.lake.url().as_str())
            .field("index_dir", &self.config.index_dir)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The server over the configured lake, index and state directory, with one
    /// single-threaded embedding model per core, each with a worker batching the messages
    /// that wait.
    pub async fn from_config(config: &Config) -> Result<Self, ServerError> {
        let lake = Lake::open(config.lake_url()?)?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let queries = QueryEmbedder::start(
            Arc::new(FastEmbedder::load_instances(&config.assets_dir, cores)?),
            cores,
            config.embedding_batch,
        )?;
        Self::open(config, lake, queries).await
    }

    /// Opens the state stores, reads the commerce snapshot and loads the live generation
    /// (if any: without one the server starts but `/readyz` says not ready). Takes the
    /// query embedder as it is, so a caller may bring its own model.
    pub async fn open(
        config: &Config,
        lake: Lake,
        queries: QueryEmbedder,
    ) -> Result<Self, ServerError> {
        let chat = Arc::new(ChatStore::open(&config.state_dir)?);
        let webhooks = Arc::new(WebhookStore::open(&config.state_dir)?);
        let acknowledger = Acknowledger::start(webhooks.clone())?;
        let shops = Arc::new(ShopRegistry::open_configured(config)?);
        let snapshot = Snapshot::load(&lake).await?;
        let index = match IndexDir::new(&config.index_dir).open_current() {
            Ok(generation) => Some(Arc::new(LoadedIndex::new(generation))),
            Err(IndexError::NoIndex(_)) => None,
            Err(other) => return Err(other.into()),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                chat,
                webhooks,
                acknowledger,
                shops,
                lake,
                queries,
                snapshot: RwLock::new(Arc::new(snapshot)),
                index: RwLock::new(index),
                metrics: Metrics::default(),
                sync_wake: Arc::default(),
            }),
        })
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The chat store (`state.sqlite`).
    pub(crate) fn chat(&self) -> &ChatStore {
        &self.inner.chat
    }

    pub(crate) fn lake(&self) -> &Lake {
        &self.inner.lake
    }

    /// The embedding model the query workers use (index updates and reports share it).
    pub(crate) fn model(&self) -> Arc<dyn index::Embedder> {
        self.inner.queries.model()
    }

    /// The webhook store (acknowledged deliveries waiting for the lake).
    pub(crate) fn webhooks(&self) -> &WebhookStore {
        &self.inner.webhooks
    }

    /// The shops served (`shops.sqlite`).
    pub(crate) fn shops(&self) -> &ShopRegistry {
        &self.inner.shops
    }

    pub(crate) fn acknowledger(&self) -> &Acknowledger {
        &self.inner.acknowledger
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Starts the syncer's next look now (after an install).
    pub(crate) fn wake_syncer(&self) {
        self.inner.sync_wake.notify_one();
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner
            .snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The live generation, or "not ready" when none is built.
    pub(crate) fn index(&self) -> Result<Arc<LoadedIndex>, ServerError> {
        self.inner
            .index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                ServerError::NotReady(
                    "no index generation yet: run `supportlake index build`".into(),
                )
            })
    }

    /// Embeds `message` once ([`QueryEmbedder`], batched with other shoppers' messages) and
    /// uses the vector for both the classifier and the search, on a blocking thread.
    pub(crate) async fn understand(
        &self,
        index: Arc<LoadedIndex>,
        message: String,
        shop: String,
    ) -> Result<Understanding, ServerError> {
        let vector = self.inner.queries.embed(message.clone()).await?;
        tokio::task::spawn_blocking(move || {
            let generation = &index.generation;
            let classification = generation.classifier().classify(&message, &vector);
            let entities = index::classifier::entities(&message, index.products_of(&shop));
            let filter = Filter {
                shop: Some(shop),
                doc_types: Vec::new(),
            };
            let hits = generation.search_vector(
                &message,
                &vector,
                &filter,
                RETRIEVED,
                Mode::Hybrid,
                None,
            )?;
            let (intent, confidence, decided_by) = answer::reconsider(
                classification.intent,
                classification.confidence,
                classification.decided_by,
                &hits,
            );
            // What decided the intent (the classifier's rule, its model, or the product
            // match) is for the operator, not the answer.
            tracing::debug!(%intent, confidence, decided_by, "understood a message");
            Ok::<_, ServerError>(Understanding {
                intent,
                confidence,
                entities,
                hits,
            })
        })
        .await
        .map_err(|e| ServerError::NotReady(format!("answering task failed: {e}")))?
    }

    /// Reloads the shop registry when another process (`supportlake shops …`) wrote it,
    /// the commerce snapshot when a commerce table changed, then switches to a new
    /// generation when `CURRENT` has moved. Returns (new index, new snapshot).
    async fn refresh(&self) -> Result<(bool, bool), ServerError> {
        match self.inner.shops.reload_if_changed() {
            Ok(true) => {
                tracing::info!(
                    shops = self.inner.shops.all().len(),
                    "reloaded the shop registry"
                );
            }
            Ok(false) => {}
            // The shops loaded before stay served; the index and snapshot still refresh.
            Err(error) => tracing::error!(%error, "the shop registry could not be read again"),
        }
        // The commerce snapshot first: a shopper who finds a new shop's passages finds its
        // orders too.
        let stamp = Snapshot::stamp(&self.inner.lake).await?;
        let new_snapshot = stamp != self.snapshot().stamp;
        if new_snapshot {
            let snapshot = Snapshot::load(&self.inner.lake).await?;
            tracing::info!(orders = snapshot.orders(), "reloaded the commerce snapshot");
            *self
                .inner
                .snapshot
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(snapshot);
        }
        let dir = IndexDir::new(&self.inner.config.index_dir);
        let live = self.index().ok().map(|i| i.generation.name.clone());
        let current = dir.current()?;
        let new_index = current.is_some() && current != live;
        if new_index {
            let generation = dir.open_current()?;
            tracing::info!(generation = %generation.name, "switched to a new index generation");
            *self
                .inner
                .index
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(Arc::new(LoadedIndex::new(generation)));
        }
        Ok((new_index, new_snapshot))
    }

    /// The scheduled syncs of the installed shops, waking `changes` when they changed the
    /// lake.
    fn syncer(&self, changes: Arc<tokio::sync::Notify>) -> Syncer {
        let inner = &self.inner;
        Syncer::new(
            &inner.config,
            inner.lake.clone(),
            inner.shops.clone(),
            Model::Shared(self.model()),
            changes,
            inner.sync_wake.clone(),
        )
    }

    /// The applier of this server's outboxes (fails when another process runs one on the
    /// same state directory).
    fn applier(&self) -> Result<Applier, ServerError> {
        let inner = &self.inner;
        Applier::new(
            &inner.config,
            inner.lake.clone(),
            inner.chat.clone(),
            inner.webhooks.clone(),
            inner.acknowledger.clone(),
            inner.shops.clone(),
            Model::Shared(self.model()),
        )
    }
}

/// Locks `mutex`, also after a panic elsewhere poisoned it: every value guarded in this crate
/// is consistent between statements (and a SQLite connection rolls back a half
/// transaction), so a poisoned lock is safe to keep using.
pub(crate) fn unpoisoned<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The lake thread's niceness: a nice-10 thread gets about a tenth of a core that requests
/// also want, and all of an idle one.
#[cfg(target_os = "linux")]
const LAKE_NICENESS: i32 = 10;

/// Lowers the calling thread's priority (on Linux, niceness is per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), LAKE_NICENESS)
    {
        tracing::debug!(%error, "could not lower the lake thread's priority");
    }
}

/// Refreshes `state` ([`AppState::refresh`]) every `every`, and at once when `changes` is
/// notified (the applier has changed the lake), until `stop` changes.
async fn refresher(
    state: AppState,
    changes: Arc<tokio::sync::Notify>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = changes.notified() => {}
            _ = stop.changed() => break,
        }
        if let Err(error) = state.refresh().await {
            tracing::warn!(%error, "refresh failed; keeping the loaded index and snapshot");
        }
    }
}

/// How often the token keeper looks for Admin tokens about to expire.
const KEEP_TOKENS_EVERY: Duration = Duration::from_secs(60);

/// Refreshes the installed shops' expiring Admin tokens ahead of their expiry
/// ([`shopify::oauth::keep_fresh`]) every minute until `stop` changes.
async fn token_keeper(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        shopify::oauth::keep_fresh(state.config(), state.shops()).await;
        tokio::select! {
            _ = tokio::time::sleep(KEEP_TOKENS_EVERY) => {}
            _ = stop.changed() => break,
        }
    }
}

/// Serves on `listener` until `shutdown` resolves, then finishes the requests in flight,
/// flushes the outbox to the lake and returns.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The lake work (Delta merges, snapshot reloads, index updates) runs on its own thread:
    // on the request runtime a merge of a large batch held a worker for hundreds of
    // milliseconds, and every request queued behind it waited as long. On its own thread,
    // at a lower priority, the operating system gives the cores to requests first and the
    // lake catches up in between (BENCHMARKS.md, "Webhook ingest").
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("supportlake-lake")
        .on_thread_start(lower_priority)
        .enable_all()
        .build()?;
    let applier = state.applier()?;
    // The applier wakes the refresher when it has changed the index or the commerce tables.
    let changes = applier.changes();
    let applier = background.spawn(applier.run(APPLY_EVERY, RECORD_EVERY, stop_rx.clone()));
    let syncer = background.spawn(state.syncer(changes.clone()).run(stop_rx.clone()));
    let refresher = background.spawn(refresher(
        state.clone(),
        changes,
        REFRESH_EVERY,
        stop_rx.clone(),
    ));
    let keeper = background.spawn(token_keeper(state.clone(), stop_rx));
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    // The requests are done: stop the background work, with a last flush of the outbox.
    let _ = stop_tx.send(true);
    let _ = refresher.await;
    let _ = keeper.await;
    let _ = syncer.await;
    let _ = applier.await;
    // Its tasks are done; dropping a runtime would block, which async code must not.
    background.shutdown_background();
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The lake thread runs below the request threads, and only it does.
    #[test]
    fn lowering_the_priority_touches_only_the_calling_thread() {
        let own = || rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let before = own();
        let lowered = std::thread::spawn(move || {
            super::lower_priority();
            own()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (before + super::LAKE_NICENESS).min(19));
        assert_eq!(own(), before, "the calling test thread kept its priority");
    }
}
