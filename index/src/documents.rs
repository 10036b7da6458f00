//! The store's knowledge as passages, each with the stable key answers cite:
//!
//! * every product is one passage, `product:<handle>`: its description plus the facts a
//!   shopper asks about (type, vendor, sizes, colours, price, what is in stock), with its
//!   SKUs and handle kept apart for exact matching;
//! * each policy and article is split at its `<h2>` sections (`policy:<type>#<section>`,
//!   `article:<handle>#<section>`; the text before the first heading is keyed by the
//!   document alone), with a title path and the URL of the section on the storefront.
//!
//! A passage's [`Passage::content_hash`] covers everything that is embedded, so the
//! embedding cache can tell an unchanged passage from a changed one without timestamps.

use std::collections::BTreeMap;

use pipeline::sql::{SqlEngine, booleans, floats, integers, strings};
use pipeline::text::{doc_key, readable, sections, slug};
use sha2::{Digest, Sha256};

use crate::IndexError;

/// What a passage comes from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DocType {
    Product,
    Policy,
    Article,
}

impl DocType {
    pub const ALL: [DocType; 3] = [DocType::Product, DocType::Policy, DocType::Article];

    /// The name used in keys, filters and the index: `product`, `policy`, `article`.
    pub fn as_str(self) -> &'static str {
        match self {
            DocType::Product => "product",
            DocType::Policy => "policy",
            DocType::Article => "article",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The doc type of a passage key (`product:…`, `policy:…`, `article:…`).
    pub fn of_key(key: &str) -> Option<Self> {
        Self::parse(key.split(':').next()?)
    }
}

/// One retrievable piece of knowledge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Passage {
    pub key: String,
    pub doc_type: DocType,
    pub shop_id: String,
    /// "Refund policy › Return window".
    pub title: String,
    pub url: String,
    /// Tags, product type and vendor: weighted between title and body in BM25.
    pub tags: String,
    pub text: String,
    /// Identifiers matched exactly, not as words: SKUs and the handle.
    pub exact: Vec<String>,
    /// When the source row last changed (RFC 3339), empty when unknown.
    pub updated_at: String,
}

impl Passage {
    /// What the embedding model reads: the title path, then the text.
    pub fn embedding_text(&self) -> String {
        format!("{}. {}", self.title, self.text)
    }

    /// SHA-256 of the embedded text: the embedding cache's key.
    pub fn content_hash(&self) -> [u8; 32] {
        content_hash(&self.embedding_text())
    }
}

/// SHA-256 of a text as the embedding cache keys it.
pub fn content_hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// A policy or article before it is split.
#[derive(Debug)]
pub struct Document<'a> {
    pub doc_type: DocType,
    pub shop_id: &'a str,
    /// `policy:refund` or `article:<handle>`.
    pub key: &'a str,
    pub title: &'a str,
    pub url: &'a str,
    pub tags: &'a str,
    pub updated_at: &'a str,
}

/// Splits one document into passages at its `<h2>` sections.
pub fn split(doc: &Document<'_>, body_html: &str) -> Vec<Passage> {
    let Document {
        doc_type,
        shop_id,
        key: document,
        title,
        url,
        tags,
        updated_at,
    } = *doc;
    sections(body_html)
        .into_iter()
        .filter(|s| !(s.heading.is_empty() && s.text.is_empty()))
        .map(|s| {
            let key = doc_key(document, &s.heading);
            let (title, url) = if s.heading.is_empty() {
                (title.to_string(), url.to_string())
            } else {
                (
                    format!("{title} › {}", s.heading),
                    format!("{url}#{}", slug(&s.heading)),
                )
            };
            Passage {
                key,
                doc_type,
                shop_id: shop_id.to_string(),
                title,
                url,
                tags: tags.to_string(),
                text: s.text,
                exact: Vec::new(),
                updated_at: updated_at.to_string(),
            }
        })
        .collect()
}

/// Every policy and article passage of the lake (of one shop, or all for `*`).
pub async fn knowledge_passages(
    engine: &SqlEngine,
    shop: &str,
) -> Result<Vec<Passage>, IndexError> {
    let mut passages = Vec::new();
    let sources = [
        (
            DocType::Policy,
            "policies",
            "'policy:' || policy_type",
            "''",
        ),
        (
            DocType::Article,
            "articles",
            "'article:' || handle",
            "array_to_string(tags, ', ')",
        ),
    ];
    for (doc_type, table, key, tags) in sources {
        if !engine.has_table(table) {
            continue;
        }
        let sql = format!(
            "SELECT shop_id, {key} AS doc_key, title, url, body_html, {tags} AS tags, \
                    CAST(updated_at AS VARCHAR) AS updated_at FROM {table} \
             WHERE $shop = '*' OR shop_id = $shop ORDER BY shop_id, doc_key"
        );
        let params = [("shop".to_string(), shop.into())].into_iter().collect();
        let rows = engine.query_with_params(&sql, params).await?;
        let column = |name| strings(&rows, name);
        let (shops, keys, titles, urls, bodies, tags, updated) = (
            column("shop_id")?,
            column("doc_key")?,
            column("title")?,
            column("url")?,
            column("body_html")?,
            column("tags")?,
            column("updated_at")?,
        );
        for i in 0..keys.len() {
            let (Some(shop_id), Some(key)) = (&shops[i], &keys[i]) else {
                continue;
            };
            let doc = Document {
                doc_type,
                shop_id,
                key,
                title: titles[i].as_deref().unwrap_or(key),
                url: urls[i].as_deref().unwrap_or_default(),
                tags: tags[i].as_deref().unwrap_or_default(),
                updated_at: updated[i].as_deref().unwrap_or_default(),
            };
            passages.extend(split(&doc, bodies[i].as_deref().unwrap_or_default()));
        }
    }
    Ok(passages)
}

/// Every passage the index holds: products, then policies and articles.
pub async fn all_passages(engine: &SqlEngine, shop: &str) -> Result<Vec<Passage>, IndexError> {
    let mut passages = product_passages(engine, shop).await?;
    passages.extend(knowledge_passages(engine, shop).await?);
    Ok(passages)
}

/// One passage per product: description and the facts shoppers ask about, from `products`
/// and `variants` (sizes, colours, price range, which options are in stock).
pub async fn product_passages(engine: &SqlEngine, shop: &str) -> Result<Vec<Passage>, IndexError> {
    if !engine.has_table("products") {
        return Ok(Vec::new());
    }
    let params = || [("shop".to_string(), shop.into())].into_iter().collect();
    let products = engine
        .query_with_params(
            "SELECT shop_id, id, handle, title, body_html, vendor, product_type, \
                    array_to_string(tags, ', ') AS tags, array_to_string(option_names, '|') AS option_names, \
                    url, CAST(updated_at AS VARCHAR) AS updated_at \
             FROM products WHERE ($shop = '*' OR shop_id = $shop) AND coalesce(status, 'active') = 'active' \
             ORDER BY shop_id, handle",
            params(),
        )
        .await?;
    let mut variants_of: BTreeMap<(String, i64), Vec<Variant>> = BTreeMap::new();
    if engine.has_table("variants") {
        let rows = engine
            .query_with_params(
                "SELECT shop_id, product_id, sku, option1, option2, option3, CAST(price AS DOUBLE) AS price, \
                        coalesce(available, inventory_quantity > 0, false) AS in_stock, \
                        CAST(updated_at AS VARCHAR) AS updated_at \
                 FROM variants WHERE $shop = '*' OR shop_id = $shop ORDER BY shop_id, product_id, id",
                params(),
            )
            .await?;
        let (shops, products_ids, skus, prices, in_stock, updated) = (
            strings(&rows, "shop_id")?,
            integers(&rows, "product_id")?,
            strings(&rows, "sku")?,
            floats(&rows, "price")?,
            booleans(&rows, "in_stock")?,
            strings(&rows, "updated_at")?,
        );
        let options = [
            strings(&rows, "option1")?,
            strings(&rows, "option2")?,
            strings(&rows, "option3")?,
        ];
        for i in 0..shops.len() {
            let (Some(shop_id), Some(product_id)) = (&shops[i], products_ids[i]) else {
                continue;
            };
            variants_of
                .entry((shop_id.clone(), product_id))
                .or_default()
                .push(Variant {
                    sku: skus[i].clone().filter(|s| !s.is_empty()),
                    options: options.iter().map(|o| o[i].clone()).collect(),
                    price: prices[i],
                    in_stock: in_stock[i].unwrap_or(false),
                    updated_at: updated[i].clone().unwrap_or_default(),
                });
        }
    }
    let column = |name| strings(&products, name);
    let (shops, handles, titles, bodies, vendors, types, tags, option_names, urls, updated) = (
        column("shop_id")?,
        column("handle")?,
        column("title")?,
        column("body_html")?,
        column("vendor")?,
        column("product_type")?,
        column("tags")?,
        column("option_names")?,
        column("url")?,
        column("updated_at")?,
    );
    let ids = integers(&products, "id")?;
    let mut passages = Vec::with_capacity(handles.len());
    for i in 0..handles.len() {
        let (Some(shop_id), Some(handle), Some(id)) = (&shops[i], &handles[i], ids[i]) else {
            continue;
        };
        let variants = variants_of
            .get(&(shop_id.clone(), id))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let names: Vec<&str> = option_names[i]
            .as_deref()
            .unwrap_or_default()
            .split('|')
            .filter(|n| !n.is_empty())
            .collect();
        let vendor = vendors[i].as_deref().unwrap_or_default();
        let product_type = types[i].as_deref().unwrap_or_default();
        let mut text = readable(bodies[i].as_deref().unwrap_or_default());
        text.push_str(&variant_facts(product_type, vendor, &names, variants));
        let mut exact: Vec<String> = variants.iter().filter_map(|v| v.sku.clone()).collect();
        exact.push(handle.clone());
        let updated_at = variants
            .iter()
            .map(|v| v.updated_at.as_str())
            .chain([updated[i].as_deref().unwrap_or_default()])
            .max()
            .unwrap_or_default()
            .to_string();
        passages.push(Passage {
            key: format!("product:{handle}"),
            doc_type: DocType::Product,
            shop_id: shop_id.clone(),
            title: titles[i].clone().unwrap_or_else(|| handle.clone()),
            url: urls[i].clone().unwrap_or_default(),
            tags: [tags[i].as_deref().unwrap_or_default(), product_type, vendor]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(", "),
            text,
            exact,
            updated_at,
        });
    }
    Ok(passages)
}

/// One sellable variant, as far as a product passage needs it.
#[derive(Debug)]
struct Variant {
    sku: Option<String>,
    options: Vec<Option<String>>,
    price: Option<f64>,
    in_stock: bool,
    updated_at: String,
}

/// The sentences a product passage adds after its description: what shoppers ask about
/// (type, maker, each option's values, price, what is in stock) in words, so both BM25 and
/// the embedding model see them.
fn variant_facts(
    product_type: &str,
    vendor: &str,
    option_names: &[&str],
    variants: &[Variant],
) -> String {
    let mut facts = String::new();
    if !product_type.is_empty() {
        facts.push_str(&format!(" Type: {product_type}."));
    }
    if !vendor.is_empty() {
        facts.push_str(&format!(" Made by {vendor}."));
    }
    for (n, name) in option_names.iter().enumerate() {
        let mut values: Vec<&str> = Vec::new();
        for value in variants.iter().filter_map(|v| v.options.get(n)?.as_deref()) {
            if !values.contains(&value) {
                values.push(value);
            }
        }
        // Shopify's placeholder option for products without variants says nothing.
        if !values.is_empty() && values != ["Default Title"] {
            facts.push_str(&format!(" {name}: {}.", values.join(", ")));
        }
    }
    let prices: Vec<f64> = variants.iter().filter_map(|v| v.price).collect();
    if let (Some(low), Some(high)) = (
        prices.iter().copied().reduce(f64::min),
        prices.iter().copied().reduce(f64::max),
    ) {
        if low == high {
            facts.push_str(&format!(" Price: {low:.2}."));
        } else {
            facts.push_str(&format!(" Price: {low:.2} to {high:.2}."));
        }
    }
    if !variants.is_empty() {
        let in_stock: Vec<String> = variants
            .iter()
            .filter(|v| v.in_stock)
            .map(|v| {
                let label: Vec<&str> = v
                    .options
                    .iter()
                    .flatten()
                    .map(String::as_str)
                    .filter(|o| *o != "Default Title")
                    .collect();
                label.join(" / ")
            })
            .filter(|l| !l.is_empty())
            .collect();
        match (in_stock.len(), variants.iter().any(|v| v.in_stock)) {
            (_, false) => facts.push_str(" Out of stock."),
            (0, true) => facts.push_str(" In stock."),
            _ if in_stock.len() == variants.len() => facts.push_str(" In stock in every option."),
            _ => facts.push_str(&format!(" In stock: {}.", in_stock.join(", "))),
        }
    }
    facts
}

/// Product titles by handle (of one shop, or all), to spot the products a question names.
pub async fn product_titles(
    engine: &SqlEngine,
    shop: &str,
) -> Result<Vec<(String, String)>, IndexError> {
    if !engine.has_table("products") {
        return Ok(Vec::new());
    }
    let sql =
        "SELECT handle, title FROM products WHERE $shop = '*' OR shop_id = $shop ORDER BY handle";
    let params = [("shop".to_string(), shop.into())].into_iter().collect();
    let rows = engine.query_with_params(sql, params).await?;
    Ok(strings(&rows, "handle")?
        .into_iter()
        .zip(strings(&rows, "title")?)
        .filter_map(|(h, t)| Some((h?, t?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_become_keyed_passages() {
        let html = "<p>How we handle returns.</p><h2>Return window</h2><p>30 days from delivery.</p>\
                    <h2>Final &amp; sale items</h2><p>Sale items are final.</p>";
        let doc = Document {
            doc_type: DocType::Policy,
            shop_id: "shop",
            key: "policy:refund",
            title: "Refund policy",
            url: "https://x/policies/refund-policy",
            tags: "",
            updated_at: "2026-01-01T00:00:00Z",
        };
        let passages = split(&doc, html);
        let keys: Vec<&str> = passages.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "policy:refund",
                "policy:refund#return-window",
                "policy:refund#final-sale-items"
            ]
        );
        assert_eq!(passages[1].title, "Refund policy › Return window");
        assert_eq!(
            passages[1].url,
            "https://x/policies/refund-policy#return-window"
        );
        assert_eq!(passages[2].text, "Sale items are final.");
        assert_eq!(
            passages[1].embedding_text(),
            "Refund policy › Return window. 30 days from delivery."
        );
    }

    fn variant(options: &[&str], price: f64, in_stock: bool) -> Variant {
        Variant {
            sku: None,
            options: options.iter().map(|o| Some(o.to_string())).collect(),
            price: Some(price),
            in_stock,
            updated_at: String::new(),
        }
    }

    #[test]
    fn product_facts_name_options_prices_and_stock() {
        let variants = [
            variant(&["S", "Red"], 120.0, true),
            variant(&["M", "Red"], 120.0, false),
            variant(&["M", "Blue"], 135.5, true),
        ];
        let facts = variant_facts("Jackets", "Northwind", &["Size", "Color"], &variants);
        assert_eq!(
            facts,
            " Type: Jackets. Made by Northwind. Size: S, M. Color: Red, Blue. \
             Price: 120.00 to 135.50. In stock: S / Red, M / Blue."
        );
        let single = [variant(&["Default Title"], 20.0, false)];
        assert_eq!(
            variant_facts("", "", &["Title"], &single),
            " Price: 20.00. Out of stock."
        );
    }

    #[test]
    fn keys_name_their_doc_type() {
        assert_eq!(
            DocType::of_key("product:rain-jacket"),
            Some(DocType::Product)
        );
        assert_eq!(
            DocType::of_key("policy:refund#window"),
            Some(DocType::Policy)
        );
        assert_eq!(DocType::of_key("faq:x"), None);
    }
}
