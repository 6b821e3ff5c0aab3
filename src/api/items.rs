//! Items through the API: list (filtered by status, the app's user id or Plaid's item id),
//! read one in full, remove.
//!
//! An Item's view never carries its access token; it carries what an app or on-call needs:
//! status and last error, consent expiry, last sync, accounts and balances (money as decimal
//! strings), the status history and open alerts.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{optional_body, parse_item_id, plaid_failure, ApiContext, ApiState};
use crate::error::ApiError;
use crate::items::{rows, ItemStatus, StatusSource};
use crate::plaid::{ErrorCode, ItemRemoveRequest, RequestIdResponse};

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 500;

#[derive(Debug, Serialize)]
pub struct ItemView {
    pub id: Uuid,
    pub plaid_item_id: String,
    pub client_user_id: Option<String>,
    pub institution_id: Option<String>,
    pub institution_name: Option<String>,
    pub status: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub consent_expires_at: Option<DateTime<Utc>>,
    pub new_accounts_available: bool,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_webhook_at: Option<DateTime<Utc>>,
    pub removed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub status: Option<String>,
    /// The app's own user id, as given when the Item was exchanged.
    pub client_user_id: Option<String>,
    /// Plaid's `item_id` (what Plaid's webhooks and dashboard name).
    pub plaid_item_id: Option<String>,
    pub limit: Option<i64>,
    /// The last id of the previous page (ids grow with creation time).
    pub after: Option<Uuid>,
}

#[derive(Debug, Serialize)]
pub struct ItemList {
    pub items: Vec<ItemView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<Uuid>,
}

pub async fn list(
    State(state): State<ApiState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ItemList>, ApiError> {
    let Query(params) = params.map_err(super::query_rejection)?;
    if let Some(status) = &params.status {
        if ItemStatus::parse(status).is_none() {
            return Err(ApiError::BadRequest(format!(
                "`status` must be one of {} (got `{status}`)",
                ItemStatus::listed()
            )));
        }
    }
    for (name, value) in [
        ("client_user_id", &params.client_user_id),
        ("plaid_item_id", &params.plaid_item_id),
    ] {
        if let Some(value) = value {
            super::require_text(name, value, 128)?;
        }
    }
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {MAX_PAGE}"
        )));
    }
    let items = sqlx::query_as!(
        ItemView,
        "select id, plaid_item_id, client_user_id, institution_id, institution_name, status,
                error_code, error_message, consent_expires_at, new_accounts_available,
                last_synced_at, last_webhook_at, removed_at, created_at, updated_at
         from items
         where ($1::text is null or status = $1) and ($2::uuid is null or id > $2)
           and ($4::text is null or client_user_id = $4)
           and ($5::text is null or plaid_item_id = $5)
         order by id limit $3",
        params.status,
        params.after,
        limit,
        params.client_user_id,
        params.plaid_item_id,
    )
    .fetch_all(&state.db)
    .await?;
    let next_after = (items.len() as i64 == limit)
        .then(|| items.last().map(|item| item.id))
        .flatten();
    Ok(Json(ItemList { items, next_after }))
}

#[derive(Debug, Serialize)]
pub struct BalancesView {
    pub available: Option<Decimal>,
    pub current: Option<Decimal>,
    pub limit: Option<Decimal>,
    pub iso_currency_code: Option<String>,
    pub unofficial_currency_code: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct AccountView {
    pub account_id: String,
    pub name: String,
    pub official_name: Option<String>,
    pub mask: Option<String>,
    #[serde(rename = "type")]
    pub account_type: String,
    pub subtype: Option<String>,
    pub balances: BalancesView,
}

#[derive(Debug, Serialize)]
pub struct SyncRunView {
    pub id: Uuid,
    pub trigger: String,
    pub outcome: String,
    pub added: i32,
    pub modified: i32,
    pub removed: i32,
    pub error_code: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct HistoryView {
    pub from_status: Option<String>,
    pub to_status: String,
    pub cause: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub source: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct AlertView {
    pub id: Uuid,
    pub cause: String,
    pub error_code: Option<String>,
    pub message: String,
    pub raised_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct ItemDetail {
    #[serde(flatten)]
    pub item: ItemView,
    pub accounts: Vec<AccountView>,
    pub last_sync: Option<SyncRunView>,
    pub open_alerts: Vec<AlertView>,
    /// Newest first, at most 100 entries.
    pub history: Vec<HistoryView>,
}

/// The Item's accounts with their stored balances.
pub async fn accounts_of(state: &ApiContext, item_id: Uuid) -> Result<Vec<AccountView>, ApiError> {
    let rows = sqlx::query!(
        "select account_id, name, official_name, mask, type as account_type, subtype,
                balance_available, balance_current, balance_limit, iso_currency_code,
                unofficial_currency_code, balances_updated_at
         from accounts where item_id = $1 order by account_id",
        item_id
    )
    .fetch_all(&state.db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| AccountView {
            account_id: row.account_id,
            name: row.name,
            official_name: row.official_name,
            mask: row.mask,
            account_type: row.account_type,
            subtype: row.subtype,
            balances: BalancesView {
                available: row.balance_available,
                current: row.balance_current,
                limit: row.balance_limit,
                iso_currency_code: row.iso_currency_code,
                unofficial_currency_code: row.unofficial_currency_code,
                updated_at: row.balances_updated_at,
            },
        })
        .collect())
}

async fn item_view(state: &ApiContext, item_id: Uuid) -> Result<ItemView, ApiError> {
    sqlx::query_as!(
        ItemView,
        "select id, plaid_item_id, client_user_id, institution_id, institution_name, status,
                error_code, error_message, consent_expires_at, new_accounts_available,
                last_synced_at, last_webhook_at, removed_at, created_at, updated_at
         from items where id = $1",
        item_id
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound)
}

pub async fn get(
    State(state): State<ApiState>,
    Path(item_id): Path<String>,
) -> Result<Json<ItemDetail>, ApiError> {
    let item_id = parse_item_id(&item_id)?;
    let item = item_view(&state, item_id).await?;
    let accounts = accounts_of(&state, item_id).await?;
    let last_sync = sqlx::query_as!(
        SyncRunView,
        "select id, trigger, outcome, added, modified, removed, error_code, started_at, finished_at
         from sync_runs where item_id = $1 order by started_at desc limit 1",
        item_id
    )
    .fetch_optional(&state.db)
    .await?;
    let open_alerts = sqlx::query_as!(
        AlertView,
        "select id, cause, error_code, message, raised_at from alerts
         where item_id = $1 and resolved_at is null order by raised_at",
        item_id
    )
    .fetch_all(&state.db)
    .await?;
    let history = sqlx::query_as!(
        HistoryView,
        "select from_status, to_status, cause, error_code, error_message, source,
                created_at as at
         from item_status_history where item_id = $1 order by id desc limit 100",
        item_id
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(ItemDetail {
        item,
        accounts,
        last_sync,
        open_alerts,
        history,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveRequest {
    /// Plaid's `reason_code` for `/item/remove` (optional).
    #[serde(default)]
    pub reason_code: Option<String>,
    /// Free text for Plaid, at most 512 characters.
    #[serde(default)]
    pub reason_note: Option<String>,
}

/// `/item/remove` at Plaid, then `removed` here (its alerts resolve). Removing a removed Item
/// answers the same again.
pub async fn remove(
    State(state): State<ApiState>,
    Path(item_id): Path<String>,
    body: Bytes,
) -> Result<Json<ItemView>, ApiError> {
    let item_id = parse_item_id(&item_id)?;
    let body: RemoveRequest = optional_body(&body)?;
    if body
        .reason_note
        .as_ref()
        .is_some_and(|n| n.chars().count() > 512)
    {
        return Err(ApiError::BadRequest(
            "`reason_note` must be at most 512 characters".into(),
        ));
    }
    let item = item_view(&state, item_id).await?;
    if item.status == ItemStatus::Removed.as_str() {
        return Ok(Json(item));
    }
    let access_token = state.credentials(item_id).await?.access_token;
    let request = ItemRemoveRequest {
        client_id: None,
        secret: None,
        access_token,
        reason_code: body.reason_code,
        reason_note: body.reason_note,
    };
    let removed: Result<RequestIdResponse, _> = state
        .plaid
        .call("/item/remove", Some(item_id), &request)
        .await;
    if let Err(error) = removed {
        // Already gone at Plaid: finish the removal here.
        let gone = error
            .plaid_error()
            .is_some_and(|e| e.error_code == ErrorCode::ItemNotFound);
        if !gone {
            return Err(plaid_failure(error));
        }
    }
    let mut tx = state.db.begin().await?;
    rows::mark_removed(&mut tx, item_id, "removed_by_api", None, StatusSource::Api).await?;
    tx.commit().await?;
    tracing::info!(item.id = %item_id, "Item removed");
    item_view(&state, item_id).await.map(Json)
}
