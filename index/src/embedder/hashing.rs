//! A deterministic stand-in for the model, for tests: texts that share words, word pairs
//! or word fragments get similar vectors, with no model files and no time spent.
//!
//! Feature hashing: each feature of a text (a lowercased, lightly stemmed word; a pair of
//! neighbouring words; a character trigram of a word) is hashed to one of [`DIMENSION`]
//! coordinates and a sign, and adds its weight there; the sum is L2-normalised. Words
//! outweigh pairs and trigrams, so shared vocabulary decides similarity, while the trigrams
//! let "package" and "packages" or "ship" and "shipping" meet. The hash is FNV-1a, fixed
//! here, so vectors are the same on every machine and Rust version.

use crate::{DIMENSION, Embedder, IndexError};

/// Weight of one word, of a pair of neighbouring words, of one character trigram.
const WORD: f32 = 1.0;
const PAIR: f32 = 0.5;
const TRIGRAM: f32 = 0.25;

/// Words too common to say what a message is about.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "can", "do", "does", "for", "i", "is", "it", "me", "of", "on", "or",
    "the", "to", "you", "your",
];

/// Embeds by feature hashing into [`DIMENSION`] coordinates (see the module's
/// documentation); its vectors are cached under their own model id, never the model's.
#[derive(Debug, Clone, Copy, Default)]
pub struct HashingEmbedder;

impl HashingEmbedder {
    /// The vector of one text.
    pub fn vector(text: &str) -> Vec<f32> {
        let mut vector = vec![0.0_f32; DIMENSION];
        let words = words(text);
        for word in &words {
            add(&mut vector, word.as_bytes(), WORD);
            let marked: Vec<char> = format!("<{word}>").chars().collect();
            for trigram in marked.windows(3) {
                let trigram: String = trigram.iter().collect();
                add(&mut vector, format!("#{trigram}").as_bytes(), TRIGRAM);
            }
        }
        for pair in words.windows(2) {
            add(
                &mut vector,
                format!("{} {}", pair[0], pair[1]).as_bytes(),
                PAIR,
            );
        }
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            vector.iter_mut().for_each(|x| *x /= norm);
        } else {
            // A text with no content words still gets a unit vector, as the model's always are.
            add(&mut vector, b"<empty>", 1.0);
        }
        vector
    }
}

impl Embedder for HashingEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, IndexError> {
        Ok(texts.iter().map(|text| Self::vector(text)).collect())
    }

    fn dimension(&self) -> usize {
        DIMENSION
    }

    fn model_id(&self) -> &str {
        "hashing-words-pairs-trigrams-384"
    }
}

/// The text's content words, lowercased, with plural and verb endings cut.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.len() > 1 && !STOPWORDS.contains(&w.as_str()))
        .map(|w| stem(&w))
        .collect()
}

/// A crude suffix stripper: enough that "orders" meets "order" and "shipping" meets "ship".
fn stem(word: &str) -> String {
    for suffix in ["ing", "ed", "s"] {
        if let Some(stem) = word.strip_suffix(suffix)
            && stem.chars().count() >= 3
        {
            return stem.to_string();
        }
    }
    word.to_string()
}

/// Adds `weight` with the feature's sign at the feature's coordinate.
fn add(vector: &mut [f32], feature: &[u8], weight: f32) {
    let hash = fnv1a(feature);
    let index = (hash % vector.len() as u64) as usize;
    let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
    vector[index] += sign * weight;
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosine;

    fn similarity(a: &str, b: &str) -> f32 {
        cosine(&HashingEmbedder::vector(a), &HashingEmbedder::vector(b))
    }

    #[test]
    fn vectors_are_deterministic_and_unit_length() {
        let texts = ["Where is my order?", "", "!!!", "Do you sell tents?"];
        let vectors = HashingEmbedder.embed(&texts).unwrap();
        assert_eq!(vectors, HashingEmbedder.embed(&texts).unwrap());
        for (text, vector) in texts.iter().zip(&vectors) {
            assert_eq!(vector.len(), DIMENSION);
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{text:?}: norm {norm}");
        }
        // FNV-1a's published parameters, pinned: other vectors would change every expectation.
        assert_eq!(fnv1a(b"order"), 0x6be6_0d72_81a8_29f7);
    }

    #[test]
    fn similar_questions_are_nearer_than_unrelated_ones() {
        let order = "where is my order";
        let package = "where's my package";
        let tents = "do you sell tents";
        assert!(similarity(order, package) > similarity(order, tents));
        assert!(similarity(order, package) > similarity(package, tents));
        // Case, punctuation and plural endings do not matter; word order a little.
        assert!(similarity("Where is my ORDER?!", order) > 0.99);
        assert!(similarity("my orders, where are they", order) > similarity(order, tents));
        let shipping = "shipping to Canada";
        assert!(similarity(shipping, "do you ship to canada") > similarity(shipping, tents));
    }
}
