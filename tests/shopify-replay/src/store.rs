//! A store's export files (REST shapes, the product CSV) as the GraphQL Admin API's objects.
//!
//! Each node is built in the shape a paginated query returns it (nested connections as
//! `{edges: [{node}]}`); [`bulk_lines`] flattens one into the JSONL lines a bulk operation
//! writes. The product CSV carries no ids and no timestamps: products get the ids supportlake
//! derives for CSV rows (as Shopify would have assigned real ones) and the export's time.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// `2026-08-01T15:09:44-07:00` → `2026-08-01T22:09:44Z`, as GraphQL writes `DateTime`.
pub fn utc(text: &Value) -> Value {
    text.as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(Value::Null, |t| {
            json!(
                t.with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
}

fn gid(kind: &str, id: &Value) -> Value {
    match id.as_i64() {
        Some(id) => json!(format!("gid://shopify/{kind}/{id}")),
        None => Value::Null,
    }
}

fn upper(v: &Value) -> Value {
    v.as_str()
        .map_or(Value::Null, |s| json!(s.to_ascii_uppercase()))
}

fn tag_list(v: &Value) -> Value {
    match v {
        Value::String(s) => json!(
            s.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
        ),
        Value::Array(_) => v.clone(),
        _ => json!([]),
    }
}

fn money(amount: &Value, currency: &Value) -> Value {
    json!({"shopMoney": {"amount": amount, "currencyCode": currency}})
}

fn edges(nodes: Vec<Value>) -> Value {
    json!({"edges": nodes.into_iter().map(|n| json!({"node": n})).collect::<Vec<_>>()})
}

fn non_empty(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        json!(text)
    }
}

/// Everything the replay serves, as GraphQL nodes.
#[derive(Debug, Default, Clone)]
pub struct Store {
    pub shop: Value,
    pub blogs: Vec<Value>,
    pub articles: Vec<Value>,
    pub products: Vec<Value>,
    pub customers: Vec<Value>,
    /// Orders with their lines, fulfillments, refunds and returns.
    pub orders: Vec<Value>,
    pub inventory_items: Vec<Value>,
}

fn read(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn read_lines(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

impl Store {
    /// Reads a store directory as `supportlake generate` writes it.
    pub fn load(dir: &Path) -> Result<Self> {
        let exported_at = utc(&read(&dir.join("export.json"))?["exported_at"]);
        let shop = read(&dir.join("shop.json"))?["shop"].clone();
        let currency = shop["currency"].clone();
        let policies = read(&dir.join("policies.json"))?["policies"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let blogs = read(&dir.join("blogs.json"))?["blogs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let articles = read(&dir.join("articles.json"))?["articles"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let plan = shop["plan_name"].as_str().map(|p| {
            p.split('_')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" ")
        });
        let shop_node = json!({
            "id": gid("Shop", &shop["id"]), "name": shop["name"], "myshopifyDomain": shop["myshopify_domain"],
            "primaryDomain": {"host": shop["domain"]}, "currencyCode": currency,
            "ianaTimezone": shop["iana_timezone"], "createdAt": utc(&shop["created_at"]),
            "updatedAt": utc(&shop["updated_at"]), "billingAddress": {"countryCodeV2": shop["country_code"]},
            "plan": {"displayName": plan},
            "shopPolicies": policies.iter().enumerate().map(|(i, p)| json!({
                "id": format!("gid://shopify/ShopPolicy/{}", i + 1),
                "type": p["handle"].as_str().map(|h| h.to_ascii_uppercase().replace('-', "_")),
                "title": p["title"], "body": p["body"], "url": p["url"],
                "createdAt": utc(&p["created_at"]), "updatedAt": utc(&p["updated_at"]),
            })).collect::<Vec<_>>(),
        });
        let mut store = Store {
            shop: shop_node,
            blogs: blogs
                .iter()
                .map(|b| {
                    json!({"id": gid("Blog", &b["id"]), "handle": b["handle"], "title": b["title"],
                    "createdAt": utc(&b["created_at"]), "updatedAt": utc(&b["updated_at"])})
                })
                .collect(),
            articles: articles
                .iter()
                .map(|a| {
                    json!({"id": gid("Article", &a["id"]), "handle": a["handle"], "title": a["title"],
                    "body": a["body_html"], "tags": tag_list(&a["tags"]), "publishedAt": utc(&a["published_at"]),
                    "createdAt": utc(&a["created_at"]), "updatedAt": utc(&a["updated_at"]),
                    "author": {"name": a["author"]}, "blog": {"id": gid("Blog", &a["blog_id"])}})
                })
                .collect(),
            ..Store::default()
        };
        store.products = products(&dir.join("products.csv"), &exported_at)?;
        store.customers = read_lines(&dir.join("customers.jsonl"))?
            .iter()
            .map(customer)
            .collect();
        store.orders = read_lines(&dir.join("orders.jsonl"))?
            .iter()
            .map(|o| order(o, &currency))
            .collect();
        store.inventory_items = inventory(&read_lines(&dir.join("inventory_levels.jsonl"))?);
        Ok(store)
    }
}

fn products(path: &Path, exported_at: &Value) -> Result<Vec<Value>> {
    let mut reader = csv::Reader::from_path(path)?;
    let headers = reader.headers()?.clone();
    let mut products: Vec<Value> = Vec::new();
    let mut option_names: Vec<String> = Vec::new();
    for record in reader.records() {
        let record = record?;
        let get = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .unwrap_or("")
                .to_string()
        };
        let handle = get("Handle");
        if !get("Title").is_empty() {
            option_names = ["Option1 Name", "Option2 Name", "Option3 Name"]
                .map(get)
                .into_iter()
                .filter(|n| !n.is_empty())
                .collect();
            let id = pipeline::ids::product_id(&handle);
            products.push(json!({
                "id": format!("gid://shopify/Product/{id}"), "handle": handle, "title": get("Title"),
                "descriptionHtml": non_empty(&get("Body (HTML)")), "vendor": non_empty(&get("Vendor")),
                "productType": non_empty(&get("Type")), "tags": tag_list(&json!(get("Tags"))),
                "status": non_empty(&get("Status").to_ascii_uppercase()),
                "publishedAt": if get("Published") == "TRUE" { exported_at.clone() } else { Value::Null },
                "createdAt": exported_at, "updatedAt": exported_at,
                "category": if get("Product Category").is_empty() { Value::Null } else { json!({"fullName": get("Product Category")}) },
                "seo": {"title": non_empty(&get("SEO Title")), "description": non_empty(&get("SEO Description"))},
                "options": option_names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
                "variants": {"edges": []},
            }));
        }
        let sku = get("Variant SKU");
        if sku.is_empty() {
            continue;
        }
        let values = ["Option1 Value", "Option2 Value", "Option3 Value"].map(get);
        let selected: Vec<Value> = option_names
            .iter()
            .zip(&values)
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect();
        let title = values
            .iter()
            .filter(|v| !v.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" / ");
        let variant = json!({
            "id": format!("gid://shopify/ProductVariant/{}", pipeline::ids::variant_id(&sku)),
            "sku": sku, "title": title, "price": get("Variant Price"),
            "compareAtPrice": non_empty(&get("Variant Compare At Price")),
            "barcode": non_empty(&get("Variant Barcode")), "taxable": get("Variant Taxable") == "TRUE",
            "inventoryPolicy": get("Variant Inventory Policy").to_ascii_uppercase(),
            "inventoryQuantity": get("Variant Inventory Qty").parse::<i64>().ok(),
            "updatedAt": exported_at, "selectedOptions": selected,
            "inventoryItem": {
                "id": format!("gid://shopify/InventoryItem/{}", pipeline::ids::inventory_item_id(&sku)),
                "requiresShipping": get("Variant Requires Shipping") == "TRUE",
                "measurement": {"weight": {"unit": "GRAMS", "value": get("Variant Grams").parse::<f64>().ok()}},
            },
        });
        if let Some(edges) = products
            .last_mut()
            .and_then(|p| p["variants"]["edges"].as_array_mut())
        {
            edges.push(json!({ "node": variant }));
        }
    }
    Ok(products)
}

fn customer(c: &Value) -> Value {
    let address = &c["default_address"];
    json!({
        "id": gid("Customer", &c["id"]), "email": c["email"], "firstName": c["first_name"],
        "lastName": c["last_name"], "phone": c["phone"], "state": upper(&c["state"]),
        "verifiedEmail": c["verified_email"], "tags": tag_list(&c["tags"]),
        "createdAt": utc(&c["created_at"]), "updatedAt": utc(&c["updated_at"]),
        "defaultAddress": if address.is_object() {
            json!({"city": address["city"], "provinceCode": address["province_code"], "countryCodeV2": address["country_code"]})
        } else { Value::Null },
        "emailMarketingConsent": if c["email_marketing_consent"].is_object() {
            json!({"marketingState": upper(&c["email_marketing_consent"]["state"])})
        } else { Value::Null },
    })
}

fn order(o: &Value, currency: &Value) -> Value {
    let currency = if o["currency"].is_null() {
        currency
    } else {
        &o["currency"]
    };
    let line_item = |id: &Value| json!({"id": gid("LineItem", id)});
    let lines: Vec<Value> = o["line_items"].as_array().into_iter().flatten().map(|l| json!({
        "id": gid("LineItem", &l["id"]), "sku": l["sku"], "title": l["title"], "variantTitle": l["variant_title"],
        "quantity": l["quantity"], "unfulfilledQuantity": l["fulfillable_quantity"],
        "fulfillmentStatus": if l["fulfillment_status"].is_null() { json!("unfulfilled") } else { l["fulfillment_status"].clone() },
        "variant": if l["variant_id"].is_null() { Value::Null } else { json!({"id": gid("ProductVariant", &l["variant_id"])}) },
        "product": if l["product_id"].is_null() { Value::Null } else { json!({"id": gid("Product", &l["product_id"])}) },
        "originalUnitPriceSet": money(&l["price"], currency), "totalDiscountSet": money(&l["total_discount"], currency),
    })).collect();
    let fulfillments: Vec<Value> = o["fulfillments"].as_array().into_iter().flatten().map(|f| {
        let fid = f["id"].as_i64().unwrap_or(0);
        let items: Vec<Value> = f["line_items"].as_array().into_iter().flatten().enumerate()
            .map(|(i, l)| json!({"id": format!("gid://shopify/FulfillmentLineItem/{}", fid * 100 + i as i64), "lineItem": line_item(&l["id"])}))
            .collect();
        json!({
            "id": gid("Fulfillment", &f["id"]), "name": f["name"], "status": upper(&f["status"]),
            "displayStatus": if f["shipment_status"].is_null() { json!("FULFILLED") } else { upper(&f["shipment_status"]) },
            "createdAt": utc(&f["created_at"]), "updatedAt": utc(&f["updated_at"]),
            "deliveredAt": utc(&f["delivered_at"]), "estimatedDeliveryAt": utc(&f["estimated_delivery_at"]),
            "trackingInfo": if f["tracking_number"].is_null() { json!([]) } else {
                json!([{"company": f["tracking_company"], "number": f["tracking_number"], "url": f["tracking_url"]}])
            },
            "fulfillmentLineItems": edges(items),
        })
    }).collect();
    let refunds: Vec<Value> = o["refunds"].as_array().into_iter().flatten().map(|r| {
        let total: f64 = r["transactions"].as_array().into_iter().flatten()
            .filter(|t| t["kind"] == "refund" && t["status"] != "failure")
            .filter_map(|t| t["amount"].as_str()?.parse::<f64>().ok())
            .sum();
        let lines: Vec<Value> = r["refund_line_items"].as_array().into_iter().flatten()
            .map(|l| json!({"lineItem": line_item(&l["line_item_id"]), "restockType": upper(&l["restock_type"])}))
            .collect();
        json!({
            "id": gid("Refund", &r["id"]), "note": r["note"], "createdAt": utc(&r["created_at"]),
            "totalRefundedSet": money(&json!(format!("{total:.2}")), currency), "refundLineItems": edges(lines),
        })
    }).collect();
    let returns: Vec<Value> = o["returns"].as_array().into_iter().flatten().map(|r| {
        let rid = r["id"].as_i64().unwrap_or(0);
        let lines: Vec<Value> = r["return_line_items"].as_array().into_iter().flatten().map(|l| json!({
            "id": gid("ReturnLineItem", &l["id"]), "quantity": l["quantity"], "returnReason": l["return_reason"],
            "fulfillmentLineItem": {"lineItem": line_item(&l["line_item_id"])},
        })).collect();
        let exchanges: Vec<Value> = (0..r["total_exchange_line_items"].as_i64().unwrap_or(0))
            .map(|i| json!({"id": format!("gid://shopify/ExchangeLineItem/{}", rid * 100 + i)}))
            .collect();
        json!({
            "id": gid("Return", &r["id"]), "name": r["name"], "status": upper(&r["status"]),
            "createdAt": utc(&r["created_at"]),
            "closedAt": if r["status"] == "closed" { utc(&r["updated_at"]) } else { Value::Null },
            "returnLineItems": edges(lines), "exchangeLineItems": edges(exchanges),
        })
    }).collect();
    let address = &o["shipping_address"];
    let status = match o["fulfillment_status"].as_str() {
        Some("fulfilled") => "FULFILLED",
        Some("partial") => "PARTIALLY_FULFILLED",
        Some("restocked") => "RESTOCKED",
        _ => "UNFULFILLED",
    };
    json!({
        "id": gid("Order", &o["id"]), "name": o["name"], "number": o["order_number"], "email": o["email"],
        "createdAt": utc(&o["created_at"]), "updatedAt": utc(&o["updated_at"]), "processedAt": utc(&o["processed_at"]),
        "cancelledAt": utc(&o["cancelled_at"]), "cancelReason": upper(&o["cancel_reason"]), "closedAt": utc(&o["closed_at"]),
        "displayFinancialStatus": upper(&o["financial_status"]), "displayFulfillmentStatus": status,
        "currencyCode": currency, "sourceName": o["source_name"], "tags": tag_list(&o["tags"]),
        "customer": if o["customer"].is_object() { json!({"id": gid("Customer", &o["customer"]["id"])}) } else { Value::Null },
        "shippingAddress": if address.is_object() {
            json!({"city": address["city"], "provinceCode": address["province_code"], "countryCodeV2": address["country_code"]})
        } else { Value::Null },
        "shippingLine": o["shipping_lines"].get(0).map(|l| json!({"title": l["title"]})),
        "subtotalPriceSet": money(&o["subtotal_price"], currency), "totalDiscountsSet": money(&o["total_discounts"], currency),
        "totalTaxSet": money(&o["total_tax"], currency),
        "totalShippingPriceSet": money(&o["total_shipping_price_set"]["shop_money"]["amount"], currency),
        "totalPriceSet": money(&o["total_price"], currency),
        "lineItems": edges(lines), "fulfillments": fulfillments, "refunds": refunds, "returns": edges(returns),
    })
}

fn inventory(levels: &[Value]) -> Vec<Value> {
    let mut items: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for level in levels {
        if let Some(item) = level["inventory_item_id"].as_i64() {
            items.entry(item).or_default().push(level);
        }
    }
    items
        .into_iter()
        .map(|(item, levels)| {
            let updated = levels
                .iter()
                .map(|l| utc(&l["updated_at"]))
                .max_by(|a, b| a.as_str().cmp(&b.as_str()))
                .unwrap_or(Value::Null);
            let nodes = levels.iter().map(|l| json!({
                "id": format!("gid://shopify/InventoryLevel/{}?inventory_item_id={item}", l["location_id"]),
                "updatedAt": utc(&l["updated_at"]), "location": {"id": gid("Location", &l["location_id"])},
                "quantities": [{"name": "available", "quantity": l["available"]}],
            })).collect();
            json!({"id": format!("gid://shopify/InventoryItem/{item}"), "updatedAt": updated, "inventoryLevels": edges(nodes)})
        })
        .collect()
}

/// A node as a bulk operation writes it: the node without its nested connections, then one
/// line per nested object with `__parentId`, depth first.
pub fn bulk_lines(node: &Value, out: &mut Vec<Value>) {
    let mut own = node.clone();
    let mut nested = Vec::new();
    strip(&mut own, &mut nested);
    out.push(own);
    out.extend(nested);
}

fn strip(object: &mut Value, out: &mut Vec<Value>) {
    let parent = object["id"].clone();
    let Some(fields) = object.as_object_mut() else {
        return;
    };
    let mut connections = Vec::new();
    for (key, value) in fields.iter_mut() {
        if value.get("edges").is_some() {
            connections.push(key.clone());
        } else if let Some(items) = value.as_array_mut() {
            for item in items.iter_mut().filter(|i| i.is_object()) {
                strip(item, out);
            }
        }
    }
    for key in connections {
        let connection = fields.remove(&key).unwrap_or_default();
        for edge in connection["edges"].as_array().into_iter().flatten() {
            let mut child = edge["node"].clone();
            let mut grandchildren = Vec::new();
            strip(&mut child, &mut grandchildren);
            child["__parentId"] = parent.clone();
            out.push(child);
            out.extend(grandchildren);
        }
    }
}
