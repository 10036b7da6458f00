//! GraphQL Admin API objects → the Admin API's REST shapes, which [`crate::sources::export::shopify`]
//! already maps to lake rows (as it does for exports and webhooks).
//!
//! Going through the REST shape keeps one mapping from Shopify's data to the lake: a field is
//! read, checked and hashed in one place whichever way it arrived. The translation is
//! mechanical — camelCase to snake_case, `gid://shopify/Order/1` to `1`, `MoneyBag` to its
//! shop-currency amount, `SCREAMING` enums to REST's lower case — with these judgement calls:
//!
//! * an order's `displayFulfillmentStatus` `UNFULFILLED` is REST's `null`, `PARTIALLY_FULFILLED`
//!   is `partial`; a fulfillment's `displayStatus` is REST's `shipment_status` when it names a
//!   shipment state (`IN_TRANSIT`, …) and `null` otherwise;
//! * a refund's amount is its `totalRefundedSet`, carried as one successful refund
//!   transaction; REST's deprecated `restock` flag has no GraphQL counterpart and stays unset;
//! * a return's version (`updated_at`) is when it closed, else when it was created;
//! * the shop's `plan_name` is its plan's display name in REST's spelling (`shopify_plus`).

use serde_json::{Map, Value, json};

use super::query::{Forest, legacy_id};

fn id_of(v: &Value) -> Value {
    v["id"]
        .as_str()
        .and_then(legacy_id)
        .map_or(Value::Null, Value::from)
}

fn money(v: &Value, set: &str) -> Value {
    v[set]["shopMoney"]["amount"].clone()
}

fn lower(v: &Value) -> Value {
    v.as_str()
        .map_or(Value::Null, |s| Value::from(s.to_ascii_lowercase()))
}

/// `null` stays `null` (`v["missing"]` is `Null` too).
fn field(v: &Value, key: &str) -> Value {
    v[key].clone()
}

pub fn product(forest: &Forest, node: &Value) -> Value {
    let product_id = id_of(node);
    let variants: Vec<Value> = forest
        .children_of(node, "ProductVariant")
        .map(|v| {
            let options: Vec<Value> = v["selectedOptions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| o["value"].clone())
                .collect();
            let item = &v["inventoryItem"];
            let weight = &item["measurement"]["weight"];
            let grams = weight["value"].as_f64().map(|value| {
                let factor = match weight["unit"].as_str() {
                    Some("KILOGRAMS") => 1000.0,
                    Some("OUNCES") => 28.349_523_125,
                    Some("POUNDS") => 453.592_37,
                    _ => 1.0,
                };
                (value * factor).round() as i64
            });
            json!({
                "id": id_of(v), "product_id": product_id, "sku": field(v, "sku"), "title": field(v, "title"),
                "option1": options.first(), "option2": options.get(1), "option3": options.get(2),
                "price": field(v, "price"), "compare_at_price": field(v, "compareAtPrice"),
                "barcode": field(v, "barcode"), "taxable": field(v, "taxable"),
                "inventory_policy": lower(&v["inventoryPolicy"]),
                "inventory_quantity": field(v, "inventoryQuantity"), "grams": grams,
                "inventory_item_id": id_of(item), "requires_shipping": field(item, "requiresShipping"),
                "updated_at": field(v, "updatedAt"),
            })
        })
        .collect();
    let options: Vec<Value> = node["options"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| json!({"name": o["name"]}))
        .collect();
    json!({
        "id": product_id, "handle": field(node, "handle"), "title": field(node, "title"),
        "body_html": field(node, "descriptionHtml"), "vendor": field(node, "vendor"),
        "product_type": field(node, "productType"), "category": node["category"]["fullName"],
        "tags": field(node, "tags"), "status": lower(&node["status"]),
        "published_at": field(node, "publishedAt"), "created_at": field(node, "createdAt"),
        "updated_at": field(node, "updatedAt"), "options": options, "variants": variants,
        "metafields_global_title_tag": node["seo"]["title"],
        "metafields_global_description_tag": node["seo"]["description"],
    })
}

pub fn customer(node: &Value) -> Value {
    let address = &node["defaultAddress"];
    json!({
        "id": id_of(node), "email": field(node, "email"), "first_name": field(node, "firstName"),
        "last_name": field(node, "lastName"), "phone": field(node, "phone"),
        "state": lower(&node["state"]), "verified_email": field(node, "verifiedEmail"),
        "tags": field(node, "tags"), "created_at": field(node, "createdAt"),
        "updated_at": field(node, "updatedAt"),
        "default_address": if address.is_object() {
            json!({"city": address["city"], "province_code": address["provinceCode"],
                "country_code": address["countryCodeV2"]})
        } else { Value::Null },
        "email_marketing_consent": node["emailMarketingConsent"]["marketingState"]
            .as_str()
            .map(|state| json!({"state": state.to_ascii_lowercase()})),
    })
}

/// REST's per-order fulfillment status from GraphQL's display status.
fn order_fulfillment_status(display: &Value) -> Value {
    match display.as_str() {
        Some("FULFILLED") => json!("fulfilled"),
        Some("PARTIALLY_FULFILLED") => json!("partial"),
        Some("RESTOCKED") => json!("restocked"),
        _ => Value::Null,
    }
}

/// Display statuses that are also REST shipment statuses.
const SHIPMENT_STATES: &[&str] = &[
    "LABEL_PRINTED",
    "LABEL_PURCHASED",
    "ATTEMPTED_DELIVERY",
    "READY_FOR_PICKUP",
    "PICKED_UP",
    "CONFIRMED",
    "IN_TRANSIT",
    "OUT_FOR_DELIVERY",
    "DELIVERED",
    "FAILURE",
    "CARRIER_PICKED_UP",
    "DELAYED",
];

fn line_item_ids<'a>(items: impl Iterator<Item = &'a Value>) -> Vec<Value> {
    items
        .map(|i| json!({"id": id_of(&i["lineItem"])}))
        .collect()
}

/// An order; `returns` is the order's node in the returns pass (`None`: it had none).
pub fn order(forest: &Forest, node: &Value, returns: Option<(&Forest, &Value)>) -> Value {
    let order_id = id_of(node);
    let line_items: Vec<Value> = forest
        .children_of(node, "LineItem")
        .map(|l| {
            // The deprecated per-line status reads "unfulfilled" where REST has null.
            let status = match l["fulfillmentStatus"].as_str() {
                Some("unfulfilled") | None => Value::Null,
                Some(other) => json!(other),
            };
            json!({
                "id": id_of(l), "sku": field(l, "sku"), "title": field(l, "title"),
                "variant_title": field(l, "variantTitle"), "quantity": field(l, "quantity"),
                "fulfillable_quantity": field(l, "unfulfilledQuantity"), "fulfillment_status": status,
                "variant_id": id_of(&l["variant"]), "product_id": id_of(&l["product"]),
                "price": money(l, "originalUnitPriceSet"), "total_discount": money(l, "totalDiscountSet"),
            })
        })
        .collect();
    let fulfillments: Vec<Value> = node["fulfillments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let tracking = &f["trackingInfo"][0];
            let display = f["displayStatus"].as_str().unwrap_or("");
            json!({
                "id": id_of(f), "order_id": order_id, "name": field(f, "name"), "status": lower(&f["status"]),
                "shipment_status": if SHIPMENT_STATES.contains(&display) { lower(&f["displayStatus"]) } else { Value::Null },
                "tracking_company": tracking["company"], "tracking_number": tracking["number"],
                "tracking_url": tracking["url"],
                "line_items": line_item_ids(forest.children_of(f, "FulfillmentLineItem")),
                "created_at": field(f, "createdAt"), "updated_at": field(f, "updatedAt"),
                "delivered_at": field(f, "deliveredAt"), "estimated_delivery_at": field(f, "estimatedDeliveryAt"),
            })
        })
        .collect();
    let refunds: Vec<Value> = node["refunds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let total = &r["totalRefundedSet"]["shopMoney"];
            let lines: Vec<Value> = forest
                .children_of(r, "")
                .map(|l| json!({"line_item_id": id_of(&l["lineItem"])}))
                .collect();
            json!({
                "id": id_of(r), "order_id": order_id, "note": field(r, "note"),
                "created_at": field(r, "createdAt"), "processed_at": field(r, "createdAt"),
                "transactions": [{"kind": "refund", "status": "success", "amount": total["amount"],
                    "currency": total["currencyCode"]}],
                "refund_line_items": lines,
            })
        })
        .collect();
    let returns: Vec<Value> = returns
        .map(|(pass, order)| {
            pass.children_of(order, "Return")
                .map(|r| {
                    let lines: Vec<Value> = pass
                        .children_of(r, "ReturnLineItem")
                        .map(|l| {
                            json!({
                                "line_item_id": id_of(&l["fulfillmentLineItem"]["lineItem"]),
                                "quantity": field(l, "quantity"), "return_reason": field(l, "returnReason"),
                            })
                        })
                        .collect();
                    let exchanges = pass.children_of(r, "ExchangeLineItem").count();
                    let version = if r["closedAt"].is_null() { &r["createdAt"] } else { &r["closedAt"] };
                    json!({
                        "id": id_of(r), "name": field(r, "name"), "status": lower(&r["status"]),
                        "order": {"id": order_id}, "return_line_items": lines,
                        "total_exchange_line_items": exchanges, "created_at": field(r, "createdAt"),
                        "updated_at": version,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let address = &node["shippingAddress"];
    let mut shipping_lines = Vec::new();
    if node["shippingLine"].is_object() {
        shipping_lines.push(json!({"title": node["shippingLine"]["title"]}));
    }
    json!({
        "id": order_id, "name": field(node, "name"), "order_number": field(node, "number"),
        "email": field(node, "email"),
        "customer": if node["customer"].is_object() { json!({"id": id_of(&node["customer"])}) } else { Value::Null },
        "financial_status": lower(&node["displayFinancialStatus"]),
        "fulfillment_status": order_fulfillment_status(&node["displayFulfillmentStatus"]),
        "cancel_reason": lower(&node["cancelReason"]), "cancelled_at": field(node, "cancelledAt"),
        "closed_at": field(node, "closedAt"), "currency": field(node, "currencyCode"),
        "subtotal_price": money(node, "subtotalPriceSet"), "total_discounts": money(node, "totalDiscountsSet"),
        "total_tax": money(node, "totalTaxSet"), "total_price": money(node, "totalPriceSet"),
        "total_shipping_price_set": {"shop_money": {"amount": money(node, "totalShippingPriceSet")}},
        "shipping_lines": shipping_lines,
        "shipping_address": if address.is_object() {
            json!({"city": address["city"], "province_code": address["provinceCode"],
                "country_code": address["countryCodeV2"]})
        } else { Value::Null },
        "source_name": field(node, "sourceName"), "tags": field(node, "tags"),
        "processed_at": field(node, "processedAt"), "created_at": field(node, "createdAt"),
        "updated_at": field(node, "updatedAt"),
        "line_items": line_items, "fulfillments": fulfillments, "refunds": refunds, "returns": returns,
    })
}

/// An inventory item's levels, one REST inventory level per location.
pub fn inventory_levels(forest: &Forest, item: &Value) -> Vec<Value> {
    forest
        .children_of(item, "InventoryLevel")
        .map(|level| {
            let available = level["quantities"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|q| q["name"] == "available")
                .map_or(Value::Null, |q| q["quantity"].clone());
            json!({
                "inventory_item_id": id_of(item), "location_id": id_of(&level["location"]),
                "available": available, "updated_at": field(level, "updatedAt"),
            })
        })
        .collect()
}

pub fn article(node: &Value) -> Value {
    json!({
        "id": id_of(node), "blog_id": id_of(&node["blog"]), "handle": field(node, "handle"),
        "title": field(node, "title"), "body_html": field(node, "body"), "author": node["author"]["name"],
        "tags": field(node, "tags"), "published_at": field(node, "publishedAt"),
        "created_at": field(node, "createdAt"), "updated_at": field(node, "updatedAt"),
    })
}

pub fn blog(node: &Value) -> Value {
    json!({
        "id": id_of(node), "handle": field(node, "handle"), "title": field(node, "title"),
        "created_at": field(node, "createdAt"), "updated_at": field(node, "updatedAt"),
    })
}

/// A shop policy; REST names its type by handle (`REFUND_POLICY` → `refund-policy`).
pub fn policy(node: &Value) -> Value {
    let handle = node["type"]
        .as_str()
        .map(|t| t.to_ascii_lowercase().replace('_', "-"));
    json!({
        "handle": handle, "title": field(node, "title"), "body": field(node, "body"),
        "url": field(node, "url"), "created_at": field(node, "createdAt"),
        "updated_at": field(node, "updatedAt"),
    })
}

pub fn shop(node: &Value) -> Value {
    let plan = node["plan"]["displayName"]
        .as_str()
        .map(|p| p.to_ascii_lowercase().replace(' ', "_"));
    let mut shop = Map::new();
    for (rest, value) in [
        ("id", id_of(node)),
        ("name", field(node, "name")),
        ("myshopify_domain", field(node, "myshopifyDomain")),
        ("domain", node["primaryDomain"]["host"].clone()),
        ("currency", field(node, "currencyCode")),
        ("iana_timezone", field(node, "ianaTimezone")),
        (
            "country_code",
            node["billingAddress"]["countryCodeV2"].clone(),
        ),
        ("plan_name", plan.map_or(Value::Null, Value::from)),
        ("created_at", field(node, "createdAt")),
        ("updated_at", field(node, "updatedAt")),
    ] {
        shop.insert(rest.into(), value);
    }
    json!({"shop": shop})
}
