//! plaidhook: Plaid webhooks, verified and made durable; transactions kept current.
//!
//! Map of the crate:
//! - [`config`]: layered typed settings; [`telemetry`]: logs and metrics set-up;
//!   [`gauges`]: sampled system gauges.
//! - [`cli`]: the command line and what each command runs (the demo among them).
//! - [`app`]: the composition root: `Application::build` and the run/shutdown lifecycle, shared
//!   by the command line and the tests; it hands each component the small context it needs.
//! - [`messages`]: what travels on RabbitMQ, typed: webhook envelopes, sync requests, events,
//!   and the Item-status vocabulary they share with the database and the API.
//! - [`deadletters`]: listing and replaying parked messages.
//! - [`http`]: middleware and health endpoints; [`error`]: the error clients see.
//! - [`items`]: Item rows and health: statuses, transitions, history, reconciliation with
//!   `/item/get`.
//! - [`alerts`]: alerts for Items needing attention, and their delivery to an alert webhook.
//! - [`repair`]: Hosted Link repair URLs for the alerts that need the user, renewals,
//!   reminders and escalation.
//! - [`api`]: the management API (bearer auth, OpenAPI); [`scheduler`]: the safety net;
//!   [`retention`]: old rows of the tables that grow with traffic, deleted.
//! - [`outbox`]: events written with the change they describe, relayed to `plaid.events`.
//! - [`store`]: PostgreSQL pool, migrations, advisory locks and leases, and the Plaid call log.
//! - [`crypto`]: access tokens sealed at rest, with key rotation.
//! - [`broker`]: the RabbitMQ connection, topology and confirmed publisher.
//! - [`plaid`]: Plaid's API types, typed from the official OpenAPI spec, and the HTTP client.
//! - [`sim`]: the built-in Plaid simulator.
//! - [`sync`]: keeping every Item's transactions current with `/transactions/sync`.
//! - [`webhook`]: the verified webhook ingress, its key cache and its spool.

pub mod alerts;
pub mod api;
pub mod app;
pub mod broker;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod deadletters;
pub mod error;
pub mod gauges;
pub mod http;
pub mod items;
pub mod messages;
pub mod outbox;
pub mod plaid;
pub mod repair;
pub mod retention;
pub mod scheduler;
pub mod sim;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod webhook;
