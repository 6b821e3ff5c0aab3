//! Retention: the records that grow with traffic are deleted once older than configured.
//!
//! `outbox` (published rows: a second copy of every synced transaction), `plaid_api_calls`,
//! `sync_runs` (finished ones) and `item_status_history` would otherwise grow for ever. Each
//! round, in one worker across replicas (a lease), deletes in batches of `retention.batch`
//! rows, so no statement holds locks or writes WAL for long, and counts what it deleted
//! (`plaidhook_retention_deleted_total{table}`). Rows that still matter are never candidates:
//! unpublished outbox rows, running sync runs. Each round also deletes the staged pages
//! (`sync_staging`) of sync runs no longer running.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::RetentionSettings;
use crate::telemetry::names;

const LEASE: &str = "retention";
const LEASE_TTL: Duration = Duration::from_secs(3600);

/// Rows deleted per table in one round.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub outbox: u64,
    pub api_calls: u64,
    pub sync_runs: u64,
    pub status_history: u64,
}

pub struct Retention {
    pub id: Uuid,
    pub db: PgPool,
    pub settings: RetentionSettings,
}

impl Retention {
    /// Prunes every `retention.interval_secs` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        if !self.settings.enabled {
            return;
        }
        loop {
            if let Err(error) = self.round().await {
                tracing::warn!(error = format!("{error:#}"), "retention round failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.settings.interval) => {}
            }
        }
    }

    /// One round; `None` when another replica holds it.
    pub async fn round(&self) -> Result<Option<Pruned>, sqlx::Error> {
        if !crate::store::try_lease(&self.db, LEASE, self.id, LEASE_TTL).await? {
            return Ok(None);
        }
        let pruned = self.prune().await;
        // Staged pages of sync runs that died, and of clean-ups that failed.
        match crate::sync::staging::sweep(&self.db).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "retention deleted staged rows of finished sync runs"),
            Err(error) => tracing::warn!(error = %error, "could not sweep sync staging"),
        }
        if let Err(error) = crate::store::release_lease(&self.db, LEASE, self.id).await {
            tracing::warn!(error = %error, "could not release the retention lease");
        }
        let pruned = pruned?;
        if pruned != Pruned::default() {
            tracing::info!(
                outbox = pruned.outbox,
                api_calls = pruned.api_calls,
                sync_runs = pruned.sync_runs,
                status_history = pruned.status_history,
                "retention deleted old rows"
            );
        }
        Ok(Some(pruned))
    }

    async fn prune(&self) -> Result<Pruned, sqlx::Error> {
        let s = &self.settings;
        Ok(Pruned {
            outbox: self.table(Table::Outbox, s.outbox_days).await?,
            api_calls: self.table(Table::ApiCalls, s.api_calls_days).await?,
            sync_runs: self.table(Table::SyncRuns, s.sync_runs_days).await?,
            status_history: self
                .table(Table::StatusHistory, s.status_history_days)
                .await?,
        })
    }

    /// Deletes `table`'s rows older than `days`, a batch at a time, until none is left.
    async fn table(&self, table: Table, days: i32) -> Result<u64, sqlx::Error> {
        let mut deleted = 0;
        if days > 0 {
            loop {
                let n = table
                    .delete_batch(&self.db, days, self.settings.batch)
                    .await?;
                deleted += n;
                if n < self.settings.batch as u64 {
                    break;
                }
            }
        }
        metrics::counter!(names::RETENTION_DELETED, "table" => table.name()).increment(deleted);
        Ok(deleted)
    }
}

#[derive(Debug, Clone, Copy)]
enum Table {
    Outbox,
    ApiCalls,
    SyncRuns,
    StatusHistory,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Outbox => "outbox",
            Table::ApiCalls => "plaid_api_calls",
            Table::SyncRuns => "sync_runs",
            Table::StatusHistory => "item_status_history",
        }
    }

    async fn delete_batch(self, db: &PgPool, days: i32, batch: i64) -> Result<u64, sqlx::Error> {
        let done = match self {
            Table::Outbox => {
                sqlx::query!(
                    "delete from outbox where id in (
                         select id from outbox
                         where published_at < now() - make_interval(days => $1)
                         limit $2)",
                    days,
                    batch
                )
                .execute(db)
                .await?
            }
            Table::ApiCalls => {
                sqlx::query!(
                    "delete from plaid_api_calls where id in (
                         select id from plaid_api_calls
                         where created_at < now() - make_interval(days => $1)
                         limit $2)",
                    days,
                    batch
                )
                .execute(db)
                .await?
            }
            Table::SyncRuns => {
                sqlx::query!(
                    "delete from sync_runs where id in (
                         select id from sync_runs
                         where outcome <> 'running'
                           and finished_at < now() - make_interval(days => $1)
                         limit $2)",
                    days,
                    batch
                )
                .execute(db)
                .await?
            }
            Table::StatusHistory => {
                sqlx::query!(
                    "delete from item_status_history where id in (
                         select id from item_status_history
                         where created_at < now() - make_interval(days => $1)
                         limit $2)",
                    days,
                    batch
                )
                .execute(db)
                .await?
            }
        };
        Ok(done.rows_affected())
    }
}
