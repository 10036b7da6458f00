//! Admin API JSON records (REST shapes, as exported or as webhook payloads) → lake rows.
//!
//! Each function maps one record to the rows it contributes, or to a [`Reason`] it cannot be
//! ingested. A record is all-or-nothing: an order with a broken line item is quarantined
//! whole, so the lake never holds half an order.

use serde_json::{Value, json};

use super::fields::{Obj, Reason, format_cents};
use super::{Context, Rows};
use crate::pii;

const FINANCIAL_STATUSES: &[&str] = &[
    "pending",
    "authorized",
    "partially_paid",
    "paid",
    "partially_refunded",
    "refunded",
    "voided",
    "expired",
];
const FULFILLMENT_STATUSES: &[&str] = &["fulfilled", "partial", "unfulfilled", "restocked", "null"];
const SHIPMENT_STATUSES: &[&str] = &[
    "label_printed",
    "label_purchased",
    "attempted_delivery",
    "ready_for_pickup",
    "picked_up",
    "confirmed",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "failure",
    "carrier_picked_up",
    "delayed",
];
const RETURN_STATUSES: &[&str] = &[
    "requested",
    "open",
    "closed",
    "declined",
    "canceled",
    "cancelled",
];

pub fn shop(ctx: &Context, record: &Value) -> Result<Rows, Reason> {
    let outer = Obj::of(record, "record")?;
    let o = outer.obj("shop")?.unwrap_or(outer);
    Ok(vec![(
        "shops",
        json!({
            "shop_id": ctx.shop_id, "name": o.opt_str("name")?, "domain": o.opt_str("domain")?,
            "myshopify_domain": o.opt_str("myshopify_domain")?, "currency": o.opt_str("currency")?,
            "country_code": o.opt_str("country_code")?, "timezone": o.opt_str("iana_timezone")?,
            "plan_name": o.opt_str("plan_name")?, "created_at": o.opt_ts("created_at")?,
            "updated_at": o.ts("updated_at")?,
        }),
    )])
}

pub fn inventory_level(ctx: &Context, record: &Value) -> Result<Rows, Reason> {
    let o = Obj::of(record, "inventory level")?;
    Ok(vec![(
        "inventory_levels",
        json!({
            "shop_id": ctx.shop_id, "inventory_item_id": o.id("inventory_item_id")?,
            "location_id": o.id("location_id")?, "available": o.opt_i64("available")?,
            "updated_at": o.ts("updated_at")?,
        }),
    )])
}

/// Shopify's policy objects carry no type; it is the handle without `-policy`.
pub fn policy(ctx: &Context, record: &Value) -> Result<Rows, Reason> {
    let o = Obj::of(record, "policy")?;
    let handle = o.str("handle")?;
    let policy_type = handle.trim_end_matches("-policy").replace('-', "_");
    Ok(vec![(
        "policies",
        json!({
            "shop_id": ctx.shop_id, "policy_type": policy_type, "title": o.opt_str("title")?,
            "handle": handle, "body_html": o.opt_str("body")?, "url": o.opt_str("url")?,
            "created_at": o.opt_ts("created_at")?, "updated_at": o.ts("updated_at")?,
        }),
    )])
}

pub fn article(ctx: &Context, record: &Value) -> Result<Rows, Reason> {
    let o = Obj::of(record, "article")?;
    let blog_id = o.opt_id("blog_id")?;
    let blog_handle = blog_id.and_then(|id| ctx.blogs.get(&id).cloned());
    let handle = o.str("handle")?;
    let url = blog_handle
        .as_ref()
        .map(|b| format!("https://{}/blogs/{b}/{handle}", ctx.shop_domain));
    Ok(vec![(
        "articles",
        json!({
            "shop_id": ctx.shop_id, "id": o.id("id")?, "blog_id": blog_id, "blog_handle": blog_handle,
            "handle": handle, "title": o.opt_str("title")?, "body_html": o.opt_str("body_html")?,
            "author": o.opt_str("author")?, "tags": o.tags("tags")?, "url": url,
            "published_at": o.opt_ts("published_at")?, "created_at": o.opt_ts("created_at")?,
            "updated_at": o.ts("updated_at")?,
        }),
    )])
}

/// Customers keep a keyed email hash, a masked email and a last initial: enough for an
/// agent to recognise someone, not enough to leak them.
pub fn customer(ctx: &Context, record: &Value) -> Result<Rows, Reason> {
    let o = Obj::of(record, "customer")?;
    let email = o.opt_str("email")?;
    let address = o.obj("default_address")?;
    let consent = o.obj("email_marketing_consent")?;
    let accepts_marketing = match consent {
        Some(c) => c.opt_str("state")?.map(|s| s == "subscribed"),
        None => o.opt_bool("accepts_marketing")?,
    };
    Ok(vec![(
        "customers",
        json!({
            "shop_id": ctx.shop_id, "id": o.id("id")?,
            "email_hash": email.map(|e| pii::email_hash(&ctx.pii_key, e)),
            "email_masked": email.map(pii::mask_email),
            "first_name": o.opt_str("first_name")?,
            "last_initial": o.opt_str("last_name")?.and_then(|l| l.chars().next()).map(String::from),
            "phone_masked": o.opt_str("phone")?.map(pii::mask_phone),
            "state": o.opt_enum("state", &["enabled", "disabled", "invited", "declined"])?,
            "verified_email": o.opt_bool("verified_email")?, "accepts_marketing": accepts_marketing,
            "tags": o.tags("tags")?,
            "city": address.map(|a| a.opt_str("city")).transpose()?.flatten(),
            "province": address.map(|a| a.opt_str("province_code")).transpose()?.flatten(),
            "country_code": address.map(|a| a.opt_str("country_code")).transpose()?.flatten(),
            "created_at": o.opt_ts("created_at")?, "updated_at": o.ts("updated_at")?,
        }),
    )])
}

/// An order and everything nested in it: lines, fulfillments, refunds, returns.
pub fn order(ctx: &Context, record: &Value) -> Result<Rows, Reason> {
    let o = Obj::of(record, "order")?;
    let id = o.id("id")?;
    let updated_at = o.ts("updated_at")?;
    let email = o.opt_str("email")?;
    let customer_id = o
        .obj("customer")?
        .map(|c| c.opt_id("id"))
        .transpose()?
        .flatten();
    let address = o.obj("shipping_address")?;
    let shipping_lines = o.objects("shipping_lines")?;
    let total_shipping = match o.obj("total_shipping_price_set")? {
        Some(set) => set
            .obj("shop_money")?
            .map(|m| m.opt_money("amount"))
            .transpose()?
            .flatten(),
        None => None,
    };
    let mut rows: Rows = Vec::new();
    rows.push(("orders", json!({
        "shop_id": ctx.shop_id, "id": id, "order_number": o.opt_i64("order_number")?,
        "name": o.opt_str("name")?, "customer_id": customer_id,
        "email_hash": email.map(|e| pii::email_hash(&ctx.pii_key, e)),
        "financial_status": o.opt_enum("financial_status", FINANCIAL_STATUSES)?,
        "fulfillment_status": o.opt_enum("fulfillment_status", FULFILLMENT_STATUSES)?,
        "cancel_reason": o.opt_str("cancel_reason")?, "cancelled_at": o.opt_ts("cancelled_at")?,
        "closed_at": o.opt_ts("closed_at")?, "currency": o.opt_str("currency")?,
        "subtotal_price": o.opt_money("subtotal_price")?, "total_discounts": o.opt_money("total_discounts")?,
        "total_tax": o.opt_money("total_tax")?, "total_shipping": total_shipping,
        "total_price": o.opt_money("total_price")?,
        "shipping_method": shipping_lines.first().map(|l| l.opt_str("title")).transpose()?.flatten(),
        "ship_city": address.map(|a| a.opt_str("city")).transpose()?.flatten(),
        "ship_province": address.map(|a| a.opt_str("province_code")).transpose()?.flatten(),
        "ship_country_code": address.map(|a| a.opt_str("country_code")).transpose()?.flatten(),
        "source_name": o.opt_str("source_name")?, "tags": o.tags("tags")?,
        "processed_at": o.opt_ts("processed_at")?, "created_at": o.opt_ts("created_at")?,
        "updated_at": updated_at,
    })));
    for line in o.objects("line_items")? {
        rows.push(("order_lines", json!({
            "shop_id": ctx.shop_id, "id": line.id("id")?, "order_id": id,
            "product_id": line.opt_id("product_id")?, "variant_id": line.opt_id("variant_id")?,
            "sku": line.opt_str("sku")?, "title": line.opt_str("title")?,
            "variant_title": line.opt_str("variant_title")?, "quantity": line.opt_i64("quantity")?,
            "price": line.opt_money("price")?, "total_discount": line.opt_money("total_discount")?,
            "fulfillable_quantity": line.opt_i64("fulfillable_quantity")?,
            "fulfillment_status": line.opt_enum("fulfillment_status", FULFILLMENT_STATUSES)?,
            "updated_at": updated_at,
        })));
    }
    for f in o.objects("fulfillments")? {
        rows.push(("fulfillments", fulfillment_row(ctx, id, f, updated_at)?));
    }
    for r in o.objects("refunds")? {
        rows.push(("refunds", refund_row(ctx, id, r, updated_at)?));
    }
    for ret in o.objects("returns")? {
        rows.push(("returns", return_row(ctx, id, ret, updated_at)?));
    }
    Ok(rows)
}

/// A fulfillment of order `order_id`: nested in an order, or a `fulfillments/*` webhook.
/// `fallback_version` versions it when it carries no `updated_at`.
fn fulfillment_row(
    ctx: &Context,
    order_id: i64,
    f: Obj<'_>,
    fallback_version: i64,
) -> Result<Value, Reason> {
    let line_ids = f
        .objects("line_items")?
        .iter()
        .map(|l| l.id("id"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "shop_id": ctx.shop_id, "id": f.id("id")?, "order_id": order_id, "name": f.opt_str("name")?,
        "status": f.opt_enum("status", &["pending", "open", "success", "cancelled", "error", "failure"])?,
        "shipment_status": f.opt_enum("shipment_status", SHIPMENT_STATUSES)?,
        "tracking_company": f.opt_str("tracking_company")?, "tracking_number": f.opt_str("tracking_number")?,
        "tracking_url": f.opt_str("tracking_url")?, "line_item_ids": line_ids,
        "estimated_delivery_at": f.opt_ts("estimated_delivery_at")?, "delivered_at": f.opt_ts("delivered_at")?,
        "created_at": f.opt_ts("created_at")?,
        "updated_at": f.opt_ts("updated_at")?.unwrap_or(fallback_version),
    }))
}

/// A refund of order `order_id` (nested, or a `refunds/create` webhook): its amount is the
/// sum of its successful refund transactions.
fn refund_row(
    ctx: &Context,
    order_id: i64,
    r: Obj<'_>,
    fallback_version: i64,
) -> Result<Value, Reason> {
    let mut amount_cents: i64 = 0;
    let mut currency = None;
    for t in r.objects("transactions")? {
        if t.opt_str("kind")? == Some("refund") && t.opt_str("status")? != Some("failure") {
            let amount = t.opt_money("amount")?.unwrap_or_default();
            amount_cents += to_cents(&amount);
            currency = t.opt_str("currency")?.or(currency);
        }
    }
    let line_ids = r
        .objects("refund_line_items")?
        .iter()
        .map(|l| l.id("line_item_id"))
        .collect::<Result<Vec<_>, _>>()?;
    let created = r.opt_ts("created_at")?;
    Ok(json!({
        "shop_id": ctx.shop_id, "id": r.id("id")?, "order_id": order_id, "note": r.opt_str("note")?,
        "amount": format_cents(amount_cents), "currency": currency, "line_item_ids": line_ids,
        "restock": r.opt_bool("restock")?, "processed_at": r.opt_ts("processed_at")?,
        "created_at": created, "updated_at": created.unwrap_or(fallback_version),
    }))
}

/// A return of order `order_id` (nested, or a `returns/*` webhook).
fn return_row(
    ctx: &Context,
    order_id: i64,
    ret: Obj<'_>,
    fallback_version: i64,
) -> Result<Value, Reason> {
    let lines = ret.objects("return_line_items")?;
    let line_ids = lines
        .iter()
        .map(|l| l.opt_id("line_item_id"))
        .collect::<Result<Vec<_>, _>>()?;
    let quantity: i64 = lines
        .iter()
        .map(|l| l.opt_i64("quantity").map(Option::unwrap_or_default))
        .sum::<Result<i64, _>>()?;
    let reason = lines
        .first()
        .map(|l| l.opt_str("return_reason"))
        .transpose()?
        .flatten();
    // Webhooks spell statuses in either case (`OPEN`, `open`).
    let status = ret.opt_str("status")?.map(str::to_ascii_lowercase);
    if let Some(status) = &status
        && !RETURN_STATUSES.contains(&status.as_str())
    {
        return Err(format!(
            "unknown enum value: status = {status:?} (expected one of {})",
            RETURN_STATUSES.join(", ")
        ));
    }
    Ok(json!({
        "shop_id": ctx.shop_id, "id": ret.id("id")?, "order_id": order_id, "name": ret.opt_str("name")?,
        "status": status, "reason": reason,
        "line_item_ids": line_ids.into_iter().flatten().collect::<Vec<_>>(), "quantity": quantity,
        "is_exchange": ret.opt_i64("total_exchange_line_items")?.map(|n| n > 0),
        "created_at": ret.opt_ts("created_at")?,
        "updated_at": ret.opt_ts("updated_at")?.unwrap_or(fallback_version),
    }))
}

/// A `fulfillments/create|update` webhook: one fulfillment with its `order_id`.
pub fn fulfillment(ctx: &Context, record: &Value) -> Result<Rows, Reason> {
    let f = Obj::of(record, "fulfillment")?;
    let row = fulfillment_row(ctx, f.id("order_id")?, f, ctx.export_time)?;
    Ok(vec![("fulfillments", row)])
}

/// A `refunds/create` webhook: one refund with its `order_id`.
pub fn refund(ctx: &Context, record: &Value) -> Result<Rows, Reason> {
    let r = Obj::of(record, "refund")?;
    let row = refund_row(ctx, r.id("order_id")?, r, ctx.export_time)?;
    Ok(vec![("refunds", row)])
}

/// A `returns/*` webhook: the order is a nested `{id}` object.
pub fn return_request(ctx: &Context, record: &Value) -> Result<Rows, Reason> {
    let ret = Obj::of(record, "return")?;
    let order_id = ret
        .obj("order")?
        .ok_or_else(|| "missing field: order".to_string())?
        .id("id")?;
    let row = return_row(ctx, order_id, ret, ctx.export_time)?;
    Ok(vec![("returns", row)])
}

/// A product in the Admin API's REST shape (`products/create|update` webhooks) with its
/// variants, mapped as the product CSV maps them.
pub fn product(ctx: &Context, record: &Value) -> Result<Rows, Reason> {
    let o = Obj::of(record, "product")?;
    let id = o.id("id")?;
    let handle = o.str("handle")?;
    let updated_at = o.ts("updated_at")?;
    // `category` is a taxonomy object in current API versions, a string in older exports.
    let category = match record.get("category") {
        Some(Value::String(name)) => Some(name.as_str()),
        _ => match o.obj("category")? {
            Some(c) => c.opt_str("full_name")?.or(c.opt_str("name")?),
            None => None,
        },
    };
    let option_names = o
        .objects("options")?
        .iter()
        .map(|opt| opt.str("name").map(String::from))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows: Rows = vec![(
        "products",
        json!({
            "shop_id": ctx.shop_id, "id": id, "handle": handle, "title": o.opt_str("title")?,
            "body_html": o.opt_str("body_html")?, "vendor": o.opt_str("vendor")?,
            "product_type": o.opt_str("product_type")?, "category": category,
            "tags": o.tags("tags")?, "option_names": option_names,
            "status": o.opt_enum("status", &["active", "draft", "archived", "unlisted"])?,
            "published": Some(o.opt_ts("published_at")?.is_some()),
            "seo_title": o.opt_str("metafields_global_title_tag")?,
            "seo_description": o.opt_str("metafields_global_description_tag")?,
            "url": format!("https://{}/products/{handle}", ctx.shop_domain),
            "created_at": o.opt_ts("created_at")?, "updated_at": updated_at,
        }),
    )];
    for v in o.objects("variants")? {
        rows.push(("variants", variant_row(ctx, Some(id), v, updated_at)?));
    }
    Ok(rows)
}

/// A `variants/in_stock|out_of_stock` webhook: one variant with its `product_id`.
pub fn variant(ctx: &Context, record: &Value) -> Result<Rows, Reason> {
    let v = Obj::of(record, "variant")?;
    Ok(vec![(
        "variants",
        variant_row(ctx, None, v, ctx.export_time)?,
    )])
}

fn variant_row(
    ctx: &Context,
    product_id: Option<i64>,
    v: Obj<'_>,
    fallback_version: i64,
) -> Result<Value, Reason> {
    let product_id = match product_id {
        Some(id) => id,
        None => v.id("product_id")?,
    };
    let quantity = v.opt_i64("inventory_quantity")?;
    let policy = v.opt_enum("inventory_policy", &["deny", "continue"])?;
    let options = [
        v.opt_str("option1")?,
        v.opt_str("option2")?,
        v.opt_str("option3")?,
    ];
    Ok(json!({
        "shop_id": ctx.shop_id, "id": v.id("id")?, "product_id": product_id, "sku": v.opt_str("sku")?,
        "title": v.opt_str("title")?, "option1": options[0], "option2": options[1], "option3": options[2],
        "price": v.opt_money("price")?, "compare_at_price": v.opt_money("compare_at_price")?,
        "grams": v.opt_i64("grams")?, "inventory_item_id": v.opt_id("inventory_item_id")?,
        "inventory_quantity": quantity, "inventory_policy": policy,
        "available": quantity.map(|q| q > 0 || policy == Some("continue")),
        "barcode": v.opt_str("barcode")?, "requires_shipping": v.opt_bool("requires_shipping")?,
        "taxable": v.opt_bool("taxable")?,
        "updated_at": v.opt_ts("updated_at")?.unwrap_or(fallback_version),
    }))
}

fn to_cents(amount: &str) -> i64 {
    let negative = amount.starts_with('-');
    let digits = amount.trim_start_matches('-');
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let cents = whole.parse::<i64>().unwrap_or(0) * 100
        + format!("{frac:0<2}")[..2].parse::<i64>().unwrap_or(0);
    if negative { -cents } else { cents }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_round_trip() {
        for s in ["0.00", "12.30", "-4.05", "7"] {
            let back = format_cents(to_cents(s));
            assert_eq!(to_cents(&back), to_cents(s), "{s}");
        }
        assert_eq!(to_cents("12.3"), 1230);
    }
}
