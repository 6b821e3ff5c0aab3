//! Item health: the status state machine, its history, and what drives it; and the Item rows.
//!
//! - `status`: the one function that moves an Item between statuses (raising and resolving its
//!   alerts in the same transaction).
//! - `health`: the rules — which status Plaid's truth calls for — and `on_sync_succeeded`.
//! - `reconcile`: the [`Reconciler`]: `/item/get` under a per-Item lock, the rules applied.
//! - `consumer`: the `plaidhook.items` queue consumer (ITEM webhooks are hints to reconcile).
//! - `link_sessions`: the `plaidhook.link_sessions` consumer (LINK webhooks: how the Hosted
//!   Link sessions plaidhook opened ended).
//! - `rows`: the `items` rows every component shares: link, look up, open the access token,
//!   remove; `accounts`: the one upsert of an Item's accounts and balances.

pub mod accounts;
pub mod consumer;
pub mod health;
pub mod link_sessions;
pub mod reconcile;
pub mod rows;
pub mod status;

pub use health::{on_sync_succeeded, status_for_error, Signal};
pub use reconcile::Reconciler;
pub use status::{transition, ItemStatus, StatusSource, Transition};
