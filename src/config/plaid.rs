//! Which Plaid plaidhook talks to, how, and what it tells Plaid about Link; and the built-in
//! simulator that stands in for Plaid by default.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::service::ListenerSettings;
use super::{duration, fail};

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

    /// Plaid itself, whose access tokens are real.
    pub fn is_real(self) -> bool {
        matches!(self, Self::Sandbox | Self::Production)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlaidSettings {
    pub environment: PlaidEnvironment,
    pub base_url: String,
    pub client_id: String,
    pub secret: SecretString,
    /// Timeout of a Plaid API call.
    #[serde(rename = "timeout_secs", deserialize_with = "duration::secs")]
    pub timeout: Duration,
    /// Timeout of `/accounts/balance/get`, which can take 30 s or more.
    #[serde(rename = "balance_timeout_secs", deserialize_with = "duration::secs")]
    pub balance_timeout: Duration,
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

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.environment == PlaidEnvironment::Custom && !self.base_url.starts_with("http") {
            return fail(
                "plaid.base_url",
                "must be an http(s) URL when plaid.environment = \"custom\"",
            );
        }
        if self.client_id.trim().is_empty() {
            return fail("plaid.client_id", "must not be empty");
        }
        if self.secret.expose_secret().trim().is_empty() {
            return fail("plaid.secret", "must not be empty");
        }
        if self.timeout.is_zero() || self.balance_timeout.is_zero() {
            return fail("plaid.timeout_secs", "timeouts must be at least 1 second");
        }
        if !self.webhook_url.is_empty() && !self.webhook_url.starts_with("http") {
            return fail("plaid.webhook_url", "must be an http(s) URL or empty");
        }
        Ok(())
    }
}

/// What plaidhook tells Plaid when it creates Link tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct LinkSettings {
    pub client_name: String,
    pub language: String,
    pub country_codes: Vec<String>,
    /// Hosted Link: alerts about an Item that needs its user carry a Plaid-hosted repair URL.
    pub hosted: bool,
    /// How long a hosted repair URL lives (Plaid: at most 21 days).
    #[serde(
        rename = "hosted_url_lifetime_secs",
        deserialize_with = "duration::secs"
    )]
    pub hosted_url_lifetime: Duration,
    /// A link with less than this left is replaced by a fresh one (and the alert says so).
    #[serde(
        rename = "hosted_renew_before_secs",
        deserialize_with = "duration::secs"
    )]
    pub hosted_renew_before: Duration,
    /// Where Hosted Link sends the user when they are done (the app's page); empty: Plaid's
    /// own completion page.
    pub completion_redirect_uri: String,
}

impl LinkSettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.client_name.trim().is_empty() {
            return fail("link.client_name", "must not be empty");
        }
        if self.country_codes.is_empty() {
            return fail("link.country_codes", "must name at least one country");
        }
        let lifetime = self.hosted_url_lifetime;
        if lifetime.is_zero() || lifetime > Duration::from_secs(21 * 24 * 3600) {
            return fail(
                "link.hosted_url_lifetime_secs",
                "must be between 1 second and 21 days (Plaid's limit)",
            );
        }
        if self.hosted_renew_before >= lifetime {
            return fail(
                "link.hosted_renew_before_secs",
                "must be shorter than link.hosted_url_lifetime_secs",
            );
        }
        let redirect = self.completion_redirect_uri.trim();
        if !redirect.is_empty() && !redirect.starts_with("http") {
            return fail(
                "link.completion_redirect_uri",
                "must be an http(s) URL or empty",
            );
        }
        Ok(())
    }
}

/// Where the built-in simulator listens, whether this process starts it, where it keeps its
/// state, plus its own behaviour.
#[derive(Debug, Clone, Deserialize)]
pub struct SimSettings {
    pub host: String,
    pub port: u16,
    /// With `plaid.environment = "simulator"`: true starts the simulator in this process on
    /// host:port; false uses the one already running there (another `plaidhook all`, or a
    /// `plaidhook sim`), so every process of one machine shares one Plaid.
    pub embedded: bool,
    /// File the simulator keeps its Items, tokens and keys in across restarts; empty keeps
    /// them in memory only (the tests).
    pub state_file: String,
    /// Start with no Items, replacing what the state file holds (`plaidhook sim --fresh`).
    pub fresh: bool,
    #[serde(flatten)]
    pub behaviour: crate::sim::SimConfig,
}

impl SimSettings {
    /// The state file to keep, if any.
    pub fn persistence(&self) -> Option<crate::sim::Persistence> {
        (!self.state_file.trim().is_empty()).then(|| crate::sim::Persistence {
            path: self.state_file.trim().into(),
            fresh: self.fresh,
        })
    }

    /// The base URL of the simulator running at host:port, for `embedded = false`.
    pub fn running_base_url(&self) -> anyhow::Result<String> {
        if self.port == 0 {
            fail(
                "sim.port",
                "must be the running simulator's port when sim.embedded = false",
            )?;
        }
        let host = match self.host.as_str() {
            "0.0.0.0" => "127.0.0.1",
            "::" | "[::]" => "[::1]",
            host if host.contains(':') && !host.starts_with('[') => {
                return Ok(format!("http://[{host}]:{}", self.port))
            }
            host => host,
        };
        Ok(format!("http://{host}:{}", self.port))
    }

    pub fn addr(&self) -> anyhow::Result<SocketAddr> {
        ListenerSettings {
            host: self.host.clone(),
            port: self.port,
        }
        .addr()
        .context("invalid setting `sim.host`/`sim.port`")
    }
}
