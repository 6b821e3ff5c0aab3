//! What every integration test needs: its own database, settings for it, and a running app.
//!
//! Each test gets a fresh PostgreSQL database (dropped when the test's [`TestDatabase`] is
//! dropped) and binds every listener on port 0, so tests run in parallel without sharing state.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod proxy;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use plaidhook::app::{Application, Role};
use plaidhook::broker::{Broker, Publisher, Topology};
use plaidhook::config::Settings;
use plaidhook::sim::Sim;
use sqlx::{Connection, Executor, PgConnection};
use tokio_util::sync::CancellationToken;

/// Server holding the test databases; override with `PLAIDHOOK_TEST_DATABASE_SERVER`.
pub fn database_server() -> String {
    std::env::var("PLAIDHOOK_TEST_DATABASE_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A uniquely named database that is dropped (forcibly, closing open connections) on drop.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// Names a new database; `Application::build` (or `store::migrate`) creates it.
    pub fn new() -> Self {
        let name = format!("plaidhook_test_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}/{}", database_server(), name);
        Self { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = format!("{}/postgres", database_server());
        let statement = format!("drop database if exists \"{}\" with (force)", self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived
        // runtime on its own thread does the clean-up.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await?;
                conn.execute(sqlx::AssertSqlSafe(statement)).await?;
                Ok::<_, sqlx::Error>(())
            })?;
            Ok::<_, anyhow::Error>(())
        })
        .join();
    }
}

/// Settings from `config/test.toml` (port 0 everywhere) plus `overrides`, as environment
/// variables would give them (`PLAIDHOOK__SECTION__KEY`).
pub fn settings_with(overrides: &[(&str, &str)]) -> anyhow::Result<Settings> {
    let vars = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()));
    Settings::load_from(Path::new("config"), "test", vars)
}

pub struct TestApp {
    pub sim: Option<Sim>,
    pub topology: Topology,
    pub db: sqlx::PgPool,
    pub public_addr: Option<SocketAddr>,
    pub internal_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
    pub settings: Settings,
    pub database: TestDatabase,
}

impl TestApp {
    pub fn public_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.public_addr.expect("this role has a public listener"),
            path
        )
    }

    pub fn internal_url(&self, path: &str) -> String {
        format!("http://{}{}", self.internal_addr, path)
    }

    /// Polls `/readyz` until it answers 200 or `within` passes; returns the last status.
    pub async fn wait_ready(&self, within: Duration) -> reqwest::StatusCode {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let status = self
                .http
                .get(self.internal_url("/readyz"))
                .send()
                .await
                .map(|r| r.status())
                .unwrap_or(reqwest::StatusCode::SERVICE_UNAVAILABLE);
            if status.is_success() || tokio::time::Instant::now() >= deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `/readyz` reports the broker connected; false if it did not within `within`.
    pub async fn wait_broker_connected(&self, within: Duration) -> bool {
        let url = self.internal_url("/readyz");
        self.eventually(within, || async {
            let Ok(response) = self.http.get(&url).send().await else {
                return false;
            };
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            body["checks"]["broker"] == "connected"
        })
        .await
    }

    /// The built-in simulator this app talks to.
    pub fn sim(&self) -> &Sim {
        self.sim.as_ref().expect("plaid.environment = simulator")
    }

    /// Stops the app gracefully, waits for it, and deletes its broker namespace.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let result = self.task.await?;
        if let Ok(channel) = amqp_channel().await {
            let _ = self.topology.delete(&channel).await;
        }
        result
    }

    /// Messages ready in `queue` (0 when the queue does not exist yet).
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        let channel = amqp_channel().await.expect("RabbitMQ is reachable");
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        match channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
        {
            Ok(declared) => declared.message_count(),
            Err(_) => 0,
        }
    }

    /// Takes every ready message off `queue`, in queue order.
    pub async fn drain_queue(&self, queue: &str) -> Vec<Vec<u8>> {
        let channel = amqp_channel().await.expect("RabbitMQ is reachable");
        let mut bodies = Vec::new();
        while let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            bodies.push(message.delivery.data.clone());
        }
        bodies
    }

    /// Rows in the webhook spool.
    pub async fn spool_depth(&self) -> i64 {
        sqlx::query_scalar("select count(*) from webhook_spool")
            .fetch_one(&self.db)
            .await
            .expect("spool count")
    }

    /// Polls `check` until it holds or `within` passes; returns whether it held.
    pub async fn eventually<F, Fut>(&self, within: Duration, check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        eventually(within, check).await
    }
}

/// Polls `check` every 50 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
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

/// The broker the tests use; override with `PLAIDHOOK_TEST_AMQP_URL`.
pub fn amqp_url() -> String {
    std::env::var("PLAIDHOOK_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A topology in a namespace of its own.
pub fn test_topology(delivery_limit: u32) -> Topology {
    Topology::new(
        &format!("test-{}", uuid::Uuid::new_v4().simple()),
        delivery_limit,
    )
}

/// A publisher on its own broker connection; cancel the token to close it.
pub async fn publisher_for(topology: &Topology) -> (Publisher, CancellationToken) {
    let shutdown = CancellationToken::new();
    let broker = Broker::start(amqp_url().into(), "plaidhook-test", shutdown.clone());
    tokio::time::timeout(Duration::from_secs(15), broker.connected())
        .await
        .expect("RabbitMQ connects");
    (
        Publisher::new(broker, topology.clone(), Duration::from_secs(2)),
        shutdown,
    )
}

/// A fresh channel on a fresh connection, for inspecting the broker from a test.
pub async fn amqp_channel() -> lapin::Result<lapin::Channel> {
    let connection =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    // The connection closes when its last handle goes; keep it alive as long as the channel.
    std::mem::forget(connection);
    Ok(channel)
}

/// Builds and starts the app for `role` on its own fresh database.
pub async fn spawn_app_with(role: Role, overrides: &[(&str, &str)]) -> TestApp {
    let database = TestDatabase::new();
    let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
    let mut all: Vec<(&str, &str)> = vec![
        ("PLAIDHOOK__DATABASE__URL", database.url.as_str()),
        ("PLAIDHOOK__RABBITMQ__NAMESPACE", namespace.as_str()),
    ];
    all.extend_from_slice(overrides);
    let settings = settings_with(&all).expect("test settings are valid");
    plaidhook::telemetry::init_logging(&settings.telemetry);
    let app = Application::build(settings.clone(), role)
        .await
        .expect("the application builds");
    let public_addr = app.public_addr();
    let internal_addr = app.internal_addr();
    let shutdown = app.shutdown_token();
    let sim = app.sim();
    let topology = app.state().topology.clone();
    let db = app.state().db.clone();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp {
        sim,
        topology,
        db,
        public_addr,
        internal_addr,
        shutdown,
        task,
        http: reqwest::Client::new(),
        settings,
        database,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Role::All, &[]).await
}
