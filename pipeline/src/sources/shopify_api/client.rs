//! The GraphQL Admin API client: one request at a time, paced by the shop's cost bucket.
//!
//! Shopify meters GraphQL by calculated query cost, not by request count: every response
//! carries `extensions.cost.throttleStatus` (`maximumAvailable`, `currentlyAvailable`,
//! `restoreRate`), and a request that costs more than the bucket holds is refused with a
//! `THROTTLED` error, usually on an HTTP 200. The client keeps the last status it saw and,
//! before each request, waits until the bucket has refilled enough for the request's
//! expected cost, so a long sync runs at the restore rate instead of bouncing off the limit.
//! What still goes wrong is retried: `THROTTLED` (wait for the missing points), HTTP 429
//! (wait `Retry-After`), HTTP 5xx and network failures (capped exponential backoff with
//! jitter). Anything else (a refused token, a malformed query) fails at once.
//!
//! The access token is sent in `X-Shopify-Access-Token` and nowhere else: it is not part of
//! any error, log line or `Debug` output.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{PipelineError, Result};

/// How failed requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included, before giving up.
    pub max_attempts: u32,
    /// First backoff after a server error; doubled per attempt.
    pub base_delay: Duration,
    /// Longest backoff, and longest single wait for the bucket or `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// The cost bucket as Shopify last reported it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    pub maximum: f64,
    pub available: f64,
    pub restore_rate: f64,
    /// When it was reported: the bucket has refilled since.
    pub seen: Instant,
}

impl Throttle {
    /// Points available now, counting the refill since the report.
    pub fn available_now(&self) -> f64 {
        (self.available + self.restore_rate * self.seen.elapsed().as_secs_f64()).min(self.maximum)
    }
}

/// What the client did so far: for the progress bar and the run summary.
#[derive(Debug, Clone, Default)]
pub struct ClientStats {
    pub requests: u64,
    /// Points Shopify charged (`actualQueryCost`).
    pub cost: f64,
    pub throttled: u64,
    pub http_429: u64,
    pub server_errors: u64,
    pub network_errors: u64,
    /// Time spent waiting for the bucket, `Retry-After` or a backoff.
    pub waited: Duration,
    pub throttle: Option<Throttle>,
    /// What the client is doing, in words (`waiting 2.4 s for 300 points`).
    pub state: String,
}

/// A GraphQL Admin API client for one shop.
pub struct AdminClient {
    http: reqwest::Client,
    endpoint: String,
    token: String,
    policy: RetryPolicy,
    stats: Arc<Mutex<ClientStats>>,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("endpoint", &self.endpoint)
            .field("token", &"(hidden)")
            .finish_non_exhaustive()
    }
}

/// Why one attempt did not return data.
enum Failure {
    /// Worth another attempt after `wait` (`None`: the backoff decides).
    Retry(Option<Duration>),
    Fatal(PipelineError),
}

fn shopify(message: impl Into<String>) -> PipelineError {
    PipelineError::Shopify(message.into())
}

/// A uniform number in `[0, 1)` for jitter (uuid v4 is already random and already here).
fn unit_random() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

impl AdminClient {
    /// `base` is the shop's origin (`https://shop.myshopify.com`, or a replay server's).
    pub fn new(base: &str, version: &str, token: &str, policy: RetryPolicy) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("supportlake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| shopify(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            endpoint: format!(
                "{}/admin/api/{version}/graphql.json",
                base.trim_end_matches('/')
            ),
            token: token.to_string(),
            policy,
            stats: Arc::default(),
        })
    }

    /// A handle on the running statistics (the progress bar reads it while a sync runs).
    pub fn stats(&self) -> Arc<Mutex<ClientStats>> {
        self.stats.clone()
    }

    fn note(&self, update: impl FnOnce(&mut ClientStats)) {
        if let Ok(mut stats) = self.stats.lock() {
            update(&mut stats);
        }
    }

    async fn wait(&self, how_long: Duration, why: String) {
        let how_long = how_long.min(self.policy.max_delay);
        self.note(|s| s.state = format!("{why}: waiting {:.1} s", how_long.as_secs_f64()));
        tokio::time::sleep(how_long).await;
        self.note(|s| {
            s.waited += how_long;
            s.state = "fetching".into();
        });
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .policy
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.policy.max_delay);
        // "Full jitter" between half and all of it: retries of many clients spread out.
        exponential.mul_f64(0.5 + unit_random() / 2.0)
    }

    /// Runs one GraphQL document and returns its `data`. `expected_cost` is what the query
    /// is likely to cost: the client waits for the bucket to hold that much first.
    pub async fn graphql(
        &self,
        query: &str,
        variables: Value,
        expected_cost: f64,
    ) -> Result<Value> {
        let body = serde_json::to_vec(&json!({"query": query, "variables": variables}))
            .map_err(|e| shopify(format!("encoding the request: {e}")))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let throttle = self.stats.lock().ok().and_then(|s| s.throttle);
            if let Some(t) = throttle {
                let missing = expected_cost.min(t.maximum) - t.available_now();
                if missing > 0.0 && t.restore_rate > 0.0 {
                    let wait = Duration::from_secs_f64(missing / t.restore_rate);
                    self.wait(wait, format!("rate limit, {missing:.0} points short"))
                        .await;
                }
            }
            match self.attempt(&body).await {
                Ok(data) => return Ok(data),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Retry(_)) if attempt >= self.policy.max_attempts => {
                    return Err(shopify(format!(
                        "gave up after {attempt} attempts (throttling or server errors persisted)"
                    )));
                }
                Err(Failure::Retry(wait)) => {
                    let wait = wait.unwrap_or_else(|| self.backoff(attempt));
                    self.wait(wait, format!("retry {attempt}")).await;
                }
            }
        }
    }

    async fn attempt(&self, body: &[u8]) -> std::result::Result<Value, Failure> {
        self.note(|s| s.requests += 1);
        let response = match self
            .http
            .post(&self.endpoint)
            .header("X-Shopify-Access-Token", &self.token)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(body.to_vec())
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(error = %error.without_url(), "Admin API request failed; retrying");
                self.note(|s| s.network_errors += 1);
                return Err(Failure::Retry(None));
            }
        };
        let status = response.status();
        if status.as_u16() == 429 {
            self.note(|s| s.http_429 += 1);
            let after = response
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .unwrap_or(1.0);
            return Err(Failure::Retry(Some(Duration::from_secs_f64(after))));
        }
        if status.is_server_error() {
            self.note(|s| s.server_errors += 1);
            return Err(Failure::Retry(None));
        }
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(Failure::Fatal(shopify(format!(
                "Shopify refused the access token (HTTP {status}): check the token and the app's scopes"
            ))));
        }
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(_) => {
                self.note(|s| s.network_errors += 1);
                return Err(Failure::Retry(None));
            }
        };
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(Failure::Fatal(shopify(format!(
                "HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            ))));
        }
        let reply: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Failure::Fatal(shopify(format!("the response is not JSON: {e}"))))?;
        let cost = &reply["extensions"]["cost"];
        let status = &cost["throttleStatus"];
        if let (Some(maximum), Some(available), Some(restore_rate)) = (
            status["maximumAvailable"].as_f64(),
            status["currentlyAvailable"].as_f64(),
            status["restoreRate"].as_f64(),
        ) {
            let throttle = Throttle {
                maximum,
                available,
                restore_rate,
                seen: Instant::now(),
            };
            self.note(|s| {
                s.throttle = Some(throttle);
                s.cost += cost["actualQueryCost"].as_f64().unwrap_or(0.0);
            });
        }
        if let Some(errors) = reply["errors"].as_array().filter(|e| !e.is_empty()) {
            let throttled = errors
                .iter()
                .any(|e| e["extensions"]["code"].as_str() == Some("THROTTLED"));
            if throttled {
                self.note(|s| s.throttled += 1);
                let requested = cost["requestedQueryCost"].as_f64().unwrap_or(0.0);
                let wait = match (
                    status["currentlyAvailable"].as_f64(),
                    status["restoreRate"].as_f64(),
                ) {
                    (Some(available), Some(rate)) if rate > 0.0 => Some(Duration::from_secs_f64(
                        ((requested - available) / rate).max(0.1),
                    )),
                    _ => None,
                };
                return Err(Failure::Retry(wait));
            }
            let messages: Vec<&str> = errors
                .iter()
                .filter_map(|e| e["message"].as_str())
                .collect();
            return Err(Failure::Fatal(shopify(format!(
                "the Admin API refused the query: {}",
                messages.join("; ")
            ))));
        }
        Ok(reply["data"].clone())
    }

    /// Downloads a bulk operation's result (a pre-signed URL: no token is sent) to `to`,
    /// whole or not at all; returns its size.
    pub async fn download(&self, url: &str, to: &Path) -> Result<u64> {
        let partial = to.with_extension("partial");
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.download_once(url, &partial).await {
                Ok(size) => {
                    std::fs::rename(&partial, to).map_err(|e| PipelineError::io(to, e))?;
                    return Ok(size);
                }
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Retry(_)) if attempt >= self.policy.max_attempts => {
                    return Err(shopify(format!(
                        "downloading the bulk result failed {attempt} times"
                    )));
                }
                Err(Failure::Retry(_)) => {
                    let wait = self.backoff(attempt);
                    self.wait(wait, format!("download retry {attempt}")).await;
                }
            }
        }
    }

    async fn download_once(&self, url: &str, to: &Path) -> std::result::Result<u64, Failure> {
        use std::io::Write;
        self.note(|s| s.state = "downloading bulk result".into());
        let mut response = match self.http.get(url).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                self.note(|s| s.server_errors += 1);
                return Err(Failure::Retry(None));
            }
            Ok(r) => {
                return Err(Failure::Fatal(shopify(format!(
                    "bulk result download: HTTP {}",
                    r.status()
                ))));
            }
            Err(_) => {
                self.note(|s| s.network_errors += 1);
                return Err(Failure::Retry(None));
            }
        };
        let file =
            std::fs::File::create(to).map_err(|e| Failure::Fatal(PipelineError::io(to, e)))?;
        let mut out = std::io::BufWriter::new(file);
        let mut size = 0u64;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    size += chunk.len() as u64;
                    out.write_all(&chunk)
                        .map_err(|e| Failure::Fatal(PipelineError::io(to, e)))?;
                }
                Ok(None) => break,
                Err(_) => {
                    self.note(|s| s.network_errors += 1);
                    return Err(Failure::Retry(None));
                }
            }
        }
        let file = out
            .into_inner()
            .map_err(|e| Failure::Fatal(PipelineError::io(to, e.into_error())))?;
        file.sync_all()
            .map_err(|e| Failure::Fatal(PipelineError::io(to, e)))?;
        Ok(size)
    }
}
