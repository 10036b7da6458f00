//! Who the shopper is, proved one of two ways:
//!
//! * **Storefront token.** A logged-in shopper's theme signs `shop:customer_id:email:expires`
//!   with **that shop's** storefront secret (HMAC-SHA256, hex; the secret is in the shop
//!   registry) and passes `shop:customer_id:email:expires:signature` as `customer_token`.
//!   The server refuses a token that names another shop than the request's before it looks
//!   at the signature, recomputes the MAC with the request's shop's secret and compares it
//!   in constant time; an expired token, or one that lives longer than
//!   [`TOKEN_MAX_LIFETIME_SECONDS`], is refused. The theme snippet is in README.md
//!   ("Signed-in shoppers").
//! * **App proxy.** A request Shopify forwarded and signed for a shop with a
//!   `logged_in_customer_id` proves that customer of that shop (`crate::shopify::proxy`).
//! * **Order number + email.** The email is turned into the lake's keyed hash and compared
//!   with the order's in constant time. Whether the order does not exist or the email is
//!   wrong, the shopper gets the same answer, so order numbers cannot be probed; failures are
//!   counted per conversation and per client address, and past the limit every attempt is
//!   refused — the right one too — until the window has passed.
//!
//! Ids a shopper types are never trusted on their own: an order number only means something
//! together with the email on that order.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::conversation::commerce::Snapshot;
use crate::conversation::turn::Turn;
use crate::error::ServerError;
use crate::state::chat::{self, Conversation, Identity};

/// Failed verifications a conversation may make within [`ATTEMPT_WINDOW_SECONDS`].
pub const CONVERSATION_ATTEMPTS: i64 = 5;
/// Failed verifications one client address may make within the window, across
/// conversations (a script opening new conversations hits this one).
pub const ADDRESS_ATTEMPTS: i64 = 20;
/// The window and the cool-down after hitting a limit.
pub const ATTEMPT_WINDOW_SECONDS: i64 = 15 * 60;

/// The longest a storefront token may live: a theme signs a fresh one with every page, so
/// a token that claims a day is either a mistake or minted to be replayed.
pub const TOKEN_MAX_LIFETIME_SECONDS: i64 = 24 * 3600;

/// Why a storefront token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    /// Signed for another shop than the one the request is for.
    OtherShop,
    BadSignature,
    Expired,
    /// Expires further ahead than [`TOKEN_MAX_LIFETIME_SECONDS`].
    TooLong,
}

/// Checks a `customer_token` for `shop` (its domain) with the shop's storefront `secret`,
/// and returns the identity it proves.
pub fn verify_token(
    shop: &str,
    secret: &str,
    pii_key: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Identity, TokenError> {
    // shop:customer_id:email:expires:signature. A shop domain holds no ':', an email could
    // in theory, so the shop and customer are taken from the front, the rest from the end.
    let (signed, signature) = token.rsplit_once(':').ok_or(TokenError::Malformed)?;
    let (rest, expires) = signed.rsplit_once(':').ok_or(TokenError::Malformed)?;
    let (named_shop, rest) = rest.split_once(':').ok_or(TokenError::Malformed)?;
    let (customer, email) = rest.split_once(':').ok_or(TokenError::Malformed)?;
    let customer_id: i64 = customer.parse().map_err(|_| TokenError::Malformed)?;
    let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
    let signature = hex::decode(signature).map_err(|_| TokenError::Malformed)?;
    if email.is_empty() || named_shop.is_empty() {
        return Err(TokenError::Malformed);
    }
    if !named_shop.eq_ignore_ascii_case(shop) {
        return Err(TokenError::OtherShop);
    }
    // An empty secret would make every signature forgeable: a shop without one accepts no
    // token at all.
    if secret.is_empty() {
        return Err(TokenError::BadSignature);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(signed.as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    if expires <= now.timestamp() {
        return Err(TokenError::Expired);
    }
    if expires - now.timestamp() > TOKEN_MAX_LIFETIME_SECONDS {
        return Err(TokenError::TooLong);
    }
    Ok(Identity {
        customer_id: Some(customer_id),
        email_hash: pipeline::pii::email_hash(pii_key, email),
        order_id: None,
        via: "customer_token".into(),
    })
}

/// The identity a verified app proxy request proves: a signed-in customer of its shop,
/// with no email (Shopify sends none; orders are matched by customer id).
pub fn proxied_identity(customer_id: i64) -> Identity {
    Identity {
        customer_id: Some(customer_id),
        email_hash: String::new(),
        order_id: None,
        via: "app_proxy".into(),
    }
}

/// Checks an order number and email against the shop's orders. `None` for every kind of
/// mismatch, with the same work done either way.
pub fn verify_order(
    snapshot: &Snapshot,
    pii_key: &str,
    shop: &str,
    order_number: &str,
    email: &str,
) -> Option<Identity> {
    let hash = pipeline::pii::email_hash(pii_key, email);
    let number: Option<i64> = order_number
        .trim()
        .trim_start_matches('#')
        .trim()
        .parse()
        .ok();
    let order = number.and_then(|n| snapshot.order(shop, n));
    // Compare against something of the same length when there is no order, so a missing
    // order costs what a wrong email costs.
    let stored = order
        .and_then(|o| o.email_hash.as_deref())
        .unwrap_or("0000000000000000000000000000000000000000000000000000000000000000");
    let same: bool = stored.as_bytes().ct_eq(hash.as_bytes()).into();
    let order = order.filter(|_| same)?;
    Some(Identity {
        customer_id: order.customer_id,
        email_hash: hash,
        order_id: Some(order.id),
        via: "order_and_email".into(),
    })
}

/// How an attempt to verify went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The identity is stored on the conversation.
    Verified,
    /// The details did not match (one answer for every kind of mismatch).
    Failed,
    /// Too many failures: refused for this many more seconds.
    Locked(u64),
}

pub const VERIFY_FAILED: &str = "We couldn't verify those details. Please check the order number and the email used at checkout, and try again.";
pub const VERIFY_LOCKED: &str = "Too many attempts to verify. For your security, please wait a few minutes before trying again, or ask for a person.";

impl Turn<'_> {
    /// Checks order number + email under the attempt limits, and on success stores the
    /// identity.
    pub fn verify(
        &self,
        tx: &rusqlite::Transaction<'_>,
        conversation: &mut Conversation,
        order_number: &str,
        email: &str,
        client: IpAddr,
    ) -> Result<Verification, ServerError> {
        let now = self.now;
        let by_conversation = format!("conversation:{}", conversation.id);
        let by_address = format!("address:{client}");
        let since = now.timestamp() - ATTEMPT_WINDOW_SECONDS;
        for (scope, limit) in [
            (&by_conversation, CONVERSATION_ATTEMPTS),
            (&by_address, ADDRESS_ATTEMPTS),
        ] {
            if chat::failures_since(tx, scope, since)? >= limit {
                let oldest =
                    chat::oldest_failure_since(tx, scope, since)?.unwrap_or(now.timestamp());
                let wait = (oldest + ATTEMPT_WINDOW_SECONDS - now.timestamp()).max(1);
                return Ok(Verification::Locked(u64::try_from(wait).unwrap_or(1)));
            }
        }
        match verify_order(
            self.snapshot,
            &self.state.config().pii_hash_key,
            &conversation.shop_id,
            order_number,
            email,
        ) {
            Some(identity) => {
                conversation.identity = Some(identity);
                Ok(Verification::Verified)
            }
            None => {
                chat::record_failure(tx, &[&by_conversation, &by_address], now.timestamp(), since)?;
                Ok(Verification::Failed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use testkit::sign_token;

    use super::*;

    const SECRET: &str = "theme-secret";
    const KEY: &str = "pii-key";
    const SHOP: &str = "ridgeline-outfitters.myshopify.com";
    const OTHER: &str = "summit-supply.myshopify.com";

    #[test]
    fn a_signed_token_verifies_and_any_change_is_refused() {
        let now = Utc::now();
        let expires = now.timestamp() + 600;
        let token = sign_token(SECRET, SHOP, 42, "ana@example.com", expires);
        let identity = verify_token(SHOP, SECRET, KEY, &token, now).unwrap();
        assert_eq!(identity.customer_id, Some(42));
        assert_eq!(
            identity.email_hash,
            pipeline::pii::email_hash(KEY, "ana@example.com")
        );
        let check = |token: &str| verify_token(SHOP, SECRET, KEY, token, now);
        assert_eq!(
            check(&token.replacen(":42:", ":43:", 1)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            check(&token.replace("ana@", "eve@")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_token(SHOP, "other-secret", KEY, &token, now),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_token(
                SHOP,
                "",
                KEY,
                &sign_token("", SHOP, 42, "ana@example.com", expires),
                now
            ),
            Err(TokenError::BadSignature),
            "an empty secret signs nothing"
        );
        assert_eq!(
            check(&format!("{SHOP}:42:ana@example.com:notanumber:00")),
            Err(TokenError::Malformed)
        );
        assert_eq!(check("42:ana@example.com:1:00"), Err(TokenError::Malformed));
        assert_eq!(check("garbage"), Err(TokenError::Malformed));
    }

    #[test]
    fn a_token_for_another_shop_is_refused_even_with_that_shops_valid_signature() {
        let now = Utc::now();
        let theirs = sign_token(
            "their-secret",
            OTHER,
            42,
            "ana@example.com",
            now.timestamp() + 600,
        );
        assert_eq!(
            verify_token(SHOP, SECRET, KEY, &theirs, now),
            Err(TokenError::OtherShop)
        );
        // Re-labelled for this shop, the signature no longer matches.
        let relabelled = theirs.replacen(OTHER, SHOP, 1);
        assert_eq!(
            verify_token(SHOP, SECRET, KEY, &relabelled, now),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expired_and_overlong_tokens_are_refused_even_when_signed() {
        let now = Utc::now();
        let expired = sign_token(SECRET, SHOP, 42, "ana@example.com", now.timestamp() - 1);
        assert_eq!(
            verify_token(SHOP, SECRET, KEY, &expired, now),
            Err(TokenError::Expired)
        );
        let forever = sign_token(
            SECRET,
            SHOP,
            42,
            "ana@example.com",
            now.timestamp() + TOKEN_MAX_LIFETIME_SECONDS + 1,
        );
        assert_eq!(
            verify_token(SHOP, SECRET, KEY, &forever, now),
            Err(TokenError::TooLong)
        );
    }
}
