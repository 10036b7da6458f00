//! Shopify webhook deliveries, and what each topic does to the lake.
//!
//! A verified delivery is kept whole as a [`Delivery`] (its `webhook_events` row: headers,
//! raw body, the shop it was resolved to). Applying it is a pure function of that row,
//! [`effect`], so the server's applier, `supportlake webhooks replay` and the tests all map
//! deliveries the same way:
//!
//! * commerce topics become rows for the keyed upsert, mapped by the same functions as
//!   exported files (the export's `shopify` mapping): a webhook and an export of the same object
//!   produce the same row. A row is versioned by the payload's `updated_at`, else by the
//!   delivery's `X-Shopify-Triggered-At`, so a late, older delivery never overwrites newer
//!   state (the upsert keeps the newest version);
//! * `*/delete` topics remove the resource (and what hangs off it);
//! * the mandatory compliance topics become [`PrivacyRequest`]s ([`crate::privacy`]);
//! * every other topic is kept raw in `webhook_events` only, never dropped.

use serde_json::{Value, json};

use crate::sources::export::fields::{Obj, Reason, parse_timestamp};
use crate::sources::export::{Context, Rows, shopify};
use crate::sql::sql_string;

/// The topics supportlake subscribes a shop to when it is installed: each one it maps into
/// the lake ([`effect`]), and `app/uninstalled`. The compliance topics (`customers/redact`,
/// `customers/data_request`, `shop/redact`) are not here: Shopify takes those only from the
/// app's configuration (`shopify.app.toml.example`), never from the Admin API.
pub const SUBSCRIBED_TOPICS: &[&str] = &[
    "app/uninstalled",
    "shop/update",
    "orders/create",
    "orders/updated",
    "orders/paid",
    "orders/cancelled",
    "orders/fulfilled",
    "orders/partially_fulfilled",
    "orders/delete",
    "fulfillments/create",
    "fulfillments/update",
    "refunds/create",
    "returns/request",
    "returns/approve",
    "returns/decline",
    "returns/cancel",
    "returns/close",
    "returns/reopen",
    "products/create",
    "products/update",
    "products/delete",
    "variants/in_stock",
    "variants/out_of_stock",
    "inventory_levels/update",
    "inventory_levels/connect",
    "customers/create",
    "customers/update",
    "customers/enable",
    "customers/disable",
    "customers/delete",
];

/// One verified delivery, as the applier receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The lake's shop id the `X-Shopify-Shop-Domain` resolved to.
    pub shop_id: String,
    pub shop_domain: String,
    pub topic: String,
    /// `X-Shopify-Event-Id` (shared by the deliveries of one merchant action), else the
    /// `X-Shopify-Webhook-Id`: with the topic, the deduplication key.
    pub event_id: String,
    pub webhook_id: Option<String>,
    pub api_version: Option<String>,
    /// When Shopify triggered the delivery (µs since the epoch), if it said.
    pub triggered_at: Option<i64>,
    /// When supportlake acknowledged it (µs).
    pub received_at: i64,
    /// Every header of the request, by lower-case name.
    pub headers: Value,
    /// The raw body, exactly as signed.
    pub body: String,
}

impl Delivery {
    /// The `webhook_events` row (payload kept raw), as JSON text. Serialized from borrowed
    /// fields: this runs once per acknowledged delivery, and building a `Value` first copied
    /// the body.
    pub fn event_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct EventRow<'a> {
            shop_id: &'a str,
            event_id: &'a str,
            webhook_id: Option<&'a str>,
            topic: &'a str,
            api_version: Option<&'a str>,
            triggered_at: Option<i64>,
            received_at: i64,
            headers: String,
            payload: &'a str,
        }
        serde_json::to_string(&EventRow {
            shop_id: &self.shop_id,
            event_id: &self.event_id,
            webhook_id: self.webhook_id.as_deref(),
            topic: &self.topic,
            api_version: self.api_version.as_deref(),
            triggered_at: self.triggered_at,
            received_at: self.received_at,
            headers: self.headers.to_string(),
            payload: &self.body,
        })
        .expect("strings and integers always serialize")
    }

    /// Reads a delivery back from its `webhook_events` row.
    pub fn from_event_row(row: &Value) -> Result<Self, Reason> {
        let o = Obj::of(row, "webhook event")?;
        let headers: Value = serde_json::from_str(o.str("headers")?)
            .map_err(|e| format!("wrong type: headers are not JSON ({e})"))?;
        let shop_domain = headers
            .get("x-shopify-shop-domain")
            .or_else(|| headers.get("shopify-shop-domain"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(Self {
            shop_id: o.str("shop_id")?.to_string(),
            shop_domain,
            topic: o.str("topic")?.to_string(),
            event_id: o.str("event_id")?.to_string(),
            webhook_id: o.opt_str("webhook_id")?.map(String::from),
            api_version: o.opt_str("api_version")?.map(String::from),
            triggered_at: o.opt_i64("triggered_at")?,
            received_at: o.opt_i64("received_at")?.unwrap_or_default(),
            headers,
            body: o.str("payload")?.to_string(),
        })
    }

    /// The version of rows whose payload has no `updated_at`: when Shopify triggered the
    /// delivery, else when it arrived.
    pub fn version(&self) -> i64 {
        self.triggered_at.unwrap_or(self.received_at)
    }
}

/// `2024-08-03T18:28:37.234647458Z` (the header's form) → µs since the epoch.
pub fn triggered_at(header: &str) -> Option<i64> {
    parse_timestamp(header.trim())
}

/// A compliance request, carried out by [`crate::privacy`].
#[derive(Debug, Clone, PartialEq)]
pub enum PrivacyRequest {
    /// `customers/redact`: delete the customer's rows and PII everywhere; their orders stay,
    /// without PII.
    RedactCustomer(CustomerRef),
    /// `customers/data_request`: export everything held about the customer.
    ExportCustomer {
        customer: CustomerRef,
        request_id: Option<i64>,
    },
    /// `shop/redact`: everything of the shop goes.
    RedactShop,
}

/// Who a compliance request is about, as Shopify names them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CustomerRef {
    pub id: Option<i64>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub order_ids: Vec<i64>,
}

/// What a delivery does to the lake, besides landing raw in `webhook_events`.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Rows for the keyed upsert.
    Rows(Rows),
    /// The resource was deleted: `deleted` names it (its table and id, for the tombstone
    /// that keeps a late, older update from bringing it back), `deletes` are the
    /// `(table, SQL predicate)` pairs to delete.
    Delete {
        deleted: (&'static str, i64),
        deletes: Vec<(&'static str, String)>,
    },
    Privacy(PrivacyRequest),
    /// `app/uninstalled`: the merchant removed the app. The shop's tokens go and nothing
    /// of it is served or synced any more; its data stays until `shop/redact`.
    Uninstalled,
    /// A topic supportlake does not map: kept raw only.
    KeptRaw,
}

/// Maps one delivery. `Err` is the reason its payload cannot be applied (the delivery is
/// still kept raw, and quarantined with the reason).
pub fn effect(ctx: &Context, delivery: &Delivery) -> Result<Effect, Reason> {
    let mut payload: Value = serde_json::from_str(&delivery.body)
        .map_err(|e| format!("invalid JSON: the body is not JSON ({e})"))?;
    if let Value::Object(fields) = &mut payload {
        // Without its own `updated_at`, a payload is as new as the delivery.
        if fields.get("updated_at").is_none_or(Value::is_null) {
            let version = chrono::DateTime::from_timestamp_micros(delivery.version())
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
            fields.insert("updated_at".into(), json!(version));
        }
        // The shop is the one that sent the delivery, whatever the payload leaves out.
        if delivery.topic == "shop/update"
            && fields.get("myshopify_domain").is_none_or(Value::is_null)
        {
            fields.insert("myshopify_domain".into(), json!(delivery.shop_domain));
        }
    }
    let rows = |mapped: Result<Rows, Reason>| mapped.map(Effect::Rows);
    let shop = sql_string(&ctx.shop_id);
    let deleted_id = || Obj::of(&payload, "deleted resource").and_then(|o| o.id("id"));
    match delivery.topic.as_str() {
        "orders/create"
        | "orders/updated"
        | "orders/paid"
        | "orders/cancelled"
        | "orders/fulfilled"
        | "orders/partially_fulfilled" => rows(shopify::order(ctx, &payload)),
        "fulfillments/create" | "fulfillments/update" => rows(shopify::fulfillment(ctx, &payload)),
        "refunds/create" => rows(shopify::refund(ctx, &payload)),
        "returns/request" | "returns/approve" | "returns/decline" | "returns/cancel"
        | "returns/close" | "returns/reopen" => rows(shopify::return_request(ctx, &payload)),
        "products/create" | "products/update" => rows(shopify::product(ctx, &payload)),
        "variants/in_stock" | "variants/out_of_stock" => rows(shopify::variant(ctx, &payload)),
        "inventory_levels/update" | "inventory_levels/connect" => {
            rows(shopify::inventory_level(ctx, &payload))
        }
        "customers/create" | "customers/update" | "customers/enable" | "customers/disable" => {
            rows(shopify::customer(ctx, &payload))
        }
        "shop/update" => rows(shopify::shop(ctx, &payload)),
        "orders/delete" => {
            let id = deleted_id()?;
            let of_order = format!("shop_id = {shop} AND order_id = {id}");
            Ok(Effect::Delete {
                deleted: ("orders", id),
                deletes: vec![
                    ("orders", format!("shop_id = {shop} AND id = {id}")),
                    ("order_lines", of_order.clone()),
                    ("fulfillments", of_order.clone()),
                    ("refunds", of_order.clone()),
                    ("returns", of_order),
                ],
            })
        }
        "products/delete" => {
            let id = deleted_id()?;
            Ok(Effect::Delete {
                deleted: ("products", id),
                deletes: vec![
                    ("products", format!("shop_id = {shop} AND id = {id}")),
                    (
                        "variants",
                        format!("shop_id = {shop} AND product_id = {id}"),
                    ),
                ],
            })
        }
        "customers/delete" => {
            let id = deleted_id()?;
            Ok(Effect::Delete {
                deleted: ("customers", id),
                deletes: vec![("customers", format!("shop_id = {shop} AND id = {id}"))],
            })
        }
        "customers/redact" => Ok(Effect::Privacy(PrivacyRequest::RedactCustomer(
            customer_ref(&payload, "orders_to_redact")?,
        ))),
        "customers/data_request" => {
            let request_id = Obj::of(&payload, "data request")?
                .obj("data_request")?
                .map(|r| r.opt_id("id"))
                .transpose()?
                .flatten();
            Ok(Effect::Privacy(PrivacyRequest::ExportCustomer {
                customer: customer_ref(&payload, "orders_requested")?,
                request_id,
            }))
        }
        "shop/redact" => Ok(Effect::Privacy(PrivacyRequest::RedactShop)),
        "app/uninstalled" => Ok(Effect::Uninstalled),
        _ => Ok(Effect::KeptRaw),
    }
}

fn customer_ref(payload: &Value, orders_key: &str) -> Result<CustomerRef, Reason> {
    let o = Obj::of(payload, "compliance request")?;
    let customer = o
        .obj("customer")?
        .ok_or_else(|| "missing field: customer".to_string())?;
    let order_ids = match o.0.get(orders_key) {
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|id| {
                id.as_i64()
                    .ok_or_else(|| format!("wrong type: {orders_key} holds a non-integer ({id})"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(other) => return Err(format!("wrong type: {orders_key} is not a list ({other})")),
    };
    let reference = CustomerRef {
        id: customer.opt_id("id")?,
        email: customer.opt_str("email")?.map(String::from),
        phone: customer.opt_str("phone")?.map(String::from),
        order_ids,
    };
    if reference.id.is_none() && reference.email.is_none() {
        return Err("missing field: customer.id and customer.email".into());
    }
    Ok(reference)
}

/// Whether a delivery's payload is about the customer: it names their id as a customer
/// (`customer.id`, `customer_id`, or the `id` of a `customers/*` payload), one of their
/// orders, or their email. Used to delete their raw deliveries on redaction.
pub fn mentions(topic: &str, payload: &Value, customer: &CustomerRef) -> bool {
    let id = customer.id;
    let email = customer.email.as_deref().map(str::to_lowercase);
    let top_id = payload.get("id").and_then(Value::as_i64);
    if topic.starts_with("customers/") && top_id.is_some() && top_id == id {
        return true;
    }
    if topic.starts_with("orders/") && top_id.is_some_and(|o| customer.order_ids.contains(&o)) {
        return true;
    }
    fn walk(value: &Value, id: Option<i64>, email: Option<&str>, orders: &[i64]) -> bool {
        match value {
            Value::String(text) => email.is_some_and(|e| text.eq_ignore_ascii_case(e)),
            Value::Array(items) => items.iter().any(|v| walk(v, id, email, orders)),
            Value::Object(map) => map.iter().any(|(key, v)| {
                let number = v.as_i64();
                (key == "customer_id" && number.is_some() && number == id)
                    || (key == "order_id" && number.is_some_and(|o| orders.contains(&o)))
                    || (key == "customer"
                        && v.get("id").and_then(Value::as_i64).is_some()
                        && v.get("id").and_then(Value::as_i64) == id)
                    || walk(v, id, email, orders)
            }),
            _ => false,
        }
    }
    walk(payload, id, email.as_deref(), &customer.order_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            shop_id: "s1".into(),
            shop_domain: "s1.myshopify.com".into(),
            pii_key: "k".into(),
            export_time: 1_700_000_000_000_000,
            blogs: Default::default(),
        }
    }

    fn delivery(topic: &str, body: &Value) -> Delivery {
        Delivery {
            shop_id: "s1".into(),
            shop_domain: "s1.myshopify.com".into(),
            topic: topic.into(),
            event_id: "e1".into(),
            webhook_id: None,
            api_version: Some("2026-04".into()),
            triggered_at: Some(1_700_000_000_000_000),
            received_at: 1_700_000_000_000_001,
            headers: json!({"x-shopify-shop-domain": "s1.myshopify.com"}),
            body: body.to_string(),
        }
    }

    /// Every topic an install subscribes to is one the applier acts on (a payload it cannot
    /// read is quarantined, which still shows the topic is mapped), and the app
    /// configuration example declares only what the API cannot subscribe: a topic in both
    /// would be delivered twice.
    #[test]
    fn every_subscribed_topic_is_mapped_and_declared_only_once() {
        for topic in SUBSCRIBED_TOPICS {
            let mapped = effect(&ctx(), &delivery(topic, &json!({"id": 1})));
            assert!(
                !matches!(mapped, Ok(Effect::KeptRaw)),
                "{topic} is kept raw"
            );
        }
        let example = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shopify.app.toml.example"
        ))
        .unwrap();
        let example: toml::Value = toml::from_str(&example).unwrap();
        let declared: Vec<&str> = example["webhooks"]["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                ["topics", "compliance_topics"]
                    .into_iter()
                    .filter_map(|key| s.get(key).and_then(toml::Value::as_array))
                    .flatten()
                    .filter_map(toml::Value::as_str)
            })
            .collect();
        assert_eq!(
            declared,
            ["customers/data_request", "customers/redact", "shop/redact"]
        );
    }

    #[test]
    fn the_event_row_reads_back_as_the_same_delivery() {
        let d = delivery("orders/create", &json!({"id": 1}));
        let row: Value = serde_json::from_str(&d.event_json()).unwrap();
        assert_eq!(Delivery::from_event_row(&row).unwrap(), d);
    }

    #[test]
    fn a_payload_without_updated_at_is_versioned_by_its_delivery() {
        let Effect::Rows(rows) = effect(
            &ctx(),
            &delivery(
                "returns/request",
                &json!({"id": 5, "status": "OPEN", "order": {"id": 9}}),
            ),
        )
        .unwrap() else {
            panic!("rows")
        };
        assert_eq!(rows[0].0, "returns");
        assert_eq!(rows[0].1["updated_at"], 1_700_000_000_000_000_i64);
        assert_eq!(rows[0].1["status"], "open");
        assert_eq!(rows[0].1["order_id"], 9);
    }

    #[test]
    fn deletes_name_the_shop_and_the_resource() {
        let Effect::Delete { deleted, deletes } =
            effect(&ctx(), &delivery("products/delete", &json!({"id": 42}))).unwrap()
        else {
            panic!("a delete")
        };
        assert_eq!(deleted, ("products", 42));
        assert_eq!(
            deletes,
            vec![
                ("products", "shop_id = 's1' AND id = 42".to_string()),
                ("variants", "shop_id = 's1' AND product_id = 42".to_string())
            ]
        );
    }

    #[test]
    fn unmapped_topics_are_kept_raw_and_bad_payloads_explain_themselves() {
        assert_eq!(
            effect(&ctx(), &delivery("app/uninstalled", &json!({}))).unwrap(),
            Effect::Uninstalled
        );
        assert_eq!(
            effect(&ctx(), &delivery("themes/publish", &json!({}))).unwrap(),
            Effect::KeptRaw
        );
        let reason = effect(&ctx(), &delivery("orders/create", &json!({"id": "x"}))).unwrap_err();
        assert!(reason.contains("not an id"), "{reason}");
        let mut broken = delivery("orders/create", &json!({}));
        broken.body = "{not json".into();
        assert!(
            effect(&ctx(), &broken)
                .unwrap_err()
                .starts_with("invalid JSON")
        );
    }

    #[test]
    fn a_redact_request_names_the_customer_and_their_orders() {
        let body = json!({"shop_id": 9, "shop_domain": "s1.myshopify.com",
            "customer": {"id": 7, "email": "a@b.c", "phone": null}, "orders_to_redact": [1, 2]});
        let Effect::Privacy(PrivacyRequest::RedactCustomer(who)) =
            effect(&ctx(), &delivery("customers/redact", &body)).unwrap()
        else {
            panic!("a redaction")
        };
        assert_eq!(who.id, Some(7));
        assert_eq!(who.order_ids, vec![1, 2]);
        assert!(mentions("orders/paid", &json!({"id": 2}), &who));
        assert!(mentions(
            "refunds/create",
            &json!({"order_id": 1, "id": 99}),
            &who
        ));
        assert!(mentions(
            "orders/paid",
            &json!({"id": 5, "customer": {"id": 7}}),
            &who
        ));
        assert!(mentions("x/y", &json!({"contact": ["A@B.C"]}), &who));
        assert!(!mentions(
            "orders/paid",
            &json!({"id": 5, "customer": {"id": 8}}),
            &who
        ));
        assert!(!mentions("products/update", &json!({"id": 7}), &who));
    }
}
