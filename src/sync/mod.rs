//! Keeping every Item's transactions current with `/transactions/sync`.
//!
//! Sync requests themselves are messages (`messages::SyncRequest`), published by whoever asks.
//!
//! - `worker`: the consumer of `plaidhook.sync`: coalescing, one sync per Item, outcomes.
//! - `lock`: the per-Item lock across processes and the dirty flag.
//! - `fetch`: the page loop against Plaid, its restarts and error classes.
//! - `staging`: a run's pages in `sync_staging` as they arrive, merged.
//! - `apply`: the one transaction that writes a sync; `events`: its `transactions.synced` events.
//! - `runs`: the `sync_runs` record and metrics; `limits`: Plaid's rate limits, shared.

pub mod apply;
pub mod events;
pub mod fetch;
pub mod limits;
pub mod lock;
pub mod runs;
pub mod staging;
pub mod worker;
