//! What plaidhook's integration tests (`tests/it`) and benchmarks (`benches/`) share.
//!
//! Every test owns its world: a fresh PostgreSQL database (dropped at the end), a broker
//! namespace of its own (deleted at the end), and every listener on port 0, so tests run in
//! parallel, each in its own process under nextest, without sharing state.
//!
//! - [`database`]: a uniquely named test database; settings from `config/test.toml`.
//! - [`broker`]: the test broker, fresh channels, publishers in their own namespace.
//! - [`app`]: [`TestApp`], a running plaidhook built through the one [`TestAppBuilder`].
//! - [`world`]: one database, one namespace and one standalone simulator shared by several
//!   plaidhook nodes, with the simulator's ground truth to compare the database against.
//! - [`api`]: the management API as an app would call it, Link completed in the simulator.
//! - [`logs`]: every log line of the test process, captured.
//! - [`alerts`]: an alert webhook receiver. [`proxy`]: a TCP proxy a test can cut.
//! - [`chaos`]: the chaos run (real processes, a RabbitMQ cluster, injected faults, a ledger),
//!   driven by the `chaos` binary and `scripts/chaos`.

pub mod alerts;
pub mod api;
pub mod app;
pub mod broker;
pub mod chaos;
pub mod database;
pub mod logs;
pub mod proxy;
pub mod world;

use std::future::Future;
use std::time::Duration;

pub use app::{spawn_app, spawn_app_with, TestApp, TestAppBuilder};
pub use broker::{amqp_channel, amqp_url, publisher_for, test_topology};
pub use database::{config_dir, database_server, settings_with, TestDatabase};

/// Polls `check` every 50 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
