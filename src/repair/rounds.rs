//! The rounds of [`HostedLinks`]: announcing the alerts that waited for a link, renewing links
//! about to expire, reminding and escalating. See the module map in `repair`.

use chrono::Utc;
use sqlx::{Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{HostedLinks, LinksReport, LEASE, LEASE_TTL, LINK_WAIT, ROUND_LIMIT};
use crate::alerts::{enqueue_delivery, AlertCause, AlertDocument};
use crate::messages::Event;

impl HostedLinks {
    /// Runs rounds every `alerts.poll_interval` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failing = crate::telemetry::Repeated::new("alert links round");
        loop {
            match self.round().await {
                Ok(_) => failing.recovered(),
                Err(error) => failing.failed(&error),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.alerts.poll_interval) => {}
            }
        }
    }

    /// One round, if no other replica is running one.
    pub async fn round(&self) -> anyhow::Result<LinksReport> {
        if !crate::store::try_lease(self.db(), LEASE, self.id, LEASE_TTL).await? {
            return Ok(LinksReport::default());
        }
        let report = self.round_held().await;
        if let Err(error) = crate::store::release_lease(self.db(), LEASE, self.id).await {
            tracing::warn!(error = %error, "could not release the alert links lease");
        }
        report
    }

    async fn round_held(&self) -> anyhow::Result<LinksReport> {
        let mut report = LinksReport {
            ran: true,
            ..Default::default()
        };
        report.announced = self.announce_waiting().await?;
        if self.link.hosted {
            report.renewed = self.renew_expiring().await?;
        }
        let (reminded, escalated) = self.remind_open().await?;
        report.reminded = reminded;
        report.escalated = escalated;
        Ok(report)
    }

    /// Step 1: alerts waiting for their repair link.
    async fn announce_waiting(&self) -> anyhow::Result<usize> {
        let waiting = sqlx::query!(
            "select id, item_id, raised_at from alerts
             where announced_at is null and resolved_at is null
             order by raised_at limit $1",
            ROUND_LIMIT
        )
        .fetch_all(self.db())
        .await?;
        let mut announced = 0;
        for alert in waiting {
            if self.link.hosted {
                if let Err(error) = self.open(alert.item_id, Some(alert.id)).await {
                    let waited = (Utc::now() - alert.raised_at).to_std().unwrap_or_default();
                    if error.is_transient() && waited < LINK_WAIT {
                        tracing::debug!(alert.id = %alert.id, error = %error, "repair link not ready; trying again");
                        continue;
                    }
                    tracing::warn!(
                        item.id = %alert.item_id,
                        alert.id = %alert.id,
                        error = %error,
                        "no repair link for the alert; it is announced without one"
                    );
                }
            }
            let mut tx = self.db().begin().await?;
            if crate::alerts::announce(&mut tx, alert.id).await? {
                announced += 1;
            }
            tx.commit().await?;
        }
        Ok(announced)
    }

    /// Step 2: open alerts whose link is about to expire get a fresh one, announced.
    async fn renew_expiring(&self) -> anyhow::Result<usize> {
        let renew_before = self.link.hosted_renew_before.as_secs_f64();
        let expiring = sqlx::query!(
            "select a.id, a.item_id,
                    (select count(*) from link_sessions s where s.alert_id = a.id) as \"links!\"
             from alerts a
             where a.resolved_at is null and a.announced_at is not null
               and a.cause = any($1)
               and exists (select 1 from link_sessions s
                           where s.alert_id = a.id and s.status = 'open'
                             and s.expires_at < now() + make_interval(secs => $2))
               and not exists (select 1 from link_sessions s
                               where s.item_id = a.item_id and s.status = 'open'
                                 and s.expires_at >= now() + make_interval(secs => $2))
             limit $3",
            &needs_user_causes(),
            renew_before,
            ROUND_LIMIT,
        )
        .fetch_all(self.db())
        .await?;
        let mut renewed = 0;
        for alert in expiring {
            if let Err(error) = self.open(alert.item_id, Some(alert.id)).await {
                tracing::warn!(item.id = %alert.item_id, alert.id = %alert.id, error = %error, "could not renew the repair link");
                continue;
            }
            let mut tx = self.db().begin().await?;
            let kind = format!("link_renewed.{}", alert.links);
            if deliver(&mut tx, alert.id, &kind).await? {
                renewed += 1;
            }
            tx.commit().await?;
        }
        Ok(renewed)
    }

    /// Step 3: reminders, then one escalation.
    async fn remind_open(&self) -> anyhow::Result<(usize, usize)> {
        let max = self.alerts.max_reminders as i32;
        if max == 0 {
            return Ok((0, 0));
        }
        let after = self.alerts.remind_after.as_secs_f64();
        let due = sqlx::query!(
            "select id, item_id, cause, reminders_sent from alerts
             where resolved_at is null and announced_at is not null and escalated_at is null
               and coalesce(last_reminded_at, announced_at) < now() - make_interval(secs => $1)
             order by coalesce(last_reminded_at, announced_at) limit $2",
            after,
            ROUND_LIMIT,
        )
        .fetch_all(self.db())
        .await?;
        let (mut reminded, mut escalated) = (0, 0);
        for alert in due {
            let needs_link = AlertCause::parse(&alert.cause).is_some_and(AlertCause::needs_user)
                && self.link.hosted;
            if alert.reminders_sent < max
                && needs_link
                && !self.has_fresh_link(alert.item_id).await?
            {
                if let Err(error) = self.open(alert.item_id, Some(alert.id)).await {
                    tracing::warn!(item.id = %alert.item_id, alert.id = %alert.id, error = %error, "no fresh repair link for the reminder");
                }
            }
            let mut tx = self.db().begin().await?;
            if alert.reminders_sent < max {
                let n = alert.reminders_sent + 1;
                sqlx::query!(
                    "update alerts set reminders_sent = $2, last_reminded_at = now() where id = $1",
                    alert.id,
                    n
                )
                .execute(&mut *tx)
                .await?;
                deliver(&mut tx, alert.id, &format!("reminder.{n}")).await?;
                reminded += 1;
            } else {
                sqlx::query!(
                    "update alerts set escalated_at = now() where id = $1",
                    alert.id
                )
                .execute(&mut *tx)
                .await?;
                deliver(&mut tx, alert.id, "escalated").await?;
                escalated += 1;
                tracing::warn!(item.id = %alert.item_id, alert.id = %alert.id, reminders = alert.reminders_sent, "alert escalated to on-call");
            }
            tx.commit().await?;
        }
        Ok((reminded, escalated))
    }

    async fn has_fresh_link(&self, item_id: Uuid) -> Result<bool, sqlx::Error> {
        let renew_before = self.link.hosted_renew_before.as_secs_f64();
        sqlx::query_scalar!(
            r#"select exists (select 1 from link_sessions
                              where item_id = $1 and status = 'open'
                                and expires_at >= now() + make_interval(secs => $2)) as "fresh!""#,
            item_id,
            renew_before,
        )
        .fetch_one(self.db())
        .await
    }
}

fn needs_user_causes() -> Vec<String> {
    AlertCause::ALL
        .into_iter()
        .filter(|cause| cause.needs_user())
        .map(|cause| cause.as_str().to_owned())
        .collect()
}

/// Queues delivery `kind` (`reminder.N`, `escalated`, `link_renewed.N`) of the alert and its
/// event, read back with the Item's current link. False when that delivery existed already.
async fn deliver(
    tx: &mut Transaction<'_, Postgres>,
    alert_id: Uuid,
    kind: &str,
) -> Result<bool, sqlx::Error> {
    if !enqueue_delivery(tx, alert_id, kind).await? {
        return Ok(false);
    }
    let document: Option<AlertDocument> = crate::alerts::document(tx, alert_id).await?;
    if let Some(document) = document {
        let event = match kind.split('.').next() {
            Some("escalated") => Event::AlertEscalated(&document),
            Some("link_renewed") => Event::AlertLinkRenewed(&document),
            _ => Event::AlertReminder(&document),
        };
        crate::outbox::enqueue(tx, Some(document.item.id), &event).await?;
    }
    Ok(true)
}
