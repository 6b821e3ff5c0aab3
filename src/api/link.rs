//! Linking and repairing Items: Link tokens, the public-token exchange, and Link success.
//!
//! - `POST /api/v1/link/token` — a Link token for a new Item (`transactions`), for the app's
//!   user `client_user_id`, with plaidhook's webhook URL.
//! - `POST /api/v1/link/exchange` — the public token Link returned becomes an Item: the access
//!   token is sealed at rest (never returned, never logged), Plaid is told plaidhook's webhook
//!   URL if the Item has another or none, and the first sync is requested. The same Plaid Item
//!   linked again becomes `active` again (recorded); linked for another user, it is refused.
//! - `POST /api/v1/items/{id}/link-token` — an update-mode Link token (`access_token` set, no
//!   `products`; account selection on when Plaid said new accounts are available).
//! - `POST /api/v1/items/{id}/link-success` — the app reports the user finished update mode:
//!   plaidhook reconciles with `/item/get`; a healthy Item returns to `active`, its alert
//!   resolves, and it syncs.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    optional_body, parse_item_id, plaid_failure, require_text, ApiContext, ApiJson, ApiState,
};
use crate::error::ApiError;
use crate::items::reconcile::ReconcileError;
use crate::items::rows::{LinkError, Linked, LinkedItem};
use crate::items::{ItemStatus, Signal, StatusSource};
use crate::messages::SyncTrigger;
use crate::plaid::{
    AccessToken, AccessTokenRequest, ErrorCode, ItemGetResponse, ItemPublicTokenExchangeRequest,
    ItemPublicTokenExchangeResponse, ItemWebhookUpdateRequest, ItemWebhookUpdateResponse,
    LinkTokenCreateRequest, LinkTokenCreateResponse, LinkTokenTransactions, LinkTokenUpdate,
    LinkTokenUser, Product, PublicToken,
};
use crate::repair::HostedLinkError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLinkToken {
    /// The app's id of its user; Plaid requires it and alerts name it.
    pub client_user_id: String,
    /// Days of history to request (1–730; Plaid's default is 90).
    #[serde(default, deserialize_with = "super::whole_number")]
    pub days_requested: Option<u32>,
    /// OAuth redirect URI registered with Plaid, when the app uses one.
    #[serde(default)]
    pub redirect_uri: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LinkTokenView {
    pub link_token: String,
    pub expiration: DateTime<Utc>,
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_id: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_selection_enabled: Option<bool>,
    /// The Plaid-hosted Link URL to give the user (`hosted: true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosted_link_url: Option<String>,
}

fn link_request(state: &ApiContext, client_user_id: String) -> LinkTokenCreateRequest {
    let link = &state.link;
    LinkTokenCreateRequest {
        client_id: None,
        secret: None,
        client_name: link.client_name.clone(),
        language: link.language.clone(),
        country_codes: link.country_codes.clone(),
        user: Some(LinkTokenUser {
            client_user_id,
            email_address: None,
            phone_number: None,
        }),
        products: None,
        webhook: Some(state.webhook_url.clone()),
        access_token: None,
        redirect_uri: None,
        update: None,
        transactions: None,
        user_id: None,
        institution_id: None,
        hosted_link: None,
    }
}

pub async fn create_link_token(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<NewLinkToken>,
) -> Result<(StatusCode, Json<LinkTokenView>), ApiError> {
    require_text("client_user_id", &body.client_user_id, 128)?;
    if body.days_requested.is_some_and(|d| !(1..=730).contains(&d)) {
        return Err(ApiError::BadRequest(
            "`days_requested` must be between 1 and 730".into(),
        ));
    }
    let mut request = link_request(&state, body.client_user_id);
    request.products = Some(vec![Product::Transactions]);
    request.redirect_uri = body.redirect_uri;
    request.transactions = body.days_requested.map(|days| LinkTokenTransactions {
        days_requested: Some(days),
    });
    let created: LinkTokenCreateResponse = state
        .plaid
        .call("/link/token/create", None, &request)
        .await
        .map_err(plaid_failure)?;
    Ok((
        StatusCode::CREATED,
        Json(LinkTokenView {
            link_token: created.link_token.into_inner(),
            expiration: created.expiration,
            mode: "new_item",
            item_id: None,
            account_selection_enabled: None,
            hosted_link_url: None,
        }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateLinkToken {
    /// Let the user pick accounts again; defaults to on when Plaid reported new accounts.
    #[serde(default)]
    pub account_selection_enabled: Option<bool>,
    /// A Plaid Hosted Link URL for the user instead of a token for the app's own Link: plaidhook
    /// learns the outcome from Plaid's LINK webhooks.
    #[serde(default)]
    pub hosted: Option<bool>,
}

pub async fn create_update_link_token(
    State(state): State<ApiState>,
    Path(item_id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<LinkTokenView>), ApiError> {
    let item_id = parse_item_id(&item_id)?;
    let body: UpdateLinkToken = optional_body(&body)?;
    let item = sqlx::query!(
        "select status, client_user_id, new_accounts_available from items where id = $1",
        item_id
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound)?;
    if item.status == ItemStatus::Removed.as_str() {
        return Err(ApiError::Conflict(
            "the Item was removed; link the institution again instead".into(),
        ));
    }
    if body.hosted == Some(true) {
        return create_hosted_repair_link(&state, item_id).await;
    }
    let access_token = state.credentials(item_id).await?.access_token;
    let account_selection = body
        .account_selection_enabled
        .unwrap_or(item.new_accounts_available);
    // Plaid requires a user in update mode too; Items linked elsewhere may not have one stored.
    let client_user_id = item
        .client_user_id
        .unwrap_or_else(|| format!("plaidhook-item-{item_id}"));
    let mut request = link_request(&state, client_user_id);
    request.access_token = Some(access_token);
    request.update = Some(LinkTokenUpdate {
        account_selection_enabled: Some(account_selection),
        reauthorization_enabled: None,
    });
    let created: LinkTokenCreateResponse = state
        .plaid
        .call("/link/token/create", Some(item_id), &request)
        .await
        .map_err(plaid_failure)?;
    Ok((
        StatusCode::CREATED,
        Json(LinkTokenView {
            link_token: created.link_token.into_inner(),
            expiration: created.expiration,
            mode: "update",
            item_id: Some(item_id),
            account_selection_enabled: Some(account_selection),
            hosted_link_url: None,
        }),
    ))
}

/// A Hosted Link repair session for the Item, tied to its open alert if it has one (that
/// alert then carries the new link).
async fn create_hosted_repair_link(
    state: &ApiContext,
    item_id: uuid::Uuid,
) -> Result<(StatusCode, Json<LinkTokenView>), ApiError> {
    let alert_id = sqlx::query_scalar!(
        "select id from alerts where item_id = $1 and resolved_at is null
         order by raised_at desc limit 1",
        item_id
    )
    .fetch_optional(&state.db)
    .await?;
    let opened = state
        .hosted_links
        .open(item_id, alert_id)
        .await
        .map_err(|error| match error {
            HostedLinkError::NotFound(_) => ApiError::NotFound,
            HostedLinkError::Plaid(error) => plaid_failure(error),
            HostedLinkError::Database(error) => error.into(),
            HostedLinkError::Credentials(error) => error.into(),
            HostedLinkError::NoUrl => ApiError::Unavailable(anyhow::anyhow!(
                "Plaid did not return a hosted_link_url; is Hosted Link enabled for this client?"
            )),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(LinkTokenView {
            link_token: opened.link_token,
            expiration: opened.expires_at,
            mode: "update",
            item_id: Some(item_id),
            account_selection_enabled: None,
            hosted_link_url: Some(opened.url),
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    pub public_token: String,
    /// The app's user the Item belongs to (the one the Link token was created for).
    pub client_user_id: String,
}

#[derive(Debug, Serialize)]
pub struct ExchangeView {
    pub item_id: uuid::Uuid,
    pub plaid_item_id: String,
    pub status: &'static str,
    /// Whether the first sync was requested; if not, the scheduler requests it.
    pub first_sync_requested: bool,
}

pub async fn exchange_public_token(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<ExchangeRequest>,
) -> Result<(StatusCode, Json<ExchangeView>), ApiError> {
    require_text("public_token", &body.public_token, 512)?;
    require_text("client_user_id", &body.client_user_id, 128)?;
    let request = ItemPublicTokenExchangeRequest {
        client_id: None,
        secret: None,
        public_token: PublicToken::new(body.public_token),
    };
    let exchanged: ItemPublicTokenExchangeResponse = state
        .plaid
        .call("/item/public_token/exchange", None, &request)
        .await
        .map_err(|error| match error.plaid_error() {
            // The public token is the client's: a wrong or spent one is a 400, not a 502.
            Some(plaid) if plaid.error_code == ErrorCode::InvalidPublicToken => {
                ApiError::PlaidRefusedInput {
                    plaid_code: plaid.error_code.as_str().to_owned(),
                    message: plaid.error_message.clone(),
                }
            }
            _ => plaid_failure(error),
        })?;
    // The institution, for alerts and listings; the Item is linked even if this fails.
    let details: Option<ItemGetResponse> = state
        .plaid
        .call(
            "/item/get",
            None,
            &AccessTokenRequest {
                client_id: None,
                secret: None,
                access_token: exchanged.access_token.clone(),
            },
        )
        .await
        .ok();
    let institution_id = details
        .as_ref()
        .and_then(|d| d.item.item.institution_id.clone());
    let institution_name = details
        .as_ref()
        .and_then(|d| d.item.item.institution_name.clone());
    let plaid_item_id = exchanged.item_id.as_str().to_owned();
    let webhook_url_set = match &details {
        Some(details) => {
            ensure_webhook_url(&state, &exchanged.access_token, &details.item.item.webhook).await
        }
        None => None,
    };
    // The Item and its first sync request commit together: a linked Item always gets its
    // first sync (Plaid sends no webhook before it), however the broker is doing right now.
    let mut tx = state.db.begin().await?;
    let linked = crate::items::rows::link(
        &mut tx,
        &state.tokens,
        LinkedItem {
            plaid_item_id: &plaid_item_id,
            access_token: &exchanged.access_token,
            client_user_id: Some(&body.client_user_id),
            institution_id: institution_id.as_deref(),
            institution_name: institution_name.as_deref(),
        },
    )
    .await
    .map_err(|error| match error {
        LinkError::OtherUser => ApiError::Conflict(
            "this Plaid Item is already linked for another client_user_id; nothing was changed"
                .into(),
        ),
        LinkError::Database(error) => error.into(),
    })?;
    let item_id = linked.id();
    if let Some(replaced) = webhook_url_set {
        crate::items::rows::note_webhook_url_set(&mut tx, item_id, replaced).await?;
    }
    let (first_sync, queue) = state
        .sync_requests
        .prepare(&plaid_item_id, SyncTrigger::Exchange);
    crate::outbox::enqueue_sync_request(&mut tx, &first_sync, &queue).await?;
    tx.commit().await?;
    match linked {
        Linked::New(_) => {
            tracing::info!(item.id = %item_id, plaid.item_id = %plaid_item_id, "Item linked")
        }
        Linked::Again { previous, .. } => tracing::info!(
            item.id = %item_id,
            plaid.item_id = %plaid_item_id,
            previous_status = previous.as_str(),
            "Item linked again"
        ),
    }
    let first_sync_requested = true;
    Ok((
        StatusCode::CREATED,
        Json(ExchangeView {
            item_id,
            plaid_item_id,
            status: ItemStatus::Active.as_str(),
            first_sync_requested,
        }),
    ))
}

/// Makes Plaid send the Item's webhooks to plaidhook. An Item created without `webhook` (e.g.
/// `/sandbox/public_token/create` without `options.webhook`), or pointed at another URL, would
/// sync once and never be heard of again. Returns whether it was set, and whether another URL
/// was replaced (`Some(true)`); `None` when nothing was needed or Plaid refused (logged: the
/// link stands, and the scheduler's safety net still syncs the Item).
async fn ensure_webhook_url(
    state: &ApiContext,
    access_token: &AccessToken,
    current: &Option<String>,
) -> Option<bool> {
    if current.as_deref() == Some(state.webhook_url.as_str()) {
        return None;
    }
    let request = ItemWebhookUpdateRequest {
        client_id: None,
        secret: None,
        access_token: access_token.clone(),
        webhook: Some(state.webhook_url.clone()),
    };
    let updated: Result<ItemWebhookUpdateResponse, _> = state
        .plaid
        .call("/item/webhook/update", None, &request)
        .await;
    match updated {
        Ok(_) => Some(current.as_deref().is_some_and(|url| !url.is_empty())),
        Err(error) => {
            tracing::warn!(error = %error, "could not set the Item's webhook URL at Plaid");
            None
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSuccess {
    /// Link's `link_session_id`, kept in the log for support.
    #[serde(default)]
    pub link_session_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LinkSuccessView {
    pub item_id: uuid::Uuid,
    pub previous_status: ItemStatus,
    pub status: ItemStatus,
    /// Whether a sync was requested (the Item is healthy).
    pub sync_requested: bool,
}

pub async fn link_success(
    State(state): State<ApiState>,
    Path(item_id): Path<String>,
    body: Bytes,
) -> Result<Json<LinkSuccessView>, ApiError> {
    let item_id = parse_item_id(&item_id)?;
    let body: LinkSuccess = optional_body(&body)?;
    tracing::info!(item.id = %item_id, link.session_id = body.link_session_id.as_deref().unwrap_or("-"), "Link success reported");
    let reconciled = state
        .reconciler
        .reconcile(item_id, Signal::LinkSuccess, StatusSource::Api, None)
        .await
        .map_err(|error| match error {
            ReconcileError::NotFound(_) => ApiError::NotFound,
            ReconcileError::Plaid(error) => plaid_failure(error),
            ReconcileError::Database(error) => error.into(),
            ReconcileError::Credentials(error) => error.into(),
        })?;
    if reconciled.from == ItemStatus::Removed {
        return Err(ApiError::Conflict("the Item was removed".into()));
    }
    let healthy = matches!(
        reconciled.to,
        ItemStatus::Active | ItemStatus::PendingExpiration
    );
    if healthy {
        state
            .sync_requests
            .request_after_repair(&reconciled.plaid_item_id)
            .await;
    }
    Ok(Json(LinkSuccessView {
        item_id,
        previous_status: reconciled.from,
        status: reconciled.to,
        sync_requested: healthy,
    }))
}
