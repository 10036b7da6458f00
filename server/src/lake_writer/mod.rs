//! Everything that takes what the server learns to the lake, off the request path: the
//! chat's rows ([`records`]), the webhook deliveries made durable in groups
//! ([`acknowledger`]), the [`applier::Applier`] that drains both outboxes into Delta, and
//! the `webhooks replay` command's library side ([`replay`]), and the [`syncer::Syncer`]
//! that brings each installed shop's data in from the Admin API on a schedule.

pub mod acknowledger;
pub mod applier;
pub mod records;
pub mod replay;
pub mod syncer;
