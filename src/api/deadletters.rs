//! Dead letters through the API: what parked in `plaidhook.dead`, and replaying it.
//!
//! The same operations as `plaidhook dead-letters list|replay`, for operators who work through
//! the API rather than a shell on a plaidhook host.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{ApiContext, ApiState};
use crate::deadletters::{self, ParkedMessage};
use crate::error::ApiError;

/// The most messages one list or replay call handles.
const MAX_BATCH: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct DeadLetters {
    /// Messages waiting in the parking queue.
    depth: u32,
    /// The oldest of them, at most `limit` (default 20); they stay parked.
    messages: Vec<ParkedMessage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Replay at most this many (default and maximum 1,000 per call).
    #[serde(default, deserialize_with = "super::whole_number")]
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct Replayed {
    replayed: usize,
    /// Still parked after this call.
    depth: u32,
}

async fn channel(state: &ApiContext) -> Result<lapin::Channel, ApiError> {
    let connection = state
        .broker
        .connection()
        .ok_or_else(|| ApiError::Unavailable(anyhow::anyhow!("not connected to RabbitMQ")))?;
    state
        .publisher
        .ensure_topology()
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    connection
        .create_channel()
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))
}

/// `GET /api/v1/dead-letters?limit=N`
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeadLetters>, ApiError> {
    let Query(query) = query.map_err(super::query_rejection)?;
    let limit = super::checked_limit(query.limit, 20, MAX_BATCH)?;
    let channel = channel(&state).await?;
    let depth = deadletters::depth(&channel, state.publisher.topology())
        .await
        .map_err(ApiError::Unavailable)?;
    let messages = deadletters::list(&channel, state.publisher.topology(), limit)
        .await
        .map_err(ApiError::Unavailable)?;
    let _ = channel.close(200, "done".into()).await;
    Ok(Json(DeadLetters { depth, messages }))
}

/// `POST /api/v1/dead-letters/replay` `{limit?}`
pub async fn replay(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<Json<Replayed>, ApiError> {
    let request: ReplayRequest = super::optional_body(&body)?;
    let limit = super::checked_limit(request.limit, MAX_BATCH, MAX_BATCH)?;
    let channel = channel(&state).await?;
    let replayed = deadletters::replay(&channel, &state.publisher, limit, false)
        .await
        .map_err(ApiError::Unavailable)?;
    let depth = deadletters::depth(&channel, state.publisher.topology())
        .await
        .map_err(ApiError::Unavailable)?;
    tracing::info!(replayed, "dead letters replayed through the API");
    let _ = channel.close(200, "done".into()).await;
    Ok(Json(Replayed { replayed, depth }))
}
