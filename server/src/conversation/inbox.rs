//! The agents' inbox rules: one agent claims an open handoff, only a claimed handoff gets
//! an agent's reply, and resolving it closes the conversation as answered by the assistant
//! and then a person (`ai_then_human`). Each change is one transaction that saves the
//! handoff and its conversation and queues both lake rows, so the lake sees every step the
//! agent took. Refusals are [`InboxError`]s; the HTTP layer decides their status codes.

use chrono::Utc;
use pipeline::lake::vocab::{HandoffStatus, ResolutionPath, Role};

use crate::conversation::turn::save_conversation;
use crate::error::ServerError;
use crate::lake_writer::records;
use crate::state::ChatStore;
use crate::state::chat::{self, Conversation, Handoff, Status};
use crate::state::sqlite::enqueue_row;

/// Why an agent's change to a handoff was refused (or could not be made).
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("no handoff with this id")]
    UnknownHandoff,
    /// The handoff's conversation is not in the state store.
    #[error("no conversation with this id")]
    UnknownConversation,
    #[error("the handoff is resolved")]
    AlreadyResolved,
    /// Another agent holds it; the field names them.
    #[error("{0} has claimed this handoff")]
    AlreadyClaimed(String),
    #[error("claim the handoff before replying")]
    NotClaimed,
    #[error(transparent)]
    State(#[from] ServerError),
}

/// A handoff by id.
pub fn handoff(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Handoff, InboxError> {
    chat::handoff(tx, id)?.ok_or(InboxError::UnknownHandoff)
}

/// `agent` takes the handoff; taking it again is a no-op for the same agent, a refusal for
/// another one, and a resolved handoff stays resolved.
pub fn claim(chat: &ChatStore, id: &str, agent: &str) -> Result<Handoff, InboxError> {
    update(chat, id, |_, handoff, _, now| {
        match (handoff.status, handoff.assignee.as_deref()) {
            (HandoffStatus::Resolved, _) => return Err(InboxError::AlreadyResolved),
            (HandoffStatus::Claimed, Some(other)) if other != agent => {
                return Err(InboxError::AlreadyClaimed(other.to_string()));
            }
            _ => {}
        }
        handoff.status = HandoffStatus::Claimed;
        handoff.assignee = Some(agent.to_string());
        handoff.claimed_at.get_or_insert_with(|| now.to_string());
        Ok(())
    })
}

/// The claimant's reply (its length already checked by the caller), appended to the
/// conversation the shopper sees.
pub fn reply(chat: &ChatStore, id: &str, text: &str) -> Result<Handoff, InboxError> {
    update(chat, id, |tx, handoff, conversation, now| {
        if handoff.status != HandoffStatus::Claimed {
            return Err(InboxError::NotClaimed);
        }
        let message = chat::append_message(
            tx,
            &conversation.id,
            Role::Agent,
            handoff.assignee.as_deref(),
            text,
            Utc::now(),
            None,
        )?;
        enqueue_row(
            tx,
            &records::message_row(&conversation.shop_id, conversation, &message),
        )?;
        handoff
            .first_agent_reply_at
            .get_or_insert_with(|| now.to_string());
        Ok(())
    })
}

/// Resolves the handoff and its conversation.
pub fn resolve(chat: &ChatStore, id: &str) -> Result<Handoff, InboxError> {
    update(chat, id, |_, handoff, conversation, now| {
        if handoff.status == HandoffStatus::Resolved {
            return Err(InboxError::AlreadyResolved);
        }
        handoff.status = HandoffStatus::Resolved;
        handoff.resolved_at = Some(now.to_string());
        conversation.status = Status::Resolved;
        conversation.resolution_path = Some(ResolutionPath::AiThenHuman);
        Ok(())
    })
}

/// Applies an agent's change to a handoff and its conversation, recording both; a refused
/// change writes nothing (the transaction rolls back).
fn update(
    chat: &ChatStore,
    id: &str,
    change: impl FnOnce(
        &rusqlite::Transaction<'_>,
        &mut Handoff,
        &mut Conversation,
        &str,
    ) -> Result<(), InboxError>,
) -> Result<Handoff, InboxError> {
    let now = chat::timestamp(Utc::now());
    chat.transaction(|tx| {
        let mut handoff = handoff(tx, id)?;
        let mut conversation = chat::conversation(tx, None, &handoff.conversation_id)?
            .ok_or(InboxError::UnknownConversation)?;
        change(tx, &mut handoff, &mut conversation, &now)?;
        handoff.updated_at = now.clone();
        chat::save_handoff(tx, &handoff)?;
        enqueue_row(tx, &records::handoff_row(&handoff))?;
        conversation.updated_at = Utc::now();
        save_conversation(tx, &conversation, handoff.assignee.as_deref())?;
        Ok(handoff)
    })
}
