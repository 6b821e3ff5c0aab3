//! A sync run's pages, staged in `sync_staging` as they arrive, so a worker holds one page at a
//! time rather than an Item's whole history.
//!
//! Each page is merged into the run's rows with one `UNNEST` upsert keyed by (run, transaction):
//! the latest version of a transaction wins, a removal replaces an add, an add after a removal
//! replaces the removal, and a transaction added earlier in the run and modified since stays
//! `added` (new to subscribers). Within a page Plaid's lists are taken in order (added, modified,
//! removed); a page that names one transaction twice is split where it does, so each statement
//! touches a key once and the merge is the one a sequential walk of the pages gives.
//!
//! Rows belong to one run (its id), so a run never reads another's. A run that restarts its
//! pagination discards its rows first; a run that fails deletes them; rows left by a worker that
//! died are deleted by the Item's next run ([`super::runs::start`]) or by retention ([`sweep`]).

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::plaid::{Raw, RemovedTransaction, Transaction, TransactionsSyncPage};

/// A run's net changes so far, by kind (each transaction counted once, under its latest kind).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub added: usize,
    pub modified: usize,
    pub removed: usize,
}

impl Totals {
    pub fn is_empty(&self) -> bool {
        self.added + self.modified + self.removed == 0
    }

    pub fn total(&self) -> usize {
        self.added + self.modified + self.removed
    }

    fn slot(&mut self, change: &str) -> &mut usize {
        match change {
            ADDED => &mut self.added,
            MODIFIED => &mut self.modified,
            _ => &mut self.removed,
        }
    }
}

/// The `sync_staging.change` values; their byte order is the order of a run's events.
pub const ADDED: &str = "a";
pub const MODIFIED: &str = "m";
pub const REMOVED: &str = "r";

/// One change of a page, in the order Plaid's lists give them.
enum Entry<'a> {
    Upsert(&'static str, &'a Raw<Transaction>),
    Removed(&'a RemovedTransaction),
}

impl Entry<'_> {
    fn id(&self) -> &str {
        match self {
            Entry::Upsert(_, t) => t.transaction_id.as_str(),
            Entry::Removed(r) => r.transaction_id.as_str(),
        }
    }
}

/// The page's changes in statements that each name a transaction at most once, in order.
fn batches(page: &TransactionsSyncPage) -> Vec<Vec<Entry<'_>>> {
    let entries = page
        .added
        .iter()
        .map(|t| Entry::Upsert(ADDED, t))
        .chain(page.modified.iter().map(|t| Entry::Upsert(MODIFIED, t)))
        .chain(page.removed.iter().map(Entry::Removed));
    let mut batches = vec![Vec::new()];
    let mut seen = HashSet::new();
    for entry in entries {
        if !seen.insert(entry.id().to_owned()) {
            seen.clear();
            seen.insert(entry.id().to_owned());
            batches.push(Vec::new());
        }
        batches.last_mut().expect("never empty").push(entry);
    }
    batches
}

/// Merges one page into the run's staged rows, on the sync's connection, and keeps `totals`.
pub async fn stage_page(
    conn: &mut PgConnection,
    run_id: Uuid,
    item_id: Uuid,
    page: &TransactionsSyncPage,
    totals: &mut Totals,
) -> Result<(), sqlx::Error> {
    for batch in batches(page) {
        if batch.is_empty() {
            continue;
        }
        let mut columns = Columns::with_capacity(batch.len());
        for entry in &batch {
            columns.push(entry);
        }
        let changed: Vec<(String, Option<String>)> = columns
            .upsert(run_id, item_id)
            .fetch_all(&mut *conn)
            .await?;
        for (change, previous) in changed {
            if let Some(previous) = previous {
                *totals.slot(&previous) -= 1;
            }
            *totals.slot(&change) += 1;
        }
    }
    Ok(())
}

/// Deletes a run's staged rows: its pagination restarts, it failed, or it committed.
pub async fn discard(conn: &mut PgConnection, run_id: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("delete from sync_staging where run_id = $1")
        .bind(run_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes the staged rows of every run no longer running (a worker that died mid-run, a
/// clean-up that failed). Retention calls it.
pub async fn sweep(db: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "delete from sync_staging s where not exists (
             select 1 from sync_runs r where r.id = s.run_id and r.outcome = 'running')",
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Per-column arrays of one statement, borrowed from the page.
struct Columns<'a> {
    transaction_id: Vec<&'a str>,
    change: Vec<&'static str>,
    account_id: Vec<&'a str>,
    amount: Vec<Option<Decimal>>,
    iso_currency_code: Vec<Option<&'a str>>,
    unofficial_currency_code: Vec<Option<&'a str>>,
    date: Vec<Option<NaiveDate>>,
    authorized_date: Vec<Option<NaiveDate>>,
    datetime: Vec<Option<DateTime<Utc>>>,
    authorized_datetime: Vec<Option<DateTime<Utc>>>,
    name: Vec<Option<&'a str>>,
    merchant_name: Vec<Option<&'a str>>,
    merchant_entity_id: Vec<Option<&'a str>>,
    payment_channel: Vec<Option<&'a str>>,
    category_primary: Vec<Option<&'a str>>,
    category_detailed: Vec<Option<&'a str>>,
    pending: Vec<Option<bool>>,
    pending_transaction_id: Vec<Option<&'a str>>,
    raw: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            transaction_id: Vec::with_capacity(n),
            change: Vec::with_capacity(n),
            account_id: Vec::with_capacity(n),
            amount: Vec::with_capacity(n),
            iso_currency_code: Vec::with_capacity(n),
            unofficial_currency_code: Vec::with_capacity(n),
            date: Vec::with_capacity(n),
            authorized_date: Vec::with_capacity(n),
            datetime: Vec::with_capacity(n),
            authorized_datetime: Vec::with_capacity(n),
            name: Vec::with_capacity(n),
            merchant_name: Vec::with_capacity(n),
            merchant_entity_id: Vec::with_capacity(n),
            payment_channel: Vec::with_capacity(n),
            category_primary: Vec::with_capacity(n),
            category_detailed: Vec::with_capacity(n),
            pending: Vec::with_capacity(n),
            pending_transaction_id: Vec::with_capacity(n),
            raw: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, entry: &Entry<'a>) {
        match *entry {
            Entry::Upsert(change, sent) => {
                let t: &'a Transaction = sent;
                self.transaction_id.push(t.transaction_id.as_str());
                self.change.push(change);
                self.account_id.push(t.account_id.as_str());
                self.amount.push(Some(t.amount));
                self.iso_currency_code.push(t.iso_currency_code.as_deref());
                self.unofficial_currency_code
                    .push(t.unofficial_currency_code.as_deref());
                self.date.push(Some(t.date));
                self.authorized_date.push(t.authorized_date);
                self.datetime.push(t.datetime);
                self.authorized_datetime.push(t.authorized_datetime);
                self.name.push(Some(t.name.as_str()));
                self.merchant_name.push(t.merchant_name.as_deref());
                self.merchant_entity_id
                    .push(t.merchant_entity_id.as_deref());
                self.payment_channel.push(Some(t.payment_channel.as_str()));
                let category = t.personal_finance_category.as_ref();
                self.category_primary
                    .push(category.map(|c| c.primary.as_str()));
                self.category_detailed
                    .push(category.map(|c| c.detailed.as_str()));
                self.pending.push(Some(t.pending));
                self.pending_transaction_id
                    .push(t.pending_transaction_id.as_ref().map(|id| id.as_str()));
                // Plaid's JSON as received (unknown fields, nulls and decimals kept), parsed once
                // by PostgreSQL into jsonb; applied and put in events from there, never re-read.
                self.raw.push(Some(sent.json().get()));
            }
            Entry::Removed(removed) => {
                self.transaction_id.push(removed.transaction_id.as_str());
                self.change.push(REMOVED);
                self.account_id.push(removed.account_id.as_str());
                self.amount.push(None);
                self.iso_currency_code.push(None);
                self.unofficial_currency_code.push(None);
                self.date.push(None);
                self.authorized_date.push(None);
                self.datetime.push(None);
                self.authorized_datetime.push(None);
                self.name.push(None);
                self.merchant_name.push(None);
                self.merchant_entity_id.push(None);
                self.payment_channel.push(None);
                self.category_primary.push(None);
                self.category_detailed.push(None);
                self.pending.push(None);
                self.pending_transaction_id.push(None);
                self.raw.push(None);
            }
        }
    }

    /// The merge of these rows into the run's: returns each row's change and the one it had
    /// before (none: new to the run).
    fn upsert(
        &self,
        run_id: Uuid,
        item_id: Uuid,
    ) -> sqlx::query::QueryAs<
        '_,
        sqlx::Postgres,
        (String, Option<String>),
        sqlx::postgres::PgArguments,
    > {
        sqlx::query_as(
            r#"insert into sync_staging as s (run_id, item_id, transaction_id, change, account_id,
                    amount, iso_currency_code, unofficial_currency_code, date, authorized_date,
                    datetime, authorized_datetime, name, merchant_name, merchant_entity_id,
                    payment_channel, category_primary, category_detailed, pending,
                    pending_transaction_id, raw)
               select $1, $2, t.transaction_id, t.change, t.account_id, t.amount,
                      t.iso_currency_code, t.unofficial_currency_code, t.date, t.authorized_date,
                      t.datetime, t.authorized_datetime, t.name, t.merchant_name,
                      t.merchant_entity_id, t.payment_channel, t.category_primary,
                      t.category_detailed, t.pending, t.pending_transaction_id, t.raw::jsonb
               from unnest($3::text[], $4::text[], $5::text[], $6::numeric[], $7::text[],
                           $8::text[], $9::date[], $10::date[], $11::timestamptz[],
                           $12::timestamptz[], $13::text[], $14::text[], $15::text[], $16::text[],
                           $17::text[], $18::text[], $19::bool[], $20::text[], $21::text[])
                    as t(transaction_id, change, account_id, amount, iso_currency_code,
                         unofficial_currency_code, date, authorized_date, datetime,
                         authorized_datetime, name, merchant_name, merchant_entity_id,
                         payment_channel, category_primary, category_detailed, pending,
                         pending_transaction_id, raw)
               on conflict (run_id, transaction_id) do update set
                    previous_change = s.change,
                    -- Added earlier in this run and modified since: still new to subscribers.
                    change = case when excluded.change = 'm' and s.change = 'a' then 'a'
                                  else excluded.change end,
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
               returning change, previous_change"#,
        )
        .bind(run_id)
        .bind(item_id)
        .bind(&self.transaction_id)
        .bind(&self.change)
        .bind(&self.account_id)
        .bind(&self.amount)
        .bind(&self.iso_currency_code)
        .bind(&self.unofficial_currency_code)
        .bind(&self.date)
        .bind(&self.authorized_date)
        .bind(&self.datetime)
        .bind(&self.authorized_datetime)
        .bind(&self.name)
        .bind(&self.merchant_name)
        .bind(&self.merchant_entity_id)
        .bind(&self.payment_channel)
        .bind(&self.category_primary)
        .bind(&self.category_detailed)
        .bind(&self.pending)
        .bind(&self.pending_transaction_id)
        .bind(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(id: &str) -> serde_json::Value {
        serde_json::json!({
            "transaction_id": id, "account_id": "acc", "amount": 1, "date": "2026-11-20",
            "pending": false, "name": "x", "payment_channel": "online"
        })
    }

    fn page(added: &[&str], modified: &[&str], removed: &[&str]) -> TransactionsSyncPage {
        // From text, as the client reads it: raw values need the JSON text.
        let json = serde_json::json!({
            "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE",
            "accounts": [],
            "added": added.iter().map(|id| txn(id)).collect::<Vec<_>>(),
            "modified": modified.iter().map(|id| txn(id)).collect::<Vec<_>>(),
            "removed": removed.iter().map(|id| serde_json::json!({"transaction_id": id, "account_id": "acc"})).collect::<Vec<_>>(),
            "next_cursor": "c", "has_more": false, "request_id": "r"
        });
        serde_json::from_str(&json.to_string()).unwrap()
    }

    fn shape(page: &TransactionsSyncPage) -> Vec<Vec<(String, &'static str)>> {
        batches(page)
            .iter()
            .map(|batch| {
                batch
                    .iter()
                    .map(|entry| {
                        let change: &'static str = match entry {
                            Entry::Upsert(change, _) => change,
                            Entry::Removed(_) => REMOVED,
                        };
                        (entry.id().to_owned(), change)
                    })
                    .collect()
            })
            .collect()
    }

    fn owned(batches: &[&[(&str, &'static str)]]) -> Vec<Vec<(String, &'static str)>> {
        batches
            .iter()
            .map(|b| b.iter().map(|(id, c)| ((*id).to_owned(), *c)).collect())
            .collect()
    }

    #[test]
    fn a_page_is_one_statement_in_plaids_order_when_it_names_each_transaction_once() {
        let page = page(&["a", "b"], &["c"], &["d"]);
        assert_eq!(
            shape(&page),
            owned(&[&[("a", ADDED), ("b", ADDED), ("c", MODIFIED), ("d", REMOVED)]])
        );
    }

    #[test]
    fn a_page_that_names_a_transaction_twice_is_split_where_it_does() {
        // Added, then modified, then removed in one page: three statements, in that order, so
        // the merge sees them as a walk of the page would.
        let page = page(&["a", "b"], &["a"], &["a", "c"]);
        assert_eq!(
            shape(&page),
            owned(&[
                &[("a", ADDED), ("b", ADDED)],
                &[("a", MODIFIED)],
                &[("a", REMOVED), ("c", REMOVED)],
            ])
        );
    }

    #[test]
    fn totals_move_a_transaction_from_its_previous_change_to_its_new_one() {
        let mut totals = Totals::default();
        *totals.slot(ADDED) += 1;
        *totals.slot(ADDED) -= 1;
        *totals.slot(REMOVED) += 1;
        assert_eq!(
            totals,
            Totals {
                added: 0,
                modified: 0,
                removed: 1
            }
        );
        assert_eq!(totals.total(), 1);
    }
}
