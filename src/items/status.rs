//! Item statuses and transitions.
//!
//! Every status change goes through [`transition`], inside the caller's transaction, so the
//! Item row, its history, the `item.status_changed` event and the Item's alerts always agree:
//! entering an unhealthy status raises its alert (once), and leaving it resolves the alert.

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::alerts::AlertCause;
use crate::messages::events::StatusChanged;
use crate::messages::Event;
pub use crate::messages::{ItemStatus, StatusSource};

/// The alert an Item in `status` has open; `None` for the healthy and removed statuses.
pub fn alert_cause(status: ItemStatus) -> Option<AlertCause> {
    match status {
        ItemStatus::LoginRequired => Some(AlertCause::LoginRequired),
        ItemStatus::Error => Some(AlertCause::ItemError),
        ItemStatus::PendingExpiration => Some(AlertCause::PendingExpiration),
        ItemStatus::PendingDisconnect => Some(AlertCause::PendingDisconnect),
        ItemStatus::Revoked => Some(AlertCause::Revoked),
        ItemStatus::Active | ItemStatus::Removed => None,
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
    let from = sqlx::query_scalar!(
        r#"select status as "status: ItemStatus" from items where id = $1 for update"#,
        item_id
    )
    .fetch_one(&mut **tx)
    .await?;
    let error_update = change.to != ItemStatus::Active;
    // A sync that was running when the Item was removed here meets Plaid's ITEM_NOT_FOUND:
    // that says nothing new about an Item plaidhook no longer follows. Only re-linking brings
    // a removed Item back.
    let stale_sync = from == ItemStatus::Removed && change.source == StatusSource::Sync;
    if from == change.to || stale_sync {
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
    let event = Event::ItemStatusChanged(StatusChanged {
        from,
        to: change.to,
        cause: change.cause,
        error_code: change.error_code,
        source: change.source,
    });
    crate::outbox::enqueue(tx, Some(item_id), &event).await?;
    let entered = alert_cause(change.to);
    let cleared: Vec<AlertCause> = AlertCause::ALL
        .into_iter()
        .filter(|cause| cause.follows_status() && Some(*cause) != entered)
        .collect();
    crate::alerts::resolve(tx, item_id, &cleared, change.cause).await?;
    if let Some(cause) = entered {
        crate::alerts::raise(tx, item_id, cause, change.error_code, change.error_message).await?;
    }
    Ok(Some(from))
}
