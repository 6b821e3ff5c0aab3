//! Applying a fetched sync: one PostgreSQL transaction that upserts added and modified
//! transactions, deletes removed ones, stores accounts and balances, stores the new cursor,
//! closes the sync run and writes the `transactions.synced` events. All of it or none of it:
//! a sync that dies before the commit leaves the Item exactly as it was, cursor included, and
//! the next one fetches the same changes again.
//!
//! Upserts are batched as `UNNEST` of per-column arrays: one bind parameter per column whatever
//! the batch size (so PostgreSQL's 65,535-parameter limit never applies), and the fastest
//! upsert measured here. The fetch already merged pages, so no batch touches a key twice
//! (`ON CONFLICT DO UPDATE` refuses that).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{Connection, PgConnection, Postgres, Transaction as PgTransaction};
use uuid::Uuid;

use super::events;
use super::fetch::{ChangeKind, Fetched, Progress};
use super::runs::{self, RunOutcome, RunRecord};
use crate::config::SyncSettings;
use crate::items::accounts::{self, BalancesAt};
use crate::messages::ItemStatus;
use crate::plaid::{Raw, RemovedTransaction, Transaction};
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
    let upserts: Vec<&Raw<Transaction>> =
        fetched.changes.upserts.values().map(|(_, t)| t).collect();
    for batch in upserts.chunks(settings.upsert_batch) {
        upsert_transactions(&mut tx, item_id, batch).await?;
    }
    let removed_ids: Vec<String> = fetched.changes.removed.keys().cloned().collect();
    if !removed_ids.is_empty() {
        sqlx::query!(
            "delete from transactions where item_id = $1 and transaction_id = any($2)",
            item_id,
            &removed_ids
        )
        .execute(&mut *tx)
        .await?;
    }
    let mut fetched = fetched;
    if commit.progress.cursor_reset {
        // A full re-sync lists everything the Item has; whatever else we hold was removed
        // while our cursor was not accepted. Subscribers hear of each such removal in the
        // event, like any other, so the event stream stays equal to the database.
        let kept: Vec<String> = fetched.changes.upserts.keys().cloned().collect();
        let pruned = sqlx::query!(
            "delete from transactions where item_id = $1 and transaction_id <> all($2)
             returning transaction_id, account_id",
            item_id,
            &kept
        )
        .fetch_all(&mut *tx)
        .await?;
        tracing::info!(item.id = %item_id, pruned = pruned.len(), "cursor reset: full re-sync applied");
        for row in pruned {
            let removed = RemovedTransaction {
                transaction_id: row.transaction_id.as_str().into(),
                account_id: row.account_id.as_str().into(),
            };
            fetched.changes.removed.insert(row.transaction_id, removed);
        }
    }
    accounts::upsert(&mut tx, item_id, &fetched.accounts, BalancesAt::AsPlaidSays).await?;

    if matches!(status, ItemStatus::LoginRequired | ItemStatus::Error) {
        // Plaid served the Item's data: whatever was wrong with it is fixed (its alert resolves).
        crate::items::on_sync_succeeded(&mut tx, item_id).await?;
    }

    let changes = &fetched.changes;
    let (added, modified, removed) = (
        changes.count(ChangeKind::Added),
        changes.count(ChangeKind::Modified),
        changes.removed.len(),
    );
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
        changes,
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
    tracing::debug!(
        item.id = %item_id,
        rows_ms = rows_written.as_millis() as u64,
        events_ms = events_written.as_millis() as u64,
        commit_ms = (write_started.elapsed() - rows_written - events_written).as_millis() as u64,
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

/// Per-column arrays of one batch.
#[derive(Default)]
struct Columns {
    transaction_id: Vec<String>,
    account_id: Vec<String>,
    amount: Vec<Decimal>,
    iso_currency_code: Vec<Option<String>>,
    unofficial_currency_code: Vec<Option<String>>,
    date: Vec<NaiveDate>,
    authorized_date: Vec<Option<NaiveDate>>,
    datetime: Vec<Option<DateTime<Utc>>>,
    authorized_datetime: Vec<Option<DateTime<Utc>>>,
    name: Vec<String>,
    merchant_name: Vec<Option<String>>,
    merchant_entity_id: Vec<Option<String>>,
    payment_channel: Vec<String>,
    category_primary: Vec<Option<String>>,
    category_detailed: Vec<Option<String>>,
    pending: Vec<bool>,
    pending_transaction_id: Vec<Option<String>>,
    raw: Vec<String>,
}

impl Columns {
    fn push(&mut self, sent: &Raw<Transaction>) {
        let t: &Transaction = sent;
        self.transaction_id
            .push(t.transaction_id.as_str().to_owned());
        self.account_id.push(t.account_id.as_str().to_owned());
        self.amount.push(t.amount);
        self.iso_currency_code.push(t.iso_currency_code.clone());
        self.unofficial_currency_code
            .push(t.unofficial_currency_code.clone());
        self.date.push(t.date);
        self.authorized_date.push(t.authorized_date);
        self.datetime.push(t.datetime);
        self.authorized_datetime.push(t.authorized_datetime);
        self.name.push(t.name.clone());
        self.merchant_name.push(t.merchant_name.clone());
        self.merchant_entity_id.push(t.merchant_entity_id.clone());
        self.payment_channel
            .push(t.payment_channel.as_str().to_owned());
        let category = t.personal_finance_category.as_ref();
        self.category_primary
            .push(category.map(|c| c.primary.clone()));
        self.category_detailed
            .push(category.map(|c| c.detailed.clone()));
        self.pending.push(t.pending);
        self.pending_transaction_id.push(
            t.pending_transaction_id
                .as_ref()
                .map(|id| id.as_str().to_owned()),
        );
        // Plaid's JSON as received (unknown fields, nulls and decimals kept), parsed once by
        // PostgreSQL into jsonb.
        self.raw.push(sent.json().get().to_owned());
    }
}

async fn upsert_transactions(
    tx: &mut PgTransaction<'_, Postgres>,
    item_id: Uuid,
    batch: &[&Raw<Transaction>],
) -> Result<(), sqlx::Error> {
    let mut c = Columns::default();
    for t in batch {
        c.push(t);
    }
    sqlx::query!(
        r#"insert into transactions (transaction_id, item_id, account_id, amount, iso_currency_code,
                unofficial_currency_code, date, authorized_date, datetime, authorized_datetime, name,
                merchant_name, merchant_entity_id, payment_channel, category_primary,
                category_detailed, pending, pending_transaction_id, raw)
           select t.transaction_id, $1, t.account_id, t.amount, t.iso_currency_code,
                  t.unofficial_currency_code, t.date, t.authorized_date, t.datetime,
                  t.authorized_datetime, t.name, t.merchant_name, t.merchant_entity_id,
                  t.payment_channel, t.category_primary, t.category_detailed, t.pending,
                  t.pending_transaction_id, t.raw::jsonb
           from unnest($2::text[], $3::text[], $4::numeric[], $5::text[], $6::text[], $7::date[],
                       $8::date[], $9::timestamptz[], $10::timestamptz[], $11::text[], $12::text[],
                       $13::text[], $14::text[], $15::text[], $16::text[], $17::bool[], $18::text[],
                       $19::text[])
                as t(transaction_id, account_id, amount, iso_currency_code, unofficial_currency_code,
                     date, authorized_date, datetime, authorized_datetime, name, merchant_name,
                     merchant_entity_id, payment_channel, category_primary, category_detailed,
                     pending, pending_transaction_id, raw)
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
        item_id,
        &c.transaction_id,
        &c.account_id,
        &c.amount,
        &c.iso_currency_code as &[Option<String>],
        &c.unofficial_currency_code as &[Option<String>],
        &c.date,
        &c.authorized_date as &[Option<NaiveDate>],
        &c.datetime as &[Option<DateTime<Utc>>],
        &c.authorized_datetime as &[Option<DateTime<Utc>>],
        &c.name,
        &c.merchant_name as &[Option<String>],
        &c.merchant_entity_id as &[Option<String>],
        &c.payment_channel,
        &c.category_primary as &[Option<String>],
        &c.category_detailed as &[Option<String>],
        &c.pending,
        &c.pending_transaction_id as &[Option<String>],
        &c.raw,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
