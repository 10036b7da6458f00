//! The intent classifier: nearest labelled examples in the passages' embedding space.
//!
//! Examples are `text,intent` CSV files in the intents directory (`data/intents/`: the
//! Bitext sample mapped to our ids, plus the project's own examples for the intents Bitext
//! lacks; content owners add lines and rebuild). A message is embedded once — the same
//! vector retrieval uses — and compared with every example:
//!
//! * the `K` most similar examples vote, each with its similarity; the intent with the
//!   largest vote wins. Its raw score is its share of the vote, scaled down when even the
//!   nearest example is not close (a lone weak neighbour is not certainty); the *confidence*
//!   is that score calibrated ([`Calibration`]) into the chance the intent is right;
//! * when the nearest example is less similar than [`OUT_OF_SCOPE_BELOW`], the message is
//!   `out_of_scope`: nothing we were taught looks like it;
//! * one rule beats the model: an explicit request for a person is `talk_to_human` whatever
//!   else the message says ("tracking is wrong, let me talk to a human").
//!
//! Entities are pulled with patterns: order numbers, emails, sizes, and products named by
//! their title.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use crate::IndexError;
use crate::vectors::VectorMatrix;

/// Neighbours that vote.
const K: usize = 7;
/// Below this similarity to the nearest example a message is out of scope. Chosen by
/// sweeping 0.30–0.65 on the odd rows of the mixed evaluation set (`eval intents --sweep
/// --rows odd`): 0.45 gave the best accuracy and macro-F1 there (out-of-scope recall 0.91 at
/// 1.3% false out-of-scope); the even rows confirm it (BENCHMARKS.md).
pub const OUT_OF_SCOPE_BELOW: f32 = 0.45;
/// Nearest-example similarity from which a winning vote share is taken at face value.
const SURE_FROM: f32 = 0.75;

/// One labelled example.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Example {
    pub text: String,
    pub intent: String,
}

/// Reads `text,intent` rows from a CSV file (other columns are ignored); an unknown intent
/// is an error naming the line, so a content owner's typo cannot create a new intent.
pub fn read_examples(path: &Path) -> Result<Vec<Example>, IndexError> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| IndexError::Data(format!("{}: {e}", path.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| IndexError::Data(format!("{}: {e}", path.display())))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| IndexError::Data(format!("{}: no `{name}` column", path.display())))
    };
    let (text_at, intent_at) = (column("text")?, column("intent")?);
    let mut examples = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| IndexError::Data(format!("{}: {e}", path.display())))?;
        let (text, intent) = (
            record.get(text_at).unwrap_or("").trim(),
            record.get(intent_at).unwrap_or("").trim(),
        );
        if pipeline::intents::get(intent).is_none() {
            return Err(IndexError::Data(format!(
                "{} line {}: unknown intent {intent:?} (one of: {})",
                path.display(),
                n + 2,
                pipeline::intents::id_list()
            )));
        }
        if !text.is_empty() {
            examples.push(Example {
                text: text.to_string(),
                intent: intent.to_string(),
            });
        }
    }
    Ok(examples)
}

/// Every example in the `*.csv` files of `dir`, in file-name order.
pub fn read_example_dir(dir: &Path) -> Result<Vec<Example>, IndexError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| IndexError::io(dir, &e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    let mut examples = Vec::new();
    for file in files {
        examples.extend(read_examples(&file)?);
    }
    Ok(examples)
}

/// What the classifier decided, with its evidence.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Classification {
    pub intent: String,
    /// 0..1: for a vote, the calibrated chance that the intent is right; for
    /// out_of_scope, how far below the threshold the nearest example is.
    pub confidence: f32,
    /// Similarity of the nearest example.
    pub nearest_similarity: f32,
    /// `rule:talk_to_human`, `knn` or `out_of_scope_threshold`.
    pub decided_by: &'static str,
}

/// Maps a raw confidence (vote share tempered by closeness) to the probability that the
/// intent is right: isotonic regression (pool adjacent violators) over leave-one-out
/// classifications of the examples themselves, so it is refitted whenever content owners add
/// examples and needs no labelled data beyond them. `points` are `(raw upper bound,
/// probability)` steps, raw ascending; empty means uncalibrated (raw is returned).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    pub points: Vec<(f32, f32)>,
}

/// Examples held out one at a time to fit the calibration: enough for stable steps, few
/// enough that a build spends well under a second on it.
const CALIBRATION_SAMPLE: usize = 1500;
/// Fewest leave-one-out outcomes per calibration step.
const CALIBRATION_MIN_BIN: usize = 25;

impl Calibration {
    /// The calibrated probability of `raw`.
    pub fn apply(&self, raw: f32) -> f32 {
        if self.points.is_empty() {
            return raw;
        }
        self.points
            .iter()
            .find(|(upper, _)| raw <= *upper)
            .or(self.points.last())
            .map_or(raw, |(_, p)| *p)
    }

    /// Fits the steps to `(raw confidence, was right)` outcomes.
    pub fn fit(mut outcomes: Vec<(f32, bool)>) -> Self {
        outcomes.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Blocks of (upper raw, right, total), merged while a block's rate exceeds the next
        // one's (pool adjacent violators), starting from bins of CALIBRATION_MIN_BIN.
        let mut blocks: Vec<(f32, f64, f64)> = Vec::new();
        for chunk in outcomes.chunks(CALIBRATION_MIN_BIN) {
            let right = chunk.iter().filter(|(_, ok)| *ok).count() as f64;
            blocks.push((chunk[chunk.len() - 1].0, right, chunk.len() as f64));
            while blocks.len() > 1 {
                let (_, r1, n1) = blocks[blocks.len() - 1];
                let (_, r0, n0) = blocks[blocks.len() - 2];
                if r0 / n0 < r1 / n1 {
                    break;
                }
                let (upper, ..) = blocks.pop().expect("two blocks");
                let last = blocks.last_mut().expect("one block");
                *last = (upper, r0 + r1, n0 + n1);
            }
        }
        Self {
            points: blocks
                .into_iter()
                .map(|(upper, right, total)| (upper, (right / total) as f32))
                .collect(),
        }
    }
}

/// Labelled example vectors.
#[derive(Debug, Clone)]
pub struct IntentClassifier {
    labels: Vec<String>,
    vectors: VectorMatrix,
    calibration: Calibration,
}

static HUMAN_REQUEST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(talk|speak|chat|connect|put) (me )?(to|with|through to) (a |an |the |some )?(real |live |actual )?(human|person|agent|representative|rep|someone|somebody|operator)\b|\b(real|live|actual) (human|person|agent)\b|\bhuman,? please\b|\bagent,? please\b",
    )
    .expect("valid regex")
});

impl IntentClassifier {
    pub fn new(labels: Vec<String>, vectors: VectorMatrix, calibration: Calibration) -> Self {
        assert_eq!(labels.len(), vectors.rows(), "one label per example vector");
        Self {
            labels,
            vectors,
            calibration,
        }
    }

    pub fn examples(&self) -> usize {
        self.labels.len()
    }

    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Classifies a message given its embedding.
    pub fn classify(&self, text: &str, vector: &[f32]) -> Classification {
        self.classify_with(text, vector, OUT_OF_SCOPE_BELOW)
    }

    /// [`Self::classify`] with another out-of-scope threshold (evaluation sweeps it).
    pub fn classify_with(
        &self,
        text: &str,
        vector: &[f32],
        out_of_scope_below: f32,
    ) -> Classification {
        let neighbours = self.neighbours(&self.vectors.scores(vector), None);
        let nearest_similarity = neighbours.first().map_or(0.0, |n| n.1);
        if HUMAN_REQUEST.is_match(text) {
            return Classification {
                intent: "talk_to_human".into(),
                confidence: 1.0,
                nearest_similarity,
                decided_by: "rule:talk_to_human",
            };
        }
        if nearest_similarity < out_of_scope_below {
            return Classification {
                intent: "out_of_scope".into(),
                confidence: 1.0 - nearest_similarity / out_of_scope_below.max(f32::EPSILON),
                nearest_similarity,
                decided_by: "out_of_scope_threshold",
            };
        }
        let (intent, raw) = self.vote(&neighbours, out_of_scope_below);
        Classification {
            intent: intent.to_string(),
            confidence: self.calibration.apply(raw),
            nearest_similarity,
            decided_by: "knn",
        }
    }

    /// The `K` most similar examples as `(example, similarity)`, most similar first,
    /// leaving out `exclude`.
    fn neighbours(&self, scores: &[f32], exclude: Option<usize>) -> Vec<(usize, f32)> {
        let mut all: Vec<(usize, f32)> = scores
            .iter()
            .copied()
            .enumerate()
            .filter(|(i, _)| Some(*i) != exclude)
            .collect();
        let best_first = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1);
        if all.len() > K {
            all.select_nth_unstable_by(K, best_first);
            all.truncate(K);
        }
        all.sort_by(best_first);
        all
    }

    /// The winning intent of the neighbours' similarity-weighted vote and its raw
    /// confidence: its share of the vote, scaled down when even the nearest example is not
    /// close (a lone weak neighbour is not certainty).
    fn vote(&self, neighbours: &[(usize, f32)], out_of_scope_below: f32) -> (&str, f32) {
        let mut votes: BTreeMap<&str, f32> = BTreeMap::new();
        for &(i, similarity) in neighbours {
            *votes.entry(self.labels[i].as_str()).or_default() += similarity.max(0.0);
        }
        let total: f32 = votes.values().sum();
        let (intent, vote) = votes
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or(("out_of_scope", 0.0));
        let nearest = neighbours.first().map_or(0.0, |n| n.1);
        let closeness =
            ((nearest - out_of_scope_below) / (SURE_FROM - out_of_scope_below)).clamp(0.0, 1.0);
        let share = if total > 0.0 { vote / total } else { 0.0 };
        (intent, share * (0.5 + 0.5 * closeness))
    }

    /// Fits the confidence calibration by classifying a spread sample of the examples, each
    /// against all the others.
    pub fn fit_calibration(&self) -> Calibration {
        let stride = self.labels.len().div_ceil(CALIBRATION_SAMPLE).max(1);
        let outcomes = (0..self.labels.len())
            .step_by(stride)
            .filter_map(|i| {
                let scores = self.vectors.scores(self.vectors.row(i));
                let neighbours = self.neighbours(&scores, Some(i));
                // Only what the classifier would decide by vote: not out of scope.
                if neighbours.first().is_none_or(|n| n.1 < OUT_OF_SCOPE_BELOW) {
                    return None;
                }
                let (intent, raw) = self.vote(&neighbours, OUT_OF_SCOPE_BELOW);
                Some((raw, intent == self.labels[i]))
            })
            .collect();
        Calibration::fit(outcomes)
    }
}

/// What a message names that answering needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Entities {
    /// Order numbers as typed, without `#` (`1042`).
    pub order_numbers: Vec<String>,
    pub emails: Vec<String>,
    /// Sizes: letter sizes (`XS`…`XXXL`) and numbers after "size".
    pub sizes: Vec<String>,
    /// Handles of the products whose title the message names.
    pub products: Vec<String>,
}

static ORDER_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:#|\border\s*(?:number|no\.?|num)?\s*#?\s*)(\d{3,12})\b")
        .expect("valid regex")
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}").expect("valid regex")
});
static LETTER_SIZE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(XXXL|XXL|XL|XS|XXS|S|M|L|2XL|3XL)\b").expect("valid regex"));
static NUMBER_SIZE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bsize\s+(\d{1,2}(?:\.5)?|xxs|xs|s|m|l|xl|xxl|xxxl)\b").expect("valid regex")
});

/// Pulls entities from `text`; `products` is `(handle, title)` of the store's products.
pub fn entities(text: &str, products: &[(String, String)]) -> Entities {
    let mut found = Entities::default();
    let push = |list: &mut Vec<String>, value: String| {
        if !list.contains(&value) {
            list.push(value);
        }
    };
    for c in ORDER_NUMBER.captures_iter(text) {
        push(&mut found.order_numbers, c[1].to_string());
    }
    for m in EMAIL.find_iter(text) {
        push(&mut found.emails, m.as_str().to_lowercase());
    }
    // Capital letter sizes only: "a M" is a size, "i am" is not.
    for m in LETTER_SIZE.find_iter(text) {
        push(&mut found.sizes, m.as_str().to_string());
    }
    for c in NUMBER_SIZE.captures_iter(text) {
        push(&mut found.sizes, c[1].to_uppercase());
    }
    let lower = text.to_lowercase();
    for (handle, title) in products {
        let title = title.to_lowercase();
        // "Men's Cedar 2.5L Rain Jacket" is named by "cedar rain jacket": every word of the
        // title but the gendered prefix.
        let words: Vec<&str> = title
            .split(|c: char| !c.is_alphanumeric() && c != '.')
            .filter(|w| {
                !w.is_empty()
                    && !matches!(
                        *w,
                        "men" | "mens" | "women" | "womens" | "s" | "kids" | "unisex"
                    )
            })
            .collect();
        if !words.is_empty() && (lower.contains(&title) || words.iter().all(|w| lower.contains(w)))
        {
            push(&mut found.products, handle.clone());
        }
    }
    found
}

/// The decision and its evidence on one line, as `supportlake classify` prints it.
impl std::fmt::Display for Classification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (confidence {:.2}, nearest example {:.2}, by {})",
            self.intent, self.confidence, self.nearest_similarity, self.decided_by
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier() -> IntentClassifier {
        let rows = vec![vec![1.0, 0.0], vec![0.96, 0.28], vec![0.0, 1.0]];
        IntentClassifier::new(
            vec![
                "order_status".into(),
                "order_status".into(),
                "refund_policy".into(),
            ],
            VectorMatrix::new(2, &rows),
            Calibration::default(),
        )
    }

    #[test]
    fn nearest_examples_vote_and_far_messages_are_out_of_scope() {
        let c = classifier();
        let near = c.classify("where is my parcel", &[1.0, 0.0]);
        assert_eq!(near.intent, "order_status");
        assert_eq!(near.decided_by, "knn");
        assert!(near.confidence > 0.5 && near.confidence <= 1.0, "{near:?}");
        let far = c.classify("tell me a joke", &[-0.6, -0.8]);
        assert_eq!(far.intent, "out_of_scope");
        let human = c.classify("where is it? let me talk to a real person", &[1.0, 0.0]);
        assert_eq!(human.intent, "talk_to_human");
        assert_eq!(human.decided_by, "rule:talk_to_human");
    }

    #[test]
    fn calibration_is_monotone_and_matches_observed_rates() {
        // Raw 0.1..0.5 right 40% of the time, 0.5..0.9 right 90%; with one inversion.
        let mut outcomes = Vec::new();
        for i in 0..100 {
            outcomes.push((0.1 + 0.004 * i as f32, i % 5 < 2));
            outcomes.push((0.5 + 0.004 * i as f32, i % 10 != 0));
        }
        let c = Calibration::fit(outcomes);
        let low = c.apply(0.2);
        let high = c.apply(0.8);
        assert!((low - 0.4).abs() < 0.1, "{c:?}");
        assert!((high - 0.9).abs() < 0.06, "{c:?}");
        let probabilities: Vec<f32> = c.points.iter().map(|p| p.1).collect();
        assert!(probabilities.windows(2).all(|w| w[0] <= w[1]), "{c:?}");
        // Uncalibrated passes raw through.
        assert_eq!(Calibration::default().apply(0.3), 0.3);
    }

    #[test]
    fn entities_are_pulled_from_text() {
        let products = vec![(
            "mens-cedar-rain-jacket".to_string(),
            "Men's Cedar Rain Jacket".to_string(),
        )];
        let e = entities(
            "Order #1042 for jo@example.com: the cedar rain jacket in size 10 or XL?",
            &products,
        );
        assert_eq!(e.order_numbers, ["1042"]);
        assert_eq!(e.emails, ["jo@example.com"]);
        assert_eq!(e.sizes, ["XL", "10"]);
        assert_eq!(e.products, ["mens-cedar-rain-jacket"]);
        let none = entities("i am looking for a jacket", &products);
        assert!(
            none.sizes.is_empty() && none.products.is_empty(),
            "{none:?}"
        );
    }
}
