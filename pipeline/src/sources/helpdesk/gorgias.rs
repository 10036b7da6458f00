//! Gorgias: the REST API's list responses, saved as `tickets.json` (`GET /api/tickets`) and
//! `messages.json` (`GET /api/messages`), each `{"data": [...], "meta": {...}}`.
//!
//! A message is the shopper's when `from_agent` is false; when the flag is missing, its
//! sender is compared with the ticket's customer. Internal notes (`public: false`, channel
//! `internal-note`) are skipped. A satisfaction survey's `score` is already 1–5; `null` means
//! sent but not answered.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use super::{Csat, Message, Parsed, Ticket, parse_time};
use crate::error::{PipelineError, Result};
use crate::lake::vocab::{ConversationStatus, Role};

fn data(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))?;
    let body: Value = serde_json::from_str(&text)
        .map_err(|e| PipelineError::Input(format!("{}: not JSON: {e}", path.display())))?;
    body["data"].as_array().cloned().ok_or_else(|| {
        PipelineError::Input(format!(
            "{}: expected a Gorgias list response {{\"data\": [...]}}",
            path.display()
        ))
    })
}

fn channel(text: Option<&str>) -> Option<String> {
    Some(
        match text? {
            "chat" => "chat",
            "email" => "email",
            "help-center" | "contact_form" => "contact_form",
            other => other,
        }
        .to_string(),
    )
}

/// Reads the export directory at `dir`.
pub fn read(dir: &Path) -> Result<Parsed> {
    const TICKETS: &str = "tickets.json";
    const MESSAGES: &str = "messages.json";
    let tickets = data(&dir.join(TICKETS))?;
    let messages = data(&dir.join(MESSAGES))?;
    let mut by_ticket: HashMap<String, Vec<(usize, &Value)>> = HashMap::new();
    for (j, m) in messages.iter().enumerate() {
        by_ticket
            .entry(m["ticket_id"].to_string())
            .or_default()
            .push((j, m));
    }
    let mut parsed = Parsed::default();
    let mut seen = HashSet::new();
    for (i, t) in tickets.iter().enumerate() {
        let key = t["id"].to_string();
        seen.insert(key.clone());
        let of_ticket = by_ticket.get(&key).cloned().unwrap_or_default();
        let reject = |reason: String, parsed: &mut Parsed| {
            parsed.skipped_with_ticket += of_ticket.len();
            parsed.reject(TICKETS, format!("data[{i}]"), "conversations", reason, t);
        };
        let Some(id) = t["id"].as_i64() else {
            reject(
                format!("wrong type: id = {} is not an integer", t["id"]),
                &mut parsed,
            );
            continue;
        };
        let Some(created_at) = t["created_datetime"].as_str().and_then(parse_time) else {
            let reason = match &t["created_datetime"] {
                Value::Null => "missing field: created_datetime".to_string(),
                other => format!("bad timestamp: created_datetime = {other}"),
            };
            reject(reason, &mut parsed);
            continue;
        };
        let customer_email = t["customer"]["email"].as_str().map(String::from);
        let mut ticket_messages = Vec::new();
        for (j, m) in of_ticket {
            let record_ref = format!("data[{j}]");
            if m["public"] == false || m["channel"] == "internal-note" {
                parsed.notes_skipped += 1;
                continue;
            }
            let role = match (m["from_agent"].as_bool(), m["sender"]["email"].as_str()) {
                (Some(true), _) => Role::Agent,
                (Some(false), _) => Role::Shopper,
                (None, Some(sender)) if Some(sender) == customer_email.as_deref() => Role::Shopper,
                (None, Some(_)) => Role::Agent,
                (None, None) => {
                    let reason = "unknown author: neither from_agent nor sender is set".into();
                    parsed.reject(MESSAGES, record_ref, "messages", reason, m);
                    continue;
                }
            };
            let when = m["created_datetime"]
                .as_str()
                .or(m["sent_datetime"].as_str());
            let Some(created) = when.and_then(parse_time) else {
                let reason = format!(
                    "bad timestamp: created_datetime = {}",
                    m["created_datetime"]
                );
                parsed.reject(MESSAGES, record_ref, "messages", reason, m);
                continue;
            };
            ticket_messages.push(Message {
                external_id: m["id"].to_string(),
                role,
                author: m["sender"]["name"].as_str().map(String::from),
                text: m["body_text"].as_str().unwrap_or("").to_string(),
                created_at: created,
            });
        }
        let survey = &t["satisfaction_survey"];
        let csat = match &survey["score"] {
            Value::Null => None,
            score => match score.as_i64().filter(|s| (1..=5).contains(s)) {
                Some(score) => Some(Csat {
                    score,
                    comment: survey["body_text"].as_str().map(String::from),
                    created_at: survey["scored_datetime"].as_str().and_then(parse_time),
                }),
                None => {
                    let reason = format!(
                        "out of range: satisfaction_survey.score = {score} (expected 1..5)"
                    );
                    parsed.reject(
                        TICKETS,
                        format!("{id}.satisfaction_survey"),
                        "csat",
                        reason,
                        survey,
                    );
                    None
                }
            },
        };
        let status = match t["status"].as_str() {
            Some("closed") => Some(ConversationStatus::Resolved),
            Some("open") => Some(ConversationStatus::Open),
            _ => None,
        };
        parsed.tickets.push(Ticket {
            external_id: id.to_string(),
            subject: t["subject"].as_str().map(String::from),
            status,
            channel: channel(t["channel"].as_str()),
            customer_email,
            assignee: t["assignee_user"]["name"].as_str().map(String::from),
            tags: t["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|tag| tag["name"].as_str().map(String::from))
                .collect(),
            handle_seconds: None,
            created_at,
            solved_at: t["closed_datetime"].as_str().and_then(parse_time),
            updated_at: t["updated_datetime"]
                .as_str()
                .and_then(parse_time)
                .unwrap_or(created_at),
            messages: ticket_messages,
            csat,
        });
    }
    for (key, listing) in &by_ticket {
        if seen.contains(key) {
            continue;
        }
        for (j, m) in listing {
            let reason = format!("unknown ticket: ticket_id {key} is not in {TICKETS}");
            parsed.reject(MESSAGES, format!("data[{j}]"), "messages", reason, m);
        }
    }
    Ok(parsed)
}
