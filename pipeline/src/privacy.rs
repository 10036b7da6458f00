//! Shopify's mandatory compliance requests, carried out on the lake.
//!
//! * [`redact_customer`] (`customers/redact`): the customer's row goes; their orders stay for
//!   the merchant's accounting but lose every personal field (customer id, email hash,
//!   shipping place); their conversations go with their messages, turns, handoff packets,
//!   CSAT and tickets; their raw webhook deliveries and quarantined records go.
//! * [`redact_shop`] (`shop/redact`): every row of the shop, in every table.
//! * [`export_customer`] (`customers/data_request`): one JSON file of everything held about
//!   the customer, for the merchant to hand over.
//!
//! A Delta delete only writes new files: the old ones, still holding the deleted rows, stay
//! for time travel. A redaction is not done until they are gone, so every table it touched
//! is vacuumed with zero retention ([`Lake::purge_history`]). Each step is idempotent: a
//! request applied twice (a crash between its steps) deletes nothing more the second time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use deltalake::arrow::array::RecordBatch;
use serde_json::{Value, json};

use crate::error::{PipelineError, Result};
use crate::lake::{Lake, TABLES, schema};
use crate::sources::webhooks::{CustomerRef, mentions};
use crate::sql::sql_string;
use crate::sql::{Format, SqlEngine, render, strings};

/// What one request did, for the audit row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Rows deleted or stripped of PII, per table.
    pub table_counts: BTreeMap<&'static str, usize>,
    /// Old data files deleted by the vacuum.
    pub files_purged: usize,
    /// The export written, for a data request.
    pub export_path: Option<PathBuf>,
}

impl Outcome {
    pub fn rows_affected(&self) -> usize {
        self.table_counts.values().sum()
    }

    fn add(&mut self, table: &'static str, rows: usize) {
        if rows > 0 {
            *self.table_counts.entry(table).or_default() += rows;
        }
    }
}

fn spec(name: &str) -> &'static schema::TableSpec {
    schema::table(name).expect("privacy only names tables of the schema")
}

fn id_list(ids: &[i64]) -> Option<String> {
    (!ids.is_empty()).then(|| {
        ids.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    })
}

fn string_list(ids: &[String]) -> Option<String> {
    (!ids.is_empty()).then(|| {
        ids.iter()
            .map(|id| sql_string(id))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The SQL condition that picks out the customer's rows: by `id_column` (their customer id),
/// by the keyed hash of their email, and, where the table names orders, by the orders the
/// request lists. `None` when the request identifies nobody.
fn customer_match(
    customer: &CustomerRef,
    email_hash: Option<&str>,
    id_column: &str,
    order_id_column: Option<&str>,
) -> Option<String> {
    let mut any = Vec::new();
    if let Some(id) = customer.id {
        any.push(format!("{id_column} = {id}"));
    }
    if let Some(hash) = email_hash {
        any.push(format!("email_hash = {}", sql_string(hash)));
    }
    if let (Some(column), Some(ids)) = (order_id_column, id_list(&customer.order_ids)) {
        any.push(format!("{column} IN ({ids})"));
    }
    (!any.is_empty()).then(|| format!("({})", any.join(" OR ")))
}

/// The keyed hash the lake holds instead of the customer's email.
fn email_hash_of(pii_key: &str, customer: &CustomerRef) -> Option<String> {
    customer
        .email
        .as_deref()
        .map(|e| crate::pii::email_hash(pii_key, e))
}

/// The customer's conversations: theirs by customer id or about one of their orders.
async fn conversation_ids(
    engine: &SqlEngine,
    shop: &str,
    customer: &CustomerRef,
) -> Result<Vec<String>> {
    let mut any = Vec::new();
    if let Some(id) = customer.id {
        any.push(format!("customer_id = {id}"));
    }
    if let Some(ids) = id_list(&customer.order_ids) {
        any.push(format!("order_id IN ({ids})"));
    }
    if any.is_empty() || !engine.has_table("conversations") {
        return Ok(Vec::new());
    }
    let batches = engine
        .query(&format!(
            "SELECT id FROM conversations WHERE shop_id = {} AND ({})",
            sql_string(shop),
            any.join(" OR ")
        ))
        .await?;
    Ok(strings(&batches, "id")?.into_iter().flatten().collect())
}

/// Keys `(event_id, topic)` of the shop's raw deliveries about the customer.
async fn deliveries_about(
    engine: &SqlEngine,
    shop: &str,
    customer: &CustomerRef,
) -> Result<Vec<(String, String)>> {
    if !engine.has_table("webhook_events") {
        return Ok(Vec::new());
    }
    let batches = engine
        .query(&format!(
            "SELECT event_id, topic, payload FROM webhook_events WHERE shop_id = {}",
            sql_string(shop)
        ))
        .await?;
    let (events, topics, payloads) = (
        strings(&batches, "event_id")?,
        strings(&batches, "topic")?,
        strings(&batches, "payload")?,
    );
    let mut found = Vec::new();
    for ((event, topic), payload) in events.into_iter().zip(topics).zip(payloads) {
        let (Some(event), Some(topic)) = (event, topic) else {
            continue;
        };
        let about = payload
            .as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .is_some_and(|p| mentions(&topic, &p, customer));
        if about {
            found.push((event, topic));
        }
    }
    Ok(found)
}

/// Quarantined records of the shop whose raw text names the customer's email.
async fn quarantined_about(
    engine: &SqlEngine,
    shop: &str,
    email: Option<&str>,
) -> Result<Vec<String>> {
    let Some(email) = email else {
        return Ok(Vec::new());
    };
    if !engine.has_table("quarantine") {
        return Ok(Vec::new());
    }
    let batches = engine
        .query(&format!(
            "SELECT id FROM quarantine WHERE shop_id = {} AND strpos(lower(raw), {}) > 0",
            sql_string(shop),
            sql_string(&email.to_lowercase())
        ))
        .await?;
    Ok(strings(&batches, "id")?.into_iter().flatten().collect())
}

/// `customers/redact`: see the module doc.
pub async fn redact_customer(
    lake: &Lake,
    pii_key: &str,
    shop: &str,
    customer: &CustomerRef,
) -> Result<Outcome> {
    let engine = SqlEngine::open(lake).await?;
    let shop_is = format!("shop_id = {}", sql_string(shop));
    let email_hash = email_hash_of(pii_key, customer);
    let mut outcome = Outcome::default();

    let conversations = conversation_ids(&engine, shop, customer).await?;
    if let Some(ids) = string_list(&conversations) {
        for table in ["messages", "turns", "handoffs", "csat", "tickets"] {
            let rows = lake
                .delete_where(
                    spec(table),
                    &format!("{shop_is} AND conversation_id IN ({ids})"),
                )
                .await?;
            outcome.add(spec(table).name, rows);
        }
        let rows = lake
            .delete_where(
                spec("conversations"),
                &format!("{shop_is} AND id IN ({ids})"),
            )
            .await?;
        outcome.add("conversations", rows);
    }
    if let Some(customer_row) = customer_match(customer, email_hash.as_deref(), "id", None) {
        let rows = lake
            .delete_where(spec("customers"), &format!("{shop_is} AND {customer_row}"))
            .await?;
        outcome.add("customers", rows);
    }
    // Orders stay (accounting), stripped of everything that points at the person.
    if let Some(matching) =
        customer_match(customer, email_hash.as_deref(), "customer_id", Some("id"))
    {
        let rows = lake
            .update_where(
                spec("orders"),
                &format!(
                    "{shop_is} AND {matching} AND (customer_id IS NOT NULL OR email_hash IS NOT NULL \
                     OR ship_city IS NOT NULL OR ship_province IS NOT NULL)"
                ),
                &[
                    ("customer_id", "CAST(NULL AS BIGINT)"),
                    ("email_hash", "CAST(NULL AS STRING)"),
                    ("ship_city", "CAST(NULL AS STRING)"),
                    ("ship_province", "CAST(NULL AS STRING)"),
                ],
            )
            .await?;
        outcome.add("orders", rows);
    }
    let deliveries = deliveries_about(&engine, shop, customer).await?;
    for chunk in deliveries.chunks(500) {
        let keys = chunk
            .iter()
            .map(|(event, topic)| {
                format!(
                    "(event_id = {} AND topic = {})",
                    sql_string(event),
                    sql_string(topic)
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        let rows = lake
            .delete_where(spec("webhook_events"), &format!("{shop_is} AND ({keys})"))
            .await?;
        outcome.add("webhook_events", rows);
    }
    let quarantined = quarantined_about(&engine, shop, customer.email.as_deref()).await?;
    if let Some(ids) = string_list(&quarantined) {
        let rows = lake
            .delete_where(spec("quarantine"), &format!("{shop_is} AND id IN ({ids})"))
            .await?;
        outcome.add("quarantine", rows);
    }
    purge(lake, &mut outcome).await?;
    Ok(outcome)
}

/// Vacuums, with zero retention, every table the request changed.
async fn purge(lake: &Lake, outcome: &mut Outcome) -> Result<()> {
    for table in outcome.table_counts.keys().copied().collect::<Vec<_>>() {
        outcome.files_purged += lake.purge_history(spec(table)).await?;
    }
    Ok(())
}

/// `shop/redact`: every row of the shop, in every table but the audit log (which holds no
/// personal data and is the proof the request was carried out).
pub async fn redact_shop(lake: &Lake, shop: &str) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for table in TABLES.iter().filter(|t| t.name != "privacy_audit") {
        let rows = lake
            .delete_where(table, &format!("shop_id = {}", sql_string(shop)))
            .await?;
        outcome.add(table.name, rows);
    }
    purge(lake, &mut outcome).await?;
    Ok(outcome)
}

fn rows_as_json(batches: &[RecordBatch]) -> Result<Value> {
    let text = render(batches, Format::Json)?;
    serde_json::from_str(&text)
        .map_err(|e| PipelineError::Sql(format!("rendering rows as JSON: {e}")))
}

/// `customers/data_request`: writes `<dir>/<shop>/customer-<id>-request-<n>.json` with
/// every row held about the customer, table by table, and returns its path. The file is
/// written whole or not at all (a temporary file renamed into place).
pub async fn export_customer(
    lake: &Lake,
    pii_key: &str,
    shop: &str,
    customer: &CustomerRef,
    request_id: Option<i64>,
    dir: &Path,
) -> Result<Outcome> {
    let engine = SqlEngine::open(lake).await?;
    let shop_is = format!("shop_id = {}", sql_string(shop));
    let email_hash = email_hash_of(pii_key, customer);
    let mut outcome = Outcome::default();
    let mut tables = serde_json::Map::new();
    let mut select = async |table: &'static str, condition: Option<String>| -> Result<()> {
        let Some(condition) = condition else {
            return Ok(());
        };
        if !engine.has_table(table) {
            return Ok(());
        }
        let batches = engine
            .query(&format!(
                "SELECT * FROM {table} WHERE {shop_is} AND {condition}"
            ))
            .await?;
        let rows = rows_as_json(&batches)?;
        let count = rows.as_array().map_or(0, Vec::len);
        outcome.add(table, count);
        tables.insert(table.to_string(), rows);
        Ok(())
    };
    select(
        "customers",
        customer_match(customer, email_hash.as_deref(), "id", None),
    )
    .await?;
    let orders = customer_match(customer, email_hash.as_deref(), "customer_id", Some("id"));
    select("orders", orders.clone()).await?;
    let of_orders =
        orders.map(|m| format!("order_id IN (SELECT id FROM orders WHERE {shop_is} AND {m})"));
    for table in ["order_lines", "fulfillments", "refunds", "returns"] {
        select(table, of_orders.clone()).await?;
    }
    let conversations = conversation_ids(&engine, shop, customer).await?;
    let in_conversations = string_list(&conversations);
    select(
        "conversations",
        in_conversations
            .as_ref()
            .map(|ids| format!("id IN ({ids})")),
    )
    .await?;
    for table in ["messages", "turns", "handoffs", "csat", "tickets"] {
        select(
            table,
            in_conversations
                .as_ref()
                .map(|ids| format!("conversation_id IN ({ids})")),
        )
        .await?;
    }
    let document = json!({
        "shop_id": shop,
        "customer": {"id": customer.id, "email": customer.email, "phone": customer.phone,
            "orders_requested": customer.order_ids},
        "data_request_id": request_id,
        "generated_at": chrono::Utc::now().to_rfc3339(),
        "note": "Everything supportlake holds about this customer. Emails in the lake are kept only as a keyed hash; message texts were stored with contact details redacted.",
        "tables": tables,
    });
    let folder = dir.join(shop);
    std::fs::create_dir_all(&folder).map_err(|e| PipelineError::io(&folder, e))?;
    let name = format!(
        "customer-{}-request-{}.json",
        customer
            .id
            .map_or_else(|| "unknown".into(), |id| id.to_string()),
        request_id.map_or_else(|| "none".into(), |id| id.to_string())
    );
    let path = folder.join(name);
    let partial = path.with_extension("json.partial");
    let text = serde_json::to_string_pretty(&document)
        .map_err(|e| PipelineError::Sql(format!("export: {e}")))?;
    std::fs::write(&partial, text).map_err(|e| PipelineError::io(&partial, e))?;
    std::fs::rename(&partial, &path).map_err(|e| PipelineError::io(&path, e))?;
    outcome.export_path = Some(path);
    Ok(outcome)
}
