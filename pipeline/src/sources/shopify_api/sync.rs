//! `supportlake sync shopify`: fetch, stage, then commit once per table.
//!
//! A sync works through its resources one at a time, writing what Shopify returns to a
//! staging directory (`state_dir/sync/<shop>/`) and recording what is done in
//! `checkpoint.json` (written whole, then renamed): a bulk operation's id as soon as it is
//! started, and, at most once a second while paging, the last page's cursor together with the
//! staged file's length once the pages are on disk. A sync that is killed finds the checkpoint, cuts the staged file back to the last
//! recorded length, and goes on from there — polling the bulk operation it had started, or
//! asking for the page after the last one it kept — so nothing is fetched into the lake
//! twice and nothing is skipped.
//!
//! Only when every resource is staged is anything written to the lake: the staged objects
//! are mapped to REST shapes ([`super::mapping`]), laid out as an export directory and
//! ingested with no batch limit, so each table gets one upsert commit (none when nothing
//! changed) and readers never see half a sync. Then the watermark moves to the time the sync
//! started; the next sync asks only for objects updated after it.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::{AdminClient, ClientStats, RetryPolicy};
use super::mapping;
use super::query::{self, Forest, Resource};
use crate::config::Config;
use crate::error::{PipelineError, Result};
use crate::ingest::{IngestReport, ingest_labelled};
use crate::lake::Lake;

/// What to sync and how.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The shop's myshopify domain (`ridgeline-outfitters.myshopify.com`).
    pub shop: String,
    /// Where the Admin API is: `https://<shop>` for a real store.
    pub base_url: String,
    pub api_version: String,
    pub token: String,
    /// Fetch everything through bulk operations even when a watermark exists.
    pub full: bool,
    /// Fetch, page by page, what changed after this time (RFC 3339) instead of after the
    /// watermark: a backfill of a window, or (with a time before the store existed) a full
    /// sync without bulk operations.
    pub since: Option<String>,
    /// How often a running bulk operation is polled.
    pub poll_interval: Duration,
    pub retry: RetryPolicy,
}

impl SyncOptions {
    /// An incremental (or, with no watermark yet, full) sync of `shop` with `token`, the
    /// Admin API where the configuration says, bulk operations polled every two seconds.
    pub fn for_shop(config: &Config, shop: &str, token: String) -> Self {
        Self {
            shop: shop.to_string(),
            base_url: config.admin_base_url(shop),
            api_version: config.shopify_api_version.clone(),
            token,
            full: false,
            since: None,
            poll_interval: Duration::from_secs(2),
            retry: RetryPolicy::default(),
        }
    }
}

/// Where a sync is, for the progress bar.
#[derive(Debug, Clone)]
pub struct SyncProgress {
    pub resource: &'static str,
    /// Objects of this resource fetched so far (a bulk operation's running count).
    pub objects: u64,
    pub client: ClientStats,
}

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub shop: String,
    /// `full` (bulk operations) or `incremental` (pages of changes).
    pub mode: &'static str,
    /// The watermark an incremental sync started from.
    pub since: Option<String>,
    /// Whether this run went on from a checkpoint a killed run left.
    pub resumed: bool,
    /// Objects fetched, per resource.
    pub objects: BTreeMap<String, u64>,
    pub requests: u64,
    /// Query cost Shopify charged, in points.
    pub cost: f64,
    pub throttled: u64,
    pub http_429: u64,
    pub server_errors: u64,
    pub network_errors: u64,
    /// Seconds spent waiting for the rate limit or a retry.
    pub waited_seconds: f64,
    /// Seconds spent waiting for Shopify to finish bulk operations.
    pub bulk_waited_seconds: f64,
    /// Status polls that found a bulk operation still running, each followed by one poll
    /// interval's wait.
    pub bulk_polls: u64,
    pub seconds: f64,
    pub ingest: IngestReport,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
enum Step {
    /// A bulk operation was started for the resource.
    Bulk { resource: String, operation: String },
    /// Pages up to `cursor` are in the staged file, which is `staged_bytes` long.
    Page {
        resource: String,
        cursor: Option<String>,
        staged_bytes: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    full: bool,
    /// RFC 3339, UTC: the next watermark.
    started_at: String,
    since: Option<String>,
    done: Vec<String>,
    objects: BTreeMap<String, u64>,
    step: Option<Step>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Watermark {
    updated_after: String,
}

fn shopify(message: impl Into<String>) -> PipelineError {
    PipelineError::Shopify(message.into())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial).map_err(|e| PipelineError::io(&partial, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| PipelineError::io(&partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| PipelineError::io(path, e))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| shopify(format!("{} is damaged: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PipelineError::io(path, e)),
    }
}

/// The resources of a sync, in order. Articles are few: they are paged even in a full sync.
const BULK: [Resource; 5] = [
    query::PRODUCTS,
    query::INVENTORY,
    query::CUSTOMERS,
    query::ORDERS,
    query::ORDER_RETURNS,
];

/// How often an incremental sync records its progress.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

const BULK_RUN: &str = "mutation SupportlakeBulkRun($query: String!) { bulkOperationRunQuery(query: $query) { \
    bulkOperation { id status } userErrors { field message code } } }";
const BULK_STATUS: &str = "query SupportlakeBulkStatus($id: ID!) { node(id: $id) { ... on BulkOperation { \
    id status errorCode objectCount rootObjectCount url } } }";
const BULK_CURRENT: &str =
    "query SupportlakeBulkCurrent { currentBulkOperation(type: QUERY) { id status query } }";

struct Run<'a> {
    client: AdminClient,
    dir: PathBuf,
    staging: PathBuf,
    checkpoint: Checkpoint,
    options: &'a SyncOptions,
    progress: &'a mut (dyn FnMut(&SyncProgress) + Send),
    /// Polls that found a bulk operation Shopify was still running.
    bulk_polls: u64,
}

impl Run<'_> {
    /// One poll interval's wait while Shopify runs a bulk operation.
    async fn wait_for_bulk(&mut self) {
        tokio::time::sleep(self.options.poll_interval).await;
        self.bulk_polls += 1;
    }

    fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.checkpoint)
            .map_err(|e| shopify(format!("checkpoint: {e}")))?;
        write_atomically(&self.dir.join("checkpoint.json"), &bytes)
    }

    fn report(&mut self, resource: &'static str, objects: u64) {
        let client = self
            .client
            .stats()
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        (self.progress)(&SyncProgress {
            resource,
            objects,
            client,
        });
    }

    fn staged(&self, resource: &str, kind: &str) -> PathBuf {
        self.staging.join(format!("{resource}.{kind}.jsonl"))
    }

    /// Fetches `resource` with a bulk operation, unless it is done already.
    async fn bulk(&mut self, resource: Resource) -> Result<()> {
        if self.checkpoint.done.iter().any(|d| d == resource.name) {
            return Ok(());
        }
        let query = resource.bulk_query();
        let mut operation = match &self.checkpoint.step {
            Some(Step::Bulk {
                resource: r,
                operation,
            }) if r == resource.name => operation.clone(),
            _ => self.start_bulk(&query).await?,
        };
        self.checkpoint.step = Some(Step::Bulk {
            resource: resource.name.into(),
            operation: operation.clone(),
        });
        self.save()?;
        let mut restarts = 0;
        let (url, objects) = loop {
            let data = self
                .client
                .graphql(BULK_STATUS, json!({"id": operation}), 1.0)
                .await?;
            let node = &data["node"];
            // `UnsignedInt64` counts arrive as strings. `objectCount` counts nested objects
            // too; the report counts the resource's own (`rootObjectCount`).
            let count = |field: &str| node[field].as_str().and_then(|n| n.parse::<u64>().ok());
            self.report(resource.name, count("objectCount").unwrap_or(0));
            match node["status"].as_str() {
                Some("COMPLETED") => {
                    let roots = count("rootObjectCount")
                        .or(count("objectCount"))
                        .unwrap_or(0);
                    break (node["url"].as_str().map(String::from), roots);
                }
                Some("CREATED" | "RUNNING") => self.wait_for_bulk().await,
                // Expired results and cancelled runs are simply run again, once.
                Some("EXPIRED" | "CANCELED" | "CANCELING") | None if restarts == 0 => {
                    restarts += 1;
                    operation = self.start_bulk(&query).await?;
                    self.checkpoint.step = Some(Step::Bulk {
                        resource: resource.name.into(),
                        operation: operation.clone(),
                    });
                    self.save()?;
                }
                other => {
                    return Err(shopify(format!(
                        "bulk operation for {} ended {}: {}",
                        resource.name,
                        other.unwrap_or("unknown"),
                        node["errorCode"].as_str().unwrap_or("no error code")
                    )));
                }
            }
        };
        let target = self.staged(resource.name, "bulk");
        match url {
            Some(url) => {
                self.client.download(&url, &target).await?;
            }
            // No objects: Shopify gives no file.
            None => write_atomically(&target, b"")?,
        }
        self.finish(resource.name, objects)
    }

    fn finish(&mut self, resource: &str, objects: u64) -> Result<()> {
        self.checkpoint.done.push(resource.into());
        self.checkpoint.objects.insert(resource.into(), objects);
        self.checkpoint.step = None;
        self.save()
    }

    /// Starts a bulk query. Shopify runs one per shop at a time: when one is running it is
    /// either ours (a killed sync started it: adopt it) or another app's (wait it out).
    async fn start_bulk(&mut self, query: &str) -> Result<String> {
        for _ in 0..120 {
            let data = self
                .client
                .graphql(BULK_RUN, json!({"query": query}), 10.0)
                .await?;
            let run = &data["bulkOperationRunQuery"];
            if let Some(id) = run["bulkOperation"]["id"].as_str() {
                return Ok(id.to_string());
            }
            let errors = run["userErrors"].as_array().cloned().unwrap_or_default();
            let busy = errors.iter().any(|e| {
                e["code"] == "OPERATION_IN_PROGRESS"
                    || e["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("already in progress"))
            });
            if !busy {
                return Err(shopify(format!(
                    "bulk query refused: {}",
                    errors
                        .iter()
                        .filter_map(|e| e["message"].as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
            let current = self.client.graphql(BULK_CURRENT, json!({}), 1.0).await?;
            let running = &current["currentBulkOperation"];
            if running["query"].as_str() == Some(query)
                && let Some(id) = running["id"].as_str()
            {
                return Ok(id.to_string());
            }
            self.wait_for_bulk().await;
        }
        Err(shopify(
            "another bulk operation kept the shop busy; try again later",
        ))
    }

    /// Fetches `resource` page by page (changes since `filter`, or everything).
    async fn pages(&mut self, resource: Resource, filter: Option<&str>) -> Result<()> {
        if self.checkpoint.done.iter().any(|d| d == resource.name) {
            return Ok(());
        }
        let path = self.staged(resource.name, "pages");
        let (mut cursor, mut staged) = match &self.checkpoint.step {
            Some(Step::Page {
                resource: r,
                cursor,
                staged_bytes,
            }) if r == resource.name => (cursor.clone(), *staged_bytes),
            _ => (None, 0),
        };
        let mut objects = self
            .checkpoint
            .objects
            .get(resource.name)
            .copied()
            .unwrap_or(0);
        // Anything past the recorded length was written by a run killed before it could
        // record the page: it will be fetched again.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| PipelineError::io(&path, e))?;
        file.set_len(staged)
            .map_err(|e| PipelineError::io(&path, e))?;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| PipelineError::io(&path, e))?;
        let document = resource.page_query();
        let mut checkpointed = Instant::now();
        loop {
            let data = self
                .client
                .graphql(
                    &document,
                    json!({"first": resource.page_size, "after": cursor, "query": filter}),
                    resource.expected_page_cost(),
                )
                .await?;
            let connection = &data[resource.root];
            let mut page = Vec::new();
            for edge in connection["edges"].as_array().into_iter().flatten() {
                page.extend_from_slice(edge["node"].to_string().as_bytes());
                page.push(b'\n');
                objects += 1;
            }
            file.write_all(&page)
                .map_err(|e| PipelineError::io(&path, e))?;
            staged += page.len() as u64;
            cursor = connection["pageInfo"]["endCursor"]
                .as_str()
                .map(String::from)
                .or(cursor);
            let last = connection["pageInfo"]["hasNextPage"] != true;
            // A checkpoint costs two fsyncs, so it is taken at most once a second (and after
            // the last page): a kill loses at most the pages since, which are fetched again
            // because the staged file is cut back to the recorded length.
            if last || checkpointed.elapsed() >= CHECKPOINT_EVERY {
                file.sync_data().map_err(|e| PipelineError::io(&path, e))?;
                self.checkpoint
                    .objects
                    .insert(resource.name.into(), objects);
                self.checkpoint.step = Some(Step::Page {
                    resource: resource.name.into(),
                    cursor: cursor.clone(),
                    staged_bytes: staged,
                });
                self.save()?;
                checkpointed = Instant::now();
            }
            self.report(resource.name, objects);
            if last {
                break;
            }
        }
        self.finish(resource.name, objects)
    }

    /// The shop, its policies and blogs, staged as one object.
    async fn shop(&mut self) -> Result<()> {
        if self.checkpoint.done.iter().any(|d| d == "shop") {
            return Ok(());
        }
        let data = self.client.graphql(query::SHOP, json!({}), 10.0).await?;
        write_atomically(
            &self.staging.join("shop.raw.json"),
            data.to_string().as_bytes(),
        )?;
        self.report("shop", 1);
        self.finish("shop", 1)
    }

    /// A staged resource, read back into a forest.
    fn forest(&self, resource: &str) -> Result<Forest> {
        let mut forest = Forest::default();
        let bulk = self.staged(resource, "bulk");
        if bulk.exists() {
            forest.read_jsonl(&bulk)?;
            return Ok(forest);
        }
        let pages = self.staged(resource, "pages");
        let file = std::fs::File::open(&pages).map_err(|e| PipelineError::io(&pages, e))?;
        let mut nodes = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| PipelineError::io(&pages, e))?;
            if !line.is_empty() {
                nodes.push(
                    serde_json::from_str(&line)
                        .map_err(|e| shopify(format!("{}: {e}", pages.display())))?,
                );
            }
        }
        forest.absorb_page(nodes);
        Ok(forest)
    }

    /// Lays the staged objects out as an export directory in the REST shapes.
    fn export_dir(&self) -> Result<PathBuf> {
        let out = self.staging.join("export");
        std::fs::create_dir_all(&out).map_err(|e| PipelineError::io(&out, e))?;
        let jsonl = |name: &str, records: &mut dyn Iterator<Item = Value>| -> Result<()> {
            let mut text = String::new();
            for record in records {
                text.push_str(&record.to_string());
                text.push('\n');
            }
            write_atomically(&out.join(name), text.as_bytes())
        };
        let shop: Value = read_json(&self.staging.join("shop.raw.json"))?
            .ok_or_else(|| shopify("the staged shop is missing"))?;
        write_atomically(
            &out.join("export.json"),
            json!({"shop": self.options.shop, "exported_at": self.checkpoint.started_at,
                "format": "shopify-admin-graphql"})
            .to_string()
            .as_bytes(),
        )?;
        write_atomically(
            &out.join("shop.json"),
            mapping::shop(&shop["shop"]).to_string().as_bytes(),
        )?;
        let policies: Vec<Value> = shop["shop"]["shopPolicies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(mapping::policy)
            .collect();
        write_atomically(
            &out.join("policies.json"),
            json!({ "policies": policies }).to_string().as_bytes(),
        )?;
        let blogs: Vec<Value> = shop["blogs"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(mapping::blog)
            .collect();
        write_atomically(
            &out.join("blogs.json"),
            json!({ "blogs": blogs }).to_string().as_bytes(),
        )?;
        let articles = self.forest(query::ARTICLES.name)?;
        jsonl(
            "articles.jsonl",
            &mut articles.roots.iter().map(mapping::article),
        )?;
        let products = self.forest(query::PRODUCTS.name)?;
        jsonl(
            "products.jsonl",
            &mut products
                .roots
                .iter()
                .map(|p| mapping::product(&products, p)),
        )?;
        let customers = self.forest(query::CUSTOMERS.name)?;
        jsonl(
            "customers.jsonl",
            &mut customers.roots.iter().map(mapping::customer),
        )?;
        let inventory = self.forest(query::INVENTORY.name)?;
        jsonl(
            "inventory_levels.jsonl",
            &mut inventory
                .roots
                .iter()
                .flat_map(|item| mapping::inventory_levels(&inventory, item)),
        )?;
        let orders = self.forest(query::ORDERS.name)?;
        let returns = self.forest(query::ORDER_RETURNS.name)?;
        let returns_of: HashMap<&str, &Value> = returns
            .roots
            .iter()
            .filter_map(|o| Some((o["id"].as_str()?, o)))
            .collect();
        jsonl(
            "orders.jsonl",
            &mut orders.roots.iter().map(|o| {
                let of_order = o["id"]
                    .as_str()
                    .and_then(|id| returns_of.get(id))
                    .map(|r| (&returns, *r));
                mapping::order(&orders, o, of_order)
            }),
        )?;
        Ok(out)
    }
}

/// The directory a shop's sync state lives in.
pub fn sync_dir(config: &Config, shop: &str) -> PathBuf {
    config.state_dir.join("sync").join(shop)
}

/// How far before the last sync's start the next one asks from. Shopify keeps `updated_at`
/// to the second and our clock is not Shopify's: an object changed in the second a sync
/// began, after the sync had read its resource, or during a few seconds of clock skew or
/// search-index lag, would fall between two syncs asking strictly after the start. Asking
/// from two minutes earlier fetches those again; the upsert writes nothing for what is
/// unchanged.
const WATERMARK_OVERLAP_SECONDS: i64 = 120;

/// The bound of an incremental sync from a watermark (RFC 3339, seconds, UTC).
fn overlapped(watermark: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(watermark).map_or_else(
        |_| watermark.to_string(),
        |t| {
            (t.to_utc() - chrono::Duration::seconds(WATERMARK_OVERLAP_SECONDS))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        },
    )
}

/// When the shop's last finished sync started (its watermark), if it has one.
pub fn last_synced(config: &Config, shop: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    let watermark: Option<Watermark> = read_json(&sync_dir(config, shop).join("watermark.json"))?;
    Ok(watermark.and_then(|w| {
        chrono::DateTime::parse_from_rfc3339(&w.updated_after)
            .ok()
            .map(|t| t.to_utc())
    }))
}

/// Runs a sync (or finishes the one a killed run left) and commits it to the lake.
pub async fn sync_shopify(
    lake: &Lake,
    config: &Config,
    options: &SyncOptions,
    progress: &mut (dyn FnMut(&SyncProgress) + Send),
) -> Result<SyncReport> {
    let started = Instant::now();
    if options.token.is_empty() {
        return Err(PipelineError::Config(
            "no Shopify access token: set shopify_access_token or SUPPORTLAKE_SHOPIFY_ACCESS_TOKEN"
                .into(),
        ));
    }
    if let Some(since) = &options.since {
        chrono::DateTime::parse_from_rfc3339(since).map_err(|e| {
            PipelineError::Config(format!("--since {since:?} is not an RFC 3339 time: {e}"))
        })?;
    }
    let dir = sync_dir(config, &options.shop);
    let staging = dir.join("staging");
    std::fs::create_dir_all(&staging).map_err(|e| PipelineError::io(&staging, e))?;
    // One sync per shop at a time (the server's syncer and a hand-run command share the
    // staging directory); the lock goes with the process.
    let lock_path = dir.join("sync.lock");
    let _lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| PipelineError::io(&lock_path, e))?;
    _lock.try_lock().map_err(|_| {
        shopify(format!(
            "another sync of {} is running ({} is locked)",
            options.shop,
            lock_path.display()
        ))
    })?;
    let watermark: Option<Watermark> = read_json(&dir.join("watermark.json"))?;
    let existing: Option<Checkpoint> = read_json(&dir.join("checkpoint.json"))?;
    let resumed = existing.is_some();
    let checkpoint = match existing {
        Some(checkpoint) => checkpoint,
        None => {
            // A fresh start: whatever a crashed run left unrecorded goes.
            std::fs::remove_dir_all(&staging).map_err(|e| PipelineError::io(&staging, e))?;
            std::fs::create_dir_all(&staging).map_err(|e| PipelineError::io(&staging, e))?;
            let since = match (&options.since, options.full) {
                (Some(since), _) => Some(since.clone()),
                (None, true) => None,
                (None, false) => watermark.map(|w| overlapped(&w.updated_after)),
            };
            Checkpoint {
                full: since.is_none(),
                started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                since,
                done: Vec::new(),
                objects: BTreeMap::new(),
                step: None,
            }
        }
    };
    let mut run = Run {
        client: AdminClient::new(
            &options.base_url,
            &options.api_version,
            &options.token,
            options.retry,
        )?,
        dir: dir.clone(),
        staging,
        checkpoint,
        options,
        progress,
        bulk_polls: 0,
    };
    run.save()?;
    run.shop().await?;
    let filter = run
        .checkpoint
        .since
        .as_ref()
        .map(|since| format!("updated_at:>='{since}'"));
    for resource in BULK {
        if run.checkpoint.full {
            run.bulk(resource).await?;
        } else {
            run.pages(resource, filter.as_deref()).await?;
        }
    }
    run.pages(query::ARTICLES, filter.as_deref()).await?;
    let export = run.export_dir()?;
    // One commit per table: the whole sync is one batch.
    let mut one_commit = config.clone();
    one_commit.ingest_batch_rows = usize::MAX;
    let ingest = ingest_labelled(
        lake,
        &export,
        &one_commit,
        &format!("shopify-admin-api:{}", options.shop),
        &mut |_, _| {},
    )
    .await?;
    // Later syncs ask for changes after this one started (a change made while it ran may
    // be fetched twice; the upsert keeps one copy).
    write_atomically(
        &dir.join("watermark.json"),
        serde_json::to_vec(&Watermark {
            updated_after: run.checkpoint.started_at.clone(),
        })
        .map_err(|e| shopify(e.to_string()))?
        .as_slice(),
    )?;
    std::fs::remove_file(dir.join("checkpoint.json"))
        .map_err(|e| PipelineError::io(dir.join("checkpoint.json"), e))?;
    std::fs::remove_dir_all(&run.staging).map_err(|e| PipelineError::io(&run.staging, e))?;
    let stats = run
        .client
        .stats()
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    Ok(SyncReport {
        shop: options.shop.clone(),
        mode: if run.checkpoint.full {
            "full"
        } else {
            "incremental"
        },
        since: run.checkpoint.since.clone(),
        resumed,
        objects: run.checkpoint.objects.clone(),
        requests: stats.requests,
        cost: stats.cost,
        throttled: stats.throttled,
        http_429: stats.http_429,
        server_errors: stats.server_errors,
        network_errors: stats.network_errors,
        waited_seconds: stats.waited.as_secs_f64(),
        bulk_waited_seconds: options
            .poll_interval
            .saturating_mul(u32::try_from(run.bulk_polls).unwrap_or(u32::MAX))
            .as_secs_f64(),
        bulk_polls: run.bulk_polls,
        seconds: started.elapsed().as_secs_f64(),
        ingest,
    })
}

/// The summary `supportlake sync shopify` prints: what was fetched and what it waited for,
/// then the ingest's report.
impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} sync of {}{}: {} objects in {} requests ({:.0} points), {:.1} s waiting for the rate limit or retries ({} throttled, {} HTTP 429, {} server errors), {:.1} s for bulk operations to finish, {:.1} s in all",
            self.mode,
            self.shop,
            if self.resumed { " (resumed)" } else { "" },
            self.objects.values().sum::<u64>(),
            self.requests,
            self.cost,
            self.waited_seconds,
            self.throttled,
            self.http_429,
            self.server_errors,
            self.bulk_waited_seconds,
            self.seconds
        )?;
        write!(f, "{}", self.ingest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While one sync of a shop holds its lock (the server's syncer, say), a second one
    /// started by hand is refused before it fetches or stages anything.
    #[test]
    fn a_second_sync_of_a_shop_is_refused_while_the_first_runs() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            state_dir: dir.path().join("state"),
            ..Config::default()
        };
        let shop = "a-shop.myshopify.com";
        let staging = sync_dir(&config, shop);
        std::fs::create_dir_all(&staging).unwrap();
        let held = std::fs::File::create(staging.join("sync.lock")).unwrap();
        held.try_lock().unwrap();
        let lake = Lake::open(
            crate::config::lake_url_from(dir.path().join("lake").to_str().unwrap()).unwrap(),
        )
        .unwrap();
        let options = SyncOptions {
            shop: shop.into(),
            // Nothing listens here: reaching it would fail differently.
            base_url: "http://127.0.0.1:9".into(),
            api_version: "2026-04".into(),
            token: "shpat_test".into(),
            full: false,
            since: None,
            poll_interval: Duration::from_millis(10),
            // One attempt: the second sync only has to get past the lock.
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let refused = runtime
            .block_on(sync_shopify(&lake, &config, &options, &mut |_| {}))
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("another sync of a-shop.myshopify.com is running"),
            "{refused}"
        );
        assert!(
            !staging.join("checkpoint.json").exists(),
            "nothing was started"
        );
        drop(held);
        let after = runtime
            .block_on(sync_shopify(&lake, &config, &options, &mut |_| {}))
            .unwrap_err();
        assert!(
            !after.to_string().contains("another sync"),
            "the lock went with its holder: {after}"
        );
    }
}
