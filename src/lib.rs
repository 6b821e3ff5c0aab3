//! plaidhook: Plaid webhooks, verified and made durable; transactions kept current.
//!
//! Map of the crate:
//! - [`config`]: layered typed settings; [`telemetry`]: logs and metrics set-up;
//!   [`gauges`]: sampled system gauges.
//! - [`app`]: `Application::build` and the run/shutdown lifecycle, shared by `main` and tests.
//! - [`cli`]: the command line; [`deadletters`]: listing and replaying parked messages;
//!   [`demo`]: the whole flow in one command.
//! - [`http`]: middleware and health endpoints; [`error`]: the error clients see.
//! - [`items`]: Item health: statuses, transitions, history, reconciliation with `/item/get`.
//! - [`alerts`]: alerts for Items needing attention, and their delivery to an alert webhook.
//! - [`api`]: the management API (bearer auth, OpenAPI); [`scheduler`]: the safety net.
//! - [`outbox`]: events written with the change they describe, relayed to `plaid.events`.
//! - [`store`]: PostgreSQL pool, migrations, and the Item rows every component shares.
//! - [`crypto`]: access tokens sealed at rest, with key rotation.
//! - [`broker`]: the RabbitMQ connection, topology and confirmed publisher.
//! - [`plaid`]: Plaid's API types, typed from the official OpenAPI spec, and the HTTP client.
//! - [`sim`]: the built-in Plaid simulator.
//! - [`sync`]: keeping every Item's transactions current with `/transactions/sync`.
//! - [`worker`]: the queue consumers a worker process runs.
//! - [`webhook`]: the verified webhook ingress, its key cache and its spool.

pub mod alerts;
pub mod api;
pub mod app;
pub mod broker;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod deadletters;
pub mod demo;
pub mod error;
pub mod gauges;
pub mod http;
pub mod items;
pub mod outbox;
pub mod plaid;
pub mod scheduler;
pub mod sim;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod webhook;
pub mod worker;
