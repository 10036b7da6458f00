//! # demo-store — `supportlake generate`: the demo store, at any scale, in Shopify's own export formats
//!
//! Ridgeline Outfitters, a fictional outdoor store, with its catalog, content, customers,
//! orders and support history. It lives apart from `pipeline` so that the ~0.5 MB of
//! embedded content and the generator's code are compiled only into the binary that
//! generates stores, not into the index and the server; it writes the formats `pipeline`
//! reads and takes their definitions (intents, passage keys, money) from there.
//!
//! Output (one directory, what `supportlake ingest` reads):
//!
//! | file | format |
//! |---|---|
//! | `export.json` | manifest: shop, export time, scale, seed |
//! | `shop.json` | Admin REST `{"shop": {...}}` |
//! | `products.csv` | Shopify's product CSV export (one row per variant, 2023+ columns) |
//! | `inventory_levels.jsonl` | Admin REST inventory level objects, one per line |
//! | `policies.json` | Admin REST `{"policies": [...]}` |
//! | `blogs.json`, `articles.json` | Admin REST `{"blogs": [...]}`, `{"articles": [...]}` |
//! | `customers.jsonl` | Admin REST customer objects, one per line (bulk-export style) |
//! | `orders.jsonl` | Admin REST order objects with line items, fulfillments, refunds, returns |
//! | `conversations.jsonl` | supportlake's conversation export: messages, AI turns, handoff, CSAT |
//!
//! Everything is a pure function of `(scale, seed)`: the same arguments give byte-identical
//! files. Entities are written as they are made and never kept, so memory does not grow with
//! the scale.

// The Admin API shapes built with `json!` below nest deeper than the default allows.
#![recursion_limit = "256"]

mod catalog;
mod commerce;
mod content;
mod rng;
mod support;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use chrono::Duration;
use serde_json::{Value, json};

use commerce::{OrderState, PLACES, SHOP_DOMAIN, SHOP_ID, SHOP_NUMERIC_ID, exported_at, ts};
use pipeline::sources::export::format_cents as money;
use pipeline::{PipelineError, Result};

/// What `generate` wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub products: usize,
    pub variants: usize,
    pub customers: usize,
    pub orders: usize,
    pub conversations: usize,
    pub articles: usize,
    pub policies: usize,
}

/// The column set of Shopify's current product CSV template.
pub const PRODUCT_CSV_COLUMNS: &[&str] = &[
    "Handle",
    "Title",
    "Body (HTML)",
    "Vendor",
    "Product Category",
    "Type",
    "Tags",
    "Published",
    "Option1 Name",
    "Option1 Value",
    "Option2 Name",
    "Option2 Value",
    "Option3 Name",
    "Option3 Value",
    "Variant SKU",
    "Variant Grams",
    "Variant Inventory Tracker",
    "Variant Inventory Qty",
    "Variant Inventory Policy",
    "Variant Fulfillment Service",
    "Variant Price",
    "Variant Compare At Price",
    "Variant Requires Shipping",
    "Variant Taxable",
    "Variant Barcode",
    "Image Src",
    "Image Position",
    "Image Alt Text",
    "Gift Card",
    "SEO Title",
    "SEO Description",
    "Variant Weight Unit",
    "Status",
];

/// Locations stock is held at: the Reno warehouse and a small overflow store.
pub const LOCATIONS: &[(i64, &str)] = &[
    (71_204_000_001, "Reno Warehouse"),
    (71_204_000_002, "Salt Lake Overflow"),
];

fn create(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    let path = dir.join(name);
    File::create(&path)
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .map_err(|e| PipelineError::io(path, e))
}

fn json_line(out: &mut impl Write, value: &Value, path: &Path) -> Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(|e| PipelineError::io(path, e.into()))?;
    out.write_all(b"\n").map_err(|e| PipelineError::io(path, e))
}

fn write_json(dir: &Path, name: &str, value: &Value) -> Result<()> {
    let mut out = create(dir, name)?;
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(|e| PipelineError::io(dir.join(name), e.into()))?;
    out.write_all(b"\n")
        .and_then(|()| out.flush())
        .map_err(|e| PipelineError::io(dir.join(name), e))
}

/// What a generated store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contents {
    /// Catalog, content, customers, orders and conversations: the demo store.
    Everything,
    /// Catalog and content only (products, inventory, policies, articles): what the
    /// retrieval index reads, at catalog sizes whose orders would fill the disk.
    CatalogOnly,
}

/// Writes the store at `scale` with `seed` into `out`.
pub fn generate(
    scale: u32,
    seed: u64,
    contents: Contents,
    out: &Path,
    mut progress: impl FnMut(&str, usize),
) -> Result<Summary> {
    if scale == 0 {
        return Err(PipelineError::Input("--scale must be at least 1".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| PipelineError::io(out, e))?;
    let mut summary = Summary::default();
    let exported = exported_at();
    let store_opened = commerce::window_start() - Duration::days(1100);

    write_json(
        out,
        "export.json",
        &json!({
            "format": "shopify-export",
            "version": 1,
            "shop": SHOP_ID,
            "exported_at": ts(exported),
            "generator": {"name": "supportlake generate", "scale": scale, "seed": seed},
        }),
    )?;
    write_json(
        out,
        "shop.json",
        &json!({"shop": {
            "id": SHOP_NUMERIC_ID, "name": "Ridgeline Outfitters", "email": "support@ridgeline-outfitters.com",
            "domain": SHOP_DOMAIN, "myshopify_domain": SHOP_ID, "province": "Nevada", "country": "US",
            "country_code": "US", "city": "Reno", "currency": "USD", "iana_timezone": "America/Los_Angeles",
            "timezone": "(GMT-08:00) America/Los_Angeles", "plan_name": "shopify_plus",
            "created_at": ts(store_opened), "updated_at": ts(exported),
        }}),
    )?;

    // Catalog.
    let products_path = out.join("products.csv");
    let mut csv = csv::Writer::from_writer(create(out, "products.csv")?);
    let csv_err = |e: csv::Error| PipelineError::io(&products_path, std::io::Error::other(e));
    csv.write_record(PRODUCT_CSV_COLUMNS).map_err(csv_err)?;
    let inventory_path = out.join("inventory_levels.jsonl");
    let mut inventory = create(out, "inventory_levels.jsonl")?;
    for p in 0..catalog::product_count(scale) {
        let product = catalog::product(seed, p);
        let kind = product.kind;
        for (v, variant) in product.variants.iter().enumerate() {
            let first = v == 0;
            let product_field = |value: String| if first { value } else { String::new() };
            let option2_name = kind
                .option2
                .as_ref()
                .map(|o| o.name.clone())
                .unwrap_or_default();
            let row: Vec<String> = vec![
                product.handle.clone(),
                product_field(product.title.clone()),
                product_field(product.body_html.clone()),
                product_field(product.vendor.clone()),
                product_field(kind.category.clone()),
                product_field(kind.name.clone()),
                product_field(product.tags.join(", ")),
                product_field((product.status == "active").to_string().to_uppercase()),
                product_field(kind.option1.name.clone()),
                variant.option1.clone(),
                product_field(option2_name),
                variant.option2.clone().unwrap_or_default(),
                String::new(),
                String::new(),
                variant.sku.clone(),
                variant.grams.to_string(),
                "shopify".into(),
                variant.quantity.to_string(),
                if variant.continue_selling {
                    "continue"
                } else {
                    "deny"
                }
                .into(),
                "manual".into(),
                money(variant.price_cents),
                variant.compare_at_cents.map(money).unwrap_or_default(),
                "TRUE".into(),
                "TRUE".into(),
                String::new(),
                product_field(format!(
                    "https://cdn.shopify.com/s/files/1/0683/1045/2233/products/{}.jpg",
                    product.handle
                )),
                product_field("1".into()),
                product_field(product.title.clone()),
                product_field("FALSE".into()),
                product_field(format!("{} | Ridgeline Outfitters", product.title)),
                product_field(product.seo_description.clone()),
                "g".into(),
                product_field(product.status.into()),
            ];
            csv.write_record(&row).map_err(csv_err)?;
            // Most stock sits in Reno; the overflow location holds a little of some items.
            let overflow = if variant.quantity > 10 && p % 3 == 0 {
                variant.quantity / 5
            } else {
                0
            };
            for (location, available) in [
                (LOCATIONS[0].0, variant.quantity - overflow),
                (LOCATIONS[1].0, overflow),
            ] {
                if location == LOCATIONS[1].0 && available == 0 {
                    continue;
                }
                json_line(
                    &mut inventory,
                    &json!({
                        "inventory_item_id": variant.inventory_item_id, "location_id": location,
                        "available": available, "updated_at": ts(exported - Duration::hours((p % 48) as i64)),
                        "admin_graphql_api_id": format!("gid://shopify/InventoryLevel/{}?inventory_item_id={}", location, variant.inventory_item_id),
                    }),
                    &inventory_path,
                )?;
            }
            summary.variants += 1;
        }
        summary.products += 1;
        if p.is_multiple_of(64) {
            progress("products", summary.products);
        }
    }
    csv.flush()
        .map_err(|e| PipelineError::io(&products_path, e))?;
    inventory
        .flush()
        .map_err(|e| PipelineError::io(&inventory_path, e))?;

    // Content.
    let policies: Vec<Value> = content::POLICIES
        .iter()
        .map(|p| {
            json!({
                "title": p.title, "body": p.body_html, "handle": p.handle,
                "url": format!("https://{SHOP_DOMAIN}/policies/{}", p.handle),
                "created_at": ts(store_opened), "updated_at": ts(exported - Duration::days(40)),
            })
        })
        .collect();
    summary.policies = policies.len();
    write_json(out, "policies.json", &json!({"policies": policies}))?;
    let mut blog_handles: Vec<&str> = content::ARTICLES.iter().map(|a| a.blog.as_str()).collect();
    blog_handles.sort_unstable();
    blog_handles.dedup();
    let blog_id = |handle: &str| {
        91_000_000_000 + blog_handles.iter().position(|b| *b == handle).unwrap_or(0) as i64
    };
    let blogs: Vec<Value> = blog_handles
        .iter()
        .map(|h| json!({"id": blog_id(h), "handle": h, "title": title_case(h), "commentable": "no", "created_at": ts(store_opened), "updated_at": ts(store_opened)}))
        .collect();
    write_json(out, "blogs.json", &json!({"blogs": blogs}))?;
    let articles: Vec<Value> = content::ARTICLES
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let created = store_opened + Duration::days(30 + 11 * i as i64);
            json!({
                "id": 558_000_000_000i64 + i as i64, "blog_id": blog_id(&a.blog), "title": a.title,
                "handle": a.handle, "author": a.author, "body_html": a.body_html, "tags": a.tags.join(", "),
                "created_at": ts(created), "published_at": ts(created),
                "updated_at": ts(exported - Duration::days(1 + (i as i64 * 7) % 120)),
                "user_id": null, "summary_html": null, "template_suffix": null,
            })
        })
        .collect();
    summary.articles = articles.len();
    write_json(out, "articles.json", &json!({"articles": articles}))?;
    if contents == Contents::CatalogOnly {
        return Ok(summary);
    }

    // Customers.
    let customers_path = out.join("customers.jsonl");
    let mut customers = create(out, "customers.jsonl")?;
    for c in 0..commerce::customer_count(scale) {
        let customer = commerce::customer(seed, c);
        let place = PLACES[customer.place];
        let mut tags = vec![];
        if let Some(tier) = customer.tier {
            tags.push(format!("rewards-{tier}"));
        }
        json_line(
            &mut customers,
            &json!({
                "id": customer.id, "email": customer.email, "first_name": customer.first_name,
                "last_name": customer.last_name, "phone": customer.phone, "state": "enabled",
                "verified_email": true, "tags": tags.join(", "), "currency": "USD",
                "email_marketing_consent": {"state": if customer.accepts_marketing { "subscribed" } else { "not_subscribed" }, "opt_in_level": "single_opt_in"},
                "created_at": ts(customer.created_at), "updated_at": ts(customer.created_at + Duration::days(3)),
                "admin_graphql_api_id": format!("gid://shopify/Customer/{}", customer.id),
                "default_address": {
                    "customer_id": customer.id, "first_name": customer.first_name, "last_name": customer.last_name,
                    "address1": format!("{} Trailhead Rd", 100 + c % 800), "city": place.0, "province": place.1,
                    "province_code": place.2, "country": place.3, "country_code": place.4,
                    "zip": format!("{}{:02}", place.5, c % 100), "default": true,
                },
            }),
            &customers_path,
        )?;
        summary.customers += 1;
    }
    customers
        .flush()
        .map_err(|e| PipelineError::io(&customers_path, e))?;
    progress("customers", summary.customers);

    // Orders.
    let timeline = commerce::Timeline::new(scale);
    let orders_path = out.join("orders.jsonl");
    let mut orders = create(out, "orders.jsonl")?;
    for j in 0..timeline.order_count() {
        let order = commerce::order(seed, scale, &timeline, j);
        json_line(&mut orders, &order_json(seed, &order), &orders_path)?;
        summary.orders += 1;
        if j.is_multiple_of(512) {
            progress("orders", summary.orders);
        }
    }
    orders
        .flush()
        .map_err(|e| PipelineError::io(&orders_path, e))?;

    // Conversations.
    let conversations_path = out.join("conversations.jsonl");
    let mut conversations = create(out, "conversations.jsonl")?;
    let mut written = 0usize;
    summary.conversations = support::conversations(seed, scale, &timeline, |record| {
        serde_json::to_writer(&mut conversations, &record)?;
        conversations.write_all(b"\n")?;
        written += 1;
        if written.is_multiple_of(512) {
            progress("conversations", written);
        }
        Ok(())
    })
    .map_err(|e| PipelineError::io(&conversations_path, e))?;
    conversations
        .flush()
        .map_err(|e| PipelineError::io(&conversations_path, e))?;
    Ok(summary)
}

fn title_case(handle: &str) -> String {
    handle
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An order in the Admin REST shape (the fields supportlake reads, plus the usual context).
fn order_json(seed: u64, order: &commerce::Order) -> Value {
    let customer = commerce::customer(seed, order.customer);
    let place = PLACES[customer.place];
    let money_set = |cents: i64| json!({"shop_money": {"amount": money(cents), "currency_code": "USD"}, "presentment_money": {"amount": money(cents), "currency_code": "USD"}});
    let fulfilled_lines: Vec<i64> = order
        .shipments
        .iter()
        .flat_map(|s| s.line_item_ids.iter().copied())
        .collect();
    let line_items: Vec<Value> = order
        .lines
        .iter()
        .map(|line| {
            let product = commerce::line_product(seed, line);
            let variant = &product.variants[line.variant];
            let shipped = fulfilled_lines.contains(&line.id);
            json!({
                "id": line.id, "admin_graphql_api_id": format!("gid://shopify/LineItem/{}", line.id),
                "product_id": product.id, "variant_id": variant.id, "sku": variant.sku, "title": product.title,
                "variant_title": variant.title(), "name": format!("{} - {}", product.title, variant.title()),
                "vendor": product.vendor, "quantity": line.quantity, "current_quantity": line.quantity,
                "price": money(variant.price_cents), "price_set": money_set(variant.price_cents),
                "total_discount": "0.00", "grams": variant.grams, "requires_shipping": true, "taxable": true,
                "fulfillable_quantity": if shipped || order.state == OrderState::Cancelled { 0 } else { line.quantity },
                "fulfillment_status": if shipped { json!("fulfilled") } else { Value::Null },
                "fulfillment_service": "manual", "gift_card": false, "properties": [],
            })
        })
        .collect();
    let fulfillments: Vec<Value> = order
        .shipments
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let now = exported_at();
            let status = match s.delivered_at {
                Some(_) => "delivered",
                None if s.delivery_due - Duration::hours(20) < now => "out_for_delivery",
                None if s.shipped_at + Duration::hours(12) > now => "label_printed",
                None => "in_transit",
            };
            json!({
                "id": s.id, "admin_graphql_api_id": format!("gid://shopify/Fulfillment/{}", s.id),
                "order_id": order.id, "name": format!("{}.{}", order.name(), n + 1), "status": "success",
                "shipment_status": status, "service": "manual", "tracking_company": s.carrier,
                "tracking_number": s.tracking_number, "tracking_numbers": [s.tracking_number],
                "tracking_url": commerce::tracking_url(s.carrier, &s.tracking_number),
                "tracking_urls": [commerce::tracking_url(s.carrier, &s.tracking_number)],
                "estimated_delivery_at": ts(s.estimated_delivery_at),
                "delivered_at": s.delivered_at.map(ts),
                "created_at": ts(s.shipped_at), "updated_at": ts(s.delivered_at.unwrap_or(s.shipped_at)),
                "line_items": s.line_item_ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
                "location_id": LOCATIONS[0].0,
            })
        })
        .collect();
    let refunds: Vec<Value> = order
        .refund
        .iter()
        .map(|(at, cents, lines)| {
            let id = 9_300_000_000_000 + order.index as i64;
            json!({
                "id": id, "admin_graphql_api_id": format!("gid://shopify/Refund/{id}"), "order_id": order.id,
                "created_at": ts(*at), "processed_at": ts(*at),
                "note": if order.state == OrderState::Returned { "Return received" } else { "Damaged in transit" },
                "restock": order.state == OrderState::Returned,
                "refund_line_items": lines.iter().enumerate().map(|(k, l)| json!({"id": id * 10 + k as i64, "line_item_id": l, "quantity": 1, "restock_type": "return"})).collect::<Vec<_>>(),
                "transactions": [{"id": id + 1, "kind": "refund", "status": "success", "amount": money(*cents), "currency": "USD", "gateway": "shopify_payments", "created_at": ts(*at)}],
            })
        })
        .collect();
    let returns: Vec<Value> = order
        .return_request
        .iter()
        .map(|(at, reason, exchange)| {
            let id = 8_100_000_000_000 + order.index as i64;
            let status = if order.state == OrderState::Returned { "closed" } else { "requested" };
            let updated = order.refund.as_ref().map_or(order.updated_at, |r| r.0);
            json!({
                "id": id, "admin_graphql_api_id": format!("gid://shopify/Return/{id}"), "name": format!("{}-R1", order.name()),
                "status": status, "order": {"id": order.id}, "created_at": ts(*at), "updated_at": ts(updated.max(*at)),
                "total_return_line_items": 1,
                "return_line_items": [{"id": id * 10, "line_item_id": order.lines[0].id, "quantity": 1, "return_reason": reason}],
                "exchange_line_items": if *exchange { json!([{"id": id * 10 + 1}]) } else { json!([]) },
                "total_exchange_line_items": i32::from(*exchange),
            })
        })
        .collect();
    let (financial, fulfillment) = match order.state {
        OrderState::Cancelled => ("voided", Value::Null),
        OrderState::Unfulfilled => ("paid", Value::Null),
        OrderState::PartiallyFulfilled => ("paid", json!("partial")),
        OrderState::InTransit | OrderState::Delivered | OrderState::ReturnRequested => {
            ("paid", json!("fulfilled"))
        }
        OrderState::Refunded => ("refunded", json!("fulfilled")),
        OrderState::Returned if order.refund.is_some() => {
            ("partially_refunded", json!("fulfilled"))
        }
        OrderState::Returned => ("paid", json!("fulfilled")),
    };
    json!({
        "id": order.id, "admin_graphql_api_id": format!("gid://shopify/Order/{}", order.id),
        "name": order.name(), "number": order.number - 1000, "order_number": order.number,
        "email": customer.email, "contact_email": customer.email, "phone": customer.phone,
        "created_at": ts(order.created_at), "processed_at": ts(order.created_at), "updated_at": ts(order.updated_at),
        "cancelled_at": order.cancelled_at.map(ts), "cancel_reason": order.cancel_reason,
        "closed_at": order.cancelled_at.map(ts), "currency": "USD", "presentment_currency": "USD",
        "financial_status": financial, "fulfillment_status": fulfillment,
        "subtotal_price": money(order.subtotal_cents - order.discount_cents),
        "total_line_items_price": money(order.subtotal_cents),
        "total_discounts": money(order.discount_cents), "total_tax": money(order.tax_cents),
        "total_price": money(order.total_cents()),
        "total_shipping_price_set": money_set(order.shipping_cents),
        "shipping_lines": [{"title": order.shipping_method, "code": order.shipping_method, "price": money(order.shipping_cents), "source": "shopify"}],
        "discount_codes": order.discount_code.map(|c| vec![json!({"code": c, "amount": money(order.discount_cents), "type": "percentage"})]).unwrap_or_default(),
        "source_name": if order.index.is_multiple_of(17) { "shopify_draft_order" } else { "web" },
        "tags": if order.discount_code == Some("LABORDAY25") { "labor-day-sale" } else { "" },
        "payment_gateway_names": ["shopify_payments"], "test": false,
        "customer": {"id": customer.id, "email": customer.email, "first_name": customer.first_name, "last_name": customer.last_name, "state": "enabled"},
        "shipping_address": {
            "first_name": customer.first_name, "last_name": customer.last_name,
            "name": format!("{} {}", customer.first_name, customer.last_name),
            "address1": format!("{} Trailhead Rd", 100 + order.customer % 800), "city": place.0,
            "province": place.1, "province_code": place.2, "country": place.3, "country_code": place.4,
            "zip": format!("{}{:02}", place.5, order.customer % 100), "phone": customer.phone,
        },
        "line_items": line_items, "fulfillments": fulfillments, "refunds": refunds, "returns": returns,
    })
}

/// What was written, as `supportlake generate` reports it after the output directory.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} products, {} variants, {} customers, {} orders, {} conversations, {} policies, {} articles",
            self.products,
            self.variants,
            self.customers,
            self.orders,
            self.conversations,
            self.policies,
            self.articles
        )
    }
}
