//! What the workers and the management API do: syncing, alert delivery, the safety net, and
//! the API's own limits.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Deserializer};

use super::{duration, fail, networks};

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
    #[serde(rename = "limit_window_secs", deserialize_with = "duration::secs")]
    pub limit_window: Duration,
    /// Added to the window. A call occupies the window until a window after its response,
    /// so no margin is needed for jitter; 0 by default.
    #[serde(rename = "limit_margin_ms", deserialize_with = "duration::millis")]
    pub limit_margin: Duration,
}

impl SyncSettings {
    /// The window the limiter enforces: Plaid's plus the margin.
    pub fn enforced_window(&self) -> Duration {
        self.limit_window + self.limit_margin
    }

    /// `max_connections`: the pool each running sync takes a connection from.
    pub(super) fn validate(&self, max_connections: u32) -> anyhow::Result<()> {
        if !(1..=500).contains(&self.page_size) {
            return fail(
                "sync.page_size",
                "must be between 1 and 500 (Plaid's range)",
            );
        }
        if self.max_pages == 0 {
            return fail("sync.max_pages", "must be at least 1");
        }
        // Each running sync holds a connection; leave some for the rest of the process.
        if self.concurrency == 0 || self.concurrency + 2 > max_connections {
            return fail(
                "sync.concurrency",
                "must be at least 1 and at most database.max_connections - 2",
            );
        }
        if !(1..=20_000).contains(&self.upsert_batch) {
            return fail("sync.upsert_batch", "must be between 1 and 20000");
        }
        if self.event_chunk_size == 0 {
            return fail("sync.event_chunk_size", "must be at least 1");
        }
        if self.limit_window.is_zero() {
            return fail("sync.limit_window_secs", "must be at least 1");
        }
        if self.client_limit_per_window > 0
            && self.item_limit_per_window > self.client_limit_per_window
        {
            return fail(
                "sync.item_limit_per_window",
                "must not exceed sync.client_limit_per_window",
            );
        }
        Ok(())
    }
}

/// The management API on the internal listener.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiSettings {
    /// Bearer tokens allowed to call the API, by name: the lowercase hex SHA-256 of each token,
    /// never the token itself.
    #[serde(default)]
    pub tokens: HashMap<String, String>,
    /// Minimum time between two manual syncs of one Item.
    #[serde(
        rename = "manual_sync_min_interval_secs",
        deserialize_with = "duration::secs"
    )]
    pub manual_sync_min_interval: Duration,
}

impl ApiSettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        for (name, hash) in &self.tokens {
            let is_hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
            if !is_hex {
                return fail(
                    &format!("api.tokens.{name}"),
                    "must be the hex SHA-256 of the token (`printf %s TOKEN | sha256sum`), not the token",
                );
            }
        }
        Ok(())
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
    /// Timeout of one delivery attempt.
    #[serde(rename = "timeout_secs", deserialize_with = "duration::secs")]
    pub timeout: Duration,
    pub max_attempts: u32,
    /// Backoff before the second attempt; it doubles from there.
    #[serde(rename = "backoff_initial_ms", deserialize_with = "duration::millis")]
    pub backoff_initial: Duration,
    /// The longest backoff between two attempts.
    #[serde(rename = "backoff_max_secs", deserialize_with = "duration::secs")]
    pub backoff_max: Duration,
    /// How often the notifier looks for due deliveries.
    #[serde(rename = "poll_interval_ms", deserialize_with = "duration::millis")]
    pub poll_interval: Duration,
    /// Standard Webhooks signing secrets, each `whsec_` + the base64 of 24–64 random bytes; a
    /// TOML list or one comma-separated string. Every one signs every delivery: more than one
    /// only while rotating. None: deliveries go unsigned (a warning at start).
    #[serde(default, deserialize_with = "secret_list")]
    pub signing_secrets: Vec<SecretString>,
    /// An alert open this long (since raised or last reminded) is reminded.
    #[serde(rename = "remind_after_secs", deserialize_with = "duration::secs")]
    pub remind_after: Duration,
    /// Reminders per alert before it is escalated; 0 turns reminders and escalation off.
    pub max_reminders: u32,
    /// Where escalations go; empty: `webhook_url`. A secret, like `webhook_url`.
    pub oncall_webhook_url: SecretString,
    pub oncall_format: AlertFormat,
}

/// `alerts.signing_secrets`, read like every list setting, held as secrets from there on.
fn secret_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SecretString>, D::Error> {
    Ok(networks::entries(deserializer)?
        .into_iter()
        .map(SecretString::from)
        .collect())
}

/// The key in a `whsec_<base64>` secret, if it is one of 24 to 64 bytes (the spec's range).
fn whsec_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

impl AlertSettings {
    pub fn enabled(&self) -> bool {
        !self.webhook_url.expose_secret().trim().is_empty()
    }

    pub fn oncall_enabled(&self) -> bool {
        !self.oncall_webhook_url.expose_secret().trim().is_empty()
    }

    /// Where a delivery of `kind` goes, and in which format: escalations to the on-call
    /// channel when one is set, everything else to `webhook_url`.
    pub fn target(&self, kind: &str) -> (&SecretString, AlertFormat) {
        if kind == "escalated" && self.oncall_enabled() {
            (&self.oncall_webhook_url, self.oncall_format)
        } else {
            (&self.webhook_url, self.format)
        }
    }

    /// The keys of `signing_secrets`, in order. The error names the entry, never its value.
    pub fn signing_keys(&self) -> anyhow::Result<Vec<SecretSlice<u8>>> {
        let mut keys = Vec::with_capacity(self.signing_secrets.len());
        for (n, secret) in self.signing_secrets.iter().enumerate() {
            match whsec_key(secret.expose_secret()) {
                Some(key) => keys.push(key.into()),
                None => fail(
                    "alerts.signing_secrets",
                    &format!(
                        "entry {} is not `whsec_` followed by the base64 of 24 to 64 random bytes \
                         (e.g. `whsec_$(openssl rand -base64 32)`)",
                        n + 1
                    ),
                )?,
            }
        }
        Ok(keys)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let url = self.webhook_url.expose_secret().trim();
        if !url.is_empty() && !url.starts_with("http") {
            return fail("alerts.webhook_url", "must be an http(s) URL or empty");
        }
        let oncall = self.oncall_webhook_url.expose_secret().trim();
        if !oncall.is_empty() && !oncall.starts_with("http") {
            return fail(
                "alerts.oncall_webhook_url",
                "must be an http(s) URL or empty",
            );
        }
        if self.max_reminders > 0 && self.remind_after.is_zero() {
            return fail(
                "alerts.remind_after_secs",
                "must be positive when max_reminders is set",
            );
        }
        if self.max_attempts == 0 {
            return fail("alerts.max_attempts", "must be at least 1");
        }
        if self.timeout.is_zero() || self.poll_interval.is_zero() {
            return fail(
                "alerts.timeout_secs",
                "timeouts and intervals must be positive",
            );
        }
        self.signing_keys()?;
        Ok(())
    }
}

/// The safety-net scheduler.
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerSettings {
    pub enabled: bool,
    /// Time between two rounds.
    #[serde(rename = "interval_secs", deserialize_with = "duration::secs")]
    pub interval: Duration,
    /// An Item with no successful sync for this long gets a sync request.
    #[serde(rename = "stale_after_secs", deserialize_with = "duration::secs")]
    pub stale_after: Duration,
    /// An Item in error not reconciled for this long is re-checked with `/item/get`.
    #[serde(rename = "error_recheck_secs", deserialize_with = "duration::secs")]
    pub error_recheck: Duration,
    /// A pending expiration closer than this is reminded (once) through the alert webhook.
    #[serde(
        rename = "expiration_reminder_secs",
        deserialize_with = "duration::secs"
    )]
    pub expiration_reminder: Duration,
}

impl SchedulerSettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.interval.is_zero() {
            return fail("scheduler.interval_secs", "must be at least 1");
        }
        Ok(())
    }
}

/// How long the records that grow with traffic are kept (see `retention`). 0 keeps for ever.
#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    pub enabled: bool,
    /// Time between two pruning rounds.
    #[serde(rename = "interval_secs", deserialize_with = "duration::secs")]
    pub interval: Duration,
    /// Rows deleted per statement; a round repeats until a table is done.
    pub batch: i64,
    /// Published outbox rows (every synced transaction once more, as sent in its event).
    pub outbox_days: i32,
    /// The Plaid call log (`request_id`s for Plaid support).
    pub api_calls_days: i32,
    /// Finished sync runs.
    pub sync_runs_days: i32,
    /// Item status history.
    pub status_history_days: i32,
}

impl RetentionSettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.interval.is_zero() {
            return fail("retention.interval_secs", "must be at least 1");
        }
        if !(1..=100_000).contains(&self.batch) {
            return fail("retention.batch", "must be between 1 and 100000");
        }
        for (key, days) in [
            ("retention.outbox_days", self.outbox_days),
            ("retention.api_calls_days", self.api_calls_days),
            ("retention.sync_runs_days", self.sync_runs_days),
            ("retention.status_history_days", self.status_history_days),
        ] {
            if days < 0 {
                return fail(key, "must not be negative (0 keeps rows for ever)");
            }
        }
        Ok(())
    }
}
