//! Item health: the status state machine and its history.
//!
//! - `status`: the statuses and the one function that moves an Item between them.

pub mod status;

pub use status::{transition, ItemStatus, StatusSource, Transition};
