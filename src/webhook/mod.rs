//! The webhook ingress: Plaid's front door.
//!
//! - `keys`: the `kid` → verification key cache, fed by `/webhook_verification_key/get`.
//! - `verify`: Plaid's verification algorithm over the raw body; builds [`VerifiedWebhook`].
//! - `source`: where a webhook came from (peer or trusted `X-Forwarded-For`), and whether it
//!   may send one.
//! - `spool`: durable fallback in PostgreSQL when the broker cannot confirm, and its relay.
//! - `ingress`: the `POST /webhooks/plaid` route tying them together.

pub mod ingress;
pub mod keys;
pub mod source;
pub mod spool;
pub mod verify;

pub use ingress::Ingress;
pub use verify::{Rejection, VerifiedWebhook, Verifier};
