//! Applying a fetched sync: one PostgreSQL transaction that upserts added and modified
//! transactions, deletes removed ones, stores accounts and balances, stores the new cursor,
//! closes the sync run and writes the `transactions.synced` events. All of it or none of it:
//! a sync that dies before the commit leaves the Item exactly as it was, cursor included, and
//! the next one fetches the same changes again.
//!
//! The changes are the run's rows of `sync_staging`, staged page by page during the fetch and
//! merged there (one row per transaction, so `ON CONFLICT DO UPDATE` never meets a key twice):
//! the transaction applies them set-based, one statement for the removals and upserts
//! together, and builds its events from them, without the worker ever holding the run.

use std::time::Duration;

use sqlx::{Connection, PgConnection, Postgres, Transaction as PgTransaction};
use uuid::Uuid;

use super::events;
use super::fetch::{Fetched, Progress};
use super::runs::{self, RunOutcome, RunRecord};
use super::staging::{self, Totals};
use crate::config::SyncSettings;
use crate::items::accounts::{self, BalancesAt};
use crate::messages::ItemStatus;
use crate::telemetry::names;

/// Who and what a commit is for.
pub struct Commit<'a> {
    pub item_id: Uuid,
    pub plaid_item_id: &'a str,
    pub run_id: Uuid,
    pub trigger: &'a str,
    /// The cursor the fetch began from, exactly as stored: the commit only applies if it is
    /// still the stored one.
    pub stored_cursor: Option<&'a str>,
    pub progress: &'a Progress,
    pub fetch: Duration,
}

/// What the commit did.
#[derive(Debug, Clone, Copy)]
pub enum Committed {
    Applied {
        added: usize,
        modified: usize,
        removed: usize,
    },
    /// The stored cursor moved since the fetch began (only possible if the Item's lock was lost
    /// with its connection); nothing was written.
    Superseded,
}

/// Applies `fetched` in one transaction on the sync's connection.
pub async fn commit(
    conn: &mut PgConnection,
    settings: &SyncSettings,
    commit: Commit<'_>,
    fetched: Fetched,
) -> Result<Committed, sqlx::Error> {
    let item_id = commit.item_id;
    let mut tx = conn.begin().await?;
    // Compare-and-set on the cursor; it also locks the Item row for the rest of the transaction.
    let status = sqlx::query_scalar!(
        r#"update items set sync_cursor = $2, last_synced_at = now()
           where id = $1 and sync_cursor is not distinct from $3
           returning status as "status: ItemStatus""#,
        item_id,
        fetched.next_cursor.as_deref(),
        commit.stored_cursor,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(status) = status else {
        tx.rollback().await?;
        return Ok(Committed::Superseded);
    };

    let write_started = std::time::Instant::now();
    let run_id = commit.run_id;
    write_transactions(&mut tx, item_id, run_id).await?;
    let mut totals = fetched.totals;
    if commit.progress.cursor_reset {
        // A full re-sync lists everything the Item has; whatever else we hold was removed
        // while our cursor was not accepted. Subscribers hear of each such removal in the
        // event, like any other, so the event stream stays equal to the database: it is staged
        // as one.
        let pruned = sqlx::query(
            "with pruned as (
                 delete from transactions t where t.item_id = $1 and not exists (
                     select 1 from sync_staging s
                     where s.run_id = $2 and s.transaction_id = t.transaction_id
                       and s.change <> 'r')
                 returning t.transaction_id, t.account_id)
             insert into sync_staging (run_id, item_id, transaction_id, change, account_id)
             select $2, $1, transaction_id, 'r', account_id from pruned
             on conflict (run_id, transaction_id) do nothing",
        )
        .bind(item_id)
        .bind(run_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tracing::info!(item.id = %item_id, pruned, "cursor reset: full re-sync applied");
        totals.removed += pruned as usize;
    }
    accounts::upsert(&mut tx, item_id, &fetched.accounts, BalancesAt::AsPlaidSays).await?;

    if matches!(status, ItemStatus::LoginRequired | ItemStatus::Error) {
        // Plaid served the Item's data: whatever was wrong with it is fixed (its alert resolves).
        crate::items::on_sync_succeeded(&mut tx, item_id).await?;
    }

    let Totals {
        added,
        modified,
        removed,
    } = totals;
    let rows_written = write_started.elapsed();
    events::enqueue_synced(
        &mut tx,
        &events::SyncedRun {
            item_id,
            plaid_item_id: commit.plaid_item_id,
            sync_run_id: commit.run_id,
            trigger: commit.trigger,
            cursor_reset: commit.progress.cursor_reset,
        },
        totals,
        settings.event_chunk_size,
    )
    .await?;
    let events_written = write_started.elapsed() - rows_written;
    // Last, so the run's finished_at (the statement's clock) covers the whole write.
    runs::finish(
        &mut tx,
        commit.run_id,
        RunRecord {
            outcome: RunOutcome::Succeeded,
            progress: commit.progress,
            added,
            modified,
            removed,
            error_code: None,
            error_message: None,
            fetch: commit.fetch,
        },
    )
    .await?;
    tx.commit().await?;
    let committed = write_started.elapsed();
    // Best effort: rows a failed clean-up leaves are swept by the Item's next run or retention.
    if let Err(error) = staging::discard(conn, run_id).await {
        tracing::warn!(item.id = %item_id, error = %error, "could not delete the run's staged rows");
    }
    tracing::debug!(
        item.id = %item_id,
        rows_ms = rows_written.as_millis() as u64,
        events_ms = events_written.as_millis() as u64,
        commit_ms = (committed - rows_written - events_written).as_millis() as u64,
        cleanup_ms = (write_started.elapsed() - committed).as_millis() as u64,
        "sync transaction written"
    );
    metrics::counter!(names::SYNC_TRANSACTIONS, "change" => "added").increment(added as u64);
    metrics::counter!(names::SYNC_TRANSACTIONS, "change" => "modified").increment(modified as u64);
    metrics::counter!(names::SYNC_TRANSACTIONS, "change" => "removed").increment(removed as u64);
    Ok(Committed::Applied {
        added,
        modified,
        removed,
    })
}

/// Deletes the run's staged removals and upserts its additions and modifications, set-based,
/// in one statement: the rows are in the database already, parsed (their `raw` jsonb
/// included), one per transaction, so the two parts never touch the same row.
async fn write_transactions(
    tx: &mut PgTransaction<'_, Postgres>,
    item_id: Uuid,
    run_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"with removed as (
               delete from transactions t using sync_staging s
               where s.run_id = $2 and s.change = 'r' and t.transaction_id = s.transaction_id
                 and t.item_id = $1
           )
           insert into transactions (transaction_id, item_id, account_id, amount, iso_currency_code,
                unofficial_currency_code, date, authorized_date, datetime, authorized_datetime, name,
                merchant_name, merchant_entity_id, payment_channel, category_primary,
                category_detailed, pending, pending_transaction_id, raw)
           select s.transaction_id, $1, s.account_id, s.amount, s.iso_currency_code,
                  s.unofficial_currency_code, s.date, s.authorized_date, s.datetime,
                  s.authorized_datetime, s.name, s.merchant_name, s.merchant_entity_id,
                  s.payment_channel, s.category_primary, s.category_detailed, s.pending,
                  s.pending_transaction_id, s.raw
           from sync_staging s
           where s.run_id = $2 and s.change <> 'r'
           on conflict (transaction_id) do update set
                account_id = excluded.account_id,
                amount = excluded.amount,
                iso_currency_code = excluded.iso_currency_code,
                unofficial_currency_code = excluded.unofficial_currency_code,
                date = excluded.date,
                authorized_date = excluded.authorized_date,
                datetime = excluded.datetime,
                authorized_datetime = excluded.authorized_datetime,
                name = excluded.name,
                merchant_name = excluded.merchant_name,
                merchant_entity_id = excluded.merchant_entity_id,
                payment_channel = excluded.payment_channel,
                category_primary = excluded.category_primary,
                category_detailed = excluded.category_detailed,
                pending = excluded.pending,
                pending_transaction_id = excluded.pending_transaction_id,
                raw = excluded.raw
           -- A transaction id belongs to one Item; never let another Item's sync overwrite it.
           where transactions.item_id = excluded.item_id"#,
    )
    .bind(item_id)
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
