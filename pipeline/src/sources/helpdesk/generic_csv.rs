//! Any helpdesk's CSV export, one row per message, read through a mapping file
//! (`--map mapping.toml`, documented in `data/helpdesk/csv/mapping.toml`): which column holds
//! which field, how times are written, and how the tool's values translate into supportlake's.
//!
//! Rows sharing a `conversation_id` form one ticket; ticket-level columns are read from its
//! first row, the rating from whichever row carries one. A row missing a required field
//! (`conversation_id`, `message_time`, `role`, `text`), with a value that does not parse or
//! map, or with too few cells is rejected on its own.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{Csat, Message, Parsed, Ticket};
use crate::error::{PipelineError, Result};
use crate::lake::vocab::{ConversationStatus, Role};

/// A mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub version: u32,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub csv: CsvFormat,
    pub time: TimeFormat,
    /// supportlake field → CSV header.
    pub columns: BTreeMap<String, String>,
    /// Per field: the tool's value → supportlake's.
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, toml::Value>>,
    #[serde(default)]
    pub csat: Scale,
    #[serde(default)]
    pub handle_time: HandleTime,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub defaults: Defaults,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvFormat {
    pub delimiter: String,
    pub quote: String,
    pub has_header: bool,
    pub encoding: String,
}

impl Default for CsvFormat {
    fn default() -> Self {
        Self {
            delimiter: ",".into(),
            quote: "\"".into(),
            has_header: true,
            encoding: "utf-8".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeFormat {
    /// chrono strftime format of every time column.
    pub format: String,
    /// `UTC` or a fixed offset (`-07:00`) for times written without one.
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub min: i64,
    pub max: i64,
}

impl Default for Scale {
    fn default() -> Self {
        Self { min: 1, max: 5 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandleTime {
    /// `hh:mm:ss`, `seconds` or `minutes`.
    pub format: String,
}

impl Default for HandleTime {
    fn default() -> Self {
        Self {
            format: "seconds".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tags {
    pub separator: String,
}

impl Default for Tags {
    fn default() -> Self {
        Self {
            separator: ",".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub resolution_path: Option<String>,
    #[serde(default)]
    pub import_private_notes: bool,
}

const REQUIRED: [&str; 4] = ["conversation_id", "message_time", "role", "text"];

impl Mapping {
    /// Reads and checks a mapping file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))?;
        let mapping: Self = toml::from_str(&text)
            .map_err(|e| PipelineError::Config(format!("{}: {e}", path.display())))?;
        if mapping.version != 1 {
            return Err(PipelineError::Config(format!(
                "{}: mapping version {} is not supported (1 is)",
                path.display(),
                mapping.version
            )));
        }
        if let Some(missing) = REQUIRED.iter().find(|f| !mapping.columns.contains_key(**f)) {
            return Err(PipelineError::Config(format!(
                "{}: [columns] must name the column of {missing}",
                path.display()
            )));
        }
        if mapping.csv.delimiter.len() != 1 || mapping.csv.quote.len() != 1 {
            return Err(PipelineError::Config(format!(
                "{}: delimiter and quote must be single ASCII characters",
                path.display()
            )));
        }
        if !mapping.csv.encoding.eq_ignore_ascii_case("utf-8") {
            return Err(PipelineError::Config(format!(
                "{}: only utf-8 exports are read (convert with iconv first)",
                path.display()
            )));
        }
        mapping.offset()?;
        Ok(mapping)
    }

    fn offset(&self) -> Result<FixedOffset> {
        let zone = self.time.timezone.trim();
        if zone.eq_ignore_ascii_case("utc") || zone == "Z" {
            return Ok(FixedOffset::east_opt(0).expect("zero offset"));
        }
        DateTime::parse_from_rfc3339(&format!("2000-01-01T00:00:00{zone}"))
            .map(|t| *t.offset())
            .map_err(|_| {
                PipelineError::Config(format!(
                    "[time] timezone {zone:?} is neither UTC nor an offset like -07:00"
                ))
            })
    }

    fn time(&self, text: &str) -> std::result::Result<DateTime<Utc>, String> {
        let format = &self.time.format;
        let parsed = if format.contains("%z") || format.contains("%:z") {
            DateTime::parse_from_str(text, format).map(|t| t.with_timezone(&Utc))
        } else {
            NaiveDateTime::parse_from_str(text, format).map(|t| {
                self.offset()
                    .expect("checked on load")
                    .from_local_datetime(&t)
                    .single()
                    .expect("a fixed offset has no gaps")
                    .with_timezone(&Utc)
            })
        };
        parsed.map_err(|_| format!("{text:?} does not match the time format {format:?}"))
    }

    /// The tool's value of `field` in supportlake's terms (`None`: not listed).
    fn value(&self, field: &str, text: &str) -> Option<&toml::Value> {
        self.values.get(field)?.get(text.trim())
    }

    fn seconds(&self, text: &str) -> Option<i64> {
        match self.handle_time.format.as_str() {
            "hh:mm:ss" => {
                let parts: Vec<i64> = text
                    .split(':')
                    .map(|p| p.trim().parse().ok())
                    .collect::<Option<_>>()?;
                parts.iter().try_fold(0i64, |total, p| Some(total * 60 + p))
            }
            "minutes" => text
                .trim()
                .parse::<f64>()
                .ok()
                .map(|m| (m * 60.0).round() as i64),
            _ => text.trim().parse().ok(),
        }
    }
}

/// One message row, checked.
struct Row {
    conversation: String,
    message: Message,
    private: bool,
    cells: HashMap<String, String>,
}

/// Reads the CSV file at `path` with `mapping`.
pub fn read(path: &Path, mapping: &Mapping) -> Result<Parsed> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(mapping.csv.delimiter.as_bytes()[0])
        .quote(mapping.csv.quote.as_bytes()[0])
        .has_headers(mapping.csv.has_header)
        .flexible(true)
        .from_path(path)
        .map_err(|e| PipelineError::Input(format!("{}: {e}", path.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| PipelineError::Input(format!("{}: {e}", path.display())))?
        .clone();
    for (field, column) in &mapping.columns {
        if !headers.iter().any(|h| h == column) {
            return Err(PipelineError::Input(format!(
                "{}: the mapping's column {column:?} (for {field}) is not in the header",
                path.display()
            )));
        }
    }
    let mut parsed = Parsed::default();
    let mut rows: Vec<Row> = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record_ref = format!("record {}", i + 1);
        let record =
            record.map_err(|e| PipelineError::Input(format!("{}: {e}", path.display())))?;
        let raw = json!(record.iter().collect::<Vec<_>>());
        if record.len() != headers.len() {
            let reason = format!(
                "wrong shape: {} cells where the header has {}",
                record.len(),
                headers.len()
            );
            parsed.reject(&file_name, record_ref, "messages", reason, &raw);
            continue;
        }
        let cells: HashMap<String, String> = mapping
            .columns
            .iter()
            .filter_map(|(field, column)| {
                let i = headers.iter().position(|h| h == column)?;
                let cell = record.get(i)?.trim();
                (!cell.is_empty()).then(|| (field.clone(), cell.to_string()))
            })
            .collect();
        match row(mapping, cells, &record_ref) {
            Ok(row) => rows.push(row),
            Err(reason) => parsed.reject(&file_name, record_ref, "messages", reason, &raw),
        }
    }
    let mut order: Vec<String> = Vec::new();
    let mut tickets: HashMap<String, Vec<Row>> = HashMap::new();
    for row in rows {
        if !tickets.contains_key(&row.conversation) {
            order.push(row.conversation.clone());
        }
        tickets
            .entry(row.conversation.clone())
            .or_default()
            .push(row);
    }
    for id in order {
        let rows = tickets.remove(&id).unwrap_or_default();
        let first = &rows[0].cells;
        let text = |field: &str| first.get(field).cloned();
        let time = |field: &str| first.get(field).and_then(|t| mapping.time(t).ok());
        let mut csat = None;
        for row in &rows {
            let Some(score) = row.cells.get("csat_score") else {
                continue;
            };
            match score.parse::<i64>() {
                Ok(s) if (mapping.csat.min..=mapping.csat.max).contains(&s) => {
                    csat = Some(Csat {
                        score: s,
                        comment: row.cells.get("csat_comment").cloned(),
                        created_at: Some(row.message.created_at),
                    });
                }
                _ => {
                    let reason = format!(
                        "out of range: csat_score = {score:?} (expected {}..{})",
                        mapping.csat.min, mapping.csat.max
                    );
                    parsed.reject(
                        &file_name,
                        format!("{id}.csat"),
                        "csat",
                        reason,
                        &json!(row.cells),
                    );
                }
            }
        }
        let messages: Vec<Message> = rows
            .iter()
            .filter(|r| {
                let skip = r.private && !mapping.defaults.import_private_notes;
                parsed.notes_skipped += usize::from(skip);
                !skip
            })
            .map(|r| r.message.clone())
            .collect();
        let created_at = time("created_at")
            .or_else(|| messages.iter().map(|m| m.created_at).min())
            .unwrap_or_else(|| rows[0].message.created_at);
        let last = rows
            .iter()
            .map(|r| r.message.created_at)
            .max()
            .unwrap_or(created_at);
        let status = text("status").and_then(|s| {
            mapping
                .value("status", &s)
                .and_then(toml::Value::as_str)
                .and_then(|v| match v {
                    "resolved" => Some(ConversationStatus::Resolved),
                    "open" => Some(ConversationStatus::Open),
                    _ => None,
                })
        });
        parsed.tickets.push(Ticket {
            external_id: id,
            subject: text("subject"),
            status,
            channel: text("channel").and_then(|c| {
                mapping
                    .value("channel", &c)
                    .and_then(toml::Value::as_str)
                    .map(String::from)
            }),
            customer_email: text("customer_email"),
            assignee: text("assignee"),
            tags: text("tags")
                .map(|t| {
                    t.split(mapping.tags.separator.as_str())
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            handle_seconds: text("handle_time").and_then(|h| mapping.seconds(&h)),
            created_at,
            solved_at: time("solved_at"),
            updated_at: time("solved_at").map_or(last, |s| s.max(last)),
            messages,
            csat,
        });
    }
    Ok(parsed)
}

fn row(
    mapping: &Mapping,
    cells: HashMap<String, String>,
    record_ref: &str,
) -> std::result::Result<Row, String> {
    for field in REQUIRED {
        if !cells.contains_key(field) {
            return Err(format!(
                "missing field: {field} (column {:?})",
                mapping.columns[field]
            ));
        }
    }
    let role_text = &cells["role"];
    let role = match mapping
        .value("role", role_text)
        .and_then(toml::Value::as_str)
    {
        Some("shopper") => Role::Shopper,
        Some("agent") => Role::Agent,
        _ => {
            return Err(format!(
                "unknown enum value: role = {role_text:?} (the mapping's [values.role] lists {})",
                mapping
                    .values
                    .get("role")
                    .map(|v| v.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            ));
        }
    };
    let created_at = mapping
        .time(&cells["message_time"])
        .map_err(|e| format!("bad timestamp: message_time = {e}"))?;
    let private = cells
        .get("private")
        .and_then(|p| mapping.value("private", p))
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    let conversation = cells["conversation_id"].clone();
    Ok(Row {
        message: Message {
            external_id: cells
                .get("message_id")
                .cloned()
                .unwrap_or_else(|| format!("{conversation}-{record_ref}")),
            role,
            author: cells.get("author").cloned(),
            text: cells["text"].clone(),
            created_at,
        },
        conversation,
        private,
        cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_handle_times_and_values_follow_the_mapping() {
        let mapping: Mapping = toml::from_str(
            r#"
            version = 1
            [time]
            format = "%d/%m/%Y %H:%M"
            timezone = "-07:00"
            [columns]
            conversation_id = "T"
            message_time = "At"
            role = "Who"
            text = "Body"
            [values.role]
            Customer = "shopper"
            [handle_time]
            format = "hh:mm:ss"
            "#,
        )
        .unwrap();
        assert_eq!(
            mapping.time("19/09/2026 19:14").unwrap().to_rfc3339(),
            "2026-09-20T02:14:00+00:00"
        );
        assert!(mapping.time("2026-09-19 19:14").is_err());
        assert_eq!(mapping.seconds("01:05:02"), Some(3902));
        assert_eq!(mapping.seconds("5 min"), None);
        let cells = |who: &str| {
            [
                ("conversation_id", "1"),
                ("message_time", "19/09/2026 19:14"),
                ("role", who),
                ("text", "hi"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>()
        };
        assert_eq!(
            row(&mapping, cells("Customer"), "r").unwrap().message.role,
            Role::Shopper
        );
        let refused = row(&mapping, cells("Bot"), "r").err().unwrap();
        assert!(
            refused.contains("unknown enum value: role = \"Bot\""),
            "{refused}"
        );
    }
}
