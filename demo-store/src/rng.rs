//! A tiny deterministic random source (SplitMix64), owned by the project so the demo store
//! stays byte-identical across platforms and dependency upgrades.
//!
//! Every entity (product p, customer c, order o, conversation k) draws from its own stream
//! seeded by `(seed, kind, index)`, so any entity can be regenerated from its index alone:
//! that is what lets the generator stream at any scale without keeping earlier entities.

/// SplitMix64 state.
#[derive(Debug, Clone)]
pub struct Rng(u64);

/// Entity kinds, each its own stream family.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Product = 1,
    Customer = 2,
    Order = 3,
    Conversation = 4,
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// The stream of one entity.
    pub fn for_entity(seed: u64, stream: Stream, index: u64) -> Self {
        Self(mix(seed ^ mix((stream as u64) << 56 ^ index)))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[0, n)`; `n` must be positive.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[lo, hi]`.
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Picks by weight.
    pub fn weighted<'a, T>(&mut self, items: &'a [(T, f64)]) -> &'a T {
        let total: f64 = items.iter().map(|(_, w)| w).sum();
        let mut target = self.unit() * total;
        for (item, weight) in items {
            if target < *weight {
                return item;
            }
            target -= weight;
        }
        &items[items.len() - 1].0
    }

    /// Index skewed towards 0 (popular products, loyal customers): a power law over `[0, n)`.
    pub fn skewed(&mut self, n: usize, power: f64) -> usize {
        ((self.unit().powf(power) * n as f64) as usize).min(n - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let a: Vec<u64> = (0..3)
            .map(|_| Rng::for_entity(7, Stream::Order, 1).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut b = Rng::for_entity(7, Stream::Order, 2);
        let mut c = Rng::for_entity(7, Stream::Customer, 1);
        assert_ne!(
            b.next_u64(),
            Rng::for_entity(7, Stream::Order, 1).next_u64()
        );
        assert_ne!(
            c.next_u64(),
            Rng::for_entity(8, Stream::Customer, 1).next_u64()
        );
    }

    #[test]
    fn ranges_hold() {
        let mut rng = Rng::for_entity(1, Stream::Conversation, 0);
        for _ in 0..1000 {
            let x = rng.between(3, 5);
            assert!((3..=5).contains(&x));
            assert!(rng.unit() < 1.0);
            assert!(rng.skewed(10, 2.0) < 10);
        }
    }
}
