//! The events plaidhook publishes on `plaid.events` for downstream subscribers.
//!
//! [`Event`] is the one list of them: its serde tag is the event type, which is also the AMQP
//! routing key and `type` property. The outbox wraps each as the event document
//! `{"id", "type", "occurred_at", "item_id", "data"}` (see `outbox`); `data` is the variant's
//! payload, typed here so a producer cannot misspell a field and subscribers can read the
//! schema in one place. The README documents the same shapes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::item_status::{ItemStatus, StatusSource};
use crate::plaid::{Raw, RemovedTransaction, Transaction};

/// One event, with its payload.
#[derive(Debug, Serialize)]
#[serde(tag = "type", content = "data")]
pub enum Event<'a> {
    /// One sync run's changes (or one numbered chunk of a large run's).
    #[serde(rename = "transactions.synced")]
    TransactionsSynced(TransactionsSynced<'a>),
    /// An Item moved between statuses.
    #[serde(rename = "item.status_changed")]
    ItemStatusChanged(StatusChanged<'a>),
    /// The user revoked one account's access (USER_ACCOUNT_REVOKED); the Item stays healthy.
    #[serde(rename = "item.account_revoked")]
    ItemAccountRevoked { account_id: Option<String> },
    /// The institution has accounts the user has not shared yet (NEW_ACCOUNTS_AVAILABLE).
    #[serde(rename = "item.new_accounts_available")]
    ItemNewAccountsAvailable { plaid_item_id: &'a str },
    #[serde(rename = "alert.raised")]
    AlertRaised(&'a AlertDocument),
    #[serde(rename = "alert.resolved")]
    AlertResolved(&'a AlertDocument),
    /// A reminder of an open alert (consent about to expire).
    #[serde(rename = "alert.reminder")]
    AlertReminder(&'a AlertDocument),
    /// An alert that stayed open through every reminder, for the on-call only.
    #[serde(rename = "alert.escalated")]
    AlertEscalated(&'a AlertDocument),
    /// The alert's repair link was about to expire and was replaced (`repair.hosted_link`).
    #[serde(rename = "alert.link_renewed")]
    AlertLinkRenewed(&'a AlertDocument),
}

impl Event<'_> {
    /// The event type: routing key on `plaid.events` and AMQP `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TransactionsSynced(_) => "transactions.synced",
            Self::ItemStatusChanged(_) => "item.status_changed",
            Self::ItemAccountRevoked { .. } => "item.account_revoked",
            Self::ItemNewAccountsAvailable { .. } => "item.new_accounts_available",
            Self::AlertRaised(_) => "alert.raised",
            Self::AlertResolved(_) => "alert.resolved",
            Self::AlertReminder(_) => "alert.reminder",
            Self::AlertEscalated(_) => "alert.escalated",
            Self::AlertLinkRenewed(_) => "alert.link_renewed",
        }
    }
}

/// `data` of `transactions.synced`.
#[derive(Debug, Serialize)]
pub struct TransactionsSynced<'a> {
    pub plaid_item_id: &'a str,
    pub sync_run_id: Uuid,
    pub trigger: &'a str,
    /// 1-based; `chunks` in all for this run.
    pub chunk: usize,
    pub chunks: usize,
    pub cursor_reset: bool,
    /// The whole run's counts, the same in every chunk.
    pub totals: &'a SyncTotals,
    /// Each exactly as Plaid sent it.
    pub added: Vec<&'a Raw<Transaction>>,
    pub modified: Vec<&'a Raw<Transaction>>,
    pub removed: Vec<&'a RemovedTransaction>,
}

/// A sync run's counts.
#[derive(Debug, Serialize)]
pub struct SyncTotals {
    pub added: usize,
    pub modified: usize,
    pub removed: usize,
}

/// `data` of `item.status_changed`.
#[derive(Debug, Serialize)]
pub struct StatusChanged<'a> {
    pub from: ItemStatus,
    pub to: ItemStatus,
    pub cause: &'a str,
    pub error_code: Option<&'a str>,
    pub source: StatusSource,
}

/// What `alert.*` events and alert webhooks carry about an alert.
#[derive(Debug, Clone, Serialize)]
pub struct AlertDocument {
    pub id: Uuid,
    pub cause: String,
    pub error_code: Option<String>,
    pub message: String,
    pub raised_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub item: ItemSummary,
    pub repair: Repair,
}

/// The Item as an alert names it.
#[derive(Debug, Clone, Serialize)]
pub struct ItemSummary {
    pub id: Uuid,
    pub plaid_item_id: String,
    pub client_user_id: Option<String>,
    pub institution_name: Option<String>,
    pub status: String,
    pub consent_expires_at: Option<DateTime<Utc>>,
}

/// How to repair: what to do, and the endpoints that do it.
#[derive(Debug, Clone, Serialize)]
pub struct Repair {
    pub action: &'static str,
    pub instructions: String,
    /// `POST` this for an update-mode Link token (absent when update mode cannot help).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_token_endpoint: Option<String>,
    /// `POST` this once the user finished Link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_success_endpoint: Option<String>,
    /// What to tell the user, in their words (for an email, SMS or in-app message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_message: Option<String>,
    /// A ready Plaid Hosted Link URL that repairs the Item: send it to the user as is. plaidhook
    /// learns the outcome from Plaid; nobody needs to call `link_success_endpoint`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosted_link: Option<HostedLinkView>,
}

/// A Hosted Link repair URL and when it stops working.
#[derive(Debug, Clone, Serialize)]
pub struct HostedLinkView {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serde_tag_of_every_event_is_its_kind() {
        let events = [
            Event::ItemStatusChanged(StatusChanged {
                from: ItemStatus::Active,
                to: ItemStatus::LoginRequired,
                cause: "item_error",
                error_code: Some("ITEM_LOGIN_REQUIRED"),
                source: StatusSource::Webhook,
            }),
            Event::ItemAccountRevoked { account_id: None },
            Event::ItemNewAccountsAvailable { plaid_item_id: "i" },
        ];
        for event in &events {
            let json = serde_json::to_value(event).unwrap();
            assert_eq!(json["type"], event.kind());
            assert!(json["data"].is_object(), "{json}");
        }
    }
}
