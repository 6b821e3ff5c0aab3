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

use tracing::Instrument;

use crate::app::AppState;
use crate::broker::consumer::{ConsumerSpec, Message, Outcome};
use crate::items::health::Signal;
use crate::items::reconcile::{reconcile, ReconcileError};
use crate::items::StatusSource;
use crate::sync::{request_sync, SyncTrigger};
use crate::webhook::WebhookEnvelope;

/// ITEM webhooks are rare and each holds a database connection while it asks Plaid, so a small
/// prefetch keeps the pool free for everything else.
const ITEMS_PREFETCH: u16 = 2;

/// Consumes `plaidhook.items` until `shutdown`.
pub async fn run(state: AppState, shutdown: tokio_util::sync::CancellationToken) {
    let topology = &state.topology;
    let queue = topology.items_queue();
    let spec = ConsumerSpec {
        name: "items",
        retry_queues: topology.retry_queues(&queue),
        queue,
        prefetch: ITEMS_PREFETCH.min(state.settings.rabbitmq.prefetch),
    };
    let broker = state.broker.clone();
    let publisher = state.publisher.clone();
    let state = Arc::new(state);
    crate::broker::consumer::run(
        broker,
        publisher,
        spec,
        move |message| handle(state.clone(), message),
        shutdown,
    )
    .await;
}

/// Handles one ITEM webhook envelope.
pub async fn handle(state: Arc<AppState>, message: Message) -> Outcome {
    let envelope: WebhookEnvelope = match serde_json::from_slice(&message.body) {
        Ok(envelope) => envelope,
        Err(error) => {
            return Outcome::Park {
                reason: format!("not a webhook envelope: {error}"),
            }
        }
    };
    let code = envelope.webhook_code.as_str();
    let Some(plaid_item_id) = envelope.item_id.as_deref() else {
        tracing::info!(
            webhook.code = code,
            "ITEM webhook without an item_id; ignored"
        );
        return Outcome::Ack;
    };
    let item_id = match crate::store::items::id_for_plaid_item(&state.db, plaid_item_id).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            // Plaid may speak of an Item before its exchange is stored, or of one removed long
            // ago; there is nothing of ours to move.
            tracing::info!(
                webhook.code = code,
                plaid.item_id = plaid_item_id,
                "ITEM webhook for an unknown Item; ignored"
            );
            return Outcome::Ack;
        }
        Err(error) => {
            return Outcome::Retry {
                reason: format!("database: {error}"),
            }
        }
    };
    if code == "USER_ACCOUNT_REVOKED" {
        return account_revoked(&state, item_id, &envelope).await;
    }
    let Some(signal) = Signal::from_webhook_code(code) else {
        tracing::debug!(item.id = %item_id, webhook.code = code, "ITEM webhook code without health meaning");
        return Outcome::Ack;
    };
    let span = tracing::info_span!("item_webhook", item.id = %item_id, webhook.code = code);
    let reconciled = reconcile(
        &state,
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
                request_repaired_sync(&state, &reconciled.plaid_item_id).await;
            }
            Outcome::Ack
        }
        Err(error) if error.is_transient() => Outcome::Retry {
            reason: error.to_string(),
        },
        Err(ReconcileError::NotFound(_)) => Outcome::Ack,
        Err(error) => Outcome::Park {
            reason: error.to_string(),
        },
    }
}

/// Asks for the sync a repaired Item deserves. A failed publish is logged, not retried here:
/// the status change is committed, and the scheduler's stale-Item sweep requests the sync.
pub async fn request_repaired_sync(state: &AppState, plaid_item_id: &str) {
    let environment = state.settings.plaid.environment.as_str();
    if let Err(error) = request_sync(
        &state.publisher,
        environment,
        plaid_item_id,
        SyncTrigger::Repaired,
    )
    .await
    {
        tracing::warn!(plaid.item_id = plaid_item_id, error = %error, "could not request the sync of a repaired Item; the scheduler will");
    }
}

async fn account_revoked(
    state: &AppState,
    item_id: uuid::Uuid,
    envelope: &WebhookEnvelope,
) -> Outcome {
    let body: serde_json::Value = serde_json::from_str(envelope.body.get()).unwrap_or_default();
    let account_id = body["account_id"].as_str().map(str::to_owned);
    let result = async {
        let mut tx = state.db.begin().await?;
        crate::outbox::enqueue(
            &mut tx,
            "item.account_revoked",
            Some(item_id),
            &serde_json::json!({ "account_id": account_id }),
        )
        .await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Outcome::Ack,
        Err(error) => Outcome::Retry {
            reason: format!("database: {error}"),
        },
    }
}
