//! Products and variants of the demo store, each derived from its index alone.

use super::content::{CATALOG, ProductType};
use super::rng::{Rng, Stream};
use pipeline::ids;

/// One generated product with its variants.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: i64,
    pub handle: String,
    pub title: String,
    pub body_html: String,
    pub vendor: String,
    pub kind: &'static ProductType,
    pub tags: Vec<String>,
    pub status: &'static str,
    pub variants: Vec<Variant>,
    pub seo_description: String,
}

#[derive(Debug, Clone)]
pub struct Variant {
    pub id: i64,
    pub sku: String,
    pub inventory_item_id: i64,
    pub option1: String,
    pub option2: Option<String>,
    pub price_cents: i64,
    pub compare_at_cents: Option<i64>,
    pub grams: i64,
    pub quantity: i64,
    pub continue_selling: bool,
}

impl Variant {
    /// `"M / Forest Green"`, as Shopify titles variants.
    pub fn title(&self) -> String {
        match &self.option2 {
            Some(o2) => format!("{} / {o2}", self.option1),
            None => self.option1.clone(),
        }
    }
}

/// Products at a scale: 160 per unit, so scale 1 has the 150+ the demo promises.
pub fn product_count(scale: u32) -> usize {
    160 * scale as usize
}

/// Builds product `index`. Model × type combinations are walked through a fixed
/// permutation, so titles are unique and the catalog mixes types from the first product on.
pub fn product(seed: u64, index: usize) -> Product {
    let catalog = &*CATALOG;
    let mut rng = Rng::for_entity(seed, Stream::Product, index as u64);
    let combos = catalog.model_names.len() * catalog.product_types.len();
    let combo = (index * 7919 + 13) % combos;
    let generation = index / combos;
    let model = &catalog.model_names[combo % catalog.model_names.len()];
    let kind = &catalog.product_types[combo / catalog.model_names.len()];
    let gender = rng.pick(&kind.genders).clone();
    let pattern = rng.pick(&kind.title_patterns);
    let mut title = pattern.replace("{model}", model);
    if generation > 0 {
        title = format!("{title} {}", roman(generation + 1));
    }
    if !gender.is_empty() {
        title = format!("{gender} {title}");
    }
    let handle = pipeline::text::slug(&title);
    let vendor = if rng.chance(0.5) {
        catalog.vendors[0].clone()
    } else {
        rng.pick(&catalog.vendors[1..]).clone()
    };
    let activity = rng.pick(&catalog.activities).clone();
    let intro = rng
        .pick(&kind.description_intro)
        .replace("{model}", model)
        .replace("{activity}", &activity);
    let material = rng.pick(&kind.materials).clone();
    let fit = rng.pick(&kind.fit).clone();
    let mut features: Vec<&String> = kind.features.iter().collect();
    let keep = (4 + rng.below(3)).min(features.len());
    for i in 0..keep {
        let j = i + rng.below(features.len() - i);
        features.swap(i, j);
    }
    features.truncate(keep);
    let mut body_html = format!("<p>{intro}</p>\n<h3>Features</h3>\n<ul>");
    for feature in &features {
        body_html.push_str(&format!("<li>{feature}</li>"));
    }
    body_html.push_str(&format!("</ul>\n<h3>Materials</h3>\n<p>{material}</p>\n"));
    if !fit.is_empty() {
        body_html.push_str(&format!("<h3>Fit</h3>\n<p>{fit}</p>\n"));
    }
    body_html.push_str(&format!("<h3>Care</h3>\n<p>{}</p>", kind.care));

    let mut tags: Vec<String> = kind.tags.clone();
    if !gender.is_empty() {
        tags.push(gender.trim_end_matches("'s").to_lowercase());
    }
    let status = *rng.weighted(&[("active", 95.0), ("draft", 3.0), ("archived", 2.0)]);

    let option1_values: Vec<String> = option_values(&mut rng, &kind.option1, 8);
    let option2_values: Option<Vec<String>> =
        kind.option2.as_ref().map(|o| option_values(&mut rng, o, 3));
    let [lo, hi] = kind.price_range;
    let base_price = ((lo + rng.unit() * (hi - lo)) as i64).max(1) * 100 - 5;
    let on_sale = rng.chance(0.15);
    if on_sale {
        tags.push("sale".into());
    }
    let final_sale = on_sale && rng.chance(0.3);
    if final_sale {
        tags.push("final sale".into());
    }
    let type_code: String = kind
        .name
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .collect::<String>()
        .to_uppercase();
    let mut variants = Vec::new();
    let second: Vec<Option<String>> = match &option2_values {
        Some(values) => values.iter().cloned().map(Some).collect(),
        None => vec![None],
    };
    for o2 in &second {
        for o1 in &option1_values {
            let o2_code = o2.as_deref().map(color_code).unwrap_or_default();
            // The combination number makes the SKU unique; the type letters make it readable.
            let mut sku = format!("RO-{type_code}{combo:04}{generation}-{}", sku_part(o1));
            if !o2_code.is_empty() {
                sku.push('-');
                sku.push_str(&o2_code);
            }
            let price_cents = base_price;
            let compare_at_cents =
                on_sale.then(|| (price_cents as f64 * 1.3) as i64 / 100 * 100 + 95);
            let quantity = if rng.chance(0.09) {
                0
            } else {
                rng.skewed(80, 1.7) as i64 + 1
            };
            variants.push(Variant {
                id: ids::variant_id(&sku),
                inventory_item_id: ids::inventory_item_id(&sku),
                sku,
                option1: o1.clone(),
                option2: o2.clone(),
                price_cents,
                compare_at_cents,
                grams: rng.between(kind.grams_range[0], kind.grams_range[1]),
                quantity,
                continue_selling: rng.chance(0.03),
            });
        }
    }
    Product {
        id: ids::product_id(&handle),
        seo_description: format!("{title} by {vendor}. {}", strip_to_sentence(&intro)),
        handle,
        title,
        body_html,
        vendor,
        kind,
        tags,
        status,
        variants,
    }
}

fn option_values(rng: &mut Rng, option: &super::content::ProductOption, max: usize) -> Vec<String> {
    match &option.values {
        Some(values) if values.len() <= max => values.clone(),
        Some(values) => {
            let start = rng.below(values.len() - max + 1);
            values[start..start + max].to_vec()
        }
        None => {
            let colors = &CATALOG.colors;
            let n = 1 + rng.below(3);
            let start = rng.below(colors.len());
            (0..n)
                .map(|i| colors[(start + i * 5) % colors.len()].name.clone())
                .collect()
        }
    }
}

fn color_code(value: &str) -> String {
    CATALOG
        .colors
        .iter()
        .find(|c| c.name == value)
        .map(|c| c.code.clone())
        .unwrap_or_else(|| sku_part(value))
}

fn sku_part(value: &str) -> String {
    value
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_uppercase()
}

fn strip_to_sentence(text: &str) -> String {
    text.split_inclusive('.')
        .next()
        .unwrap_or(text)
        .trim()
        .to_string()
}

fn roman(n: usize) -> String {
    const NUMERALS: [&str; 10] = ["", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"];
    if n < NUMERALS.len() {
        NUMERALS[n].into()
    } else {
        format!("No. {n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn handles_and_skus_are_unique_across_the_catalog() {
        let mut handles = HashSet::new();
        let mut skus = HashSet::new();
        for i in 0..product_count(3) {
            let p = product(7, i);
            assert!(
                handles.insert(p.handle.clone()),
                "duplicate handle {}",
                p.handle
            );
            for v in &p.variants {
                assert!(skus.insert(v.sku.clone()), "duplicate sku {}", v.sku);
            }
        }
    }
}
