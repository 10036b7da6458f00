//! The store's knowledge as passages: each policy and article split at its `<h2>` sections,
//! with the stable key answers cite (`policy:<type>#<section>`, `article:<handle>#<section>`;
//! the text before the first heading is keyed by the document alone), a title path and the
//! URL of the section on the storefront.

use pipeline::sql::{SqlEngine, strings};
use pipeline::text::{sections, slug};

use crate::IndexError;

/// What a passage comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocType {
    Policy,
    Article,
}

/// One retrievable piece of knowledge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    pub key: String,
    pub doc_type: DocType,
    pub shop_id: String,
    /// "Refund policy › Return window".
    pub title: String,
    pub url: String,
    pub text: String,
}

impl Passage {
    /// What the embedding model reads: the title path, then the text.
    pub fn embedding_text(&self) -> String {
        format!("{}. {}", self.title, self.text)
    }
}

/// Splits one document into passages. `doc_key` is `policy:refund` or `article:<handle>`.
pub fn split(
    doc_type: DocType,
    shop_id: &str,
    doc_key: &str,
    title: &str,
    url: &str,
    body_html: &str,
) -> Vec<Passage> {
    sections(body_html)
        .into_iter()
        .filter(|s| !(s.heading.is_empty() && s.text.is_empty()))
        .map(|s| {
            let (key, title, url) = if s.heading.is_empty() {
                (doc_key.to_string(), title.to_string(), url.to_string())
            } else {
                let anchor = slug(&s.heading);
                (
                    format!("{doc_key}#{anchor}"),
                    format!("{title} › {}", s.heading),
                    format!("{url}#{anchor}"),
                )
            };
            Passage {
                key,
                doc_type,
                shop_id: shop_id.to_string(),
                title,
                url,
                text: s.text,
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
        (DocType::Policy, "policies", "'policy:' || policy_type"),
        (DocType::Article, "articles", "'article:' || handle"),
    ];
    for (doc_type, table, key) in sources {
        if !engine.has_table(table) {
            continue;
        }
        let sql = format!(
            "SELECT shop_id, {key} AS doc_key, title, url, body_html FROM {table} \
             WHERE $shop = '*' OR shop_id = $shop ORDER BY shop_id, doc_key"
        );
        let params = [("shop".to_string(), shop.into())].into_iter().collect();
        let rows = engine.query_with_params(&sql, params).await?;
        let column = |name| strings(&rows, name);
        let (shops, keys, titles, urls, bodies) = (
            column("shop_id")?,
            column("doc_key")?,
            column("title")?,
            column("url")?,
            column("body_html")?,
        );
        for i in 0..keys.len() {
            let (Some(shop_id), Some(key)) = (&shops[i], &keys[i]) else {
                continue;
            };
            passages.extend(split(
                doc_type,
                shop_id,
                key,
                titles[i].as_deref().unwrap_or(key),
                urls[i].as_deref().unwrap_or_default(),
                bodies[i].as_deref().unwrap_or_default(),
            ));
        }
    }
    Ok(passages)
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
        let passages = split(
            DocType::Policy,
            "shop",
            "policy:refund",
            "Refund policy",
            "https://x/policies/refund-policy",
            html,
        );
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
}
