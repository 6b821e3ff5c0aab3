//! The transactional outbox: events for downstream subscribers, written in the same
//! PostgreSQL transaction as the change they describe, and relayed to `plaid.events`.
//!
//! Writing the event with the change means there is never a change without its event, nor an
//! event for a change that rolled back. The relay publishes pending rows in id order with
//! publisher confirms and marks each published only after its confirm; a crash in between
//! publishes it again, so subscribers de-duplicate on the event id (stable across retries).
//!
//! Event document: `{"id", "type", "occurred_at", "item_id", "data"}`; AMQP routing key and
//! `type` property = the event type (e.g. `transactions.synced`).
//!
//! The outbox also carries commands that must not be lost with the change that asks for them:
//! a new Item's first sync request ([`enqueue_sync_request`]) is written in the transaction that
//! links the Item, and the relay publishes it to the sync queue (mandatory, confirmed).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::broker::Publisher;
use crate::messages::envelope::amqp_properties;
use crate::messages::sync_request::SYNC_REQUEST_TYPE;
use crate::messages::{Event, SyncRequest};
use crate::telemetry::{names, Repeated};

/// Advisory lock key of the relay: one relay at a time across replicas keeps events in order.
const RELAY_LOCK_KEY: i64 = 0x706c_6169_6465_7674;
const RELAY_BATCH: i64 = 500;
const RELAY_POLL: Duration = Duration::from_millis(500);

/// Adds `event` to the outbox inside `tx`. `item_id` is plaidhook's Item id, when the event is
/// about one. Returns the event id.
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    item_id: Option<Uuid>,
    event: &Event<'_>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    let document = EventDocument {
        id,
        event,
        occurred_at: Utc::now(),
        item_id,
    };
    // Encoded straight to JSON text (`Json`), never through `serde_json::Value`: Plaid's
    // objects inside go in as Plaid sent them (a `Value` would turn 12.30 into the float 12.3).
    sqlx::query!(
        "insert into outbox (event_id, routing_key, payload) values ($1, $2, $3)",
        id,
        event.kind(),
        sqlx::types::Json(&document) as _
    )
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Adds a sync request to the outbox inside `tx`, bound for `queue` through the default
/// exchange. Its id is the AMQP message id, as for a published request.
pub async fn enqueue_sync_request(
    tx: &mut Transaction<'_, Postgres>,
    request: &SyncRequest,
    queue: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into outbox (event_id, routing_key, payload, exchange, amqp_type)
         values ($1, $2, $3, '', $4)",
        request.id,
        queue,
        sqlx::types::Json(request) as _,
        SYNC_REQUEST_TYPE,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The event document: `{"id", "type", "occurred_at", "item_id", "data"}`.
#[derive(serde::Serialize)]
struct EventDocument<'a> {
    id: Uuid,
    /// `type` and `data`, from the event's serde tag.
    #[serde(flatten)]
    event: &'a Event<'a>,
    occurred_at: chrono::DateTime<Utc>,
    item_id: Option<Uuid>,
}

/// Relays outbox rows to `plaid.events`.
pub struct OutboxRelay {
    db: PgPool,
    publisher: Arc<Publisher>,
    wake: Notify,
}

impl OutboxRelay {
    pub fn new(db: PgPool, publisher: Arc<Publisher>) -> Arc<Self> {
        Arc::new(Self {
            db,
            publisher,
            wake: Notify::new(),
        })
    }

    /// Asks the relay to look now rather than at its next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut failing = Repeated::new("outbox relay");
        loop {
            match self.relay_batch().await {
                Ok(n) if n as i64 == RELAY_BATCH => {
                    failing.recovered();
                    continue;
                }
                Ok(_) => failing.recovered(),
                Err(error) => failing.failed(&error),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(RELAY_POLL) => {}
            }
        }
    }

    /// Publishes one batch; returns how many rows it published.
    pub async fn relay_batch(&self) -> anyhow::Result<usize> {
        let mut tx = self.db.begin().await?;
        let locked = crate::store::try_xact_lock(&mut tx, RELAY_LOCK_KEY).await?;
        if !locked {
            return Ok(0);
        }
        let rows = sqlx::query!(
            // As text: PostgreSQL prints numeric exactly (a `Value` would go through f64).
            r#"select id, event_id, routing_key, payload::text as "payload!", exchange, amqp_type,
                      created_at
               from outbox where published_at is null order by id limit $1"#,
            RELAY_BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        let exchange = self.publisher.topology().events_exchange();
        let mut published = Vec::with_capacity(rows.len());
        for row in &rows {
            let body = row.payload.as_bytes();
            let sent = match (&row.exchange, &row.amqp_type) {
                // A command (a sync request): its queue must take it, so `mandatory`.
                (Some(command_exchange), Some(kind)) => {
                    let properties = amqp_properties(row.event_id, kind, row.created_at, None)
                        .with_content_type("application/json".into());
                    self.publisher
                        .publish(command_exchange, &row.routing_key, body, properties)
                        .await
                }
                _ => {
                    let properties = lapin::BasicProperties::default()
                        .with_message_id(row.event_id.to_string().into())
                        .with_type(row.routing_key.clone().into())
                        .with_content_type("application/json".into());
                    // plaid.events may have no subscriber bound yet, and an event nobody is
                    // bound to receive is not an error of ours: events are not `mandatory`.
                    self.publisher
                        .publish_event(&exchange, &row.routing_key, body, properties)
                        .await
                }
            };
            match sent {
                Ok(()) => published.push(row.id),
                Err(error) => {
                    sqlx::query!(
                        "update outbox set attempts = attempts + 1, last_error = $2 where id = $1",
                        row.id,
                        error.to_string()
                    )
                    .execute(&mut *tx)
                    .await?;
                    break;
                }
            }
        }
        sqlx::query!(
            "update outbox set published_at = now() where id = any($1)",
            &published
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        metrics::counter!(names::OUTBOX_PUBLISHED).increment(published.len() as u64);
        Ok(published.len())
    }
}
