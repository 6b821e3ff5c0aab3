//! Keeping every Item's transactions current.
//!
//! - `request`: asking for a sync (after a token exchange, manually, from the scheduler).

pub mod request;

pub use request::{request_sync, SyncTrigger};
