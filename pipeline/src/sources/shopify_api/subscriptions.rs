//! A shop's webhook subscriptions, made through the Admin API.
//!
//! Shopify delivers a topic to an app only when the app has subscribed to it, per shop for
//! subscriptions made with the Admin API. [`ensure_webhooks`] reads the shop's subscriptions
//! (`webhookSubscriptions`) and creates each topic that has none to `uri`
//! (`webhookSubscriptionCreate`), so it is safe to run before every sync: it costs one query
//! when nothing is missing, and a subscription a merchant or support person deleted comes
//! back at the next sync.

use serde::Serialize;
use serde_json::{Value, json};

use super::client::{AdminClient, RetryPolicy};
use crate::error::{PipelineError, Result};

/// How to reach one shop's Admin API.
#[derive(Debug, Clone)]
pub struct AdminAccess {
    /// `https://<shop>` for a real store.
    pub base_url: String,
    pub api_version: String,
    pub token: String,
}

/// What [`ensure_webhooks`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Subscribed {
    /// Topics that were already delivered to the uri.
    pub existing: Vec<String>,
    /// Topics subscribed now.
    pub created: Vec<String>,
}

const LIST: &str = "query SupportlakeWebhooks($after: String) { webhookSubscriptions(first: 100, after: $after) { \
    nodes { id topic uri } pageInfo { hasNextPage endCursor } } }";
const CREATE: &str = "mutation SupportlakeSubscribe($topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!) { \
    webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) { \
    webhookSubscription { id topic uri } userErrors { field message } } }";

/// `orders/updated` → `ORDERS_UPDATED`, the GraphQL enum value of a webhook topic.
pub fn topic_enum(topic: &str) -> String {
    topic.to_ascii_uppercase().replace('/', "_")
}

/// Subscribes the shop to every topic of `topics` not yet delivered to `uri`.
pub async fn ensure_webhooks(
    access: &AdminAccess,
    uri: &str,
    topics: &[&str],
) -> Result<Subscribed> {
    let client = AdminClient::new(
        &access.base_url,
        &access.api_version,
        &access.token,
        RetryPolicy::default(),
    )?;
    let mut existing = std::collections::BTreeSet::new();
    let mut after = Value::Null;
    loop {
        let data = client.graphql(LIST, json!({"after": after}), 12.0).await?;
        let page = &data["webhookSubscriptions"];
        for node in page["nodes"].as_array().into_iter().flatten() {
            if node["uri"] == uri
                && let Some(topic) = node["topic"].as_str()
            {
                existing.insert(topic.to_string());
            }
        }
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    let mut subscribed = Subscribed::default();
    for topic in topics {
        let value = topic_enum(topic);
        if existing.contains(&value) {
            subscribed.existing.push((*topic).to_string());
            continue;
        }
        let data = client
            .graphql(
                CREATE,
                json!({"topic": value, "webhookSubscription": {"uri": uri, "format": "JSON"}}),
                10.0,
            )
            .await?;
        let result = &data["webhookSubscriptionCreate"];
        let errors: Vec<&str> = result["userErrors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["message"].as_str())
            .collect();
        if !errors.is_empty() || result["webhookSubscription"].is_null() {
            return Err(PipelineError::Shopify(format!(
                "subscribing to {topic} was refused: {}",
                errors.join("; ")
            )));
        }
        subscribed.created.push((*topic).to_string());
    }
    Ok(subscribed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn topics_become_their_graphql_enum_values() {
        assert_eq!(super::topic_enum("orders/updated"), "ORDERS_UPDATED");
        assert_eq!(super::topic_enum("app/uninstalled"), "APP_UNINSTALLED");
        assert_eq!(
            super::topic_enum("orders/partially_fulfilled"),
            "ORDERS_PARTIALLY_FULFILLED"
        );
    }
}
