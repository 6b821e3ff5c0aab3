//! HTTP plumbing shared by both listeners.
//!
//! - `health`: `/healthz` (process alive), `/readyz` (dependencies), `/metrics` (Prometheus).
//! - `layers`: request ids and the request span every handler runs in.

pub mod health;
pub mod layers;
