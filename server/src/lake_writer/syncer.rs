//! The syncer: every installed shop's data comes in from the Admin API on a schedule.
//!
//! Webhooks bring a shop's changes within seconds, but only from the moment the shop is
//! subscribed, and a delivery Shopify gave up on is gone. So `serve` also syncs each
//! installed shop that has an Admin token ([`Syncer::run`]):
//!
//! 1. its token is refreshed first when it is about to expire
//!    ([`crate::shopify::oauth::fresh_token`]);
//! 2. its webhook subscriptions are checked, and the missing ones created, to
//!    `<app_url>/webhooks/shopify` ([`pipeline::sources::shopify_api::subscriptions`]);
//! 3. it is synced ([`pipeline::sources::shopify_api::sync_shopify`]): in full the first
//!    time (no watermark yet), then what changed since the last sync began;
//! 4. when the catalog or policies changed, the index is rebuilt (the first generation too,
//!    on a server whose first shop this is), and the server switches to it and to the new
//!    commerce snapshot at once.
//!
//! A new install is synced at once: the install handler wakes the syncer. Each shop's sync
//! runs as its own task, so one slow bulk operation delays no other shop, and is due again
//! `sync_every_seconds` after it began (after a failure, after at most a minute). When a
//! shop uninstalls the app, its running sync is aborted at its next await (a sync resumes
//! from its checkpoint, so a cut is safe), its staged files are deleted, and it is never
//! scheduled again until it installs again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use pipeline::sources::shopify_api::subscriptions::{self, AdminAccess, Subscribed};
use pipeline::sources::shopify_api::{self, SyncOptions, SyncReport};
use pipeline::sources::webhooks::SUBSCRIBED_TOPICS;
use pipeline::{Config, Lake};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::applier::{IndexFollow, Model, update_index};
use crate::error::ServerError;
use crate::shopify::oauth::fresh_token;
use crate::state::shops::{ShopRecord, ShopRegistry};

/// After a failed sync, the next try comes after this long (or the schedule, if sooner).
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// How often the syncer looks for due shops and uninstalls at the longest.
const LOOK_EVERY: Duration = Duration::from_secs(30);
/// How long, and how often, a sync waits for another index build to finish.
const INDEX_BUSY_WAIT: Duration = Duration::from_secs(5);
const INDEX_BUSY_TRIES: u32 = 60;

/// What one shop's sync did, for the log.
#[derive(Debug)]
pub struct Synced {
    pub subscribed: Option<Subscribed>,
    pub report: SyncReport,
    pub index: IndexFollow,
}

/// Everything a shop's sync task needs; shared by the tasks.
#[derive(Debug)]
struct Parts {
    config: Config,
    lake: Lake,
    shops: Arc<ShopRegistry>,
    model: Model,
    /// Woken after a sync changed the lake (the server's refresher).
    changes: Arc<Notify>,
}

/// One shop's place in the schedule.
#[derive(Debug)]
struct Scheduled {
    /// The install this schedule belongs to: a reinstall starts a new one.
    installed_at: chrono::DateTime<chrono::Utc>,
    due: Instant,
    running: Option<JoinHandle<Result<Synced, ServerError>>>,
}

/// Runs the shops' syncs (see the module doc).
#[derive(Debug)]
pub struct Syncer {
    parts: Arc<Parts>,
    every: Duration,
    /// Woken by an install, so its first sync starts now.
    wake: Arc<Notify>,
}

/// A shop the syncer syncs: installed, with an Admin token.
fn syncable(shop: &ShopRecord) -> bool {
    shop.is_installed()
        && shop
            .credentials
            .access_token
            .as_ref()
            .is_some_and(|t| !t.is_empty())
}

impl Syncer {
    pub fn new(
        config: &Config,
        lake: Lake,
        shops: Arc<ShopRegistry>,
        model: Model,
        changes: Arc<Notify>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            every: Duration::from_secs(config.sync_every_seconds),
            parts: Arc::new(Parts {
                config: config.clone(),
                lake,
                shops,
                model,
                changes,
            }),
            wake,
        }
    }

    /// Keeps the schedule until `stop` changes; then aborts the syncs still running (each
    /// resumes from its checkpoint next time).
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if self.every.is_zero() {
            tracing::info!("scheduled syncs are off (sync_every_seconds = 0)");
            return;
        }
        let mut schedule: HashMap<String, Scheduled> = HashMap::new();
        loop {
            self.look(&mut schedule).await;
            tokio::select! {
                _ = tokio::time::sleep(self.every.min(LOOK_EVERY)) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => break,
            }
        }
        for scheduled in schedule.into_values() {
            if let Some(task) = scheduled.running {
                task.abort();
            }
        }
    }

    /// One look at the registry: stops what uninstalled, collects finished syncs, starts
    /// due ones.
    async fn look(&self, schedule: &mut HashMap<String, Scheduled>) {
        if let Err(error) = self.parts.shops.reload_if_changed() {
            tracing::error!(%error, "the shop registry could not be read again");
        }
        let shops = self.parts.shops.all();
        let gone: Vec<String> = schedule
            .iter()
            .filter(|(domain, s)| {
                shops
                    .get(*domain)
                    .is_none_or(|shop| !syncable(shop) || shop.installed_at != s.installed_at)
            })
            .map(|(domain, _)| domain.clone())
            .collect();
        for domain in gone {
            if let Some(scheduled) = schedule.remove(&domain)
                && let Some(task) = scheduled.running
            {
                task.abort();
                let _ = task.await;
            }
            if shops.get(&domain).is_none_or(|s| !s.is_installed()) {
                // Staged objects hold shopper data: nothing of an uninstalled shop lingers.
                let staged = shopify_api::sync_dir(&self.parts.config, &domain);
                if staged.exists()
                    && let Err(error) = std::fs::remove_dir_all(&staged)
                {
                    tracing::warn!(shop = %domain, %error, "could not delete the uninstalled shop's staged sync");
                }
                tracing::info!(shop = %domain, "the shop is no longer installed: its syncs stopped");
            }
        }
        for shop in shops.values().filter(|s| syncable(s)) {
            let scheduled = schedule
                .entry(shop.domain.clone())
                .or_insert_with(|| Scheduled {
                    installed_at: shop.installed_at,
                    due: self.first_due(&shop.domain),
                    running: None,
                });
            if let Some(task) = scheduled.running.take_if(|t| t.is_finished()) {
                scheduled.due = self.finished(&shop.domain, task.await, scheduled.due);
            }
            if scheduled.running.is_none() && scheduled.due <= Instant::now() {
                scheduled.due = Instant::now() + self.every;
                let parts = self.parts.clone();
                let domain = shop.domain.clone();
                scheduled.running = Some(tokio::spawn(sync_one(parts, domain)));
            }
        }
    }

    /// When a shop first seen by this process is due: after the schedule's interval from
    /// its last sync, now when it has none.
    fn first_due(&self, shop: &str) -> Instant {
        let last = shopify_api::last_synced(&self.parts.config, shop)
            .ok()
            .flatten();
        let since = last.map_or(Duration::MAX, |t| {
            (chrono::Utc::now() - t).to_std().unwrap_or_default()
        });
        Instant::now() + self.every.saturating_sub(since)
    }

    /// Logs a finished sync and says when the shop is due next.
    fn finished(
        &self,
        shop: &str,
        outcome: Result<Result<Synced, ServerError>, tokio::task::JoinError>,
        due: Instant,
    ) -> Instant {
        match outcome {
            Ok(Ok(synced)) => {
                let created = synced.subscribed.as_ref().map_or(0, |s| s.created.len());
                tracing::info!(
                    shop,
                    mode = synced.report.mode,
                    objects = synced.report.objects.values().sum::<u64>(),
                    subscribed = created,
                    index = %synced.index,
                    "synced"
                );
                due
            }
            Ok(Err(error)) => {
                tracing::warn!(shop, %error, "the scheduled sync failed; retrying");
                due.min(Instant::now() + RETRY_AFTER)
            }
            Err(error) => {
                tracing::warn!(shop, %error, "the scheduled sync stopped");
                due.min(Instant::now() + RETRY_AFTER)
            }
        }
    }
}

/// One shop's sync, steps 1–4 of the module doc.
async fn sync_one(parts: Arc<Parts>, shop: String) -> Result<Synced, ServerError> {
    let config = &parts.config;
    let token = fresh_token(config, &parts.shops, &shop, chrono::Utc::now())
        .await?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ServerError::Secrets(format!("{shop} has no Admin token")))?;
    let options = SyncOptions::for_shop(config, &shop, token);
    let subscribed = if config.app_url.is_empty() {
        // Without its public URL the server cannot tell Shopify where to deliver.
        None
    } else {
        let access = AdminAccess {
            base_url: options.base_url.clone(),
            api_version: options.api_version.clone(),
            token: options.token.clone(),
        };
        let uri = format!("{}/webhooks/shopify", config.app_url.trim_end_matches('/'));
        Some(subscriptions::ensure_webhooks(&access, &uri, SUBSCRIBED_TOPICS).await?)
    };
    let report = shopify_api::sync_shopify(&parts.lake, config, &options, &mut |_| {}).await?;
    let changed: BTreeSet<&'static str> = report
        .ingest
        .tables
        .iter()
        .filter(|(_, counts)| counts.written > 0)
        .map(|(table, _)| *table)
        .collect();
    let mut index = update_index(config, &parts.lake, &parts.model, &changed, true).await;
    // A build that began before this sync's commits would miss them: wait for it, then
    // build again (bounded; the nightly rebuild catches up after that).
    for _ in 0..INDEX_BUSY_TRIES {
        if index != IndexFollow::Busy {
            break;
        }
        tokio::time::sleep(INDEX_BUSY_WAIT).await;
        index = update_index(config, &parts.lake, &parts.model, &changed, true).await;
    }
    if !changed.is_empty() {
        parts.changes.notify_one();
    }
    Ok(Synced {
        subscribed,
        report,
        index,
    })
}
