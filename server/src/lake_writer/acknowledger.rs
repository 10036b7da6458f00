//! The acknowledger: a webhook delivery is made durable before the 200 goes out. One
//! thread owns the webhook store and commits every delivery that arrived while the
//! previous commit was being fsync'd, together, in one transaction (group commit). In that
//! transaction a delivery's key (shop, topic, event id) is recorded, and only a first
//! sighting is queued in the outbox: Shopify's retries of a delivery we already have are
//! acknowledged and dropped. The applier ([`crate::lake_writer::applier`]) takes it from
//! the outbox to the lake.
//!
//! That thread is the webhook store's only writer, so an acknowledgement never waits for
//! a lock: it also forgets the entries the applier has put in the lake and checkpoints the
//! WAL, both in small steps between groups, after the previous group's replies went out.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use pipeline::sources::webhooks::Delivery;
use tokio::sync::oneshot;

use crate::error::ServerError;
use crate::state::WebhookStore;
use crate::state::sqlite::{FORGET_AT_ONCE, enqueue_serialized};
use crate::state::webhooks::{first_sighting, forget_sightings};

/// Most deliveries committed in one transaction.
const GROUP_LIMIT: usize = 1024;
/// A group commit slower than this is logged: a fifth of Shopify's delivery timeout.
const SLOW_GROUP_COMMIT: Duration = Duration::from_secs(1);
/// Outbox rows written or forgotten between two WAL checkpoints: about SQLite's own
/// default of 1,000 pages, since a delivery is about a page.
const CHECKPOINT_AFTER_ROWS: usize = 1000;
/// How long the committing thread sleeps with nothing to do before it looks again for
/// entries to forget.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How long a delivery key is remembered: Shopify retries for 4 hours.
const REMEMBER_FOR: Duration = Duration::from_secs(24 * 3600);

/// Whether a delivery was new or a repeat of one already acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    Accepted,
    Duplicate,
}

/// A delivery on its way to the committing thread: its key and its `webhook_events` row,
/// serialized by the request's own task.
#[derive(Debug)]
struct Waiting {
    shop_id: String,
    topic: String,
    event_id: String,
    received_at: i64,
    row: String,
    reply: oneshot::Sender<Result<Ack, String>>,
}

/// Makes deliveries durable, in groups (see the module doc).
#[derive(Debug, Clone)]
pub struct Acknowledger {
    queue: Sender<Waiting>,
    /// The last outbox entry the lake holds (the applier's word); the committing thread
    /// forgets up to it.
    applied: Arc<AtomicI64>,
}

impl Acknowledger {
    /// Starts the committing thread over `store` (the webhook store).
    pub fn start(store: Arc<WebhookStore>) -> Result<Self, ServerError> {
        let (queue, waiting) = channel();
        let applied = Arc::new(AtomicI64::new(0));
        let thread_applied = applied.clone();
        std::thread::Builder::new()
            .name("webhook-ack".into())
            .spawn(move || commit_groups(&store, &waiting, &thread_applied))?;
        Ok(Self { queue, applied })
    }

    /// The outbox entries up to and including `seq` are in the lake: they may be forgotten.
    pub fn applied_through(&self, seq: i64) {
        self.applied.fetch_max(seq, Ordering::Release);
    }

    /// Returns once the delivery is durable (or known already).
    pub async fn acknowledge(&self, delivery: Delivery) -> Result<Ack, ServerError> {
        let (reply, done) = oneshot::channel();
        let row = delivery.event_json();
        self.queue
            .send(Waiting {
                shop_id: delivery.shop_id,
                topic: delivery.topic,
                event_id: delivery.event_id,
                received_at: delivery.received_at,
                row,
                reply,
            })
            .map_err(|_| ServerError::NotReady("the webhook store has stopped".into()))?;
        done.await
            .map_err(|_| ServerError::NotReady("the webhook store has stopped".into()))?
            .map_err(ServerError::NotReady)
    }
}

fn commit_groups(store: &WebhookStore, waiting: &Receiver<Waiting>, applied: &AtomicI64) {
    let mut groups: u64 = 0;
    // Entries up to here are forgotten; rows written or forgotten since the last checkpoint.
    let mut forgotten_through: i64 = 0;
    let mut unsaved_rows: usize = 0;
    loop {
        let backlog = applied.load(Ordering::Acquire) > forgotten_through;
        let first = match waiting.recv_timeout(if backlog { Duration::ZERO } else { IDLE_WAIT }) {
            Ok(first) => Some(first),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let idle = first.is_none();
        if let Some(first) = first {
            groups += 1;
            unsaved_rows += commit_group(store, waiting, first, groups);
        }
        // Housekeeping, one small step at a time, only once the group's replies are out.
        let through = applied.load(Ordering::Acquire);
        if through > forgotten_through {
            match store.database().forget_outbox(through, FORGET_AT_ONCE) {
                Ok(forgotten) => {
                    unsaved_rows += forgotten;
                    if forgotten < FORGET_AT_ONCE {
                        forgotten_through = through;
                    }
                }
                Err(error) => {
                    // Tried again when the applier reports its next commit.
                    forgotten_through = through;
                    tracing::warn!(%error, "could not forget applied webhook entries");
                }
            }
        }
        let idle = idle && through <= forgotten_through;
        if unsaved_rows >= CHECKPOINT_AFTER_ROWS || (idle && unsaved_rows > 0) {
            match store.checkpoint() {
                Ok(()) => unsaved_rows = 0,
                Err(error) => tracing::warn!(%error, "could not checkpoint the webhook store"),
            }
        }
    }
}

/// Commits `first` and whatever else is waiting, up to [`GROUP_LIMIT`], in one transaction
/// (one fsync), then replies to each; returns how many outbox rows it wrote.
fn commit_group(
    store: &WebhookStore,
    waiting: &Receiver<Waiting>,
    first: Waiting,
    groups: u64,
) -> usize {
    let mut group = vec![first];
    while group.len() < GROUP_LIMIT {
        match waiting.try_recv() {
            Ok(next) => group.push(next),
            Err(_) => break,
        }
    }
    let started = std::time::Instant::now();
    let result = store.database().transaction(|tx| {
        let mut acks = Vec::with_capacity(group.len());
        for delivery in &group {
            let first = first_sighting(
                tx,
                &delivery.shop_id,
                &delivery.topic,
                &delivery.event_id,
                delivery.received_at,
            )?;
            if first {
                enqueue_serialized(tx, "webhook_events", &delivery.row)?;
                acks.push(Ack::Accepted);
            } else {
                acks.push(Ack::Duplicate);
            }
        }
        // Now and then, forget keys older than any retry.
        if groups.is_multiple_of(1000) {
            let horizon =
                group[0].received_at - i64::try_from(REMEMBER_FOR.as_micros()).unwrap_or(i64::MAX);
            forget_sightings(tx, horizon)?;
        }
        Ok::<_, ServerError>(acks)
    });
    let took = started.elapsed();
    if took > SLOW_GROUP_COMMIT {
        tracing::warn!(
            deliveries = group.len(),
            ?took,
            "slow webhook group commit: Shopify waits for it (5 s timeout); is the disk's fsync slow?"
        );
    }
    match result {
        Ok(acks) => {
            let written = acks.iter().filter(|a| **a == Ack::Accepted).count();
            for (delivery, ack) in group.into_iter().zip(acks) {
                let _ = delivery.reply.send(Ok(ack));
            }
            written
        }
        Err(error) => {
            tracing::error!(%error, "could not store webhook deliveries; they are refused");
            for delivery in group {
                let _ = delivery.reply.send(Err(error.to_string()));
            }
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn delivery(event_id: &str) -> Delivery {
        Delivery {
            shop_id: "shop-1".into(),
            shop_domain: "shop-1.myshopify.com".into(),
            topic: "products/update".into(),
            event_id: event_id.into(),
            webhook_id: None,
            api_version: None,
            triggered_at: None,
            received_at: 1,
            headers: json!({}),
            // About a page, as real deliveries are (see CHECKPOINT_AFTER_ROWS).
            body: format!(r#"{{"id": 1, "note": "{}"}}"#, "x".repeat(3000)),
        }
    }

    /// The acknowledger dedupes, and forgets exactly the entries the applier reports
    /// applied, by itself, while the outbox is read after the applier's position.
    #[tokio::test]
    async fn acknowledged_deliveries_wait_in_the_outbox_until_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(WebhookStore::open(dir.path()).unwrap());
        let outbox = store.database();
        let acknowledger = Acknowledger::start(store.clone()).unwrap();
        for n in 0..1200 {
            let ack = acknowledger.acknowledge(delivery(&format!("e{n}"))).await;
            assert_eq!(ack.unwrap(), Ack::Accepted);
        }
        let again = acknowledger.acknowledge(delivery("e7")).await.unwrap();
        assert_eq!(again, Ack::Duplicate);
        assert_eq!(outbox.outbox_len().unwrap(), 1200);
        let entries = outbox.outbox(0, 10_000).unwrap();
        assert_eq!(entries.len(), 1200);
        assert_eq!(entries[0].row["event_id"], "e0");
        let applied = entries[1099].seq;
        assert_eq!(outbox.outbox(applied, 10_000).unwrap().len(), 100);

        acknowledger.applied_through(applied);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while outbox.outbox_len().unwrap() > 100 {
            assert!(
                std::time::Instant::now() < deadline,
                "entries not forgotten"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = outbox.outbox(0, 10_000).unwrap();
        assert_eq!(left.len(), 100);
        assert_eq!(left[0].seq, applied + 1);

        // SQLite's own checkpoint is off for this file; the acknowledger's, after more than
        // CHECKPOINT_AFTER_ROWS rows, has copied the pages into the database file.
        let database = dir.path().join("webhooks.sqlite");
        while std::fs::metadata(&database).unwrap().len() < 1_000_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was never checkpointed into {}",
                database.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
