//! Prometheus metrics in the text exposition format: request counts and latency histograms
//! per route, and what the answers did (intents, handoffs by reason, abstentions by reason).
//!
//! A handful of labelled counters does not need a metrics framework: they live in a mutex-
//! guarded map, touched once per request.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (bound, count) in BUCKETS.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Values {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    intents: BTreeMap<String, u64>,
    handoffs: BTreeMap<String, u64>,
    abstentions: BTreeMap<String, u64>,
    webhooks: BTreeMap<String, u64>,
    webhook_duplicates: BTreeMap<String, u64>,
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<Values>,
}

impl Metrics {
    fn with(&self, update: impl FnOnce(&mut Values)) {
        update(&mut crate::unpoisoned(&self.values));
    }

    /// One finished request on `route` (the route pattern, not the raw path, so ids do not
    /// explode the label set; for the same reason a method HTTP does not define is `other`).
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let method = method_label(method);
        self.with(|v| {
            *v.requests
                .entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
            v.latency
                .entry(route.to_string())
                .or_default()
                .observe(took.as_secs_f64());
        });
    }

    /// One automated answer.
    pub fn answer(&self, intent: &str, abstain_reason: Option<&str>, handoff_reason: Option<&str>) {
        self.with(|v| {
            *v.intents.entry(intent.to_string()).or_default() += 1;
            if let Some(reason) = abstain_reason {
                *v.abstentions.entry(reason.to_string()).or_default() += 1;
            }
            if let Some(reason) = handoff_reason {
                *v.handoffs.entry(reason.to_string()).or_default() += 1;
            }
        });
    }

    /// One acknowledged webhook delivery (a duplicate is acknowledged and dropped).
    pub fn webhook(&self, topic: &str, duplicate: bool) {
        self.with(|v| {
            let counter = if duplicate {
                &mut v.webhook_duplicates
            } else {
                &mut v.webhooks
            };
            *counter.entry(topic.to_string()).or_default() += 1;
        });
    }

    /// The exposition text; `outbox` and `webhook_outbox` are the entries waiting for the
    /// lake.
    pub fn render(&self, outbox: i64, webhook_outbox: i64) -> String {
        let v = crate::unpoisoned(&self.values);
        let mut out = String::new();
        out.push_str("# HELP supportlake_http_requests_total HTTP requests by route and status.\n# TYPE supportlake_http_requests_total counter\n");
        for ((method, route, status), n) in &v.requests {
            let _ = writeln!(
                out,
                "supportlake_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP supportlake_http_request_duration_seconds Time to answer a request.\n# TYPE supportlake_http_request_duration_seconds histogram\n");
        for (route, h) in &v.latency {
            for (bound, count) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(
                    out,
                    "supportlake_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "supportlake_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\nsupportlake_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\nsupportlake_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        let counters = [
            (
                "supportlake_answers_total",
                "Automated answers by intent.",
                "intent",
                &v.intents,
            ),
            (
                "supportlake_handoffs_total",
                "Handoffs to a person by reason.",
                "reason",
                &v.handoffs,
            ),
            (
                "supportlake_abstentions_total",
                "Answers that said they did not know, by reason.",
                "reason",
                &v.abstentions,
            ),
            (
                "supportlake_webhooks_total",
                "Webhook deliveries durably acknowledged, by topic.",
                "topic",
                &v.webhooks,
            ),
            (
                "supportlake_webhook_duplicates_total",
                "Webhook deliveries dropped as repeats of one already acknowledged, by topic.",
                "topic",
                &v.webhook_duplicates,
            ),
        ];
        for (name, help, label, values) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (value, n) in values {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP supportlake_lake_outbox_rows Rows recorded but not yet written to the lake.\n# TYPE supportlake_lake_outbox_rows gauge\nsupportlake_lake_outbox_rows {outbox}"
        );
        let _ = writeln!(
            out,
            "# HELP supportlake_webhook_outbox_deliveries Deliveries acknowledged but not yet applied to the lake.\n# TYPE supportlake_webhook_outbox_deliveries gauge\nsupportlake_webhook_outbox_deliveries {webhook_outbox}"
        );
        out
    }
}

/// HTTP's own methods by name; any other name a client sends counts as `other`, so a
/// client cannot grow the metrics without bound by inventing methods.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_prometheus_text_format() {
        let metrics = Metrics::default();
        metrics.request("POST", "/v1/chat", 200, Duration::from_millis(7));
        metrics.request("POST", "/v1/chat", 200, Duration::from_millis(70));
        metrics.answer("order_status", None, None);
        metrics.answer("talk_to_human", None, Some("explicit_request"));
        metrics.webhook("orders/paid", false);
        metrics.webhook("orders/paid", true);
        let text = metrics.render(3, 4);
        assert!(
            text.contains("supportlake_webhooks_total{topic=\"orders/paid\"} 1")
                && text.contains("supportlake_webhook_duplicates_total{topic=\"orders/paid\"} 1")
                && text.contains("supportlake_webhook_outbox_deliveries 4"),
            "{text}"
        );
        assert!(text.contains("supportlake_http_requests_total{method=\"POST\",route=\"/v1/chat\",status=\"200\"} 2"), "{text}");
        // Invented methods share one label.
        metrics.request("BREW", "unmatched", 405, Duration::from_millis(1));
        metrics.request("X-ANY", "unmatched", 405, Duration::from_millis(1));
        let text = metrics.render(3, 4);
        assert!(text.contains("supportlake_http_requests_total{method=\"other\",route=\"unmatched\",status=\"405\"} 2"), "{text}");
        assert!(!text.contains("BREW") && !text.contains("X-ANY"), "{text}");
        assert!(
            text.contains(
                "supportlake_http_request_duration_seconds_bucket{route=\"/v1/chat\",le=\"0.01\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "supportlake_http_request_duration_seconds_bucket{route=\"/v1/chat\",le=\"0.1\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("supportlake_handoffs_total{reason=\"explicit_request\"} 1"),
            "{text}"
        );
        assert!(text.contains("supportlake_lake_outbox_rows 3"), "{text}");
    }
}
