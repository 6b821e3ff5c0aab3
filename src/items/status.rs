//! Item statuses and transitions.
//!
//! Every status change goes through [`transition`], inside the caller's transaction, so the
//! Item row, its history, the `item.status_changed` event and the Item's alerts always agree:
//! entering an unhealthy status raises its alert (once), and leaving it resolves the alert.

use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::alerts::AlertCause;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Active,
    LoginRequired,
    PendingExpiration,
    PendingDisconnect,
    Revoked,
    Error,
    Removed,
}

impl ItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::LoginRequired => "login_required",
            Self::PendingExpiration => "pending_expiration",
            Self::PendingDisconnect => "pending_disconnect",
            Self::Revoked => "revoked",
            Self::Error => "error",
            Self::Removed => "removed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "active" => Self::Active,
            "login_required" => Self::LoginRequired,
            "pending_expiration" => Self::PendingExpiration,
            "pending_disconnect" => Self::PendingDisconnect,
            "revoked" => Self::Revoked,
            "error" => Self::Error,
            "removed" => Self::Removed,
            _ => return None,
        })
    }
}

/// What moved the Item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusSource {
    Webhook,
    Api,
    Sync,
    Operator,
    Scheduler,
}

impl StatusSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Api => "api",
            Self::Sync => "sync",
            Self::Operator => "operator",
            Self::Scheduler => "scheduler",
        }
    }
}

/// A requested move to `to`, with why.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    pub to: ItemStatus,
    /// Short machine-readable cause, e.g. `item_error`, `login_repaired`, `sync_succeeded`.
    pub cause: &'a str,
    pub error_code: Option<&'a str>,
    pub error_message: Option<&'a str>,
    pub source: StatusSource,
}

/// Moves the Item to `change.to` unless it is already there; records the history row and the
/// `item.status_changed` event, resolves the alerts of the status it leaves and raises the one
/// of the status it enters. Returns the previous status when it changed. The Item row is locked
/// for the rest of the transaction, so concurrent transitions serialise.
pub async fn transition(
    tx: &mut Transaction<'_, Postgres>,
    item_id: Uuid,
    change: Transition<'_>,
) -> Result<Option<ItemStatus>, sqlx::Error> {
    let current: String =
        sqlx::query_scalar!("select status from items where id = $1 for update", item_id)
            .fetch_one(&mut **tx)
            .await?;
    let from = ItemStatus::parse(&current).unwrap_or(ItemStatus::Error);
    let error_update = change.to != ItemStatus::Active;
    if from == change.to {
        return Ok(None);
    }
    sqlx::query!(
        "update items set status = $2,
                error_code = case when $3 then $4 else null end,
                error_message = case when $3 then $5 else null end
         where id = $1",
        item_id,
        change.to.as_str(),
        error_update,
        change.error_code,
        change.error_message,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "insert into item_status_history (item_id, from_status, to_status, cause, error_code, error_message, source)
         values ($1, $2, $3, $4, $5, $6, $7)",
        item_id,
        from.as_str(),
        change.to.as_str(),
        change.cause,
        change.error_code,
        change.error_message,
        change.source.as_str(),
    )
    .execute(&mut **tx)
    .await?;
    crate::outbox::enqueue(
        tx,
        "item.status_changed",
        Some(item_id),
        &serde_json::json!({
            "from": from,
            "to": change.to,
            "cause": change.cause,
            "error_code": change.error_code,
            "source": change.source,
        }),
    )
    .await?;
    let entered = AlertCause::for_status(change.to);
    let cleared: Vec<AlertCause> = AlertCause::ALL
        .into_iter()
        .filter(|cause| Some(*cause) != entered)
        .collect();
    crate::alerts::resolve(tx, item_id, &cleared, change.cause).await?;
    if let Some(cause) = entered {
        crate::alerts::raise(tx, item_id, cause, change.error_code, change.error_message).await?;
    }
    Ok(Some(from))
}
