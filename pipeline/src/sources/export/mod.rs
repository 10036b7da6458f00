//! The export directory: a directory of Shopify-format exports, read record by record.
//!
//! [`ExportDir::open`] finds the files it knows (see [`FileKind`]) and the manifest that says
//! which shop they belong to; [`ExportDir::read_file`] streams every record of one file to a
//! callback that receives either the rows a record maps to or the reason it cannot be
//! ingested. No record needs another to be mapped, so files can be read in parallel. Large collections are read
//! line by line (JSONL, as Shopify's bulk operations write them), so memory stays flat.

mod conversations;
pub(crate) mod fields;
mod product_csv;
pub(crate) mod shopify;

pub use fields::format_cents;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{PipelineError, Result};
use fields::{Reason, parse_timestamp};

/// The rows one record contributes: `(table, row)` pairs.
pub type Rows = Vec<(&'static str, Value)>;

/// What every transform needs to know besides the record.
#[derive(Debug)]
pub struct Context {
    pub shop_id: String,
    pub shop_domain: String,
    pub pii_key: String,
    /// When the export was taken (µs): the version of rows whose format has no timestamps.
    pub export_time: i64,
    /// Blog id → handle, for article URLs.
    pub blogs: HashMap<i64, String>,
}

/// The files supportlake reads from an export directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    Shop,
    Blogs,
    ProductCsv,
    /// Products in the Admin API's REST shape (a sync's staging area writes them).
    Products,
    InventoryLevels,
    Policies,
    Articles,
    Customers,
    Orders,
    Conversations,
}

impl FileKind {
    /// `(file stem, envelope key of the .json form)`.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::Shop => ("shop", "shop"),
            Self::Blogs => ("blogs", "blogs"),
            Self::ProductCsv => ("products", ""),
            Self::Products => ("products", "products"),
            Self::InventoryLevels => ("inventory_levels", "inventory_levels"),
            Self::Policies => ("policies", "policies"),
            Self::Articles => ("articles", "articles"),
            Self::Customers => ("customers", "customers"),
            Self::Orders => ("orders", "orders"),
            Self::Conversations => ("conversations", "conversations"),
        }
    }

    const ALL: [FileKind; 10] = [
        Self::Shop,
        Self::Blogs,
        Self::ProductCsv,
        Self::Products,
        Self::InventoryLevels,
        Self::Policies,
        Self::Articles,
        Self::Customers,
        Self::Orders,
        Self::Conversations,
    ];

    /// The table a record of this file lands in first (for quarantine rows).
    pub fn table(self) -> &'static str {
        match self {
            Self::Shop => "shops",
            Self::Blogs => "articles",
            Self::ProductCsv | Self::Products => "products",
            Self::InventoryLevels => "inventory_levels",
            Self::Policies => "policies",
            Self::Articles => "articles",
            Self::Customers => "customers",
            Self::Orders => "orders",
            Self::Conversations => "conversations",
        }
    }

    fn transform(self, ctx: &Context, record: &Value) -> Result<Rows, Reason> {
        match self {
            Self::Shop => shopify::shop(ctx, record),
            Self::InventoryLevels => shopify::inventory_level(ctx, record),
            Self::Policies => shopify::policy(ctx, record),
            Self::Articles => shopify::article(ctx, record),
            Self::Customers => shopify::customer(ctx, record),
            Self::Products => shopify::product(ctx, record),
            Self::Orders => shopify::order(ctx, record),
            Self::Conversations => conversations::conversation(ctx, record),
            // Blogs only feed the context; CSV rows take another path.
            Self::Blogs | Self::ProductCsv => Ok(Vec::new()),
        }
    }
}

/// One record's outcome, as handed to the reader's callback.
#[derive(Debug)]
pub enum Outcome {
    Rows(Rows),
    Quarantined {
        file: String,
        record_ref: String,
        table: &'static str,
        reason: Reason,
        raw: String,
    },
}

/// An export directory, opened.
#[derive(Debug)]
pub struct ExportDir {
    pub dir: PathBuf,
    pub shop_id: String,
    pub shop_domain: String,
    pub export_time: i64,
    pub files: Vec<(FileKind, PathBuf)>,
}

impl ExportDir {
    /// Finds the known files and the shop they belong to (`export.json`, else `shop.json`).
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(PipelineError::Input(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let mut files = Vec::new();
        for kind in FileKind::ALL {
            let (stem, _) = kind.names();
            let extensions: &[&str] = if kind == FileKind::ProductCsv {
                &["csv"]
            } else {
                &["jsonl", "json"]
            };
            for ext in extensions {
                let path = dir.join(format!("{stem}.{ext}"));
                if path.is_file() {
                    files.push((kind, path));
                }
            }
        }
        if files.is_empty() {
            return Err(PipelineError::Input(format!(
                "{} holds no Shopify export files (expected e.g. shop.json, products.csv, orders.jsonl)",
                dir.display()
            )));
        }
        let manifest = read_json(&dir.join("export.json")).ok();
        let shop_file = read_json(&dir.join("shop.json")).ok();
        let shop = shop_file.as_ref().and_then(|s| s.get("shop"));
        let shop_id = manifest
            .as_ref()
            .and_then(|m| m.get("shop")?.as_str().map(String::from))
            .or_else(|| shop.and_then(|s| s.get("myshopify_domain")?.as_str().map(String::from)))
            .ok_or_else(|| PipelineError::Input(format!(
                "{}: cannot tell which shop this is: add export.json with \"shop\" or shop.json",
                dir.display()
            )))?;
        let shop_domain = shop
            .and_then(|s| s.get("domain")?.as_str().map(String::from))
            .unwrap_or_else(|| shop_id.clone());
        let export_time = manifest
            .as_ref()
            .and_then(|m| parse_timestamp(m.get("exported_at")?.as_str()?))
            .or_else(|| {
                let modified = std::fs::metadata(&files[0].1).ok()?.modified().ok()?;
                let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
                i64::try_from(since.as_micros()).ok()
            })
            .unwrap_or(0);
        Ok(Self {
            dir: dir.to_path_buf(),
            shop_id,
            shop_domain,
            export_time,
            files,
        })
    }

    /// Total bytes of the known files (for progress).
    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|(_, p)| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Blog handles by id, from `blogs.json` when present.
    pub fn blogs(&self) -> HashMap<i64, String> {
        let Some((_, path)) = self.files.iter().find(|(k, _)| *k == FileKind::Blogs) else {
            return HashMap::new();
        };
        let Ok(value) = read_json(path) else {
            return HashMap::new();
        };
        value
            .get("blogs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|b| {
                Some((
                    b.get("id")?.as_i64()?,
                    b.get("handle")?.as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// Streams every record of one of [`Self::files`] to `sink`, with the bytes of the file
    /// read so far. Files are independent, so callers may read several at once.
    pub fn read_file(
        ctx: &Context,
        kind: FileKind,
        path: &Path,
        mut sink: impl FnMut(Outcome, u64) -> Result<()>,
    ) -> Result<()> {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let quarantine = |record_ref: String, reason: Reason, raw: String| Outcome::Quarantined {
            file: file_name.clone(),
            record_ref,
            table: kind.table(),
            reason,
            raw,
        };
        match (kind, path.extension().and_then(|e| e.to_str())) {
            (FileKind::Blogs, _) => {}
            (FileKind::ProductCsv, _) => read_csv(
                ctx,
                path,
                &mut |outcome, done| sink(outcome, done),
                &quarantine,
            )?,
            (_, Some("jsonl")) => {
                let file = File::open(path).map_err(|e| PipelineError::io(path, e))?;
                let mut reader = BufReader::with_capacity(1 << 20, file);
                let mut line = String::new();
                let mut number = 0u64;
                let mut done = 0u64;
                loop {
                    line.clear();
                    let n = reader
                        .read_line(&mut line)
                        .map_err(|e| PipelineError::io(path, e))?;
                    if n == 0 {
                        break;
                    }
                    number += 1;
                    done += n as u64;
                    let text = line.trim();
                    if text.is_empty() {
                        continue;
                    }
                    let outcome = match serde_json::from_str::<Value>(text) {
                        Err(e) => quarantine(
                            format!("line {number}"),
                            format!("invalid JSON: {e}"),
                            text.to_string(),
                        ),
                        Ok(record) => match kind.transform(ctx, &record) {
                            Ok(rows) => Outcome::Rows(rows),
                            Err(reason) => {
                                quarantine(format!("line {number}"), reason, text.to_string())
                            }
                        },
                    };
                    sink(outcome, done)?;
                }
            }
            (_, _) => {
                // A REST response body: `{"orders": [...]}` (or the object itself for shop.json).
                let text = std::fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))?;
                match serde_json::from_str::<Value>(&text) {
                    Err(e) => sink(
                        quarantine("file".into(), format!("invalid JSON: {e}"), truncate(&text)),
                        size,
                    )?,
                    Ok(body) => {
                        let (_, key) = kind.names();
                        let records: Vec<&Value> = match (kind, body.get(key)) {
                            (FileKind::Shop, _) => vec![&body],
                            (_, Some(Value::Array(items))) => items.iter().collect(),
                            _ => {
                                let reason = format!("wrong type: expected {{\"{key}\": [...]}}");
                                sink(quarantine("file".into(), reason, truncate(&text)), size)?;
                                Vec::new()
                            }
                        };
                        for (i, record) in records.into_iter().enumerate() {
                            let outcome = match kind.transform(ctx, record) {
                                Ok(rows) => Outcome::Rows(rows),
                                Err(reason) => {
                                    quarantine(format!("{key}[{i}]"), reason, record.to_string())
                                }
                            };
                            sink(outcome, 0)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn read_csv(
    ctx: &Context,
    path: &Path,
    sink: &mut dyn FnMut(Outcome, u64) -> Result<()>,
    quarantine: &dyn Fn(String, Reason, String) -> Outcome,
) -> Result<()> {
    let file = File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 20, file));
    let headers = reader
        .headers()
        .map_err(|e| PipelineError::Input(format!("{}: {e}", path.display())))?
        .clone();
    let columns = match product_csv::Columns::new(&headers) {
        Ok(columns) => columns,
        Err(reason) => {
            return sink(
                quarantine(
                    "header".into(),
                    reason,
                    headers.iter().collect::<Vec<_>>().join(","),
                ),
                0,
            );
        }
    };
    let mut state = product_csv::ProductState::default();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let outcome = match product_csv::row(ctx, &columns, &mut state, &record) {
                    Ok(rows) => Outcome::Rows(rows),
                    Err(reason) => quarantine(
                        format!("line {line}"),
                        reason,
                        record.iter().collect::<Vec<_>>().join(","),
                    ),
                };
                sink(outcome, reader.position().byte())?;
            }
            Err(e) => sink(
                quarantine(
                    format!("line {line}"),
                    format!("invalid CSV: {e}"),
                    String::new(),
                ),
                reader.position().byte(),
            )?,
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| PipelineError::Input(format!("{}: {e}", path.display())))
}

/// Quarantine keeps at most this much of a raw record: enough to see the problem.
const RAW_LIMIT: usize = 4096;

pub fn truncate(text: &str) -> String {
    if text.len() <= RAW_LIMIT {
        return text.to_string();
    }
    let mut end = RAW_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
