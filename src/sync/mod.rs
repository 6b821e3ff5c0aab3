//! Keeping every Item's transactions current with `/transactions/sync`.
//!
//! - `request`: asking for a sync (after a token exchange, manually, from the scheduler).
//! - `worker`: the consumer of `plaidhook.sync`: coalescing, one sync per Item, outcomes.
//! - `lock`: the per-Item lock across processes and the dirty flag.
//! - `fetch`: the page loop against Plaid, its restarts and error classes.
//! - `apply`: the one transaction that writes a sync; `events`: its `transactions.synced` events.
//! - `runs`: the `sync_runs` record and metrics; `limits`: Plaid's rate limits, shared.

pub mod apply;
pub mod events;
pub mod fetch;
pub mod limits;
pub mod lock;
pub mod request;
pub mod runs;
pub mod worker;

pub use request::{request_sync, SyncTrigger};
