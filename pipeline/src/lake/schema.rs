//! The lake's tables: one explicit Arrow schema per table, with its key, its version column
//! and its partitioning. This list is the single source of truth: the writer creates tables
//! from it, the SQL engine registers them by these names, and `docs/lake.md` documents them.

use std::sync::{Arc, LazyLock};

use deltalake::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// How a table is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Keyed upsert: a row replaces the stored row with the same key only when its version
    /// column (`updated_at`) is newer; identical or older rows change nothing.
    Upsert,
    /// Keyed insert-once: rows whose key already exists are skipped (immutable facts such as
    /// quarantined records, whose key is a hash of their content).
    InsertOnce,
    /// Plain append (the run log: every run is a new row by design).
    Append,
}

/// One table of the lake.
#[derive(Debug)]
pub struct TableSpec {
    pub name: &'static str,
    /// What a row is, for the docs and `supportlake tables`.
    pub description: &'static str,
    pub key: &'static [&'static str],
    /// Column that orders versions of a row (`updated_at`), for [`WriteMode::Upsert`].
    pub version_column: Option<&'static str>,
    /// Hive-style partition column, for the tables large enough that pruning pays off.
    pub partition: Option<&'static str>,
    pub mode: WriteMode,
    pub schema: SchemaRef,
}

fn s(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn s_req(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}
fn i(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}
fn i_req(name: &str) -> Field {
    Field::new(name, DataType::Int64, false)
}
fn f(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}
fn b(name: &str) -> Field {
    Field::new(name, DataType::Boolean, true)
}
/// Money: exact decimal, as Shopify sends it (strings with two decimals).
fn money(name: &str) -> Field {
    Field::new(name, DataType::Decimal128(14, 2), true)
}
/// Timestamps are UTC microseconds, the Delta `timestamp` type every engine reads.
fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}
fn t(name: &str) -> Field {
    Field::new(name, timestamp_type(), true)
}
fn t_req(name: &str) -> Field {
    Field::new(name, timestamp_type(), false)
}
fn strings(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
        true,
    )
}
fn ints(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("element", DataType::Int64, true))),
        true,
    )
}
fn shop() -> Field {
    s_req("shop_id")
}

fn retrieved_doc() -> DataType {
    DataType::Struct(Fields::from(vec![
        s("doc_key"),
        f("bm25"),
        f("vector"),
        f("fused"),
    ]))
}

fn spec(
    name: &'static str,
    description: &'static str,
    key: &'static [&'static str],
    mode: WriteMode,
    partition: Option<&'static str>,
    fields: Vec<Field>,
) -> TableSpec {
    let version_column = fields
        .iter()
        .any(|f| f.name() == "updated_at")
        .then_some("updated_at")
        .filter(|_| mode == WriteMode::Upsert);
    TableSpec {
        name,
        description,
        key,
        version_column,
        partition,
        mode,
        schema: Arc::new(Schema::new(fields)),
    }
}

/// Every table, in dependency-free alphabetical-by-room order.
pub static TABLES: LazyLock<Vec<TableSpec>> = LazyLock::new(|| {
    use WriteMode::*;
    vec![
        // -- shop and catalog --------------------------------------------------------------
        spec(
            "shops",
            "One row per Shopify store.",
            &["shop_id"],
            Upsert,
            None,
            vec![
                shop(),
                s("name"),
                s("domain"),
                s("myshopify_domain"),
                s("currency"),
                s("country_code"),
                s("timezone"),
                s("plan_name"),
                t("created_at"),
                t_req("updated_at"),
            ],
        ),
        spec(
            "products",
            "One row per product (the catalog's parent record).",
            &["shop_id", "id"],
            Upsert,
            None,
            vec![
                shop(),
                i_req("id"),
                s_req("handle"),
                s("title"),
                s("body_html"),
                s("vendor"),
                s("product_type"),
                s("category"),
                strings("tags"),
                strings("option_names"),
                s("status"),
                b("published"),
                s("seo_title"),
                s("seo_description"),
                s("url"),
                t("created_at"),
                t_req("updated_at"),
            ],
        ),
        spec(
            "variants",
            "One row per sellable variant: SKU, options, price, stock.",
            &["shop_id", "id"],
            Upsert,
            None,
            vec![
                shop(),
                i_req("id"),
                i_req("product_id"),
                s("sku"),
                s("title"),
                s("option1"),
                s("option2"),
                s("option3"),
                money("price"),
                money("compare_at_price"),
                i("grams"),
                i("inventory_item_id"),
                i("inventory_quantity"),
                s("inventory_policy"),
                b("available"),
                s("barcode"),
                b("requires_shipping"),
                b("taxable"),
                t_req("updated_at"),
            ],
        ),
        spec(
            "inventory_levels",
            "Stock of one inventory item at one location.",
            &["shop_id", "inventory_item_id", "location_id"],
            Upsert,
            None,
            vec![
                shop(),
                i_req("inventory_item_id"),
                i_req("location_id"),
                i("available"),
                t_req("updated_at"),
            ],
        ),
        // -- content -----------------------------------------------------------------------
        spec(
            "policies",
            "The shop's legal and service policies (refund, shipping, privacy, ...).",
            &["shop_id", "policy_type"],
            Upsert,
            None,
            vec![
                shop(),
                s_req("policy_type"),
                s("title"),
                s("handle"),
                s("body_html"),
                s("url"),
                t("created_at"),
                t_req("updated_at"),
            ],
        ),
        spec(
            "articles",
            "Knowledge-base articles and FAQ pages.",
            &["shop_id", "id"],
            Upsert,
            None,
            vec![
                shop(),
                i_req("id"),
                i("blog_id"),
                s("blog_handle"),
                s_req("handle"),
                s("title"),
                s("body_html"),
                s("author"),
                strings("tags"),
                s("url"),
                t("published_at"),
                t("created_at"),
                t_req("updated_at"),
            ],
        ),
        // -- commerce ----------------------------------------------------------------------
        spec(
            "customers",
            "Customers, PII-minimised: keyed email hash + masked email, no street address.",
            &["shop_id", "id"],
            Upsert,
            None,
            vec![
                shop(),
                i_req("id"),
                s("email_hash"),
                s("email_masked"),
                s("first_name"),
                s("last_initial"),
                s("phone_masked"),
                s("state"),
                b("verified_email"),
                b("accepts_marketing"),
                i("orders_count"),
                money("total_spent"),
                strings("tags"),
                s("city"),
                s("province"),
                s("country_code"),
                t("created_at"),
                t_req("updated_at"),
            ],
        ),
        spec(
            "orders",
            "Orders with their money, status and a coarse (city-level) shipping address.",
            &["shop_id", "id"],
            Upsert,
            None,
            vec![
                shop(),
                i_req("id"),
                i("order_number"),
                s("name"),
                i("customer_id"),
                s("email_hash"),
                s("financial_status"),
                s("fulfillment_status"),
                s("cancel_reason"),
                t("cancelled_at"),
                t("closed_at"),
                s("currency"),
                money("subtotal_price"),
                money("total_discounts"),
                money("total_tax"),
                money("total_shipping"),
                money("total_price"),
                s("shipping_method"),
                s("ship_city"),
                s("ship_province"),
                s("ship_country_code"),
                s("source_name"),
                strings("tags"),
                t("processed_at"),
                t("created_at"),
                t_req("updated_at"),
            ],
        ),
        spec(
            "order_lines",
            "Line items of orders.",
            &["shop_id", "id"],
            Upsert,
            None,
            vec![
                shop(),
                i_req("id"),
                i_req("order_id"),
                i("product_id"),
                i("variant_id"),
                s("sku"),
                s("title"),
                s("variant_title"),
                i("quantity"),
                money("price"),
                money("total_discount"),
                i("fulfillable_quantity"),
                s("fulfillment_status"),
                t_req("updated_at"),
            ],
        ),
        spec(
            "fulfillments",
            "Shipments: status, carrier, tracking and delivery dates.",
            &["shop_id", "id"],
            Upsert,
            None,
            vec![
                shop(),
                i_req("id"),
                i_req("order_id"),
                s("name"),
                s("status"),
                s("shipment_status"),
                s("tracking_company"),
                s("tracking_number"),
                s("tracking_url"),
                ints("line_item_ids"),
                t("estimated_delivery_at"),
                t("delivered_at"),
                t("created_at"),
                t_req("updated_at"),
            ],
        ),
        spec(
            "refunds",
            "Refunds issued against orders.",
            &["shop_id", "id"],
            Upsert,
            None,
            vec![
                shop(),
                i_req("id"),
                i_req("order_id"),
                s("note"),
                money("amount"),
                s("currency"),
                ints("line_item_ids"),
                b("restock"),
                t("processed_at"),
                t("created_at"),
                t_req("updated_at"),
            ],
        ),
        spec(
            "returns",
            "Return requests and their state.",
            &["shop_id", "id"],
            Upsert,
            None,
            vec![
                shop(),
                i_req("id"),
                i_req("order_id"),
                s("name"),
                s("status"),
                s("reason"),
                ints("line_item_ids"),
                i("quantity"),
                b("is_exchange"),
                t("created_at"),
                t_req("updated_at"),
            ],
        ),
        // -- support -----------------------------------------------------------------------
        spec(
            "conversations",
            "One support conversation (chat, email or imported ticket).",
            &["shop_id", "id"],
            Upsert,
            Some("month"),
            vec![
                shop(),
                s_req("id"),
                s("channel"),
                i("customer_id"),
                i("order_id"),
                s("primary_intent"),
                s("status"),
                s("resolution_path"),
                b("shopper_confirmed"),
                s("reopened_from"),
                s("assignee"),
                i("agent_handle_seconds"),
                strings("tags"),
                t_req("started_at"),
                t("ended_at"),
                t_req("updated_at"),
                s_req("month"),
            ],
        ),
        spec(
            "messages",
            "Every message of a conversation; text has PII redacted.",
            &["shop_id", "id"],
            Upsert,
            Some("month"),
            vec![
                shop(),
                s_req("id"),
                s_req("conversation_id"),
                i("seq"),
                s("role"),
                s("author"),
                s("text"),
                t_req("created_at"),
                t_req("updated_at"),
                s_req("month"),
            ],
        ),
        spec(
            "turns",
            "One row per automated answer: intent, confidence, retrieval scores, abstention.",
            &["shop_id", "id"],
            Upsert,
            Some("month"),
            vec![
                shop(),
                s_req("id"),
                s_req("conversation_id"),
                s("message_id"),
                s("intent"),
                f("confidence"),
                Field::new(
                    "retrieved",
                    DataType::List(Arc::new(Field::new("element", retrieved_doc(), true))),
                    true,
                ),
                strings("cited_doc_keys"),
                s("answer_kind"),
                b("needs_verification"),
                b("abstained"),
                s("abstain_reason"),
                b("helpful"),
                i("latency_ms"),
                s("model_version"),
                t_req("created_at"),
                t_req("updated_at"),
                s_req("month"),
            ],
        ),
        spec(
            "handoffs",
            "Escalations to a person, with the packet the agent sees.",
            &["shop_id", "id"],
            Upsert,
            None,
            vec![
                shop(),
                s_req("id"),
                s_req("conversation_id"),
                s("reason"),
                s("intent"),
                s("status"),
                s("assignee"),
                s("packet"),
                t("created_at"),
                t("claimed_at"),
                t("first_agent_reply_at"),
                t("resolved_at"),
                t_req("updated_at"),
            ],
        ),
        spec(
            "csat",
            "Customer satisfaction ratings, one per conversation.",
            &["shop_id", "conversation_id"],
            Upsert,
            None,
            vec![
                shop(),
                s_req("conversation_id"),
                i("score"),
                s("comment"),
                s("resolution_path"),
                t("created_at"),
                t_req("updated_at"),
            ],
        ),
        spec(
            "tickets",
            "Imported helpdesk tickets (Zendesk, Gorgias, CSV), linked to their conversation.",
            &["shop_id", "id"],
            Upsert,
            None,
            vec![
                shop(),
                s_req("id"),
                s("source"),
                s("external_id"),
                s("conversation_id"),
                s("subject"),
                s("status"),
                s("channel"),
                i("customer_id"),
                s("assignee"),
                i("handle_seconds"),
                t("created_at"),
                t("solved_at"),
                t_req("updated_at"),
            ],
        ),
        // -- operations --------------------------------------------------------------------
        spec(
            "webhook_events",
            "Every verified Shopify webhook delivery, raw and deduplicated (by event and topic).",
            &["shop_id", "event_id", "topic"],
            InsertOnce,
            None,
            vec![
                shop(),
                s_req("event_id"),
                s("webhook_id"),
                s("topic"),
                s("api_version"),
                t("triggered_at"),
                t("received_at"),
                s("headers"),
                s("payload"),
            ],
        ),
        spec(
            "privacy_audit",
            "One row per privacy request carried out (customers/redact, shop/redact, customers/data_request): what, when, how many rows.",
            &["shop_id", "id"],
            InsertOnce,
            None,
            vec![
                shop(),
                s_req("id"),
                s("topic"),
                i("customer_id"),
                ints("order_ids"),
                s("action"),
                i("rows_affected"),
                s("table_counts"),
                i("files_purged"),
                s("export_path"),
                t("requested_at"),
                t("completed_at"),
            ],
        ),
        spec(
            "ingest_runs",
            "One row per ingest run: source, counts, outcome.",
            &["run_id"],
            Append,
            None,
            vec![
                s("shop_id"),
                s_req("run_id"),
                s("source"),
                s("lake_url"),
                t("started_at"),
                t("finished_at"),
                s("status"),
                i("records_read"),
                i("rows_written"),
                i("rows_unchanged"),
                i("quarantined"),
                s("table_counts"),
                s("quarantine_reasons"),
            ],
        ),
        spec(
            "quarantine",
            "Records that could not be ingested, with the reason and the raw input.",
            &["id"],
            InsertOnce,
            None,
            vec![
                s("shop_id"),
                s_req("id"),
                s("run_id"),
                s("target_table"),
                s("source_file"),
                s("record_ref"),
                s("reason"),
                s("raw"),
                t("quarantined_at"),
            ],
        ),
    ]
});

/// Looks a table up by name.
pub fn table(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_shop_id_and_its_key_columns() {
        for spec in TABLES.iter() {
            assert!(
                spec.schema.field_with_name("shop_id").is_ok(),
                "{} lacks shop_id",
                spec.name
            );
            for key in spec.key {
                assert!(
                    spec.schema.field_with_name(key).is_ok(),
                    "{}: key {key} missing",
                    spec.name
                );
            }
            if spec.mode == WriteMode::Upsert {
                assert_eq!(
                    spec.version_column,
                    Some("updated_at"),
                    "{} upserts without updated_at",
                    spec.name
                );
            }
            if let Some(p) = spec.partition {
                assert!(spec.schema.field_with_name(p).is_ok());
            }
        }
    }
}
