//! Plaid's `/transactions/sync` rate limits, shared by every worker process.
//!
//! Plaid allows 50 calls per Item and 2,500 per client in any rolling minute and answers 429
//! past that. plaidhook keeps under both with a log of grants in PostgreSQL
//! (`rate_limit_grants`, decided by `sync_rate_limit_take` under one advisory lock): a call may
//! go when fewer than the limit occupy the window, otherwise the caller is told when the grant
//! in the way may end, and waits. A grant occupies from the moment it is granted until a
//! window after the call's response came back (until then, while the call is in flight, it
//! occupies in any case). Plaid counts a call on arrival, which lies between the two, so the
//! whole allowance is used without a single 429 and without a margin for network jitter: the
//! next window's calls go as soon as each earlier call's window has ended. A grant whose
//! response is never recorded (its process died) ends a window after the Plaid client's
//! timeout, past which the call cannot have arrived.
//!
//! The response is recorded without the caller's help: a sync's calls are sequential and an
//! Item has one sync at a time (`lock`), so the limiter keeps, per Item, the grant of the call
//! in flight and records it as returned when the same Item asks for its next call (in that
//! call's own query) or when the fetch ends ([`SyncRateLimiter::complete`]).
//!
//! Calls of one process that wait for the client's allowance queue here, in order, and only
//! the first of them asks the database again when room appears; a wait for an Item's own
//! allowance is the Item's alone and does not hold the queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    /// How long after its grant a call can still arrive at Plaid: the client's timeout.
    call_ms: i64,
    client_bucket: String,
    /// The grant of each Item's call in flight from this process.
    in_flight: Arc<Mutex<HashMap<Uuid, i64>>>,
    /// The queue of this process's calls waiting for the client's allowance.
    client_queue: Arc<tokio::sync::Mutex<()>>,
}

fn millis(duration: Duration) -> i64 {
    duration.as_millis().min(i64::MAX as u128) as i64
}

impl SyncRateLimiter {
    /// `client_id` names the client bucket, so two deployments with different Plaid clients
    /// sharing one database keep separate allowances; `call_timeout` is the Plaid client's
    /// timeout (how long a grant whose response is never recorded stays in flight).
    pub fn new(settings: &SyncSettings, client_id: &str, call_timeout: Duration) -> Self {
        Self {
            item_limit: settings.item_limit_per_window.min(i32::MAX as u32) as i32,
            client_limit: settings.client_limit_per_window.min(i32::MAX as u32) as i32,
            window_ms: millis(settings.enforced_window()),
            // A second more than the timeout: the call is sent a moment after its grant.
            call_ms: millis(call_timeout + Duration::from_secs(1)),
            client_bucket: format!("client:{client_id}:/transactions/sync"),
            in_flight: Arc::default(),
            client_queue: Arc::default(),
        }
    }

    /// Whether any limit is configured at all.
    pub fn is_unlimited(&self) -> bool {
        self.item_limit <= 0 && self.client_limit <= 0
    }

    fn take_in_flight(&self, item_id: Uuid) -> Option<i64> {
        self.in_flight
            .lock()
            .expect("the in-flight map is never poisoned")
            .remove(&item_id)
    }

    /// Waits until one more call for `item_id` fits both limits and records it. Returns how
    /// long it waited. Runs on the caller's connection (the sync's own), so a sync never needs
    /// a second one. The Item's previous call, if one is still in flight, has returned.
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
        let mut completed = self.take_in_flight(item_id);
        let mut queued = None;
        loop {
            let decision = sqlx::query!(
                r#"select granted as "granted!", wait_seconds as "wait_seconds!", limited_bucket,
                          grant_id
                   from sync_rate_limit_take($1, $2, $3, $4, $5)"#,
                &buckets,
                &limits,
                self.window_ms,
                self.call_ms,
                completed.take()
            )
            .fetch_one(&mut *conn)
            .await?;
            if decision.granted {
                if let Some(grant) = decision.grant_id {
                    self.in_flight
                        .lock()
                        .expect("the in-flight map is never poisoned")
                        .insert(item_id, grant);
                }
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
            if limit == "item" {
                // Not the client's allowance: let the calls queued behind this one go.
                queued = None;
            } else if queued.is_none() {
                // Queue, then ask again at once: room may have appeared while in the queue.
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(LimitError::ShuttingDown),
                    turn = self.client_queue.lock() => queued = Some(turn),
                }
                continue;
            }
            // A moment past the time room may appear, so the retry does not land just before.
            let wait = Duration::from_secs_f64(decision.wait_seconds) + Duration::from_millis(1);
            tracing::debug!(item.id = %item_id, limit, wait_ms = wait.as_millis() as u64, "waiting for the rate limiter");
            tokio::select! {
                _ = shutdown.cancelled() => return Err(LimitError::ShuttingDown),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Records that the Item's last call has returned (the fetch is over, whatever its
    /// outcome). Best effort: a grant left in flight only ends later.
    pub async fn complete(&self, conn: &mut PgConnection, item_id: Uuid) {
        let Some(grant) = self.take_in_flight(item_id) else {
            return;
        };
        let recorded = sqlx::query!(
            "select sync_rate_limit_complete($1, $2)",
            grant,
            self.window_ms
        )
        .execute(&mut *conn)
        .await;
        if let Err(error) = recorded {
            tracing::debug!(item.id = %item_id, error = %error, "could not record a call's response with the rate limiter");
        }
    }
}
