//! The `items` rows every component shares: linking an Item (its access token sealed), finding
//! it by Plaid's id, opening its access token for a Plaid call, and removing it.
//!
//! Status transitions live in `status`, sync state in `sync`; this file holds what the API and
//! the workers both need, written once.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::status::{transition, Transition};
use crate::crypto::{CryptoError, SealedToken, TokenCipher};
use crate::messages::{ItemStatus, StatusSource};
use crate::plaid::AccessToken;

/// Why an Item's access token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("no Item {0}")]
    NotFound(Uuid),
    /// Transient: the database did not answer.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Permanent until an operator acts: the key is gone or the ciphertext was altered.
    #[error("the access token could not be opened: {0}")]
    Unreadable(#[from] CryptoError),
}

/// An Item's Plaid id and its opened access token, for a call to Plaid.
pub struct Credentials {
    pub plaid_item_id: String,
    pub access_token: AccessToken,
}

/// What is known about an Item when it is linked.
pub struct LinkedItem<'a> {
    pub plaid_item_id: &'a str,
    pub access_token: &'a AccessToken,
    pub client_user_id: Option<&'a str>,
    pub institution_id: Option<&'a str>,
    pub institution_name: Option<&'a str>,
}

/// Why a link was refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The Plaid Item is already linked for another user of the app: moving it would hand one
    /// user's bank data to another, so it is refused and nothing changes.
    #[error("the Item is linked to another client_user_id")]
    OtherUser,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// What a link did to the Item row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linked {
    /// A new Item.
    New(Uuid),
    /// An Item plaidhook already had: its token was replaced, and `previous` was its status
    /// (an Item linked again after `removed` is active again, with a fresh cursor).
    Again { id: Uuid, previous: ItemStatus },
}

impl Linked {
    pub fn id(self) -> Uuid {
        match self {
            Self::New(id) | Self::Again { id, .. } => id,
        }
    }
}

/// Stores a linked Item, its access token sealed, and records the link in its history, in `tx`
/// (the caller adds what must commit with it: the first sync request).
///
/// Linking an Item plaidhook already has (the same Plaid `item_id`) replaces its token and makes
/// it `active` again through a recorded transition, whatever it was: the user has just been
/// through Link with it. One that was `removed` also loses its `removed_at` and its cursor, so
/// its first sync starts from the beginning. An Item linked for another `client_user_id` is
/// refused ([`LinkError::OtherUser`]).
pub async fn link(
    tx: &mut Transaction<'_, Postgres>,
    tokens: &TokenCipher,
    item: LinkedItem<'_>,
) -> Result<Linked, LinkError> {
    let sealed = tokens.seal(item.plaid_item_id, item.access_token);
    let inserted = sqlx::query_scalar!(
        "insert into items (id, plaid_item_id, client_user_id, institution_id, institution_name,
                            access_token_ciphertext, access_token_nonce, access_token_key_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (plaid_item_id) do nothing
         returning id",
        Uuid::now_v7(),
        item.plaid_item_id,
        item.client_user_id,
        item.institution_id,
        item.institution_name,
        sealed.ciphertext,
        sealed.nonce,
        sealed.key_id,
    )
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = inserted {
        sqlx::query!(
            "insert into item_status_history (item_id, from_status, to_status, cause, source)
             values ($1, null, 'active', 'linked', 'api')",
            id
        )
        .execute(&mut **tx)
        .await?;
        return Ok(Linked::New(id));
    }
    // Locked for the rest of the transaction: a concurrent link or transition waits.
    let existing = sqlx::query!(
        r#"select id, status as "status: ItemStatus", client_user_id
           from items where plaid_item_id = $1 for update"#,
        item.plaid_item_id
    )
    .fetch_one(&mut **tx)
    .await?;
    if let (Some(owner), Some(new)) = (existing.client_user_id.as_deref(), item.client_user_id) {
        if owner != new {
            return Err(LinkError::OtherUser);
        }
    }
    let was_removed = existing.status == ItemStatus::Removed;
    sqlx::query!(
        "update items set
             access_token_ciphertext = $2, access_token_nonce = $3, access_token_key_id = $4,
             client_user_id = coalesce(client_user_id, $5),
             institution_id = coalesce($6, institution_id),
             institution_name = coalesce($7, institution_name),
             removed_at = null,
             sync_cursor = case when $8 then null else sync_cursor end
         where id = $1",
        existing.id,
        sealed.ciphertext,
        sealed.nonce,
        sealed.key_id,
        item.client_user_id,
        item.institution_id,
        item.institution_name,
        was_removed,
    )
    .execute(&mut **tx)
    .await?;
    if existing.status == ItemStatus::Active {
        // No transition, but the new token is worth a line in the Item's history.
        sqlx::query!(
            "insert into item_status_history (item_id, from_status, to_status, cause, source)
             values ($1, 'active', 'active', 'relinked', 'api')",
            existing.id
        )
        .execute(&mut **tx)
        .await?;
    } else {
        transition(
            tx,
            existing.id,
            Transition {
                to: ItemStatus::Active,
                cause: "relinked",
                error_code: None,
                error_message: None,
                source: StatusSource::Api,
            },
        )
        .await?;
    }
    Ok(Linked::Again {
        id: existing.id,
        previous: existing.status,
    })
}

/// Records that the Item's webhook URL at Plaid was set to plaidhook's (at link, when Plaid had
/// none or another): a history row with the status unchanged, so support can see when and why.
pub async fn note_webhook_url_set(
    tx: &mut Transaction<'_, Postgres>,
    item_id: Uuid,
    previous_was_set: bool,
) -> Result<(), sqlx::Error> {
    let cause = if previous_was_set {
        "webhook_url_replaced"
    } else {
        "webhook_url_set"
    };
    sqlx::query!(
        "insert into item_status_history (item_id, from_status, to_status, cause, source)
         select id, status, status, $2, 'api' from items where id = $1",
        item_id,
        cause,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Opens the Item's access token, on `conn`: a caller that already holds a connection (the sync
/// worker's lock) never waits for a second one from the same pool.
pub async fn credentials(
    conn: &mut PgConnection,
    tokens: &TokenCipher,
    item_id: Uuid,
) -> Result<Credentials, CredentialsError> {
    let row = sqlx::query!(
        "select plaid_item_id, access_token_ciphertext, access_token_nonce, access_token_key_id
         from items where id = $1",
        item_id
    )
    .fetch_optional(conn)
    .await?
    .ok_or(CredentialsError::NotFound(item_id))?;
    let sealed = SealedToken {
        key_id: row.access_token_key_id,
        nonce: row.access_token_nonce,
        ciphertext: row.access_token_ciphertext,
    };
    open_credentials(tokens, row.plaid_item_id, &sealed)
}

/// Opens an access token read with its Item (the token is sealed to the Item's Plaid id).
pub fn open_credentials(
    tokens: &TokenCipher,
    plaid_item_id: String,
    sealed: &SealedToken,
) -> Result<Credentials, CredentialsError> {
    let access_token = tokens.open(&plaid_item_id, sealed)?;
    Ok(Credentials {
        plaid_item_id,
        access_token,
    })
}

/// An Item as a queue message finds it.
#[derive(Debug, Clone, Copy)]
pub struct ItemRef {
    pub id: Uuid,
    pub status: ItemStatus,
}

/// The Item Plaid calls `plaid_item_id`.
pub async fn find_by_plaid_id(
    db: &PgPool,
    plaid_item_id: &str,
) -> Result<Option<ItemRef>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select id, status as "status: ItemStatus"
           from items where plaid_item_id = $1"#,
        plaid_item_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| ItemRef {
        id: row.id,
        status: row.status,
    }))
}

/// The Item's status, or `None` when there is no such Item.
pub async fn status_of(db: &PgPool, item_id: Uuid) -> Result<Option<ItemStatus>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select status as "status: ItemStatus" from items where id = $1"#,
        item_id
    )
    .fetch_optional(db)
    .await
}

/// Marks the Item removed (keeping the first removal time) and moves it to `removed`, which
/// resolves its alerts, inside `tx`.
pub async fn mark_removed(
    tx: &mut Transaction<'_, Postgres>,
    item_id: Uuid,
    cause: &str,
    error_code: Option<&str>,
    source: StatusSource,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update items set removed_at = coalesce(removed_at, now()) where id = $1",
        item_id
    )
    .execute(&mut **tx)
    .await?;
    transition(
        tx,
        item_id,
        Transition {
            to: ItemStatus::Removed,
            cause,
            error_code,
            error_message: None,
            source,
        },
    )
    .await?;
    Ok(())
}

/// Re-seals every access token sealed under a key other than the active one; returns how many.
/// Run after switching `tokens.active_key_id`: once it reports 0, old keys can be dropped.
/// Each row is updated only if it still holds the ciphertext that was read, so a concurrent
/// re-link is never overwritten with an older token.
pub async fn reseal_tokens(db: &PgPool, tokens: &TokenCipher) -> Result<u64, CredentialsError> {
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
