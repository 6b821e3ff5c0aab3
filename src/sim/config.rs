//! `SimConfig`: the simulator's settings, the `[sim]` section of plaidhook's config file.
//!
//! Everything has a default, so an empty section is a working simulator with Plaid's
//! production rate limits (`rate_limit_profile`) and real webhook timings. The fault settings (latency, 5xx rate,
//! limits, webhook duplication and reordering) can also be changed at run time through
//! `POST /sim/config`.

use super::limits::{self, EndpointLimit, RateLimitProfile};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Seed of every generated identifier, key and transaction history.
    pub seed: u64,
    /// The credentials the simulator accepts (body or `PLAID-CLIENT-ID` / `PLAID-SECRET`).
    pub client_id: String,
    pub secret: String,
    /// `sandbox` or `production`: the `environment` of webhooks and the prefix of tokens.
    pub environment: String,
    /// The base URL browsers reach this simulator at, for the Hosted Link URLs it hands out
    /// (behind a proxy or in a container); `None` = its own address.
    pub public_url: Option<String>,
    /// Transactions in a new Item's history (tens of thousands are fine).
    pub transactions_per_item: usize,
    /// Days of history when the link token or sandbox request does not say (Plaid: 90).
    pub default_days_requested: u32,
    /// The bank's "today" for new Items; `None` means the current UTC date. Fix it for fully
    /// reproducible dates.
    pub today: Option<NaiveDate>,
    /// Multiplier of Plaid's redelivery delays (30 s ×4 up to 24 h); tests use tiny values.
    pub webhook_time_scale: f64,
    /// How long a webhook receiver has to answer (Plaid: 10 s).
    pub webhook_timeout_ms: u64,
    /// Webhooks sent to a receiver within 24 h (scaled) before Plaid's rule applies: no
    /// retries to a receiver that rejected more than 90% of them. Plaid gives no minimum;
    /// this one is ours (a single rejected webhook is not a rate).
    pub webhook_rejection_sample: u32,
    /// Extra copies of every webhook delivered (0 = each once).
    pub webhook_duplicates: u32,
    /// Hold this many webhooks and deliver them in reverse order (0 or 1 = in order).
    pub webhook_reorder_window: usize,
    /// Latency added to every Plaid API response.
    pub latency_ms: u64,
    /// Fraction (0.0–1.0) of Plaid API requests answered with a 500 INTERNAL_SERVER_ERROR.
    pub error_rate: f64,
    /// Which of Plaid's tables of rate limits applies (`production`, the default, or `sandbox`);
    /// the figures live in `sim::limits`.
    pub rate_limit_profile: RateLimitProfile,
    /// Overrides of the profile's figures (calls per rolling minute, 0 = unlimited; unset = the
    /// profile's): `/transactions/sync` per Item and per client…
    pub sync_limit_per_item_per_minute: Option<u32>,
    pub sync_limit_per_client_per_minute: Option<u32>,
    /// …and `/accounts/balance/get` per Item and per client.
    pub balance_limit_per_item_per_minute: Option<u32>,
    pub balance_limit_per_client_per_minute: Option<u32>,
    /// The rolling window those limits count calls in (Plaid's: one minute). Shorter only for
    /// tests that need a limit to bind within seconds.
    pub rate_limit_window_ms: u64,
    /// Fields added to every transaction in `/transactions/sync` answers, as Plaid adds fields
    /// to its objects without notice: for proving that clients keep what they do not model.
    pub transaction_extra_fields: serde_json::Map<String, serde_json::Value>,
    /// Fields added to every account in `/transactions/sync`, `/accounts/get` and
    /// `/accounts/balance/get` answers, for the same reason.
    pub account_extra_fields: serde_json::Map<String, serde_json::Value>,

    // Lifecycle: how a new Item's transactions become available, as at Plaid.
    /// Instant data (benches, demos): a new Item's whole history is ready at creation, its
    /// status `HISTORICAL_UPDATE_COMPLETE`, and no INITIAL_UPDATE / HISTORICAL_UPDATE is sent.
    /// False (the default) is Plaid's lifecycle: `/transactions/sync` answers `NOT_READY` with
    /// nothing until the initial update (the last 30 days), then the rest at the historical
    /// update, each announced by its webhooks. `POST /sim/items/{id}/ready` completes both now.
    pub initial_data_ready: bool,
    /// From a new Item to its initial update (the most recent 30 days of transactions).
    pub initial_update_delay_ms: u64,
    /// From the initial update to the historical update (everything else).
    pub historical_update_delay_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            client_id: "plaidhook-sim-client".to_owned(),
            secret: "plaidhook-sim-secret".to_owned(),
            environment: "sandbox".to_owned(),
            public_url: None,
            transactions_per_item: 500,
            default_days_requested: 90,
            today: None,
            webhook_time_scale: 1.0,
            webhook_timeout_ms: 10_000,
            webhook_rejection_sample: 20,
            webhook_duplicates: 0,
            webhook_reorder_window: 0,
            latency_ms: 0,
            error_rate: 0.0,
            rate_limit_profile: RateLimitProfile::Production,
            sync_limit_per_item_per_minute: None,
            sync_limit_per_client_per_minute: None,
            balance_limit_per_item_per_minute: None,
            balance_limit_per_client_per_minute: None,
            rate_limit_window_ms: 60_000,
            transaction_extra_fields: serde_json::Map::new(),
            account_extra_fields: serde_json::Map::new(),
            // Lifecycle
            initial_data_ready: false,
            initial_update_delay_ms: 5_000,
            historical_update_delay_ms: 20_000,
        }
    }
}

impl SimConfig {
    /// The limits applied to `endpoint`: the profile's figures with this config's overrides.
    pub fn rate_limit(&self, endpoint: &str) -> Option<EndpointLimit> {
        let documented = limits::documented(self.rate_limit_profile, endpoint)?;
        let (item, client) = match endpoint {
            "/transactions/sync" => (
                self.sync_limit_per_item_per_minute,
                self.sync_limit_per_client_per_minute,
            ),
            "/accounts/balance/get" => (
                self.balance_limit_per_item_per_minute,
                self.balance_limit_per_client_per_minute,
            ),
            _ => (None, None),
        };
        Some(EndpointLimit {
            per_item: item.unwrap_or(documented.per_item),
            per_client: client.unwrap_or(documented.per_client),
        })
    }

    /// Check the settings; a bad value fails at start with a clear message.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.client_id.is_empty(),
            "sim.client_id must not be empty"
        );
        anyhow::ensure!(!self.secret.is_empty(), "sim.secret must not be empty");
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.error_rate),
            "sim.error_rate must be between 0.0 and 1.0, got {}",
            self.error_rate
        );
        anyhow::ensure!(
            self.rate_limit_window_ms > 0,
            "sim.rate_limit_window_ms must be at least 1"
        );
        anyhow::ensure!(
            self.webhook_time_scale.is_finite() && self.webhook_time_scale >= 0.0,
            "sim.webhook_time_scale must be a non-negative number"
        );
        anyhow::ensure!(
            (1..=730).contains(&self.default_days_requested),
            "sim.default_days_requested must be 1–730"
        );
        anyhow::ensure!(
            self.transactions_per_item <= 5_000_000,
            "sim.transactions_per_item is unreasonably large"
        );
        anyhow::ensure!(
            self.initial_update_delay_ms <= 86_400_000
                && self.historical_update_delay_ms <= 86_400_000,
            "sim.initial_update_delay_ms and sim.historical_update_delay_ms must be at most a day"
        );
        Ok(())
    }
}
