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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    pub format: LogFormat,
    pub filter: String,
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
        if self.webhook.max_body_bytes < 1024 {
            return fail("webhook.max_body_bytes", "must be at least 1024");
        }
        if self.webhook.max_age_secs == 0 {
            return fail("webhook.max_age_secs", "must be at least 1");
        }
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
        Ok(())
    }
}
