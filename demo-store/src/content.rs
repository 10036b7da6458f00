//! The hand-written content the generator combines: catalog vocabulary, conversation
//! templates, the shop's policies and knowledge articles (`demo-store/content/`), and the
//! Bitext shopper utterances (`data/datasets/bitext/bitext-dev.csv`, CDLA-Sharing-1.0). Embedded at
//! build time so `supportlake generate` needs no files beside the binary.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Catalog {
    pub vendors: Vec<String>,
    pub model_names: Vec<String>,
    pub colors: Vec<Color>,
    pub product_types: Vec<ProductType>,
    pub activities: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Color {
    pub name: String,
    pub code: String,
}

#[derive(Debug, Deserialize)]
pub struct ProductType {
    #[serde(rename = "type")]
    pub name: String,
    pub category: String,
    pub genders: Vec<String>,
    pub title_patterns: Vec<String>,
    pub option1: ProductOption,
    pub option2: Option<ProductOption>,
    pub price_range: [f64; 2],
    pub grams_range: [i64; 2],
    pub materials: Vec<String>,
    pub features: Vec<String>,
    pub care: String,
    pub fit: Vec<String>,
    pub tags: Vec<String>,
    pub description_intro: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct ProductOption {
    pub name: String,
    /// `None` means "pick from the store's colours".
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct ConversationTemplates {
    pub shopper_openers: BTreeMap<String, Vec<String>>,
    pub ai_answers: BTreeMap<String, Vec<String>>,
    pub ai_verification_prompt: Vec<String>,
    pub ai_abstentions: Vec<String>,
    pub ai_handoff: Vec<String>,
    pub agent_replies: BTreeMap<String, Vec<String>>,
    pub agent_names: Vec<String>,
    pub shopper_followups: Followups,
}

#[derive(Debug, Deserialize)]
pub struct Followups {
    pub thanks: Vec<String>,
    pub not_helpful: Vec<String>,
    pub ask_human: Vec<String>,
    pub verification_reply: Vec<String>,
    pub reopen: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Policy {
    #[serde(rename = "type")]
    pub policy_type: String,
    pub title: String,
    pub handle: String,
    pub body_html: String,
}

#[derive(Debug, Deserialize)]
pub struct Article {
    pub handle: String,
    pub title: String,
    pub blog: String,
    pub author: String,
    pub tags: Vec<String>,
    pub body_html: String,
}

pub static CATALOG: LazyLock<Catalog> =
    LazyLock::new(|| parse("catalog.json", include_str!("../content/catalog.json")));
pub static TEMPLATES: LazyLock<ConversationTemplates> = LazyLock::new(|| {
    parse(
        "conversations.json",
        include_str!("../content/conversations.json"),
    )
});
pub static POLICIES: LazyLock<Vec<Policy>> =
    LazyLock::new(|| parse("policies.json", include_str!("../content/policies.json")));
pub static ARTICLES: LazyLock<Vec<Article>> =
    LazyLock::new(|| parse("articles.json", include_str!("../content/articles.json")));

/// Bitext utterances by our intent id, in file order.
pub static UTTERANCES: LazyLock<BTreeMap<String, Vec<String>>> = LazyLock::new(|| {
    let mut reader = csv::Reader::from_reader(
        include_str!("../../data/datasets/bitext/bitext-dev.csv").as_bytes(),
    );
    let mut by_intent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in reader.records() {
        let record = record.expect("embedded bitext-dev.csv is valid CSV");
        by_intent
            .entry(record[1].to_string())
            .or_default()
            .push(record[0].to_string());
    }
    by_intent
});

fn parse<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> T {
    // Embedded, checked-in content: a parse failure is a build defect, caught by the tests.
    serde_json::from_str(text).unwrap_or_else(|e| panic!("embedded content {name} is invalid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_content_parses_and_is_big_enough() {
        assert!(CATALOG.product_types.len() >= 30);
        assert!(POLICIES.iter().any(|p| p.policy_type == "refund"));
        assert!(ARTICLES.len() >= 30, "{} articles", ARTICLES.len());
        for intent in [
            "product_question",
            "stock_availability",
            "return_exchange",
            "out_of_scope",
        ] {
            assert!(!TEMPLATES.shopper_openers[intent].is_empty(), "{intent}");
        }
        assert!(UTTERANCES["order_status"].len() > 50);
    }
}
