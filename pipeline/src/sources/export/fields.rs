//! Strict, explaining accessors over a JSON object: every failure names the field and what
//! was wrong, because that text becomes the quarantine reason an engineer reads.

use chrono::DateTime;
use serde_json::{Map, Value};

use crate::lake::vocab::Vocabulary;

/// Why a record cannot be ingested. The part before the first `:` is the reason's class
/// (used to count quarantined records by reason).
pub type Reason = String;

/// A JSON object being read.
#[derive(Debug, Clone, Copy)]
pub struct Obj<'a>(pub &'a Map<String, Value>);

impl<'a> Obj<'a> {
    /// Wraps a value that must be an object.
    pub fn of(value: &'a Value, what: &str) -> Result<Self, Reason> {
        value
            .as_object()
            .map(Obj)
            .ok_or_else(|| format!("wrong type: {what} is not a JSON object"))
    }

    fn present(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// An id: a JSON integer, a numeric string, or a GraphQL gid (`gid://shopify/Order/123`).
    pub fn opt_id(&self, key: &str) -> Result<Option<i64>, Reason> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("wrong type: {key} is not an integer id ({n})")),
            Some(Value::String(s)) => s
                .rsplit('/')
                .next()
                .and_then(|tail| tail.parse().ok())
                .map(Some)
                .ok_or_else(|| format!("wrong type: {key} is not an id ({s:?})")),
            Some(other) => Err(format!("wrong type: {key} is not an id ({other})")),
        }
    }

    pub fn id(&self, key: &str) -> Result<i64, Reason> {
        self.opt_id(key)?
            .ok_or_else(|| format!("missing id: {key}"))
    }

    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, Reason> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("wrong type: {key} is not an integer ({n})")),
            Some(other) => Err(format!("wrong type: {key} is not an integer ({other})")),
        }
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, Reason> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(other) => Err(format!("wrong type: {key} is not a number ({other})")),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, Reason> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(format!("wrong type: {key} is not true/false ({other})")),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, Reason> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(format!("wrong type: {key} is not a string ({other})")),
        }
    }

    pub fn str(&self, key: &str) -> Result<&'a str, Reason> {
        self.opt_str(key)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("missing field: {key}"))
    }

    /// A string that must be one of `allowed` (Shopify's documented enum values).
    pub fn opt_enum(&self, key: &str, allowed: &[&str]) -> Result<Option<&'a str>, Reason> {
        match self.opt_str(key)? {
            Some(value) if !allowed.contains(&value) => {
                Err(unknown_value(key, value, &allowed.join(", ")))
            }
            other => Ok(other),
        }
    }

    /// A string that must be a word of supportlake's vocabulary `T`.
    pub fn opt_word<T: Vocabulary>(&self, key: &str) -> Result<Option<T>, Reason> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(value) => T::parse(value)
                .map(Some)
                .ok_or_else(|| unknown_value(key, value, &T::word_list())),
        }
    }

    /// An RFC 3339 timestamp, as microseconds since the epoch (UTC).
    pub fn opt_ts(&self, key: &str) -> Result<Option<i64>, Reason> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(text) => parse_timestamp(text)
                .map(Some)
                .ok_or_else(|| format!("bad timestamp: {key} = {text:?} is not RFC 3339")),
        }
    }

    pub fn ts(&self, key: &str) -> Result<i64, Reason> {
        self.opt_ts(key)?
            .ok_or_else(|| format!("missing field: {key}"))
    }

    /// Money as Shopify writes it (`"12.30"`), checked and kept as an exact decimal string.
    pub fn opt_money(&self, key: &str) -> Result<Option<String>, Reason> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(s)) => check_money(s)
                .map(Some)
                .ok_or_else(|| format!("wrong type: {key} = {s:?} is not an amount")),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(format!("wrong type: {key} is not an amount ({other})")),
        }
    }

    pub fn obj(&self, key: &str) -> Result<Option<Obj<'a>>, Reason> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => Obj::of(v, key).map(Some),
        }
    }

    /// An array of objects (missing = empty).
    pub fn objects(&self, key: &str) -> Result<Vec<Obj<'a>>, Reason> {
        match self.present(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(|v| Obj::of(v, key)).collect(),
            Some(other) => Err(format!("wrong type: {key} is not an array ({other})")),
        }
    }

    /// Shopify's comma-separated tag string, or a JSON array of strings.
    pub fn tags(&self, key: &str) -> Result<Vec<String>, Reason> {
        match self.present(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(split_tags(s)),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .ok_or_else(|| format!("wrong type: {key} holds a non-string"))
                })
                .collect(),
            Some(other) => Err(format!("wrong type: {key} is not a tag list ({other})")),
        }
    }
}

/// The reason of a value outside its field's closed set.
fn unknown_value(key: &str, value: &str, expected: &str) -> Reason {
    format!("unknown enum value: {key} = {value:?} (expected one of {expected})")
}

pub fn split_tags(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

pub fn parse_timestamp(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// `"12.30"` → `Some("12.30")`; anything that is not a plain decimal → `None`.
pub fn check_money(text: &str) -> Option<String> {
    let text = text.trim();
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 2
        && frac.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| text.to_string())
}

/// Cents as Shopify writes amounts: `-405` → `"-4.05"`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasons_name_the_field() {
        let v =
            json!({"id": "abc", "n": "1", "ts": "yesterday", "status": "lost", "price": "1.2.3"});
        let o = Obj::of(&v, "order").unwrap();
        assert!(o.id("id").unwrap_err().contains("id"));
        assert!(o.id("missing").unwrap_err().starts_with("missing id"));
        assert!(o.opt_i64("n").unwrap_err().starts_with("wrong type"));
        assert!(o.opt_ts("ts").unwrap_err().starts_with("bad timestamp"));
        assert!(
            o.opt_enum("status", &["open"])
                .unwrap_err()
                .starts_with("unknown enum value")
        );
        assert!(o.opt_money("price").is_err());
    }

    #[test]
    fn ids_accept_numbers_strings_and_gids() {
        let v = json!({"a": 820982911946154508i64, "b": "42", "c": "gid://shopify/Order/7"});
        let o = Obj::of(&v, "x").unwrap();
        assert_eq!(o.id("a").unwrap(), 820982911946154508);
        assert_eq!(o.id("b").unwrap(), 42);
        assert_eq!(o.id("c").unwrap(), 7);
        assert_eq!(
            parse_timestamp("2026-08-01T10:00:00-07:00"),
            Some(1_785_603_600_000_000)
        );
    }
}
