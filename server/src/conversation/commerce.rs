//! The store's system of record as the answers read it: shops, orders with their lines,
//! shipments, refunds and returns, customers' loyalty tier, products with their variants'
//! stock, and the return window from the refund policy.
//!
//! It is a snapshot of the lake held in memory, keyed for the lookups a chat turn makes
//! (order by shop and number, variants by product). A turn must answer in milliseconds, and a
//! DataFusion query over Delta costs tens of them; the demo store's snapshot is a few MB. The
//! server reloads it when a commerce table's Delta version changes ([`Snapshot::stamp`]).

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use pipeline::sql::{SqlEngine, booleans, floats, integers, strings};
use pipeline::{Lake, lake::schema};
use regex::Regex;

use crate::error::ServerError;

/// A shop the server answers for.
#[derive(Debug, Clone, PartialEq)]
pub struct Shop {
    pub id: String,
    pub name: String,
    pub domain: Option<String>,
    pub myshopify_domain: Option<String>,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: i64,
    pub number: i64,
    /// `#1042`.
    pub name: String,
    pub customer_id: Option<i64>,
    pub email_hash: Option<String>,
    pub financial_status: Option<String>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub processed_at: Option<DateTime<Utc>>,
    pub total_price: Option<f64>,
    pub currency: Option<String>,
    pub lines: Vec<Line>,
    pub fulfillments: Vec<Fulfillment>,
    pub refunds: Vec<Refund>,
    pub returns: Vec<Return>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub id: i64,
    pub product_id: Option<i64>,
    pub title: String,
    pub variant_title: Option<String>,
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fulfillment {
    pub shipment_status: Option<String>,
    pub tracking_company: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub line_item_ids: Vec<i64>,
    pub estimated_delivery_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refund {
    pub amount: Option<f64>,
    pub currency: Option<String>,
    pub processed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Return {
    pub status: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: i64,
    pub handle: String,
    pub title: String,
    pub product_type: Option<String>,
    pub url: Option<String>,
    pub tags: Vec<String>,
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub title: String,
    pub sku: Option<String>,
    pub price: Option<f64>,
    pub inventory_quantity: Option<i64>,
    pub available: bool,
}

/// How long a shopper has to return, from the refund policy's text.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnWindow {
    pub days: i64,
    /// Longer window for loyalty tiers: (customer tag, days).
    pub tier_days: Vec<(String, i64)>,
}

/// Everything above for every shop in the lake.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub shops: Vec<Shop>,
    orders: HashMap<(String, i64), Order>,
    order_numbers: HashMap<(String, i64), i64>,
    customer_orders: HashMap<(String, i64), Vec<i64>>,
    customer_tags: HashMap<(String, i64), Vec<String>>,
    products: HashMap<(String, i64), Product>,
    product_handles: HashMap<(String, String), i64>,
    return_windows: HashMap<String, ReturnWindow>,
    /// The Delta versions it was read at (`None`: the table did not exist).
    pub stamp: Vec<Option<u64>>,
}

/// The tables a snapshot reads; a change to any of them reloads it.
const TABLES: &[&str] = &[
    "shops",
    "orders",
    "order_lines",
    "fulfillments",
    "refunds",
    "returns",
    "customers",
    "products",
    "variants",
    "policies",
];

fn time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn list(text: Option<String>) -> Vec<String> {
    text.map(|t| {
        t.split('|')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

fn ids(text: Option<String>) -> Vec<i64> {
    list(text).iter().filter_map(|s| s.parse().ok()).collect()
}

impl Snapshot {
    /// The Delta version of each table [`Snapshot::load`] reads.
    pub async fn stamp(lake: &Lake) -> Result<Vec<Option<u64>>, ServerError> {
        let mut versions = Vec::with_capacity(TABLES.len());
        for name in TABLES {
            let spec = schema::table(name).expect("snapshot tables are lake tables");
            let version = lake.load(spec).await?.and_then(|t| t.version());
            versions.push(version);
        }
        Ok(versions)
    }

    /// Reads the snapshot from the lake.
    pub async fn load(lake: &Lake) -> Result<Self, ServerError> {
        let stamp = Self::stamp(lake).await?;
        let engine = SqlEngine::open(lake).await?;
        let mut snapshot = Snapshot {
            stamp,
            ..Snapshot::default()
        };
        if engine.has_table("shops") {
            let rows = engine
                .query("SELECT shop_id, name, domain, myshopify_domain, currency FROM shops ORDER BY shop_id")
                .await?;
            let (id, name, domain, myshopify, currency) = (
                strings(&rows, "shop_id")?,
                strings(&rows, "name")?,
                strings(&rows, "domain")?,
                strings(&rows, "myshopify_domain")?,
                strings(&rows, "currency")?,
            );
            for i in 0..id.len() {
                let Some(shop_id) = id[i].clone() else {
                    continue;
                };
                snapshot.shops.push(Shop {
                    name: name[i].clone().unwrap_or_else(|| shop_id.clone()),
                    id: shop_id,
                    domain: domain[i].clone(),
                    myshopify_domain: myshopify[i].clone(),
                    currency: currency[i].clone().unwrap_or_else(|| "USD".into()),
                });
            }
        }
        snapshot.load_orders(&engine).await?;
        snapshot.load_customers(&engine).await?;
        snapshot.load_products(&engine).await?;
        snapshot.load_policies(&engine).await?;
        Ok(snapshot)
    }

    async fn load_orders(&mut self, engine: &SqlEngine) -> Result<(), ServerError> {
        if !engine.has_table("orders") {
            return Ok(());
        }
        let rows = engine
            .query(
                "SELECT shop_id, id, order_number, name, customer_id, email_hash, financial_status,
                        CAST(cancelled_at AS VARCHAR) AS cancelled_at, cancel_reason,
                        CAST(processed_at AS VARCHAR) AS processed_at,
                        CAST(total_price AS DOUBLE) AS total_price, currency
                 FROM orders WHERE order_number IS NOT NULL",
            )
            .await?;
        let (shop, id, number, name, customer, hash, financial, cancelled, reason, processed) = (
            strings(&rows, "shop_id")?,
            integers(&rows, "id")?,
            integers(&rows, "order_number")?,
            strings(&rows, "name")?,
            integers(&rows, "customer_id")?,
            strings(&rows, "email_hash")?,
            strings(&rows, "financial_status")?,
            strings(&rows, "cancelled_at")?,
            strings(&rows, "cancel_reason")?,
            strings(&rows, "processed_at")?,
        );
        let (total, currency) = (floats(&rows, "total_price")?, strings(&rows, "currency")?);
        let mut by_id: HashMap<(String, i64), Order> = HashMap::new();
        for i in 0..id.len() {
            let (Some(shop), Some(id), Some(number)) = (shop[i].clone(), id[i], number[i]) else {
                continue;
            };
            by_id.insert(
                (shop, id),
                Order {
                    id,
                    number,
                    name: name[i].clone().unwrap_or_else(|| format!("#{number}")),
                    customer_id: customer[i],
                    email_hash: hash[i].clone(),
                    financial_status: financial[i].clone(),
                    cancelled_at: time(cancelled[i].clone()),
                    cancel_reason: reason[i].clone(),
                    processed_at: time(processed[i].clone()),
                    total_price: total[i],
                    currency: currency[i].clone(),
                    lines: Vec::new(),
                    fulfillments: Vec::new(),
                    refunds: Vec::new(),
                    returns: Vec::new(),
                },
            );
        }
        if engine.has_table("order_lines") {
            let rows = engine
                .query("SELECT shop_id, order_id, id, product_id, title, variant_title, quantity FROM order_lines ORDER BY shop_id, order_id, id")
                .await?;
            let (shop, order, id, product, title, variant, quantity) = (
                strings(&rows, "shop_id")?,
                integers(&rows, "order_id")?,
                integers(&rows, "id")?,
                integers(&rows, "product_id")?,
                strings(&rows, "title")?,
                strings(&rows, "variant_title")?,
                integers(&rows, "quantity")?,
            );
            for i in 0..id.len() {
                let (Some(shop), Some(order), Some(id)) = (shop[i].clone(), order[i], id[i]) else {
                    continue;
                };
                if let Some(o) = by_id.get_mut(&(shop, order)) {
                    o.lines.push(Line {
                        id,
                        product_id: product[i],
                        title: title[i].clone().unwrap_or_default(),
                        variant_title: variant[i].clone(),
                        quantity: quantity[i].unwrap_or(1),
                    });
                }
            }
        }
        if engine.has_table("fulfillments") {
            let rows = engine
                .query(
                    "SELECT shop_id, order_id, shipment_status, tracking_company, tracking_number, tracking_url,
                            array_to_string(line_item_ids, '|') AS line_item_ids,
                            CAST(estimated_delivery_at AS VARCHAR) AS estimated_delivery_at,
                            CAST(delivered_at AS VARCHAR) AS delivered_at,
                            CAST(created_at AS VARCHAR) AS created_at
                     FROM fulfillments WHERE coalesce(status, 'success') NOT IN ('cancelled', 'error', 'failure')
                     ORDER BY shop_id, order_id, created_at, id",
                )
                .await?;
            let (shop, order, status, company, number, url, lines, estimated, delivered, created) = (
                strings(&rows, "shop_id")?,
                integers(&rows, "order_id")?,
                strings(&rows, "shipment_status")?,
                strings(&rows, "tracking_company")?,
                strings(&rows, "tracking_number")?,
                strings(&rows, "tracking_url")?,
                strings(&rows, "line_item_ids")?,
                strings(&rows, "estimated_delivery_at")?,
                strings(&rows, "delivered_at")?,
                strings(&rows, "created_at")?,
            );
            for i in 0..order.len() {
                let (Some(shop), Some(order)) = (shop[i].clone(), order[i]) else {
                    continue;
                };
                if let Some(o) = by_id.get_mut(&(shop, order)) {
                    o.fulfillments.push(Fulfillment {
                        shipment_status: status[i].clone(),
                        tracking_company: company[i].clone(),
                        tracking_number: number[i].clone(),
                        tracking_url: url[i].clone(),
                        line_item_ids: ids(lines[i].clone()),
                        estimated_delivery_at: time(estimated[i].clone()),
                        delivered_at: time(delivered[i].clone()),
                        created_at: time(created[i].clone()),
                    });
                }
            }
        }
        if engine.has_table("refunds") {
            let rows = engine
                .query(
                    "SELECT shop_id, order_id, CAST(amount AS DOUBLE) AS amount, currency,
                            CAST(coalesce(processed_at, created_at) AS VARCHAR) AS processed_at
                     FROM refunds ORDER BY shop_id, order_id, processed_at",
                )
                .await?;
            let (shop, order, amount, currency, processed) = (
                strings(&rows, "shop_id")?,
                integers(&rows, "order_id")?,
                floats(&rows, "amount")?,
                strings(&rows, "currency")?,
                strings(&rows, "processed_at")?,
            );
            for i in 0..order.len() {
                let (Some(shop), Some(order)) = (shop[i].clone(), order[i]) else {
                    continue;
                };
                if let Some(o) = by_id.get_mut(&(shop, order)) {
                    o.refunds.push(Refund {
                        amount: amount[i],
                        currency: currency[i].clone(),
                        processed_at: time(processed[i].clone()),
                    });
                }
            }
        }
        if engine.has_table("returns") {
            let rows = engine
                .query("SELECT shop_id, order_id, status, CAST(created_at AS VARCHAR) AS created_at FROM returns ORDER BY shop_id, order_id, created_at")
                .await?;
            let (shop, order, status, created) = (
                strings(&rows, "shop_id")?,
                integers(&rows, "order_id")?,
                strings(&rows, "status")?,
                strings(&rows, "created_at")?,
            );
            for i in 0..order.len() {
                let (Some(shop), Some(order)) = (shop[i].clone(), order[i]) else {
                    continue;
                };
                if let Some(o) = by_id.get_mut(&(shop, order)) {
                    o.returns.push(Return {
                        status: status[i].clone(),
                        created_at: time(created[i].clone()),
                    });
                }
            }
        }
        for ((shop, _), order) in by_id {
            if let Some(customer) = order.customer_id {
                self.customer_orders
                    .entry((shop.clone(), customer))
                    .or_default()
                    .push(order.number);
            }
            self.order_numbers
                .insert((shop.clone(), order.id), order.number);
            self.orders.insert((shop, order.number), order);
        }
        for numbers in self.customer_orders.values_mut() {
            numbers.sort_unstable();
        }
        Ok(())
    }

    async fn load_customers(&mut self, engine: &SqlEngine) -> Result<(), ServerError> {
        if !engine.has_table("customers") {
            return Ok(());
        }
        let rows = engine
            .query("SELECT shop_id, id, array_to_string(tags, '|') AS tags FROM customers WHERE cardinality(tags) > 0")
            .await?;
        let (shop, id, tags) = (
            strings(&rows, "shop_id")?,
            integers(&rows, "id")?,
            strings(&rows, "tags")?,
        );
        for i in 0..id.len() {
            if let (Some(shop), Some(id)) = (shop[i].clone(), id[i]) {
                self.customer_tags.insert((shop, id), list(tags[i].clone()));
            }
        }
        Ok(())
    }

    async fn load_products(&mut self, engine: &SqlEngine) -> Result<(), ServerError> {
        if !engine.has_table("products") {
            return Ok(());
        }
        let rows = engine
            .query(
                "SELECT shop_id, id, handle, title, product_type, url, array_to_string(tags, '|') AS tags
                 FROM products WHERE coalesce(status, 'active') = 'active'",
            )
            .await?;
        let (shop, id, handle, title, kind, url, tags) = (
            strings(&rows, "shop_id")?,
            integers(&rows, "id")?,
            strings(&rows, "handle")?,
            strings(&rows, "title")?,
            strings(&rows, "product_type")?,
            strings(&rows, "url")?,
            strings(&rows, "tags")?,
        );
        let mut by_id: HashMap<(String, i64), Product> = HashMap::new();
        for i in 0..id.len() {
            let (Some(shop), Some(id), Some(handle)) = (shop[i].clone(), id[i], handle[i].clone())
            else {
                continue;
            };
            by_id.insert(
                (shop, id),
                Product {
                    id,
                    title: title[i].clone().unwrap_or_else(|| handle.clone()),
                    handle,
                    product_type: kind[i].clone(),
                    url: url[i].clone(),
                    tags: list(tags[i].clone()),
                    variants: Vec::new(),
                },
            );
        }
        if engine.has_table("variants") {
            let rows = engine
                .query(
                    "SELECT shop_id, product_id, title, sku, CAST(price AS DOUBLE) AS price, inventory_quantity,
                            coalesce(available, inventory_quantity > 0, false) AS available
                     FROM variants ORDER BY shop_id, product_id, id",
                )
                .await?;
            let (shop, product, title, sku, price, quantity, available) = (
                strings(&rows, "shop_id")?,
                integers(&rows, "product_id")?,
                strings(&rows, "title")?,
                strings(&rows, "sku")?,
                floats(&rows, "price")?,
                integers(&rows, "inventory_quantity")?,
                booleans(&rows, "available")?,
            );
            for i in 0..product.len() {
                let (Some(shop), Some(product)) = (shop[i].clone(), product[i]) else {
                    continue;
                };
                if let Some(p) = by_id.get_mut(&(shop, product)) {
                    p.variants.push(Variant {
                        title: title[i].clone().unwrap_or_default(),
                        sku: sku[i].clone(),
                        price: price[i],
                        inventory_quantity: quantity[i],
                        available: available[i].unwrap_or(false),
                    });
                }
            }
        }
        for (key, product) in by_id {
            self.product_handles
                .insert((key.0.clone(), product.handle.clone()), product.id);
            self.products.insert(key, product);
        }
        Ok(())
    }

    async fn load_policies(&mut self, engine: &SqlEngine) -> Result<(), ServerError> {
        if !engine.has_table("policies") {
            return Ok(());
        }
        let rows = engine
            .query("SELECT shop_id, body_html FROM policies WHERE policy_type = 'refund'")
            .await?;
        let (shop, body) = (strings(&rows, "shop_id")?, strings(&rows, "body_html")?);
        for i in 0..shop.len() {
            if let (Some(shop), Some(body)) = (shop[i].clone(), body[i].clone())
                && let Some(window) = return_window(&pipeline::text::readable(&body))
            {
                self.return_windows.insert(shop, window);
            }
        }
        Ok(())
    }

    /// The shop named by its id, its domain or its myshopify domain.
    pub fn shops(&self) -> &[Shop] {
        &self.shops
    }

    /// The shop's products, by title.
    pub fn products_of(&self, shop: &str) -> Vec<&Product> {
        let mut products: Vec<&Product> = self
            .products
            .iter()
            .filter(|((s, _), _)| s == shop)
            .map(|(_, p)| p)
            .collect();
        products.sort_by(|a, b| a.title.cmp(&b.title));
        products
    }

    pub fn shop(&self, name: &str) -> Option<&Shop> {
        let name = name.trim().to_ascii_lowercase();
        self.shops.iter().find(|s| {
            s.id.eq_ignore_ascii_case(&name)
                || s.domain
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(&name))
                || s.myshopify_domain
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(&name))
        })
    }

    pub fn order(&self, shop: &str, number: i64) -> Option<&Order> {
        self.orders.get(&(shop.to_string(), number))
    }

    pub fn order_by_id(&self, shop: &str, id: i64) -> Option<&Order> {
        let number = self.order_numbers.get(&(shop.to_string(), id))?;
        self.order(shop, *number)
    }

    /// The customer's orders, newest number last.
    pub fn orders_of(&self, shop: &str, customer: i64) -> Vec<&Order> {
        self.customer_orders
            .get(&(shop.to_string(), customer))
            .map(|numbers| {
                numbers
                    .iter()
                    .filter_map(|n| self.order(shop, *n))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn customer_tags(&self, shop: &str, customer: i64) -> &[String] {
        self.customer_tags
            .get(&(shop.to_string(), customer))
            .map_or(&[], Vec::as_slice)
    }

    pub fn product(&self, shop: &str, handle: &str) -> Option<&Product> {
        let id = self
            .product_handles
            .get(&(shop.to_string(), handle.to_string()))?;
        self.product_by_id(shop, *id)
    }

    pub fn product_by_id(&self, shop: &str, id: i64) -> Option<&Product> {
        self.products.get(&(shop.to_string(), id))
    }

    pub fn return_window(&self, shop: &str) -> Option<&ReturnWindow> {
        self.return_windows.get(shop)
    }

    pub fn orders(&self) -> usize {
        self.orders.len()
    }
}

static DAYS_OF_DELIVERY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)within\s+(\d{1,3})\s+days\s+of\s+(?:the\s+)?deliver").expect("valid regex")
});
static TIER_DAYS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)([A-Z][a-z]+)\s+and\s+([A-Z][a-z]+)\s+tiers?\s+get\s+an?\s+extended\s+(\d{1,3})-day",
    )
    .expect("valid regex")
});

/// Reads "within 30 days of the delivery date" (and "Gold and Platinum tiers get an extended
/// 60-day return window") out of a refund policy. `None` when the policy states no window in
/// days from delivery: the answer then cites the policy instead of computing.
pub fn return_window(policy: &str) -> Option<ReturnWindow> {
    let days = DAYS_OF_DELIVERY.captures(policy)?[1].parse().ok()?;
    let tier_days = TIER_DAYS
        .captures(policy)
        .and_then(|c| {
            let days: i64 = c[3].parse().ok()?;
            Some(vec![
                (c[1].to_ascii_lowercase(), days),
                (c[2].to_ascii_lowercase(), days),
            ])
        })
        .unwrap_or_default();
    Some(ReturnWindow { days, tier_days })
}

impl ReturnWindow {
    /// The window for a customer with these tags (a tier named in a tag, e.g. `rewards-gold`).
    pub fn days_for(&self, tags: &[String]) -> (i64, Option<&str>) {
        for (tier, days) in &self.tier_days {
            if tags
                .iter()
                .any(|t| t.to_ascii_lowercase().contains(tier.as_str()))
            {
                return (*days, Some(tier.as_str()));
            }
        }
        (self.days, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_and_tiers_are_read_from_the_policy_text() {
        let policy = "You can return eligible items within 30 days of the delivery date shown. \
                      Ridgeline Rewards members at the Gold and Platinum tiers get an extended 60-day return window.";
        let window = return_window(policy).unwrap();
        assert_eq!(window.days, 30);
        assert_eq!(
            window.days_for(&["rewards-gold".into()]),
            (60, Some("gold"))
        );
        assert_eq!(window.days_for(&["rewards-platinum".into()]).0, 60);
        assert_eq!(window.days_for(&[]), (30, None));
        assert!(return_window("Returns are accepted at our discretion.").is_none());
    }
}
