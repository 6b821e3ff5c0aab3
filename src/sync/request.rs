//! Asking for an Item to be synced.
//!
//! A request is a message on the sync queue, like Plaid's own SYNC_UPDATES_AVAILABLE: it is
//! durable, it goes through the same per-Item coalescing, and any worker may take it. It is
//! published to `plaid.webhooks` with routing key `TRANSACTIONS.PLAIDHOOK_SYNC_REQUESTED`; the
//! envelope's `webhook_code` says it came from plaidhook, and its body carries the trigger.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::broker::{PublishError, Publisher};
use crate::webhook::WebhookEnvelope;

/// The `webhook_code` of a sync request plaidhook made itself.
pub const SYNC_REQUESTED_CODE: &str = "PLAIDHOOK_SYNC_REQUESTED";

/// Why a sync runs; recorded on every sync run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncTrigger {
    /// Plaid's SYNC_UPDATES_AVAILABLE (or a legacy transactions webhook).
    Webhook,
    /// Right after a public token exchange: Plaid only sends webhooks once sync was called.
    Exchange,
    /// An operator or the app asked for it through the API.
    Manual,
    /// The safety-net scheduler found the Item stale.
    Scheduler,
    /// The Item was repaired (LOGIN_REPAIRED, update mode finished).
    Repaired,
}

impl SyncTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Exchange => "exchange",
            Self::Manual => "manual",
            Self::Scheduler => "scheduler",
            Self::Repaired => "repaired",
        }
    }
}

/// Publishes a sync request for the Item Plaid calls `plaid_item_id`, with confirm.
pub async fn request_sync(
    publisher: &Publisher,
    environment: &str,
    plaid_item_id: &str,
    trigger: SyncTrigger,
) -> Result<Uuid, PublishError> {
    let body = serde_json::json!({
        "webhook_type": "TRANSACTIONS",
        "webhook_code": SYNC_REQUESTED_CODE,
        "item_id": plaid_item_id,
        "trigger": trigger,
    });
    let envelope = WebhookEnvelope {
        id: Uuid::now_v7(),
        received_at: Utc::now(),
        environment: environment.to_owned(),
        webhook_type: "TRANSACTIONS".to_owned(),
        webhook_code: SYNC_REQUESTED_CODE.to_owned(),
        item_id: Some(plaid_item_id.to_owned()),
        body: serde_json::value::to_raw_value(&body).expect("a JSON value serialises"),
    };
    publisher
        .publish(
            &publisher.topology().webhooks_exchange(),
            &envelope.routing_key(),
            &envelope.to_bytes(),
            envelope.properties(None),
        )
        .await?;
    Ok(envelope.id)
}
