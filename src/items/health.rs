//! The rules of Item health: which status Plaid's truth calls for, and what a successful sync
//! proves.
//!
//! [`decide`] is pure: given the Item's current status, what `/item/get` reports now, and the
//! signal that made us look (a webhook code, a scheduler re-check, the app reporting Link
//! success), it names the status the Item should have. Because the decision rests on
//! `/item/get` and not on the webhook, a duplicated or late webhook cannot move an Item
//! backwards: a LOGIN_REPAIRED that arrives before its ERROR finds the Item healthy and the
//! ERROR that follows finds it healthy too.
//!
//! Two statuses are not visible in `/item/get` and so rest on their webhook: `revoked`
//! (USER_PERMISSION_REVOKED) and `pending_disconnect`. They stick until the Item is repaired
//! (LOGIN_REPAIRED or Link success) or Plaid reports an error on it.

use chrono::{DateTime, Duration, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::status::{transition, ItemStatus, StatusSource, Transition};
use crate::plaid::{ErrorCode, Item, WebhookCode};

/// Plaid sends PENDING_EXPIRATION 7 days before consent expires; an Item whose consent ends
/// within this window is `pending_expiration` (an hour of slack absorbs clock skew).
pub fn expiration_window() -> Duration {
    Duration::days(7) + Duration::hours(1)
}

/// Why plaidhook is looking at the Item's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// ITEM ERROR.
    Error,
    /// ITEM PENDING_EXPIRATION.
    PendingExpiration,
    /// ITEM PENDING_DISCONNECT.
    PendingDisconnect,
    /// ITEM USER_PERMISSION_REVOKED.
    PermissionRevoked,
    /// ITEM LOGIN_REPAIRED.
    LoginRepaired,
    /// ITEM NEW_ACCOUNTS_AVAILABLE.
    NewAccountsAvailable,
    /// ITEM WEBHOOK_UPDATE_ACKNOWLEDGED.
    WebhookUpdateAcknowledged,
    /// The safety-net scheduler re-checks an Item in error.
    Recheck,
    /// The app reports that the user finished Link in update mode.
    LinkSuccess,
    /// Plaid reports that the user finished a Hosted Link session plaidhook opened.
    HostedLinkSuccess,
}

impl Signal {
    /// The signal an ITEM webhook code carries; `None` for codes that do not concern health.
    pub fn from_webhook_code(code: &WebhookCode) -> Option<Self> {
        Some(match code {
            WebhookCode::Error => Self::Error,
            WebhookCode::PendingExpiration => Self::PendingExpiration,
            WebhookCode::PendingDisconnect => Self::PendingDisconnect,
            WebhookCode::UserPermissionRevoked => Self::PermissionRevoked,
            WebhookCode::LoginRepaired => Self::LoginRepaired,
            WebhookCode::NewAccountsAvailable => Self::NewAccountsAvailable,
            WebhookCode::WebhookUpdateAcknowledged => Self::WebhookUpdateAcknowledged,
            _ => return None,
        })
    }

    fn repairs(self) -> bool {
        matches!(
            self,
            Self::LoginRepaired | Self::LinkSuccess | Self::HostedLinkSuccess
        )
    }
}

/// The status an ITEM_ERROR code puts an Item in. Also for the sync worker, which meets these
/// errors on `/transactions/sync`.
pub fn status_for_error(code: &ErrorCode) -> ItemStatus {
    match code {
        ErrorCode::ItemLoginRequired => ItemStatus::LoginRequired,
        ErrorCode::UserPermissionRevoked | ErrorCode::AccessNotGranted => ItemStatus::Revoked,
        _ => ItemStatus::Error,
    }
}

/// What [`decide`] settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub to: ItemStatus,
    /// The history's `cause` when this moves the Item.
    pub cause: &'static str,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// The status the Item should have, given `/item/get`'s `item` now.
pub fn decide(current: ItemStatus, item: &Item, signal: Signal, now: DateTime<Utc>) -> Decision {
    if current == ItemStatus::Removed {
        return Decision {
            to: current,
            cause: "removed",
            error_code: None,
            error_message: None,
        };
    }
    if let Some(error) = &item.error {
        return Decision {
            to: status_for_error(&error.error_code),
            cause: "item_error",
            error_code: Some(error.error_code.as_str().to_owned()),
            error_message: Some(error.error_message.clone()),
        };
    }
    let consent_ending = item
        .consent_expiration_time
        .is_some_and(|at| at - now <= expiration_window());
    let healthy = if consent_ending {
        ItemStatus::PendingExpiration
    } else {
        ItemStatus::Active
    };
    let (to, cause) = match signal {
        Signal::PermissionRevoked => (ItemStatus::Revoked, "user_permission_revoked"),
        Signal::PendingDisconnect if current != ItemStatus::Revoked => {
            (ItemStatus::PendingDisconnect, "pending_disconnect")
        }
        _ if signal.repairs() => (
            healthy,
            match signal {
                Signal::LoginRepaired => "login_repaired",
                Signal::HostedLinkSuccess => "user_repaired",
                _ => "link_success",
            },
        ),
        // Not visible in /item/get: kept until a repair says otherwise.
        _ if matches!(current, ItemStatus::Revoked | ItemStatus::PendingDisconnect) => {
            (current, "unchanged")
        }
        _ => match (current, healthy) {
            (ItemStatus::LoginRequired | ItemStatus::Error, _) => (healthy, "error_cleared"),
            (_, ItemStatus::PendingExpiration) => (healthy, "pending_expiration"),
            _ => (healthy, "consent_renewed"),
        },
    };
    Decision {
        to,
        cause,
        error_code: None,
        error_message: None,
    }
}

/// Whether moving `from` → `to` means the Item was repaired (and deserves a sync).
pub fn is_repair(from: ItemStatus, to: ItemStatus) -> bool {
    let unhealthy = matches!(
        from,
        ItemStatus::LoginRequired
            | ItemStatus::Error
            | ItemStatus::Revoked
            | ItemStatus::PendingDisconnect
    );
    unhealthy && matches!(to, ItemStatus::Active | ItemStatus::PendingExpiration)
}

/// Called by the sync worker inside the transaction that commits a successful sync: an Item
/// that was `login_required` or `error` evidently works again, so it returns to `active` and
/// its alert resolves. Other statuses are left alone (a sync says nothing about consent or a
/// revocation).
pub async fn on_sync_succeeded(
    tx: &mut Transaction<'_, Postgres>,
    item_id: Uuid,
) -> Result<(), sqlx::Error> {
    let status = sqlx::query_scalar!(
        r#"select status as "status: ItemStatus" from items where id = $1"#,
        item_id
    )
    .fetch_one(&mut **tx)
    .await?;
    if matches!(status, ItemStatus::LoginRequired | ItemStatus::Error) {
        transition(
            tx,
            item_id,
            Transition {
                to: ItemStatus::Active,
                cause: "sync_succeeded",
                error_code: None,
                error_message: None,
                source: StatusSource::Sync,
            },
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plaid::{ErrorType, PlaidError};

    fn item(error: Option<ErrorCode>, consent_in_days: Option<i64>) -> Item {
        serde_json::from_value::<Item>(serde_json::json!({"item_id": "i"}))
            .map(|mut item| {
                item.error = error.map(|code| PlaidError::new(ErrorType::ItemError, code, "m"));
                item.consent_expiration_time =
                    consent_in_days.map(|days| Utc::now() + Duration::days(days));
                item
            })
            .unwrap()
    }

    #[test]
    fn a_late_login_repaired_does_not_clear_an_error_plaid_still_reports() {
        let now = Utc::now();
        let broken = item(Some(ErrorCode::ItemLoginRequired), None);
        let decision = decide(
            ItemStatus::LoginRequired,
            &broken,
            Signal::LoginRepaired,
            now,
        );
        assert_eq!(decision.to, ItemStatus::LoginRequired);
    }

    #[test]
    fn a_late_error_webhook_does_not_break_an_item_plaid_reports_healthy() {
        let decision = decide(
            ItemStatus::Active,
            &item(None, None),
            Signal::Error,
            Utc::now(),
        );
        assert_eq!(decision.to, ItemStatus::Active);
    }

    #[test]
    fn consent_ending_within_a_week_is_pending_expiration_and_renewal_clears_it() {
        let now = Utc::now();
        let ending = decide(
            ItemStatus::Active,
            &item(None, Some(6)),
            Signal::PendingExpiration,
            now,
        );
        assert_eq!(ending.to, ItemStatus::PendingExpiration);
        let renewed = decide(
            ItemStatus::PendingExpiration,
            &item(None, Some(300)),
            Signal::Recheck,
            now,
        );
        assert_eq!(renewed.to, ItemStatus::Active);
    }

    #[test]
    fn revocation_sticks_until_a_repair() {
        let now = Utc::now();
        let healthy = item(None, None);
        let revoked = decide(ItemStatus::Active, &healthy, Signal::PermissionRevoked, now);
        assert_eq!(revoked.to, ItemStatus::Revoked);
        assert_eq!(
            decide(ItemStatus::Revoked, &healthy, Signal::Error, now).to,
            ItemStatus::Revoked
        );
        assert_eq!(
            decide(ItemStatus::Revoked, &healthy, Signal::LinkSuccess, now).to,
            ItemStatus::Active
        );
    }

    #[test]
    fn error_codes_map_to_statuses() {
        assert_eq!(
            status_for_error(&ErrorCode::ItemLoginRequired),
            ItemStatus::LoginRequired
        );
        assert_eq!(
            status_for_error(&ErrorCode::UserPermissionRevoked),
            ItemStatus::Revoked
        );
        assert_eq!(
            status_for_error(&ErrorCode::InstitutionDown),
            ItemStatus::Error
        );
    }
}
