//! A report as one standalone HTML page: definition, parameters, an SVG chart and the table.
//!
//! No scripts, fonts or stylesheets are fetched: the page is a single file an analyst can
//! attach to an email or open from disk years later. The chart is drawn from the header's
//! `-- chart:` line (which columns, which rows) as inline SVG with a text alternative.

use std::fmt::Write as _;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::concat_batches;

use super::ReportOutput;
use super::definitions::{Chart, ChartKind};
use crate::error::Result;
use crate::sql::{floats, strings};

/// Colour-blind-safe series colours (Okabe–Ito).
const COLOURS: &[&str] = &["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00"];
/// Bars beyond this many categories are left to the table.
const MAX_BARS: usize = 30;

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page.
pub fn page(output: &ReportOutput) -> Result<String> {
    let d = output.definition;
    let table = single_batch(&output.batches)?;
    let mut html = String::new();
    let title = if d.title.is_empty() {
        &d.name
    } else {
        &d.title
    };
    let _ = write!(
        html,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — supportlake</title>
<style>
body{{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1f23}}
h1{{font-size:1.5rem;margin-bottom:.25rem}} .summary{{color:#444;margin-top:0}}
dl{{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;font-size:.9rem}} dt{{font-weight:600}} dd{{margin:0}}
details{{margin:1rem 0;font-size:.92rem}} figure{{margin:1.5rem 0}} figcaption{{font-size:.85rem;color:#555}}
.table-wrap{{overflow-x:auto}} table{{border-collapse:collapse;font-size:.85rem}}
th,td{{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}}
th{{background:#f5f6f7;position:sticky;top:0}} td.num{{text-align:right;font-variant-numeric:tabular-nums}}
svg text{{font:12px system-ui,sans-serif;fill:#333}}
</style></head><body>
<h1>{title}</h1>
<p class="summary">{summary}</p>
"#,
        title = escape(title),
        summary = escape(&d.summary),
    );
    html.push_str("<dl>\n");
    for p in &output.params {
        let _ = writeln!(
            html,
            "<dt>{}</dt><dd>{}</dd>",
            escape(&p.name),
            escape(&p.display)
        );
    }
    html.push_str("</dl>\n");
    let _ = writeln!(
        html,
        "<details><summary>Definition</summary><p>{}</p><p>Recompute it: <code>supportlake report {} --sql</code> prints the SQL (pipeline/reports/{}).</p></details>",
        escape(&d.definition),
        escape(&d.name),
        escape(d.path)
    );
    match (&d.chart, &table) {
        (Some(chart), Some(table)) => html.push_str(&figure(chart, table)?),
        (_, None) => html
            .push_str("<p><strong>No rows</strong>: nothing in this window for this shop.</p>\n"),
        (None, Some(_)) => {}
    }
    if let Some(table) = &table {
        html.push_str(&data_table(table, d)?);
    }
    html.push_str("</body></html>\n");
    Ok(html)
}

fn single_batch(batches: &[RecordBatch]) -> Result<Option<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let all = concat_batches(&first.schema(), batches)?;
    Ok((all.num_rows() > 0).then_some(all))
}

/// A column's values as display text (NULL as empty).
fn texts(table: &RecordBatch, name: &str) -> Result<Vec<String>> {
    Ok(strings(std::slice::from_ref(table), name)?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

/// The chart's rows: x labels and one value list per series.
struct Series {
    labels: Vec<String>,
    names: Vec<String>,
    values: Vec<Vec<Option<f64>>>,
}

fn series(chart: &Chart, table: &RecordBatch) -> Result<Series> {
    let keep: Vec<bool> = match &chart.filter {
        Some((name, value)) => texts(table, name)?.iter().map(|v| v == value).collect(),
        None => vec![true; table.num_rows()],
    };
    let pick = |all: Vec<String>| -> Vec<String> {
        all.into_iter()
            .zip(&keep)
            .filter_map(|(v, k)| k.then_some(v))
            .collect()
    };
    let labels = pick(texts(table, &chart.x)?);
    let mut values = Vec::new();
    for name in &chart.y {
        let all = floats(std::slice::from_ref(table), name)?;
        values.push(
            all.into_iter()
                .zip(&keep)
                .filter_map(|(v, k)| k.then_some(v))
                .collect(),
        );
    }
    Ok(Series {
        labels,
        names: chart.y.clone(),
        values,
    })
}

fn figure(chart: &Chart, table: &RecordBatch) -> Result<String> {
    let data = series(chart, table)?;
    if data.labels.is_empty() {
        return Ok("<p>No rows to chart in this window.</p>\n".into());
    }
    let max = data
        .values
        .iter()
        .flatten()
        .flatten()
        .fold(0.0_f64, |m, v| m.max(*v));
    let max = if max > 0.0 { max } else { 1.0 };
    let svg = match chart.kind {
        ChartKind::Bar => bars(&data, max),
        ChartKind::Line => lines(&data, max),
    };
    let shown = match (chart.kind, data.labels.len()) {
        (ChartKind::Bar, n) if n > MAX_BARS => {
            format!(" (the first {MAX_BARS} of {n}; all are in the table)")
        }
        _ => String::new(),
    };
    let filter = chart
        .filter
        .as_ref()
        .map(|(c, v)| format!(", rows where {c} = {v}"))
        .unwrap_or_default();
    Ok(format!(
        "<figure>{svg}<figcaption>{} by {}{}{}</figcaption></figure>\n",
        escape(&data.names.join(", ")),
        escape(&chart.x),
        escape(&filter),
        escape(&shown)
    ))
}

fn legend(names: &[String], y: f64) -> String {
    let mut out = String::new();
    let mut x = 0.0;
    for (i, name) in names.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let _ = write!(
            out,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
            y - 10.0,
            x + 16.0,
            y,
            escape(name)
        );
        x += 24.0 + 7.5 * name.len() as f64;
    }
    out
}

fn value_label(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else if value.abs() < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let cut: String = label.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// Horizontal bars: category labels stay readable however long they are.
fn bars(data: &Series, max: f64) -> String {
    let n = data.labels.len().min(MAX_BARS);
    let per_series = 14.0;
    let band = per_series * data.names.len() as f64 + 10.0;
    let (label_width, plot_width, top) = (280.0, 420.0, 28.0);
    let height = top + band * n as f64 + 10.0;
    let width = label_width + plot_width + 60.0;
    let mut svg = format!(
        r#"<svg role="img" aria-label="bar chart" viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" xmlns="http://www.w3.org/2000/svg">"#
    );
    svg.push_str(&legend(&data.names, 14.0));
    for (row, label) in data.labels.iter().take(n).enumerate() {
        let y0 = top + band * row as f64;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end"><title>{}</title>{}</text>"#,
            label_width - 8.0,
            y0 + band / 2.0 + 2.0,
            escape(label),
            escape(&shorten(label, 40))
        );
        for (s, values) in data.values.iter().enumerate() {
            let Some(value) = values[row] else { continue };
            let w = (value / max * plot_width).max(0.0);
            let y = y0 + 5.0 + per_series * s as f64;
            let _ = write!(
                svg,
                r#"<rect x="{label_width}" y="{y}" width="{w:.1}" height="{}" fill="{}"><title>{}: {}</title></rect><text x="{:.1}" y="{}">{}</text>"#,
                per_series - 2.0,
                COLOURS[s % COLOURS.len()],
                escape(&data.names[s]),
                value_label(value),
                label_width + w + 4.0,
                y + 10.0,
                value_label(value)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Lines over an ordered x axis (weeks).
fn lines(data: &Series, max: f64) -> String {
    let (left, top, plot_width, plot_height) = (48.0, 28.0, 640.0, 220.0);
    let (width, height) = (left + plot_width + 20.0, top + plot_height + 40.0);
    let n = data.labels.len();
    let x_at = |i: usize| {
        if n == 1 {
            left + plot_width / 2.0
        } else {
            left + plot_width * i as f64 / (n - 1) as f64
        }
    };
    let y_at = |v: f64| top + plot_height - v / max * plot_height;
    let mut svg = format!(
        r#"<svg role="img" aria-label="line chart" viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" xmlns="http://www.w3.org/2000/svg">"#
    );
    svg.push_str(&legend(&data.names, 14.0));
    for step in 0..=4 {
        let v = max * f64::from(step) / 4.0;
        let y = y_at(v);
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e3e3"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + plot_width,
            left - 6.0,
            y + 4.0,
            value_label(v)
        );
    }
    let every = n.div_ceil(10).max(1);
    for (i, label) in data
        .labels
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
    {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x_at(i),
            top + plot_height + 18.0,
            escape(&shorten(label, 12))
        );
    }
    for (s, values) in data.values.iter().enumerate() {
        let colour = COLOURS[s % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x_at(i), y_at(v))))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{} {}: {}</title></circle>"#,
                    x_at(i),
                    y_at(*v),
                    escape(&data.labels[i]),
                    escape(&data.names[s]),
                    value_label(*v)
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

fn data_table(table: &RecordBatch, d: &super::Definition) -> Result<String> {
    let mut html = String::from("<div class=\"table-wrap\"><table>\n<thead><tr>");
    let schema = table.schema();
    for field in schema.fields() {
        let title = d
            .columns
            .iter()
            .find(|c| &c.name == field.name())
            .map(|c| c.description.as_str())
            .unwrap_or_default();
        let _ = write!(
            html,
            r#"<th scope="col" title="{}">{}</th>"#,
            escape(title),
            escape(field.name())
        );
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    let columns: Vec<(bool, Vec<String>)> = schema
        .fields()
        .iter()
        .map(|f| Ok((f.data_type().is_numeric(), texts(table, f.name())?)))
        .collect::<Result<_>>()?;
    for row in 0..table.num_rows() {
        html.push_str("<tr>");
        for (numeric, values) in &columns {
            let class = if *numeric { r#" class="num""# } else { "" };
            let _ = write!(html, "<td{class}>{}</td>", escape(&values[row]));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody></table></div>\n");
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_markup_and_attributes() {
        assert_eq!(
            escape(r#"<b onclick="x">Tom & Jerry's</b>"#),
            "&lt;b onclick=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/b&gt;"
        );
    }

    #[test]
    fn long_labels_are_shortened_on_a_char_boundary() {
        assert_eq!(shorten("héllo wörld", 6), "héllo…");
        assert_eq!(shorten("short", 6), "short");
    }

    #[test]
    fn bar_lengths_are_proportional() {
        let data = Series {
            labels: vec!["a".into(), "b".into()],
            names: vec!["n".into()],
            values: vec![vec![Some(2.0), Some(1.0)]],
        };
        let svg = bars(&data, 2.0);
        assert!(svg.contains(r#"width="420.0""#), "{svg}");
        assert!(svg.contains(r#"width="210.0""#), "{svg}");
    }
}
