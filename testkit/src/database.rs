//! A database per test: uniquely named, created by the app's migrations, dropped at the end.

use std::path::PathBuf;

use plaidhook::config::Settings;
use sqlx::{Connection, Executor, PgConnection};

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

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
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
    Settings::load_from(&config_dir(), "test", vars)
}

/// plaidhook's `config/` directory, wherever the test runs from.
pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}
