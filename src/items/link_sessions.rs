//! The `plaidhook.link_sessions` consumer: LINK webhooks, how Hosted Link sessions ended.
//!
//! `SESSION_FINISHED` names the link token; plaidhook finds the session it opened with it
//! (`link_sessions`, see `alerts::links`) and confirms the outcome with `/link/token/get`
//! (a session that finished without `exit` succeeded). A success reconciles the Item with
//! `/item/get` (`Signal::HostedLinkSuccess`): a healthy Item returns to `active`, its alert
//! resolves as `user_repaired`, and it syncs. An exit is recorded on the session and the alert
//! stays open; the reminder policy takes it from there.
//!
//! Order and repeats do not matter: the Item's status is always Plaid's word from `/item/get`,
//! so a `SESSION_FINISHED` before or after an ITEM webhook, or twice, ends in the same state,
//! and only the reconciliation that moves the Item requests a sync. `ITEM_ADD_RESULT` and
//! `EVENTS` carry nothing plaidhook acts on for update-mode sessions; they are acknowledged.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::health::Signal;
use super::reconcile::{ReconcileError, Reconciler};
use super::StatusSource;
use crate::broker::consumer::{self, ConsumerSpec, Message, Outcome};
use crate::broker::{Broker, Publisher};
use crate::messages::{SyncRequester, WebhookEnvelope};
use crate::plaid::{LinkSessionFinishedWebhook, LinkSessionStatus, WebhookCode};

/// LINK webhooks are rare; each may hold a connection while it asks Plaid.
const LINK_PREFETCH: u16 = 2;

/// How a session ended, as plaidhook settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Succeeded,
    Exited,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Exited => "exited",
        }
    }
}

pub struct LinkSessionsConsumer {
    pub reconciler: Reconciler,
    pub sync_requests: SyncRequester,
}

impl LinkSessionsConsumer {
    /// Consumes `plaidhook.link_sessions` until `shutdown`.
    pub async fn run(
        self,
        broker: Broker,
        publisher: Arc<Publisher>,
        prefetch: u16,
        shutdown: CancellationToken,
    ) {
        let queue = publisher.topology().link_queue();
        let spec = ConsumerSpec::new(
            "link_sessions",
            publisher.topology(),
            queue,
            LINK_PREFETCH.min(prefetch),
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

    /// Handles one LINK webhook envelope.
    pub async fn handle(&self, message: Message) -> Outcome {
        let envelope: WebhookEnvelope = match serde_json::from_slice(&message.body) {
            Ok(envelope) => envelope,
            Err(error) => {
                return Outcome::Park {
                    reason: format!("not a webhook envelope: {error}"),
                }
            }
        };
        if envelope.webhook_code != WebhookCode::SessionFinished {
            tracing::debug!(webhook.code = %envelope.webhook_code, "LINK webhook acknowledged");
            return Outcome::Ack;
        }
        let finished: LinkSessionFinishedWebhook = match serde_json::from_str(envelope.body.get()) {
            Ok(finished) => finished,
            Err(error) => {
                return Outcome::Park {
                    reason: format!("not a SESSION_FINISHED body: {error}"),
                }
            }
        };
        match self.finished(&finished, &envelope).await {
            Ok(()) => Outcome::Ack,
            Err(error) if error.is_transient() => Outcome::retry(error),
            Err(ReconcileError::NotFound(_)) => Outcome::Ack,
            Err(error) => Outcome::Park {
                reason: error.to_string(),
            },
        }
    }

    async fn finished(
        &self,
        webhook: &LinkSessionFinishedWebhook,
        envelope: &WebhookEnvelope,
    ) -> Result<(), ReconcileError> {
        let db = &self.reconciler.db;
        let session = sqlx::query!(
            "select item_id from link_sessions where link_token = $1",
            webhook.link_token.as_str()
        )
        .fetch_optional(db)
        .await?;
        let Some(session) = session else {
            // A session the app ran itself (it reports through link-success), or one opened
            // by another deployment with the same webhook URL.
            tracing::info!(
                link.session_id = %webhook.link_session_id,
                "SESSION_FINISHED for a link token plaidhook did not open; ignored"
            );
            return Ok(());
        };
        let item_id = session.item_id;
        let ending = self.confirm(webhook, item_id).await?;
        sqlx::query!(
            "update link_sessions set status = $2, link_session_id = $3,
                    finished_at = coalesce(finished_at, now())
             where link_token = $1 and status <> 'succeeded'",
            webhook.link_token.as_str(),
            ending.as_str(),
            webhook.link_session_id,
        )
        .execute(db)
        .await?;
        tracing::info!(
            item.id = %item_id,
            link.session_id = %webhook.link_session_id,
            outcome = ending.as_str(),
            "Hosted Link session finished"
        );
        if ending == Ending::Exited {
            return Ok(());
        }
        let reconciled = self
            .reconciler
            .reconcile(
                item_id,
                Signal::HostedLinkSuccess,
                StatusSource::HostedLink,
                Some(envelope.received_at),
            )
            .await?;
        if reconciled.repaired() {
            self.sync_requests
                .request_after_repair(&reconciled.plaid_item_id)
                .await;
        }
        Ok(())
    }

    /// The session's outcome by `/link/token/get`: finished without `exit` is a success. When
    /// Plaid no longer has the session (it keeps them six hours), the webhook's word stands.
    async fn confirm(
        &self,
        webhook: &LinkSessionFinishedWebhook,
        item_id: uuid::Uuid,
    ) -> Result<Ending, ReconcileError> {
        let said = if webhook.status == LinkSessionStatus::Success {
            Ending::Succeeded
        } else {
            Ending::Exited
        };
        let got = self
            .reconciler
            .plaid
            .link_token_get(&webhook.link_token, Some(item_id))
            .await;
        let token = match got {
            Ok(token) => token,
            Err(error) => {
                let refused = error.plaid_error().is_some_and(|e| !e.is_retryable());
                if !refused {
                    return Err(ReconcileError::Plaid(error));
                }
                tracing::info!(item.id = %item_id, error = %error, "/link/token/get refused; the webhook's status stands");
                return Ok(said);
            }
        };
        let session = token
            .link_sessions
            .unwrap_or_default()
            .into_iter()
            .find(|s| s.link_session_id == webhook.link_session_id);
        Ok(match session {
            Some(session) if session.finished_at.is_some() && session.exit.is_none() => {
                Ending::Succeeded
            }
            Some(session) if session.exit.is_some() => Ending::Exited,
            _ => said,
        })
    }
}
