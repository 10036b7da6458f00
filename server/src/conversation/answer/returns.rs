//! Returns: whether each item of an order can still go back, from the refund policy's
//! window (per loyalty tier) and the real delivery date of the item's shipment.

use super::orders::order_status;
use super::wording::{capitalise, day, words};
use super::{Answer, Context, Kind};
use crate::conversation::commerce::{Order, Product};
use crate::state::chat::Identity;

/// Whether a return applies to the order's items, computed from the policy's window and
/// the real delivery date of each item's shipment.
pub(super) fn return_answer(
    ctx: &Context<'_>,
    identity: &Identity,
    order: &Order,
    message: &str,
) -> Answer {
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
