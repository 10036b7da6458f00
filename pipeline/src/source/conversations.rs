//! supportlake's conversation export (one conversation per line, as `generate` writes it, as
//! the answer server records live chats and as helpdesk imports stage past tickets) →
//! conversations, messages, turns, handoffs, csat, tickets.
//!
//! Message text is redacted here ([`crate::pii::redact_text`]): an email typed into a chat
//! never reaches the lake.

use serde_json::{Value, json};

use super::fields::{Obj, Reason};
use super::{Context, Rows};
use crate::pii;

const ROLES: &[&str] = &["shopper", "ai", "agent", "system"];
const PATHS: &[&str] = &["ai_only", "ai_then_human", "human_only", "abandoned"];
const STATUSES: &[&str] = &["open", "resolved", "abandoned"];

/// `2026-09-07T…` in microseconds → `"2026-09"`, the partition.
fn month(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m").to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub fn conversation(ctx: &Context, record: &Value) -> Result<Rows, Reason> {
    let c = Obj::of(record, "conversation")?;
    let id = c.str("id")?;
    let started_at = c.ts("started_at")?;
    let month = month(started_at);
    let updated_at = c.opt_ts("updated_at")?.unwrap_or(started_at);
    let path = c.opt_enum("resolution_path", PATHS)?;
    let mut rows: Rows = vec![(
        "conversations",
        json!({
            "shop_id": ctx.shop_id, "id": id, "channel": c.opt_str("channel")?,
            "customer_id": c.opt_id("customer_id")?, "order_id": c.opt_id("order_id")?,
            "primary_intent": c.opt_str("primary_intent")?, "status": c.opt_enum("status", STATUSES)?,
            "resolution_path": path, "shopper_confirmed": c.opt_bool("shopper_confirmed")?,
            "reopened_from": c.opt_str("reopened_from")?, "assignee": c.opt_str("assignee")?,
            "agent_handle_seconds": c.opt_i64("agent_handle_seconds")?, "tags": c.tags("tags")?,
            "started_at": started_at, "ended_at": c.opt_ts("ended_at")?, "updated_at": updated_at,
            "month": month,
        }),
    )];
    for m in c.objects("messages")? {
        let message_id = m.str("id")?;
        let created_at = m.ts("created_at")?;
        rows.push(("messages", json!({
            "shop_id": ctx.shop_id, "id": message_id, "conversation_id": id, "seq": m.opt_i64("seq")?,
            "role": m.opt_enum("role", ROLES)?.ok_or("missing field: role")?, "author": m.opt_str("author")?,
            "text": m.opt_str("text")?.map(pii::redact_text), "created_at": created_at,
            "updated_at": created_at, "month": month,
        })));
        if let Some(t) = m.obj("turn")? {
            let retrieved = t
                .objects("retrieved")?
                .iter()
                .map(|r| {
                    Ok(json!({
                        "doc_key": r.opt_str("doc_key")?, "bm25": r.opt_f64("bm25")?,
                        "vector": r.opt_f64("vector")?, "fused": r.opt_f64("fused")?,
                    }))
                })
                .collect::<Result<Vec<_>, Reason>>()?;
            rows.push(("turns", json!({
                "shop_id": ctx.shop_id, "id": t.str("id")?, "conversation_id": id, "message_id": message_id,
                "intent": t.opt_str("intent")?, "confidence": t.opt_f64("confidence")?, "retrieved": retrieved,
                "cited_doc_keys": t.tags("cited_doc_keys")?, "answer_kind": t.opt_str("answer_kind")?,
                "needs_verification": t.opt_bool("needs_verification")?, "abstained": t.opt_bool("abstained")?,
                "abstain_reason": t.opt_str("abstain_reason")?, "helpful": t.opt_bool("helpful")?,
                "latency_ms": t.opt_i64("latency_ms")?, "model_version": t.opt_str("model_version")?,
                "created_at": created_at, "updated_at": created_at, "month": month,
            })));
        }
    }
    if let Some(h) = c.obj("handoff")? {
        let created = h.opt_ts("created_at")?;
        let latest = [
            created,
            h.opt_ts("claimed_at")?,
            h.opt_ts("first_agent_reply_at")?,
            h.opt_ts("resolved_at")?,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(updated_at);
        rows.push(("handoffs", json!({
            "shop_id": ctx.shop_id, "id": h.str("id")?, "conversation_id": id,
            "reason": h.opt_enum("reason", &["explicit_request", "sensitive_intent", "low_confidence", "missing_data"])?,
            "intent": h.opt_str("intent")?, "status": h.opt_enum("status", &["open", "claimed", "resolved", "abandoned"])?,
            "assignee": h.opt_str("assignee")?,
            "packet": h.0.get("packet").map(|p| pii::redact_text(&p.to_string())),
            "created_at": created, "claimed_at": h.opt_ts("claimed_at")?,
            "first_agent_reply_at": h.opt_ts("first_agent_reply_at")?, "resolved_at": h.opt_ts("resolved_at")?,
            "updated_at": latest,
        })));
    }
    if let Some(t) = c.obj("ticket")? {
        rows.push((
            "tickets",
            json!({
                "shop_id": ctx.shop_id, "id": t.str("id")?, "source": t.opt_str("source")?,
                "external_id": t.opt_str("external_id")?, "conversation_id": id,
                "subject": t.opt_str("subject")?.map(pii::redact_text),
                "status": c.opt_enum("status", STATUSES)?, "channel": c.opt_str("channel")?,
                "customer_id": c.opt_id("customer_id")?, "assignee": c.opt_str("assignee")?,
                "handle_seconds": c.opt_i64("agent_handle_seconds")?, "created_at": started_at,
                "solved_at": c.opt_ts("ended_at")?, "updated_at": updated_at,
            }),
        ));
    }
    if let Some(s) = c.obj("csat")? {
        let score = s.opt_i64("score")?.ok_or("missing field: csat.score")?;
        if !(1..=5).contains(&score) {
            return Err(format!(
                "out of range: csat.score = {score} (expected 1..5)"
            ));
        }
        let created = s.opt_ts("created_at")?;
        rows.push((
            "csat",
            json!({
                "shop_id": ctx.shop_id, "conversation_id": id, "score": score,
                "comment": s.opt_str("comment")?.map(pii::redact_text), "resolution_path": path,
                "created_at": created, "updated_at": created.unwrap_or(updated_at),
            }),
        ));
    }
    Ok(rows)
}
