//! Measuring retrieval and classification on judged data.
//!
//! Retrieval: each query has the passage keys a judge called answers (binary relevance).
//! nDCG@10 (gain 1 per relevant hit, discounted by log2(rank + 1), over the ideal ranking),
//! Recall@10 (share of the relevant keys in the top 10) and MRR (1 / rank of the first
//! relevant hit, 0 when none in the top 10), averaged over queries, for each mode.
//!
//! Intents: accuracy, macro-F1 over the intents present in the gold labels, per-intent
//! precision and recall, out_of_scope recall, the false-out-of-scope rate (in-scope
//! messages sent to out_of_scope ÷ in-scope messages) and the most frequent confusions.

use std::collections::BTreeMap;
use std::path::Path;

use crate::bm25::Filter;
use crate::classifier::{Classification, Example};
use crate::generation::Generation;
use crate::search::{FusionWeights, Hit, Mode};
use crate::{Embedder, IndexError, embed_batched};

const CUTOFF: usize = 10;

/// One judged query.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetrievalQuery {
    pub query: String,
    pub relevant: Vec<String>,
}

/// Reads a JSONL set; a bad line is an error naming it.
pub fn read_retrieval_set(path: &Path) -> Result<Vec<RetrievalQuery>, IndexError> {
    let text = std::fs::read_to_string(path).map_err(|e| IndexError::io(path, &e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let q: RetrievalQuery = serde_json::from_str(line)
                .map_err(|e| IndexError::Data(format!("{} line {}: {e}", path.display(), n + 1)))?;
            if q.relevant.is_empty() {
                return Err(IndexError::Data(format!(
                    "{} line {}: no relevant passages",
                    path.display(),
                    n + 1
                )));
            }
            Ok(q)
        })
        .collect()
}

pub fn recall_at(hits: &[Hit], relevant: &[String], k: usize) -> f64 {
    let found = hits
        .iter()
        .take(k)
        .filter(|h| relevant.contains(&h.key))
        .count();
    found as f64 / relevant.len().max(1) as f64
}

fn ndcg_at(hits: &[Hit], relevant: &[String], k: usize) -> f64 {
    let dcg: f64 = hits
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, h)| relevant.contains(&h.key))
        .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(k))
        .map(|i| 1.0 / ((i + 2) as f64).log2())
        .sum();
    if ideal > 0.0 { dcg / ideal } else { 0.0 }
}

fn reciprocal_rank(hits: &[Hit], relevant: &[String], k: usize) -> f64 {
    hits.iter()
        .take(k)
        .position(|h| relevant.contains(&h.key))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// Averages of one mode over a set.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RetrievalScores {
    pub ndcg_at_10: f64,
    pub recall_at_10: f64,
    pub mrr: f64,
}

/// The set's results per mode, plus the keys judged relevant that the index lacks (a stale
/// set or a missing document: either way worth knowing).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RetrievalReport {
    pub queries: usize,
    pub modes: BTreeMap<&'static str, RetrievalScores>,
    pub unknown_keys: Vec<String>,
}

/// Embeds every query once, then scores each mode.
pub fn evaluate_retrieval(
    g: &Generation,
    embedder: &dyn Embedder,
    set: &[RetrievalQuery],
    filter: &Filter,
) -> Result<RetrievalReport, IndexError> {
    let vectors = embed_batched(
        embedder,
        &set.iter().map(|q| q.query.clone()).collect::<Vec<_>>(),
    )?;
    let mut modes = BTreeMap::new();
    for mode in Mode::ALL {
        modes.insert(
            mode.as_str(),
            score_mode(g, set, &vectors, filter, mode, None)?,
        );
    }
    let known: std::collections::HashSet<&str> =
        g.passages.iter().map(|p| p.key.as_str()).collect();
    let mut unknown_keys: Vec<String> = set
        .iter()
        .flat_map(|q| &q.relevant)
        .filter(|k| !known.contains(k.as_str()))
        .cloned()
        .collect();
    unknown_keys.sort();
    unknown_keys.dedup();
    Ok(RetrievalReport {
        queries: set.len(),
        modes,
        unknown_keys,
    })
}

fn score_mode(
    g: &Generation,
    set: &[RetrievalQuery],
    vectors: &[Vec<f32>],
    filter: &Filter,
    mode: Mode,
    weights: Option<&FusionWeights>,
) -> Result<RetrievalScores, IndexError> {
    let (mut ndcg, mut recall, mut mrr) = (0.0, 0.0, 0.0);
    for (q, v) in set.iter().zip(vectors) {
        let hits = g.search_vector(&q.query, v, filter, CUTOFF, mode, weights)?;
        ndcg += ndcg_at(&hits, &q.relevant, CUTOFF);
        recall += recall_at(&hits, &q.relevant, CUTOFF);
        mrr += reciprocal_rank(&hits, &q.relevant, CUTOFF);
    }
    let n = set.len().max(1) as f64;
    Ok(RetrievalScores {
        ndcg_at_10: ndcg / n,
        recall_at_10: recall / n,
        mrr: mrr / n,
    })
}

/// Grid search of the BM25 weight per doc type (0.0, 0.1, …, 1.0) by hybrid nDCG@10, one
/// doc type at a time over the queries whose relevant passages are of that type.
pub fn tune_weights(
    g: &Generation,
    embedder: &dyn Embedder,
    set: &[RetrievalQuery],
) -> Result<TunedWeights, IndexError> {
    let vectors = embed_batched(
        embedder,
        &set.iter().map(|q| q.query.clone()).collect::<Vec<_>>(),
    )?;
    let mut best = g.manifest.weights;
    let filter = Filter::default();
    for doc_type in crate::documents::DocType::ALL {
        let (queries, qv): (Vec<RetrievalQuery>, Vec<Vec<f32>>) = set
            .iter()
            .zip(&vectors)
            .filter(|(q, _)| {
                q.relevant
                    .iter()
                    .any(|k| crate::documents::DocType::of_key(k) == Some(doc_type))
            })
            .map(|(q, v)| (q.clone(), v.clone()))
            .unzip();
        let mut top = (f64::MIN, best.of(doc_type));
        for step in 0..=10 {
            let w = step as f32 / 10.0;
            let mut trial = best;
            trial.set(doc_type, w);
            let s = score_mode(g, &queries, &qv, &filter, Mode::Hybrid, Some(&trial))?;
            if s.ndcg_at_10 > top.0 + 1e-9 {
                top = (s.ndcg_at_10, w);
            }
        }
        best.set(doc_type, top.1);
    }
    let hybrid = score_mode(g, set, &vectors, &filter, Mode::Hybrid, Some(&best))?;
    Ok(TunedWeights {
        weights: best,
        hybrid,
    })
}

/// Per-intent counts and rates.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IntentScores {
    pub support: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IntentReport {
    pub messages: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub out_of_scope_recall: Option<f64>,
    pub false_out_of_scope_rate: Option<f64>,
    pub per_intent: BTreeMap<String, IntentScores>,
    /// `(gold, predicted, count)`, most frequent first.
    pub confusions: Vec<(String, String, usize)>,
    /// Confidence against accuracy of the intents decided by vote, in tenths of confidence.
    pub reliability: Vec<ReliabilityBin>,
    /// Σ over bins of (messages in bin ÷ voted messages) × |accuracy − mean confidence|.
    pub expected_calibration_error: Option<f64>,
}

/// One row of a reliability table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReliabilityBin {
    pub from: f64,
    pub to: f64,
    pub messages: usize,
    pub mean_confidence: f64,
    pub accuracy: f64,
}

/// How the out-of-scope threshold trades recall against false out-of-scope decisions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ThresholdRow {
    pub threshold: f32,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub out_of_scope_recall: Option<f64>,
    pub false_out_of_scope_rate: Option<f64>,
}

/// Classifies every example (batched embedding) and scores the result.
pub fn evaluate_intents(
    g: &Generation,
    embedder: &dyn Embedder,
    set: &[Example],
) -> Result<IntentReport, IndexError> {
    let vectors = embed_examples(embedder, set)?;
    let predictions: Vec<Classification> = set
        .iter()
        .zip(&vectors)
        .map(|(e, v)| g.classifier().classify(&e.text, v))
        .collect();
    Ok(score_intents(set, &predictions))
}

fn embed_examples(embedder: &dyn Embedder, set: &[Example]) -> Result<Vec<Vec<f32>>, IndexError> {
    embed_batched(
        embedder,
        &set.iter().map(|e| e.text.clone()).collect::<Vec<_>>(),
    )
}

/// Scores the set at every out-of-scope threshold from 0.30 to 0.65 in steps of 0.025.
pub fn sweep_out_of_scope(
    g: &Generation,
    embedder: &dyn Embedder,
    set: &[Example],
) -> Result<Vec<ThresholdRow>, IndexError> {
    let vectors = embed_examples(embedder, set)?;
    Ok((0..=14)
        .map(|step| {
            let threshold = 0.30 + 0.025 * step as f32;
            let predictions: Vec<Classification> = set
                .iter()
                .zip(&vectors)
                .map(|(e, v)| g.classifier().classify_with(&e.text, v, threshold))
                .collect();
            let report = score_intents(set, &predictions);
            ThresholdRow {
                threshold,
                accuracy: report.accuracy,
                macro_f1: report.macro_f1,
                out_of_scope_recall: report.out_of_scope_recall,
                false_out_of_scope_rate: report.false_out_of_scope_rate,
            }
        })
        .collect())
}

/// Reliability table and expected calibration error of the vote decisions.
fn reliability(
    set: &[Example],
    predictions: &[Classification],
) -> (Vec<ReliabilityBin>, Option<f64>) {
    const BINS: usize = 10;
    let mut bins = vec![(0usize, 0.0_f64, 0usize); BINS];
    for (e, p) in set.iter().zip(predictions) {
        if p.decided_by != "knn" {
            continue;
        }
        let bin = ((p.confidence as f64 * BINS as f64) as usize).min(BINS - 1);
        bins[bin].0 += 1;
        bins[bin].1 += f64::from(p.confidence);
        bins[bin].2 += usize::from(e.intent == p.intent);
    }
    let voted: usize = bins.iter().map(|b| b.0).sum();
    let table: Vec<ReliabilityBin> = bins
        .into_iter()
        .enumerate()
        .filter(|(_, b)| b.0 > 0)
        .map(|(i, (n, confidence, right))| ReliabilityBin {
            from: i as f64 / BINS as f64,
            to: (i + 1) as f64 / BINS as f64,
            messages: n,
            mean_confidence: confidence / n as f64,
            accuracy: right as f64 / n as f64,
        })
        .collect();
    let error = (voted > 0).then(|| {
        table
            .iter()
            .map(|b| b.messages as f64 / voted as f64 * (b.accuracy - b.mean_confidence).abs())
            .sum()
    });
    (table, error)
}

pub fn score_intents(set: &[Example], predictions: &[Classification]) -> IntentReport {
    let pairs: Vec<(&str, &str)> = set
        .iter()
        .zip(predictions)
        .map(|(e, p)| (e.intent.as_str(), p.intent.as_str()))
        .collect();
    let correct = pairs.iter().filter(|(g, p)| g == p).count();
    let mut labels: Vec<&str> = pairs.iter().map(|(g, _)| *g).collect();
    labels.sort_unstable();
    labels.dedup();
    let mut per_intent = BTreeMap::new();
    for label in &labels {
        let tp = pairs
            .iter()
            .filter(|(g, p)| g == label && p == label)
            .count() as f64;
        let predicted = pairs.iter().filter(|(_, p)| p == label).count() as f64;
        let support = pairs.iter().filter(|(g, _)| g == label).count();
        let precision = if predicted > 0.0 { tp / predicted } else { 0.0 };
        let recall = tp / support as f64;
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        per_intent.insert(
            label.to_string(),
            IntentScores {
                support,
                precision,
                recall,
                f1,
            },
        );
    }
    let macro_f1 = per_intent.values().map(|s| s.f1).sum::<f64>() / per_intent.len().max(1) as f64;
    let oos = "out_of_scope";
    let out_of_scope_recall = per_intent.get(oos).map(|s| s.recall);
    let in_scope = pairs.iter().filter(|(g, _)| *g != oos).count();
    let false_out_of_scope_rate = (in_scope > 0).then(|| {
        pairs.iter().filter(|(g, p)| *g != oos && *p == oos).count() as f64 / in_scope as f64
    });
    let mut confusion: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (g, p) in pairs.iter().filter(|(g, p)| g != p) {
        *confusion.entry((g.to_string(), p.to_string())).or_default() += 1;
    }
    let mut confusions: Vec<(String, String, usize)> =
        confusion.into_iter().map(|((g, p), n)| (g, p, n)).collect();
    confusions.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    confusions.truncate(15);
    let (reliability, expected_calibration_error) = reliability(set, predictions);
    IntentReport {
        messages: set.len(),
        accuracy: correct as f64 / set.len().max(1) as f64,
        macro_f1,
        out_of_scope_recall,
        false_out_of_scope_rate,
        per_intent,
        confusions,
        reliability,
        expected_calibration_error,
    }
}

/// Which rows of an evaluation set to score, numbered from 1: tune on one half, report the
/// other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    All,
    Odd,
    Even,
}

impl Rows {
    /// The selected rows of `items`, in order.
    pub fn select<T>(self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| match self {
                Rows::All => true,
                Rows::Odd => i % 2 == 0,
                Rows::Even => i % 2 == 1,
            })
            .map(|(_, item)| item)
            .collect()
    }
}

/// The BM25 weights [`tune_weights`] found, and the hybrid scores of the whole set with them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TunedWeights {
    pub weights: FusionWeights,
    pub hybrid: RetrievalScores,
}

impl std::fmt::Display for TunedWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (w, s) = (&self.weights, &self.hybrid);
        write!(
            f,
            "tuned BM25 weights: product {:.1}, policy {:.1}, article {:.1} -> hybrid nDCG@10 {:.3}, Recall@10 {:.3}, MRR {:.3}",
            w.product, w.policy, w.article, s.ndcg_at_10, s.recall_at_10, s.mrr
        )
    }
}

/// The scores per mode as a table, then the judged keys the index lacks.
impl std::fmt::Display for RetrievalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} queries", self.queries)?;
        write!(
            f,
            "{:<8} {:>8} {:>10} {:>7}",
            "mode", "nDCG@10", "Recall@10", "MRR"
        )?;
        for (mode, s) in &self.modes {
            write!(
                f,
                "\n{mode:<8} {:>8.3} {:>10.3} {:>7.3}",
                s.ndcg_at_10, s.recall_at_10, s.mrr
            )?;
        }
        if !self.unknown_keys.is_empty() {
            write!(
                f,
                "\njudged keys missing from the index: {}",
                self.unknown_keys.join(", ")
            )?;
        }
        Ok(())
    }
}

/// The overall scores, a table per intent, the frequent confusions and the reliability table.
impl std::fmt::Display for IntentReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages: accuracy {:.3}, macro-F1 {:.3}",
            self.messages, self.accuracy, self.macro_f1
        )?;
        if let Some(r) = self.out_of_scope_recall {
            write!(f, "\nout_of_scope recall {r:.3}")?;
        }
        if let Some(r) = self.false_out_of_scope_rate {
            write!(f, "\nfalse out_of_scope rate {r:.3}")?;
        }
        write!(
            f,
            "\n{:<24} {:>7} {:>9} {:>7} {:>7}",
            "intent", "support", "precision", "recall", "f1"
        )?;
        for (intent, s) in &self.per_intent {
            write!(
                f,
                "\n{intent:<24} {:>7} {:>9.3} {:>7.3} {:>7.3}",
                s.support, s.precision, s.recall, s.f1
            )?;
        }
        if !self.confusions.is_empty() {
            write!(f, "\nmost frequent confusions (gold -> predicted):")?;
            for (gold, predicted, n) in &self.confusions {
                write!(f, "\n  {gold} -> {predicted}: {n}")?;
            }
        }
        if let Some(error) = self.expected_calibration_error {
            write!(
                f,
                "\nconfidence of intents decided by vote (expected calibration error {error:.3}):"
            )?;
            write!(
                f,
                "\n  {:<9} {:>8} {:>15} {:>9}",
                "bin", "messages", "mean confidence", "accuracy"
            )?;
            for bin in &self.reliability {
                write!(
                    f,
                    "\n  {:.1}-{:.1}   {:>8} {:>15.3} {:>9.3}",
                    bin.from, bin.to, bin.messages, bin.mean_confidence, bin.accuracy
                )?;
            }
        }
        Ok(())
    }
}

/// A [`sweep_out_of_scope`] table as `supportlake eval intents --sweep` prints it: the set's
/// size, then one row per threshold.
#[derive(Debug, Clone, Copy)]
pub struct SweepTable<'a> {
    pub messages: usize,
    pub rows: &'a [ThresholdRow],
}

impl std::fmt::Display for SweepTable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} messages", self.messages)?;
        write!(
            f,
            "{:>9} {:>9} {:>9} {:>11} {:>10}",
            "threshold", "accuracy", "macro-F1", "oos recall", "false oos"
        )?;
        let rate = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.3}"));
        for row in self.rows {
            write!(
                f,
                "\n{:>9.3} {:>9.3} {:>9.3} {:>11} {:>10}",
                row.threshold,
                row.accuracy,
                row.macro_f1,
                rate(row.out_of_scope_recall),
                rate(row.false_out_of_scope_rate)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(key: &str) -> Hit {
        Hit {
            key: key.into(),
            doc_type: "policy",
            title: String::new(),
            url: String::new(),
            snippet: String::new(),
            bm25: None,
            vector: 0.0,
            bm25_normalised: 0.0,
            vector_normalised: 0.0,
            fused: 0.0,
        }
    }

    #[test]
    fn ranking_metrics_follow_their_definitions() {
        let hits = [hit("a"), hit("x"), hit("b")];
        let relevant = vec!["a".to_string(), "b".to_string()];
        assert_eq!(recall_at(&hits, &relevant, 10), 1.0);
        assert_eq!(recall_at(&hits, &relevant, 1), 0.5);
        assert_eq!(reciprocal_rank(&hits[1..], &relevant, 10), 0.5);
        let ideal = 1.0 + 1.0 / 3f64.log2();
        let dcg = 1.0 + 1.0 / 4f64.log2();
        assert!((ndcg_at(&hits, &relevant, 10) - dcg / ideal).abs() < 1e-12);
        assert_eq!(ndcg_at(&[hit("z")], &relevant, 10), 0.0);
    }

    #[test]
    fn intent_scores_count_out_of_scope_apart() {
        let example = |t: &str, i: &str| Example {
            text: t.into(),
            intent: i.into(),
        };
        let predicted = |i: &str| Classification {
            intent: i.into(),
            confidence: 1.0,
            nearest_similarity: 1.0,
            decided_by: "knn",
        };
        let set = [
            example("a", "order_status"),
            example("b", "order_status"),
            example("c", "out_of_scope"),
            example("d", "refund_policy"),
        ];
        let got = [
            predicted("order_status"),
            predicted("out_of_scope"),
            predicted("out_of_scope"),
            predicted("order_status"),
        ];
        let r = score_intents(&set, &got);
        assert_eq!(r.accuracy, 0.5);
        assert_eq!(r.out_of_scope_recall, Some(1.0));
        assert_eq!(r.false_out_of_scope_rate, Some(1.0 / 3.0));
        assert_eq!(r.per_intent["order_status"].precision, 0.5);
        assert_eq!(r.per_intent["order_status"].recall, 0.5);
        assert_eq!(r.confusions.len(), 2);
        // All four voted with confidence 1.0 and half were right: one bin, ECE 0.5.
        assert_eq!(r.reliability.len(), 1);
        assert_eq!(r.reliability[0].messages, 4);
        assert_eq!(r.reliability[0].accuracy, 0.5);
        assert_eq!(r.expected_calibration_error, Some(0.5));
    }

    #[test]
    fn rows_split_a_set_into_halves_numbered_from_one() {
        let set = vec![1, 2, 3, 4, 5];
        assert_eq!(Rows::All.select(set.clone()), set);
        assert_eq!(Rows::Odd.select(set.clone()), [1, 3, 5]);
        assert_eq!(Rows::Even.select(set), [2, 4]);
    }
}
