//! How answers say things: dates, money, lists of items, and the meaningful words of a
//! question (to match it with order lines and passage sentences).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;

pub(super) fn day(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "an unknown date".into(),
        |t| t.format("%B %-d, %Y").to_string(),
    )
}

pub(super) fn money(amount: f64, currency: Option<&str>) -> String {
    match currency.unwrap_or("USD") {
        "USD" | "CAD" | "AUD" => format!("${amount:.2}"),
        "EUR" => format!("€{amount:.2}"),
        "GBP" => format!("£{amount:.2}"),
        other => format!("{amount:.2} {other}"),
    }
}

pub(super) fn join_items(items: &[String]) -> String {
    match items {
        [] => "your items".into(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

pub(super) fn list_some(items: &[String]) -> String {
    const SHOWN: usize = 8;
    if items.len() <= SHOWN {
        items.join(", ")
    } else {
        format!(
            "{} and {} more",
            items[..SHOWN].join(", "),
            items.len() - SHOWN
        )
    }
}

pub(super) fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

static WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[a-z]{3,}").expect("valid regex"));
const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "you", "your", "can", "got", "get", "with", "this", "that", "what", "how",
    "does", "did", "are", "was", "were", "have", "has", "had", "from", "bought", "order", "return",
    "exchange", "refund", "item", "items", "want", "would", "like", "please", "send", "back",
    "them", "they", "these", "those", "mine", "just", "still", "about", "there",
];

/// The meaningful words of a text, singular ("boots" and "boot" both give "boot").
pub(super) fn words(text: &str) -> BTreeSet<String> {
    WORD.find_iter(&text.to_lowercase())
        .map(|m| m.as_str())
        .filter(|w| !STOP_WORDS.contains(w))
        .map(|w| {
            w.strip_suffix('s')
                .filter(|s| s.len() >= 3)
                .unwrap_or(w)
                .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_singular_and_skip_filler() {
        let w = words("Can I return the boots I got?");
        assert!(w.contains("boot"), "{w:?}");
        assert!(!w.contains("return") && !w.contains("got"), "{w:?}");
    }
}
