//! Composing an answer: the intent's handler reads the system of record (orders,
//! shipments, refunds, stock, the return window) or the retrieved passages and says what they
//! say, in a shopper's words, with its sources. It never invents: what the data does not
//! hold, the answer says it does not know.
//!
//! The order of decisions follows DESIGN.md "Answering a shopper": a person when asked for
//! or when the intent is sensitive; "not sure" below the confidence floor; verification
//! before anything about an order; then the handler of the intent.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use index::classifier::Entities;
use index::search::Hit;
use pipeline::intents::HumanRequired;
use regex::Regex;
use serde::Serialize;

use crate::commerce::{Fulfillment, Order, Product, Snapshot};
use crate::store::Identity;

/// Below this calibrated confidence the intent is not trusted: the reply says so and
/// offers a person instead of guessing.
pub const CONFIDENCE_FLOOR: f32 = 0.5;
/// A passage whose cosine with the question is below this does not answer it: measured on
/// the shipped retrieval set, relevant top hits sit at 0.45–0.75 and unrelated ones below 0.35.
pub const RELEVANCE_FLOOR: f32 = 0.4;

/// A message the classifier put out of scope whose best product passage is at least this
/// close (cosine) is a product question: shoppers ask about products in more ways than
/// examples can cover (`product_question` recall was the classifier's weakest, 0.70), and
/// on the demo store product questions score 0.6–0.8 against their product while unrelated
/// messages stay below 0.35.
pub const PRODUCT_MATCH: f32 = 0.55;

/// Intents whose general part the store's policy answers before verification (the order-
/// specific part waits for it): "can I return sale items?" deserves the policy, not only
/// a request for an order number.
const POLICY_BEFORE_VERIFICATION: &[&str] = &[
    "return_exchange",
    "refund_request",
    "cancel_order",
    "change_order",
    "change_shipping_address",
    "invoice",
];

/// Turns an out-of-scope verdict into a product question when a product matches closely
/// (see [`PRODUCT_MATCH`]); returns the intent, confidence and what decided it.
pub fn reconsider(
    intent: String,
    confidence: f32,
    decided_by: &'static str,
    hits: &[Hit],
) -> (String, f32, &'static str) {
    let product = hits
        .iter()
        .filter(|h| h.doc_type == "product")
        .map(|h| h.vector)
        .fold(f32::MIN, f32::max);
    if intent == "out_of_scope" && product >= PRODUCT_MATCH {
        ("product_question".into(), product, "rule:product_match")
    } else {
        (intent, confidence, decided_by)
    }
}

/// What kind of answer a turn gave (the `turns.answer_kind` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    OrderData,
    Stock,
    ProductFacts,
    ReturnEligibility,
    Knowledge,
    Verification,
    Handoff,
    Abstain,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OrderData => "order_data",
            Kind::Stock => "stock",
            Kind::ProductFacts => "product_facts",
            Kind::ReturnEligibility => "return_eligibility",
            Kind::Knowledge => "knowledge",
            Kind::Verification => "verification",
            Kind::Handoff => "handoff",
            Kind::Abstain => "abstain",
        }
    }
}

/// A cited source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    pub doc_key: String,
    pub title: String,
    pub url: String,
    pub snippet: String,
}

impl Source {
    fn of(hit: &Hit) -> Self {
        Self {
            doc_key: hit.key.clone(),
            title: hit.title.clone(),
            url: hit.url.clone(),
            snippet: hit.snippet.clone(),
        }
    }
}

/// A composed answer, before it is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    pub kind: Kind,
    pub sources: Vec<Source>,
    pub needs_verification: bool,
    pub abstain_reason: Option<&'static str>,
    pub handoff_reason: Option<&'static str>,
    /// Orders and products the answer was about (for the handoff packet and the lake).
    pub order: Option<i64>,
    pub products: Vec<String>,
}

impl Answer {
    /// An answer of `kind` saying `text`, with nothing cited or escalated yet.
    pub fn new(kind: Kind, text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            kind,
            sources: Vec::new(),
            needs_verification: false,
            abstain_reason: None,
            handoff_reason: None,
            order: None,
            products: Vec::new(),
        }
    }

    fn abstain(reason: &'static str, text: impl Into<String>) -> Self {
        Self {
            abstain_reason: Some(reason),
            ..Self::new(Kind::Abstain, text)
        }
    }

    fn handoff(reason: &'static str, text: impl Into<String>) -> Self {
        Self {
            handoff_reason: Some(reason),
            ..Self::new(Kind::Handoff, text)
        }
    }

    pub fn abstained(&self) -> bool {
        self.kind == Kind::Abstain
    }
}

/// A passage of the index, whole: what an answer quotes from, and how it is cited.
#[derive(Debug, Clone, PartialEq)]
pub struct Cited {
    pub source: Source,
    pub text: String,
}

/// What the index made of the message.
#[derive(Debug, Clone)]
pub struct Understanding {
    pub intent: String,
    pub confidence: f32,
    /// `rule` when a rule decided (explicit request for a person), else the model.
    pub decided_by: &'static str,
    pub entities: Entities,
    pub hits: Vec<Hit>,
}

/// What an answer may read.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub shop: &'a str,
    pub snapshot: &'a Snapshot,
    pub identity: Option<&'a Identity>,
    pub now: DateTime<Utc>,
    /// A passage by key, for quoting and citing it.
    pub passage: &'a dyn Fn(&str) -> Option<Cited>,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("shop", &self.shop)
            .field("identity", &self.identity)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// Answers one message.
pub fn answer(ctx: &Context<'_>, message: &str, understood: &Understanding) -> Answer {
    let intent = understood.intent.as_str();
    let definition = pipeline::intents::get(intent);
    if intent == "talk_to_human" {
        return Answer::handoff(
            "explicit_request",
            "Of course. I'm passing this conversation to a person on our team; they can see everything we've discussed and will reply here.",
        );
    }
    if intent == "out_of_scope" {
        return Answer::abstain(
            "out_of_scope",
            "I'm sorry, I can't help with that here. I can answer questions about your orders, returns and refunds, shipping and our products, or connect you with a person.",
        );
    }
    if understood.confidence < CONFIDENCE_FLOOR {
        return Answer::abstain(
            "low_confidence",
            "I'm not sure I understood what you need, so I'd rather not guess. Could you rephrase it, or shall I connect you with a person?",
        );
    }
    if definition.is_some_and(|d| d.human_required == HumanRequired::Always) {
        let opener = if intent == "complaint" {
            "I'm sorry to hear that. "
        } else {
            ""
        };
        let mut handoff = Answer::handoff(
            "sensitive_intent",
            format!(
                "{opener}This is something a person on our team should handle, so I've passed it on with our conversation; they'll reply here."
            ),
        );
        handoff.order = ctx.identity.and_then(|i| i.order_id);
        return handoff;
    }
    if definition.is_some_and(|d| d.needs_verification) {
        let Some(identity) = ctx.identity else {
            const ASK: &str = "To keep your order details private, please verify first: enter your order number and the email address you used at checkout.";
            if POLICY_BEFORE_VERIFICATION.contains(&intent) {
                let general = knowledge_answer(ctx, message, understood, &[]);
                if general.kind == Kind::Knowledge {
                    return Answer {
                        text: format!(
                            "{} To check your own order, I need to verify you. {ASK}",
                            general.text
                        ),
                        needs_verification: true,
                        ..general
                    };
                }
            }
            return Answer {
                needs_verification: true,
                ..Answer::new(Kind::Verification, format!("I can help with that. {ASK}"))
            };
        };
        return order_answer(ctx, identity, message, understood);
    }
    match intent {
        "stock_availability" => stock_answer(ctx, message, understood),
        "product_question" => product_answer(ctx, message, understood),
        "feedback" => Answer::new(
            Kind::Knowledge,
            "Thank you for telling us. I've recorded your feedback for the team who look after the store.",
        ),
        _ => knowledge_answer(ctx, message, understood, &[]),
    }
}

/// Answers an order intent for a verified shopper.
fn order_answer(
    ctx: &Context<'_>,
    identity: &Identity,
    message: &str,
    understood: &Understanding,
) -> Answer {
    let order = match order_in_question(ctx, identity, &understood.entities) {
        Ok(Some(order)) => order,
        Ok(None) => {
            return Answer::abstain(
                "missing_data",
                "I couldn't find an order on your verified account, so I can't answer that from our records.",
            );
        }
        Err(NotYours) => {
            return Answer::abstain(
                "missing_data",
                "I can only discuss orders that belong to the account you verified. Please check the order number, or verify with that order's email.",
            );
        }
    };
    let mut answer = match understood.intent.as_str() {
        "order_status" => Answer::new(Kind::OrderData, order_status(order, ctx.now)),
        "return_exchange" => return_answer(ctx, identity, order, message),
        "refund_status" => Answer::new(Kind::OrderData, refund_status(order)),
        "refund_request" if !order.refunds.is_empty() => {
            // Asking for money back on an order that already has a refund is a dispute of
            // that refund: a person decides.
            Answer::handoff(
                "sensitive_intent",
                format!(
                    "{} Since you're asking about more, I've passed this to a person on our team, who'll reply here.",
                    refund_status(order)
                ),
            )
        }
        "refund_request" => return_answer(ctx, identity, order, message),
        "cancel_order" | "change_order" | "change_shipping_address" => {
            change_answer(order, &understood.intent)
        }
        _ => {
            // invoice and other order intents: what the order says, then the store's
            // knowledge on the topic.
            let facts = format!(
                "Order {} was placed on {}{}.",
                order.name,
                day(order.processed_at),
                order
                    .total_price
                    .map(|p| format!(" for {}", money(p, order.currency.as_deref())))
                    .unwrap_or_default()
            );
            knowledge_answer(ctx, message, understood, &[facts])
        }
    };
    answer.order = Some(order.id);
    if answer
        .sources
        .iter()
        .all(|s| !s.doc_key.starts_with("order:"))
    {
        answer.sources.insert(
            0,
            Source {
                doc_key: format!("order:{}", order.name),
                title: format!("Order {}", order.name),
                url: String::new(),
                snippet: order_status(order, ctx.now),
            },
        );
    }
    answer
}

struct NotYours;

/// The order a verified shopper asks about: the number they typed if it is theirs, else the
/// order they verified with, else their latest.
fn order_in_question<'a>(
    ctx: &Context<'a>,
    identity: &Identity,
    entities: &Entities,
) -> Result<Option<&'a Order>, NotYours> {
    let owns = |o: &Order| {
        identity.order_id == Some(o.id)
            || (identity.customer_id.is_some() && o.customer_id == identity.customer_id)
            || o.email_hash.as_deref() == Some(identity.email_hash.as_str())
    };
    if let Some(number) = entities
        .order_numbers
        .first()
        .and_then(|n| n.parse::<i64>().ok())
    {
        return match ctx.snapshot.order(ctx.shop, number) {
            Some(order) if owns(order) => Ok(Some(order)),
            _ => Err(NotYours),
        };
    }
    if let Some(id) = identity.order_id
        && let Some(order) = identity
            .customer_id
            .map(|c| ctx.snapshot.orders_of(ctx.shop, c))
            .unwrap_or_default()
            .into_iter()
            .find(|o| o.id == id)
    {
        return Ok(Some(order));
    }
    if let Some(id) = identity.order_id {
        // Verified by an order whose customer is unknown (a guest checkout).
        return Ok(ctx.snapshot.order_by_id(ctx.shop, id));
    }
    Ok(identity
        .customer_id
        .and_then(|c| ctx.snapshot.orders_of(ctx.shop, c).last().copied()))
}

fn day(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "an unknown date".into(),
        |t| t.format("%B %-d, %Y").to_string(),
    )
}

fn money(amount: f64, currency: Option<&str>) -> String {
    match currency.unwrap_or("USD") {
        "USD" | "CAD" | "AUD" => format!("${amount:.2}"),
        "EUR" => format!("€{amount:.2}"),
        "GBP" => format!("£{amount:.2}"),
        other => format!("{amount:.2} {other}"),
    }
}

/// The items of a shipment, by line title.
fn items_of(order: &Order, fulfillment: &Fulfillment) -> Vec<String> {
    order
        .lines
        .iter()
        .filter(|l| fulfillment.line_item_ids.contains(&l.id))
        .map(|l| l.title.clone())
        .collect()
}

fn join_items(items: &[String]) -> String {
    match items {
        [] => "your items".into(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Where an order is, shipment by shipment, in a shopper's words.
pub fn order_status(order: &Order, now: DateTime<Utc>) -> String {
    if let Some(cancelled) = order.cancelled_at {
        let why = match order.cancel_reason.as_deref() {
            Some("customer") => " at your request",
            Some("inventory") => " because an item was out of stock",
            Some("declined") => " because the payment was declined",
            _ => "",
        };
        let money_back = if let Some(refund) = order.refunds.first() {
            format!(
                " A refund of {} was issued on {}.",
                refund.amount.map_or_else(
                    || "the full amount".into(),
                    |a| money(a, refund.currency.as_deref())
                ),
                day(refund.processed_at)
            )
        } else if order.financial_status.as_deref() == Some("voided") {
            " The payment was released, so you were not charged.".into()
        } else {
            String::new()
        };
        return format!(
            "Order {} was cancelled on {}{why}.{money_back}",
            order.name,
            day(Some(cancelled))
        );
    }
    if order.fulfillments.is_empty() {
        return format!(
            "Order {} (placed {}) hasn't shipped yet. You'll get an email with tracking as soon as it leaves our warehouse.",
            order.name,
            day(order.processed_at)
        );
    }
    let total = order.fulfillments.len();
    let mut parts = Vec::new();
    for (i, f) in order.fulfillments.iter().enumerate() {
        let items = join_items(&items_of(order, f));
        let carrier = f.tracking_company.as_deref().unwrap_or("the carrier");
        let package = if total > 1 {
            format!("Package {} of {total} ({items})", i + 1)
        } else {
            format!("Order {} ({items})", order.name)
        };
        let state = match f.shipment_status.as_deref() {
            Some("delivered") => format!(
                "was delivered on {}",
                day(f.delivered_at.or(f.estimated_delivery_at))
            ),
            Some("out_for_delivery") => format!("is out for delivery with {carrier} today"),
            Some("in_transit") | Some("confirmed") => match f.estimated_delivery_at {
                Some(eta) if eta < now => format!(
                    "is on its way with {carrier} but running late: it was expected by {}",
                    day(Some(eta))
                ),
                Some(eta) => format!(
                    "is on its way with {carrier}, expected by {}",
                    day(Some(eta))
                ),
                None => format!("is on its way with {carrier}"),
            },
            Some("attempted_delivery") => {
                format!("could not be delivered by {carrier} on the first attempt")
            }
            Some("failure") => format!("could not be delivered by {carrier}; we'll be in touch"),
            _ => format!("is packed and waiting for {carrier} to pick it up"),
        };
        let tracking = match (&f.tracking_number, &f.tracking_url) {
            (Some(number), Some(url)) if !url.is_empty() => {
                format!(" ({carrier} tracking number {number}: {url})")
            }
            (Some(number), _) => format!(" ({carrier} tracking number {number})"),
            _ => String::new(),
        };
        parts.push(format!("{package} {state}{tracking}."));
    }
    let shipped: BTreeSet<i64> = order
        .fulfillments
        .iter()
        .flat_map(|f| f.line_item_ids.iter().copied())
        .collect();
    let waiting: Vec<String> = order
        .lines
        .iter()
        .filter(|l| !shipped.contains(&l.id))
        .map(|l| l.title.clone())
        .collect();
    if !waiting.is_empty()
        && order
            .fulfillments
            .iter()
            .all(|f| !f.line_item_ids.is_empty())
    {
        parts.push(format!(
            "{} hasn't shipped yet; you'll get a separate email when it does.",
            join_items(&waiting)
        ));
    }
    parts.join(" ")
}

/// Refunds and returns of an order.
fn refund_status(order: &Order) -> String {
    if !order.refunds.is_empty() {
        let lines: Vec<String> = order
            .refunds
            .iter()
            .map(|r| {
                format!(
                    "{} on {}",
                    r.amount
                        .map_or_else(|| "a refund".into(), |a| money(a, r.currency.as_deref())),
                    day(r.processed_at)
                )
            })
            .collect();
        return format!(
            "We refunded {} for order {} to your original payment method. Banks can take several business days to show a refund on your statement.",
            join_items(&lines),
            order.name
        );
    }
    match order.returns.last() {
        Some(r) if r.status.as_deref() != Some("closed") => format!(
            "Your return for order {} was registered on {} and we're waiting for it to reach us. The refund is issued once it has arrived and been checked.",
            order.name,
            day(r.created_at)
        ),
        _ => format!(
            "There is no refund on order {} yet, and no open return for it.",
            order.name
        ),
    }
}

static WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[a-z]{3,}").expect("valid regex"));
const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "you", "your", "can", "got", "get", "with", "this", "that", "what", "how",
    "does", "did", "are", "was", "were", "have", "has", "had", "from", "bought", "order", "return",
    "exchange", "refund", "item", "items", "want", "would", "like", "please", "send", "back",
    "them", "they", "these", "those", "mine", "just", "still", "about", "there",
];

/// The meaningful words of a text, singular ("boots" and "boot" both give "boot").
fn words(text: &str) -> BTreeSet<String> {
    WORD.find_iter(&text.to_lowercase())
        .map(|m| m.as_str())
        .filter(|w| !STOP_WORDS.contains(w))
        .map(|w| {
            w.strip_suffix('s')
                .filter(|s| s.len() >= 3)
                .unwrap_or(w)
                .to_string()
        })
        .collect()
}

/// Whether a return applies to the order's items, computed from the policy's window and
/// the real delivery date of each item's shipment.
fn return_answer(ctx: &Context<'_>, identity: &Identity, order: &Order, message: &str) -> Answer {
    let policy =
        (ctx.passage)("policy:refund#return-window").or_else(|| (ctx.passage)("policy:refund"));
    let Some(window) = ctx.snapshot.return_window(ctx.shop) else {
        let mut answer = Answer::abstain(
            "missing_data",
            "I couldn't find a return window in the store's refund policy, so I can't tell you whether this order can still be returned.",
        );
        answer.sources.extend(policy.map(|c| c.source));
        return answer;
    };
    if order.cancelled_at.is_some() {
        return Answer::new(Kind::OrderData, order_status(order, ctx.now));
    }
    let tags = identity
        .customer_id
        .map(|c| ctx.snapshot.customer_tags(ctx.shop, c))
        .unwrap_or_default();
    let (days, tier) = window.days_for(tags);
    let asked = words(message);
    let mentioned: Vec<_> = order
        .lines
        .iter()
        .filter(|l| !words(&l.title).is_disjoint(&asked))
        .collect();
    let lines = if mentioned.is_empty() {
        order.lines.iter().collect()
    } else {
        mentioned
    };
    let mut parts = vec![match tier {
        Some(tier) => format!(
            "As a {} member you have {days} days from delivery to return items.",
            capitalise(tier)
        ),
        None => format!("You have {days} days from delivery to return items."),
    }];
    let mut footwear = false;
    let mut products = Vec::new();
    for line in lines {
        let product = line
            .product_id
            .and_then(|id| ctx.snapshot.product_by_id(ctx.shop, id));
        if let Some(p) = product {
            footwear |= is_footwear(p);
            products.push(p.handle.clone());
        }
        let shipment = order
            .fulfillments
            .iter()
            .find(|f| f.line_item_ids.contains(&line.id));
        let name = &line.title;
        parts.push(match shipment.and_then(|f| f.delivered_at) {
            Some(delivered) => {
                let deadline = delivered + chrono::Duration::days(days);
                if ctx.now <= deadline {
                    let left = (deadline - ctx.now).num_days();
                    format!(
                        "Your {name} from order {} was delivered on {}, so you can return it until {} ({left} days left).",
                        order.name,
                        day(Some(delivered)),
                        day(Some(deadline))
                    )
                } else {
                    format!(
                        "Your {name} from order {} was delivered on {}, so its return window closed on {}.",
                        order.name,
                        day(Some(delivered)),
                        day(Some(deadline))
                    )
                }
            }
            None => format!(
                "Your {name} from order {} hasn't been delivered yet; the {days} days start on the day it arrives.",
                order.name
            ),
        });
    }
    if footwear {
        parts.push("Footwear can only be returned unworn outdoors, in its original box.".into());
    } else {
        parts.push("Items need to be unworn, with their tags attached.".into());
    }
    if let Some(open) = order
        .returns
        .iter()
        .find(|r| r.status.as_deref() != Some("closed"))
    {
        parts.push(format!(
            "You already have a return open for this order (started {}).",
            day(open.created_at)
        ));
    }
    let mut answer = Answer::new(Kind::ReturnEligibility, parts.join(" "));
    answer.sources.extend(policy.map(|c| c.source));
    answer.products = products;
    answer
}

fn is_footwear(product: &Product) -> bool {
    let kind = product
        .product_type
        .as_deref()
        .unwrap_or_default()
        .to_lowercase();
    kind.contains("boot") || kind.contains("shoe") || product.tags.iter().any(|t| t == "footwear")
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Cancelling or changing an order: possible only before it ships, and done by a person.
fn change_answer(order: &Order, intent: &str) -> Answer {
    let what = match intent {
        "cancel_order" => "cancelled",
        "change_shipping_address" => "sent to a different address",
        _ => "changed",
    };
    if order.cancelled_at.is_some() {
        return Answer::new(
            Kind::OrderData,
            format!("Order {} is already cancelled.", order.name),
        );
    }
    if !order.fulfillments.is_empty() {
        return Answer::new(
            Kind::OrderData,
            format!(
                "Order {} has already shipped, so it can't be {what} any more. Once it arrives you can return anything you don't want.",
                order.name
            ),
        );
    }
    Answer::handoff(
        "action_required",
        format!(
            "Order {} hasn't shipped yet, so it can still be {what}. I've passed your request to our team with the order details; they'll confirm here.",
            order.name
        ),
    )
}

fn best_product_hit(understood: &Understanding) -> Option<&Hit> {
    understood
        .hits
        .iter()
        .filter(|h| h.doc_type == "product" && h.vector >= RELEVANCE_FLOOR)
        .max_by(|a, b| a.fused.total_cmp(&b.fused))
}

/// The product a message is about: named in it, else the best product hit.
fn product_of<'a>(ctx: &Context<'a>, understood: &Understanding) -> Option<&'a Product> {
    understood
        .entities
        .products
        .first()
        .and_then(|handle| ctx.snapshot.product(ctx.shop, handle))
        .or_else(|| {
            best_product_hit(understood)
                .and_then(|h| h.key.strip_prefix("product:"))
                .and_then(|handle| ctx.snapshot.product(ctx.shop, handle))
        })
}

/// Stock per variant of the product asked about, from the variant rows.
fn stock_answer(ctx: &Context<'_>, message: &str, understood: &Understanding) -> Answer {
    let Some(product) = product_of(ctx, understood) else {
        return knowledge_answer(ctx, message, understood, &[]);
    };
    let sizes: Vec<String> = understood
        .entities
        .sizes
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let variant_matches = |title: &str| {
        sizes.is_empty()
            || title
                .to_lowercase()
                .split(|c: char| c == '/' || c.is_whitespace() || c == '(' || c == ')')
                .any(|part| sizes.iter().any(|s| s == part))
    };
    let asked: Vec<_> = product
        .variants
        .iter()
        .filter(|v| variant_matches(&v.title))
        .collect();
    let in_stock: Vec<String> = asked
        .iter()
        .filter(|v| v.available && v.inventory_quantity.is_none_or(|q| q > 0))
        .map(|v| v.title.clone())
        .collect();
    let sold_out: Vec<String> = asked
        .iter()
        .filter(|v| !(v.available && v.inventory_quantity.is_none_or(|q| q > 0)))
        .map(|v| v.title.clone())
        .collect();
    let size_note = if sizes.is_empty() {
        String::new()
    } else {
        format!(" in size {}", understood.entities.sizes.join(" or "))
    };
    let text = if asked.is_empty() {
        format!(
            "The {} doesn't come{size_note}. It comes in: {}.",
            product.title,
            list_some(
                &product
                    .variants
                    .iter()
                    .map(|v| v.title.clone())
                    .collect::<Vec<_>>()
            )
        )
    } else if in_stock.is_empty() {
        format!(
            "The {}{size_note} is sold out right now. I don't have a restock date.",
            product.title
        )
    } else if sold_out.is_empty() {
        format!(
            "Yes, the {}{size_note} is in stock: {}.",
            product.title,
            list_some(&in_stock)
        )
    } else {
        format!(
            "The {}{size_note} is in stock in {}. Sold out: {}.",
            product.title,
            list_some(&in_stock),
            list_some(&sold_out)
        )
    };
    let mut answer = Answer::new(Kind::Stock, text);
    answer
        .sources
        .push(product_source(ctx, product, understood));
    answer.products.push(product.handle.clone());
    answer
}

fn list_some(items: &[String]) -> String {
    const SHOWN: usize = 8;
    if items.len() <= SHOWN {
        items.join(", ")
    } else {
        format!(
            "{} and {} more",
            items[..SHOWN].join(", "),
            items.len() - SHOWN
        )
    }
}

fn product_source(ctx: &Context<'_>, product: &Product, understood: &Understanding) -> Source {
    let key = format!("product:{}", product.handle);
    understood
        .hits
        .iter()
        .find(|h| h.key == key)
        .map(Source::of)
        .or_else(|| (ctx.passage)(&key).map(|c| c.source))
        .unwrap_or_else(|| Source {
            doc_key: key.clone(),
            title: product.title.clone(),
            url: product.url.clone().unwrap_or_default(),
            snippet: String::new(),
        })
}

/// Facts about a product from its passage (description and the catalog facts written as
/// sentences), the sentences closest to the question.
fn product_answer(ctx: &Context<'_>, message: &str, understood: &Understanding) -> Answer {
    let Some(product) = product_of(ctx, understood) else {
        return knowledge_answer(ctx, message, understood, &[]);
    };
    let Some(passage) = (ctx.passage)(&format!("product:{}", product.handle)) else {
        return knowledge_answer(ctx, message, understood, &[]);
    };
    let text = format!(
        "{}: {}",
        product.title,
        best_sentences(&passage.text, message, 2)
    );
    let mut answer = Answer::new(Kind::ProductFacts, text);
    answer.sources.push(passage.source);
    answer.products.push(product.handle.clone());
    answer
}

/// An answer from the best policy or article passage, or "I don't know" when none is
/// relevant enough.
fn knowledge_answer(
    ctx: &Context<'_>,
    message: &str,
    understood: &Understanding,
    facts: &[String],
) -> Answer {
    let relevant: Vec<&Hit> = understood
        .hits
        .iter()
        .filter(|h| h.vector >= RELEVANCE_FLOOR)
        .take(2)
        .collect();
    let Some(best) = relevant.first() else {
        return Answer::abstain(
            "no_relevant_passage",
            "I couldn't find anything in our store's information that answers this, and I don't want to guess. Would you like me to connect you with a person?",
        );
    };
    let mut text = facts.join(" ");
    if !text.is_empty() {
        text.push(' ');
    }
    let whole = (ctx.passage)(&best.key).map_or_else(|| best.snippet.clone(), |c| c.text);
    text.push_str(&best_sentences(&whole, message, 2));
    let mut answer = Answer::new(Kind::Knowledge, text);
    answer.sources = relevant.into_iter().map(Source::of).collect();
    answer
}

static SENTENCE_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[.!?](\s+|$)").expect("valid regex"));

/// The `count` sentences of `text` sharing most words with `question`, in their order.
pub fn best_sentences(text: &str, question: &str, count: usize) -> String {
    let mut sentences = Vec::new();
    let mut start = 0;
    for m in SENTENCE_END.find_iter(text) {
        sentences.push(text[start..m.end()].trim());
        start = m.end();
    }
    if start < text.len() {
        sentences.push(text[start..].trim());
    }
    sentences.retain(|s| !s.is_empty());
    let asked = words(question);
    let mut scored: Vec<(usize, usize)> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| (words(s).intersection(&asked).count(), i))
        .collect();
    // Most shared words first; ties go to the earlier sentence.
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut chosen: Vec<usize> = scored.iter().take(count).map(|&(_, i)| i).collect();
    chosen.sort_unstable();
    chosen
        .into_iter()
        .map(|i| sentences[i])
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentences_sharing_the_question_words_are_chosen_in_order() {
        let text = "We ship to the US and Canada. Standard shipping takes 3 to 5 days. \
                    Express takes 1 to 2 days. Gift cards never expire.";
        assert_eq!(
            best_sentences(text, "how many days does express shipping take?", 2),
            "Standard shipping takes 3 to 5 days. Express takes 1 to 2 days."
        );
        assert_eq!(best_sentences("No full stop", "stop", 2), "No full stop");
    }

    fn at(text: &str) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc),
        )
    }

    fn order() -> Order {
        let line = |id, title: &str| crate::commerce::Line {
            id,
            product_id: None,
            title: title.into(),
            variant_title: None,
            quantity: 1,
        };
        Order {
            id: 1,
            number: 1042,
            name: "#1042".into(),
            customer_id: Some(7),
            email_hash: None,
            financial_status: Some("paid".into()),
            cancelled_at: None,
            cancel_reason: None,
            processed_at: at("2026-11-01T10:00:00Z"),
            total_price: Some(120.0),
            currency: Some("USD".into()),
            lines: vec![
                line(1, "Summit Boot"),
                line(2, "Trail Sock"),
                line(3, "Rain Shell"),
            ],
            fulfillments: Vec::new(),
            refunds: Vec::new(),
            returns: Vec::new(),
        }
    }

    fn shipment(status: &str, lines: Vec<i64>, eta: &str, delivered: Option<&str>) -> Fulfillment {
        Fulfillment {
            shipment_status: Some(status.into()),
            tracking_company: Some("UPS".into()),
            tracking_number: Some(format!("1Z{}", lines[0])),
            tracking_url: None,
            line_item_ids: lines,
            estimated_delivery_at: at(eta),
            delivered_at: delivered.and_then(at),
            created_at: at("2026-11-02T10:00:00Z"),
        }
    }

    #[test]
    fn split_late_and_unshipped_parts_of_an_order_are_each_told() {
        let now = at("2026-11-20T12:00:00Z").unwrap();
        let mut o = order();
        o.fulfillments = vec![
            shipment(
                "delivered",
                vec![1],
                "2026-11-05T00:00:00Z",
                Some("2026-11-06T09:00:00Z"),
            ),
            shipment("in_transit", vec![2], "2026-11-10T00:00:00Z", None),
        ];
        let text = order_status(&o, now);
        assert!(
            text.contains("Package 1 of 2 (Summit Boot) was delivered on November 6, 2026"),
            "{text}"
        );
        assert!(text.contains("Package 2 of 2 (Trail Sock) is on its way with UPS but running late: it was expected by November 10, 2026"), "{text}");
        assert!(text.contains("UPS tracking number 1Z2"), "{text}");
        assert!(text.contains("Rain Shell hasn't shipped yet"), "{text}");
        assert!(
            !text.contains("in_transit") && !text.contains("fulfill"),
            "no API terms: {text}"
        );
    }

    #[test]
    fn a_cancelled_order_says_when_why_and_what_happened_to_the_money() {
        let mut o = order();
        o.cancelled_at = at("2026-11-03T08:00:00Z");
        o.cancel_reason = Some("inventory".into());
        o.refunds = vec![crate::commerce::Refund {
            amount: Some(120.0),
            currency: Some("USD".into()),
            processed_at: at("2026-11-04T08:00:00Z"),
        }];
        let text = order_status(&o, Utc::now());
        assert_eq!(
            text,
            "Order #1042 was cancelled on November 3, 2026 because an item was out of stock. A refund of $120.00 was issued on November 4, 2026."
        );
        assert!(order_status(&order(), Utc::now()).contains("hasn't shipped yet"));
    }

    fn hit(doc_type: &'static str, vector: f32) -> Hit {
        Hit {
            key: format!("{doc_type}:x"),
            doc_type,
            title: String::new(),
            url: String::new(),
            snippet: String::new(),
            bm25: None,
            vector,
            bm25_normalised: 0.0,
            vector_normalised: 0.0,
            fused: vector,
        }
    }

    #[test]
    fn only_an_out_of_scope_message_close_to_a_product_becomes_a_product_question() {
        let (intent, confidence, by) = reconsider(
            "out_of_scope".into(),
            0.1,
            "out_of_scope_threshold",
            &[hit("article", 0.9), hit("product", 0.62)],
        );
        assert_eq!(
            (intent.as_str(), by),
            ("product_question", "rule:product_match")
        );
        assert!((confidence - 0.62).abs() < 1e-6);
        let far = reconsider(
            "out_of_scope".into(),
            0.1,
            "t",
            &[hit("product", 0.5), hit("article", 0.9)],
        );
        assert_eq!(
            far.0, "out_of_scope",
            "an article match is not a product question"
        );
        let decided = reconsider("order_status".into(), 0.9, "knn", &[hit("product", 0.9)]);
        assert_eq!((decided.0.as_str(), decided.2), ("order_status", "knn"));
    }

    #[test]
    fn words_are_singular_and_skip_filler() {
        let w = words("Can I return the boots I got?");
        assert!(w.contains("boot"), "{w:?}");
        assert!(!w.contains("return") && !w.contains("got"), "{w:?}");
    }
}
