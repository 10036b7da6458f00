//! The canonical intents, read from the `intents` view's SQL
//! (`reports/views/intents.sql`), the one place they are written down: the analysts' view,
//! the classifier's check of its examples and the generator can never disagree.

use std::sync::LazyLock;

use regex::Regex;

/// Whether automation can finish an intent (the `human_required` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HumanRequired {
    /// The assistant answers from data or knowledge.
    No,
    /// It can explain, but the change itself needs a person or an app.
    Sometimes,
    /// Sensitive: payments, complaints, explicit asks.
    Always,
}

/// One row of the `intents` view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub id: &'static str,
    pub meaning: &'static str,
    /// Answering reveals order or account data: identity is verified first.
    pub needs_verification: bool,
    pub system_of_record: &'static str,
    pub human_required: HumanRequired,
    pub presale: bool,
}

const VIEW: &str = include_str!("../reports/views/intents.sql");

/// Every intent in the view's order (`out_of_scope` last).
pub static INTENTS: LazyLock<Vec<Intent>> = LazyLock::new(|| {
    let row = Regex::new(
        r"(?m)^\s*\('([a-z_]+)',\s*'([^']*)',\s*(true|false),\s*'([^']*)',\s*'(no|sometimes|always)',\s*(true|false)\)",
    )
    .expect("valid regex");
    row.captures_iter(VIEW)
        .map(|c| {
            let text = |i: usize| c.get(i).expect("matched group").as_str();
            Intent {
                id: text(1),
                meaning: text(2),
                needs_verification: text(3) == "true",
                system_of_record: text(4),
                human_required: match text(5) {
                    "no" => HumanRequired::No,
                    "sometimes" => HumanRequired::Sometimes,
                    _ => HumanRequired::Always,
                },
                presale: text(6) == "true",
            }
        })
        .collect()
});

/// The intent of this id.
pub fn get(id: &str) -> Option<&'static Intent> {
    INTENTS.iter().find(|i| i.id == id)
}

/// The ids, comma-separated, for error messages.
pub fn id_list() -> String {
    INTENTS.iter().map(|i| i.id).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_view_is_read() {
        let rows = VIEW
            .lines()
            .filter(|l| l.trim_start().starts_with("('"))
            .count();
        assert_eq!(INTENTS.len(), rows);
        assert_eq!(INTENTS.len(), 22);
        assert_eq!(INTENTS.last().map(|i| i.id), Some("out_of_scope"));
        let order_status = get("order_status").unwrap();
        assert!(
            order_status.needs_verification && order_status.human_required == HumanRequired::No
        );
        assert_eq!(
            get("complaint").unwrap().human_required,
            HumanRequired::Always
        );
        assert!(get("shipping_info").unwrap().presale);
        assert!(get("no_such_intent").is_none());
    }
}
