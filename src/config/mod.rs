//! Layered, typed configuration.
//!
//! `config/default.toml` (compiled in, so the binary runs from anywhere) → `config/<env>.toml`
//! (optional, `PLAIDHOOK_ENVIRONMENT`, default `local`) → `PLAIDHOOK__SECTION__KEY` environment
//! variables. Secrets are `SecretString`s so they never print; durations are `Duration`s
//! (`duration`). [`Settings::load`] fails with a message that names the offending setting;
//! nothing starts on a half-valid configuration: a key no setting reads (`strict`) and a named
//! environment without its file stop the start too. Each section validates itself:
//!
//! - `service`: listeners, database, RabbitMQ, the webhook ingress, the token keys.
//! - `plaid`: which Plaid, its credentials and timeouts, Link, the built-in simulator.
//! - `workers`: sync, alert delivery, the scheduler, retention, the management API.
//! - `networks`: IP networks (`webhook.allowed_sources`, `webhook.trusted_proxies`).

mod duration;
mod networks;
mod plaid;
mod service;
mod strict;
mod workers;

use std::path::PathBuf;

use anyhow::Context;
use serde::Deserialize;

pub use self::networks::PLAID_WEBHOOK_SOURCES;
pub use self::plaid::{LinkSettings, PlaidEnvironment, PlaidSettings, SimSettings};
pub use self::service::{
    DatabaseSettings, ListenerSettings, RabbitMqSettings, TokenSettings, WebhookSettings,
    DEVELOPMENT_TOKEN_KEY_ID,
};
pub use self::workers::{
    AlertFormat, AlertSettings, ApiSettings, RetentionSettings, SchedulerSettings, SyncSettings,
};
pub use crate::telemetry::{LogFormat, TelemetrySettings};

/// The environment used when none is named; the only one whose file may be missing.
pub const DEFAULT_ENVIRONMENT: &str = "local";

/// The base layer, embedded so a binary copied elsewhere still has every default.
const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// An error that names the setting and says what is wrong with it.
fn fail(setting: &str, why: &str) -> anyhow::Result<()> {
    Err(anyhow::anyhow!("invalid setting `{setting}`: {why}"))
}

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
    pub retention: RetentionSettings,
}

impl Settings {
    /// Loads the layers for `PLAIDHOOK_ENVIRONMENT` from `PLAIDHOOK_CONFIG_DIR` (or `./config`).
    pub fn load() -> anyhow::Result<Self> {
        let dir = std::env::var_os("PLAIDHOOK_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        let environment = std::env::var("PLAIDHOOK_ENVIRONMENT")
            .unwrap_or_else(|_| DEFAULT_ENVIRONMENT.to_owned());
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
        let file = dir.join(format!("{environment}.toml"));
        // Only the default environment may have no file: `--environment staging` with no
        // `staging.toml` is a typo or a wrong directory, and running on defaults instead would
        // point a production process at a local database.
        if environment != DEFAULT_ENVIRONMENT && !file.is_file() {
            anyhow::bail!(
                "no configuration file for environment `{environment}`: {} does not exist \
                 (set --config-dir or PLAIDHOOK_CONFIG_DIR to the directory that holds it)",
                file.display()
            );
        }
        let raw = config::Config::builder()
            .add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            ))
            .add_source(
                config::File::from(file)
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
        let mut unknown = strict::unknown_sim_keys(&raw);
        let settings: Settings = serde_ignored::deserialize(raw, |path| {
            unknown.push(path.to_string());
        })
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        strict::refuse_unknown(unknown)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every section, and what spans sections; each error names its setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        service::validate_listeners(&self.public, &self.internal)?;
        self.database.validate()?;
        self.rabbitmq.validate()?;
        self.plaid.validate()?;
        self.webhook.validate()?;
        self.sync.validate(self.database.max_connections)?;
        if self.plaid.environment == PlaidEnvironment::Simulator {
            self.sim.addr()?;
        }
        self.tokens.validate(self.plaid.environment.is_real())?;
        self.api.validate()?;
        self.link.validate()?;
        self.alerts.validate()?;
        self.retention.validate()?;
        self.scheduler.validate()
    }
}
