//! What Shopify signs, and how the server checks it before it believes a word.
//!
//! Everything that arrives claiming to come from Shopify carries an HMAC-SHA256 made with
//! the app's client secret. The rules for reading and checking those signatures take only
//! header values, query parameters and raw bytes, so they live here, apart from HTTP: the
//! live endpoints call them, and so does `supportlake webhooks replay`, which has no server.
//!
//! * [`webhook`]: a webhook delivery (base64 HMAC of the raw body).
//! * [`proxy`]: a storefront request forwarded by the app proxy (hex HMAC of the sorted
//!   query parameters).
//! * [`oauth`]: an install's callback (hex HMAC of the sorted, URL-encoded query), and the
//!   expiring offline token it is traded for, kept fresh.

pub mod oauth;
pub mod proxy;
pub mod webhook;
