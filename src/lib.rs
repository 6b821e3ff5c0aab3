//! plaidhook: Plaid webhooks, verified and made durable; transactions kept current.
//!
//! Map of the crate:
//! - [`config`]: layered typed settings; [`telemetry`]: logs and metrics set-up.
//! - [`app`]: `Application::build` and the run/shutdown lifecycle, shared by `main` and tests.
//! - [`cli`]: the command line.
//! - [`http`]: middleware and health endpoints; [`error`]: the error clients see.
//! - [`items`]: Item health: statuses, transitions, history.
//! - [`outbox`]: events written with the change they describe, relayed to `plaid.events`.
//! - [`store`]: PostgreSQL pool, migrations, and the Item rows every component shares.
//! - [`crypto`]: access tokens sealed at rest, with key rotation.
//! - [`broker`]: the RabbitMQ connection, topology and confirmed publisher.
//! - [`plaid`]: Plaid's API types, typed from the official OpenAPI spec, and the HTTP client.
//! - [`sim`]: the built-in Plaid simulator.
//! - [`sync`]: keeping every Item's transactions current with `/transactions/sync`.
//! - [`worker`]: the queue consumers a worker process runs.
//! - [`webhook`]: the verified webhook ingress, its key cache and its spool.

pub mod app;
pub mod broker;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod error;
pub mod http;
pub mod items;
pub mod outbox;
pub mod plaid;
pub mod sim;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod webhook;
pub mod worker;
