//! Product intents: stock per variant of the product asked about, and facts from its
//! passage.

use index::search::Hit;

use super::knowledge::{best_sentences, knowledge_answer};
use super::wording::list_some;
use super::{Answer, Context, Kind, RELEVANCE_FLOOR, Source, Understanding};
use crate::conversation::commerce::Product;

fn best_product_hit(understood: &Understanding) -> Option<&Hit> {
    understood
        .hits
        .iter()
        .filter(|h| h.doc_type == "product" && h.vector >= RELEVANCE_FLOOR)
        .max_by(|a, b| a.fused.total_cmp(&b.fused))
}

/// The product a message is about: named in it, else the best product hit.
fn product_of<'a>(ctx: &Context<'a>, understood: &Understanding) -> Option<&'a Product> {
    understood
        .entities
        .products
        .first()
        .and_then(|handle| ctx.snapshot.product(ctx.shop, handle))
        .or_else(|| {
            best_product_hit(understood)
                .and_then(|h| h.key.strip_prefix("product:"))
                .and_then(|handle| ctx.snapshot.product(ctx.shop, handle))
        })
}

/// Stock per variant of the product asked about, from the variant rows.
pub(super) fn stock_answer(ctx: &Context<'_>, message: &str, understood: &Understanding) -> Answer {
    let Some(product) = product_of(ctx, understood) else {
        return knowledge_answer(ctx, message, understood, &[]);
    };
    let sizes: Vec<String> = understood
        .entities
        .sizes
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let variant_matches = |title: &str| {
        sizes.is_empty()
            || title
                .to_lowercase()
                .split(|c: char| c == '/' || c.is_whitespace() || c == '(' || c == ')')
                .any(|part| sizes.iter().any(|s| s == part))
    };
    let asked: Vec<_> = product
        .variants
        .iter()
        .filter(|v| variant_matches(&v.title))
        .collect();
    let in_stock: Vec<String> = asked
        .iter()
        .filter(|v| v.available && v.inventory_quantity.is_none_or(|q| q > 0))
        .map(|v| v.title.clone())
        .collect();
    let sold_out: Vec<String> = asked
        .iter()
        .filter(|v| !(v.available && v.inventory_quantity.is_none_or(|q| q > 0)))
        .map(|v| v.title.clone())
        .collect();
    let size_note = if sizes.is_empty() {
        String::new()
    } else {
        format!(" in size {}", understood.entities.sizes.join(" or "))
    };
    let text = if asked.is_empty() {
        format!(
            "The {} doesn't come{size_note}. It comes in: {}.",
            product.title,
            list_some(
                &product
                    .variants
                    .iter()
                    .map(|v| v.title.clone())
                    .collect::<Vec<_>>()
            )
        )
    } else if in_stock.is_empty() {
        format!(
            "The {}{size_note} is sold out right now. I don't have a restock date.",
            product.title
        )
    } else if sold_out.is_empty() {
        format!(
            "Yes, the {}{size_note} is in stock: {}.",
            product.title,
            list_some(&in_stock)
        )
    } else {
        format!(
            "The {}{size_note} is in stock in {}. Sold out: {}.",
            product.title,
            list_some(&in_stock),
            list_some(&sold_out)
        )
    };
    let mut answer = Answer::new(Kind::Stock, text);
    answer
        .sources
        .push(product_source(ctx, product, understood));
    answer.products.push(product.handle.clone());
    answer
}

fn product_source(ctx: &Context<'_>, product: &Product, understood: &Understanding) -> Source {
    let key = format!("product:{}", product.handle);
    understood
        .hits
        .iter()
        .find(|h| h.key == key)
        .map(Source::of)
        .or_else(|| (ctx.passage)(&key).map(|c| c.source))
        .unwrap_or_else(|| Source {
            doc_key: key.clone(),
            title: product.title.clone(),
            url: product.url.clone().unwrap_or_default(),
            snippet: String::new(),
        })
}

/// Facts about a product from its passage (description and the catalog facts written as
/// sentences), the sentences closest to the question.
pub(super) fn product_answer(
    ctx: &Context<'_>,
    message: &str,
    understood: &Understanding,
) -> Answer {
    let Some(product) = product_of(ctx, understood) else {
        return knowledge_answer(ctx, message, understood, &[]);
    };
    let Some(passage) = (ctx.passage)(&format!("product:{}", product.handle)) else {
        return knowledge_answer(ctx, message, understood, &[]);
    };
    let text = format!(
        "{}: {}",
        product.title,
        best_sentences(&passage.text, message, 2)
    );
    let mut answer = Answer::new(Kind::ProductFacts, text);
    answer.sources.push(passage.source);
    answer.products.push(product.handle.clone());
    answer
}
