//! Parked spool rows through the API: webhooks the broker kept refusing, and replaying them.
//!
//! The same operations as `plaidhook spool list|replay`. A parked webhook was answered 200 and
//! is still in PostgreSQL, body and all; replaying puts it back in line for the spool relay.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::ApiState;
use crate::error::ApiError;
use crate::webhook::spool::{self, ParkedWebhook};

/// The most rows one list or replay call handles.
const MAX_BATCH: i64 = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ParkedSpool {
    /// Parked rows in all.
    depth: i64,
    /// The oldest of them, at most `limit` (default 20).
    webhooks: Vec<ParkedWebhook>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Replay at most this many (default and maximum 1,000 per call).
    #[serde(default, deserialize_with = "super::whole_number")]
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Replayed {
    replayed: u64,
    /// Still parked after this call.
    depth: i64,
}

/// `GET /api/v1/spool/parked?limit=N`
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ParkedSpool>, ApiError> {
    let Query(query) = query.map_err(super::query_rejection)?;
    let limit = super::checked_limit(query.limit, 20, MAX_BATCH)?;
    let depth = spool::parked_depth(&state.db).await?;
    let webhooks = spool::parked(&state.db, limit).await?;
    Ok(Json(ParkedSpool { depth, webhooks }))
}

/// `POST /api/v1/spool/parked/replay` `{limit?}`
pub async fn replay(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<Json<Replayed>, ApiError> {
    let request: ReplayRequest = super::optional_body(&body)?;
    let limit = super::checked_limit(request.limit, MAX_BATCH, MAX_BATCH)?;
    let replayed = spool::replay_parked(&state.db, limit).await?;
    let depth = spool::parked_depth(&state.db).await?;
    tracing::info!(replayed, "parked spool rows replayed through the API");
    Ok(Json(Replayed { replayed, depth }))
}
