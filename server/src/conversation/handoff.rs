//! The handoff: when a person takes over, they get a packet with everything the assistant
//! knew — the summary and reason, the verified identity, the orders and products in
//! question, what the assistant tried, and the history.

use chrono::{DateTime, Utc};
use pipeline::lake::vocab::{HandoffReason, HandoffStatus, ResolutionPath, Role};
use serde_json::{Value, json};

use crate::conversation::answer::{self, Answer, Understanding};
use crate::conversation::commerce::Snapshot;
use crate::conversation::turn::HandoffRef;
use crate::error::ServerError;
use crate::lake_writer::records;
use crate::state::chat::{self, Conversation, Handoff, Status};
use crate::state::sqlite::enqueue_row;

/// Opens a handoff with the packet an agent needs, and hands the conversation over.
pub fn open(
    tx: &rusqlite::Transaction<'_>,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
    conversation: &mut Conversation,
    understood: &Understanding,
    answer: &Answer,
    reason: HandoffReason,
) -> Result<HandoffRef, ServerError> {
    let history = chat::messages(tx, &conversation.id, None)?;
    let orders: Vec<Value> = answer
        .order
        .or_else(|| conversation.identity.as_ref().and_then(|i| i.order_id))
        .and_then(|id| snapshot.order_by_id(&conversation.shop_id, id))
        .map(|o| json!({"name": o.name, "status": answer::order_status(o, now)}))
        .into_iter()
        .collect();
    let tried: Vec<&Value> = history.iter().filter_map(|m| m.meta.as_ref()).collect();
    let packet = json!({
        "summary": format!("{} ({}): {}", understood.intent, reason, history.iter().rev().find(|m| m.role == Role::Shopper).map_or("", |m| m.text.as_str())),
        "reason": reason,
        "intent": understood.intent,
        "verified_identity": conversation.identity.as_ref().map(|i| json!({
            "via": i.via, "customer_id": i.customer_id,
            "order": i.order_id.and_then(|id| snapshot.order_by_id(&conversation.shop_id, id)).map(|o| o.name.clone())})),
        "orders": orders,
        "products": answer.products.iter().chain(understood.entities.products.iter()).collect::<std::collections::BTreeSet<_>>(),
        "what_the_assistant_tried": tried,
        "history": history,
    });
    let at = chat::timestamp(now);
    let handoff = Handoff {
        id: format!("{}_h{}", conversation.id, history.len()),
        shop_id: conversation.shop_id.clone(),
        conversation_id: conversation.id.clone(),
        reason,
        intent: Some(understood.intent.clone()),
        status: HandoffStatus::Open,
        assignee: None,
        packet,
        created_at: at.clone(),
        claimed_at: None,
        first_agent_reply_at: None,
        resolved_at: None,
        updated_at: at,
    };
    chat::save_handoff(tx, &handoff)?;
    enqueue_row(tx, &records::handoff_row(&handoff))?;
    conversation.status = Status::HandedOff;
    conversation.resolution_path = Some(ResolutionPath::AiThenHuman);
    conversation.handoff_id = Some(handoff.id.clone());
    Ok(HandoffRef {
        id: handoff.id,
        reason: reason.to_string(),
    })
}
