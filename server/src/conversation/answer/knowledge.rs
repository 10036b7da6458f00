//! Knowledge intents: an answer from the best policy or article passage, quoting the
//! sentences closest to the question, or "I don't know" when nothing relevant was
//! retrieved.

use std::sync::LazyLock;

use index::search::Hit;
use regex::Regex;

use super::wording::words;
use super::{Answer, Context, Kind, RELEVANCE_FLOOR, Source, Understanding};

/// An answer from the best policy or article passage, or "I don't know" when none is
/// relevant enough.
pub(super) fn knowledge_answer(
    ctx: &Context<'_>,
    message: &str,
    understood: &Understanding,
    facts: &[String],
) -> Answer {
    let relevant: Vec<&Hit> = understood
        .hits
        .iter()
        .filter(|h| h.vector >= RELEVANCE_FLOOR)
        .take(2)
        .collect();
    let Some(best) = relevant.first() else {
        return Answer::abstain(
            "no_relevant_passage",
            "I couldn't find anything in our store's information that answers this, and I don't want to guess. Would you like me to connect you with a person?",
        );
    };
    let mut text = facts.join(" ");
    if !text.is_empty() {
        text.push(' ');
    }
    let whole = (ctx.passage)(&best.key).map_or_else(|| best.snippet.clone(), |c| c.text);
    text.push_str(&best_sentences(&whole, message, 2));
    let mut answer = Answer::new(Kind::Knowledge, text);
    answer.sources = relevant.into_iter().map(Source::of).collect();
    answer
}

static SENTENCE_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[.!?](\s+|$)").expect("valid regex"));

/// The `count` sentences of `text` sharing most words with `question`, in their order.
pub(super) fn best_sentences(text: &str, question: &str, count: usize) -> String {
    let mut sentences = Vec::new();
    let mut start = 0;
    for m in SENTENCE_END.find_iter(text) {
        sentences.push(text[start..m.end()].trim());
        start = m.end();
    }
    if start < text.len() {
        sentences.push(text[start..].trim());
    }
    sentences.retain(|s| !s.is_empty());
    let asked = words(question);
    let mut scored: Vec<(usize, usize)> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| (words(s).intersection(&asked).count(), i))
        .collect();
    // Most shared words first; ties go to the earlier sentence.
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut chosen: Vec<usize> = scored.iter().take(count).map(|&(_, i)| i).collect();
    chosen.sort_unstable();
    chosen
        .into_iter()
        .map(|i| sentences[i])
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentences_sharing_the_question_words_are_chosen_in_order() {
        let text = "We ship to the US and Canada. Standard shipping takes 3 to 5 days. \
                    Express takes 1 to 2 days. Gift cards never expire.";
        assert_eq!(
            best_sentences(text, "how many days does express shipping take?", 2),
            "Standard shipping takes 3 to 5 days. Express takes 1 to 2 days."
        );
        assert_eq!(best_sentences("No full stop", "stop", 2), "No full stop");
    }
}
