//! Stable ids for records whose source format carries none.
//!
//! Shopify's product CSV export has handles and SKUs but no ids, while orders reference
//! products and variants by id. supportlake derives the missing ids from the natural key
//! (the handle for a product, the SKU for a variant and its inventory item) with a fixed hash,
//! so a CSV import and the records that point at it agree, run after run. Records from the
//! Admin API or webhooks keep Shopify's real ids.

/// A positive 13-digit id (Shopify's ids are of this size) derived from a natural key.
pub fn derived_id(kind: &str, natural_key: &str) -> i64 {
    // FNV-1a: tiny, fixed forever, and well spread for short keys.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in kind.bytes().chain([b':']).chain(natural_key.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let id = 1_000_000_000_000 + hash % 9_000_000_000_000;
    i64::try_from(id).expect("below 10^13 fits in i64")
}

/// Id of a product known only by its handle.
pub fn product_id(handle: &str) -> i64 {
    derived_id("product", handle)
}

/// Id of a variant known only by its SKU.
pub fn variant_id(sku: &str) -> i64 {
    derived_id("variant", sku)
}

/// Id of the inventory item behind a SKU.
pub fn inventory_item_id(sku: &str) -> i64 {
    derived_id("inventory_item", sku)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_13_digits() {
        assert_eq!(
            product_id("cascade-rain-jacket"),
            product_id("cascade-rain-jacket")
        );
        assert_ne!(product_id("a"), variant_id("a"));
        for key in ["", "x", "a-very-long-handle-with-many-words"] {
            let id = product_id(key);
            assert_eq!(id.to_string().len(), 13, "{id}");
        }
    }
}
