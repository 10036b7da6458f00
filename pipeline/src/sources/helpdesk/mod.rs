//! # Helpdesk history imports
//!
//! A store that adopts supportlake has months of tickets in the helpdesk it used so far, and
//! they are the best evidence of what its shoppers ask: `supportlake import zendesk|gorgias|csv`
//! turns them into conversations the reports read like live chat.
//!
//! Each format has a reader (`zendesk`, `gorgias`, [`generic_csv`]) that turns the vendor's export
//! into [`Ticket`]s and [`Rejected`] records — a ticket with a broken id or timestamp is
//! rejected whole (its messages with it), a broken message alone, a rating outside its scale
//! alone (the ticket stays) — each with its reason. [`import`] then joins the tickets to the
//! store (the requester's email to the customer, an order number in the text to the order),
//! classifies each by its first shopper message (the index crate's classifier, passed in as a
//! function), and stages them as one `conversations.jsonl` in supportlake's own conversation
//! shape, which the ordinary ingest maps to `conversations`, `messages`, `csat` and `tickets`:
//! message texts are PII-redacted there, and rows are upserted by id and `updated_at`, so an
//! import run twice writes nothing the second time. Rejected records become `quarantine` rows,
//! keyed by their content, so they too are written once.
//!
//! Every imported conversation has the resolution path `human_only`: the helpdesk's tickets
//! were answered by people.

pub mod generic_csv;
mod gorgias;
mod zendesk;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Config;
use crate::error::{PipelineError, Result};
use crate::ingest::{IngestReport, ingest_labelled, quarantine_row, to_batch};
use crate::lake::vocab::{ConversationStatus, ResolutionPath, Role};
use crate::lake::{Lake, schema};
use crate::sql::{SqlEngine, strings};

/// A helpdesk ticket as the readers hand it over.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// The vendor's id; the conversation's is `<source>-<external_id>`.
    pub external_id: String,
    pub subject: Option<String>,
    /// Open or resolved.
    pub status: Option<ConversationStatus>,
    /// `chat`, `email` or `contact_form`, as supportlake's own channels.
    pub channel: Option<String>,
    pub customer_email: Option<String>,
    pub assignee: Option<String>,
    pub tags: Vec<String>,
    /// Time agents spent on it, where the helpdesk tracks it.
    pub handle_seconds: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub solved_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub messages: Vec<Message>,
    pub csat: Option<Csat>,
}

/// A message the shopper saw (internal notes are not imported).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub external_id: String,
    /// The shopper or an agent.
    pub role: Role,
    pub author: Option<String>,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// A satisfaction rating on supportlake's 1–5 scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Csat {
    pub score: i64,
    pub comment: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// A record that could not be imported, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub file: String,
    pub record_ref: String,
    /// `conversations` (a ticket), `messages` or `csat`.
    pub target: &'static str,
    pub reason: String,
    pub raw: String,
}

/// What a reader made of an export.
#[derive(Debug, Default)]
pub struct Parsed {
    pub tickets: Vec<Ticket>,
    pub rejected: Vec<Rejected>,
    /// Internal notes, which the shopper never saw.
    pub notes_skipped: usize,
    /// Messages of tickets that were rejected.
    pub skipped_with_ticket: usize,
}

impl Parsed {
    fn reject(
        &mut self,
        file: &str,
        record_ref: String,
        target: &'static str,
        reason: String,
        raw: &Value,
    ) {
        self.rejected.push(Rejected {
            file: file.to_string(),
            record_ref,
            target,
            reason,
            raw: raw.to_string(),
        });
    }
}

/// The helpdesks supportlake reads.
#[derive(Debug, Clone)]
pub enum Source {
    /// A directory with `tickets.json` (incremental ticket export, users side-loaded) and
    /// `ticket_comments.json`; `handle_time_field` is the custom field holding seconds
    /// spent (the Time Tracking app's, which differs per account).
    Zendesk { handle_time_field: Option<i64> },
    /// A directory with `tickets.json` and `messages.json` (the REST list responses).
    Gorgias,
    /// One CSV file read through a column mapping.
    Csv(Box<generic_csv::Mapping>),
}

impl Source {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Zendesk { .. } => "zendesk",
            Self::Gorgias => "gorgias",
            Self::Csv(_) => "csv",
        }
    }

    pub fn read(&self, path: &Path) -> Result<Parsed> {
        match self {
            Self::Zendesk { handle_time_field } => zendesk::read(path, *handle_time_field),
            Self::Gorgias => gorgias::read(path),
            Self::Csv(mapping) => generic_csv::read(path, mapping),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub source: &'static str,
    pub tickets: usize,
    pub messages: usize,
    pub csat: usize,
    /// Tickets linked to a store customer by email.
    pub linked_customers: usize,
    /// Tickets linked to an order named in the text.
    pub linked_orders: usize,
    /// Tickets the classifier gave an intent.
    pub classified: usize,
    /// Rejected records per kind (`conversations`, `messages`, `csat`).
    pub rejected: BTreeMap<&'static str, usize>,
    pub notes_skipped: usize,
    pub skipped_with_ticket: usize,
    pub ingest: IngestReport,
}

/// Parses an RFC 3339 time (what every JSON helpdesk API writes).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The store's customers by email hash and orders by name, to link tickets to.
struct StoreLinks {
    customers: HashMap<String, i64>,
    orders: HashMap<String, (i64, Option<i64>)>,
}

static ORDER_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"#\s?(\d{3,})\b").expect("valid regex"));

impl StoreLinks {
    async fn load(lake: &Lake, shop: &str) -> Result<Self> {
        let engine = SqlEngine::open(lake).await?;
        let shop = crate::sql::sql_string(shop);
        let mut links = Self {
            customers: HashMap::new(),
            orders: HashMap::new(),
        };
        if engine.has_table("customers") {
            let batches = engine
                .query(&format!(
                    "SELECT CAST(id AS STRING) AS id, email_hash FROM customers WHERE shop_id = {shop}"
                ))
                .await?;
            for (id, hash) in strings(&batches, "id")?
                .into_iter()
                .zip(strings(&batches, "email_hash")?)
            {
                if let (Some(id), Some(hash)) = (id.and_then(|i| i.parse().ok()), hash) {
                    links.customers.insert(hash, id);
                }
            }
        }
        if engine.has_table("orders") {
            let batches = engine
                .query(&format!(
                    "SELECT CAST(id AS STRING) AS id, name, CAST(customer_id AS STRING) AS customer_id \
                     FROM orders WHERE shop_id = {shop}"
                ))
                .await?;
            let (ids, names, customers) = (
                strings(&batches, "id")?,
                strings(&batches, "name")?,
                strings(&batches, "customer_id")?,
            );
            for ((id, name), customer) in ids.into_iter().zip(names).zip(customers) {
                if let (Some(id), Some(name)) = (id.and_then(|i| i.parse().ok()), name) {
                    let customer = customer.and_then(|c| c.parse().ok());
                    links.orders.insert(name, (id, customer));
                }
            }
        }
        Ok(links)
    }

    /// The first order of the store named in the subject or a shopper's message.
    fn order_in(&self, ticket: &Ticket) -> Option<(i64, Option<i64>)> {
        let texts = ticket.subject.iter().map(String::as_str).chain(
            ticket
                .messages
                .iter()
                .filter(|m| m.role == Role::Shopper)
                .map(|m| m.text.as_str()),
        );
        for text in texts {
            for number in ORDER_NAME.captures_iter(text) {
                if let Some(order) = self.orders.get(&format!("#{}", &number[1])) {
                    return Some(*order);
                }
            }
        }
        None
    }
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Counts of the links made while staging.
#[derive(Default)]
struct Linked {
    customers: usize,
    orders: usize,
    classified: usize,
}

/// A ticket in supportlake's conversation-export shape.
fn conversation(
    source: &str,
    ticket: &Ticket,
    customer: Option<i64>,
    order: Option<i64>,
    intent: Option<&str>,
) -> Value {
    let id = format!("{source}-{}", ticket.external_id);
    let mut messages = ticket.messages.clone();
    messages.sort_by_key(|m| m.created_at);
    let messages: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(seq, m)| {
            json!({
                "id": format!("{source}-{}", m.external_id), "seq": seq, "role": m.role,
                "author": m.author, "text": m.text, "created_at": rfc3339(&m.created_at),
            })
        })
        .collect();
    json!({
        "id": id, "channel": ticket.channel, "customer_id": customer, "order_id": order,
        "primary_intent": intent, "status": ticket.status, "resolution_path": ResolutionPath::HumanOnly,
        "assignee": ticket.assignee, "agent_handle_seconds": ticket.handle_seconds,
        "tags": ticket.tags, "started_at": rfc3339(&ticket.created_at),
        "ended_at": ticket.solved_at.as_ref().map(rfc3339), "updated_at": rfc3339(&ticket.updated_at),
        "messages": messages,
        "csat": ticket.csat.as_ref().map(|c| json!({
            "score": c.score, "comment": c.comment,
            "created_at": c.created_at.as_ref().map(rfc3339).unwrap_or_else(|| rfc3339(&ticket.updated_at)),
        })),
        "ticket": {"id": id, "source": source, "external_id": ticket.external_id, "subject": ticket.subject},
    })
}

/// Imports a helpdesk export at `path` into `shop`'s conversations. `classify` names the
/// intent of a shopper's first message (`None` when no classifier is available).
pub async fn import(
    lake: &Lake,
    config: &Config,
    source: &Source,
    path: &Path,
    shop: &str,
    classify: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<ImportReport> {
    let parsed = source.read(path)?;
    let links = StoreLinks::load(lake, shop).await?;
    let mut linked = Linked::default();
    let mut staged = String::new();
    for ticket in &parsed.tickets {
        let by_email = ticket
            .customer_email
            .as_deref()
            .map(|e| crate::pii::email_hash(&config.pii_hash_key, e))
            .and_then(|hash| links.customers.get(&hash).copied());
        let order = links.order_in(ticket);
        let customer = by_email.or(order.and_then(|(_, c)| c));
        linked.customers += usize::from(customer.is_some());
        linked.orders += usize::from(order.is_some());
        let intent = ticket
            .messages
            .iter()
            .filter(|m| m.role == Role::Shopper)
            .min_by_key(|m| m.created_at)
            .and_then(|m| classify(&m.text));
        linked.classified += usize::from(intent.is_some());
        let record = conversation(
            source.name(),
            ticket,
            customer,
            order.map(|(id, _)| id),
            intent.as_deref(),
        );
        staged.push_str(&record.to_string());
        staged.push('\n');
    }
    let staging = config
        .state_dir
        .join("import")
        .join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir_all(&staging).map_err(|e| PipelineError::io(&staging, e))?;
    let write = |name: &str, text: &str| {
        let file = staging.join(name);
        std::fs::write(&file, text).map_err(|e| PipelineError::io(&file, e))
    };
    write(
        "export.json",
        &json!({"shop": shop, "exported_at": rfc3339(&Utc::now()), "format": source.name()})
            .to_string(),
    )?;
    write("conversations.jsonl", &staged)?;
    let label = format!("{}:{}", source.name(), path.display());
    let ingest = ingest_labelled(lake, &staging, config, &label, &mut |_, _| {}).await;
    std::fs::remove_dir_all(&staging).map_err(|e| PipelineError::io(&staging, e))?;
    let ingest = ingest?;
    let quarantine: Vec<Value> = parsed
        .rejected
        .iter()
        .map(|r| {
            quarantine_row(
                shop,
                &ingest.run_id,
                &format!("{}/{}", source.name(), r.file),
                &r.record_ref,
                r.target,
                &r.reason,
                &r.raw,
            )
        })
        .collect();
    if !quarantine.is_empty() {
        let spec = schema::table("quarantine").expect("quarantine is a lake table");
        lake.write(spec, to_batch(spec, &quarantine)?).await?;
    }
    let mut rejected = BTreeMap::new();
    for r in &parsed.rejected {
        *rejected.entry(r.target).or_default() += 1;
    }
    Ok(ImportReport {
        source: source.name(),
        tickets: parsed.tickets.len(),
        messages: parsed.tickets.iter().map(|t| t.messages.len()).sum(),
        csat: parsed.tickets.iter().filter(|t| t.csat.is_some()).count(),
        linked_customers: linked.customers,
        linked_orders: linked.orders,
        classified: linked.classified,
        rejected,
        notes_skipped: parsed.notes_skipped,
        skipped_with_ticket: parsed.skipped_with_ticket,
        ingest,
    })
}

/// The summary `supportlake import` prints: what was read and linked, then the ingest's
/// report (whose shop is the one imported into).
impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} import into {}: {} tickets, {} messages, {} ratings; {} linked to customers, {} to orders, {} classified; rejected {:?}; {} internal notes and {} messages of rejected tickets skipped",
            self.source,
            self.ingest.shop_id,
            self.tickets,
            self.messages,
            self.csat,
            self.linked_customers,
            self.linked_orders,
            self.classified,
            self.rejected,
            self.notes_skipped,
            self.skipped_with_ticket
        )?;
        write!(f, "{}", self.ingest)
    }
}
