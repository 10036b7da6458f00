//! The conversation rules, with no HTTP in them: a [`turn`] (understand → answer →
//! escalate), the [`handoff`] packet and the agents' [`inbox`] (claim, reply, resolve),
//! [`verification`] of a shopper (and its throttling), the [`answer`] of each intent family,
//! and the [`commerce`] snapshot the answers read.

pub mod answer;
pub mod commerce;
pub mod handoff;
pub mod inbox;
pub mod turn;
pub mod verification;
