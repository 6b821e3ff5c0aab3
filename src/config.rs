//! Layered, typed configuration.
//!
//! `config/default.toml` (compiled in, so the binary runs from anywhere) → `config/<env>.toml`
//! (optional, `PLAIDHOOK_ENVIRONMENT`, default `local`) → `PLAIDHOOK__SECTION__KEY` environment
//! variables. Secrets are `SecretString`s so they never print. [`Settings::load`] fails with a
//! message that names the offending setting; nothing starts on a half-valid configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use crate::telemetry::{LogFormat, TelemetrySettings};

/// The base layer, embedded so a binary copied elsewhere still has every default.
const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub public: ListenerSettings,
    pub internal: ListenerSettings,
    pub database: DatabaseSettings,
    pub rabbitmq: RabbitMqSettings,
    pub plaid: PlaidSettings,
    pub webhook: WebhookSettings,
    pub telemetry: TelemetrySettings,
    pub tokens: TokenSettings,
    pub sim: SimSettings,
    pub sync: SyncSettings,
    pub link: LinkSettings,
    pub api: ApiSettings,
    pub alerts: AlertSettings,
    pub scheduler: SchedulerSettings,
}

/// Keys that seal access tokens at rest (see `crypto`).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenSettings {
    pub active_key_id: String,
    pub keys: std::collections::HashMap<String, SecretString>,
}

/// The id of the development key in `config/default.toml`: refused with a real Plaid.
pub const DEVELOPMENT_TOKEN_KEY_ID: &str = "dev";

#[derive(Debug, Clone, Deserialize)]
pub struct ListenerSettings {
    pub host: String,
    pub port: u16,
}

impl ListenerSettings {
    pub fn addr(&self) -> anyhow::Result<SocketAddr> {
        format!("{}:{}", self.host, self.port)
            .parse()
            .with_context(|| {
                format!(
                    "`{}:{}` is not an IP address and port",
                    self.host, self.port
                )
            })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    pub migrate_on_start: bool,
}

impl DatabaseSettings {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RabbitMqSettings {
    pub url: SecretString,
    pub namespace: String,
    pub publish_timeout_ms: u64,
    pub prefetch: u16,
    pub delivery_limit: u32,
}

impl RabbitMqSettings {
    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms)
    }
}

/// Which Plaid plaidhook talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaidEnvironment {
    /// The built-in simulator, started in-process.
    Simulator,
    Sandbox,
    Production,
    /// Any Plaid-compatible base URL, e.g. a standalone `plaidhook sim`.
    Custom,
}

impl PlaidEnvironment {
    /// Name carried in webhook envelopes and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Simulator => "simulator",
            Self::Sandbox => "sandbox",
            Self::Production => "production",
            Self::Custom => "custom",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlaidSettings {
    pub environment: PlaidEnvironment,
    pub base_url: String,
    pub client_id: String,
    pub secret: SecretString,
    pub timeout_secs: u64,
    pub balance_timeout_secs: u64,
    pub webhook_url: String,
}

impl PlaidSettings {
    /// Base URL for a fixed environment; `None` for the simulator, whose address is known only
    /// once it is bound.
    pub fn fixed_base_url(&self) -> Option<String> {
        match self.environment {
            PlaidEnvironment::Simulator => None,
            PlaidEnvironment::Sandbox => Some("https://sandbox.plaid.com".into()),
            PlaidEnvironment::Production => Some("https://production.plaid.com".into()),
            PlaidEnvironment::Custom => Some(self.base_url.trim_end_matches('/').to_owned()),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn balance_timeout(&self) -> Duration {
        Duration::from_secs(self.balance_timeout_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    pub max_body_bytes: usize,
    pub max_age_secs: u64,
    pub future_skew_secs: u64,
    pub spool_ready_max: i64,
}

/// The sync worker: paging, batching, concurrency and Plaid's rate limits (see `sync`).
#[derive(Debug, Clone, Deserialize)]
pub struct SyncSettings {
    /// `count` of each `/transactions/sync` call (Plaid allows 1–500).
    pub page_size: u32,
    /// Pages one sync may fetch before it gives up with an error.
    pub max_pages: u32,
    /// Restarts after TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION before retrying later.
    pub max_pagination_restarts: u32,
    /// Syncs one worker process runs at once; each holds a database connection throughout.
    pub concurrency: u32,
    /// Rows per batched upsert statement.
    pub upsert_batch: usize,
    /// Transactions (added + modified + removed) per `transactions.synced` event.
    pub event_chunk_size: usize,
    /// `/transactions/sync` calls allowed per Item in any window (0 = unlimited).
    pub item_limit_per_window: u32,
    /// `/transactions/sync` calls allowed per Plaid client, across all workers (0 = unlimited).
    pub client_limit_per_window: u32,
    /// The limits' rolling window (Plaid: one minute).
    pub limit_window_secs: u64,
    /// Added to the window so network jitter cannot push two calls a window apart into one.
    pub limit_margin_ms: u64,
}

impl SyncSettings {
    /// The window the limiter enforces: Plaid's plus the safety margin.
    pub fn limit_window(&self) -> Duration {
        Duration::from_secs(self.limit_window_secs) + Duration::from_millis(self.limit_margin_ms)
    }
}

/// Where the built-in simulator listens, plus its own behaviour.
#[derive(Debug, Clone, Deserialize)]
pub struct SimSettings {
    pub host: String,
    pub port: u16,
    #[serde(flatten)]
    pub behaviour: crate::sim::SimConfig,
}

impl SimSettings {
    pub fn addr(&self) -> anyhow::Result<SocketAddr> {
        ListenerSettings {
            host: self.host.clone(),
            port: self.port,
        }
        .addr()
        .context("invalid setting `sim.host`/`sim.port`")
    }
}

/// What plaidhook tells Plaid when it creates Link tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct LinkSettings {
    pub client_name: String,
    pub language: String,
    pub country_codes: Vec<String>,
}

/// The management API on the internal listener.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiSettings {
    /// Bearer tokens allowed to call the API, by name: the lowercase hex SHA-256 of each token,
    /// never the token itself.
    #[serde(default)]
    pub tokens: std::collections::HashMap<String, String>,
    /// Minimum time between two manual syncs of one Item.
    pub manual_sync_min_interval_secs: u64,
}

impl ApiSettings {
    pub fn manual_sync_min_interval(&self) -> Duration {
        Duration::from_secs(self.manual_sync_min_interval_secs)
    }
}

/// The body an alert webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertFormat {
    /// plaidhook's own JSON document.
    Generic,
    /// A Slack incoming-webhook body (`text` plus blocks).
    Slack,
}

/// Delivery of alerts to an optional webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct AlertSettings {
    /// Where alerts are POSTed; empty disables delivery (alerts are still events). A secret:
    /// Slack webhook URLs carry their credential.
    pub webhook_url: SecretString,
    pub format: AlertFormat,
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_secs: u64,
    pub poll_interval_ms: u64,
}

impl AlertSettings {
    pub fn enabled(&self) -> bool {
        !self.webhook_url.expose_secret().trim().is_empty()
    }
}

/// The safety-net scheduler.
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerSettings {
    pub enabled: bool,
    /// Seconds between two rounds.
    pub interval_secs: u64,
    /// An Item with no successful sync for this long gets a sync request.
    pub stale_after_secs: u64,
    /// An Item in error not reconciled for this long is re-checked with `/item/get`.
    pub error_recheck_secs: u64,
    /// A pending expiration closer than this is reminded (once) through the alert webhook.
    pub expiration_reminder_secs: u64,
}

impl Settings {
    /// Loads the layers for `PLAIDHOOK_ENVIRONMENT` from `PLAIDHOOK_CONFIG_DIR` (or `./config`).
    pub fn load() -> anyhow::Result<Self> {
        let dir = std::env::var_os("PLAIDHOOK_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        let environment =
            std::env::var("PLAIDHOOK_ENVIRONMENT").unwrap_or_else(|_| "local".to_owned());
        Self::load_from(&dir, &environment, std::env::vars())
    }

    /// Loads from an explicit directory, environment name and set of variables; the tests use
    /// this so they never touch the process environment.
    pub fn load_from(
        dir: &std::path::Path,
        environment: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let vars: config::Map<String, String> = vars
            .into_iter()
            .filter(|(key, _)| key.starts_with("PLAIDHOOK__"))
            .collect();
        let raw = config::Config::builder()
            .add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            ))
            .add_source(
                config::File::from(dir.join(format!("{environment}.toml")))
                    .format(config::FileFormat::Toml)
                    .required(false),
            )
            .add_source(
                config::Environment::with_prefix("PLAIDHOOK")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(vars)),
            )
            .build()
            .context("configuration could not be read")?;
        let settings: Settings = raw
            .try_deserialize()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks that cross fields and value ranges make sense; each error names its setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        let fail =
            |setting: &str, why: &str| Err(anyhow::anyhow!("invalid setting `{setting}`: {why}"));
        self.public
            .addr()
            .context("invalid setting `public.host`/`public.port`")?;
        self.internal
            .addr()
            .context("invalid setting `internal.host`/`internal.port`")?;
        if self.public.port != 0
            && self.public.port == self.internal.port
            && self.public.host == self.internal.host
        {
            return fail("internal.port", "must differ from public.port");
        }
        let db_url = self.database.url.expose_secret();
        if !(db_url.starts_with("postgres://") || db_url.starts_with("postgresql://")) {
            return fail("database.url", "must be a postgres:// URL");
        }
        if self.database.max_connections == 0 {
            return fail("database.max_connections", "must be at least 1");
        }
        let amqp_url = self.rabbitmq.url.expose_secret();
        if !(amqp_url.starts_with("amqp://") || amqp_url.starts_with("amqps://")) {
            return fail("rabbitmq.url", "must be an amqp:// or amqps:// URL");
        }
        if !(1..10_000).contains(&self.rabbitmq.publish_timeout_ms) {
            return fail(
                "rabbitmq.publish_timeout_ms",
                "must be between 1 and 9999 (Plaid gives up at 10 s)",
            );
        }
        if self.rabbitmq.prefetch == 0 {
            return fail("rabbitmq.prefetch", "must be at least 1");
        }
        if self.rabbitmq.delivery_limit == 0 {
            return fail("rabbitmq.delivery_limit", "must be at least 1");
        }
        if self.plaid.environment == PlaidEnvironment::Custom
            && !self.plaid.base_url.starts_with("http")
        {
            return fail(
                "plaid.base_url",
                "must be an http(s) URL when plaid.environment = \"custom\"",
            );
        }
        if self.plaid.client_id.trim().is_empty() {
            return fail("plaid.client_id", "must not be empty");
        }
        if self.plaid.secret.expose_secret().trim().is_empty() {
            return fail("plaid.secret", "must not be empty");
        }
        if self.plaid.timeout_secs == 0 || self.plaid.balance_timeout_secs == 0 {
            return fail("plaid.timeout_secs", "timeouts must be at least 1 second");
        }
        if !self.plaid.webhook_url.is_empty() && !self.plaid.webhook_url.starts_with("http") {
            return fail("plaid.webhook_url", "must be an http(s) URL or empty");
        }
        if self.webhook.spool_ready_max < 0 {
            return fail("webhook.spool_ready_max", "must not be negative");
        }
        if self.webhook.max_body_bytes < 1024 {
            return fail("webhook.max_body_bytes", "must be at least 1024");
        }
        if self.webhook.max_age_secs == 0 {
            return fail("webhook.max_age_secs", "must be at least 1");
        }
        self.validate_sync()?;
        if self.plaid.environment == PlaidEnvironment::Simulator {
            self.sim.addr()?;
        }
        let real_plaid = matches!(
            self.plaid.environment,
            PlaidEnvironment::Sandbox | PlaidEnvironment::Production
        );
        if real_plaid && self.tokens.active_key_id == DEVELOPMENT_TOKEN_KEY_ID {
            return fail(
                "tokens.active_key_id",
                "the development key must not seal real access tokens; configure a key of your own",
            );
        }
        crate::crypto::TokenCipher::new(&self.tokens.active_key_id, &self.tokens.keys)?;
        self.validate_api_and_alerts()
    }

    fn validate_api_and_alerts(&self) -> anyhow::Result<()> {
        let fail =
            |setting: &str, why: &str| Err(anyhow::anyhow!("invalid setting `{setting}`: {why}"));
        for (name, hash) in &self.api.tokens {
            let is_hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
            if !is_hex {
                return fail(
                    &format!("api.tokens.{name}"),
                    "must be the hex SHA-256 of the token (`printf %s TOKEN | sha256sum`), not the token",
                );
            }
        }
        if self.link.client_name.trim().is_empty() {
            return fail("link.client_name", "must not be empty");
        }
        if self.link.country_codes.is_empty() {
            return fail("link.country_codes", "must name at least one country");
        }
        let alert_url = self.alerts.webhook_url.expose_secret().trim();
        if !alert_url.is_empty() && !alert_url.starts_with("http") {
            return fail("alerts.webhook_url", "must be an http(s) URL or empty");
        }
        if self.alerts.max_attempts == 0 {
            return fail("alerts.max_attempts", "must be at least 1");
        }
        if self.alerts.timeout_secs == 0 || self.alerts.poll_interval_ms == 0 {
            return fail(
                "alerts.timeout_secs",
                "timeouts and intervals must be positive",
            );
        }
        if self.scheduler.interval_secs == 0 {
            return fail("scheduler.interval_secs", "must be at least 1");
        }
        Ok(())
    }

    fn validate_sync(&self) -> anyhow::Result<()> {
        let fail =
            |setting: &str, why: &str| Err(anyhow::anyhow!("invalid setting `{setting}`: {why}"));
        let sync = &self.sync;
        if !(1..=500).contains(&sync.page_size) {
            return fail(
                "sync.page_size",
                "must be between 1 and 500 (Plaid's range)",
            );
        }
        if sync.max_pages == 0 {
            return fail("sync.max_pages", "must be at least 1");
        }
        // Each running sync holds a connection; leave some for the rest of the process.
        if sync.concurrency == 0 || sync.concurrency + 2 > self.database.max_connections {
            return fail(
                "sync.concurrency",
                "must be at least 1 and at most database.max_connections - 2",
            );
        }
        if !(1..=20_000).contains(&sync.upsert_batch) {
            return fail("sync.upsert_batch", "must be between 1 and 20000");
        }
        if sync.event_chunk_size == 0 {
            return fail("sync.event_chunk_size", "must be at least 1");
        }
        if sync.limit_window_secs == 0 {
            return fail("sync.limit_window_secs", "must be at least 1");
        }
        if sync.client_limit_per_window > 0
            && sync.item_limit_per_window > sync.client_limit_per_window
        {
            return fail(
                "sync.item_limit_per_window",
                "must not exceed sync.client_limit_per_window",
            );
        }
        Ok(())
    }
}
