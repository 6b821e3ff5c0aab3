//! Alerts for humans: an Item that needs attention, said once, and said again when it is fine.
//!
//! An alert belongs to an Item and a cause (`login_required`, `item_error`, …). At most one alert
//! per Item and cause is open at a time — the `alerts_one_open_per_cause` unique index makes a
//! second raise a no-op however many webhooks repeat the news — and it is resolved when the cause
//! clears. Raising and resolving happen inside the caller's transaction (normally
//! the Item status transition's), together with the `alert.raised` / `alert.resolved` outbox
//! event and a row in `alert_deliveries` for the [`notifier`], so an alert, its event and its
//! delivery never disagree.
//!
//! An alert that needs the user (login required, consent expiring, institution disconnecting)
//! is announced only once its Hosted Link repair URL is ready (`crate::repair`), so
//! `alert.raised` and the first delivery already carry it; the others are announced at once.
//!
//! - `message`: the words: which Item, which user, why, since when, how to repair.
//! - `notifier`: delivery to the optional alert webhook, retried with backoff.
//! - `signing`: Standard Webhooks signatures on those deliveries.

pub mod message;
pub mod notifier;
pub mod signing;

use chrono::Utc;
use serde::Serialize;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

pub use crate::messages::AlertDocument;
use crate::messages::Event;
use crate::telemetry::names;
pub use message::AlertContext;

/// Why an alert is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertCause {
    /// The user must log in again (ITEM_LOGIN_REQUIRED).
    LoginRequired,
    /// Another ITEM_ERROR.
    ItemError,
    /// The user's consent expires soon (PENDING_EXPIRATION).
    PendingExpiration,
    /// The institution will disconnect the Item (PENDING_DISCONNECT).
    PendingDisconnect,
    /// The user revoked access (USER_PERMISSION_REVOKED).
    Revoked,
    /// The institution has accounts the user has not shared yet (NEW_ACCOUNTS_AVAILABLE). Not a
    /// status: the Item keeps syncing; it clears when the user goes through account selection.
    NewAccounts,
}

impl AlertCause {
    pub const ALL: [AlertCause; 6] = [
        Self::LoginRequired,
        Self::ItemError,
        Self::PendingExpiration,
        Self::PendingDisconnect,
        Self::Revoked,
        Self::NewAccounts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginRequired => "login_required",
            Self::ItemError => "item_error",
            Self::PendingExpiration => "pending_expiration",
            Self::PendingDisconnect => "pending_disconnect",
            Self::Revoked => "revoked",
            Self::NewAccounts => "new_accounts",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|cause| cause.as_str() == value)
    }

    /// Only the user can clear it, in Link's update mode: the alert carries a repair link.
    pub fn needs_user(self) -> bool {
        matches!(
            self,
            Self::LoginRequired
                | Self::PendingExpiration
                | Self::PendingDisconnect
                | Self::NewAccounts
        )
    }

    /// Tied to an Item status: entering the status raises it, leaving it resolves it.
    pub fn follows_status(self) -> bool {
        self != Self::NewAccounts
    }
}

/// Opens an alert for `cause` unless one is already open. Returns the new alert's id, or `None`
/// when an open one existed (nothing else is written then). An alert that needs the user is
/// announced later, by `crate::repair`, once its repair link is ready; any other is announced here.
pub async fn raise(
    tx: &mut Transaction<'_, Postgres>,
    item_id: Uuid,
    cause: AlertCause,
    error_code: Option<&str>,
    error_message: Option<&str>,
) -> Result<Option<Uuid>, sqlx::Error> {
    let context = AlertContext::load(tx, item_id).await?;
    let raised_at = Utc::now();
    let text = context.message(cause, error_code, error_message, raised_at);
    let announced_at = (!cause.needs_user()).then_some(raised_at);
    let id = sqlx::query_scalar!(
        "insert into alerts (id, item_id, cause, error_code, message, raised_at, announced_at)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (item_id, cause) where resolved_at is null do nothing
         returning id",
        Uuid::now_v7(),
        item_id,
        cause.as_str(),
        error_code,
        text,
        raised_at,
        announced_at,
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(id) = id else {
        return Ok(None);
    };
    metrics::counter!(names::ALERTS_RAISED, "cause" => cause.as_str()).increment(1);
    tracing::info!(item.id = %item_id, alert.id = %id, alert.cause = cause.as_str(), "alert raised");
    if announced_at.is_some() {
        let document = AlertDocument {
            id,
            cause: cause.as_str().to_owned(),
            error_code: error_code.map(str::to_owned),
            message: text,
            raised_at,
            resolved_at: None,
            resolution: None,
            item: context.summary(),
            repair: context.repair(cause),
        };
        crate::outbox::enqueue(tx, Some(item_id), &Event::AlertRaised(&document)).await?;
        enqueue_delivery(tx, id, "raised").await?;
    }
    Ok(Some(id))
}

/// Announces an alert that was waiting for its repair link: `alert.raised` and its delivery,
/// with whatever link the Item has now. False when it was announced or resolved meanwhile.
pub async fn announce(
    tx: &mut Transaction<'_, Postgres>,
    alert_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let announced = sqlx::query_scalar!(
        "update alerts set announced_at = now()
         where id = $1 and announced_at is null and resolved_at is null
         returning item_id",
        alert_id
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(item_id) = announced else {
        return Ok(false);
    };
    if let Some(document) = document(tx, alert_id).await? {
        crate::outbox::enqueue(tx, Some(item_id), &Event::AlertRaised(&document)).await?;
        enqueue_delivery(tx, alert_id, "raised").await?;
    }
    Ok(true)
}

/// Resolves the Item's open alerts whose cause is in `causes`, with `resolution` saying why
/// (e.g. `login_repaired`). Returns the resolved alerts' ids.
pub async fn resolve(
    tx: &mut Transaction<'_, Postgres>,
    item_id: Uuid,
    causes: &[AlertCause],
    resolution: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let causes: Vec<String> = causes.iter().map(|c| c.as_str().to_owned()).collect();
    let rows = sqlx::query!(
        r#"with open as (
               select id, announced_at is null as unannounced from alerts
               where item_id = $1 and resolved_at is null and cause = any($2)
               for update)
           update alerts a set resolved_at = now(), resolution = $3,
                  announced_at = coalesce(a.announced_at, now())
           from open where a.id = open.id
           returning a.id, a.cause, a.error_code, a.message, a.raised_at,
                     a.resolved_at as "resolved_at!", open.unannounced as "unannounced!""#,
        item_id,
        &causes,
        resolution,
    )
    .fetch_all(&mut **tx)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let context = AlertContext::load(tx, item_id).await?;
    let mut resolved = Vec::with_capacity(rows.len());
    for row in rows {
        let cause = AlertCause::parse(&row.cause).unwrap_or(AlertCause::ItemError);
        let mut document = AlertDocument {
            id: row.id,
            cause: row.cause.clone(),
            error_code: row.error_code,
            message: row.message,
            raised_at: row.raised_at,
            resolved_at: None,
            resolution: None,
            item: context.summary(),
            repair: context.repair(cause),
        };
        if row.unannounced {
            // Resolved before its repair link was ready: subscribers still hear it was raised,
            // and before they hear it resolved.
            crate::outbox::enqueue(tx, Some(item_id), &Event::AlertRaised(&document)).await?;
            enqueue_delivery(tx, row.id, "raised").await?;
        }
        document.resolved_at = Some(row.resolved_at);
        document.resolution = Some(resolution.to_owned());
        document.repair.hosted_link = None;
        crate::outbox::enqueue(tx, Some(item_id), &Event::AlertResolved(&document)).await?;
        enqueue_delivery(tx, row.id, "resolved").await?;
        metrics::counter!(names::ALERTS_RESOLVED, "cause" => cause.as_str()).increment(1);
        tracing::info!(item.id = %item_id, alert.id = %row.id, alert.cause = %row.cause, resolution, "alert resolved");
        resolved.push(row.id);
    }
    Ok(resolved)
}

/// The alert as events and webhooks describe it, read back from its row.
pub async fn document(
    conn: &mut sqlx::PgConnection,
    alert_id: Uuid,
) -> Result<Option<AlertDocument>, sqlx::Error> {
    let Some(row) = sqlx::query!(
        "select item_id, cause, error_code, message, raised_at, resolved_at, resolution
         from alerts where id = $1",
        alert_id
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let context = AlertContext::load(conn, row.item_id).await?;
    let cause = AlertCause::parse(&row.cause).unwrap_or(AlertCause::ItemError);
    Ok(Some(AlertDocument {
        id: alert_id,
        cause: row.cause,
        error_code: row.error_code,
        message: row.message,
        raised_at: row.raised_at,
        resolved_at: row.resolved_at,
        resolution: row.resolution,
        item: context.summary(),
        repair: context.repair(cause),
    }))
}

/// Queues a delivery of the alert to the alert webhook; a second one of the same kind is a
/// no-op (the receiver hears of each alert change once).
pub(crate) async fn enqueue_delivery(
    tx: &mut Transaction<'_, Postgres>,
    alert_id: Uuid,
    kind: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query!(
        "insert into alert_deliveries (alert_id, kind) values ($1, $2)
         on conflict (alert_id, kind) do nothing",
        alert_id,
        kind,
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
