//! The GraphQL documents a sync sends, and the one shape their answers are read into.
//!
//! Each resource's fields are written once, as a selection in which a nested connection is
//! marked `{first:N}`. A full sync runs the selection as a bulk operation, where Shopify
//! pages nested connections itself and the marks are dropped; an incremental sync runs it as
//! a cursor-paginated query, where they become `(first: N)`. Either way the answer is read
//! into a [`Forest`]: the resource's objects, with every object of a nested connection filed
//! under its parent's id, which is how a bulk operation's JSONL arrives (child lines carry
//! `__parentId`) and how [`Forest::absorb_page`] files a page's nested `edges`.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use crate::error::{PipelineError, Result};

/// One resource a sync fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// Its name in checkpoints and staging files (`orders`, `orders_returns`, …).
    pub name: &'static str,
    /// The root connection (`products`, `orders`, …).
    pub root: &'static str,
    /// The node's fields, nested connections marked `{first:N}`.
    pub selection: &'static str,
    /// Nodes per page in an incremental sync: keeps a page's requested cost under
    /// Shopify's single-query maximum (1,000 points).
    pub page_size: u32,
    /// Whether the root connection takes a `sortKey: UPDATED_AT` (inventory items do not).
    pub sorts_by_updated_at: bool,
}

pub const PRODUCTS: Resource = Resource {
    name: "products",
    root: "products",
    selection: "id handle title descriptionHtml vendor productType tags status publishedAt createdAt updatedAt \
        category { fullName } seo { title description } options { name } \
        variants{first:100} { edges { node { id sku title price compareAtPrice barcode taxable inventoryPolicy \
        inventoryQuantity updatedAt selectedOptions { name value } \
        inventoryItem { id requiresShipping measurement { weight { unit value } } } } } }",
    page_size: 8,
    sorts_by_updated_at: true,
};

pub const CUSTOMERS: Resource = Resource {
    name: "customers",
    root: "customers",
    selection: "id email firstName lastName phone state verifiedEmail tags createdAt updatedAt \
        defaultAddress { city provinceCode countryCodeV2 } emailMarketingConsent { marketingState }",
    page_size: 100,
    sorts_by_updated_at: true,
};

/// An order with its lines, fulfillments and refunds. Bulk operations allow five
/// connections a query, so returns travel in [`ORDER_RETURNS`].
pub const ORDERS: Resource = Resource {
    name: "orders",
    root: "orders",
    selection: "id name number email createdAt updatedAt processedAt cancelledAt cancelReason closedAt \
     displayFinancialStatus displayFulfillmentStatus currencyCode sourceName tags customer { id } \
     shippingAddress { city provinceCode countryCodeV2 } shippingLine { title } \
     subtotalPriceSet { shopMoney { amount currencyCode } } totalDiscountsSet { shopMoney { amount currencyCode } } \
     totalTaxSet { shopMoney { amount currencyCode } } totalShippingPriceSet { shopMoney { amount currencyCode } } \
     totalPriceSet { shopMoney { amount currencyCode } } \
     lineItems{first:50} { edges { node { id sku title variantTitle quantity unfulfilledQuantity fulfillmentStatus \
     variant { id } product { id } originalUnitPriceSet { shopMoney { amount currencyCode } } \
     totalDiscountSet { shopMoney { amount currencyCode } } } } } \
     fulfillments { id name status displayStatus createdAt updatedAt deliveredAt estimatedDeliveryAt \
     trackingInfo { company number url } fulfillmentLineItems{first:20} { edges { node { id lineItem { id } } } } } \
     refunds { id note createdAt totalRefundedSet { shopMoney { amount currencyCode } } \
     refundLineItems{first:20} { edges { node { lineItem { id } restockType } } } }",
    page_size: 5,
    sorts_by_updated_at: true,
};

/// Orders' returns, fetched by a second bulk operation and joined by order id.
pub const ORDER_RETURNS: Resource = Resource {
    name: "orders_returns",
    root: "orders",
    selection: "id updatedAt returns{first:10} { edges { node { id name status createdAt closedAt \
        returnLineItems{first:20} { edges { node { id quantity returnReason \
        ... on ReturnLineItem { fulfillmentLineItem { lineItem { id } } } } } } \
        exchangeLineItems{first:20} { edges { node { id } } } } } }",
    page_size: 10,
    sorts_by_updated_at: true,
};

pub const INVENTORY: Resource = Resource {
    name: "inventory",
    root: "inventoryItems",
    selection: "id updatedAt inventoryLevels{first:20} { edges { node { id updatedAt location { id } \
        quantities(names: [\"available\"]) { name quantity } } } }",
    page_size: 40,
    sorts_by_updated_at: false,
};

pub const ARTICLES: Resource = Resource {
    name: "articles",
    root: "articles",
    selection: "id handle title body tags publishedAt createdAt updatedAt author { name } blog { id }",
    page_size: 50,
    sorts_by_updated_at: true,
};

/// The shop, its policies and its blogs: small, fetched whole by every sync.
pub const SHOP: &str = "query SupportlakeShop { shop { id name myshopifyDomain primaryDomain { host } \
    currencyCode ianaTimezone createdAt updatedAt billingAddress { countryCodeV2 } plan { displayName } \
    shopPolicies { id type title body url createdAt updatedAt } } \
    blogs(first: 250) { nodes { id handle title createdAt updatedAt } } }";

impl Resource {
    fn expanded(&self, paged: bool) -> String {
        let mut out = String::with_capacity(self.selection.len());
        let mut rest = self.selection;
        while let Some(start) = rest.find("{first:") {
            out.push_str(&rest[..start]);
            let end = start + rest[start..].find('}').expect("a closed {first:N} mark");
            if paged {
                out.push_str(&format!("(first: {})", &rest[start + 7..end]));
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// The query a bulk operation runs: every node of the root connection.
    pub fn bulk_query(&self) -> String {
        format!(
            "{{ {} {{ edges {{ node {{ {} }} }} }} }}",
            self.root,
            self.expanded(false)
        )
    }

    /// One page of nodes updated after `$query`'s bound, oldest change first.
    pub fn page_query(&self) -> String {
        let sort = if self.sorts_by_updated_at {
            ", sortKey: UPDATED_AT"
        } else {
            ""
        };
        format!(
            "query SupportlakePage($first: Int!, $after: String, $query: String) {{ \
             {}(first: $first, after: $after, query: $query{sort}) {{ \
             pageInfo {{ hasNextPage endCursor }} edges {{ node {{ {} }} }} }} }}",
            self.root,
            self.expanded(true)
        )
    }

    /// What a page is likely to cost, by Shopify's rule of thumb: each connection costs
    /// its page size times what one of its nodes costs, plus one.
    pub fn expected_page_cost(&self) -> f64 {
        let nested: u32 = self
            .selection
            .match_indices("{first:")
            .filter_map(|(i, _)| {
                let digits = &self.selection[i + 7..];
                digits[..digits.find('}')?].parse::<u32>().ok()
            })
            .sum();
        f64::from(2 + self.page_size * (1 + nested))
    }
}

/// A resource's objects with their nested connections' objects filed by parent id.
#[derive(Debug, Default)]
pub struct Forest {
    pub roots: Vec<Value>,
    pub children: HashMap<String, Vec<Value>>,
}

/// `gid://shopify/Order/123` → `123` (a query string, as on inventory levels, is dropped).
pub fn legacy_id(gid: &str) -> Option<i64> {
    gid.rsplit('/').next()?.split('?').next()?.parse().ok()
}

/// `gid://shopify/ProductVariant/1` → `ProductVariant`.
pub fn gid_type(gid: &str) -> &str {
    gid.strip_prefix("gid://shopify/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("")
}

impl Forest {
    /// Reads a bulk operation's JSONL result.
    pub fn read_jsonl(&mut self, path: &Path) -> Result<()> {
        let file = std::fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
        for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| PipelineError::io(path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let object: Value = serde_json::from_str(&line).map_err(|e| {
                PipelineError::Shopify(format!("bulk result line {} is not JSON: {e}", number + 1))
            })?;
            match object["__parentId"].as_str() {
                Some(parent) => self
                    .children
                    .entry(parent.to_string())
                    .or_default()
                    .push(object),
                None => self.roots.push(object),
            }
        }
        Ok(())
    }

    /// Files one page's nodes: nested connections (`{edges: [{node}]}`) are taken out of
    /// their parents and filed under the parent's id, as a bulk result would have them.
    pub fn absorb_page(&mut self, nodes: Vec<Value>) {
        for mut node in nodes {
            self.file_connections(&mut node);
            self.roots.push(node);
        }
    }

    fn file_connections(&mut self, object: &mut Value) {
        let parent = object["id"].as_str().map(String::from);
        let Some(fields) = object.as_object_mut() else {
            return;
        };
        for value in fields.values_mut() {
            if let Some(edges) = value.get_mut("edges").and_then(Value::as_array_mut) {
                let nodes: Vec<Value> = edges.drain(..).map(|mut e| e["node"].take()).collect();
                *value = Value::Null;
                for mut node in nodes {
                    self.file_connections(&mut node);
                    if let Some(parent) = &parent {
                        self.children.entry(parent.clone()).or_default().push(node);
                    }
                }
            } else if let Some(items) = value.as_array_mut() {
                for item in items.iter_mut().filter(|i| i.is_object()) {
                    self.file_connections(item);
                }
            }
        }
    }

    /// The objects filed under `parent` whose ids are of `kind` (`LineItem`, …); objects
    /// without an id (refund line items) are matched by `kind` = `""`.
    pub fn children_of<'a>(
        &'a self,
        parent: &Value,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a Value> {
        let parent = parent["id"].as_str().unwrap_or("");
        self.children
            .get(parent)
            .into_iter()
            .flatten()
            .filter(move |c| gid_type(c["id"].as_str().unwrap_or("")) == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn marks_become_page_sizes_or_vanish() {
        let paged = PRODUCTS.page_query();
        assert!(paged.contains("variants(first: 100) { edges"), "{paged}");
        assert!(paged.contains(
            "products(first: $first, after: $after, query: $query, sortKey: UPDATED_AT)"
        ));
        let bulk = PRODUCTS.bulk_query();
        assert!(
            bulk.starts_with("{ products { edges { node { id handle"),
            "{bulk}"
        );
        assert!(bulk.contains("variants { edges"), "{bulk}");
        assert!(!bulk.contains("first"), "{bulk}");
        // 8 products × (1 + 100 variants) + 2: under the 1,000-point ceiling.
        assert_eq!(PRODUCTS.expected_page_cost(), 810.0);
        for r in [
            PRODUCTS,
            CUSTOMERS,
            ORDERS,
            ORDER_RETURNS,
            INVENTORY,
            ARTICLES,
        ] {
            assert!(r.expected_page_cost() <= 1000.0, "{}", r.name);
        }
    }

    #[test]
    fn a_page_and_a_bulk_result_file_children_alike() {
        let mut paged = Forest::default();
        paged.absorb_page(vec![json!({"id": "gid://shopify/Order/1", "lineItems": {"edges": [
            {"node": {"id": "gid://shopify/LineItem/2"}}]},
            "fulfillments": [{"id": "gid://shopify/Fulfillment/3",
                "fulfillmentLineItems": {"edges": [{"node": {"id": "gid://shopify/FulfillmentLineItem/4"}}]}}]})]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, concat!(
            "{\"id\":\"gid://shopify/Order/1\",\"fulfillments\":[{\"id\":\"gid://shopify/Fulfillment/3\"}]}\n",
            "{\"id\":\"gid://shopify/LineItem/2\",\"__parentId\":\"gid://shopify/Order/1\"}\n",
            "{\"id\":\"gid://shopify/FulfillmentLineItem/4\",\"__parentId\":\"gid://shopify/Fulfillment/3\"}\n"
        )).unwrap();
        let mut bulk = Forest::default();
        bulk.read_jsonl(&path).unwrap();
        for forest in [&paged, &bulk] {
            let order = &forest.roots[0];
            assert_eq!(forest.children_of(order, "LineItem").count(), 1);
            let fulfillment = &order["fulfillments"][0];
            let items: Vec<_> = forest
                .children_of(fulfillment, "FulfillmentLineItem")
                .collect();
            assert_eq!(items.len(), 1);
        }
        assert_eq!(
            legacy_id("gid://shopify/InventoryLevel/7?inventory_item_id=9"),
            Some(7)
        );
    }
}
