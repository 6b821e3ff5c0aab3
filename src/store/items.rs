//! The `items` rows every component shares: linking an Item (its access token sealed), finding
//! it by Plaid's id, and opening its access token for a Plaid call.
//!
//! Status transitions, sync state and history belong to their own modules; this file holds
//! only what both the API and the workers need.

use sqlx::PgPool;
use uuid::Uuid;

use crate::crypto::{SealedToken, TokenCipher};
use crate::plaid::AccessToken;

/// What is known about an Item when it is linked.
pub struct LinkedItem<'a> {
    pub plaid_item_id: &'a str,
    pub access_token: &'a AccessToken,
    pub client_user_id: Option<&'a str>,
    pub institution_id: Option<&'a str>,
    pub institution_name: Option<&'a str>,
}

/// Stores a newly linked Item, its access token sealed, and records the link in its history.
/// Linking an Item plaidhook already has (a re-link) replaces its token and revives it.
pub async fn link(
    db: &PgPool,
    tokens: &TokenCipher,
    item: LinkedItem<'_>,
) -> Result<Uuid, sqlx::Error> {
    let sealed = tokens.seal(item.plaid_item_id, item.access_token);
    let mut tx = db.begin().await?;
    let row = sqlx::query!(
        r#"insert into items (id, plaid_item_id, client_user_id, institution_id, institution_name,
                              access_token_ciphertext, access_token_nonce, access_token_key_id)
           values ($1, $2, $3, $4, $5, $6, $7, $8)
           on conflict (plaid_item_id) do update set
               access_token_ciphertext = excluded.access_token_ciphertext,
               access_token_nonce = excluded.access_token_nonce,
               access_token_key_id = excluded.access_token_key_id,
               client_user_id = coalesce(excluded.client_user_id, items.client_user_id),
               removed_at = null
           returning id, (xmax = 0) as "inserted!""#,
        Uuid::now_v7(),
        item.plaid_item_id,
        item.client_user_id,
        item.institution_id,
        item.institution_name,
        sealed.ciphertext,
        sealed.nonce,
        sealed.key_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    if row.inserted {
        sqlx::query!(
            "insert into item_status_history (item_id, from_status, to_status, cause, source)
             values ($1, null, 'active', 'linked', 'api')",
            row.id
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(row.id)
}

/// Our id of the Item Plaid calls `plaid_item_id`.
pub async fn id_for_plaid_item(
    db: &PgPool,
    plaid_item_id: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select id from items where plaid_item_id = $1",
        plaid_item_id
    )
    .fetch_optional(db)
    .await
}

/// An Item's Plaid id and its opened access token, for a call to Plaid.
pub async fn credentials(
    db: &PgPool,
    tokens: &TokenCipher,
    item_id: Uuid,
) -> anyhow::Result<(String, AccessToken)> {
    let row = sqlx::query!(
        "select plaid_item_id, access_token_ciphertext, access_token_nonce, access_token_key_id
         from items where id = $1",
        item_id
    )
    .fetch_optional(db)
    .await?
    .ok_or_else(|| anyhow::anyhow!("no Item {item_id}"))?;
    let sealed = SealedToken {
        key_id: row.access_token_key_id,
        nonce: row.access_token_nonce,
        ciphertext: row.access_token_ciphertext,
    };
    let token = tokens.open(&row.plaid_item_id, &sealed)?;
    Ok((row.plaid_item_id, token))
}

/// Re-seals every access token sealed under a key other than the active one; returns how many.
/// Run after switching `tokens.active_key_id`: once it reports 0, old keys can be dropped.
/// Each row is updated only if it still holds the ciphertext that was read, so a concurrent
/// re-link is never overwritten with an older token.
pub async fn reseal_tokens(db: &PgPool, tokens: &TokenCipher) -> anyhow::Result<u64> {
    let stale = sqlx::query!(
        "select id, plaid_item_id, access_token_ciphertext, access_token_nonce, access_token_key_id
         from items where access_token_key_id <> $1",
        tokens.active_key_id()
    )
    .fetch_all(db)
    .await?;
    let mut resealed = 0;
    for row in stale {
        let sealed = SealedToken {
            key_id: row.access_token_key_id,
            nonce: row.access_token_nonce,
            ciphertext: row.access_token_ciphertext,
        };
        let token = tokens.open(&row.plaid_item_id, &sealed)?;
        let fresh = tokens.seal(&row.plaid_item_id, &token);
        let updated = sqlx::query!(
            "update items set access_token_ciphertext = $2, access_token_nonce = $3, access_token_key_id = $4
             where id = $1 and access_token_ciphertext = $5",
            row.id,
            fresh.ciphertext,
            fresh.nonce,
            fresh.key_id,
            sealed.ciphertext,
        )
        .execute(db)
        .await?;
        resealed += updated.rows_affected();
    }
    Ok(resealed)
}
