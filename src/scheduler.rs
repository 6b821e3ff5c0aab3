//! The safety net: what webhooks may have missed, found on a timer.
//!
//! Plaid's webhooks can be lost (an outage longer than Plaid's 24 h of redeliveries, a wrong
//! webhook URL) and a sync request can fail to publish. Each round, in one worker across all
//! replicas (a lease in `leases`, which holds no connection while the round uses the pool):
//! - Items that should sync (`active`, `pending_expiration`, `pending_disconnect`) with no
//!   successful sync for `scheduler.stale_after_secs` get a sync request (at most one per
//!   period per Item);
//! - Items in `login_required`, `error`, `revoked` or `pending_disconnect` not reconciled for
//!   `scheduler.error_recheck_secs` are re-checked with `/item/get`, so an Item Plaid quietly
//!   healed comes back (and syncs) without waiting for a webhook;
//! - open `pending_expiration` and `pending_disconnect` alerts whose consent ends within
//!   `scheduler.expiration_reminder_secs` get one reminder delivery (`alert.reminder`): Plaid
//!   announces a European Item's consent expiry with PENDING_EXPIRATION, a US or Canadian one's
//!   with PENDING_DISCONNECT (`INSTITUTION_TOKEN_EXPIRATION`).

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::SchedulerSettings;
use crate::items::{ItemStatus, Reconciler, Signal, StatusSource};
use crate::messages::{AlertDocument, Event, SyncRequester, SyncTrigger};

/// The lease of the scheduler: one round at a time across replicas.
const LEASE: &str = "scheduler";
/// Longer than a round takes (200 re-checks at Plaid's pace); a holder that died frees it then.
const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// Items handled per kind and round; the rest wait for the next round.
const ROUND_LIMIT: i64 = 200;

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    /// False when another replica held the round.
    pub ran: bool,
    pub syncs_requested: usize,
    pub rechecked: usize,
    pub reminders: usize,
}

/// What the safety net works with.
pub struct Scheduler {
    /// Who holds the lease when this scheduler runs a round.
    pub id: uuid::Uuid,
    pub db: PgPool,
    pub reconciler: Reconciler,
    pub sync_requests: SyncRequester,
    pub settings: SchedulerSettings,
}

impl Scheduler {
    /// Runs rounds every `scheduler.interval_secs` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        if !self.settings.enabled {
            return;
        }
        let interval = self.settings.interval;
        loop {
            match self.round().await {
                Ok(report) if report.ran => tracing::debug!(?report, "scheduler round"),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "scheduler round failed")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// One round of the safety net, if no other replica is running one.
    pub async fn round(&self) -> anyhow::Result<RoundReport> {
        if !crate::store::try_lease(&self.db, LEASE, self.id, LEASE_TTL).await? {
            return Ok(RoundReport::default());
        }
        let report = round(self).await;
        if let Err(error) = crate::store::release_lease(&self.db, LEASE, self.id).await {
            // It expires on its own; the next round waits for that at worst.
            tracing::warn!(error = %error, "could not release the scheduler lease");
        }
        report
    }
}

async fn round(state: &Scheduler) -> anyhow::Result<RoundReport> {
    let settings = &state.settings;
    let mut report = RoundReport {
        ran: true,
        ..Default::default()
    };

    let stale_after = settings.stale_after.as_secs_f64();
    let stale = sqlx::query!(
        "select id, plaid_item_id from items
         where status = any($3)
           and coalesce(last_synced_at, created_at) < now() - make_interval(secs => $1)
           and (scheduler_sync_requested_at is null
                or scheduler_sync_requested_at < now() - make_interval(secs => $1))
         order by coalesce(last_synced_at, created_at) limit $2",
        stale_after,
        ROUND_LIMIT,
        &ItemStatus::names(&ItemStatus::SYNCING),
    )
    .fetch_all(&state.db)
    .await?;
    for item in stale {
        let requested = state
            .sync_requests
            .request(&item.plaid_item_id, SyncTrigger::Scheduler)
            .await;
        if let Err(error) = requested {
            tracing::warn!(item.id = %item.id, error = %error, "scheduler could not request a sync");
            break;
        }
        sqlx::query!(
            "update items set scheduler_sync_requested_at = now() where id = $1",
            item.id
        )
        .execute(&state.db)
        .await?;
        report.syncs_requested += 1;
    }

    let recheck_after = settings.error_recheck.as_secs_f64();
    let unhealthy = sqlx::query_scalar!(
        "select id from items
         where status = any($3)
           and coalesce(health_checked_at, updated_at) < now() - make_interval(secs => $1)
         order by coalesce(health_checked_at, updated_at) limit $2",
        recheck_after,
        ROUND_LIMIT,
        &ItemStatus::names(&ItemStatus::AWAITING_REPAIR),
    )
    .fetch_all(&state.db)
    .await?;
    for item_id in unhealthy {
        let reconciled = state
            .reconciler
            .reconcile(item_id, Signal::Recheck, StatusSource::Scheduler, None)
            .await;
        match reconciled {
            Ok(reconciled) => {
                report.rechecked += 1;
                if reconciled.repaired() {
                    state
                        .sync_requests
                        .request_after_repair(&reconciled.plaid_item_id)
                        .await;
                }
            }
            Err(error) => {
                tracing::warn!(item.id = %item_id, error = %error, "scheduler re-check failed")
            }
        }
    }

    report.reminders =
        remind_expirations(state, settings.expiration_reminder.as_secs_f64()).await?;
    Ok(report)
}

/// One reminder per open `pending_expiration` or `pending_disconnect` alert whose consent ends
/// within `within_secs`.
async fn remind_expirations(state: &Scheduler, within_secs: f64) -> anyhow::Result<usize> {
    let due = sqlx::query!(
        "select a.id, a.item_id from alerts a join items i on i.id = a.item_id
         where a.cause in ('pending_expiration', 'pending_disconnect') and a.resolved_at is null
           and i.consent_expires_at is not null
           and i.consent_expires_at < now() + make_interval(secs => $1)
           and not exists (select 1 from alert_deliveries d
                           where d.alert_id = a.id and d.kind = 'reminder')
         limit $2",
        within_secs,
        ROUND_LIMIT,
    )
    .fetch_all(&state.db)
    .await?;
    let mut reminded = 0;
    for alert in due {
        let mut tx = state.db.begin().await?;
        if crate::alerts::enqueue_delivery(&mut tx, alert.id, "reminder").await? {
            let document: Option<AlertDocument> =
                crate::alerts::document(&mut tx, alert.id).await?;
            if let Some(document) = document {
                let event = Event::AlertReminder(&document);
                crate::outbox::enqueue(&mut tx, Some(alert.item_id), &event).await?;
            }
            reminded += 1;
        }
        tx.commit().await?;
    }
    Ok(reminded)
}
