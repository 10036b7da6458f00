//! Shopify's product CSV export → `products` and `variants` rows.
//!
//! The format has one row per variant; the first row of a handle carries the product's
//! fields and later rows only the variant's. The export has no ids and no timestamps: ids are
//! derived from the handle and SKU ([`crate::ids`]) and `updated_at` is the export's time.

use serde_json::{Value, json};

use super::fields::{Reason, check_money, split_tags};
use super::{Context, Rows};
use crate::ids;

/// Column positions of one CSV file, looked up by header name so column order and extra
/// columns (markets, Google Shopping, metafields) do not matter.
#[derive(Debug)]
pub struct Columns {
    index: std::collections::HashMap<String, usize>,
}

impl Columns {
    pub fn new(headers: &csv::StringRecord) -> Result<Self, String> {
        let index: std::collections::HashMap<String, usize> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.trim().to_string(), i))
            .collect();
        for required in ["Handle", "Variant SKU", "Variant Price"] {
            if !index.contains_key(required) {
                return Err(format!("not a Shopify product CSV: no {required:?} column"));
            }
        }
        Ok(Self { index })
    }

    fn get<'r>(&self, row: &'r csv::StringRecord, name: &str) -> &'r str {
        self.index
            .get(name)
            .and_then(|&i| row.get(i))
            .map(str::trim)
            .unwrap_or("")
    }
}

/// The product being assembled from consecutive rows of one handle.
#[derive(Debug, Default)]
pub struct ProductState {
    handle: String,
    option_names: [String; 3],
}

fn opt(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        json!(text)
    }
}

fn flag(text: &str, what: &str) -> Result<Value, Reason> {
    match text.to_ascii_uppercase().as_str() {
        "" => Ok(Value::Null),
        "TRUE" => Ok(json!(true)),
        "FALSE" => Ok(json!(false)),
        other => Err(format!("wrong type: {what} = {other:?} is not TRUE/FALSE")),
    }
}

/// Maps one CSV row. `state` carries the current product across its variant rows.
pub fn row(
    ctx: &Context,
    columns: &Columns,
    state: &mut ProductState,
    row: &csv::StringRecord,
) -> Result<Rows, Reason> {
    let handle = columns.get(row, "Handle");
    if handle.is_empty() {
        return Err("missing field: Handle".into());
    }
    let updated_at = ctx.export_time;
    let mut rows = Vec::new();
    let title = columns.get(row, "Title");
    if handle != state.handle || !title.is_empty() {
        if title.is_empty() {
            return Err(format!(
                "missing field: Title (first row of product {handle:?})"
            ));
        }
        *state = ProductState {
            handle: handle.to_string(),
            option_names: ["Option1 Name", "Option2 Name", "Option3 Name"]
                .map(|c| columns.get(row, c).to_string()),
        };
        let status = columns.get(row, "Status");
        if !["", "active", "draft", "archived", "unlisted"].contains(&status) {
            return Err(format!(
                "unknown enum value: Status = {status:?} (expected one of active, draft, archived, unlisted)"
            ));
        }
        rows.push(("products", json!({
            "shop_id": ctx.shop_id, "id": ids::product_id(handle), "handle": handle, "title": title,
            "body_html": opt(columns.get(row, "Body (HTML)")), "vendor": opt(columns.get(row, "Vendor")),
            "product_type": opt(columns.get(row, "Type")), "category": opt(columns.get(row, "Product Category")),
            "tags": split_tags(columns.get(row, "Tags")),
            "option_names": state.option_names.iter().filter(|n| !n.is_empty()).collect::<Vec<_>>(),
            "status": if status.is_empty() { Value::Null } else { json!(status) },
            "published": flag(columns.get(row, "Published"), "Published")?,
            "seo_title": opt(columns.get(row, "SEO Title")), "seo_description": opt(columns.get(row, "SEO Description")),
            "url": format!("https://{}/products/{handle}", ctx.shop_domain),
            "created_at": Value::Null, "updated_at": updated_at,
        })));
    }
    let sku = columns.get(row, "Variant SKU");
    if sku.is_empty() {
        // Image-only rows (extra product images) have no variant.
        if columns.get(row, "Variant Price").is_empty() {
            return Ok(rows);
        }
        return Err(format!("missing field: Variant SKU (product {handle:?})"));
    }
    let price = columns.get(row, "Variant Price");
    let price = check_money(price)
        .ok_or_else(|| format!("wrong type: Variant Price = {price:?} is not an amount"))?;
    let compare_at = match columns.get(row, "Variant Compare At Price") {
        "" => None,
        text => Some(check_money(text).ok_or_else(|| {
            format!("wrong type: Variant Compare At Price = {text:?} is not an amount")
        })?),
    };
    let int = |name: &str| -> Result<Option<i64>, Reason> {
        match columns.get(row, name) {
            "" => Ok(None),
            text => text
                .parse()
                .map(Some)
                .map_err(|_| format!("wrong type: {name} = {text:?} is not an integer")),
        }
    };
    let quantity = int("Variant Inventory Qty")?;
    let policy = columns.get(row, "Variant Inventory Policy");
    if !["", "deny", "continue"].contains(&policy) {
        return Err(format!(
            "unknown enum value: Variant Inventory Policy = {policy:?} (expected one of deny, continue)"
        ));
    }
    let options = ["Option1 Value", "Option2 Value", "Option3 Value"].map(|c| columns.get(row, c));
    let title: Vec<&str> = options.iter().copied().filter(|o| !o.is_empty()).collect();
    rows.push(("variants", json!({
        "shop_id": ctx.shop_id, "id": ids::variant_id(sku), "product_id": ids::product_id(handle), "sku": sku,
        "title": title.join(" / "), "option1": opt(options[0]), "option2": opt(options[1]), "option3": opt(options[2]),
        "price": price, "compare_at_price": compare_at, "grams": int("Variant Grams")?,
        "inventory_item_id": ids::inventory_item_id(sku), "inventory_quantity": quantity,
        "inventory_policy": opt(policy),
        "available": quantity.map(|q| q > 0 || policy == "continue"),
        "barcode": opt(columns.get(row, "Variant Barcode")),
        "requires_shipping": flag(columns.get(row, "Variant Requires Shipping"), "Variant Requires Shipping")?,
        "taxable": flag(columns.get(row, "Variant Taxable"), "Variant Taxable")?,
        "updated_at": updated_at,
    })));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            shop_id: "s.myshopify.com".into(),
            shop_domain: "s.example".into(),
            pii_key: "k".into(),
            export_time: 42,
            blogs: Default::default(),
        }
    }

    /// Maps a CSV text the way the reader does, returning each row's tables or reason.
    fn map(text: &str) -> Vec<Result<Vec<&'static str>, Reason>> {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let columns = Columns::new(&reader.headers().unwrap().clone()).unwrap();
        let mut state = ProductState::default();
        reader
            .records()
            .map(|r| {
                row(&ctx(), &columns, &mut state, &r.unwrap())
                    .map(|rows| rows.iter().map(|(t, _)| *t).collect())
            })
            .collect()
    }

    #[test]
    fn variants_follow_their_product_and_bad_rows_say_why() {
        let csv = "Handle,Title,Option1 Name,Option1 Value,Variant SKU,Variant Price,Variant Inventory Qty,Status\n\
                   tee,Trail Tee,Size,S,TEE-S,25.00,3,active\n\
                   tee,,,M,TEE-M,25.00,0,\n\
                   tee,,,L,TEE-L,twenty,1,\n\
                   cap,Cap,Size,One Size,CAP-1,15,2,retired\n\
                   ,,,,X-1,1.00,1,\n";
        let out = map(csv);
        assert_eq!(out[0], Ok(vec!["products", "variants"]));
        assert_eq!(out[1], Ok(vec!["variants"]));
        assert!(
            out[2].as_ref().unwrap_err().contains("Variant Price"),
            "{:?}",
            out[2]
        );
        assert!(
            out[3]
                .as_ref()
                .unwrap_err()
                .starts_with("unknown enum value: Status"),
            "{:?}",
            out[3]
        );
        assert!(
            out[4]
                .as_ref()
                .unwrap_err()
                .starts_with("missing field: Handle"),
            "{:?}",
            out[4]
        );
    }

    #[test]
    fn derived_ids_tie_variants_to_products_and_stock_sets_availability() {
        let csv = "Handle,Title,Variant SKU,Variant Price,Variant Inventory Qty,Variant Inventory Policy\n\
                   tee,Trail Tee,TEE-S,25.00,0,continue\n";
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let columns = Columns::new(&reader.headers().unwrap().clone()).unwrap();
        let record = reader.records().next().unwrap().unwrap();
        let rows = row(&ctx(), &columns, &mut ProductState::default(), &record).unwrap();
        let (product, variant) = (&rows[0].1, &rows[1].1);
        assert_eq!(variant["product_id"], product["id"]);
        assert_eq!(variant["available"], true, "sold out but sold on backorder");
        assert_eq!(
            variant["updated_at"], 42,
            "the export time versions CSV rows"
        );
    }
}
