//! An Item's accounts and their balances, as Plaid last described them.
//!
//! Written from two places, through the one upsert here: every sync (accounts come with
//! `/transactions/sync`) and an on-demand balance refresh (`/accounts/balance/get`). An account
//! id belongs to one Item for ever: a row of another Item is never overwritten. Each row keeps
//! the account exactly as Plaid sent it (`raw`) beside the typed columns plaidhook reads.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::plaid::{AccountBase, Raw};

/// Which time the stored balances carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalancesAt {
    /// Plaid's `last_updated_datetime` where it gives one, else now (cached balances of a sync).
    AsPlaidSays,
    /// Now: the balances were just fetched in real time.
    Now,
}

/// Inserts or updates `accounts` of the Item, in one statement.
pub async fn upsert(
    conn: &mut PgConnection,
    item_id: Uuid,
    accounts: &[Raw<AccountBase>],
    balances_at: BalancesAt,
) -> Result<(), sqlx::Error> {
    if accounts.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = accounts
        .iter()
        .map(|a| a.account_id.as_str().to_owned())
        .collect();
    let names: Vec<String> = accounts.iter().map(|a| a.name.clone()).collect();
    let official: Vec<Option<String>> = accounts.iter().map(|a| a.official_name.clone()).collect();
    let masks: Vec<Option<String>> = accounts.iter().map(|a| a.mask.clone()).collect();
    let types: Vec<String> = accounts
        .iter()
        .map(|a| a.account_type.as_str().to_owned())
        .collect();
    let subtypes: Vec<Option<String>> = accounts
        .iter()
        .map(|a| a.subtype.as_ref().map(|s| s.as_str().to_owned()))
        .collect();
    let available: Vec<Option<Decimal>> = accounts.iter().map(|a| a.balances.available).collect();
    let current: Vec<Option<Decimal>> = accounts.iter().map(|a| a.balances.current).collect();
    let limit: Vec<Option<Decimal>> = accounts.iter().map(|a| a.balances.limit).collect();
    let iso: Vec<Option<String>> = accounts
        .iter()
        .map(|a| a.balances.iso_currency_code.clone())
        .collect();
    let unofficial: Vec<Option<String>> = accounts
        .iter()
        .map(|a| a.balances.unofficial_currency_code.clone())
        .collect();
    let updated: Vec<Option<DateTime<Utc>>> = accounts
        .iter()
        .map(|a| match balances_at {
            BalancesAt::AsPlaidSays => a.balances.last_updated_datetime,
            BalancesAt::Now => None,
        })
        .collect();
    let raw: Vec<&str> = accounts.iter().map(|a| a.json().get()).collect();
    sqlx::query!(
        r#"insert into accounts (account_id, item_id, name, official_name, mask, type, subtype,
                balance_available, balance_current, balance_limit, iso_currency_code,
                unofficial_currency_code, balances_updated_at, raw)
           select a.account_id, $1, a.name, a.official_name, a.mask, a.type, a.subtype,
                  a.available, a.current, a.lim, a.iso, a.unofficial, coalesce(a.updated, now()),
                  a.raw::jsonb
           from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::numeric[], $9::numeric[], $10::numeric[], $11::text[], $12::text[],
                       $13::timestamptz[], $14::text[])
                as a(account_id, name, official_name, mask, type, subtype, available, current, lim,
                     iso, unofficial, updated, raw)
           on conflict (account_id) do update set
                name = excluded.name,
                official_name = excluded.official_name,
                mask = excluded.mask,
                type = excluded.type,
                subtype = excluded.subtype,
                balance_available = excluded.balance_available,
                balance_current = excluded.balance_current,
                balance_limit = excluded.balance_limit,
                iso_currency_code = excluded.iso_currency_code,
                unofficial_currency_code = excluded.unofficial_currency_code,
                balances_updated_at = excluded.balances_updated_at,
                raw = excluded.raw
           where accounts.item_id = excluded.item_id"#,
        item_id,
        &ids,
        &names,
        &official as &[Option<String>],
        &masks as &[Option<String>],
        &types,
        &subtypes as &[Option<String>],
        &available as &[Option<Decimal>],
        &current as &[Option<Decimal>],
        &limit as &[Option<Decimal>],
        &iso as &[Option<String>],
        &unofficial as &[Option<String>],
        &updated as &[Option<DateTime<Utc>>],
        &raw as &[&str],
    )
    .execute(conn)
    .await?;
    Ok(())
}
