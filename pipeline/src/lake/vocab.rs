//! The closed vocabularies of the support tables: who wrote a message, how a conversation was
//! resolved, why it was handed to a person, where it and its handoff stand. The lake stores
//! them as strings (what every engine and the analyst views read); these enums are the one
//! list of the words, so a producer cannot write one the reports do not know.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A closed set of words, each stored as its [`Vocabulary::as_str`].
pub trait Vocabulary: Copy + 'static {
    /// Every word, in the order the docs list them.
    const ALL: &'static [Self];

    /// The word as the lake stores it.
    fn as_str(self) -> &'static str;

    /// The word of this text, if it is one.
    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|w| w.as_str() == text)
    }

    /// The words, comma-separated, for error messages.
    fn word_list() -> String {
        Self::ALL
            .iter()
            .map(|w| w.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A text that is none of a vocabulary's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {value:?} (expected one of {expected})")]
pub struct UnknownWord {
    pub value: String,
    pub expected: String,
}

/// Defines a vocabulary enum: serde, [`FromStr`] and [`fmt::Display`] all use the stored word.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            /// The word as the lake stores it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word,)+
                }
            }
        }

        impl Vocabulary for $name {
            const ALL: &'static [Self] = &[$(Self::$variant,)+];

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(text: &str) -> Result<Self, UnknownWord> {
                <Self as Vocabulary>::parse(text).ok_or_else(|| UnknownWord {
                    value: text.to_string(),
                    expected: <Self as Vocabulary>::word_list(),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// Who wrote a message (`messages.role`).
    Role {
        Shopper => "shopper",
        /// The answer server's automated replies.
        Ai => "ai",
        /// A person on the store's team.
        Agent => "agent",
        /// Notices such as "handed to an agent".
        System => "system",
    }
}

vocabulary! {
    /// How a conversation was resolved (`conversations.resolution_path`, `csat.resolution_path`).
    ResolutionPath {
        AiOnly => "ai_only",
        AiThenHuman => "ai_then_human",
        /// Answered by people only (every imported helpdesk ticket).
        HumanOnly => "human_only",
        Abandoned => "abandoned",
    }
}

vocabulary! {
    /// Where a conversation stands in the lake (`conversations.status`, `tickets.status`).
    ConversationStatus {
        Open => "open",
        Resolved => "resolved",
        Abandoned => "abandoned",
    }
}

vocabulary! {
    /// Why a conversation was handed to a person (`handoffs.reason`).
    HandoffReason {
        /// The shopper asked for a person.
        ExplicitRequest => "explicit_request",
        /// Payments, complaints and the like always go to a person.
        SensitiveIntent => "sensitive_intent",
        /// A change to an order (cancelling or editing one not yet shipped) that a person makes.
        ActionRequired => "action_required",
        /// The assistant was not sure enough, repeatedly.
        LowConfidence => "low_confidence",
        /// The answer needs data or knowledge the store does not have.
        MissingData => "missing_data",
    }
}

vocabulary! {
    /// Where a handoff stands (`handoffs.status`).
    HandoffStatus {
        Open => "open",
        Claimed => "claimed",
        Resolved => "resolved",
        Abandoned => "abandoned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_through_text_and_serde() {
        for path in ResolutionPath::ALL {
            assert_eq!(path.as_str().parse::<ResolutionPath>(), Ok(*path));
            assert_eq!(
                serde_json::to_value(path).unwrap(),
                serde_json::json!(path.as_str())
            );
        }
        assert_eq!(Role::Ai.to_string(), "ai");
        assert_eq!(
            "bot".parse::<Role>().unwrap_err().to_string(),
            "unknown value \"bot\" (expected one of shopper, ai, agent, system)"
        );
        assert_eq!(
            HandoffReason::parse("missing_data"),
            Some(HandoffReason::MissingData)
        );
    }
}
