//! Load generator for the answer server: `SHOPPERS` concurrent shoppers hold conversations
//! over keep-alive HTTP/1.1 connections on loopback for `SECONDS`, then it prints answers per
//! second, latency percentiles and errors. Used by `bench/server`.
//!
//! Usage: load ADDRESS SHOP STORE_DIR SHOPPERS SECONDS [RATE]
//!        load webhooks ADDRESS SHOP SECRET SENDERS SECONDS [RATE]
//!
//! The `webhooks` form plays Shopify instead: `SENDERS` concurrent senders each post signed
//! deliveries as fast as they are acknowledged (a mix of the sample payloads of
//! `tests/fixtures/shopify/webhooks/2026-04`: orders/updated 40%, products/update,
//! customers/update and inventory_levels/update 20% each, every delivery with its own event
//! id, resource id and `updated_at`), then prints acknowledged deliveries per second and the
//! acknowledgement latency, and how long the applier took to bring the lake level with what
//! was acknowledged (the outbox gauge of `/metrics`, polled until empty).
//!
//! Without `RATE` every shopper sends its next request as soon as the last is answered (a
//! closed loop): the server's capacity. With `RATE` the shoppers together offer `RATE`
//! requests per second at random (Poisson) moments, each shopper still waiting for its
//! answer before it goes on; a request's latency counts from the moment it was due, not
//! from when a late answer let it go out, so a server falling behind cannot hide its
//! queue ("coordinated omission").
//!
//! The question mix is realistic by construction: messages are drawn from the shipped
//! evaluation sets (Bitext held-out utterances, the store's own product/stock/return
//! questions, out-of-scope questions), so every intent appears about as often as in those
//! sets. A shopper whose answer asks for verification verifies with a real order number and
//! email of the demo store (from its export) and gets the waiting answer; a third of the
//! conversations go on with a second question.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Connection {
    reader: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    async fn open(address: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
            host: address.to_string(),
        })
    }

    /// POSTs JSON and returns the status and body.
    async fn post(&mut self, path: &str, body: &Value) -> std::io::Result<(u16, Value)> {
        self.send("POST", path, "", body.to_string().as_bytes())
            .await
    }

    /// Sends a request with extra header lines (each ending in CRLF) and returns the status
    /// and JSON body.
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, Value)> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{headers}\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.reader.get_mut().write_all(&request).await?;
        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await?;
        let body = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        Ok((status, body))
    }
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    answers: usize,
    errors: usize,
    by_kind: std::collections::BTreeMap<String, usize>,
}

impl Tally {
    /// The tallies of all tasks, latencies sorted.
    async fn gather(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
        let mut total = Tally::default();
        for task in tasks {
            let t = task.await.expect("load task");
            total.latencies.extend(t.latencies);
            total.answers += t.answers;
            total.errors += t.errors;
            for (k, v) in t.by_kind {
                *total.by_kind.entry(k).or_default() += v;
            }
        }
        total.latencies.sort();
        total
    }
}

/// A deterministic pseudo-random sequence per shopper (xorshift).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    /// An exponentially distributed wait with the given mean: the gap between Poisson
    /// arrivals.
    fn wait(&mut self, mean: Duration) -> Duration {
        const STEPS: usize = 1 << 24;
        let uniform = (self.below(STEPS) + 1) as f64 / STEPS as f64;
        mean.mul_f64(-uniform.ln())
    }
}

/// When a shopper's requests are due: now (closed loop), or at Poisson moments.
struct Pace {
    mean_gap: Option<Duration>,
    due: Instant,
}

impl Pace {
    /// Waits until the next request is due and returns that moment.
    async fn next(&mut self, dice: &mut Dice) -> Instant {
        let Some(mean) = self.mean_gap else {
            return Instant::now();
        };
        self.due += dice.wait(mean);
        tokio::time::sleep_until(self.due.into()).await;
        self.due
    }
}

#[allow(clippy::too_many_arguments)]
async fn shopper(
    id: u64,
    address: String,
    shop: String,
    questions: std::sync::Arc<Vec<String>>,
    orders: std::sync::Arc<Vec<(String, String)>>,
    until: Instant,
    measure_from: Instant,
    mean_gap: Option<Duration>,
) -> Tally {
    let mut tally = Tally::default();
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (id + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut pace = Pace {
        mean_gap,
        due: Instant::now(),
    };
    let Ok(mut connection) = Connection::open(&address).await else {
        tally.errors += 1;
        return tally;
    };
    while Instant::now() < until {
        let mut conversation: Option<String> = None;
        let turns = if dice.below(3) == 0 { 2 } else { 1 };
        for _ in 0..turns {
            let question = &questions[dice.below(questions.len())];
            let started = pace.next(&mut dice).await;
            if started >= until {
                break;
            }
            let result = connection
                .post(
                    "/v1/chat",
                    &json!({"shop": shop, "conversation_id": conversation, "message": question}),
                )
                .await;
            let (status, body) = match result {
                Ok(r) => r,
                Err(_) => {
                    tally.errors += 1;
                    connection = match Connection::open(&address).await {
                        Ok(c) => c,
                        Err(_) => return tally,
                    };
                    break;
                }
            };
            let measured = started >= measure_from;
            if measured {
                tally.latencies.push(started.elapsed());
            }
            if status != 200 {
                tally.errors += usize::from(measured);
                break;
            }
            if measured {
                tally.answers += 1;
            }
            conversation = body["conversation_id"].as_str().map(str::to_string);
            if body["reply"]["needs_verification"] == true {
                let (number, email) = &orders[dice.below(orders.len())];
                let started = pace.next(&mut dice).await;
                let path = format!(
                    "/v1/conversations/{}/verify?shop={shop}",
                    conversation.as_deref().unwrap_or_default()
                );
                match connection
                    .post(&path, &json!({"order_number": number, "email": email}))
                    .await
                {
                    Ok((200, verified)) => {
                        if started >= measure_from {
                            tally.latencies.push(started.elapsed());
                            tally.answers += usize::from(verified.get("reply").is_some());
                            *tally.by_kind.entry("verified".into()).or_default() += 1;
                        }
                    }
                    _ => {
                        tally.errors += usize::from(started >= measure_from);
                        break;
                    }
                }
            }
            if body["reply"]["handoff"].is_object() {
                *tally.by_kind.entry("handoff".into()).or_default() += usize::from(measured);
                break;
            }
        }
    }
    tally
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

fn read_questions() -> Vec<String> {
    let mut questions = Vec::new();
    for set in [
        "intents-bitext-heldout.csv",
        "intents-store.csv",
        "out-of-scope.csv",
    ] {
        let mut reader =
            csv::Reader::from_path(format!("data/eval/{set}")).expect("evaluation set");
        for row in reader.records().map_while(Result::ok) {
            questions.push(row[0].to_string());
        }
    }
    questions
}

fn read_orders(store: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("{store}/orders.jsonl"))
        .expect("orders.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|o| {
            Some((
                o["order_number"].as_i64()?.to_string(),
                o["email"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The payload templates of the webhook mix, with their topic and weight.
fn webhook_templates() -> Vec<(&'static str, Value, usize)> {
    let read = |name: &str| -> Value {
        let path = format!("tests/fixtures/shopify/webhooks/{name}");
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("JSON")
    };
    let mut inventory = read("exemplars_anonymized_2025-04/inventory_levels__1.json");
    inventory["updated_at"] = json!("2026-11-28T00:00:00Z");
    vec![
        ("orders/updated", read("2026-04/orders__updated.json"), 4),
        ("products/update", read("2026-04/products__update.json"), 2),
        (
            "customers/update",
            read("2026-04/customers__update.json"),
            2,
        ),
        ("inventory_levels/update", inventory, 2),
    ]
}

/// The body of delivery `n`: a template with its own resource id and version.
fn webhook_body(template: &Value, topic: &str, n: u64) -> Vec<u8> {
    let mut body = template.clone();
    let id = 5_000_000_000 + n as i64;
    if topic == "inventory_levels/update" {
        body["inventory_item_id"] = json!(id);
        body["location_id"] = json!(1);
    } else {
        body["id"] = json!(id);
    }
    // Nested resources get their own ids too, as in a real store.
    for nested in ["line_items", "variants"] {
        if let Some(items) = body[nested].as_array_mut() {
            for (i, item) in items.iter_mut().enumerate() {
                item["id"] = json!(id * 100 + i as i64);
            }
        }
    }
    body["updated_at"] = json!(format!(
        "2026-11-28T{:02}:{:02}:{:02}Z",
        n / 3600 % 24,
        n / 60 % 60,
        n % 60
    ));
    serde_json::to_vec(&body).expect("JSON")
}

fn sign(secret: &str, body: &[u8]) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[allow(clippy::too_many_arguments)]
async fn webhook_sender(
    run: u128,
    id: u64,
    address: String,
    shop: String,
    secret: String,
    templates: std::sync::Arc<Vec<(&'static str, Value, usize)>>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
    until: Instant,
    measure_from: Instant,
    mean_gap: Option<Duration>,
) -> Tally {
    let mut tally = Tally::default();
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15 ^ (id + 1));
    let mut pace = Pace {
        mean_gap,
        due: Instant::now(),
    };
    let weights: usize = templates.iter().map(|t| t.2).sum();
    let Ok(mut connection) = Connection::open(&address).await else {
        tally.errors += 1;
        return tally;
    };
    while Instant::now() < until {
        // Closed loop: now; open loop: when due, and latency counts from then.
        let started = pace.next(&mut dice).await;
        if started >= until {
            break;
        }
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut pick = dice.below(weights);
        let (topic, template, _) = templates
            .iter()
            .find(|t| {
                let hit = pick < t.2;
                pick = pick.saturating_sub(t.2);
                hit
            })
            .expect("weights cover the range");
        let body = webhook_body(template, topic, n);
        let headers = format!(
            "x-shopify-topic: {topic}\r\nx-shopify-hmac-sha256: {}\r\nx-shopify-shop-domain: {shop}\r\n\
             x-shopify-api-version: 2026-04\r\nx-shopify-webhook-id: bench-w{run}-{n}\r\nx-shopify-event-id: bench-{run}-{n}\r\n",
            sign(&secret, &body)
        );
        let result = connection
            .send("POST", "/webhooks/shopify", &headers, &body)
            .await;
        let measured = started >= measure_from && started < until;
        match result {
            Ok((200, _)) if measured => {
                tally.latencies.push(started.elapsed());
                tally.answers += 1;
            }
            Ok((200, _)) => {}
            Ok(_) => tally.errors += usize::from(measured),
            Err(_) => {
                tally.errors += usize::from(measured);
                match Connection::open(&address).await {
                    Ok(c) => connection = c,
                    Err(_) => return tally,
                }
            }
        }
    }
    tally
}

/// `load webhooks ADDRESS SHOP SECRET SENDERS SECONDS [RATE]`: without RATE every sender
/// posts as soon as acknowledged (capacity); with it the senders together offer RATE
/// deliveries/s at Poisson moments (latency at that rate, counted from when each was due).
async fn webhooks(
    address: &str,
    shop: &str,
    secret: &str,
    senders: u64,
    seconds: u64,
    rate: Option<f64>,
) {
    let mean_gap = rate.map(|r| Duration::from_secs_f64(senders as f64 / r));
    // Event ids unique across runs: a second run on the same server is not deduplicated.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let templates = std::sync::Arc::new(webhook_templates());
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let warmup = Duration::from_secs(3);
    let measure_from = Instant::now() + warmup;
    let until = measure_from + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..senders)
        .map(|id| {
            tokio::spawn(webhook_sender(
                run,
                id,
                address.to_string(),
                shop.to_string(),
                secret.to_string(),
                templates.clone(),
                next.clone(),
                until,
                measure_from,
                mean_gap,
            ))
        })
        .collect();
    let total = Tally::gather(tasks).await;
    let stopped = Instant::now();
    let pacing = match rate {
        None => "each posting as soon as acknowledged".to_string(),
        Some(r) => format!("together offering {r:.0} deliveries/s at Poisson moments"),
    };
    println!(
        "{senders} senders, {pacing}, {seconds} s measured after {} s warm-up",
        warmup.as_secs()
    );
    println!(
        "acknowledged {} ({:.0}/s), errors {}, all sent {}",
        total.answers,
        total.answers as f64 / seconds as f64,
        total.errors,
        next.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "ack latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&total.latencies, 0.50),
        percentile(&total.latencies, 0.90),
        percentile(&total.latencies, 0.99),
        percentile(&total.latencies, 1.0),
    );
    // Applier lag: how long until every acknowledged delivery is in the lake.
    let mut connection = Connection::open(address).await.expect("metrics connection");
    let mut backlog_at_stop = None;
    loop {
        let waiting = match connection.send("GET", "/metrics", "", b"").await {
            Ok((_, Value::String(text))) => text
                .lines()
                .find_map(|l| l.strip_prefix("supportlake_webhook_outbox_deliveries "))
                .and_then(|v| v.trim().parse::<u64>().ok()),
            _ => None,
        };
        let waiting = waiting.unwrap_or(u64::MAX);
        backlog_at_stop.get_or_insert(waiting);
        if waiting == 0 || stopped.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "applier: {} deliveries waiting when sending stopped, lake level with acknowledgements {:.1} s later",
        backlog_at_stop.unwrap_or_default(),
        stopped.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, address, shop, secret, senders, seconds, rate @ ..] = &args[..]
        && mode == "webhooks"
        && rate.len() <= 1
    {
        let senders: u64 = senders.parse().expect("SENDERS");
        let seconds: u64 = seconds.parse().expect("SECONDS");
        let rate = rate.first().map(|r| r.parse::<f64>().expect("RATE"));
        webhooks(address, shop, secret, senders, seconds, rate).await;
        return;
    }
    let (address, shop, store, shoppers, seconds, rate) = match &args[..] {
        [_, address, shop, store, shoppers, seconds] => {
            (address, shop, store, shoppers, seconds, None)
        }
        [_, address, shop, store, shoppers, seconds, rate] => {
            (address, shop, store, shoppers, seconds, Some(rate))
        }
        _ => {
            eprintln!("usage: load ADDRESS SHOP STORE_DIR SHOPPERS SECONDS [RATE]");
            std::process::exit(2);
        }
    };
    let shoppers: u64 = shoppers.parse().expect("SHOPPERS");
    let seconds: u64 = seconds.parse().expect("SECONDS");
    let rate: Option<f64> = rate.map(|r| r.parse().expect("RATE (requests per second)"));
    // Each shopper offers its share of the rate.
    let mean_gap = rate.map(|r| Duration::from_secs_f64(shoppers as f64 / r));
    let questions = std::sync::Arc::new(read_questions());
    let orders = std::sync::Arc::new(read_orders(store));
    // A few seconds of warm-up are not measured (connections, caches, the first lake flush).
    let warmup = Duration::from_secs(5);
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..shoppers)
        .map(|id| {
            tokio::spawn(shopper(
                id,
                address.clone(),
                shop.clone(),
                questions.clone(),
                orders.clone(),
                until,
                measure_from,
                mean_gap,
            ))
        })
        .collect();
    let total = Tally::gather(tasks).await;
    let measured = seconds as f64;
    let pacing = match rate {
        Some(r) => format!("offering {r:.0} requests/s at Poisson moments"),
        None => "each sending as soon as answered".to_string(),
    };
    println!(
        "{shoppers} shoppers {pacing}, {seconds} s measured after {} s warm-up, {} questions in the mix",
        warmup.as_secs(),
        questions.len()
    );
    println!(
        "answers {} ({:.0}/s), requests {} ({:.0}/s), errors {}, verifications {}, handoffs {}",
        total.answers,
        total.answers as f64 / measured,
        total.latencies.len(),
        total.latencies.len() as f64 / measured,
        total.errors,
        total.by_kind.get("verified").copied().unwrap_or(0),
        total.by_kind.get("handoff").copied().unwrap_or(0),
    );
    println!(
        "latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&total.latencies, 0.50),
        percentile(&total.latencies, 0.90),
        percentile(&total.latencies, 0.99),
        percentile(&total.latencies, 1.0),
    );
}
