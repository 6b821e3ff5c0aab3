//! Item health: the status state machine, its history, and what drives it.
//!
//! - `status`: the statuses and the one function that moves an Item between them (raising and
//!   resolving its alerts in the same transaction).
//! - `health`: the rules — which status Plaid's truth calls for — and `on_sync_succeeded`.
//! - `reconcile`: looking at `/item/get` under a per-Item lock and applying the rules.
//! - `consumer`: the `plaidhook.items` queue consumer (ITEM webhooks are hints to reconcile).

pub mod consumer;
pub mod health;
pub mod reconcile;
pub mod status;

pub use health::{on_sync_succeeded, status_for_error, Signal};
pub use status::{transition, ItemStatus, StatusSource, Transition};
