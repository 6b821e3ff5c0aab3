//! The durable spool: where a verified webhook goes when the broker cannot confirm it in time.
//!
//! A spooled webhook was answered 200, so it must reach the broker eventually. The relay
//! publishes spooled rows in id order (the order they were received) and deletes each only
//! after the broker confirmed it. One relay works at a time across all replicas (a transaction-
//! scoped advisory lock). While rows wait, this process spools new webhooks as well instead of
//! publishing them directly, so they cannot overtake older ones: requests decide between the
//! two paths under a shared guard, and the relay ends the backlog only under the exclusive
//! guard, after seeing the spool empty, so no row written in between is overtaken. A replica
//! learns of rows another replica spooled at its relay's next round (within a second).
//!
//! No row can hold back the others for long: a row the broker keeps *refusing* (a nack, a
//! return: the message reached the broker and will not be taken) is parked with its reason
//! after [`MAX_REFUSALS`] attempts, and the relay goes on with the rows behind it. Parked rows
//! are listed and replayed by an operator (API, `plaidhook spool`). A broker that is down or
//! slow refuses nothing: those failures keep the strict order, however long they last.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{Notify, RwLock, RwLockReadGuard};
use tokio_util::sync::CancellationToken;

use crate::broker::Publisher;
use crate::messages::envelope::{amqp_properties, WebhookEnvelope};
use crate::telemetry::{names, Repeated};

/// Advisory lock key of the relay ("plaidhook spool" as an arbitrary constant).
const RELAY_LOCK_KEY: i64 = 0x706c_6169_6473_706f;
/// Rows relayed per transaction.
const RELAY_BATCH: i64 = 100;
/// How often the relay looks even when nothing woke it (other replicas' rows, missed wakes).
const RELAY_POLL: Duration = Duration::from_secs(1);
/// Refusals of one row (nack, return) before it is parked.
pub const MAX_REFUSALS: i32 = 3;

/// A spooled webhook the broker kept refusing, as operators see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ParkedWebhook {
    pub id: i64,
    pub webhook_id: uuid::Uuid,
    pub routing_key: String,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub parked_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub struct Spool {
    db: PgPool,
    /// Rows may be waiting: publish new webhooks through the spool to keep order.
    backlog: AtomicBool,
    /// Shared by requests while they choose a path and take it; exclusive while the relay
    /// ends the backlog.
    order: RwLock<()>,
    wake: Notify,
}

impl Spool {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            // Until the relay has looked, assume rows from a previous run may be waiting.
            backlog: AtomicBool::new(true),
            order: RwLock::new(()),
            wake: Notify::new(),
        }
    }

    /// Hold while choosing between a direct publish and the spool, and taking that path.
    pub async fn ordered(&self) -> RwLockReadGuard<'_, ()> {
        self.order.read().await
    }

    /// True while spooled rows may be waiting to be relayed.
    pub fn has_backlog(&self) -> bool {
        self.backlog.load(Ordering::Acquire)
    }

    /// Writes `envelope`, already serialised as `payload` (the bytes to publish), durably.
    /// Once this returns Ok the webhook may be acknowledged.
    pub async fn write(
        &self,
        envelope: &WebhookEnvelope,
        routing_key: &str,
        payload: &[u8],
    ) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "insert into webhook_spool (webhook_id, routing_key, envelope, received_at)
             values ($1, $2, $3, $4)",
            envelope.id,
            routing_key,
            payload,
            envelope.received_at,
        )
        .execute(&self.db)
        .await?;
        self.backlog.store(true, Ordering::Release);
        self.wake.notify_one();
        Ok(())
    }

    /// Relays spooled webhooks until `shutdown`.
    pub async fn run_relay(
        self: Arc<Self>,
        publisher: Arc<Publisher>,
        shutdown: CancellationToken,
    ) {
        // Logged on change: a broker away for an hour is one line when it goes and one when
        // it is back, not one per round.
        let mut stuck = Repeated::new("spool relay");
        let mut reading = Repeated::new("spool read");
        loop {
            let round = self.relay_batch(&publisher).await;
            match &round {
                Ok(RelayRound::Stuck) => {
                    stuck.failed(&"the broker is not taking spooled webhooks yet")
                }
                Ok(_) => stuck.recovered(),
                Err(_) => {}
            }
            if round.is_ok() {
                reading.recovered();
            }
            match round {
                // A full batch went out: go again at once.
                Ok(RelayRound::MoreWaiting) => continue,
                Ok(RelayRound::Drained) if self.has_backlog() => {
                    // No request may be between its check of the flag and its write while the
                    // flag is cleared, or a row written after the emptiness check would be
                    // overtaken by the direct publishes that follow.
                    let _exclusive = self.order.write().await;
                    if matches!(depth(&self.db).await, Ok(0)) {
                        self.backlog.store(false, Ordering::Release);
                    }
                }
                Ok(RelayRound::Drained) => {}
                Ok(RelayRound::Stuck) | Ok(RelayRound::OtherRelay) => {}
                Err(error) => reading.failed(&error),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(RELAY_POLL) => {}
            }
        }
    }

    async fn relay_batch(&self, publisher: &Publisher) -> Result<RelayRound, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let locked = crate::store::try_xact_lock(&mut tx, RELAY_LOCK_KEY).await?;
        if !locked {
            return Ok(RelayRound::OtherRelay);
        }
        let rows = sqlx::query!(
            "select id, webhook_id, routing_key, envelope, received_at from webhook_spool
             where parked_at is null order by id limit $1",
            RELAY_BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(RelayRound::Drained);
        }
        // Rows are waiting (perhaps another replica's): route this process's webhooks through
        // the spool too until they are gone.
        self.backlog.store(true, Ordering::Release);
        let exchange = publisher.topology().webhooks_exchange();
        let mut relayed = Vec::with_capacity(rows.len());
        let mut stuck = false;
        for row in &rows {
            let properties =
                amqp_properties(row.webhook_id, &row.routing_key, row.received_at, None);
            // In order: stop at the first failure so nothing overtakes it.
            match publisher
                .publish(&exchange, &row.routing_key, &row.envelope, properties)
                .await
            {
                Ok(()) => relayed.push(row.id),
                Err(error) if error.is_refusal() => {
                    // The broker has the message and will not take it. Kept in order for a few
                    // attempts (a full queue drains), then parked so it holds nothing back.
                    let parked = sqlx::query_scalar!(
                        r#"update webhook_spool set attempts = attempts + 1, last_error = $2,
                               parked_at = case when attempts + 1 >= $3 then now() end
                           where id = $1 returning parked_at is not null as "parked!""#,
                        row.id,
                        error.to_string(),
                        MAX_REFUSALS,
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    if parked {
                        metrics::counter!(names::WEBHOOK_SPOOL_PARKED_TOTAL).increment(1);
                        tracing::error!(spool.id = row.id, webhook.id = %row.webhook_id, error = %error, "the broker keeps refusing a spooled webhook; parked for an operator");
                        continue;
                    }
                    tracing::debug!(spool.id = row.id, error = %error, "the broker refused a spooled webhook; trying again");
                    stuck = true;
                    break;
                }
                Err(error) => {
                    tracing::debug!(spool.id = row.id, error = %error, "spooled webhook not relayed yet");
                    sqlx::query!(
                        "update webhook_spool set attempts = attempts + 1, last_error = $2 where id = $1",
                        row.id,
                        error.to_string()
                    )
                    .execute(&mut *tx)
                    .await?;
                    stuck = true;
                    break;
                }
            }
        }
        sqlx::query!("delete from webhook_spool where id = any($1)", &relayed)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        metrics::counter!(names::WEBHOOK_SPOOL_RELAYED).increment(relayed.len() as u64);
        if !relayed.is_empty() {
            tracing::info!(count = relayed.len(), "relayed spooled webhooks");
        }
        // After a clean batch look again at once: the next round either finds more rows or
        // sees the spool empty and ends the backlog.
        Ok(if stuck {
            RelayRound::Stuck
        } else {
            RelayRound::MoreWaiting
        })
    }
}

/// Webhooks waiting in the spool to be relayed (any process's); parked rows are not waiting.
pub async fn depth(db: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"select count(*) as "count!" from webhook_spool where parked_at is null"#)
        .fetch_one(db)
        .await
}

/// Parked webhooks.
pub async fn parked_depth(db: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from webhook_spool where parked_at is not null"#
    )
    .fetch_one(db)
    .await
}

/// Up to `limit` parked webhooks, oldest first (their bodies stay in the database).
pub async fn parked(db: &PgPool, limit: i64) -> Result<Vec<ParkedWebhook>, sqlx::Error> {
    sqlx::query_as!(
        ParkedWebhook,
        "select id, webhook_id, routing_key, received_at, attempts, last_error, parked_at
         from webhook_spool where parked_at is not null order by id limit $1",
        limit
    )
    .fetch_all(db)
    .await
}

/// Puts up to `limit` parked webhooks, oldest first, back in line for the relay with a fresh
/// attempt count; returns how many. The relay takes them at its next round.
pub async fn replay_parked(db: &PgPool, limit: i64) -> Result<u64, sqlx::Error> {
    let replayed = sqlx::query!(
        "update webhook_spool set parked_at = null, attempts = 0
         where id in (select id from webhook_spool where parked_at is not null
                      order by id limit $1)",
        limit
    )
    .execute(db)
    .await?;
    Ok(replayed.rows_affected())
}

enum RelayRound {
    MoreWaiting,
    Drained,
    Stuck,
    OtherRelay,
}
