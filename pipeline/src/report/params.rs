//! Turning `--from`, `--to`, `--shop` and `--param k=v` into typed values bound to a report's
//! `$placeholders`. Values are bound as literals of the declared type by DataFusion, never
//! pasted into the SQL text, so a shop called `x' OR '1'='1` is only ever a string.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::datafusion::scalar::ScalarValue;

use super::definitions::{Definition, ParamType};
use crate::error::{PipelineError, Result};
use crate::sql::SqlEngine;

/// What the user asked for, before anything is parsed.
#[derive(Debug, Clone, Default)]
pub struct ReportArgs {
    pub from: Option<String>,
    pub to: Option<String>,
    pub shop: Option<String>,
    /// `--param k=v`, in the order given.
    pub params: Vec<(String, String)>,
}

/// A parameter's bound value and how it is shown to the reader.
#[derive(Debug, Clone)]
pub struct Bound {
    pub name: String,
    pub value: ScalarValue,
    pub display: String,
}

fn bad(message: String) -> PipelineError {
    PipelineError::Report(message)
}

/// Resolves every declared parameter of `report`: given values are parsed and checked,
/// `auto` ones come from the data (the shop's first and last conversation), `derived` ones
/// from the others.
pub async fn resolve(
    engine: &SqlEngine,
    report: &Definition,
    args: &ReportArgs,
) -> Result<Vec<Bound>> {
    let mut given: BTreeMap<String, String> = BTreeMap::new();
    let flags = [("from", &args.from), ("to", &args.to), ("shop", &args.shop)];
    for (name, value) in flags {
        if let Some(value) = value {
            given.insert(name.into(), value.clone());
        }
    }
    for (name, value) in &args.params {
        if given.insert(name.clone(), value.clone()).is_some() {
            return Err(bad(format!("parameter `{name}` given twice")));
        }
    }
    for name in given.keys() {
        match report.param(name) {
            None => {
                let declared: Vec<&str> = report
                    .params
                    .iter()
                    .filter(|p| p.default != "derived")
                    .map(|p| p.name.as_str())
                    .collect();
                return Err(bad(format!(
                    "report `{}` has no parameter `{name}`; it takes: {}",
                    report.name,
                    declared.join(", ")
                )));
            }
            Some(p) if p.default == "derived" => {
                return Err(bad(format!(
                    "parameter `{name}` of `{}` is derived from the others and cannot be set",
                    report.name
                )));
            }
            Some(_) => {}
        }
    }

    let mut values: HashMap<String, ScalarValue> = HashMap::new();
    for p in report
        .params
        .iter()
        .filter(|p| !matches!(p.default.as_str(), "auto" | "derived"))
    {
        let text = given.get(&p.name).unwrap_or(&p.default);
        values.insert(p.name.clone(), parse(&p.name, p.ty, text)?);
    }
    if let Some(shop) = given.get("shop").filter(|_| report.param("shop").is_some()) {
        values.insert(
            "shop".into(),
            ScalarValue::Utf8(Some(shop_id(engine, shop).await?)),
        );
    }

    // The time window: given bounds win; missing ones come from the shop's conversations.
    let parsed_bound = |name: &str| -> Result<Option<i64>> {
        given
            .get(name)
            .map(|text| match parse(name, ParamType::Timestamp, text)? {
                ScalarValue::TimestampMicrosecond(Some(us), _) => Ok(us),
                _ => unreachable!("parse returns the declared type"),
            })
            .transpose()
    };
    if report.param("from").is_some() || report.param("to").is_some() {
        let (given_from, given_to) = (parsed_bound("from")?, parsed_bound("to")?);
        // The data's range is a scan of conversations: only needed for a missing bound.
        let (first, last) = if given_from.is_some() && given_to.is_some() {
            (None, None)
        } else {
            data_range(engine, values.get("shop")).await?
        };
        let to = given_to.unwrap_or(last.map_or_else(now_micros, |l| l + 1_000_000));
        let from = match (given_from, report.window_days) {
            (Some(from), _) => from,
            (None, Some(days)) => to - days * 86_400_000_000,
            (None, None) => first.unwrap_or(to),
        };
        if from > to {
            return Err(bad(format!(
                "the window is empty backwards: from {} is after to {}",
                show_micros(from),
                show_micros(to)
            )));
        }
        values.insert("from".into(), timestamp(from));
        values.insert("to".into(), timestamp(to));
        if report.param("prev_from").is_some() {
            values.insert("prev_from".into(), timestamp(from - (to - from)));
        }
    }

    report
        .params
        .iter()
        .map(|p| {
            let value = values
                .remove(&p.name)
                .ok_or_else(|| bad(format!("parameter `{}` has no value", p.name)))?;
            Ok(Bound {
                name: p.name.clone(),
                display: display(&value),
                value,
            })
        })
        .collect()
}

fn parse(name: &str, ty: ParamType, text: &str) -> Result<ScalarValue> {
    let fail = |expected: &str| bad(format!("parameter `{name}`: `{text}` is not {expected}"));
    Ok(match ty {
        ParamType::Text => ScalarValue::Utf8(Some(text.to_string())),
        ParamType::Int => ScalarValue::Int64(Some(text.parse().map_err(|_| fail("an integer"))?)),
        ParamType::Float => {
            let value: f64 = text.parse().map_err(|_| fail("a number"))?;
            if !value.is_finite() {
                return Err(fail("a finite number"));
            }
            ScalarValue::Float64(Some(value))
        }
        ParamType::Timestamp => {
            let micros = if let Ok(t) = DateTime::parse_from_rfc3339(text) {
                t.timestamp_micros()
            } else if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                day.and_hms_opt(0, 0, 0)
                    .expect("midnight exists")
                    .and_utc()
                    .timestamp_micros()
            } else {
                return Err(fail(
                    "a date (2026-09-01) or an RFC 3339 time (2026-09-01T08:00:00Z)",
                ));
            };
            timestamp(micros)
        }
    })
}

fn timestamp(micros: i64) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into()))
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn show_micros(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros).map_or_else(
        || micros.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn display(value: &ScalarValue) -> String {
    match value {
        ScalarValue::TimestampMicrosecond(Some(us), _) => show_micros(*us),
        ScalarValue::Utf8(Some(s)) => s.clone(),
        other => other.to_string(),
    }
}

/// A shop given by domain (`ridgeline-outfitters.com`) is looked up to its shop_id; anything
/// else is taken as a shop_id (a shop with no rows simply has empty reports).
async fn shop_id(engine: &SqlEngine, given: &str) -> Result<String> {
    if given == "*" {
        return Ok(given.into());
    }
    if !engine.has_table("shops") {
        return Ok(given.into());
    }
    let sql = "SELECT shop_id FROM shops WHERE domain = $given OR myshopify_domain = $given";
    let params = HashMap::from([("given".to_string(), ScalarValue::Utf8(Some(given.into())))]);
    let batches = engine.query_with_params(sql, params).await?;
    if let Some(id) = crate::sql::strings(&batches, "shop_id")?
        .into_iter()
        .flatten()
        .next()
    {
        return Ok(id);
    }
    Ok(given.into())
}

/// The first conversation start and the last conversation activity of a shop (or all), in
/// microseconds since the epoch.
async fn data_range(
    engine: &SqlEngine,
    shop: Option<&ScalarValue>,
) -> Result<(Option<i64>, Option<i64>)> {
    if !engine.has_table("conversations") {
        return Ok((None, None));
    }
    let sql = "SELECT CAST(min(started_at) AS BIGINT) AS first, \
                      CAST(max(coalesce(ended_at, started_at)) AS BIGINT) AS last \
               FROM conversations WHERE $shop = '*' OR shop_id = $shop";
    let shop = shop.cloned().unwrap_or(ScalarValue::Utf8(Some("*".into())));
    let batches = engine
        .query_with_params(sql, HashMap::from([("shop".into(), shop)]))
        .await?;
    let first = crate::sql::integers(&batches, "first")?
        .into_iter()
        .flatten()
        .next();
    let last = crate::sql::integers(&batches, "last")?
        .into_iter()
        .flatten()
        .next();
    Ok((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_by_declared_type() {
        assert_eq!(
            parse("n", ParamType::Int, "7").unwrap(),
            ScalarValue::Int64(Some(7))
        );
        assert!(parse("n", ParamType::Int, "7 days").is_err());
        assert!(parse("t", ParamType::Float, "NaN").is_err());
        assert_eq!(
            parse("from", ParamType::Timestamp, "2026-09-01").unwrap(),
            parse("from", ParamType::Timestamp, "2026-09-01T00:00:00Z").unwrap()
        );
        assert_eq!(
            parse("from", ParamType::Timestamp, "2026-09-01T02:00:00+02:00").unwrap(),
            parse("from", ParamType::Timestamp, "2026-09-01").unwrap()
        );
        let err = parse("from", ParamType::Timestamp, "last week").unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }
}
