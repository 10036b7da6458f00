//! Order intents for a verified shopper: where an order is, shipment by shipment; its
//! refunds and returns; cancelling or changing it. Only orders that belong to the verified
//! identity are discussed.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use index::classifier::Entities;
use pipeline::lake::vocab::HandoffReason;

use super::knowledge::knowledge_answer;
use super::returns::return_answer;
use super::wording::{day, join_items, money};
use super::{Answer, Context, Kind, Source, Understanding};
use crate::conversation::commerce::{Fulfillment, Order};
use crate::state::chat::Identity;

/// Answers an order intent for a verified shopper.
pub(super) fn order_answer(
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
                HandoffReason::SensitiveIntent,
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
            || (!identity.email_hash.is_empty()
                && o.email_hash.as_deref() == Some(identity.email_hash.as_str()))
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

/// The items of a shipment, by line title.
fn items_of(order: &Order, fulfillment: &Fulfillment) -> Vec<String> {
    order
        .lines
        .iter()
        .filter(|l| fulfillment.line_item_ids.contains(&l.id))
        .map(|l| l.title.clone())
        .collect()
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
        HandoffReason::ActionRequired,
        format!(
            "Order {} hasn't shipped yet, so it can still be {what}. I've passed your request to our team with the order details; they'll confirm here.",
            order.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc),
        )
    }

    fn order() -> Order {
        let line = |id, title: &str| crate::conversation::commerce::Line {
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
        o.refunds = vec![crate::conversation::commerce::Refund {
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
}
