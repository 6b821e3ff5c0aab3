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
use super::{parse_item_id, plaid_failure, record_item_error, ApiContext, ApiState};
use crate::error::ApiError;
use crate::items::accounts::{self, BalancesAt};
use crate::items::{rows, ItemStatus};
use crate::messages::SyncTrigger;
use crate::plaid::{AccessTokenRequest, AccountsGetRequest, AccountsPage, RequestIdResponse};

#[derive(Debug, Serialize)]
pub struct BalancesRefreshed {
    pub item_id: Uuid,
    pub accounts: Vec<AccountView>,
}

/// The Item must exist and not be removed.
async fn usable_item(state: &ApiContext, item_id: Uuid) -> Result<(), ApiError> {
    let status = rows::status_of(&state.db, item_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if status == ItemStatus::Removed {
        return Err(ApiError::Conflict("the Item was removed".into()));
    }
    Ok(())
}

pub async fn refresh_balances(
    State(state): State<ApiState>,
    Path(item_id): Path<String>,
) -> Result<Json<BalancesRefreshed>, ApiError> {
    let item_id = parse_item_id(&item_id)?;
    usable_item(&state, item_id).await?;
    let access_token = state.credentials(item_id).await?.access_token;
    let request = AccountsGetRequest {
        client_id: None,
        secret: None,
        access_token,
        options: None,
    };
    let response: AccountsPage = match state
        .plaid
        .call_with_timeout(
            "/accounts/balance/get",
            Some(item_id),
            &request,
            state.balance_timeout,
        )
        .await
    {
        Ok(response) => response,
        Err(error) => {
            record_item_error(&state, item_id, &error).await?;
            return Err(plaid_failure(error));
        }
    };
    let mut tx = state.db.begin().await?;
    accounts::upsert(&mut tx, item_id, &response.accounts, BalancesAt::Now).await?;
    tx.commit().await?;
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
    State(state): State<ApiState>,
    Path(item_id): Path<String>,
) -> Result<(StatusCode, Json<SyncRequested>), ApiError> {
    let item_id = parse_item_id(&item_id)?;
    usable_item(&state, item_id).await?;
    let min_interval = state.api.manual_sync_min_interval.as_secs_f64();
    let claimed = sqlx::query_scalar!(
        "update items set manual_sync_requested_at = now()
         where id = $1 and (manual_sync_requested_at is null
                            or manual_sync_requested_at <= now() - make_interval(secs => $2))
         returning plaid_item_id",
        item_id,
        min_interval,
    )
    .fetch_optional(&state.db)
    .await?;
    let Some(plaid_item_id) = claimed else {
        // How long until the interval since the last manual sync has passed.
        let wait = sqlx::query_scalar!(
            r#"select greatest(0, extract(epoch from manual_sync_requested_at
                                        + make_interval(secs => $2) - now()))::float8 as "wait!"
               from items where id = $1"#,
            item_id,
            min_interval,
        )
        .fetch_one(&state.db)
        .await?;
        return Err(ApiError::RateLimited {
            message: format!(
                "a manual sync of this Item was requested less than {} seconds ago",
                state.api.manual_sync_min_interval.as_secs()
            ),
            retry_after: std::time::Duration::from_secs_f64(wait.max(0.0)),
        });
    };
    let access_token = state.credentials(item_id).await?.access_token;
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
    state
        .sync_requests
        .request(&plaid_item_id, SyncTrigger::Manual)
        .await
        .map_err(|error| {
            ApiError::Unavailable(anyhow::Error::new(error).context("sync request"))
        })?;
    tracing::info!(item.id = %item_id, "manual sync requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncRequested {
            item_id,
            sync_requested: true,
        }),
    ))
}
