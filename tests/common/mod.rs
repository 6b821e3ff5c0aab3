//! What every integration test needs: its own database, settings for it, and a running app.
//!
//! Each test gets a fresh PostgreSQL database (dropped when the test's [`TestDatabase`] is
//! dropped) and binds every listener on port 0, so tests run in parallel without sharing state.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use plaidhook::app::{Application, Role};
use plaidhook::config::Settings;
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

    /// Stops the app gracefully and waits for it to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await?
    }
}

/// Builds and starts the app for `role` on its own fresh database.
pub async fn spawn_app_with(role: Role, overrides: &[(&str, &str)]) -> TestApp {
    let database = TestDatabase::new();
    let mut all: Vec<(&str, &str)> = vec![("PLAIDHOOK__DATABASE__URL", database.url.as_str())];
    all.extend_from_slice(overrides);
    let settings = settings_with(&all).expect("test settings are valid");
    plaidhook::telemetry::init_logging(&settings.telemetry);
    let app = Application::build(settings.clone(), role)
        .await
        .expect("the application builds");
    let public_addr = app.public_addr();
    let internal_addr = app.internal_addr();
    let shutdown = app.shutdown_token();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp {
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
