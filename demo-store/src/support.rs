//! The helpdesk history: conversations with their messages, the automated turns as the
//! answer server records them, handoffs, CSAT and reopened cases.
//!
//! Conversations are produced day by day in time order. Each draws an intent from the
//! store's mix, a shopper and (for order intents) one of that shopper's recent orders, a
//! channel and a resolution path, then plays the conversation out with templates. Resolved
//! cases can schedule a follow-up contact a few days later (a reopen); those wait in a queue
//! that only ever holds the next week's follow-ups, so memory stays flat at any scale.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use chrono::{DateTime, Duration, FixedOffset, Timelike};
use serde_json::{Value, json};

use super::catalog;
use super::commerce::{self, Customer, Order, Timeline};
use super::content::{ARTICLES, POLICIES, TEMPLATES, UTTERANCES};
use super::rng::{Rng, Stream};
use pipeline::sources::export::format_cents;
use pipeline::text::doc_key;

/// Intents and their share of conversations.
pub const INTENT_MIX: &[(&str, f64)] = &[
    ("order_status", 22.0),
    ("return_exchange", 10.0),
    ("product_question", 10.0),
    ("stock_availability", 6.0),
    ("shipping_info", 7.0),
    ("refund_status", 5.0),
    ("refund_request", 4.0),
    ("change_shipping_address", 4.0),
    ("cancel_order", 4.0),
    ("change_order", 3.0),
    ("refund_policy", 4.0),
    ("cancellation_policy", 1.5),
    ("payment_methods", 2.0),
    ("payment_issue", 2.5),
    ("invoice", 2.0),
    ("account_help", 3.0),
    ("newsletter", 1.0),
    ("place_order", 2.0),
    ("complaint", 3.0),
    ("feedback", 1.5),
    ("talk_to_human", 2.5),
    ("out_of_scope", 1.5),
];

/// How the assistant signs off after a shopper says it helped (not an answer: no turn).
const AI_CLOSINGS: &[&str] = &[
    "Glad that helped! Anything else I can check for you?",
    "You're welcome. Happy trails!",
    "Happy to help. If anything else comes up, just message us here.",
    "Great! I'll close this chat, but you can reply any time to pick it back up.",
];

fn needs_verification(intent: &str) -> bool {
    pipeline::intents::get(intent).is_some_and(|i| i.needs_verification)
}

/// The `model_version` of the history's turns: an earlier assistant's, on purpose not the
/// form the answer server writes (`<index::MODEL_ID>/<generation>`), so a store's
/// generated history and its live turns stay apart in `turns`.
pub const MODEL_VERSION: &str = "supportlake-0.1/all-MiniLM-L6-v2-int8";

pub fn conversation_count(scale: u32) -> usize {
    2500 * scale as usize
}

/// Which knowledge documents an intent's answers draw on, by keywords over doc keys.
static DOCS_BY_INTENT: LazyLock<BTreeMap<&'static str, Vec<String>>> = LazyLock::new(|| {
    let mut docs: Vec<(String, String)> = Vec::new();
    for p in POLICIES.iter() {
        for h in pipeline::text::headings(&p.body_html) {
            docs.push((
                doc_key(&format!("policy:{}", p.policy_type), &h),
                format!("{} {}", p.title, h).to_lowercase(),
            ));
        }
    }
    for a in ARTICLES.iter() {
        let first = pipeline::text::headings(&a.body_html)
            .into_iter()
            .next()
            .unwrap_or_else(|| a.title.clone());
        docs.push((
            doc_key(&format!("article:{}", a.handle), &first),
            format!("{} {} {}", a.handle, a.title, a.tags.join(" ")).to_lowercase(),
        ));
    }
    let keywords: &[(&str, &[&str])] = &[
        ("order_status", &["track", "shipping", "deliver"]),
        ("return_exchange", &["return", "exchange"]),
        ("refund_request", &["refund", "return"]),
        ("refund_status", &["refund"]),
        ("refund_policy", &["refund", "return", "final sale"]),
        ("cancellation_policy", &["cancel"]),
        ("cancel_order", &["cancel"]),
        ("change_order", &["change", "modify", "edit"]),
        ("change_shipping_address", &["address", "change"]),
        (
            "shipping_info",
            &["shipping", "delivery", "international", "duties"],
        ),
        ("payment_methods", &["payment", "gift card", "klarna"]),
        ("payment_issue", &["payment", "charge"]),
        ("invoice", &["invoice", "receipt"]),
        ("account_help", &["account", "password"]),
        ("newsletter", &["newsletter", "email"]),
        (
            "product_question",
            &["size", "care", "fit", "material", "waterproof"],
        ),
        ("stock_availability", &["stock", "restock", "size"]),
        ("place_order", &["order", "promo", "gift"]),
        ("complaint", &["warranty", "guarantee", "damaged"]),
        ("feedback", &["sustainab", "review"]),
    ];
    keywords
        .iter()
        .map(|(intent, words)| {
            let keys = docs
                .iter()
                .filter(|(_, text)| words.iter().any(|w| text.contains(w)))
                .map(|(k, _)| k.clone())
                .collect();
            (*intent, keys)
        })
        .collect()
});

/// A follow-up contact scheduled by an earlier conversation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Followup {
    at: DateTime<FixedOffset>,
    parent: String,
    parent_stream: u64,
    intent: String,
    customer: usize,
    order: Option<usize>,
}

/// Streams the conversations of one scale, in time order, to `emit`.
pub fn conversations(
    seed: u64,
    scale: u32,
    timeline: &Timeline,
    mut emit: impl FnMut(Value) -> std::io::Result<()>,
) -> std::io::Result<usize> {
    let per_day = commerce::per_day_counts(conversation_count(scale), 2.5);
    let mut pending: BTreeSet<Followup> = BTreeSet::new();
    let mut stream = 0u64;
    let mut emitted = 0usize;
    for (day, &count) in per_day.iter().enumerate() {
        let day = day as i64;
        // The sale's "where is my order" wave arrives a few days after the sale.
        let order_status_boost = if (commerce::SALE_DAY + 2..=commerce::SALE_DAY + 6).contains(&day)
        {
            2.5
        } else {
            1.0
        };
        let mut todays: Vec<(DateTime<FixedOffset>, u64, Option<Followup>)> =
            Vec::with_capacity(count);
        for _ in 0..count {
            let mut rng = Rng::for_entity(seed, Stream::Conversation, stream);
            todays.push((commerce::time_on_day(&mut rng, day), stream, None));
            stream += 1;
        }
        let day_end = commerce::window_start() + Duration::days(day + 1);
        while let Some(first) = pending.first().cloned() {
            if first.at >= day_end {
                break;
            }
            pending.pop_first();
            todays.push((first.at, first.parent_stream | 1 << 40, Some(first)));
        }
        todays.sort_by_key(|(at, stream_id, _)| (*at, *stream_id));
        for (at, stream_id, followup) in todays {
            let mut rng = Rng::for_entity(seed, Stream::Conversation, stream_id);
            rng.next_u64(); // the draw that placed it in the day
            let id = format!("conv_{emitted:07}");
            let (record, next) = play(
                seed,
                scale,
                timeline,
                &mut rng,
                &id,
                at,
                followup.as_ref(),
                order_status_boost,
            );
            emit(record)?;
            emitted += 1;
            if let Some(mut next) = next {
                next.parent_stream = stream_id;
                if next.at < commerce::exported_at() {
                    pending.insert(next);
                }
            }
        }
    }
    Ok(emitted)
}

struct Script {
    messages: Vec<Value>,
    clock: DateTime<FixedOffset>,
    id: String,
}

impl Script {
    /// The shopper asks for more and the assistant hands the conversation to a person.
    fn shopper_escalates(
        &mut self,
        rng: &mut Rng,
        intent: &str,
        asks: String,
        confidence: f64,
        after_seconds: i64,
    ) {
        self.say("shopper", None, asks, None, after_seconds);
        let turn = turn_json(rng, "handoff", intent, confidence, &[], false, None, false);
        self.say(
            "ai",
            None,
            rng.pick(&TEMPLATES.ai_handoff).clone(),
            Some(turn),
            2,
        );
    }

    fn say(
        &mut self,
        role: &str,
        author: Option<&str>,
        text: String,
        turn: Option<Value>,
        after_seconds: i64,
    ) -> String {
        self.clock += Duration::seconds(after_seconds);
        let seq = self.messages.len();
        let id = format!("{}_m{seq:02}", self.id);
        let mut message = json!({
            "id": id, "seq": seq, "role": role, "author": author,
            "created_at": commerce::ts(self.clock),
        });
        message["text"] = Value::String(text);
        if let Some(mut turn) = turn {
            turn["id"] = json!(format!("{}_t{seq:02}", self.id));
            message["turn"] = turn;
        }
        self.messages.push(message);
        id
    }
}

/// Context for filling template placeholders.
struct Facts {
    values: BTreeMap<&'static str, String>,
}

impl Facts {
    fn fill(&self, template: impl AsRef<str>) -> String {
        let mut out = template.as_ref().to_string();
        for (key, value) in &self.values {
            out = out.replace(&format!("{{{key}}}"), value);
        }
        // Any placeholder the context cannot fill is said in words rather than left raw.
        while let (Some(start), Some(end)) = (out.find('{'), out.find('}')) {
            if end < start {
                break;
            }
            out.replace_range(start..=end, "it");
        }
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn play(
    seed: u64,
    scale: u32,
    timeline: &Timeline,
    rng: &mut Rng,
    id: &str,
    at: DateTime<FixedOffset>,
    followup: Option<&Followup>,
    order_status_boost: f64,
) -> (Value, Option<Followup>) {
    let now = commerce::exported_at();
    let day = (at - commerce::window_start()).num_days();
    let intent: String = match followup {
        Some(f) => f.intent.clone(),
        None => {
            let mix: Vec<(&str, f64)> = INTENT_MIX
                .iter()
                .map(|(i, w)| {
                    (
                        *i,
                        if *i == "order_status" {
                            w * order_status_boost
                        } else {
                            *w
                        },
                    )
                })
                .collect();
            (*rng.weighted(&mix)).to_string()
        }
    };
    let needs_order = needs_verification(&intent);
    // An order of the right age: recent for tracking, older for returns and refunds.
    let order: Option<Order> = match followup {
        Some(f) => f.order.map(|j| commerce::order(seed, scale, timeline, j)),
        None if needs_order => {
            let (back_from, back_to) = match intent.as_str() {
                "return_exchange" | "refund_request" | "refund_status" | "complaint" => (25, 6),
                "order_status" => (12, 1),
                _ => (5, 0),
            };
            let lo = timeline.orders_before_day(day - back_from);
            let hi = timeline.orders_before_day(day - back_to).max(lo);
            (hi > lo)
                .then(|| commerce::order(seed, scale, timeline, lo + rng.below(hi - lo)))
                .filter(|o| o.created_at < at)
        }
        None => None,
    };
    let customer_index: Option<usize> = match (followup, &order) {
        (Some(f), _) => Some(f.customer),
        (None, Some(o)) => Some(o.customer),
        (None, None) => rng
            .chance(0.6)
            .then(|| rng.skewed(commerce::customer_count(scale), 1.6)),
    };
    let customer: Option<Customer> = customer_index.map(|c| commerce::customer(seed, c));
    let channel = *rng.weighted(&[("chat", 72.0), ("email", 23.0), ("contact_form", 5.0)]);
    let agent = rng.pick(&TEMPLATES.agent_names).clone();

    // Facts for the templates.
    let product = catalog::product(
        seed,
        match &order {
            Some(o) => o.lines[0].product,
            None => rng.skewed(catalog::product_count(scale), 1.8),
        },
    );
    let variant = match &order {
        Some(o) => product.variants[o.lines[0].variant].clone(),
        None => rng.pick(&product.variants).clone(),
    };
    let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
    values.insert("product", product.title.clone());
    values.insert("type", product.kind.name.to_lowercase());
    values.insert("size", variant.option1.clone());
    values.insert(
        "color",
        variant
            .option2
            .clone()
            .unwrap_or_else(|| "the same colour".into()),
    );
    values.insert("agent", agent.clone());
    values.insert("qty", variant.quantity.to_string());
    if let Some(c) = &customer {
        values.insert("first_name", c.first_name.clone());
        values.insert("email", c.email.clone());
    } else {
        values.insert("first_name", "there".into());
        values.insert("email", "my email".into());
    }
    if let Some(o) = &order {
        values.insert("order_number", o.name());
        if let Some(s) = o.shipments.last() {
            values.insert("carrier", s.carrier.into());
            values.insert("tracking_number", s.tracking_number.clone());
            values.insert(
                "eta",
                s.estimated_delivery_at.format("%A, %b %-d").to_string(),
            );
        } else {
            values.insert("carrier", "the carrier".into());
            values.insert("tracking_number", "(not assigned yet)".into());
            values.insert(
                "eta",
                (o.created_at + Duration::days(6))
                    .format("%A, %b %-d")
                    .to_string(),
            );
        }
        let deadline =
            o.delivered_at().unwrap_or(o.created_at + Duration::days(5)) + Duration::days(30);
        values.insert("return_deadline", deadline.format("%B %-d").to_string());
        let refund = o.refund.as_ref().map_or(o.total_cents(), |r| r.1);
        values.insert("refund_amount", format!("${}", format_cents(refund)));
    }
    let facts = Facts { values };

    // The shopper's opening message.
    let opener = match followup {
        Some(_) => facts.fill(rng.pick(&TEMPLATES.shopper_followups.reopen)),
        None => match TEMPLATES.shopper_openers.get(&intent) {
            Some(templates) => facts.fill(rng.pick(templates)),
            None => {
                let text = rng.pick(&UTTERANCES[&intent]).clone();
                match &order {
                    Some(o) => replace_long_numbers(&text, &o.name()),
                    None => text,
                }
            }
        },
    };

    let mut script = Script {
        messages: Vec::new(),
        clock: at,
        id: id.to_string(),
    };
    script.say("shopper", None, opener, None, 0);

    let sensitive = pipeline::intents::get(&intent)
        .is_some_and(|i| i.human_required == pipeline::intents::HumanRequired::Always);
    // A complaint goes to a person before anything is verified; the person verifies.
    let verify = needs_verification(&intent) && intent != "complaint" && order.is_some();
    let mut path = if channel != "chat" {
        "human_only"
    } else {
        "ai_only"
    };
    let mut handoff: Option<Value> = None;
    let mut confirmed = false;
    let mut abstained_any = false;
    let mut agent_seconds = 0i64;

    if channel == "chat" {
        if verify && !rng.chance(0.3) {
            // No storefront token: ask for order number + email first.
            let turn = turn_json(rng, "verification", &intent, 0.9, &[], false, None, true);
            script.say(
                "ai",
                None,
                rng.pick(&TEMPLATES.ai_verification_prompt).clone(),
                Some(turn),
                rng.between(1, 3),
            );
            if rng.chance(0.12) {
                path = "abandoned";
            } else {
                script.say(
                    "shopper",
                    None,
                    facts.fill(rng.pick(&TEMPLATES.shopper_followups.verification_reply)),
                    None,
                    rng.between(20, 150),
                );
            }
        }
        if path != "abandoned" {
            let docs = DOCS_BY_INTENT
                .get(intent.as_str())
                .cloned()
                .unwrap_or_default();
            let missing_knowledge = intent == "out_of_scope"
                || (!sensitive
                    && rng.chance(match intent.as_str() {
                        "product_question" | "stock_availability" => 0.2,
                        _ if docs.is_empty() => 0.3,
                        _ => 0.08,
                    }));
            if sensitive {
                let confidence = 0.7 + rng.unit() * 0.25;
                let turn = turn_json(
                    rng, "handoff", &intent, confidence, &docs, false, None, false,
                );
                script.say(
                    "ai",
                    None,
                    rng.pick(&TEMPLATES.ai_handoff).clone(),
                    Some(turn),
                    rng.between(1, 3),
                );
                path = if rng.chance(0.9) {
                    "ai_then_human"
                } else {
                    "abandoned"
                };
                let reason = if intent == "talk_to_human" {
                    "explicit_request"
                } else {
                    "sensitive_intent"
                };
                handoff = Some(json!({"reason": reason}));
            } else if missing_knowledge {
                abstained_any = true;
                let reason = if intent == "out_of_scope" {
                    "out_of_scope"
                } else if verify {
                    "missing_data"
                } else {
                    "no_relevant_passage"
                };
                let confidence = 0.15 + rng.unit() * 0.3;
                let turn = turn_json(
                    rng,
                    "abstain",
                    &intent,
                    confidence,
                    &docs,
                    true,
                    Some(reason),
                    false,
                );
                script.say(
                    "ai",
                    None,
                    rng.pick(&TEMPLATES.ai_abstentions).clone(),
                    Some(turn),
                    rng.between(1, 3),
                );
                if rng.chance(0.55) {
                    let asks = rng.pick(&TEMPLATES.shopper_followups.ask_human).clone();
                    let after = rng.between(10, 90);
                    script.shopper_escalates(rng, &intent, asks, 0.3, after);
                    path = "ai_then_human";
                    handoff = Some(
                        json!({"reason": if reason == "missing_data" { "missing_data" } else { "low_confidence" }}),
                    );
                } else {
                    path = "abandoned";
                }
            } else {
                let kind = answer_kind(&intent);
                let mut cited = docs;
                if let Some(o) = &order {
                    cited.insert(0, format!("order:{}", o.name()));
                } else if matches!(intent.as_str(), "product_question" | "stock_availability") {
                    cited.insert(0, format!("product:{}", product.handle));
                }
                let answers: Vec<&String> = match TEMPLATES.ai_answers.get(&intent) {
                    Some(all) => {
                        let state = StoreState {
                            shipped: order.as_ref().map(|o| !o.shipments.is_empty()),
                            in_stock: variant.quantity > 0,
                        };
                        let fitting: Vec<&String> =
                            all.iter().filter(|t| state.allows(t)).collect();
                        if fitting.is_empty() {
                            all.iter().collect()
                        } else {
                            fitting
                        }
                    }
                    None => TEMPLATES.ai_abstentions.iter().collect(),
                };
                let confidence = 0.62 + rng.unit() * 0.36;
                let turn = turn_json(rng, kind, &intent, confidence, &cited, false, None, false);
                script.say(
                    "ai",
                    None,
                    facts.fill(rng.pick(&answers)),
                    Some(turn),
                    rng.between(1, 4),
                );
                let r = rng.unit();
                if r < 0.42 {
                    confirmed = true;
                    script.say(
                        "shopper",
                        None,
                        rng.pick(&TEMPLATES.shopper_followups.thanks).clone(),
                        None,
                        rng.between(15, 120),
                    );
                    if rng.chance(0.6) {
                        script.say(
                            "ai",
                            None,
                            rng.pick(AI_CLOSINGS).to_string(),
                            None,
                            rng.between(1, 3),
                        );
                    }
                } else if r < 0.56 {
                    let text = if rng.chance(0.5) {
                        &TEMPLATES.shopper_followups.not_helpful
                    } else {
                        &TEMPLATES.shopper_followups.ask_human
                    };
                    let asks = rng.pick(text).clone();
                    let after = rng.between(15, 120);
                    script.shopper_escalates(rng, &intent, asks, 0.35, after);
                    path = "ai_then_human";
                    handoff = Some(json!({"reason": "explicit_request"}));
                }
            }
        }
    }

    // A person takes over: after the AI hands off, or directly for email.
    let mut resolved_at: Option<DateTime<FixedOffset>> = None;
    let created = script.clock;
    if path == "ai_then_human" || path == "human_only" {
        let wait = business_delay(
            rng,
            created,
            if path == "human_only" {
                3 * 3600
            } else {
                25 * 60
            },
        );
        let claimed = created + Duration::seconds(wait);
        if claimed < now {
            let templates = TEMPLATES
                .agent_replies
                .get(&intent)
                .cloned()
                .unwrap_or_else(|| TEMPLATES.agent_replies["talk_to_human"].clone());
            script.clock = claimed;
            script.say(
                "agent",
                Some(&agent),
                facts.fill(rng.pick(&templates)),
                None,
                rng.between(40, 300),
            );
            agent_seconds += rng.between(90, 600);
            let first_reply = script.clock;
            if rng.chance(0.55) {
                // Back and forth: the shopper needs more, the agent follows up.
                script.say(
                    "shopper",
                    None,
                    rng.pick(&TEMPLATES.shopper_followups.not_helpful).clone(),
                    None,
                    rng.between(60, 1800),
                );
                script.say(
                    "agent",
                    Some(&agent),
                    facts.fill(rng.pick(&templates)),
                    None,
                    rng.between(60, 900),
                );
                agent_seconds += rng.between(60, 400);
            }
            if rng.chance(0.6) {
                script.say(
                    "shopper",
                    None,
                    rng.pick(&TEMPLATES.shopper_followups.thanks).clone(),
                    None,
                    rng.between(60, 1800),
                );
                confirmed = true;
            }
            resolved_at =
                Some(script.clock + Duration::seconds(rng.between(60, 3600))).filter(|t| *t < now);
            if let Some(h) = handoff.as_mut() {
                h["claimed_at"] = json!(commerce::ts(claimed));
                h["first_agent_reply_at"] = json!(commerce::ts(first_reply));
            }
        }
    }
    if let Some(h) = handoff.as_mut() {
        h["id"] = json!(format!("{id}_h"));
        h["created_at"] = json!(commerce::ts(created));
        h["intent"] = json!(intent);
        h["assignee"] = if h.get("claimed_at").is_some() {
            json!(agent)
        } else {
            Value::Null
        };
        h["resolved_at"] = resolved_at.map_or(Value::Null, |t| json!(commerce::ts(t)));
        h["status"] = json!(if path == "abandoned" {
            "abandoned"
        } else if resolved_at.is_some() {
            "resolved"
        } else if h.get("claimed_at").is_some() {
            "claimed"
        } else {
            "open"
        });
        h["packet"] = json!({
            "summary": format!("{intent} via {channel}; the assistant could not finish it"),
            "verified_customer_id": customer.as_ref().filter(|_| verify).map(|c| c.id),
            "order": order.as_ref().map(|o| o.name()),
            "products": [product.handle],
            "ai_attempts": script.messages.iter().filter(|m| m["role"] == "ai").count(),
        });
    }
    let ended_at = script.clock;
    let status = match (path, resolved_at) {
        ("abandoned", _) => "abandoned",
        ("ai_only", _) => "resolved",
        (_, Some(_)) => "resolved",
        _ => "open",
    };
    let csat = (status == "resolved" && rng.chance(0.27)).then(|| {
        let base: &[(i64, f64)] = match path {
            "ai_only" => &[(1, 4.0), (2, 4.0), (3, 10.0), (4, 30.0), (5, 52.0)],
            "ai_then_human" => &[(1, 9.0), (2, 9.0), (3, 17.0), (4, 30.0), (5, 35.0)],
            _ => &[(1, 5.0), (2, 5.0), (3, 10.0), (4, 30.0), (5, 50.0)],
        };
        let mut score = *rng.weighted(base);
        if intent == "complaint" || followup.is_some() {
            score = (score - 1).max(1);
        }
        let comment = rng.chance(0.2).then(|| rng.pick(&[
            "Quick and easy, thanks", "Took too long to get a real answer", "Great help with sizing",
            "Still waiting on my refund", "Super friendly agent", "The bot kept asking the same thing",
        ]).to_string());
        json!({"score": score, "comment": comment, "created_at": commerce::ts(ended_at + Duration::minutes(rng.between(1, 240)))})
    });
    // A reopen: the same shopper comes back about the same thing within a week.
    let next = (status == "resolved"
        && customer_index.is_some()
        && rng.chance(if abstained_any {
            0.12
        } else if confirmed {
            0.02
        } else {
            0.07
        }))
    .then(|| Followup {
        at: ended_at + Duration::hours(rng.between(20, 150)),
        parent: id.to_string(),
        parent_stream: 0,
        intent: intent.clone(),
        customer: customer_index.expect("checked above"),
        order: order.as_ref().map(|o| o.index),
    });

    let record = json!({
        "id": id,
        "channel": channel,
        "customer_id": customer.as_ref().map(|c| c.id),
        "order_id": order.as_ref().map(|o| o.id),
        "primary_intent": intent,
        "status": status,
        "resolution_path": path,
        "shopper_confirmed": confirmed,
        "reopened_from": followup.map(|f| f.parent.clone()),
        "assignee": (path == "ai_then_human" || path == "human_only").then_some(agent),
        "agent_handle_seconds": (agent_seconds > 0).then_some(agent_seconds),
        "tags": if (commerce::SALE_DAY..=commerce::SALE_DAY + 6).contains(&day) { json!(["labor-day-sale"]) } else { json!([]) },
        "started_at": commerce::ts(at),
        "ended_at": commerce::ts(ended_at),
        "updated_at": commerce::ts(resolved_at.unwrap_or(ended_at)),
        "messages": script.messages,
        "handoff": handoff,
        "csat": csat,
    });
    (record, next)
}

/// What the store's records say, so an automated answer never contradicts them (no "it has
/// shipped" for an order still in the warehouse, no "in stock" for a sold-out variant).
struct StoreState {
    /// Whether the order in question has shipped; `None` when there is no order.
    shipped: Option<bool>,
    in_stock: bool,
}

impl StoreState {
    const SHIPPED: &[&str] = &[
        "already shipped",
        "shipped with",
        "in transit",
        "on its way",
    ];
    const NOT_SHIPPED: &[&str] = &[
        "hasn't shipped",
        "hadn't shipped",
        "still being",
        "waiting for",
        "packed at",
    ];
    const SOLD_OUT: &[&str] = &["out of stock", "restock date"];
    const IN_STOCK: &[&str] = &["is in stock", "is available in"];

    fn allows(&self, template: &str) -> bool {
        let says = |phrases: &[&str]| phrases.iter().any(|p| template.contains(p));
        let shipping_ok = match self.shipped {
            Some(true) => !says(Self::NOT_SHIPPED),
            Some(false) => !says(Self::SHIPPED),
            None => true,
        };
        let stock_ok = if self.in_stock {
            !says(Self::SOLD_OUT)
        } else {
            !says(Self::IN_STOCK)
        };
        shipping_ok && stock_ok
    }
}

fn answer_kind(intent: &str) -> &'static str {
    match intent {
        "order_status"
        | "change_order"
        | "change_shipping_address"
        | "cancel_order"
        | "refund_request"
        | "refund_status"
        | "invoice" => "order_data",
        "return_exchange" => "return_eligibility",
        "product_question" => "product_facts",
        "stock_availability" => "stock",
        _ => "knowledge",
    }
}

#[allow(clippy::too_many_arguments)]
fn turn_json(
    rng: &mut Rng,
    kind: &str,
    intent: &str,
    confidence: f64,
    docs: &[String],
    abstained: bool,
    reason: Option<&str>,
    needs_verification: bool,
) -> Value {
    let mut retrieved = Vec::new();
    let mut cited = Vec::new();
    let take = docs.len().min(2 + rng.below(3));
    let start = if docs.is_empty() {
        0
    } else {
        rng.below(docs.len().saturating_sub(take) + 1)
    };
    for (rank, key) in docs.iter().skip(start).take(take).enumerate() {
        let bm25 = round3(
            ((12.0 - rank as f64 * 2.0) * (0.6 + rng.unit() * 0.5)).max(0.5)
                * if abstained { 0.4 } else { 1.0 },
        );
        let vector = round3(
            ((0.82 - rank as f64 * 0.07) * (0.85 + rng.unit() * 0.2))
                * if abstained { 0.55 } else { 1.0 },
        );
        let fused = round3(0.4 * (bm25 / 12.0).min(1.0) + 0.6 * vector);
        retrieved.push(json!({"doc_key": key, "bm25": bm25, "vector": vector, "fused": fused}));
        if !abstained && rank < 2 {
            cited.push(key.clone());
        }
    }
    // Order answers are grounded in the order itself, not only in retrieval.
    if let Some(order_key) = docs
        .first()
        .filter(|k| k.starts_with("order:") || k.starts_with("product:"))
        && !abstained
        && !cited.contains(order_key)
    {
        cited.insert(0, order_key.clone());
    }
    json!({
        "intent": intent,
        "confidence": round3(confidence),
        "retrieved": retrieved,
        "cited_doc_keys": cited,
        "answer_kind": kind,
        "needs_verification": needs_verification,
        "abstained": abstained,
        "abstain_reason": reason,
        "latency_ms": rng.between(280, 2400),
        "model_version": MODEL_VERSION,
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Seconds until a person answers, counting only staffed hours (6 am–9 pm).
fn business_delay(rng: &mut Rng, from: DateTime<FixedOffset>, typical: i64) -> i64 {
    let base = rng.between(typical / 10, typical * 2);
    let hour = from.hour() as i64;
    let closed_wait = if hour >= 21 {
        (24 - hour + 6) * 3600
    } else if hour < 6 {
        (6 - hour) * 3600
    } else {
        0
    };
    base + closed_wait
}

/// Bitext utterances carry made-up order numbers; point them at the real order.
fn replace_long_numbers(text: &str, order_name: &str) -> String {
    static LONG_NUMBER: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"#?\b\d{6,}\b").expect("valid regex"));
    LONG_NUMBER.replace_all(text, order_name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_draws_every_canonical_intent_once() {
        let mut mixed: Vec<&str> = INTENT_MIX.iter().map(|(id, _)| *id).collect();
        let mut canonical: Vec<&str> = pipeline::intents::INTENTS.iter().map(|i| i.id).collect();
        mixed.sort_unstable();
        canonical.sort_unstable();
        assert_eq!(mixed, canonical);
    }

    #[test]
    fn answers_never_contradict_the_records() {
        let unshipped = StoreState {
            shipped: Some(false),
            in_stock: true,
        };
        assert!(!unshipped.allows("Order #1001 shipped with UPS and is on its way."));
        assert!(unshipped.allows("Order #1001 hasn't shipped yet, so it can still be changed."));
        let shipped = StoreState {
            shipped: Some(true),
            in_stock: true,
        };
        assert!(!shipped.allows("Order #1001 is still being prepared."));
        let sold_out = StoreState {
            shipped: None,
            in_stock: false,
        };
        assert!(!sold_out.allows("Good news: the Cascade Jacket is in stock in M."));
        assert!(sold_out.allows("The Cascade Jacket in M is out of stock right now."));
    }

    #[test]
    fn placeholders_are_filled_or_said_in_words() {
        let mut values = BTreeMap::new();
        values.insert("order_number", "#1042".to_string());
        let facts = Facts { values };
        assert_eq!(
            facts.fill("Order {order_number} ships with {carrier}."),
            "Order #1042 ships with it."
        );
    }
}
