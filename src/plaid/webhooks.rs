//! Webhook bodies Plaid POSTs to the Item's webhook URL, one struct per webhook in the spec,
//! plus `WebhookHeader` (the fields every webhook shares) and `Webhook` (a parsed body,
//! dispatched on type and code, with an `Other` case for anything unknown).

use super::enums::{Environment, WebhookCode, WebhookType};
use super::error::PlaidError;
use super::ids::{ItemId, LinkToken, PublicToken, TransactionId};
use super::link::LinkEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The fields common to Plaid's webhooks. Enough to route a webhook without understanding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookHeader {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<ItemId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<PlaidError>,
}

/// TRANSACTIONS SYNC_UPDATES_AVAILABLE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncUpdatesAvailableWebhook {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    pub item_id: ItemId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub initial_update_complete: bool,
    pub historical_update_complete: bool,
    pub environment: Environment,
}

/// TRANSACTIONS INITIAL_UPDATE / HISTORICAL_UPDATE / DEFAULT_UPDATE (legacy, for `/transactions/get`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionsUpdateWebhook {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    pub item_id: ItemId,
    pub new_transactions: u64,
    #[serde(default)]
    pub error: Option<PlaidError>,
    pub environment: Environment,
}

/// TRANSACTIONS TRANSACTIONS_REMOVED (legacy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionsRemovedWebhook {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    pub item_id: ItemId,
    pub removed_transactions: Vec<TransactionId>,
    #[serde(default)]
    pub error: Option<PlaidError>,
    pub environment: Environment,
}

/// TRANSACTIONS RECURRING_TRANSACTIONS_UPDATE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecurringTransactionsUpdateWebhook {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    pub item_id: ItemId,
    pub account_ids: Vec<String>,
    pub environment: Environment,
}

/// ITEM ERROR: the Item entered an error state (`error.error_code`, e.g. ITEM_LOGIN_REQUIRED).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemErrorWebhook {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    pub item_id: ItemId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub error: Option<PlaidError>,
    pub environment: Environment,
}

/// ITEM PENDING_EXPIRATION.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingExpirationWebhook {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    pub item_id: ItemId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub consent_expiration_time: DateTime<Utc>,
    pub environment: Environment,
}

/// ITEM PENDING_DISCONNECT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDisconnectWebhook {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    pub item_id: ItemId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `INSTITUTION_MIGRATION` or `INSTITUTION_TOKEN_EXPIRATION` (open set).
    pub reason: String,
    pub disconnect_time: DateTime<Utc>,
    pub environment: Environment,
}

/// ITEM USER_ACCOUNT_REVOKED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserAccountRevokedWebhook {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    pub item_id: ItemId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub account_id: String,
    pub environment: Environment,
}

/// ITEM WEBHOOK_UPDATE_ACKNOWLEDGED: sent to the new URL after `/item/webhook/update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookUpdateAcknowledgedWebhook {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    pub item_id: ItemId,
    pub new_webhook_url: String,
    #[serde(default)]
    pub error: Option<PlaidError>,
    pub environment: Environment,
}

/// ITEM webhooks with no payload beyond the Item (and maybe an error): LOGIN_REPAIRED,
/// USER_PERMISSION_REVOKED, NEW_ACCOUNTS_AVAILABLE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemNoticeWebhook {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    pub item_id: ItemId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<PlaidError>,
    pub environment: Environment,
}

/// LINK SESSION_FINISHED (`LinkSessionFinishedWebhook`): a Hosted Link session ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSessionFinishedWebhook {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    pub status: LinkSessionStatus,
    pub link_session_id: String,
    pub link_token: LinkToken,
    /// Deprecated by Plaid in favour of `public_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_token: Option<PublicToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_tokens: Option<Vec<PublicToken>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub environment: Environment,
}

open_enum! {
    /// `status` of SESSION_FINISHED: always `SUCCESS` or `EXITED` per the spec.
    pub enum LinkSessionStatus {
        Success => "SUCCESS",
        Exited => "EXITED",
    }
}

/// LINK ITEM_ADD_RESULT (`ItemAddResultWebhook`): an Item was added in a Hosted Link session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemAddResultWebhook {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    pub link_session_id: String,
    pub link_token: LinkToken,
    pub public_token: PublicToken,
    pub environment: Environment,
}

/// LINK EVENTS (`LinkEventsWebhook`): the events of a Link session. The spec requires only
/// `webhook_type` and gives no `environment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkEventsWebhook {
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    #[serde(default)]
    pub events: Vec<LinkEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_token: Option<LinkToken>,
}

/// A parsed webhook body.
#[derive(Debug, Clone, PartialEq)]
pub enum Webhook {
    SyncUpdatesAvailable(SyncUpdatesAvailableWebhook),
    TransactionsUpdate(TransactionsUpdateWebhook),
    TransactionsRemoved(TransactionsRemovedWebhook),
    RecurringTransactionsUpdate(RecurringTransactionsUpdateWebhook),
    ItemError(ItemErrorWebhook),
    PendingExpiration(PendingExpirationWebhook),
    PendingDisconnect(PendingDisconnectWebhook),
    UserAccountRevoked(UserAccountRevokedWebhook),
    WebhookUpdateAcknowledged(WebhookUpdateAcknowledgedWebhook),
    /// LOGIN_REPAIRED, USER_PERMISSION_REVOKED, NEW_ACCOUNTS_AVAILABLE.
    ItemNotice(ItemNoticeWebhook),
    LinkSessionFinished(LinkSessionFinishedWebhook),
    ItemAddResult(ItemAddResultWebhook),
    LinkEvents(LinkEventsWebhook),
    /// A type/code this version does not model; the header is still parsed.
    Other(WebhookHeader, serde_json::Value),
}

impl Webhook {
    /// Parse a webhook body. Fails only when the common header fields are missing or a known
    /// webhook lacks its documented fields.
    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_slice(body)?;
        let header: WebhookHeader = serde_json::from_value(value.clone())?;
        use WebhookCode as C;
        use WebhookType as T;
        let parsed = match (&header.webhook_type, &header.webhook_code) {
            (T::Transactions, C::SyncUpdatesAvailable) => {
                Self::SyncUpdatesAvailable(serde_json::from_value(value)?)
            }
            (T::Transactions, C::InitialUpdate | C::HistoricalUpdate | C::DefaultUpdate) => {
                Self::TransactionsUpdate(serde_json::from_value(value)?)
            }
            (T::Transactions, C::TransactionsRemoved) => {
                Self::TransactionsRemoved(serde_json::from_value(value)?)
            }
            (T::Transactions, C::RecurringTransactionsUpdate) => {
                Self::RecurringTransactionsUpdate(serde_json::from_value(value)?)
            }
            (T::Item, C::Error) => Self::ItemError(serde_json::from_value(value)?),
            (T::Item, C::PendingExpiration) => {
                Self::PendingExpiration(serde_json::from_value(value)?)
            }
            (T::Item, C::PendingDisconnect) => {
                Self::PendingDisconnect(serde_json::from_value(value)?)
            }
            (T::Item, C::UserAccountRevoked) => {
                Self::UserAccountRevoked(serde_json::from_value(value)?)
            }
            (T::Item, C::WebhookUpdateAcknowledged) => {
                Self::WebhookUpdateAcknowledged(serde_json::from_value(value)?)
            }
            (T::Item, C::LoginRepaired | C::UserPermissionRevoked | C::NewAccountsAvailable) => {
                Self::ItemNotice(serde_json::from_value(value)?)
            }
            (T::Link, C::SessionFinished) => {
                Self::LinkSessionFinished(serde_json::from_value(value)?)
            }
            (T::Link, C::ItemAddResult) => Self::ItemAddResult(serde_json::from_value(value)?),
            (T::Link, C::Events) => Self::LinkEvents(serde_json::from_value(value)?),
            _ => Self::Other(header, value),
        };
        Ok(parsed)
    }

    /// The common header of any parsed webhook.
    pub fn header(&self) -> WebhookHeader {
        fn h(
            t: &WebhookType,
            c: &WebhookCode,
            item: &ItemId,
            env: &Environment,
            error: Option<&PlaidError>,
        ) -> WebhookHeader {
            WebhookHeader {
                webhook_type: t.clone(),
                webhook_code: c.clone(),
                item_id: Some(item.clone()),
                environment: Some(env.clone()),
                error: error.cloned(),
            }
        }
        match self {
            Self::SyncUpdatesAvailable(w) => h(
                &w.webhook_type,
                &w.webhook_code,
                &w.item_id,
                &w.environment,
                None,
            ),
            Self::TransactionsUpdate(w) => h(
                &w.webhook_type,
                &w.webhook_code,
                &w.item_id,
                &w.environment,
                w.error.as_ref(),
            ),
            Self::TransactionsRemoved(w) => h(
                &w.webhook_type,
                &w.webhook_code,
                &w.item_id,
                &w.environment,
                w.error.as_ref(),
            ),
            Self::RecurringTransactionsUpdate(w) => h(
                &w.webhook_type,
                &w.webhook_code,
                &w.item_id,
                &w.environment,
                None,
            ),
            Self::ItemError(w) => h(
                &w.webhook_type,
                &w.webhook_code,
                &w.item_id,
                &w.environment,
                w.error.as_ref(),
            ),
            Self::PendingExpiration(w) => h(
                &w.webhook_type,
                &w.webhook_code,
                &w.item_id,
                &w.environment,
                None,
            ),
            Self::PendingDisconnect(w) => h(
                &w.webhook_type,
                &w.webhook_code,
                &w.item_id,
                &w.environment,
                None,
            ),
            Self::UserAccountRevoked(w) => h(
                &w.webhook_type,
                &w.webhook_code,
                &w.item_id,
                &w.environment,
                None,
            ),
            Self::WebhookUpdateAcknowledged(w) => h(
                &w.webhook_type,
                &w.webhook_code,
                &w.item_id,
                &w.environment,
                w.error.as_ref(),
            ),
            Self::ItemNotice(w) => h(
                &w.webhook_type,
                &w.webhook_code,
                &w.item_id,
                &w.environment,
                w.error.as_ref(),
            ),
            // LINK webhooks are about a Link session, not an Item.
            Self::LinkSessionFinished(w) => WebhookHeader {
                webhook_type: w.webhook_type.clone(),
                webhook_code: w.webhook_code.clone(),
                item_id: None,
                environment: Some(w.environment.clone()),
                error: None,
            },
            Self::ItemAddResult(w) => WebhookHeader {
                webhook_type: w.webhook_type.clone(),
                webhook_code: w.webhook_code.clone(),
                item_id: None,
                environment: Some(w.environment.clone()),
                error: None,
            },
            Self::LinkEvents(w) => WebhookHeader {
                webhook_type: w.webhook_type.clone(),
                webhook_code: w.webhook_code.clone(),
                item_id: None,
                environment: None,
                error: None,
            },
            Self::Other(header, _) => header.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_webhooks_parse_typed_and_unknown_ones_keep_their_header() {
        let body = br#"{"webhook_type":"ITEM","webhook_code":"ERROR","item_id":"abc","environment":"sandbox",
            "error":{"error_type":"ITEM_ERROR","error_code":"ITEM_LOGIN_REQUIRED","error_message":"m","display_message":null,"status":400}}"#;
        match Webhook::from_json(body).unwrap() {
            Webhook::ItemError(w) => {
                assert_eq!(
                    w.error.unwrap().error_code,
                    super::super::ErrorCode::ItemLoginRequired
                )
            }
            other => panic!("unexpected {other:?}"),
        }
        let body = br#"{"webhook_type":"TRANSFER","webhook_code":"TRANSFER_EVENTS_UPDATE","environment":"production"}"#;
        let parsed = Webhook::from_json(body).unwrap();
        let header = parsed.header();
        assert_eq!(header.webhook_type, WebhookType::Other("TRANSFER".into()));
        assert!(matches!(parsed, Webhook::Other(..)));
    }

    #[test]
    fn link_webhooks_parse_typed() {
        let body = br#"{"webhook_type":"LINK","webhook_code":"SESSION_FINISHED","status":"SUCCESS",
            "link_session_id":"356dbb28","link_token":"link-sandbox-af1a","public_tokens":["public-sandbox-b0e2"],
            "environment":"sandbox"}"#;
        match Webhook::from_json(body).unwrap() {
            Webhook::LinkSessionFinished(w) => {
                assert_eq!(w.status, LinkSessionStatus::Success);
                assert_eq!(w.public_tokens.unwrap().len(), 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        let body = br#"{"webhook_type":"LINK","webhook_code":"ITEM_ADD_RESULT","link_session_id":"s",
            "link_token":"link-sandbox-1","public_token":"public-sandbox-2","environment":"sandbox"}"#;
        let parsed = Webhook::from_json(body).unwrap();
        assert!(matches!(parsed, Webhook::ItemAddResult(_)));
        assert_eq!(parsed.header().item_id, None);
        let body = br#"{"webhook_type":"LINK","webhook_code":"EVENTS","link_session_id":"s","link_token":"t",
            "events":[{"event_name":"OPEN","timestamp":"2024-01-01T00:00:00Z","event_id":"e","event_metadata":{}}]}"#;
        match Webhook::from_json(body).unwrap() {
            Webhook::LinkEvents(w) => assert_eq!(w.events[0].event_name, "OPEN"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
