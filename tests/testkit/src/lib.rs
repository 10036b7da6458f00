//! The demo store as the tests see it.
//!
//! Two tiers test the answer server: the in-memory tests inside `server` (the router called
//! without a socket, a hashing embedder) and the end-to-end binary in `tests/e2e` (the real
//! binary, the real model). Both read expected values from the demo store's export files,
//! never from the server, and both need a second shop to prove that shops never answer for
//! each other. This crate is where those facts live once.
//!
//! It also signs what a shop's storefront signs ([`sign_token`]), as a theme does it, so a
//! test never borrows the server's own code to make its input.
//!
//! Everything here reads `data/demo-store/` of this checkout and panics with the file's name
//! when it cannot: a test without its fixture has nothing to say.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The demo store's shop.
pub const SHOP_A: &str = "ridgeline-outfitters.myshopify.com";
/// The second shop, made from the demo store by [`second_shop`].
pub const SHOP_B: &str = "summit-supply.myshopify.com";

/// The demo store's export files.
pub fn demo_store() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/demo-store")
}

/// The demo store's orders, as its system of record has them.
pub fn orders() -> Vec<Value> {
    let path = demo_store().join("orders.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("an order per line"))
        .collect()
}

/// A demo order on its way: not cancelled, one shipment in transit, with a carrier and a
/// tracking number.
pub fn in_transit() -> Value {
    orders()
        .into_iter()
        .find(|o| {
            o["cancelled_at"].is_null()
                && o["fulfillments"].as_array().is_some_and(|f| {
                    f.len() == 1
                        && f[0]["shipment_status"] == "in_transit"
                        && f[0]["tracking_number"].is_string()
                        && f[0]["tracking_company"].is_string()
                })
        })
        .expect("the demo store has an order in transit")
}

/// Writes a copy of the demo store as another shop ("Summit Supply") into `out`: the same
/// customer and order ids and order numbers, other shoppers' emails. Same numbers, different
/// people, is the case a shop boundary must hold against.
pub fn second_shop(out: &Path) {
    std::fs::create_dir_all(out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    for entry in std::fs::read_dir(demo_store()).expect("the demo store's folder") {
        let path = entry.expect("a demo store file").path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .replace("ridgeline-outfitters", "summit-supply")
            .replace("Ridgeline Outfitters", "Summit Supply")
            .replace("@example.", "@summit.example.")
            .replace("68310452233", "68310452299");
        let target = out.join(path.file_name().expect("a file name"));
        std::fs::write(&target, text).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
    }
}

/// A storefront token as a shop's theme signs it (README, "Signed-in shoppers"):
/// `shop:customer_id:email:expires:hex(HMAC-SHA256(secret, shop:customer_id:email:expires))`.
pub fn sign_token(secret: &str, shop: &str, customer_id: i64, email: &str, expires: i64) -> String {
    use hmac::Mac;
    let message = format!("{shop}:{customer_id}:{email}:{expires}");
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(message.as_bytes());
    format!("{message}:{}", hex::encode(mac.finalize().into_bytes()))
}

/// The email of a demo order's shopper in the second shop.
pub fn in_shop_b(email: &str) -> String {
    email.replace("@example.", "@summit.example.")
}

/// Copies the folder `from` into `to`, recursively (a test's own copy of a lake or an index,
/// which it may then change).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("a folder entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("{}: {e}", target.display()));
        }
    }
}
