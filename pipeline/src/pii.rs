//! Privacy by construction: what the lake keeps instead of personal data.
//!
//! * Emails become a keyed hash ([`email_hash`]: HMAC-SHA256 of the normalised address with
//!   the configured secret) — enough for the server to check "order number + email" in
//!   constant time, useless to anyone without the key — plus a masked form for agents
//!   ([`mask_email`]: `j***@example.com`).
//! * Free text (messages, notes) goes through [`redact_text`] before it reaches the lake:
//!   email addresses, phone numbers and card-like numbers (13–19 digits passing the Luhn
//!   check) are replaced by `[email]`, `[phone]`, `[card]`. Order numbers such as `#1042`
//!   are kept on purpose: they are what support conversations are about.

use std::sync::LazyLock;

use hmac::{Hmac, Mac};
use regex::Regex;
use sha2::Sha256;

/// Keyed hash of an email address, hex-encoded. Case and surrounding whitespace do not
/// matter, as they do not for delivery.
pub fn email_hash(key: &str, email: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(email.trim().to_lowercase().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `jane.doe@example.com` → `j***@example.com`. Anything without an `@` is fully masked.
pub fn mask_email(email: &str) -> String {
    match email.trim().split_once('@') {
        Some((local, domain)) if !local.is_empty() => {
            let first = local.chars().next().expect("non-empty");
            format!("{first}***@{domain}")
        }
        _ => "***".into(),
    }
}

/// Keeps the last two digits of a phone number: `+1 775-555-0142` → `***42`.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 4 {
        return "***".into();
    }
    format!(
        "***{}{}",
        digits[digits.len() - 2],
        digits[digits.len() - 1]
    )
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[a-z0-9._%+\-]+@[a-z0-9.\-]+\.[a-z]{2,}\b").expect("valid regex")
});
/// Runs of digits with optional single spaces/dashes between them; classified below.
static DIGIT_RUN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+?\(?\d[\d\s().\-]{7,}\d").expect("valid regex"));

/// Replaces emails, phone numbers and card numbers in free text.
pub fn redact_text(text: &str) -> String {
    let without_emails = EMAIL.replace_all(text, "[email]");
    DIGIT_RUN
        .replace_all(&without_emails, |caps: &regex::Captures<'_>| {
            let run = &caps[0];
            let digits: String = run.chars().filter(char::is_ascii_digit).collect();
            let separated = run.chars().any(|c| !c.is_ascii_digit());
            if (13..=19).contains(&digits.len()) && luhn_valid(&digits) {
                "[card]".to_string()
            } else if (10..=15).contains(&digits.len()) && (separated || run.starts_with('+')) {
                // A bare run of digits is usually an order or tracking number; a phone
                // number is written with separators or a country prefix.
                "[phone]".to_string()
            } else {
                run.to_string()
            }
        })
        .into_owned()
}

fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0;
    for (i, d) in digits
        .bytes()
        .rev()
        .map(|b| u32::from(b - b'0'))
        .enumerate()
    {
        sum += if i % 2 == 1 {
            let doubled = d * 2;
            if doubled > 9 { doubled - 9 } else { doubled }
        } else {
            d
        };
    }
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_and_normalised() {
        let a = email_hash("k1", "Jane@Example.com ");
        assert_eq!(a, email_hash("k1", "jane@example.com"));
        assert_ne!(a, email_hash("k2", "jane@example.com"));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn masks_keep_only_a_hint() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
        assert_eq!(mask_phone("+1 775-555-0142"), "***42");
    }

    #[test]
    fn redacts_emails_phones_and_cards_but_not_order_numbers() {
        let text = "I'm jane@example.com, call me on +1 (775) 555-0142 or 775-555-0199; \
                    card 4111 1111 1111 1111 was charged twice for order #1042, tracking 1Z999AA10123456784";
        let out = redact_text(text);
        assert!(!out.contains("jane@"), "{out}");
        assert!(
            !out.contains("555-0142") && !out.contains("555-0199"),
            "{out}"
        );
        assert!(!out.contains("4111"), "{out}");
        assert!(
            out.contains("[email]") && out.contains("[phone]") && out.contains("[card]"),
            "{out}"
        );
        assert!(
            out.contains("#1042") && out.contains("1Z999AA10123456784"),
            "{out}"
        );
    }

    #[test]
    fn luhn_rejects_near_misses() {
        assert!(luhn_valid("4111111111111111"));
        assert!(!luhn_valid("4111111111111112"));
    }
}
