//! Zendesk: one page (or several, merged) of the Incremental Ticket Export with users
//! side-loaded (`GET /api/v2/incremental/tickets/cursor.json?include=users`, saved as
//! `tickets.json`) and each ticket's List Comments response (`GET /api/v2/tickets/{id}/comments`)
//! under its id in `ticket_comments.json`, since the export carries no comments.
//!
//! A comment's author is a side-loaded user: `end-user` is the shopper, `agent` and `admin`
//! are staff. Comments with `public: false` are internal notes. Zendesk rates satisfaction
//! `good` or `bad`: supportlake records 5 and 1; `offered` and `unoffered` are no rating.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use super::{Csat, Message, Parsed, Ticket, parse_time};
use crate::error::{PipelineError, Result};
use crate::lake::vocab::{ConversationStatus, Role};

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| PipelineError::Input(format!("{}: not JSON: {e}", path.display())))
}

fn channel(via: &Value) -> Option<String> {
    Some(
        match via["channel"].as_str()? {
            "email" | "mail" => "email",
            "chat" | "native_messaging" | "messaging" => "chat",
            "web" | "web_form" | "api" => "contact_form",
            other => other,
        }
        .to_string(),
    )
}

fn status(text: Option<&str>) -> Option<ConversationStatus> {
    match text? {
        "solved" | "closed" => Some(ConversationStatus::Resolved),
        "new" | "open" | "pending" | "hold" => Some(ConversationStatus::Open),
        _ => None,
    }
}

/// Reads the export directory at `dir`.
pub fn read(dir: &Path, handle_time_field: Option<i64>) -> Result<Parsed> {
    const TICKETS: &str = "tickets.json";
    const COMMENTS: &str = "ticket_comments.json";
    let export = read_json(&dir.join(TICKETS))?;
    let comments = read_json(&dir.join(COMMENTS))?;
    let users: HashMap<i64, &Value> = export["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| Some((u["id"].as_i64()?, u)))
        .collect();
    let mut parsed = Parsed::default();
    let mut seen = HashSet::new();
    for (i, t) in export["tickets"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = match &t["id"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => String::new(),
        };
        seen.insert(key.clone());
        let of_ticket = comments[&key]["comments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let reject = |reason: String, parsed: &mut Parsed| {
            parsed.skipped_with_ticket += of_ticket.len();
            parsed.reject(TICKETS, format!("tickets[{i}]"), "conversations", reason, t);
        };
        let Some(id) = t["id"].as_i64() else {
            reject(
                format!("wrong type: id = {} is not an integer", t["id"]),
                &mut parsed,
            );
            continue;
        };
        let created_at = match t["created_at"].as_str() {
            None => {
                reject("missing field: created_at".into(), &mut parsed);
                continue;
            }
            Some(text) => match parse_time(text) {
                Some(time) => time,
                None => {
                    reject(
                        format!("bad timestamp: created_at = {text:?} is not RFC 3339"),
                        &mut parsed,
                    );
                    continue;
                }
            },
        };
        let updated_at = t["updated_at"]
            .as_str()
            .and_then(parse_time)
            .unwrap_or(created_at);
        let mut messages = Vec::new();
        for (j, c) in of_ticket.iter().enumerate() {
            let record_ref = format!("{id}.comments[{j}]");
            if c["public"] == false {
                parsed.notes_skipped += 1;
                continue;
            }
            let author = c["author_id"].as_i64().and_then(|a| users.get(&a));
            let role = match author.and_then(|u| u["role"].as_str()) {
                Some("end-user") => Role::Shopper,
                Some("agent" | "admin") => Role::Agent,
                _ => {
                    let reason = format!(
                        "unknown author: author_id {} is not among the export's users",
                        c["author_id"]
                    );
                    parsed.reject(COMMENTS, record_ref, "messages", reason, c);
                    continue;
                }
            };
            let Some(created) = c["created_at"].as_str().and_then(parse_time) else {
                let reason = format!("bad timestamp: created_at = {}", c["created_at"]);
                parsed.reject(COMMENTS, record_ref, "messages", reason, c);
                continue;
            };
            let text = c["plain_body"]
                .as_str()
                .or(c["body"].as_str())
                .unwrap_or("");
            messages.push(Message {
                external_id: c["id"].to_string(),
                role,
                author: author.and_then(|u| u["name"].as_str()).map(String::from),
                text: text.to_string(),
                created_at: created,
            });
        }
        let rating = &t["satisfaction_rating"];
        let csat = match rating["score"].as_str() {
            Some("good") => Some(5),
            Some("bad") => Some(1),
            None | Some("offered" | "unoffered") => None,
            Some(other) => {
                let reason = format!(
                    "unknown enum value: satisfaction_rating.score = {other:?} (expected good, bad, offered, unoffered)"
                );
                parsed.reject(TICKETS, format!("{id}.satisfaction_rating"), "csat", reason, rating);
                None
            }
        }
        .map(|score| Csat {
            score,
            comment: rating["comment"].as_str().map(String::from),
            created_at: None,
        });
        let handle_seconds = handle_time_field.and_then(|field| {
            t["custom_fields"]
                .as_array()?
                .iter()
                .find(|f| f["id"].as_i64() == Some(field))
                .and_then(|f| match &f["value"] {
                    Value::String(s) => s.trim().parse().ok(),
                    v => v.as_i64(),
                })
        });
        let resolved = status(t["status"].as_str());
        // The ticket object has no solved time: a solved ticket ended with its last message.
        let solved_at = (resolved == Some(ConversationStatus::Resolved))
            .then(|| messages.iter().map(|m| m.created_at).max())
            .flatten();
        let requester = t["requester_id"].as_i64().and_then(|r| users.get(&r));
        parsed.tickets.push(Ticket {
            external_id: id.to_string(),
            subject: t["subject"].as_str().map(String::from),
            status: resolved,
            channel: channel(&t["via"]),
            customer_email: requester
                .and_then(|u| u["email"].as_str())
                .map(String::from),
            assignee: t["assignee_id"]
                .as_i64()
                .and_then(|a| users.get(&a))
                .and_then(|u| u["name"].as_str())
                .map(String::from),
            tags: t["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(String::from))
                .collect(),
            handle_seconds,
            created_at,
            solved_at,
            updated_at,
            messages,
            csat,
        });
    }
    // Comments filed under a ticket the export does not hold.
    for (key, listing) in comments.as_object().into_iter().flatten() {
        if seen.contains(key) {
            continue;
        }
        for (j, c) in listing["comments"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let reason = format!("unknown ticket: {key} is not in {TICKETS}");
            parsed.reject(
                COMMENTS,
                format!("{key}.comments[{j}]"),
                "messages",
                reason,
                c,
            );
        }
    }
    Ok(parsed)
}
