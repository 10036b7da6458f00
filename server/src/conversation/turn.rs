//! A turn: one shopper message understood, answered and recorded. The message and the
//! answer are saved with the conversation's new state and their lake rows in the chat
//! store's transaction; a turn that keeps failing, or that the records cannot answer, is
//! escalated to a person ([`crate::conversation::handoff`]).

use std::net::IpAddr;
use std::time::Instant;

use chrono::{DateTime, Utc};
use pipeline::lake::vocab::{HandoffReason, Role};
use serde::Serialize;
use serde_json::json;

use crate::conversation::answer::{
    self, Answer, CONFIDENCE_FLOOR, Context, Kind, Source, Understanding,
};
use crate::conversation::commerce::Snapshot;
use crate::conversation::handoff;
use crate::conversation::verification::{VERIFY_FAILED, VERIFY_LOCKED, Verification};
use crate::error::ServerError;
use crate::lake_writer::records;
use crate::state::chat::{self, Conversation, Pending, Status};
use crate::state::sqlite::enqueue_row;
use crate::{AppState, LoadedIndex};

/// The handoff a reply announces.
#[derive(Debug, Serialize)]
pub struct HandoffRef {
    pub id: String,
    pub reason: String,
}

/// What the shopper is told after a turn (the API sends it as it is).
#[derive(Debug, Serialize)]
pub struct Reply {
    pub text: String,
    pub automated: bool,
    pub intent: Option<String>,
    pub confidence: Option<f32>,
    pub sources: Vec<Source>,
    pub needs_verification: bool,
    pub handoff: Option<HandoffRef>,
}

/// One shopper message being answered, inside the store transaction.
pub struct Turn<'a> {
    pub state: &'a AppState,
    pub snapshot: &'a Snapshot,
    pub index: &'a LoadedIndex,
    pub now: DateTime<Utc>,
    /// When the request arrived (the turn's recorded latency counts from it).
    pub started: Instant,
}

impl Turn<'_> {
    /// Records the shopper's message, answers it and records the answer.
    pub fn take(
        &self,
        tx: &rusqlite::Transaction<'_>,
        conversation: &mut Conversation,
        message: &str,
        mut understood: Understanding,
        client: IpAddr,
    ) -> Result<Reply, ServerError> {
        let shopper = chat::append_message(
            tx,
            &conversation.id,
            Role::Shopper,
            None,
            &pipeline::pii::redact_text(message),
            self.now,
            None,
        )?;
        enqueue_row(
            tx,
            &records::message_row(&conversation.shop_id, conversation, &shopper),
        )?;
        if conversation.status == Status::HandedOff {
            // A person has the conversation: the message waits for them.
            conversation.updated_at = self.now;
            save_conversation(tx, conversation, None)?;
            return Ok(Reply {
                text: "A person from our team has this conversation and will reply here.".into(),
                automated: true,
                intent: None,
                confidence: None,
                sources: Vec::new(),
                needs_verification: false,
                handoff: conversation.handoff_id.clone().map(|id| HandoffRef {
                    id,
                    reason: "already_handed_off".into(),
                }),
            });
        }
        let mut question = message.to_string();
        // "Order #1042, ana@example.com" typed in the chat is a verification attempt.
        if conversation.identity.is_none()
            && let (Some(number), Some(email)) = (
                understood.entities.order_numbers.first().cloned(),
                understood.entities.emails.first().cloned(),
            )
        {
            match self.verify(tx, conversation, &number, &email, client)? {
                Verification::Verified => {
                    if let Some(pending) = conversation.pending.take() {
                        understood = self.restore(&conversation.shop_id, &pending, understood);
                        question = pending.message;
                    }
                }
                Verification::Failed => {
                    let answer = Answer {
                        needs_verification: true,
                        ..Answer::new(Kind::Verification, VERIFY_FAILED)
                    };
                    return self.finish(tx, conversation, &understood, answer);
                }
                Verification::Locked(_) => {
                    let answer = Answer {
                        needs_verification: true,
                        ..Answer::new(Kind::Verification, VERIFY_LOCKED)
                    };
                    return self.finish(tx, conversation, &understood, answer);
                }
            }
        }
        let answer = self.compose(conversation, &question, &understood);
        if answer.needs_verification {
            conversation.pending = Some(Pending {
                message: question,
                intent: understood.intent.clone(),
                confidence: understood.confidence,
            });
        }
        self.finish(tx, conversation, &understood, answer)
    }

    /// The understanding of a question that waited for verification: its own intent and
    /// entities (retrieval is not needed for order intents).
    pub fn restore(
        &self,
        shop: &str,
        pending: &Pending,
        understood: Understanding,
    ) -> Understanding {
        Understanding {
            intent: pending.intent.clone(),
            confidence: pending.confidence,
            entities: index::classifier::entities(&pending.message, self.index.products_of(shop)),
            hits: understood.hits,
        }
    }

    pub fn compose(
        &self,
        conversation: &Conversation,
        message: &str,
        understood: &Understanding,
    ) -> Answer {
        let passage = |key: &str| self.index.passage(&conversation.shop_id, key);
        let ctx = Context {
            shop: &conversation.shop_id,
            snapshot: self.snapshot,
            identity: conversation.identity.as_ref(),
            now: self.now,
            passage: &passage,
        };
        answer::answer(&ctx, message, understood)
    }

    /// Escalates when the conversation keeps failing, records the answer, and builds the reply.
    pub fn finish(
        &self,
        tx: &rusqlite::Transaction<'_>,
        conversation: &mut Conversation,
        understood: &Understanding,
        mut answer: Answer,
    ) -> Result<Reply, ServerError> {
        let low = answer.abstained()
            || (understood.confidence < CONFIDENCE_FLOOR && answer.kind != Kind::Handoff);
        conversation.low_confidence_streak = if low {
            conversation.low_confidence_streak + 1
        } else {
            0
        };
        if low && conversation.low_confidence_streak >= 2 && answer.handoff_reason.is_none() {
            // Two turns in a row without a good answer: a person takes over.
            answer.handoff_reason = Some(if answer.abstain_reason == Some("missing_data") {
                HandoffReason::MissingData
            } else {
                HandoffReason::LowConfidence
            });
            answer.kind = Kind::Handoff;
            answer
                .text
                .push_str(" I'm connecting you with a person who can help; they'll reply here.");
        } else if answer.abstain_reason == Some("missing_data") && answer.handoff_reason.is_none() {
            // The records cannot answer it: a person can look further.
            answer.handoff_reason = Some(HandoffReason::MissingData);
            answer
                .text
                .push_str(" I've asked a person on our team to look into it; they'll reply here.");
        }
        if conversation.primary_intent.is_none() && understood.intent != "out_of_scope" {
            conversation.primary_intent = Some(understood.intent.clone());
        }
        let latency_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let meta = json!({
            "intent": understood.intent,
            "confidence": understood.confidence,
            "answer_kind": answer.kind.as_str(),
            "abstain_reason": answer.abstain_reason,
            "sources": answer.sources.iter().map(|s| &s.doc_key).collect::<Vec<_>>(),
        });
        let ai = chat::append_message(
            tx,
            &conversation.id,
            Role::Ai,
            None,
            &answer.text,
            self.now,
            Some(meta),
        )?;
        let handoff = match answer.handoff_reason {
            Some(reason) => Some(handoff::open(
                tx,
                self.snapshot,
                self.now,
                conversation,
                understood,
                &answer,
                reason,
            )?),
            None => None,
        };
        let turn_row = records::turn_row(
            conversation,
            &ai,
            understood,
            &answer,
            latency_ms,
            &format!(
                "{}/{}",
                self.state.model().model_id(),
                self.index.generation.name
            ),
        );
        enqueue_row(
            tx,
            &records::message_row(&conversation.shop_id, conversation, &ai),
        )?;
        enqueue_row(tx, &turn_row)?;
        conversation.last_turn = Some(turn_row);
        conversation.updated_at = self.now;
        save_conversation(tx, conversation, None)?;
        self.state.metrics().answer(
            &understood.intent,
            answer.abstain_reason,
            answer.handoff_reason.map(HandoffReason::as_str),
        );
        Ok(Reply {
            text: answer.text,
            automated: true,
            intent: Some(understood.intent.clone()),
            confidence: Some(understood.confidence),
            sources: answer.sources,
            needs_verification: answer.needs_verification,
            handoff,
        })
    }
}

/// Saves the conversation's state and queues its lake row.
pub fn save_conversation(
    tx: &rusqlite::Transaction<'_>,
    conversation: &Conversation,
    assignee: Option<&str>,
) -> Result<(), ServerError> {
    chat::save_conversation(tx, conversation)?;
    enqueue_row(
        tx,
        &records::conversation_row(conversation, conversation.updated_at, assignee),
    )
}
