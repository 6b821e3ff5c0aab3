//! Plaid's `/transactions/sync` rate limits, shared by every worker process.
//!
//! Plaid allows 50 calls per Item and 2,500 per client in any rolling minute and answers 429
//! past that. plaidhook keeps under both with a log of grants in PostgreSQL
//! (`rate_limit_grants`, decided by `sync_rate_limit_take` under one advisory lock): a call may
//! go when fewer than the limit were granted inside the window, otherwise the caller is told
//! how long until the oldest grant in the way leaves the window, and waits. The log is exact
//! for rolling windows, so the whole allowance can be used without a single 429; the window is
//! widened by a small margin (`sync.limit_margin_ms`) because the limit is counted at Plaid, on
//! arrival, and two calls a window apart here may arrive slightly closer there.

use std::time::{Duration, Instant};

use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::SyncSettings;
use crate::telemetry::names;

/// Why a call could not be granted.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("shutting down while waiting for the rate limiter")]
    ShuttingDown,
    #[error("rate limiter query failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// The per-Item and per-client limits of `/transactions/sync`.
#[derive(Debug, Clone)]
pub struct SyncRateLimiter {
    item_limit: i32,
    client_limit: i32,
    window_ms: i64,
    client_bucket: String,
}

impl SyncRateLimiter {
    /// `client_id` names the client bucket, so two deployments with different Plaid clients
    /// sharing one database keep separate allowances.
    pub fn new(settings: &SyncSettings, client_id: &str) -> Self {
        Self {
            item_limit: settings.item_limit_per_window.min(i32::MAX as u32) as i32,
            client_limit: settings.client_limit_per_window.min(i32::MAX as u32) as i32,
            window_ms: settings.enforced_window().as_millis().min(i64::MAX as u128) as i64,
            client_bucket: format!("client:{client_id}:/transactions/sync"),
        }
    }

    /// Whether any limit is configured at all.
    pub fn is_unlimited(&self) -> bool {
        self.item_limit <= 0 && self.client_limit <= 0
    }

    /// Waits until one more call for `item_id` fits both limits and records it. Returns how
    /// long it waited. Runs on the caller's connection (the sync's own), so a sync never needs
    /// a second one.
    pub async fn acquire(
        &self,
        conn: &mut PgConnection,
        item_id: Uuid,
        shutdown: &CancellationToken,
    ) -> Result<Duration, LimitError> {
        if self.is_unlimited() {
            return Ok(Duration::ZERO);
        }
        let started = Instant::now();
        let buckets = vec![self.client_bucket.clone(), format!("item:{item_id}")];
        let limits = vec![self.client_limit, self.item_limit];
        loop {
            let decision = sqlx::query!(
                r#"select granted as "granted!", wait_seconds as "wait_seconds!", limited_bucket
                   from sync_rate_limit_take($1, $2, $3)"#,
                &buckets,
                &limits,
                self.window_ms
            )
            .fetch_one(&mut *conn)
            .await?;
            if decision.granted {
                let waited = started.elapsed();
                if !waited.is_zero() {
                    metrics::histogram!(names::SYNC_RATE_LIMIT_WAIT).record(waited.as_secs_f64());
                }
                return Ok(waited);
            }
            let limit = match decision.limited_bucket.as_deref() {
                Some(bucket) if bucket.starts_with("item:") => "item",
                _ => "client",
            };
            metrics::counter!(names::SYNC_RATE_LIMIT_WAITS, "limit" => limit).increment(1);
            // A few milliseconds past the moment room appears, so the retry does not land just
            // before it.
            let wait = Duration::from_secs_f64(decision.wait_seconds) + Duration::from_millis(5);
            tracing::debug!(item.id = %item_id, limit, wait_ms = wait.as_millis() as u64, "waiting for the rate limiter");
            tokio::select! {
                _ = shutdown.cancelled() => return Err(LimitError::ShuttingDown),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
