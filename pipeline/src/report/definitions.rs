//! The shipped SQL files and what their headers declare.
//!
//! Every file under `pipeline/reports/` opens with a comment header that is both the
//! documentation a reader sees and the contract the runner enforces:
//!
//! ```sql
//! -- report: reopen                      (or `view:` / `fragment:`)
//! -- title: Reopens and durable resolution
//! -- summary: One line for `supportlake report --list`.
//! -- definition: The metric in words; continuation lines are indented
//! --   by at least two spaces after the `--`.
//! -- param: reopen_days int 7 | The reopen window N, in days.
//! -- column: reopen_rate | reopened ÷ resolved.
//! -- chart: bar x=path y=reopen_rate where intent=all
//! ```
//!
//! The files are compiled into the binary, so a report always runs the definition that was
//! reviewed with the code; `supportlake report NAME --sql` prints the exact statement.

use std::fmt::Write as _;
use std::sync::OnceLock;

use crate::error::{PipelineError, Result};

/// One shipped SQL file: `(path under pipeline/reports, contents)`.
const FILES: &[(&str, &str)] = &[
    (
        "views/intents.sql",
        include_str!("../../reports/views/intents.sql"),
    ),
    (
        "views/turn_facts.sql",
        include_str!("../../reports/views/turn_facts.sql"),
    ),
    (
        "views/conversation_facts.sql",
        include_str!("../../reports/views/conversation_facts.sql"),
    ),
    (
        "fragments/unanswered_turns.sql",
        include_str!("../../reports/fragments/unanswered_turns.sql"),
    ),
    (
        "resolution.sql",
        include_str!("../../reports/resolution.sql"),
    ),
    ("reopen.sql", include_str!("../../reports/reopen.sql")),
    (
        "csat-by-path.sql",
        include_str!("../../reports/csat-by-path.sql"),
    ),
    (
        "escalations.sql",
        include_str!("../../reports/escalations.sql"),
    ),
    (
        "unanswered-intents.sql",
        include_str!("../../reports/unanswered-intents.sql"),
    ),
    (
        "knowledge-gaps.sql",
        include_str!("../../reports/knowledge-gaps.sql"),
    ),
    ("load.sql", include_str!("../../reports/load.sql")),
    ("presale.sql", include_str!("../../reports/presale.sql")),
];

/// What a file defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A parameter-free view registered in every SQL session (`conversation_facts`, ...).
    View,
    /// A piece of SQL other files include with `-- include: NAME`.
    Fragment,
    /// A named report run by `supportlake report NAME`.
    Report,
}

/// The type a parameter is parsed and bound as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Timestamp,
    Text,
    Int,
    Float,
}

/// A declared parameter.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub ty: ParamType,
    /// `auto` (resolved from the data), `derived` (computed from other parameters, not
    /// settable) or a literal default.
    pub default: String,
    pub description: String,
}

/// A documented output column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub description: String,
}

/// How the HTML page draws the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    /// `line` (x is an ordered axis, e.g. weeks) or `bar` (x is a category).
    pub kind: ChartKind,
    pub x: String,
    pub y: Vec<String>,
    /// Only rows where this column has this value are drawn (e.g. the `intent = all` totals).
    pub filter: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    Line,
    Bar,
}

/// One parsed SQL file.
#[derive(Debug, Clone)]
pub struct Definition {
    pub kind: Kind,
    pub name: String,
    pub path: &'static str,
    pub title: String,
    pub summary: String,
    pub definition: String,
    pub params: Vec<Param>,
    pub columns: Vec<Column>,
    pub chart: Option<Chart>,
    /// Default window length when `from` is not given (`-- window-days: N`).
    pub window_days: Option<i64>,
    /// A step applied after the SQL by another crate (`-- post: cluster_questions`).
    pub post: Option<String>,
    /// The header comment as written (definition, parameters, columns).
    pub header: String,
    /// The statement, with `-- include:` lines replaced by the fragments they name.
    pub sql: String,
}

impl Definition {
    /// The declared parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// Every shipped definition, parsed once. The files are part of the binary, so a parse error
/// is a bug caught by the unit tests, not something a user can cause.
pub fn all() -> &'static [Definition] {
    static PARSED: OnceLock<Vec<Definition>> = OnceLock::new();
    PARSED.get_or_init(|| {
        let raw: Vec<Definition> = FILES
            .iter()
            .map(|(path, text)| {
                parse(path, text).unwrap_or_else(|e| panic!("pipeline/reports/{path}: {e}"))
            })
            .collect();
        let fragments: Vec<(String, String)> = raw
            .iter()
            .filter(|d| d.kind == Kind::Fragment)
            .map(|d| (d.name.clone(), d.sql.clone()))
            .collect();
        raw.into_iter()
            .map(|mut d| {
                d.sql = expand_includes(&d.sql, &fragments)
                    .unwrap_or_else(|e| panic!("pipeline/reports/{}: {e}", d.path));
                d
            })
            .collect()
    })
}

/// The reports, in the order they are listed.
pub fn reports() -> impl Iterator<Item = &'static Definition> {
    all().iter().filter(|d| d.kind == Kind::Report)
}

/// The views, in registration order (a view may use the ones before it).
pub fn views() -> impl Iterator<Item = &'static Definition> {
    all().iter().filter(|d| d.kind == Kind::View)
}

/// The report called `name`, or an error listing the ones that exist.
pub fn report(name: &str) -> Result<&'static Definition> {
    reports().find(|d| d.name == name).ok_or_else(|| {
        let names: Vec<&str> = reports().map(|d| d.name.as_str()).collect();
        PipelineError::Report(format!(
            "no report named `{name}`; the reports are: {}",
            names.join(", ")
        ))
    })
}

/// `docs/metrics.md`: every view, shared definition and report with its definition,
/// parameters and columns, generated from the headers so the documentation cannot drift from
/// the SQL (a test compares the file with this).
pub fn markdown() -> String {
    let cell = |text: &str| text.replace('|', "\\|");
    let mut out = String::from(
        "# Metrics and reports\n\n\
         <!-- Generated from the headers of pipeline/reports/*.sql: do not edit. After changing a \
         header, run `UPDATE_DOCS=1 cargo test -p pipeline metrics_doc`. -->\n\n\
         Every number supportlake reports is a SQL file in `pipeline/reports/`: its header (below) \
         says what it means, the statement computes it. Run a report with \
         `supportlake report NAME [--from DATE --to DATE --shop SHOP --param k=v] \
         [--format table|csv|json|html]`, print its SQL with `supportlake report NAME --sql`, and \
         query the views directly with `supportlake sql \"SELECT ... FROM conversation_facts\"` \
         (or from DuckDB, Spark or pandas over the same Delta tables).\n",
    );
    let sections = [
        (
            Kind::View,
            "Views",
            "Registered in every SQL session; the reports build on them.",
        ),
        (
            Kind::Fragment,
            "Shared definitions",
            "Included by the reports that name them.",
        ),
        (
            Kind::Report,
            "Reports",
            "The names are the CLI (and dashboard) names.",
        ),
    ];
    for (kind, heading, intro) in sections {
        let _ = write!(out, "\n## {heading}\n\n{intro}\n");
        for d in all().iter().filter(|d| d.kind == kind) {
            let title = if d.title.is_empty() {
                String::new()
            } else {
                format!(" — {}", d.title)
            };
            let _ = write!(out, "\n### `{}`{title}\n\n{}\n", d.name, d.summary);
            if !d.definition.is_empty() {
                let _ = write!(out, "\n{}\n", d.definition);
            }
            let _ = write!(out, "\nSource: `pipeline/reports/{}`.\n", d.path);
            if !d.params.is_empty() {
                out.push_str("\n| parameter | type | default | meaning |\n|---|---|---|---|\n");
                for p in &d.params {
                    let ty = format!("{:?}", p.ty).to_lowercase();
                    let _ = writeln!(
                        out,
                        "| `{}` | {ty} | `{}` | {} |",
                        p.name,
                        cell(&p.default),
                        cell(&p.description)
                    );
                }
            }
            if !d.columns.is_empty() {
                out.push_str("\n| column | meaning |\n|---|---|\n");
                for c in &d.columns {
                    let _ = writeln!(out, "| `{}` | {} |", c.name, cell(&c.description));
                }
            }
        }
    }
    out
}

fn parse(path: &'static str, text: &str) -> std::result::Result<Definition, String> {
    let mut kind_name: Option<(Kind, String)> = None;
    let mut d = Definition {
        kind: Kind::Report,
        name: String::new(),
        path,
        title: String::new(),
        summary: String::new(),
        definition: String::new(),
        params: Vec::new(),
        columns: Vec::new(),
        chart: None,
        window_days: None,
        post: None,
        header: String::new(),
        sql: String::new(),
    };
    // Which free-text field an indented continuation line extends.
    #[derive(Clone, Copy)]
    enum Continues {
        Nothing,
        Definition,
        Param,
        Column,
    }
    let mut continues = Continues::Nothing;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next_if(|l| l.starts_with("--")) {
        d.header.push_str(line);
        d.header.push('\n');
        let content = &line[2..];
        if content.starts_with("   ") || content.trim().is_empty() {
            let more = content.trim();
            let target = match continues {
                Continues::Definition => &mut d.definition,
                Continues::Param => &mut d.params.last_mut().expect("set with it").description,
                Continues::Column => &mut d.columns.last_mut().expect("set with it").description,
                Continues::Nothing if more.is_empty() => continue,
                Continues::Nothing => return Err(format!("continuation without a field: {line}")),
            };
            if !more.is_empty() {
                target.push(' ');
                target.push_str(more);
            }
            continue;
        }
        let (key, value) = content
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("header line is not `-- key: value`: {line}"))?;
        let value = value.trim();
        continues = Continues::Nothing;
        match key {
            "report" => kind_name = Some((Kind::Report, value.into())),
            "view" => kind_name = Some((Kind::View, value.into())),
            "fragment" => kind_name = Some((Kind::Fragment, value.into())),
            "title" => d.title = value.into(),
            "summary" => d.summary = value.into(),
            "definition" => {
                d.definition = value.into();
                continues = Continues::Definition;
            }
            "param" => {
                d.params.push(parse_param(value)?);
                continues = Continues::Param;
            }
            "column" => {
                let (name, description) = value
                    .split_once('|')
                    .ok_or_else(|| format!("column without `| description`: {line}"))?;
                d.columns.push(Column {
                    name: name.trim().into(),
                    description: description.trim().into(),
                });
                continues = Continues::Column;
            }
            "chart" => d.chart = Some(parse_chart(value)?),
            "window-days" => {
                d.window_days = Some(value.parse().map_err(|_| format!("window-days: {value}"))?);
            }
            "post" => d.post = Some(value.into()),
            other => return Err(format!("unknown header key `{other}`")),
        }
    }
    let (kind, name) = kind_name.ok_or("the header names no report, view or fragment")?;
    d.kind = kind;
    d.name = name;
    d.sql = lines.collect::<Vec<_>>().join("\n").trim().to_string();
    if d.summary.is_empty() {
        return Err("no `-- summary:` line".into());
    }
    if kind != Kind::Fragment && d.columns.is_empty() {
        return Err("no `-- column:` lines".into());
    }
    Ok(d)
}

/// `name type default | description`
fn parse_param(value: &str) -> std::result::Result<Param, String> {
    let (spec, description) = value
        .split_once('|')
        .ok_or_else(|| format!("param without `| description`: {value}"))?;
    let words: Vec<&str> = spec.split_whitespace().collect();
    let [name, ty, default] = words[..] else {
        return Err(format!("param is not `name type default`: {spec}"));
    };
    let ty = match ty {
        "timestamp" => ParamType::Timestamp,
        "text" => ParamType::Text,
        "int" => ParamType::Int,
        "float" => ParamType::Float,
        other => return Err(format!("param {name}: unknown type `{other}`")),
    };
    Ok(Param {
        name: name.into(),
        ty,
        default: default.into(),
        description: description.trim().into(),
    })
}

/// `bar x=path y=a,b where intent=all`
fn parse_chart(value: &str) -> std::result::Result<Chart, String> {
    let mut words = value.split_whitespace();
    let kind = match words.next() {
        Some("line") => ChartKind::Line,
        Some("bar") => ChartKind::Bar,
        other => return Err(format!("chart kind must be line or bar, not {other:?}")),
    };
    let (mut x, mut y, mut filter) = (None, Vec::new(), None);
    while let Some(word) = words.next() {
        if word == "where" {
            let condition = words.next().ok_or("chart `where` without a condition")?;
            let (column, value) = condition
                .split_once('=')
                .ok_or_else(|| format!("chart condition is not column=value: {condition}"))?;
            filter = Some((column.into(), value.into()));
        } else if let Some(column) = word.strip_prefix("x=") {
            x = Some(column.to_string());
        } else if let Some(columns) = word.strip_prefix("y=") {
            y = columns.split(',').map(str::to_string).collect();
        } else {
            return Err(format!("unknown chart word `{word}`"));
        }
    }
    Ok(Chart {
        kind,
        x: x.ok_or("chart without x=")?,
        y: if y.is_empty() {
            return Err("chart without y=".into());
        } else {
            y
        },
        filter,
    })
}

/// Replaces each `-- include: NAME` line with that fragment's SQL.
fn expand_includes(
    sql: &str,
    fragments: &[(String, String)],
) -> std::result::Result<String, String> {
    sql.lines()
        .map(|line| match line.trim().strip_prefix("-- include:") {
            Some(name) => fragments
                .iter()
                .find(|(n, _)| n == name.trim())
                .map(|(_, body)| body.clone())
                .ok_or_else(|| format!("includes unknown fragment `{}`", name.trim())),
            None => Ok(line.to_string()),
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(|lines| lines.join("\n"))
}

/// The `$name` placeholders a statement uses (outside string literals and comments).
pub fn placeholders(sql: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in sql.lines() {
        let code = line.split("--").next().unwrap_or_default();
        let mut in_string = false;
        for (i, c) in code.char_indices() {
            match c {
                '\'' => in_string = !in_string,
                '$' if !in_string => {
                    let name: String = code[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && !found.contains(&name) {
                        found.push(name);
                    }
                }
                _ => {}
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_file_parses_and_declares_what_it_uses() {
        let reports: Vec<&str> = reports().map(|d| d.name.as_str()).collect();
        assert_eq!(
            reports,
            [
                "resolution",
                "reopen",
                "csat-by-path",
                "escalations",
                "unanswered-intents",
                "knowledge-gaps",
                "load",
                "presale"
            ]
        );
        for d in all().iter().filter(|d| d.kind != Kind::Fragment) {
            for used in placeholders(&d.sql) {
                assert!(
                    d.param(&used).is_some(),
                    "{}: uses ${used} without a `-- param:` line",
                    d.path
                );
            }
            for declared in &d.params {
                assert!(
                    placeholders(&d.sql).contains(&declared.name)
                        || (declared.name == "cluster_similarity" && d.post.is_some()),
                    "{}: declares {} but never uses it",
                    d.path,
                    declared.name
                );
            }
            assert!(
                !d.sql.contains("-- include:"),
                "{}: include left unexpanded",
                d.path
            );
            if d.kind == Kind::View {
                assert!(d.params.is_empty(), "{}: views take no parameters", d.path);
            }
        }
    }

    #[test]
    fn charts_name_documented_columns() {
        for d in reports() {
            let chart = d
                .chart
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no chart", d.name));
            let documented = |c: &str| d.columns.iter().any(|col| col.name == c);
            for column in std::iter::once(&chart.x)
                .chain(&chart.y)
                .chain(chart.filter.as_ref().map(|(c, _)| c))
            {
                assert!(
                    documented(column),
                    "{}: chart uses undocumented {column}",
                    d.name
                );
            }
        }
    }

    #[test]
    fn header_errors_are_reported() {
        assert!(
            parse("x.sql", "-- report: x\nSELECT 1")
                .unwrap_err()
                .contains("summary")
        );
        assert!(
            parse(
                "x.sql",
                "-- report: x\n-- summary: s\n-- colour: red\nSELECT 1"
            )
            .unwrap_err()
            .contains("unknown header key")
        );
        assert!(parse_param("n int | no default").is_err());
        assert!(parse_chart("pie x=a y=b").is_err());
        assert!(expand_includes("-- include: nope", &[]).is_err());
    }

    #[test]
    fn metrics_doc_is_generated_from_the_headers() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md");
        let generated = markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == generated,
            "docs/metrics.md is out of date: run UPDATE_DOCS=1 cargo test -p pipeline metrics_doc"
        );
        for d in all() {
            assert!(
                current.contains(&format!("### `{}`", d.name)),
                "{} missing",
                d.name
            );
        }
    }

    #[test]
    fn placeholders_skip_strings_and_comments() {
        assert_eq!(
            placeholders("SELECT '$no', $yes -- $nor\nWHERE a = $from_day AND b = $yes"),
            ["yes", "from_day"]
        );
    }
}
