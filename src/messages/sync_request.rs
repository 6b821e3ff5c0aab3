//! plaidhook's own request to sync an Item, and what the sync queue carries.
//!
//! A sync request (after a token exchange, a manual sync, a repair, the scheduler's sweep) is a
//! message of its own type, published with confirm through the default exchange straight to the
//! sync queue: durable, coalesced per Item like Plaid's SYNC_UPDATES_AVAILABLE, taken by any
//! worker, and never seen by subscribers of `plaid.webhooks`, which carries only Plaid's
//! webhooks. Its AMQP `type` is [`SYNC_REQUEST_TYPE`], which is how the consumer tells it from a
//! webhook envelope.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::envelope::{amqp_properties, WebhookEnvelope};
use crate::broker::{PublishError, Publisher};

/// AMQP `type` of a sync request.
pub const SYNC_REQUEST_TYPE: &str = "plaidhook.sync_request";

/// The `webhook_code` sync requests carried when they travelled as webhook envelopes; still
/// understood, so requests queued by an older release are not lost in a rolling upgrade.
const LEGACY_SYNC_REQUESTED_CODE: &str = "PLAIDHOOK_SYNC_REQUESTED";

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

/// A request to sync the Item Plaid calls `plaid_item_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRequest {
    pub id: Uuid,
    pub requested_at: DateTime<Utc>,
    pub environment: String,
    pub plaid_item_id: String,
    pub trigger: SyncTrigger,
}

/// One message of the sync queue, decoded.
#[derive(Debug)]
pub enum SyncQueueMessage {
    /// A Plaid webhook (TRANSACTIONS.*): a hint that the Item has changes.
    Webhook(WebhookEnvelope),
    /// plaidhook's own request.
    Request(SyncRequest),
}

impl SyncQueueMessage {
    /// Decodes a delivery by its AMQP `type`: a sync request, or else a webhook envelope.
    pub fn decode(kind: Option<&str>, body: &[u8]) -> Result<Self, serde_json::Error> {
        if kind == Some(SYNC_REQUEST_TYPE) {
            return serde_json::from_slice(body).map(Self::Request);
        }
        let envelope: WebhookEnvelope = serde_json::from_slice(body)?;
        if envelope.webhook_code.as_str() != LEGACY_SYNC_REQUESTED_CODE {
            return Ok(Self::Webhook(envelope));
        }
        #[derive(Deserialize)]
        struct LegacyBody {
            trigger: Option<SyncTrigger>,
        }
        let trigger = serde_json::from_str::<LegacyBody>(envelope.body.get())
            .ok()
            .and_then(|body| body.trigger)
            .unwrap_or(SyncTrigger::Manual);
        Ok(Self::Request(SyncRequest {
            id: envelope.id,
            requested_at: envelope.received_at,
            environment: envelope.environment,
            plaid_item_id: envelope.item_id.unwrap_or_default(),
            trigger,
        }))
    }
}

/// Publishes sync requests; cheap to clone, handed to every component that asks for syncs.
#[derive(Clone)]
pub struct SyncRequester {
    publisher: Arc<Publisher>,
    environment: String,
}

impl SyncRequester {
    pub fn new(publisher: Arc<Publisher>, environment: impl Into<String>) -> Self {
        Self {
            publisher,
            environment: environment.into(),
        }
    }

    /// A request to sync the Item Plaid calls `plaid_item_id`, and the queue it goes to (through
    /// the default exchange), for a caller that writes it to the outbox instead of publishing.
    pub fn prepare(&self, plaid_item_id: &str, trigger: SyncTrigger) -> (SyncRequest, String) {
        let request = SyncRequest {
            id: Uuid::now_v7(),
            requested_at: Utc::now(),
            environment: self.environment.clone(),
            plaid_item_id: plaid_item_id.to_owned(),
            trigger,
        };
        (request, self.publisher.topology().sync_queue())
    }

    /// Publishes a request to sync the Item Plaid calls `plaid_item_id`, with confirm.
    pub async fn request(
        &self,
        plaid_item_id: &str,
        trigger: SyncTrigger,
    ) -> Result<Uuid, PublishError> {
        let (request, queue) = self.prepare(plaid_item_id, trigger);
        let body = serde_json::to_vec(&request).expect("a sync request serialises");
        let properties = amqp_properties(request.id, SYNC_REQUEST_TYPE, request.requested_at, None);
        // The default exchange routes by queue name: straight to the sync queue.
        self.publisher
            .publish("", &queue, &body, properties)
            .await?;
        Ok(request.id)
    }

    /// Asks for the sync a repaired Item deserves. A failed publish is logged, not retried here:
    /// the status change is committed, and the scheduler's stale-Item sweep requests the sync.
    pub async fn request_after_repair(&self, plaid_item_id: &str) {
        if let Err(error) = self.request(plaid_item_id, SyncTrigger::Repaired).await {
            tracing::warn!(plaid.item_id = plaid_item_id, error = %error, "could not request the sync of a repaired Item; the scheduler will");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(code: &str, body: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": Uuid::now_v7(),
            "received_at": Utc::now(),
            "environment": "sandbox",
            "webhook_type": "TRANSACTIONS",
            "webhook_code": code,
            "item_id": "item-1",
            "body": body,
        }))
        .unwrap()
    }

    #[test]
    fn a_sync_request_is_told_apart_from_a_webhook_by_its_amqp_type() {
        let request = SyncRequest {
            id: Uuid::now_v7(),
            requested_at: Utc::now(),
            environment: "sandbox".into(),
            plaid_item_id: "item-1".into(),
            trigger: SyncTrigger::Exchange,
        };
        let body = serde_json::to_vec(&request).unwrap();
        let SyncQueueMessage::Request(decoded) =
            SyncQueueMessage::decode(Some(SYNC_REQUEST_TYPE), &body).unwrap()
        else {
            panic!("a sync request");
        };
        assert_eq!(decoded.id, request.id);
        assert_eq!(decoded.trigger, SyncTrigger::Exchange);
        // The same bytes without the type are not a webhook envelope.
        assert!(SyncQueueMessage::decode(None, &body).is_err());

        let webhook = envelope("SYNC_UPDATES_AVAILABLE", serde_json::json!({}));
        let decoded =
            SyncQueueMessage::decode(Some("TRANSACTIONS.SYNC_UPDATES_AVAILABLE"), &webhook);
        assert!(matches!(decoded, Ok(SyncQueueMessage::Webhook(_))));
    }

    #[test]
    fn a_request_queued_by_an_older_release_as_an_envelope_still_decodes_as_a_request() {
        let legacy = envelope(
            LEGACY_SYNC_REQUESTED_CODE,
            serde_json::json!({ "trigger": "repaired" }),
        );
        let Ok(SyncQueueMessage::Request(request)) = SyncQueueMessage::decode(None, &legacy) else {
            panic!("a legacy sync request");
        };
        assert_eq!(request.plaid_item_id, "item-1");
        assert_eq!(request.trigger, SyncTrigger::Repaired);
    }
}
