//! Knowledge gaps: the questions the store's knowledge failed, grouped into clusters of
//! similar questions, each with the passage that comes closest to answering it.
//!
//! The SQL stage (`pipeline/reports/knowledge-gaps.sql`) gives one row per question, intent
//! and conversation. Here the distinct questions are embedded with the search model and
//! grouped by *leader clustering*: most-asked questions first, each joins the cluster whose
//! centroid it is most similar to when that similarity reaches the threshold, else it starts
//! a cluster; a second pass reassigns every question to its most similar final centroid, so
//! the result does not depend on which paraphrase happened to come first. The cost is
//! questions × clusters dot products, no n² matrix, which keeps a season of history cheap.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use pipeline::sql::{booleans, integers, strings};

use crate::documents::Passage;
use crate::{Embedder, IndexError, cosine};

/// Example questions shown per cluster.
const EXAMPLES: usize = 3;
/// Named products and retrieved documents listed per cluster.
const MENTIONS: usize = 4;

/// What makes two questions the same question: case, spacing and the numbers in them
/// ("order #1042" and "order #3521") do not matter. Embedding one text per key instead of
/// per spelling cut the scale-100 run's model work by most of it (BENCHMARKS.md).
fn question_key(text: &str) -> String {
    let mut key = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !key.is_empty() {
            key.push(' ');
        }
        let mut in_number = false;
        for c in word.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_digit() {
                if !in_number {
                    key.push('#');
                }
                in_number = true;
            } else {
                key.push(c);
                in_number = false;
            }
        }
    }
    key
}

/// Everything known about one question (all its spellings, see [`question_key`]).
#[derive(Debug, Default)]
struct Question {
    key: String,
    /// The most asked spelling, shown to people.
    text: String,
    spellings: BTreeMap<String, i64>,
    turns: i64,
    conversations: BTreeSet<String>,
    escalated: BTreeSet<String>,
    rated: BTreeSet<String>,
    dissatisfied: BTreeSet<String>,
    intents: BTreeMap<String, i64>,
    topics: BTreeMap<String, i64>,
}

/// Reads the SQL stage's rows into distinct questions, most asked first.
fn questions(stage: &[RecordBatch]) -> Result<Vec<Question>, IndexError> {
    let texts = strings(stage, "question")?;
    let intents = strings(stage, "intent")?;
    let conversations = strings(stage, "conversation_id")?;
    let turns = integers(stage, "unanswered_turns")?;
    let handed_off = booleans(stage, "handed_off")?;
    let csat = integers(stage, "csat_score")?;
    let topics = strings(stage, "topic")?;
    let mut by_key: HashMap<String, Question> = HashMap::new();
    for i in 0..texts.len() {
        let (Some(text), Some(conversation)) = (&texts[i], &conversations[i]) else {
            continue;
        };
        let key = question_key(text);
        let q = by_key.entry(key.clone()).or_insert_with(|| Question {
            key,
            ..Question::default()
        });
        let n = turns[i].unwrap_or(1);
        q.turns += n;
        *q.spellings.entry(text.clone()).or_default() += n;
        q.conversations.insert(conversation.clone());
        if handed_off[i] == Some(true) {
            q.escalated.insert(conversation.clone());
        }
        if let Some(score) = csat[i] {
            q.rated.insert(conversation.clone());
            if score <= 3 {
                q.dissatisfied.insert(conversation.clone());
            }
        }
        *q.intents
            .entry(intents[i].clone().unwrap_or_else(|| "unclassified".into()))
            .or_default() += n;
        if let Some(topic) = &topics[i] {
            *q.topics.entry(topic.clone()).or_default() += n;
        }
    }
    let mut all: Vec<Question> = by_key
        .into_values()
        .map(|mut q| {
            q.text = ranked_names(&q.spellings, 1).remove(0);
            q
        })
        .collect();
    all.sort_by(|a, b| b.turns.cmp(&a.turns).then_with(|| a.text.cmp(&b.text)));
    Ok(all)
}

fn normalised(sum: &[f32]) -> Vec<f32> {
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        sum.to_vec()
    } else {
        sum.iter().map(|x| x / norm).collect()
    }
}

/// Index of the most similar vector and its similarity.
fn nearest<'a>(to: &[f32], candidates: impl Iterator<Item = &'a [f32]>) -> Option<(usize, f32)> {
    candidates
        .map(|c| cosine(to, c))
        .enumerate()
        .fold(None, |best, (i, s)| match best {
            Some((_, b)) if b >= s => best,
            _ => Some((i, s)),
        })
}

/// Groups vectors (already ordered by importance) into clusters; returns each vector's cluster.
pub fn leader_clusters(vectors: &[Vec<f32>], threshold: f32) -> Vec<usize> {
    let mut sums: Vec<Vec<f32>> = Vec::new();
    let mut centroids: Vec<Vec<f32>> = Vec::new();
    for v in vectors {
        match nearest(v, centroids.iter().map(Vec::as_slice)) {
            Some((c, similarity)) if similarity >= threshold => {
                for (s, x) in sums[c].iter_mut().zip(v) {
                    *s += x;
                }
                centroids[c] = normalised(&sums[c]);
            }
            _ => {
                sums.push(v.clone());
                centroids.push(v.clone());
            }
        }
    }
    // Reassign against the final centroids, then renumber clusters that are still used in
    // order of first appearance, so numbering follows importance.
    let assigned: Vec<usize> = vectors
        .iter()
        .map(|v| nearest(v, centroids.iter().map(Vec::as_slice)).map_or(0, |(c, _)| c))
        .collect();
    let mut renumber: HashMap<usize, usize> = HashMap::new();
    assigned
        .iter()
        .map(|c| {
            let next = renumber.len();
            *renumber.entry(*c).or_insert(next)
        })
        .collect()
}

/// One row of the report.
#[derive(Debug)]
struct Gap {
    cluster: String,
    turns: i64,
    conversations: i64,
    distinct_questions: i64,
    intents: String,
    escalation_share: f64,
    dissatisfied_share: f64,
    impact: f64,
    examples: String,
    closest_doc: Option<String>,
    closest_title: Option<String>,
    closest_url: Option<String>,
    similarity: Option<f64>,
    mentions: String,
}

fn ranked_names(counts: &BTreeMap<String, i64>, limit: usize) -> Vec<String> {
    let mut pairs: Vec<(&String, &i64)> = counts.iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    pairs
        .into_iter()
        .take(limit)
        .map(|(k, _)| k.clone())
        .collect()
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The knowledge-gaps table from the SQL stage's rows.
///
/// `passages` are the candidates for "closest existing article or policy", `products` the
/// (handle, title) pairs whose titles are looked for in the questions.
pub fn knowledge_gaps(
    stage: &[RecordBatch],
    passages: &[Passage],
    products: &[(String, String)],
    embedder: &dyn Embedder,
    threshold: f32,
) -> Result<RecordBatch, IndexError> {
    let started = std::time::Instant::now();
    let questions = questions(stage)?;
    let texts: Vec<String> = questions.iter().map(|q| q.key.clone()).collect();
    let vectors = crate::embed_batched(embedder, &texts)?;
    let embedded_questions = started.elapsed();
    let clusters = leader_clusters(&vectors, threshold);
    let passage_texts: Vec<String> = passages.iter().map(Passage::embedding_text).collect();
    let passage_vectors = crate::embed_batched(embedder, &passage_texts)?;
    tracing::info!(
        questions = texts.len(),
        passages = passage_texts.len(),
        questions_seconds = embedded_questions.as_secs_f64(),
        total_seconds = started.elapsed().as_secs_f64(),
        "knowledge gaps embedded"
    );
    let lower_products: Vec<(String, String)> = products
        .iter()
        .map(|(handle, title)| (handle.clone(), title.to_lowercase()))
        .collect();

    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (q, c) in clusters.iter().enumerate() {
        members.entry(*c).or_default().push(q);
    }
    let mut gaps = Vec::new();
    for indices in members.values() {
        let dimension = vectors[indices[0]].len();
        let mut sum = vec![0.0_f32; dimension];
        for &q in indices {
            for (s, x) in sum.iter_mut().zip(&vectors[q]) {
                *s += x;
            }
        }
        let centroid = normalised(&sum);
        // The label is the most asked question (indices are in that order); among equally
        // asked ones, the one closest to the centroid.
        let representative = indices
            .iter()
            .copied()
            .filter(|&q| questions[q].turns == questions[indices[0]].turns)
            .max_by(|&a, &b| {
                cosine(&centroid, &vectors[a])
                    .total_cmp(&cosine(&centroid, &vectors[b]))
                    .then_with(|| b.cmp(&a))
            })
            .expect("clusters are not empty");
        let mut conversations = BTreeSet::new();
        let (mut escalated, mut rated, mut dissatisfied) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        let mut intents: BTreeMap<String, i64> = BTreeMap::new();
        let mut topics: BTreeMap<String, i64> = BTreeMap::new();
        let mut named: BTreeMap<String, i64> = BTreeMap::new();
        let mut turns = 0;
        for &q in indices {
            let question = &questions[q];
            turns += question.turns;
            conversations.extend(question.conversations.iter().cloned());
            escalated.extend(question.escalated.iter().cloned());
            rated.extend(question.rated.iter().cloned());
            dissatisfied.extend(question.dissatisfied.iter().cloned());
            for (intent, n) in &question.intents {
                *intents.entry(intent.clone()).or_default() += n;
            }
            for (topic, n) in &question.topics {
                *topics.entry(topic.clone()).or_default() += n;
            }
            let lower = question.text.to_lowercase();
            for (handle, title) in &lower_products {
                if lower.contains(title.as_str()) {
                    *named.entry(format!("product:{handle}")).or_default() += question.turns;
                }
            }
        }
        let escalation_share = escalated.len() as f64 / conversations.len().max(1) as f64;
        let dissatisfied_share = if rated.is_empty() {
            0.0
        } else {
            dissatisfied.len() as f64 / rated.len() as f64
        };
        let examples: Vec<&str> = indices
            .iter()
            .take(EXAMPLES)
            .map(|&q| questions[q].text.as_str())
            .collect();
        let mut mentions = ranked_names(&named, MENTIONS);
        for topic in ranked_names(&topics, MENTIONS) {
            if mentions.len() < MENTIONS && !mentions.contains(&topic) {
                mentions.push(topic);
            }
        }
        let closest = nearest(&centroid, passage_vectors.iter().map(Vec::as_slice))
            .map(|(p, similarity)| (&passages[p], similarity));
        gaps.push(Gap {
            cluster: questions[representative].text.clone(),
            turns,
            conversations: conversations.len() as i64,
            distinct_questions: indices.len() as i64,
            intents: ranked_names(&intents, usize::MAX).join(", "),
            escalation_share: round4(escalation_share),
            dissatisfied_share: round4(dissatisfied_share),
            impact: round4(turns as f64 * (1.0 + escalation_share + dissatisfied_share)),
            examples: examples.join(" | "),
            closest_doc: closest.map(|(p, _)| p.key.clone()),
            closest_title: closest.map(|(p, _)| p.title.clone()),
            closest_url: closest.map(|(p, _)| p.url.clone()),
            similarity: closest.map(|(_, s)| round4(f64::from(s))),
            mentions: mentions.join(", "),
        });
    }
    gaps.sort_by(|a, b| {
        b.impact
            .total_cmp(&a.impact)
            .then_with(|| b.turns.cmp(&a.turns))
            .then_with(|| a.cluster.cmp(&b.cluster))
    });
    table(&gaps)
}

fn table(gaps: &[Gap]) -> Result<RecordBatch, IndexError> {
    let text = |f: fn(&Gap) -> String| -> ArrayRef {
        Arc::new(gaps.iter().map(|g| Some(f(g))).collect::<StringArray>())
    };
    let optional = |f: fn(&Gap) -> Option<String>| -> ArrayRef {
        Arc::new(gaps.iter().map(f).collect::<StringArray>())
    };
    let int =
        |f: fn(&Gap) -> i64| -> ArrayRef { Arc::new(gaps.iter().map(f).collect::<Int64Array>()) };
    let float =
        |f: fn(&Gap) -> f64| -> ArrayRef { Arc::new(gaps.iter().map(f).collect::<Float64Array>()) };
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "rank",
            Arc::new((1..=gaps.len() as i64).collect::<Int64Array>()),
        ),
        ("cluster", text(|g| g.cluster.clone())),
        ("unanswered_turns", int(|g| g.turns)),
        ("conversations", int(|g| g.conversations)),
        ("distinct_questions", int(|g| g.distinct_questions)),
        ("intents", text(|g| g.intents.clone())),
        ("escalation_share", float(|g| g.escalation_share)),
        ("dissatisfied_share", float(|g| g.dissatisfied_share)),
        ("impact", float(|g| g.impact)),
        ("example_questions", text(|g| g.examples.clone())),
        ("closest_doc", optional(|g| g.closest_doc.clone())),
        ("closest_title", optional(|g| g.closest_title.clone())),
        ("closest_url", optional(|g| g.closest_url.clone())),
        (
            "similarity",
            Arc::new(gaps.iter().map(|g| g.similarity).collect::<Float64Array>()),
        ),
        ("mentions", text(|g| g.mentions.clone())),
    ];
    Ok(RecordBatch::try_from_iter(columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        normalised(v)
    }

    #[test]
    fn similar_vectors_share_a_cluster_and_numbering_follows_order() {
        let vectors = vec![
            unit(&[1.0, 0.0, 0.0]),
            unit(&[0.0, 1.0, 0.0]),
            unit(&[0.95, 0.05, 0.0]),
            unit(&[0.0, 0.9, 0.1]),
            unit(&[0.0, 0.0, 1.0]),
        ];
        assert_eq!(leader_clusters(&vectors, 0.8), [0, 1, 0, 1, 2]);
        // A threshold no pair reaches keeps every vector alone.
        assert_eq!(leader_clusters(&vectors, 0.9999), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn spellings_of_one_question_share_a_key() {
        assert_eq!(
            question_key("Check  status of Order #1042"),
            "check status of order ##"
        );
        assert_eq!(
            question_key("check status of order #3521"),
            question_key("CHECK status of order #9")
        );
        assert_ne!(
            question_key("do you ship to Canada"),
            question_key("do you ship to Canada?")
        );
    }

    #[test]
    fn nearest_prefers_the_first_of_equals() {
        let a = unit(&[1.0, 0.0]);
        let candidates = [unit(&[0.0, 1.0]), a.clone(), a.clone()];
        assert_eq!(
            nearest(&a, candidates.iter().map(Vec::as_slice)).map(|x| x.0),
            Some(1)
        );
        assert_eq!(nearest(&a, std::iter::empty()), None);
    }
}
