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
//! 3. the holder clears the mark *before* each run and runs again while it finds it set;
//! 4. after unlocking, the holder looks once more: a request that marked the Item after the
//!    holder's last look but found the lock still held would otherwise be lost.

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use uuid::Uuid;

/// The advisory lock key of an Item: its UUID folded to 64 bits. Two Items sharing a key would
/// only serialise each other's syncs, and at 2^-64 per pair it does not happen in practice.
pub fn lock_key(item_id: Uuid) -> i64 {
    let (high, low) = item_id.as_u64_pair();
    (high ^ low) as i64
}

/// Marks the Item as needing a sync.
pub async fn mark_dirty(db: &PgPool, item_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update items set sync_requested_at = now() where id = $1",
        item_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Whether a sync has been requested since the last run began.
pub async fn is_dirty(db: &PgPool, item_id: Uuid) -> Result<bool, sqlx::Error> {
    let dirty = sqlx::query_scalar!(
        r#"select sync_requested_at is not null as "dirty!" from items where id = $1"#,
        item_id
    )
    .fetch_optional(db)
    .await?;
    Ok(dirty.unwrap_or(false))
}

/// Whether some session holds the Item's lock right now (a cheap look before queueing for a
/// sync slot; the lock itself is still taken with `try_acquire`).
pub async fn is_held(db: &PgPool, item_id: Uuid) -> Result<bool, sqlx::Error> {
    let key = lock_key(item_id) as u64;
    let (class_id, object_id) = ((key >> 32) as i64, (key & 0xffff_ffff) as i64);
    sqlx::query_scalar!(
        r#"select exists (
               select 1 from pg_locks
               where locktype = 'advisory' and objsubid = 1 and granted
                 and database = (select oid from pg_database where datname = current_database())
                 and classid::bigint = $1 and objid::bigint = $2
           ) as "held!""#,
        class_id,
        object_id
    )
    .fetch_one(db)
    .await
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

    /// Clears the Item's dirty mark; true if it was set (then a run is due).
    pub async fn take_dirty(&mut self) -> Result<bool, sqlx::Error> {
        let taken = sqlx::query_scalar!(
            "update items set sync_requested_at = null
             where id = $1 and sync_requested_at is not null returning id",
            self.item_id
        )
        .fetch_optional(&mut *self.conn)
        .await?;
        Ok(taken.is_some())
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
