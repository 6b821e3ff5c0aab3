//! What plaidhook puts on RabbitMQ, typed: the contract between its producers and consumers.
//!
//! - `envelope`: a verified Plaid webhook as it travels on `plaid.webhooks` ([`WebhookEnvelope`]).
//! - `sync_request`: plaidhook's own request to sync an Item ([`SyncRequest`]), sent straight to
//!   the sync queue: it is not a Plaid webhook and does not pose as one.
//! - `item_status`: the statuses an Item can be in ([`ItemStatus`]) and what moved it, shared
//!   by the database, the events and the API.
//! - `events`: the events of `plaid.events` for downstream subscribers ([`Event`]), one
//!   serde-tagged enum whose variant names are the routing keys.
//!
//! Producers build these types and consumers decode them; nothing on the wire is assembled from
//! string literals elsewhere.

pub mod envelope;
pub mod events;
pub mod item_status;
pub mod sync_request;

pub use envelope::WebhookEnvelope;
pub use events::{AlertDocument, Event};
pub use item_status::{ItemStatus, StatusSource};
pub use sync_request::{SyncQueueMessage, SyncRequest, SyncRequester, SyncTrigger};
