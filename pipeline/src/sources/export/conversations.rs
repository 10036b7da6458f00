//! supportlake's conversation export (one conversation per line, as `generate` writes it, as
//! the answer server records live chats and as helpdesk imports stage past tickets) →
//! conversations, messages, turns, handoffs, csat, tickets.
//!
//! Message text is redacted here ([`crate::pii::redact_text`]): an email typed into a chat
//! never reaches the lake.

use serde_json::Value;

use super::fields::{Obj, Reason};
use super::{Context, Rows};
use crate::lake::rows::{
    ConversationRow, CsatRow, HandoffRow, MessageRow, RetrievedDoc, Row, TicketRow, TurnRow, month,
};
use crate::lake::vocab::{ConversationStatus, Role};
use crate::pii;

pub fn conversation(ctx: &Context, record: &Value) -> Result<Rows, Reason> {
    let c = Obj::of(record, "conversation")?;
    let id = c.str("id")?;
    let started_at = c.ts("started_at")?;
    let month = month(started_at);
    let updated_at = c.opt_ts("updated_at")?.unwrap_or(started_at);
    let path = c.opt_word("resolution_path")?;
    let owned = |text: Option<&str>| text.map(str::to_string);
    let mut rows: Rows = vec![
        ConversationRow {
            shop_id: ctx.shop_id.clone(),
            id: id.to_string(),
            channel: owned(c.opt_str("channel")?),
            customer_id: c.opt_id("customer_id")?,
            order_id: c.opt_id("order_id")?,
            primary_intent: owned(c.opt_str("primary_intent")?),
            status: c.opt_word::<ConversationStatus>("status")?,
            resolution_path: path,
            shopper_confirmed: c.opt_bool("shopper_confirmed")?,
            reopened_from: owned(c.opt_str("reopened_from")?),
            assignee: owned(c.opt_str("assignee")?),
            agent_handle_seconds: c.opt_i64("agent_handle_seconds")?,
            tags: c.tags("tags")?,
            started_at,
            ended_at: c.opt_ts("ended_at")?,
            updated_at,
            month: month.clone(),
        }
        .entry(),
    ];
    for m in c.objects("messages")? {
        let message_id = m.str("id")?;
        let created_at = m.ts("created_at")?;
        rows.push(
            MessageRow {
                shop_id: ctx.shop_id.clone(),
                id: message_id.to_string(),
                conversation_id: id.to_string(),
                seq: m.opt_i64("seq")?,
                role: m.opt_word::<Role>("role")?.ok_or("missing field: role")?,
                author: owned(m.opt_str("author")?),
                text: m.opt_str("text")?.map(pii::redact_text),
                created_at,
                updated_at: created_at,
                month: month.clone(),
            }
            .entry(),
        );
        if let Some(t) = m.obj("turn")? {
            let retrieved = t
                .objects("retrieved")?
                .iter()
                .map(|r| {
                    Ok(RetrievedDoc {
                        doc_key: owned(r.opt_str("doc_key")?),
                        bm25: r.opt_f64("bm25")?,
                        vector: r.opt_f64("vector")?,
                        fused: r.opt_f64("fused")?,
                    })
                })
                .collect::<Result<Vec<_>, Reason>>()?;
            rows.push(
                TurnRow {
                    shop_id: ctx.shop_id.clone(),
                    id: t.str("id")?.to_string(),
                    conversation_id: id.to_string(),
                    message_id: message_id.to_string(),
                    intent: owned(t.opt_str("intent")?),
                    confidence: t.opt_f64("confidence")?,
                    retrieved,
                    cited_doc_keys: t.tags("cited_doc_keys")?,
                    answer_kind: owned(t.opt_str("answer_kind")?),
                    needs_verification: t.opt_bool("needs_verification")?,
                    abstained: t.opt_bool("abstained")?,
                    abstain_reason: owned(t.opt_str("abstain_reason")?),
                    helpful: t.opt_bool("helpful")?,
                    latency_ms: t.opt_i64("latency_ms")?,
                    model_version: owned(t.opt_str("model_version")?),
                    created_at,
                    updated_at: created_at,
                    month: month.clone(),
                }
                .entry(),
            );
        }
    }
    if let Some(h) = c.obj("handoff")? {
        let created = h.opt_ts("created_at")?;
        let claimed_at = h.opt_ts("claimed_at")?;
        let first_agent_reply_at = h.opt_ts("first_agent_reply_at")?;
        let resolved_at = h.opt_ts("resolved_at")?;
        let latest = [created, claimed_at, first_agent_reply_at, resolved_at]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(updated_at);
        rows.push(
            HandoffRow {
                shop_id: ctx.shop_id.clone(),
                id: h.str("id")?.to_string(),
                conversation_id: id.to_string(),
                reason: h.opt_word("reason")?,
                intent: owned(h.opt_str("intent")?),
                status: h.opt_word("status")?,
                assignee: owned(h.opt_str("assignee")?),
                packet: h.0.get("packet").map(|p| pii::redact_text(&p.to_string())),
                created_at: created,
                claimed_at,
                first_agent_reply_at,
                resolved_at,
                updated_at: latest,
            }
            .entry(),
        );
    }
    if let Some(t) = c.obj("ticket")? {
        rows.push(
            TicketRow {
                shop_id: ctx.shop_id.clone(),
                id: t.str("id")?.to_string(),
                source: owned(t.opt_str("source")?),
                external_id: owned(t.opt_str("external_id")?),
                conversation_id: id.to_string(),
                subject: t.opt_str("subject")?.map(pii::redact_text),
                status: c.opt_word::<ConversationStatus>("status")?,
                channel: owned(c.opt_str("channel")?),
                customer_id: c.opt_id("customer_id")?,
                assignee: owned(c.opt_str("assignee")?),
                handle_seconds: c.opt_i64("agent_handle_seconds")?,
                created_at: Some(started_at),
                solved_at: c.opt_ts("ended_at")?,
                updated_at,
            }
            .entry(),
        );
    }
    if let Some(s) = c.obj("csat")? {
        let score = s.opt_i64("score")?.ok_or("missing field: csat.score")?;
        if !(1..=5).contains(&score) {
            return Err(format!(
                "out of range: csat.score = {score} (expected 1..5)"
            ));
        }
        let created = s.opt_ts("created_at")?;
        rows.push(
            CsatRow {
                shop_id: ctx.shop_id.clone(),
                conversation_id: id.to_string(),
                score,
                comment: s.opt_str("comment")?.map(pii::redact_text),
                resolution_path: path,
                created_at: created,
                updated_at: created.unwrap_or(updated_at),
            }
            .entry(),
        );
    }
    Ok(rows)
}
