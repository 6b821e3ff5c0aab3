//! The service's own plumbing: listeners, PostgreSQL, RabbitMQ, the webhook ingress, and the
//! keys that seal access tokens.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{duration, fail, networks};

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

/// Both listeners: each must parse, and they must not collide.
pub(super) fn validate_listeners(
    public: &ListenerSettings,
    internal: &ListenerSettings,
) -> anyhow::Result<()> {
    public
        .addr()
        .context("invalid setting `public.host`/`public.port`")?;
    internal
        .addr()
        .context("invalid setting `internal.host`/`internal.port`")?;
    if public.port != 0 && public.port == internal.port && public.host == internal.host {
        return fail("internal.port", "must differ from public.port");
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    /// How long to wait for a pooled connection.
    #[serde(rename = "acquire_timeout_secs", deserialize_with = "duration::secs")]
    pub acquire_timeout: Duration,
    pub migrate_on_start: bool,
}

impl DatabaseSettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let url = self.url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return fail("database.url", "must be a postgres:// URL");
        }
        if self.max_connections == 0 {
            return fail("database.max_connections", "must be at least 1");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RabbitMqSettings {
    pub url: SecretString,
    /// The nodes of a cluster, tried in turn; when set, `url` is not used.
    #[serde(deserialize_with = "secret_list")]
    pub urls: Vec<SecretString>,
    pub namespace: String,
    /// Bound on publish + confirm; then the spool takes over.
    #[serde(rename = "publish_timeout_ms", deserialize_with = "duration::millis")]
    pub publish_timeout: Duration,
    pub prefetch: u16,
    pub delivery_limit: u32,
    /// Replicas each quorum queue is created with; 0 leaves it to the broker.
    pub quorum_initial_group_size: u32,
}

impl RabbitMqSettings {
    /// The broker URLs to connect to, in order of preference: `urls`, or else `url`.
    pub fn nodes(&self) -> Vec<SecretString> {
        if self.urls.is_empty() {
            vec![self.url.clone()]
        } else {
            self.urls.clone()
        }
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let key = if self.urls.is_empty() {
            "rabbitmq.url"
        } else {
            "rabbitmq.urls"
        };
        for node in self.nodes() {
            let url = node.expose_secret();
            if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                return fail(key, "must be an amqp:// or amqps:// URL");
            }
        }
        let publish_ms = self.publish_timeout.as_millis();
        if !(1..10_000).contains(&publish_ms) {
            return fail(
                "rabbitmq.publish_timeout_ms",
                "must be between 1 and 9999 (Plaid gives up at 10 s)",
            );
        }
        if self.prefetch == 0 {
            return fail("rabbitmq.prefetch", "must be at least 1");
        }
        if self.delivery_limit == 0 {
            return fail("rabbitmq.delivery_limit", "must be at least 1");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    pub max_body_bytes: usize,
    /// Oldest accepted `iat` of a `Plaid-Verification` JWT.
    #[serde(rename = "max_age_secs", deserialize_with = "duration::secs")]
    pub max_age: Duration,
    /// How far in the future `iat` may be (clock skew).
    #[serde(rename = "future_skew_secs", deserialize_with = "duration::secs")]
    pub future_skew: Duration,
    pub spool_ready_max: i64,
    /// Where webhooks may come from; empty accepts any source (the signature is the proof
    /// either way). `plaid` stands for Plaid's published addresses.
    #[serde(deserialize_with = "networks::list")]
    pub allowed_sources: Vec<ipnet::IpNet>,
    /// Proxies in front of the ingress whose `X-Forwarded-For` is believed; the source of a
    /// webhook is the nearest address in that chain that is not one of them.
    #[serde(deserialize_with = "networks::list")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl WebhookSettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.spool_ready_max < 0 {
            return fail("webhook.spool_ready_max", "must not be negative");
        }
        if self.max_body_bytes < 1024 {
            return fail("webhook.max_body_bytes", "must be at least 1024");
        }
        if self.max_age.is_zero() {
            return fail("webhook.max_age_secs", "must be at least 1");
        }
        Ok(())
    }
}

/// Keys that seal access tokens at rest (see `crypto`).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenSettings {
    pub active_key_id: String,
    pub keys: HashMap<String, SecretString>,
}

/// The id of the development key in `config/default.toml`: refused with a real Plaid.
pub const DEVELOPMENT_TOKEN_KEY_ID: &str = "dev";

impl TokenSettings {
    /// `real_plaid`: the keys will seal access tokens of a real Plaid environment.
    pub(super) fn validate(&self, real_plaid: bool) -> anyhow::Result<()> {
        if real_plaid && self.active_key_id == DEVELOPMENT_TOKEN_KEY_ID {
            return fail(
                "tokens.active_key_id",
                "the development key must not seal real access tokens; configure a key of your own",
            );
        }
        crate::crypto::TokenCipher::new(&self.active_key_id, &self.keys)?;
        Ok(())
    }
}

/// A list of secrets, written as a TOML list or, from the environment, one comma-separated
/// string.
fn secret_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SecretString>, D::Error> {
    Ok(networks::entries(deserializer)?
        .into_iter()
        .map(SecretString::from)
        .collect())
}
