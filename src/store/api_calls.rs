//! `plaid_api_calls`: every call plaidhook made to Plaid, with Plaid's `request_id` (what Plaid
//! support asks for), its outcome and duration. The Plaid client is handed a [`PgCallRecorder`]
//! and knows nothing of this table.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use sqlx::PgPool;

use crate::plaid::client::{CallRecord, CallRecorder};

/// Records Plaid calls in `plaid_api_calls`.
pub struct PgCallRecorder {
    db: PgPool,
}

impl PgCallRecorder {
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }
}

impl CallRecorder for PgCallRecorder {
    fn record(&self, call: CallRecord) -> BoxFuture<'_, ()> {
        insert(&self.db, call).boxed()
    }
}

/// How long recording a call may add to it: with the database away, a webhook's key fetch must
/// not wait out the pool's acquire timeout (Plaid gives up on a delivery after 10 s).
const CALL_LOG_DEADLINE: Duration = Duration::from_millis(500);

/// Best effort: losing a call-log row must never fail, nor noticeably delay, the call it describes.
async fn insert(pool: &PgPool, call: CallRecord) {
    let insert = sqlx::query!(
        "insert into plaid_api_calls (method, item_id, request_id, http_status, error_type, error_code, duration_ms)
         values ($1, $2, $3, $4, $5, $6, $7)",
        call.method,
        call.item,
        call.request_id,
        call.http_status,
        call.error_type,
        call.error_code,
        call.duration_ms,
    )
    .execute(pool);
    match tokio::time::timeout(CALL_LOG_DEADLINE, insert).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::warn!(plaid.method = call.method, error = %error, "could not record the Plaid call")
        }
        Err(_) => tracing::warn!(
            plaid.method = call.method,
            "recording the Plaid call timed out"
        ),
    }
}
