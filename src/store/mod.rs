//! PostgreSQL access: the connection pool, database creation and migrations.
//!
//! Queries live beside the domain that owns them (the Item rows in `items::rows`); this module
//! knows how to reach the database and bring its schema up to date (`migrations/`, embedded at
//! compile time), takes the advisory locks of the one-at-a-time loops, and records Plaid calls
//! (`api_calls`, the recorder the Plaid client is given).

pub mod api_calls;

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres};

use crate::config::DatabaseSettings;

/// The schema, compiled into the binary so `plaidhook migrate` needs no files beside it.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connect options parsed from the configured URL.
pub fn connect_options(settings: &DatabaseSettings) -> anyhow::Result<PgConnectOptions> {
    settings
        .url
        .expose_secret()
        .parse::<PgConnectOptions>()
        .context("invalid setting `database.url`")
}

/// A connection idle for longer than this is pinged before it is handed out.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// Pool options shared by every pool: sqlx's default pings each connection on *every* acquire,
/// one more round trip for every query run on the pool. A connection used within the last
/// second is handed out as it is; one idle longer, which may have outlived a database restart,
/// is pinged first. A busy connection that died with the server in that second fails its one
/// query, which every caller already treats as a transient database error (and sqlx closes it).
fn pool_options(max_connections: u32, settings: &DatabaseSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// A pool that connects on first use, so the process starts (and reports not ready) while the
/// database is down instead of refusing to start.
pub fn lazy_pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    Ok(pool_options(settings.max_connections, settings)
        .connect_lazy_with(connect_options(settings)?))
}

/// Connections of the Plaid call log's own pool (see `api_calls`).
const CALL_LOG_CONNECTIONS: u32 = 2;

/// The call log's own small pool. A call is recorded while its caller may hold a connection of
/// the main pool (a sync's lock, a reconcile's transaction): drawing the record's connection
/// from that same pool would let callers that each hold one wait for one more, all of them,
/// for ever. From a pool of its own, the wait is bounded by the call log's deadline alone.
pub fn call_log_pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    Ok(pool_options(CALL_LOG_CONNECTIONS, settings).connect_lazy_with(connect_options(settings)?))
}

/// Creates the database if it is missing, then applies pending migrations.
pub async fn migrate(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let url = settings.url.expose_secret();
    if !Postgres::database_exists(url)
        .await
        .context("could not reach PostgreSQL at `database.url`")?
    {
        tracing::info!("creating database");
        Postgres::create_database(url)
            .await
            .context("could not create the database named in `database.url`")?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(connect_options(settings)?)
        .await
        .context("could not connect to `database.url`")?;
    MIGRATOR
        .run(&pool)
        .await
        .context("applying database migrations failed")?;
    pool.close().await;
    Ok(())
}

/// Takes the transaction-scoped advisory lock `key` if it is free; false if another session
/// holds it. The lock is released when `tx` ends. Background loops that must run one at a time
/// across replicas and do their work inside that transaction (spool relay, outbox relay) take
/// one per round.
pub async fn try_xact_lock(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    key: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(r#"select pg_try_advisory_xact_lock($1) as "locked!""#, key)
        .fetch_one(&mut **tx)
        .await
}

/// Takes the lease `name` for `ttl` if it is free, expired, or already `holder`'s. Unlike
/// [`try_xact_lock`], it holds no connection while the work it guards runs.
pub async fn try_lease(
    db: &PgPool,
    name: &str,
    holder: uuid::Uuid,
    ttl: std::time::Duration,
) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query_scalar!(
        "insert into leases (name, holder, expires_at)
         values ($1, $2, now() + make_interval(secs => $3))
         on conflict (name) do update set holder = excluded.holder, expires_at = excluded.expires_at
           where leases.expires_at < now() or leases.holder = excluded.holder
         returning holder",
        name,
        holder,
        ttl.as_secs_f64(),
    )
    .fetch_optional(db)
    .await?;
    Ok(taken.is_some())
}

/// Gives the lease back early (it would expire anyway).
pub async fn release_lease(db: &PgPool, name: &str, holder: uuid::Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from leases where name = $1 and holder = $2",
        name,
        holder
    )
    .execute(db)
    .await?;
    Ok(())
}

/// True when a trivial query answers within the pool's acquire timeout.
pub async fn is_reachable(pool: &PgPool) -> bool {
    sqlx::query("select 1").execute(pool).await.is_ok()
}

/// How the database's schema compares with the migrations compiled into this binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// Every migration of this binary is applied (a newer binary may have applied more: its
    /// migrations keep the schema readable by the previous release, so that is current too).
    Current,
    /// This many of the binary's migrations are not applied: queries would fail.
    Behind { pending: usize },
}

/// Compares the applied migrations (`_sqlx_migrations`) with [`MIGRATOR`]'s. A process started
/// with `database.migrate_on_start = false` before `plaidhook migrate` ran is not ready.
pub async fn schema_state(db: &PgPool) -> Result<SchemaState, sqlx::Error> {
    // Not a `query!`: the table is sqlx's own, absent until the first migration runs.
    let exists: bool = sqlx::query_scalar("select to_regclass('_sqlx_migrations') is not null")
        .fetch_one(db)
        .await?;
    let applied: Vec<i64> = if exists {
        sqlx::query_scalar("select version from _sqlx_migrations where success")
            .fetch_all(db)
            .await?
    } else {
        Vec::new()
    };
    let pending = MIGRATOR
        .iter()
        .filter(|migration| !applied.contains(&migration.version))
        .count();
    Ok(if pending == 0 {
        SchemaState::Current
    } else {
        SchemaState::Behind { pending }
    })
}
