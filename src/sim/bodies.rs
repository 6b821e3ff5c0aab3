//! Webhook bodies the simulator sends, built from the typed models in `plaid::webhooks` and
//! serialised once, pretty-printed with two-space indentation as Plaid sends them. The bytes
//! built here are exactly the bytes signed and delivered.

use crate::plaid::webhooks::{
    ItemAddResultWebhook, LinkEventsWebhook, LinkSessionFinishedWebhook, LinkSessionStatus,
};
use crate::plaid::webhooks::{
    ItemErrorWebhook, ItemNoticeWebhook, PendingDisconnectWebhook, PendingExpirationWebhook,
    RecurringTransactionsUpdateWebhook, SyncUpdatesAvailableWebhook, TransactionsRemovedWebhook,
    TransactionsUpdateWebhook, UserAccountRevokedWebhook, WebhookUpdateAcknowledgedWebhook,
};
use crate::plaid::{
    Environment, ItemId, LinkEvent, LinkToken, PlaidError, PublicToken, TransactionId, WebhookCode,
    WebhookType,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A webhook ready to deliver: where, what, and the exact body bytes.
#[derive(Debug, Clone)]
pub struct OutgoingWebhook {
    pub url: String,
    pub item_id: Option<String>,
    pub webhook_type: String,
    pub webhook_code: String,
    pub body: std::sync::Arc<Vec<u8>>,
}

fn bytes<T: Serialize>(body: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(body).expect("webhook bodies serialise")
}

/// The facts every body needs.
pub struct Context<'a> {
    pub item_id: &'a str,
    pub environment: &'a str,
}

impl Context<'_> {
    fn item(&self) -> ItemId {
        ItemId::new(self.item_id)
    }
    fn env(&self) -> Environment {
        Environment::from(self.environment)
    }
}

pub fn sync_updates_available(ctx: &Context, initial: bool, historical: bool) -> Vec<u8> {
    bytes(&SyncUpdatesAvailableWebhook {
        webhook_type: WebhookType::Transactions,
        webhook_code: WebhookCode::SyncUpdatesAvailable,
        item_id: ctx.item(),
        user_id: None,
        initial_update_complete: initial,
        historical_update_complete: historical,
        environment: ctx.env(),
    })
}

pub fn transactions_update(ctx: &Context, code: WebhookCode, new_transactions: u64) -> Vec<u8> {
    bytes(&TransactionsUpdateWebhook {
        webhook_type: WebhookType::Transactions,
        webhook_code: code,
        item_id: ctx.item(),
        new_transactions,
        error: None,
        environment: ctx.env(),
    })
}

/// TRANSACTIONS_REMOVED: the ids of transactions that are gone.
pub fn transactions_removed(ctx: &Context, removed: Vec<String>) -> Vec<u8> {
    bytes(&TransactionsRemovedWebhook {
        webhook_type: WebhookType::Transactions,
        webhook_code: WebhookCode::TransactionsRemoved,
        item_id: ctx.item(),
        removed_transactions: removed.into_iter().map(TransactionId::new).collect(),
        error: None,
        environment: ctx.env(),
    })
}

/// PENDING_DISCONNECT, for US and Canadian institutions.
pub fn pending_disconnect_for(ctx: &Context, reason: &str, at: DateTime<Utc>) -> Vec<u8> {
    bytes(&PendingDisconnectWebhook {
        webhook_type: WebhookType::Item,
        webhook_code: WebhookCode::PendingDisconnect,
        item_id: ctx.item(),
        user_id: None,
        reason: reason.to_owned(),
        disconnect_time: at,
        environment: ctx.env(),
    })
}

pub fn recurring_update(ctx: &Context, account_ids: Vec<String>) -> Vec<u8> {
    bytes(&RecurringTransactionsUpdateWebhook {
        webhook_type: WebhookType::Transactions,
        webhook_code: WebhookCode::RecurringTransactionsUpdate,
        item_id: ctx.item(),
        account_ids,
        environment: ctx.env(),
    })
}

/// ITEM ERROR; `error` carries `status` as in Plaid's webhooks.
pub fn item_error(ctx: &Context, error: &PlaidError) -> Vec<u8> {
    let mut error = super::errors::documented(error.clone());
    error.request_id = None;
    error.status = Some(error.http_status());
    bytes(&ItemErrorWebhook {
        webhook_type: WebhookType::Item,
        webhook_code: WebhookCode::Error,
        item_id: ctx.item(),
        user_id: None,
        error: Some(error),
        environment: ctx.env(),
    })
}

/// LOGIN_REPAIRED, USER_PERMISSION_REVOKED, NEW_ACCOUNTS_AVAILABLE.
pub fn item_notice(ctx: &Context, code: WebhookCode, error: Option<PlaidError>) -> Vec<u8> {
    bytes(&ItemNoticeWebhook {
        webhook_type: WebhookType::Item,
        webhook_code: code,
        item_id: ctx.item(),
        user_id: None,
        error: error.map(super::errors::documented),
        environment: ctx.env(),
    })
}

pub fn pending_expiration(ctx: &Context, at: DateTime<Utc>) -> Vec<u8> {
    bytes(&PendingExpirationWebhook {
        webhook_type: WebhookType::Item,
        webhook_code: WebhookCode::PendingExpiration,
        item_id: ctx.item(),
        user_id: None,
        consent_expiration_time: at,
        environment: ctx.env(),
    })
}

pub fn pending_disconnect(ctx: &Context, at: DateTime<Utc>) -> Vec<u8> {
    bytes(&PendingDisconnectWebhook {
        webhook_type: WebhookType::Item,
        webhook_code: WebhookCode::PendingDisconnect,
        item_id: ctx.item(),
        user_id: None,
        reason: "INSTITUTION_MIGRATION".to_owned(),
        disconnect_time: at,
        environment: ctx.env(),
    })
}

pub fn user_account_revoked(ctx: &Context, account_id: &str) -> Vec<u8> {
    bytes(&UserAccountRevokedWebhook {
        webhook_type: WebhookType::Item,
        webhook_code: WebhookCode::UserAccountRevoked,
        item_id: ctx.item(),
        user_id: None,
        account_id: account_id.to_owned(),
        environment: ctx.env(),
    })
}

pub fn webhook_update_acknowledged(ctx: &Context, new_url: &str) -> Vec<u8> {
    bytes(&WebhookUpdateAcknowledgedWebhook {
        webhook_type: WebhookType::Item,
        webhook_code: WebhookCode::WebhookUpdateAcknowledged,
        item_id: ctx.item(),
        new_webhook_url: new_url.to_owned(),
        error: None,
        environment: ctx.env(),
    })
}

/// Bodies of the sandbox-only codes (`SMS_MICRODEPOSITS_VERIFICATION`, `AUTHORIZATION_GRANTED`,
/// assets `PRODUCT_READY` / `ERROR`, non-transactions `DEFAULT_UPDATE`) that plaidhook does not
/// model: shaped like Plaid's, built as JSON.
pub fn generic(ctx: &Context, webhook_type: &str, code: &str, extra: serde_json::Value) -> Vec<u8> {
    let mut body = serde_json::json!({
        "webhook_type": webhook_type,
        "webhook_code": code,
        "item_id": ctx.item_id,
        "environment": ctx.environment,
    });
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    bytes(&body)
}

/// LINK ITEM_ADD_RESULT: exactly the spec's fields (`ItemAddResultWebhook`).
pub fn item_add_result(
    environment: &str,
    link_session_id: &str,
    link_token: &str,
    public_token: &str,
) -> Vec<u8> {
    bytes(&ItemAddResultWebhook {
        webhook_type: WebhookType::Link,
        webhook_code: WebhookCode::ItemAddResult,
        link_session_id: link_session_id.to_owned(),
        link_token: LinkToken::new(link_token),
        public_token: PublicToken::new(public_token),
        environment: Environment::from(environment),
    })
}

/// LINK SESSION_FINISHED with `public_tokens` when the session produced any (and the
/// deprecated `public_token` beside it, as Plaid still sends both).
pub fn session_finished(
    environment: &str,
    status: LinkSessionStatus,
    link_session_id: &str,
    link_token: &str,
    public_token: Option<&str>,
) -> Vec<u8> {
    bytes(&LinkSessionFinishedWebhook {
        webhook_type: WebhookType::Link,
        webhook_code: WebhookCode::SessionFinished,
        status,
        link_session_id: link_session_id.to_owned(),
        link_token: LinkToken::new(link_token),
        public_token: public_token.map(PublicToken::new),
        public_tokens: public_token.map(|token| vec![PublicToken::new(token)]),
        user_id: None,
        environment: Environment::from(environment),
    })
}

/// LINK EVENTS: the session's events so far (the spec gives this webhook no `environment`).
pub fn link_events(link_session_id: &str, link_token: &str, events: &[LinkEvent]) -> Vec<u8> {
    bytes(&LinkEventsWebhook {
        webhook_type: WebhookType::Link,
        webhook_code: WebhookCode::Events,
        events: events.to_vec(),
        link_session_id: Some(link_session_id.to_owned()),
        link_token: Some(LinkToken::new(link_token)),
    })
}
