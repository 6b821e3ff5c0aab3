//! One sync per Item at a time, across every worker process, and the dirty flag that coalesces
//! requests.
//!
//! The lock is a PostgreSQL session advisory lock held on a connection the sync keeps for its
//! whole run (and does all its database work on). A process that dies takes its session, and so
//! its locks, with it; a sync task that is dropped mid-run closes its connection rather than
//! returning it to the pool with the lock still held.
//!
//! The protocol that makes "a burst costs at most one extra sync, never a concurrent one":
//! 1. a request first marks the Item dirty (`items.sync_requested_at`);
//! 2. then it tries the lock; if another sync holds it, the request is done: the holder will
//!    see the mark;
//! 3. the holder clears the mark *before* each run (in the statement that opens the run,
//!    `runs::begin`) and runs again while it finds it set;
//! 4. after unlocking, the holder looks once more: a request that marked the Item after the
//!    holder's last look but found the lock still held would otherwise be lost.
//!
//! Steps 1 and 2's first look (is the lock held?) are one statement ([`mark_dirty`]), one round
//! trip per hint: the look then happens before the mark commits, so step 4 reads with
//! `FOR SHARE`, which waits for such a statement's commit and sees its mark. A request whose look
//! found the lock free still takes it (`ItemLock::try_acquire`), after its mark committed.

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use uuid::Uuid;

use crate::items::ItemStatus;

/// The advisory lock key of an Item: its UUID folded to 64 bits (in SQL, `item_sync_lock_key`).
/// Two Items sharing a key would only serialise each other's syncs, and at 2^-64 per pair it
/// does not happen in practice.
pub fn lock_key(item_id: Uuid) -> i64 {
    let (high, low) = item_id.as_u64_pair();
    (high ^ low) as i64
}

/// What a sync hint asks of its Item when it marks it.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    /// When the webhook carrying the hint arrived (recorded as the Item's `last_webhook_at`,
    /// which only moves forward); `None` for plaidhook's own sync requests.
    pub webhook_received_at: Option<DateTime<Utc>>,
    /// Only an Item that never synced needs this hint (a legacy transactions webhook: Plaid
    /// sends SYNC_UPDATES_AVAILABLE beside it to an Item that syncs with a cursor).
    pub only_without_cursor: bool,
}

/// What marking an Item found.
#[derive(Debug, Clone, Copy)]
pub struct Marked {
    pub item_id: Uuid,
    pub status: ItemStatus,
    /// The Item is now marked dirty: it takes syncs (not removed) and the hint applies to it.
    pub marked: bool,
    /// Some session held the Item's lock when the mark was made: that holder sees the mark
    /// (its last look, [`is_dirty`], waits for this statement's commit), so the request is done.
    pub held: bool,
}

/// Step 1 and the look of step 2 in one statement: records the webhook's arrival, marks the
/// Item `plaid_item_id` as needing a sync when the hint applies, and looks whether its lock is
/// held. `None`: no such Item.
pub async fn mark_dirty(
    db: &PgPool,
    plaid_item_id: &str,
    mark: Mark,
) -> Result<Option<Marked>, sqlx::Error> {
    let row = sqlx::query!(
        r#"update items set
               last_webhook_at = case when $2::timestamptz is not null
                                       and (last_webhook_at is null or last_webhook_at < $2)
                                      then $2 else last_webhook_at end,
               sync_requested_at = case when status <> 'removed' and (not $3 or sync_cursor is null)
                                        then now() else sync_requested_at end
           where plaid_item_id = $1
           returning id, status as "status: ItemStatus",
               (status <> 'removed' and (not $3 or sync_cursor is null)) as "marked!",
               -- Only a marked Item needs the look: the legacy twin of every change is not.
               (status <> 'removed' and (not $3 or sync_cursor is null) and exists (
                   select 1 from pg_locks
                   where locktype = 'advisory' and objsubid = 1 and granted
                     and database = (select oid from pg_database where datname = current_database())
                     and classid::bigint = (item_sync_lock_key(id) >> 32) & 4294967295
                     and objid::bigint = item_sync_lock_key(id) & 4294967295)) as "held!""#,
        plaid_item_id,
        mark.webhook_received_at,
        mark.only_without_cursor,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| Marked {
        item_id: row.id,
        status: row.status,
        marked: row.marked,
        held: row.held,
    }))
}

/// Whether a sync has been requested since the last run began: the holder's look after it
/// unlocked (step 4). `FOR SHARE` waits for a marking statement still in flight, one that saw
/// the lock held before this holder let it go, and then reads its mark.
pub async fn is_dirty(db: &PgPool, item_id: Uuid) -> Result<bool, sqlx::Error> {
    let dirty = sqlx::query_scalar!(
        r#"select sync_requested_at is not null as "dirty!" from items where id = $1 for share"#,
        item_id
    )
    .fetch_optional(db)
    .await?;
    Ok(dirty.unwrap_or(false))
}

/// The held lock of one Item, and the connection it lives on.
pub struct ItemLock {
    conn: PoolConnection<Postgres>,
    item_id: Uuid,
    released: bool,
}

impl ItemLock {
    /// Takes the Item's lock if no one holds it.
    pub async fn try_acquire(db: &PgPool, item_id: Uuid) -> Result<Option<Self>, sqlx::Error> {
        let mut conn = db.acquire().await?;
        let locked = sqlx::query_scalar!(
            r#"select pg_try_advisory_lock($1) as "locked!""#,
            lock_key(item_id)
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(locked.then_some(Self {
            conn,
            item_id,
            released: false,
        }))
    }

    /// The connection holding the lock, for the sync's own queries.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Unlocks and returns the connection to the pool.
    pub async fn release(mut self) {
        let unlocked = sqlx::query_scalar!(
            r#"select pg_advisory_unlock($1) as "unlocked!""#,
            lock_key(self.item_id)
        )
        .fetch_one(&mut *self.conn)
        .await;
        match unlocked {
            Ok(true) => self.released = true,
            Ok(false) => {
                tracing::warn!(item.id = %self.item_id, "the Item's sync lock was not held at release")
            }
            // Closing the session (on drop, below) frees the lock.
            Err(error) => {
                tracing::warn!(item.id = %self.item_id, error = %error, "could not release the Item's sync lock")
            }
        }
    }
}

impl Drop for ItemLock {
    fn drop(&mut self) {
        if !self.released {
            // Returned to the pool, the session would keep the lock and block the Item for
            // good; closed, PostgreSQL frees it.
            self.conn.close_on_drop();
        }
    }
}
