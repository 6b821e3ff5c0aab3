//! The `sync_runs` rows: one per run, opened as `running` when the run starts (so runs in flight
//! and runs that died are visible) and closed with what it did, its outcome, and Plaid's
//! request ids, the ones Plaid support asks for.

use std::time::Duration;

use sqlx::PgConnection;
use uuid::Uuid;

use super::fetch::Progress;
use crate::crypto::SealedToken;
use crate::telemetry::names;

/// How a run ended (the `sync_runs.outcome` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded,
    /// A transient failure; the request is retried through the backoff queues.
    Retrying,
    /// A permanent failure; the request is parked.
    Failed,
    /// Plaid reported an Item error; recorded on the Item.
    ItemError,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::ItemError => "item_error",
        }
    }
}

/// A run just opened, and what it starts from.
pub struct Begun {
    pub run_id: Uuid,
    pub plaid_item_id: String,
    /// The Item's access token, still sealed: opening it may fail, and that is the run's
    /// failure to record.
    pub sealed_token: SealedToken,
    /// The cursor the run starts from, exactly as stored.
    pub stored_cursor: Option<String>,
}

/// Takes the Item's dirty mark and, if it was set, opens a run: one statement (a sync's first
/// round trip). Called with the Item's lock held, so a run of this Item still marked `running`
/// belongs to a worker that died mid-sync; it is closed as failed, and what it staged deleted
/// (every read of staged rows names its run, so they were never applied). `None`: the mark was
/// not set, no run is due.
pub async fn begin(
    conn: &mut PgConnection,
    item_id: Uuid,
    trigger: &str,
) -> Result<Option<Begun>, sqlx::Error> {
    let run_id = Uuid::now_v7();
    let row = sqlx::query!(
        r#"with taken as (
               update items set sync_requested_at = null, last_sync_started_at = now()
               where id = $1 and sync_requested_at is not null
               returning plaid_item_id, access_token_ciphertext, access_token_nonce,
                         access_token_key_id, sync_cursor
           ), lost as (
               update sync_runs set outcome = 'failed', error_code = 'WORKER_LOST',
                      error_message = 'the worker running this sync stopped before it finished',
                      finished_at = now()
               where item_id = $1 and outcome = 'running' and exists (select 1 from taken)
               returning id
           ), swept as (
               delete from sync_staging where run_id in (select id from lost)
           ), opened as (
               insert into sync_runs (id, item_id, trigger) select $2, $1, $3 from taken
           )
           select plaid_item_id, access_token_ciphertext, access_token_nonce,
                  access_token_key_id, sync_cursor, (select count(*) from lost) as "lost!"
           from taken"#,
        item_id,
        run_id,
        trigger
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if row.lost > 0 {
        tracing::warn!(item.id = %item_id, "a previous sync of this Item died mid-run; resuming from its stored cursor");
    }
    Ok(Some(Begun {
        run_id,
        plaid_item_id: row.plaid_item_id,
        sealed_token: SealedToken {
            key_id: row.access_token_key_id,
            nonce: row.access_token_nonce,
            ciphertext: row.access_token_ciphertext,
        },
        stored_cursor: row.sync_cursor,
    }))
}

/// What a finished run records.
pub struct RunRecord<'a> {
    pub outcome: RunOutcome,
    pub progress: &'a Progress,
    pub added: usize,
    pub modified: usize,
    pub removed: usize,
    pub error_code: Option<&'a str>,
    pub error_message: Option<&'a str>,
    /// Time spent fetching from Plaid, rate-limit waits included.
    pub fetch: Duration,
}

fn as_i32(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
}

fn millis(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

/// Closes a run; on success this runs inside the sync's transaction, as its last statement.
/// `finished_at` is the statement's clock, not the transaction's start (`now()`), so a run's
/// span covers its writes and two runs of one Item can be checked not to overlap.
pub async fn finish(
    conn: &mut PgConnection,
    run_id: Uuid,
    record: RunRecord<'_>,
) -> Result<(), sqlx::Error> {
    let progress = record.progress;
    sqlx::query!(
        "update sync_runs set outcome = $2, pages = $3, pagination_restarts = $4, cursor_reset = $5,
                added = $6, modified = $7, removed = $8, error_code = $9, error_message = $10,
                plaid_request_ids = $11, fetch_ms = $12, rate_limit_wait_ms = $13,
                staging_ms = $14, finished_at = clock_timestamp()
         where id = $1",
        run_id,
        record.outcome.as_str(),
        progress.pages.min(i32::MAX as u32) as i32,
        progress.restarts.min(i32::MAX as u32) as i32,
        progress.cursor_reset,
        as_i32(record.added),
        as_i32(record.modified),
        as_i32(record.removed),
        record.error_code,
        record.error_message,
        &progress.request_ids,
        millis(record.fetch),
        millis(progress.rate_limit_wait),
        millis(progress.staging),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Counts a finished run in the metrics.
pub fn observe(outcome: RunOutcome, duration: Duration) {
    metrics::counter!(names::SYNC_RUNS, "outcome" => outcome.as_str()).increment(1);
    metrics::histogram!(names::SYNC_RUN_DURATION, "outcome" => outcome.as_str())
        .record(duration.as_secs_f64());
}
