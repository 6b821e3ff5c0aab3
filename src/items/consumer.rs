//! The `plaidhook.items` consumer: ITEM webhooks, taken as hints.
//!
//! Each webhook names an Item and a code; the handler reconciles the Item with `/item/get`
//! (see `reconcile`) instead of believing the webhook, so duplicates and reordering are
//! harmless. A repaired Item gets a sync (`SyncTrigger::Repaired`). USER_ACCOUNT_REVOKED
//! concerns one account, not the Item's health: it becomes an `item.account_revoked` event.
//!
//! Outcomes: done → ack; database trouble, Plaid rate limits, outages, timeouts → retry with
//! backoff; a message that can never succeed (not an envelope, a token that does not open) →
//! parked for an operator.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::health::Signal;
use super::reconcile::{ReconcileError, Reconciler};
use super::rows;
use super::StatusSource;
use crate::broker::consumer::{self, ConsumerSpec, Message, Outcome};
use crate::broker::{Broker, Publisher};
use crate::messages::{Event, SyncRequester, WebhookEnvelope};
use crate::plaid::WebhookCode;

/// ITEM webhooks are rare and each holds a database connection while it asks Plaid, so a small
/// prefetch keeps the pool free for everything else.
const ITEMS_PREFETCH: u16 = 2;

/// What the consumer of `plaidhook.items` works with.
pub struct ItemsConsumer {
    pub reconciler: Reconciler,
    pub sync_requests: SyncRequester,
}

impl ItemsConsumer {
    /// Consumes `plaidhook.items` until `shutdown`; `prefetch` caps the configured prefetch.
    pub async fn run(
        self,
        broker: Broker,
        publisher: Arc<Publisher>,
        prefetch: u16,
        shutdown: CancellationToken,
    ) {
        let queue = publisher.topology().items_queue();
        let spec = ConsumerSpec::new(
            "items",
            publisher.topology(),
            queue,
            ITEMS_PREFETCH.min(prefetch),
        );
        consumer::run_shared(
            broker,
            publisher,
            spec,
            Arc::new(self),
            |consumer, message| async move { consumer.handle(message).await },
            shutdown,
        )
        .await;
    }

    /// Handles one ITEM webhook envelope.
    pub async fn handle(&self, message: Message) -> Outcome {
        let envelope: WebhookEnvelope = match serde_json::from_slice(&message.body) {
            Ok(envelope) => envelope,
            Err(error) => {
                return Outcome::Park {
                    reason: format!("not a webhook envelope: {error}"),
                }
            }
        };
        let code = &envelope.webhook_code;
        let Some(plaid_item_id) = envelope.item_id.as_deref() else {
            tracing::info!(
                webhook.code = %code,
                "ITEM webhook without an item_id; ignored"
            );
            return Outcome::Ack;
        };
        let db = &self.reconciler.db;
        let item_id = match rows::find_by_plaid_id(db, plaid_item_id).await {
            Ok(Some(item)) => item.id,
            Ok(None) => {
                // Plaid may speak of an Item before its exchange is stored, or of one removed
                // long ago; there is nothing of ours to move.
                tracing::info!(
                    webhook.code = %code,
                    plaid.item_id = plaid_item_id,
                    "ITEM webhook for an unknown Item; ignored"
                );
                return Outcome::Ack;
            }
            Err(error) => return Outcome::retry(error),
        };
        if *code == WebhookCode::UserAccountRevoked {
            return self.account_revoked(item_id, &envelope).await;
        }
        let Some(signal) = Signal::from_webhook_code(code) else {
            tracing::debug!(item.id = %item_id, webhook.code = %code, "ITEM webhook code without health meaning");
            return Outcome::Ack;
        };
        let span = tracing::info_span!("item_webhook", item.id = %item_id, webhook.code = %code);
        let reconciled = self
            .reconciler
            .reconcile(
                item_id,
                signal,
                StatusSource::Webhook,
                Some(envelope.received_at),
            )
            .instrument(span)
            .await;
        match reconciled {
            Ok(reconciled) => {
                if reconciled.repaired() {
                    self.sync_requests
                        .request_after_repair(&reconciled.plaid_item_id)
                        .await;
                }
                Outcome::Ack
            }
            Err(error) if error.is_transient() => Outcome::retry(error),
            Err(ReconcileError::NotFound(_)) => Outcome::Ack,
            Err(error) => Outcome::Park {
                reason: error.to_string(),
            },
        }
    }

    async fn account_revoked(&self, item_id: uuid::Uuid, envelope: &WebhookEnvelope) -> Outcome {
        #[derive(serde::Deserialize)]
        struct Body {
            account_id: Option<String>,
        }
        let account_id = serde_json::from_str::<Body>(envelope.body.get())
            .ok()
            .and_then(|body| body.account_id);
        let result = async {
            let mut tx = self.reconciler.db.begin().await?;
            let event = Event::ItemAccountRevoked { account_id };
            crate::outbox::enqueue(&mut tx, Some(item_id), &event).await?;
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => Outcome::Ack,
            Err(error) => Outcome::retry(error),
        }
    }
}
