//! Reconciling an Item with Plaid: look at `/item/get`, apply the rules of `health`, move the
//! status.
//!
//! Every reconciliation of one Item runs under a per-Item advisory lock held from before the
//! `/item/get` call until the commit, so observations are applied in the order they were
//! made: a stale "healthy" seen by one webhook's handler can never overwrite a newer "error"
//! seen by another's. The lock is separate from the sync worker's, so a long sync does not hold
//! up health changes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use sqlx::PgPool;

use super::health::{decide, is_repair, Signal};
use super::rows::{self, CredentialsError};
use super::status::{transition, ItemStatus, StatusSource, Transition};
use crate::alerts::AlertCause;
use crate::crypto::TokenCipher;
use crate::messages::Event;
use crate::plaid::client::PlaidCallError;
use crate::plaid::client::PlaidClient;
use crate::plaid::{AccessTokenRequest, ErrorCode, ItemGetResponse};

/// Namespaces the per-Item advisory lock keys of health reconciliation.
const LOCK_NAMESPACE: i64 = 0x6865_616c_7468; // "health"

/// The result of one reconciliation.
#[derive(Debug, Clone)]
pub struct Reconciled {
    pub item_id: Uuid,
    pub plaid_item_id: String,
    pub from: ItemStatus,
    pub to: ItemStatus,
}

impl Reconciled {
    /// The Item came back to health: resolve-and-sync territory.
    pub fn repaired(&self) -> bool {
        is_repair(self.from, self.to)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("no Item {0}")]
    NotFound(Uuid),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("/item/get failed: {0}")]
    Plaid(#[source] PlaidCallError),
    #[error(transparent)]
    Credentials(CredentialsError),
}

impl From<CredentialsError> for ReconcileError {
    fn from(error: CredentialsError) -> Self {
        match error {
            CredentialsError::Database(error) => Self::Database(error),
            CredentialsError::NotFound(id) => Self::NotFound(id),
            unreadable @ CredentialsError::Unreadable(_) => Self::Credentials(unreadable),
        }
    }
}

impl ReconcileError {
    /// Worth retrying later (database hiccup, Plaid rate limit, outage or timeout).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(_) => true,
            Self::Plaid(PlaidCallError::Plaid { error, .. }) => error.is_retryable(),
            Self::Plaid(_) => true,
            Self::NotFound(_) | Self::Credentials(_) => false,
        }
    }
}

/// What reconciling needs: the database, Plaid, and the key to open access tokens. Cheap to
/// clone; built once by the application and handed to the consumers, the scheduler and the API.
#[derive(Clone)]
pub struct Reconciler {
    pub db: PgPool,
    pub plaid: PlaidClient,
    pub tokens: TokenCipher,
}

impl Reconciler {
    /// Looks at the Item in Plaid and moves its status as the rules say. `webhook_at` is when
    /// the webhook that prompted this was received, if one did.
    pub async fn reconcile(
        &self,
        item_id: Uuid,
        signal: Signal,
        source: StatusSource,
        webhook_at: Option<DateTime<Utc>>,
    ) -> Result<Reconciled, ReconcileError> {
        reconcile(self, item_id, signal, source, webhook_at).await
    }
}

async fn reconcile(
    state: &Reconciler,
    item_id: Uuid,
    signal: Signal,
    source: StatusSource,
    webhook_at: Option<DateTime<Utc>>,
) -> Result<Reconciled, ReconcileError> {
    let mut tx = state.db.begin().await?;
    let lock_key = LOCK_NAMESPACE ^ (item_id.as_u64_pair().0 as i64);
    sqlx::query_scalar!(
        r#"select true as "locked!" from pg_advisory_xact_lock($1)"#,
        lock_key
    )
    .fetch_one(&mut *tx)
    .await?;
    let row = sqlx::query!(
        r#"select status as "status: ItemStatus", plaid_item_id from items where id = $1"#,
        item_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ReconcileError::NotFound(item_id))?;
    let current = row.status;
    let mut result = Reconciled {
        item_id,
        plaid_item_id: row.plaid_item_id,
        from: current,
        to: current,
    };
    if current == ItemStatus::Removed {
        return Ok(result);
    }
    // On the transaction's own connection: never wait for a second one while holding the lock.
    let access_token = rows::credentials(&mut tx, &state.tokens, item_id)
        .await?
        .access_token;
    let request = AccessTokenRequest {
        client_id: None,
        secret: None,
        access_token,
    };
    let response: Result<ItemGetResponse, _> =
        state.plaid.call("/item/get", Some(item_id), &request).await;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            let gone = error
                .plaid_error()
                .is_some_and(|e| e.error_code == ErrorCode::ItemNotFound);
            if !gone {
                return Err(ReconcileError::Plaid(error));
            }
            // Plaid no longer knows the Item (removed elsewhere): nothing can repair it.
            sqlx::query!(
                "update items set health_checked_at = now() where id = $1",
                item_id
            )
            .execute(&mut *tx)
            .await?;
            rows::mark_removed(
                &mut tx,
                item_id,
                "item_not_found_at_plaid",
                Some("ITEM_NOT_FOUND"),
                source,
            )
            .await?;
            tx.commit().await?;
            result.to = ItemStatus::Removed;
            return Ok(result);
        }
    };
    let item = &response.item.item;
    let decision = decide(current, item, signal, Utc::now());
    sqlx::query!(
        "update items set
            consent_expires_at = $2,
            health_checked_at = now(),
            last_webhook_at = greatest(last_webhook_at, $3),
            new_accounts_available = case when $4 then true when $5 then false
                                          else new_accounts_available end,
            institution_id = coalesce(institution_id, $6),
            error_type = $7
         where id = $1",
        item_id,
        item.consent_expiration_time,
        webhook_at,
        signal == Signal::NewAccountsAvailable,
        matches!(signal, Signal::LinkSuccess | Signal::HostedLinkSuccess),
        item.institution_id,
        item.error
            .as_ref()
            .map(|e| e.error_type.as_str().to_owned()),
    )
    .execute(&mut *tx)
    .await?;
    if decision.to != current {
        transition(
            &mut tx,
            item_id,
            Transition {
                to: decision.to,
                cause: decision.cause,
                error_code: decision.error_code.as_deref(),
                error_message: decision.error_message.as_deref(),
                source,
            },
        )
        .await?;
    }
    if signal == Signal::NewAccountsAvailable {
        let event = Event::ItemNewAccountsAvailable {
            plaid_item_id: &result.plaid_item_id,
        };
        crate::outbox::enqueue(&mut tx, Some(item_id), &event).await?;
        // Only the user can share them (update mode with account selection): an alert that
        // carries the link, like the other causes that need the user.
        crate::alerts::raise(&mut tx, item_id, AlertCause::NewAccounts, None, None).await?;
    }
    let healthy = matches!(
        decision.to,
        ItemStatus::Active | ItemStatus::PendingExpiration
    );
    if healthy && matches!(signal, Signal::LinkSuccess | Signal::HostedLinkSuccess) {
        // The user went through update mode, where Link offers the new accounts.
        crate::alerts::resolve(&mut tx, item_id, &[AlertCause::NewAccounts], decision.cause)
            .await?;
    }
    tx.commit().await?;
    result.to = decision.to;
    if result.from != result.to {
        tracing::info!(item.id = %item_id, from = result.from.as_str(), to = result.to.as_str(), cause = decision.cause, "Item status reconciled");
    }
    Ok(result)
}
