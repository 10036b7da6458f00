//! Hybrid search: BM25 and vector similarity, each normalised per query, fused with a
//! weight per doc type.
//!
//! Why weighted fusion over normalised scores rather than reciprocal-rank fusion (RRF):
//! RRF throws the score gaps away — a passage that BM25 ranks first by a mile and one it
//! ranks first by a hair count the same — and the evaluations of fusion functions that
//! compared both (Bruch et al., "An Analysis of Fusion Functions for Hybrid Retrieval",
//! 2023) found a tuned convex combination of normalised scores at least as good, and more
//! robust across domains. RRF remains one line away (`1/(60+rank)`) if a store's
//! evaluation says otherwise.
//!
//! Normalisation: BM25 is divided by the query's best BM25 score (its theoretical minimum is
//! 0); cosine is min-max scaled over the candidate set. Candidates are the union of both
//! retrievers' top lists; a vector-only candidate has BM25 0 (it matched no query term
//! strongly enough to be in BM25's list). The weight of BM25 per doc type
//! ([`FusionWeights`]) was tuned on half of the shipped evaluation set (BENCHMARKS.md).

use std::collections::BTreeMap;

use crate::IndexError;
use crate::bm25::{Bm25, Filter};
use crate::documents::{DocType, Passage};

/// Which retriever ranks: one alone (for evaluation and explanation) or both fused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bm25,
    Vector,
    Hybrid,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Bm25, Mode::Vector, Mode::Hybrid];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bm25 => "bm25",
            Mode::Vector => "vector",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// Weight of the normalised BM25 score per doc type; the vector score gets `1 − weight`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FusionWeights {
    pub product: f32,
    pub policy: f32,
    pub article: f32,
}

impl Default for FusionWeights {
    /// Tuned with `supportlake eval retrieval --tune` on the odd-numbered queries of
    /// `data/eval/retrieval.jsonl`, so the even-numbered ones measure them unseen
    /// (BENCHMARKS.md). Product names and SKUs are words BM25 matches exactly, hence its
    /// larger share there; policy and article questions are paraphrases, the model's ground.
    fn default() -> Self {
        Self {
            product: 0.8,
            policy: 0.1,
            article: 0.1,
        }
    }
}

impl FusionWeights {
    pub fn set(&mut self, doc_type: DocType, weight: f32) {
        match doc_type {
            DocType::Product => self.product = weight,
            DocType::Policy => self.policy = weight,
            DocType::Article => self.article = weight,
        }
    }

    pub fn of(&self, doc_type: DocType) -> f32 {
        match doc_type {
            DocType::Product => self.product,
            DocType::Policy => self.policy,
            DocType::Article => self.article,
        }
    }
}

/// One result with the scores that explain its rank.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    pub key: String,
    pub doc_type: &'static str,
    pub title: String,
    pub url: String,
    pub snippet: String,
    /// Tantivy's BM25 score; `None` when BM25 did not return the passage.
    pub bm25: Option<f32>,
    /// Cosine similarity of the query and passage embeddings.
    pub vector: f32,
    /// BM25 ÷ the query's best BM25 (0 when absent).
    pub bm25_normalised: f32,
    /// Cosine min-max scaled over the candidates.
    pub vector_normalised: f32,
    /// The score the hit was ranked by in its mode.
    pub fused: f32,
}

/// How many candidates each retriever contributes before fusion.
fn candidate_depth(k: usize) -> usize {
    (k * 5).max(50)
}

/// Ranks `passages` for one query (its text, and the cosine of its embedding with every
/// passage) in `mode`.
#[allow(clippy::too_many_arguments)] // the index parts are borrowed from one generation
pub fn rank(
    passages: &[Passage],
    bm25: &Bm25,
    cosines: &[f32],
    weights: &FusionWeights,
    query: &str,
    filter: &Filter,
    k: usize,
    mode: Mode,
) -> Result<Vec<Hit>, IndexError> {
    let depth = candidate_depth(k);
    let allowed = |p: &Passage| {
        filter.shop.as_deref().is_none_or(|s| p.shop_id == s)
            && (filter.doc_types.is_empty() || filter.doc_types.contains(&p.doc_type))
    };
    let lexical: BTreeMap<usize, f32> = if mode == Mode::Vector {
        BTreeMap::new()
    } else {
        bm25.search(query, filter, depth)?.into_iter().collect()
    };
    let mut candidates: Vec<usize> = lexical.keys().copied().collect();
    if mode != Mode::Bm25 {
        let mut by_cosine: Vec<usize> = (0..passages.len())
            .filter(|&i| allowed(&passages[i]))
            .collect();
        // Only the top `depth` are needed: select them in linear time rather than sort every
        // passage (100k per query at the largest stores).
        let best_first = |a: &usize, b: &usize| cosines[*b].total_cmp(&cosines[*a]);
        if by_cosine.len() > depth {
            by_cosine.select_nth_unstable_by(depth, best_first);
            by_cosine.truncate(depth);
        }
        candidates.extend(by_cosine.into_iter().filter(|i| !lexical.contains_key(i)));
    }
    let best_bm25 = lexical.values().copied().fold(0.0_f32, f32::max);
    let (low, high) = candidates
        .iter()
        .map(|&i| cosines[i])
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), c| {
            (l.min(c), h.max(c))
        });
    // Scores first, then the `k` hits: the copies and snippets a hit carries are made only
    // for what is returned, not for every candidate.
    let mut scored: Vec<Scored> = candidates
        .into_iter()
        .map(|ord| {
            let bm25 = lexical.get(&ord).copied();
            let bm25_normalised =
                bm25.map_or(0.0, |s| if best_bm25 > 0.0 { s / best_bm25 } else { 0.0 });
            let vector = cosines[ord];
            let vector_normalised = if high > low {
                (vector - low) / (high - low)
            } else {
                1.0
            };
            let fused = match mode {
                Mode::Bm25 => bm25.unwrap_or(0.0),
                Mode::Vector => vector,
                Mode::Hybrid => {
                    let w = weights.of(passages[ord].doc_type);
                    w * bm25_normalised + (1.0 - w) * vector_normalised
                }
            };
            Scored {
                ord,
                bm25,
                bm25_normalised,
                vector_normalised,
                fused,
            }
        })
        .collect();
    scored.sort_by(|a, b| {
        b.fused
            .total_cmp(&a.fused)
            .then_with(|| passages[a.ord].key.cmp(&passages[b.ord].key))
    });
    scored.truncate(k);
    Ok(scored
        .into_iter()
        .map(|s| {
            let p = &passages[s.ord];
            Hit {
                key: p.key.clone(),
                doc_type: p.doc_type.as_str(),
                title: p.title.clone(),
                url: p.url.clone(),
                snippet: snippet(&p.text),
                bm25: s.bm25,
                vector: cosines[s.ord],
                bm25_normalised: s.bm25_normalised,
                vector_normalised: s.vector_normalised,
                fused: s.fused,
            }
        })
        .collect())
}

/// A candidate's scores, before it becomes a [`Hit`].
struct Scored {
    ord: usize,
    bm25: Option<f32>,
    bm25_normalised: f32,
    vector_normalised: f32,
    fused: f32,
}

/// The start of a passage, cut at a word boundary: what a source link shows.
pub fn snippet(text: &str) -> String {
    const LIMIT: usize = 220;
    if text.chars().count() <= LIMIT {
        return text.to_string();
    }
    let cut: String = text.chars().take(LIMIT).collect();
    let end = cut.rfind(' ').unwrap_or(cut.len());
    format!("{}…", cut[..end].trim_end_matches([',', '.', ';', ':']))
}

/// Hits as `supportlake search` prints them: numbered, each with its link and snippet, and
/// with `explain` the scores behind its rank.
#[derive(Debug, Clone, Copy)]
pub struct HitList<'a> {
    pub hits: &'a [Hit],
    pub explain: bool,
}

impl std::fmt::Display for HitList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.hits.is_empty() {
            return f.write_str("no passage matches");
        }
        for (n, hit) in self.hits.iter().enumerate() {
            if n > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}. {} — {}", n + 1, hit.title, hit.key)?;
            if !hit.url.is_empty() {
                write!(f, "\n   {}", hit.url)?;
            }
            write!(f, "\n   {}", hit.snippet)?;
            if self.explain {
                let bm25 = hit.bm25.map_or("-".to_string(), |s| format!("{s:.3}"));
                write!(
                    f,
                    "\n   fused {:.3} = bm25 {bm25} (normalised {:.3}) + vector {:.3} (normalised {:.3}), {}",
                    hit.fused, hit.bm25_normalised, hit.vector, hit.vector_normalised, hit.doc_type
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_cut_at_words() {
        assert_eq!(snippet("short"), "short");
        let long = "word ".repeat(100);
        let s = snippet(&long);
        assert!(s.ends_with("word…"), "{s}");
        assert!(s.chars().count() <= 221);
    }
}
