//! The `transactions.synced` events a sync writes to the outbox, in its own transaction.
//!
//! One run's changes go out as one event, or as numbered chunks of at most
//! `sync.event_chunk_size` transactions for a large run (an initial sync of 50,000 would be tens
//! of megabytes in one message). Each event has its own id, assigned when the run commits and
//! carried as the AMQP `message_id` on every relay attempt, so subscribers de-duplicate on it.
//! A run that changed nothing writes no event, unless it reset the cursor: then one event says
//! so, and its `removed` lists what the full re-sync pruned. The schema is documented in the
//! README.

use chrono::Utc;
use sqlx::{Postgres, Transaction as PgTransaction};
use uuid::Uuid;

use super::staging::Totals;
use crate::messages::events::{SyncTotals, TransactionsSynced};
use crate::messages::Event;

/// The run the events describe.
pub struct SyncedRun<'a> {
    pub item_id: Uuid,
    pub plaid_item_id: &'a str,
    pub sync_run_id: Uuid,
    pub trigger: &'a str,
    pub cursor_reset: bool,
}

/// Writes the run's events from its staged rows; returns how many.
///
/// Each chunk is one statement that reads the next `chunk_size` staged rows in event order
/// (added, modified, removed, each by transaction id in byte order: the staging index's order)
/// and inserts the event document built by PostgreSQL from them: Plaid's objects go from the
/// staged jsonb into the event without passing through the worker. The document is the one
/// [`crate::outbox::enqueue`] writes for [`Event::TransactionsSynced`]. It is built as `json`
/// text, which the outbox stores and the relay publishes as is: `json_agg` appends each
/// object's text, where `jsonb_agg` would rebuild every object in binary form only for the
/// relay to print it again.
pub async fn enqueue_synced(
    tx: &mut PgTransaction<'_, Postgres>,
    run: &SyncedRun<'_>,
    totals: Totals,
    chunk_size: usize,
) -> Result<usize, sqlx::Error> {
    // A run that changed nothing says nothing, unless it was a reset: subscribers must learn
    // that the Item was re-read in full even when it came back the same.
    if totals.is_empty() {
        if !run.cursor_reset {
            return Ok(0);
        }
        let data = TransactionsSynced {
            plaid_item_id: run.plaid_item_id,
            sync_run_id: run.sync_run_id,
            trigger: run.trigger,
            chunk: 1,
            chunks: 1,
            cursor_reset: run.cursor_reset,
            totals: &SyncTotals {
                added: 0,
                modified: 0,
                removed: 0,
            },
            added: Vec::new(),
            modified: Vec::new(),
            removed: Vec::new(),
        };
        crate::outbox::enqueue(tx, Some(run.item_id), &Event::TransactionsSynced(data)).await?;
        return Ok(1);
    }
    let chunk_size = chunk_size.max(1);
    let chunks = totals.total().div_ceil(chunk_size);
    // Keyset over the staging index: after (change, transaction id) of the previous chunk's last.
    let mut after: (String, String) = (String::new(), String::new());
    for chunk in 1..=chunks {
        let id = Uuid::now_v7();
        let last: (String, String) = sqlx::query_as(CHUNK)
            .bind(run.sync_run_id)
            .bind(&after.0)
            .bind(&after.1)
            .bind(chunk_size as i64)
            .bind(id)
            .bind(sqlx::types::Json(Utc::now()))
            .bind(run.item_id)
            .bind(run.plaid_item_id)
            .bind(run.trigger)
            .bind(chunk as i64)
            .bind(chunks as i64)
            .bind(run.cursor_reset)
            .bind(totals.added as i64)
            .bind(totals.modified as i64)
            .bind(totals.removed as i64)
            .fetch_one(&mut **tx)
            .await?;
        after = last;
    }
    Ok(chunks)
}

/// One chunk's event, from the staged rows after ($2, $3); returns the chunk's last key.
const CHUNK: &str = r#"
with chunk as (
    select change, transaction_id, account_id, raw from sync_staging
    where run_id = $1 and (change, transaction_id collate "C") > ($2::text, $3::text collate "C")
    order by change, transaction_id collate "C"
    limit $4
), event as (
    insert into outbox (event_id, routing_key, payload)
    select $5::uuid, 'transactions.synced', json_build_object(
        'id', $5::uuid,
        'type', 'transactions.synced',
        'occurred_at', $6::jsonb,
        'item_id', $7::uuid,
        'data', json_build_object(
            'plaid_item_id', $8::text,
            'sync_run_id', $1::uuid,
            'trigger', $9::text,
            'chunk', $10::bigint,
            'chunks', $11::bigint,
            'cursor_reset', $12::boolean,
            'totals', json_build_object(
                'added', $13::bigint, 'modified', $14::bigint, 'removed', $15::bigint),
            'added', coalesce((select json_agg(raw order by transaction_id collate "C")
                               from chunk where change = 'a'), '[]'::json),
            'modified', coalesce((select json_agg(raw order by transaction_id collate "C")
                                  from chunk where change = 'm'), '[]'::json),
            'removed', coalesce((select json_agg(json_build_object(
                                            'transaction_id', transaction_id,
                                            'account_id', account_id)
                                        order by transaction_id collate "C")
                                 from chunk where change = 'r'), '[]'::json)))
)
select change, transaction_id from chunk
order by change desc, transaction_id collate "C" desc
limit 1
"#;
