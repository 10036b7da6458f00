//! # server — the answer server (Axum)
//!
//! The shopper-facing side of supportlake: a chat API that verifies before it reveals,
//! answers from the store's system of record and its knowledge with sources, says what it
//! does not know, and hands off to a person with the whole context. It depends on [`index`]
//! and [`pipeline`], never the other way round.
//!
//! ## A message's way through
//!
//! `POST /v1/chat` ([`api`]) checks the body (stable error codes, [`error::AppError`]),
//! resolves the shop and any signed storefront token ([`identity`]), then, off the async
//! runtime, embeds the message once and uses that vector twice: the intent classifier and
//! the hybrid search of the live index generation ([`AppState::understand`]). One SQLite
//! transaction ([`store`]) then loads the conversation, lets [`answer`] compose the reply
//! from the in-memory snapshot of orders, shipments, refunds, stock and the return window
//! ([`commerce`]), escalates when it must (a handoff with its packet), saves the new state,
//! and queues the turn's lake rows in the outbox. The [`record::Applier`] writes those to
//! Delta in the background, so a shopper never waits on a lake commit and a restart loses
//! nothing.
//!
//! ## A webhook's way through
//!
//! `POST /webhooks/shopify` ([`webhook`]) checks the headers, the HMAC signature and the
//! shop, then hands the delivery to the [`webhook::Acknowledger`], which commits it with
//! the others that arrived meanwhile (one fsync for the group) into the webhook store's
//! outbox, dropping repeats of an event already held, and only then answers 200. The
//! applier maps it into the lake ([`pipeline::webhook`]) with the outbox position in the
//! same Delta commit, carries out deletions and privacy requests ([`pipeline::privacy`]),
//! and updates the index and the commerce snapshot when the catalog or policies changed.
//!
//! ## The pages
//!
//! [`pages`] serves what people look at — the chat widget (`/widget.js`) on a demo storefront
//! (`/`), the agents' handoff inbox (`/inbox`) and the analysts' dashboard (`/dashboard`) with
//! the report API behind it (`/v1/reports`) — as plain HTML and JavaScript compiled in, using
//! the same JSON API as any client.
//!
//! ## What runs beside the requests
//!
//! * the applier (chat outbox → lake every five seconds, webhook outbox → lake every
//!   second, and a last flush of both on shutdown);
//! * a refresher that switches to a new index generation when `CURRENT` moves (after
//!   `supportlake rebuild`) and reloads the commerce snapshot when a commerce table's Delta
//!   version changes.
//!
//! Operational state is in one SQLite file under `state_dir`; answer state never lives only
//! in memory.

pub mod answer;
pub mod api;
pub mod commerce;
pub mod embedding;
pub mod error;
pub mod identity;
pub mod metrics;
pub mod pages;
pub mod record;
pub mod store;
pub mod webhook;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use index::IndexError;
use index::bm25::Filter;
use index::generation::{Generation, IndexDir};
use index::search::Mode;
use pipeline::{Config, Lake};

pub use error::{AppError, ServerError};

use crate::answer::{Cited, Source, Understanding};
use crate::commerce::Snapshot;
use crate::embedding::QueryEmbedder;
use crate::metrics::Metrics;
use crate::record::Applier;
use crate::store::Store;
use crate::webhook::Acknowledger;

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
pub struct LoadedIndex {
    pub generation: Generation,
    /// `(handle, title)` of its products, for entity extraction.
    products: Vec<(String, String)>,
    by_key: HashMap<String, usize>,
}

impl LoadedIndex {
    pub fn new(generation: Generation) -> Self {
        let products = generation.product_titles();
        let by_key = generation
            .passages
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key.clone(), i))
            .collect();
        Self {
            generation,
            products,
            by_key,
        }
    }

    /// A whole passage by key.
    pub fn passage(&self, key: &str) -> Option<Cited> {
        let p = &self.generation.passages[*self.by_key.get(key)?];
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

/// What the server's settings are.
#[derive(Debug, Clone)]
pub struct Settings {
    pub pii_hash_key: String,
    pub storefront_secret: String,
    pub agent_token: String,
    pub index_dir: PathBuf,
    pub state_dir: PathBuf,
    /// The whole configuration (index updates and privacy exports need more of it).
    pub config: Config,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            config: config.clone(),
            pii_hash_key: config.pii_hash_key.clone(),
            storefront_secret: config.storefront_secret.clone(),
            agent_token: config.agent_token.clone(),
            index_dir: config.index_dir.clone(),
            state_dir: config.state_dir.clone(),
        }
    }
}

/// Everything a request handler reaches; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    store: Arc<Store>,
    webhook_store: Arc<Store>,
    acknowledger: Acknowledger,
    lake: Lake,
    queries: QueryEmbedder,
    snapshot: RwLock<Arc<Snapshot>>,
    index: RwLock<Option<Arc<LoadedIndex>>>,
    metrics: Metrics,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("lake", &self.lake.url().as_str())
            .field("index_dir", &self.settings.index_dir)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Opens the state store, reads the commerce snapshot and loads the live generation (if
    /// any: without one the server starts but `/readyz` says not ready).
    pub async fn open(
        settings: Settings,
        lake: Lake,
        queries: QueryEmbedder,
    ) -> Result<Self, ServerError> {
        let store = Arc::new(Store::open(&settings.state_dir)?);
        let webhook_store = Arc::new(Store::open_webhooks(&settings.state_dir)?);
        let acknowledger = Acknowledger::start(webhook_store.clone())?;
        let snapshot = Snapshot::load(&lake).await?;
        let index = match IndexDir::new(&settings.index_dir).open_current() {
            Ok(generation) => Some(Arc::new(LoadedIndex::new(generation))),
            Err(IndexError::NoIndex(_)) => None,
            Err(other) => return Err(other.into()),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                store,
                webhook_store,
                acknowledger,
                lake,
                queries,
                snapshot: RwLock::new(Arc::new(snapshot)),
                index: RwLock::new(index),
                metrics: Metrics::default(),
            }),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn lake(&self) -> &Lake {
        &self.inner.lake
    }

    /// The embedding model the query workers use (index updates and reports share it).
    pub fn model(&self) -> Arc<dyn index::Embedder> {
        self.inner.queries.model()
    }

    /// The webhook store (acknowledged deliveries waiting for the lake).
    pub fn webhook_store(&self) -> &Store {
        &self.inner.webhook_store
    }

    pub fn acknowledger(&self) -> &Acknowledger {
        &self.inner.acknowledger
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner
            .snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The live generation, or "not ready" when none is built.
    pub fn index(&self) -> Result<Arc<LoadedIndex>, ServerError> {
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
    pub async fn understand(
        &self,
        index: Arc<LoadedIndex>,
        message: String,
        shop: String,
    ) -> Result<Understanding, ServerError> {
        let vector = self.inner.queries.embed(message.clone()).await?;
        tokio::task::spawn_blocking(move || {
            let generation = &index.generation;
            let classification = generation.classifier().classify(&message, &vector);
            let entities = index::classifier::entities(&message, &index.products);
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
            Ok::<_, ServerError>(Understanding {
                intent,
                confidence,
                decided_by,
                entities,
                hits,
            })
        })
        .await
        .map_err(|e| ServerError::NotReady(format!("answering task failed: {e}")))?
    }

    /// Switches to a new generation when `CURRENT` has moved, and reloads the commerce
    /// snapshot when a commerce table changed. Returns what it reloaded.
    pub async fn refresh(&self) -> Result<(bool, bool), ServerError> {
        let dir = IndexDir::new(&self.inner.settings.index_dir);
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
        Ok((new_index, new_snapshot))
    }

    /// The applier of this server's outboxes (fails when another process runs one on the
    /// same state directory).
    pub fn applier(&self) -> Result<Applier, ServerError> {
        Applier::new(self.clone())
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
    let applier = background.spawn(state.applier()?.run(
        APPLY_EVERY,
        RECORD_EVERY,
        stop_rx.clone(),
    ));
    let refresher = {
        let state = state.clone();
        let mut stop = stop_rx;
        background.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(REFRESH_EVERY) => {}
                    _ = stop.changed() => break,
                }
                if let Err(error) = state.refresh().await {
                    tracing::warn!(%error, "refresh failed; keeping the loaded index and snapshot");
                }
            }
        })
    };
    let app = api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    // The requests are done: stop the background work, with a last flush of the outbox.
    let _ = stop_tx.send(true);
    let _ = refresher.await;
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
