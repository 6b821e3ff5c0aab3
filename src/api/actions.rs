//! Things an app asks plaidhook to do now: fresh balances, and a manual sync.
//!
//! - `POST /api/v1/items/{id}/balances/refresh` calls `/accounts/balance/get` (real-time, slow:
//!   it runs under `plaid.balance_timeout_secs`), stores the balances and returns the accounts.
//! - `POST /api/v1/items/{id}/sync` calls `/transactions/refresh` (Plaid fetches from the bank)
//!   and then requests a sync; at most one per Item per `api.manual_sync_min_interval_secs`,
//!   claimed atomically in the database so replicas share the limit.
//!
//! An ITEM_ERROR from Plaid on either call is recorded on the Item (status, history, alert)
//! before the client hears about it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use uuid::Uuid;

use super::items::{accounts_of, AccountView};
use super::{database, parse_item_id, plaid_failure, record_item_error};
use crate::app::AppState;
use crate::error::ApiError;
use crate::items::ItemStatus;
use crate::plaid::{
    AccessTokenRequest, AccountsGetRequest, AccountsGetResponse, RequestIdResponse,
};
use crate::sync::{request_sync, SyncTrigger};

#[derive(Debug, Serialize)]
pub struct BalancesRefreshed {
    pub item_id: Uuid,
    pub accounts: Vec<AccountView>,
}

/// The Item must exist and not be removed.
async fn usable_item(state: &AppState, item_id: Uuid) -> Result<(), ApiError> {
    let status = sqlx::query_scalar!("select status from items where id = $1", item_id)
        .fetch_optional(&state.db)
        .await
        .map_err(database)?
        .ok_or(ApiError::NotFound)?;
    if status == ItemStatus::Removed.as_str() {
        return Err(ApiError::Conflict("the Item was removed".into()));
    }
    Ok(())
}

pub async fn refresh_balances(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
) -> Result<Json<BalancesRefreshed>, ApiError> {
    let item_id = parse_item_id(&item_id)?;
    usable_item(&state, item_id).await?;
    let (_, access_token) = crate::store::items::credentials(&state.db, &state.tokens, item_id)
        .await
        .map_err(ApiError::Internal)?;
    let request = AccountsGetRequest {
        client_id: None,
        secret: None,
        access_token,
        options: None,
    };
    let response: AccountsGetResponse = match state
        .plaid
        .call_with_timeout(
            "/accounts/balance/get",
            Some(item_id),
            &request,
            state.settings.plaid.balance_timeout(),
        )
        .await
    {
        Ok(response) => response,
        Err(error) => {
            record_item_error(&state, item_id, &error).await?;
            return Err(plaid_failure(error));
        }
    };
    let mut tx = state.db.begin().await.map_err(database)?;
    for account in &response.accounts {
        let balances = &account.balances;
        sqlx::query!(
            "insert into accounts (account_id, item_id, name, official_name, mask, type, subtype,
                                   balance_available, balance_current, balance_limit,
                                   iso_currency_code, unofficial_currency_code, balances_updated_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now())
             on conflict (account_id) do update set
                 name = excluded.name, official_name = excluded.official_name,
                 mask = excluded.mask, type = excluded.type, subtype = excluded.subtype,
                 balance_available = excluded.balance_available,
                 balance_current = excluded.balance_current,
                 balance_limit = excluded.balance_limit,
                 iso_currency_code = excluded.iso_currency_code,
                 unofficial_currency_code = excluded.unofficial_currency_code,
                 balances_updated_at = now()
             where accounts.item_id = excluded.item_id",
            account.account_id.as_str(),
            item_id,
            account.name,
            account.official_name,
            account.mask,
            account.account_type.as_str(),
            account.subtype.as_ref().map(|s| s.as_str().to_owned()),
            balances.available,
            balances.current,
            balances.limit,
            balances.iso_currency_code,
            balances.unofficial_currency_code,
        )
        .execute(&mut *tx)
        .await
        .map_err(database)?;
    }
    tx.commit().await.map_err(database)?;
    Ok(Json(BalancesRefreshed {
        item_id,
        accounts: accounts_of(&state, item_id).await?,
    }))
}

#[derive(Debug, Serialize)]
pub struct SyncRequested {
    pub item_id: Uuid,
    pub sync_requested: bool,
}

pub async fn manual_sync(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
) -> Result<(StatusCode, Json<SyncRequested>), ApiError> {
    let item_id = parse_item_id(&item_id)?;
    usable_item(&state, item_id).await?;
    let min_interval = state.settings.api.manual_sync_min_interval().as_secs_f64();
    let claimed = sqlx::query_scalar!(
        "update items set manual_sync_requested_at = now()
         where id = $1 and (manual_sync_requested_at is null
                            or manual_sync_requested_at <= now() - make_interval(secs => $2))
         returning plaid_item_id",
        item_id,
        min_interval,
    )
    .fetch_optional(&state.db)
    .await
    .map_err(database)?;
    let Some(plaid_item_id) = claimed else {
        return Err(ApiError::RateLimited(format!(
            "a manual sync of this Item was requested less than {} seconds ago",
            state.settings.api.manual_sync_min_interval_secs
        )));
    };
    let (_, access_token) = crate::store::items::credentials(&state.db, &state.tokens, item_id)
        .await
        .map_err(ApiError::Internal)?;
    let refresh: Result<RequestIdResponse, _> = state
        .plaid
        .call(
            "/transactions/refresh",
            Some(item_id),
            &AccessTokenRequest {
                client_id: None,
                secret: None,
                access_token,
            },
        )
        .await;
    if let Err(error) = refresh {
        record_item_error(&state, item_id, &error).await?;
        return Err(plaid_failure(error));
    }
    request_sync(
        &state.publisher,
        state.settings.plaid.environment.as_str(),
        &plaid_item_id,
        SyncTrigger::Manual,
    )
    .await
    .map_err(|error| ApiError::Unavailable(anyhow::Error::new(error).context("sync request")))?;
    tracing::info!(item.id = %item_id, "manual sync requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncRequested {
            item_id,
            sync_requested: true,
        }),
    ))
}
