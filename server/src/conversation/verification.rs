//! Who the shopper is, proved one of two ways:
//!
//! * **Storefront token.** A logged-in shopper's theme signs `customer_id:email:expires`
//!   with the shop's storefront secret (HMAC-SHA256, hex) and passes
//!   `customer_id:email:expires:signature` as `customer_token`. The server recomputes the MAC
//!   and compares it in constant time; an expired or altered token is refused. The theme
//!   snippet is in README.md ("Signed-in shoppers").
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

/// Why a storefront token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
}

/// Checks a `customer_token` and returns the identity it proves.
pub fn verify_token(
    secret: &str,
    pii_key: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Identity, TokenError> {
    // customer_id:email:expires:signature — the email may itself hold ':' in theory, so the
    // fixed fields are taken from both ends.
    let (signed, signature) = token.rsplit_once(':').ok_or(TokenError::Malformed)?;
    let (rest, expires) = signed.rsplit_once(':').ok_or(TokenError::Malformed)?;
    let (customer, email) = rest.split_once(':').ok_or(TokenError::Malformed)?;
    let customer_id: i64 = customer.parse().map_err(|_| TokenError::Malformed)?;
    let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
    let signature = hex::decode(signature).map_err(|_| TokenError::Malformed)?;
    if email.is_empty() {
        return Err(TokenError::Malformed);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(signed.as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    if expires <= now.timestamp() {
        return Err(TokenError::Expired);
    }
    Ok(Identity {
        customer_id: Some(customer_id),
        email_hash: pipeline::pii::email_hash(pii_key, email),
        order_id: None,
        via: "customer_token".into(),
    })
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
    use super::*;

    const SECRET: &str = "theme-secret";
    const KEY: &str = "pii-key";

    /// The message a theme signs: `customer_id:email:expires` (expiry in unix seconds).
    fn token_message(customer_id: i64, email: &str, expires: i64) -> String {
        format!("{customer_id}:{email}:{expires}")
    }

    /// Signs a token as a theme would.
    fn sign_token(secret: &str, customer_id: i64, email: &str, expires: i64) -> String {
        let message = token_message(customer_id, email, expires);
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(message.as_bytes());
        format!("{message}:{}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_signed_token_verifies_and_any_change_is_refused() {
        let now = Utc::now();
        let expires = now.timestamp() + 600;
        let token = sign_token(SECRET, 42, "ana@example.com", expires);
        let identity = verify_token(SECRET, KEY, &token, now).unwrap();
        assert_eq!(identity.customer_id, Some(42));
        assert_eq!(
            identity.email_hash,
            pipeline::pii::email_hash(KEY, "ana@example.com")
        );
        let altered = token.replacen("42:", "43:", 1);
        assert_eq!(
            verify_token(SECRET, KEY, &altered, now),
            Err(TokenError::BadSignature)
        );
        let other_email = token.replace("ana@", "eve@");
        assert_eq!(
            verify_token(SECRET, KEY, &other_email, now),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_token("other-secret", KEY, &token, now),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_token(SECRET, KEY, "42:ana@example.com:notanumber:00", now),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify_token(SECRET, KEY, "garbage", now),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn an_expired_token_is_refused_even_when_signed() {
        let now = Utc::now();
        let token = sign_token(SECRET, 42, "ana@example.com", now.timestamp() - 1);
        assert_eq!(
            verify_token(SECRET, KEY, &token, now),
            Err(TokenError::Expired)
        );
    }
}
