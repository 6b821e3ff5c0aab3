//! Hosted Link repair URLs, and what happens to an alert after it is raised.
//!
//! An alert that needs the user (login required, consent expiring, institution disconnecting)
//! waits, unannounced, until plaidhook has opened a Hosted Link session for its Item
//! (`/link/token/create` in update mode with `hosted_link`): then `alert.raised` and the first
//! delivery carry `repair.hosted_link`. If Plaid cannot make one, the alert is announced without
//! it after [`LINK_WAIT`] (or at once when Plaid says it never will): a link must not hold up
//! the news.
//!
//! Each round, in one worker across all replicas (the `alert_links` lease):
//! 1. announce the alerts waiting for a link (opening one first);
//! 2. renew the link of every open alert whose link expires within
//!    `link.hosted_renew_before_secs`, announced as `alert.link_renewed`;
//! 3. remind alerts open for `alerts.remind_after_secs` since raised or last reminded, at most
//!    `alerts.max_reminders` times (with a fresh link if the old one is gone), then escalate
//!    once to the on-call channel (`alert.escalated`).
//!
//! Plaid's LINK webhooks tell how each session ended: see `items::link_sessions`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{enqueue_delivery, AlertCause, AlertDocument};
use crate::config::{AlertSettings, LinkSettings};
use crate::items::reconcile::Reconciler;
use crate::items::rows::{self, CredentialsError};
use crate::messages::Event;
use crate::plaid::client::PlaidCallError;
use crate::plaid::{
    LinkTokenCreateHostedLink, LinkTokenCreateRequest, LinkTokenCreateResponse, LinkTokenUpdate,
    LinkTokenUser,
};

/// How long an alert that needs the user waits for its repair link before it is announced
/// without one (Plaid down, rate limited).
pub const LINK_WAIT: Duration = Duration::from_secs(60);
/// One round at a time across replicas: two would open two links for one alert.
const LEASE: &str = "alert_links";
const LEASE_TTL: Duration = Duration::from_secs(300);
/// Alerts handled per step and round; the rest wait for the next round.
const ROUND_LIMIT: i64 = 50;

/// A Hosted Link session plaidhook opened.
#[derive(Debug, Clone)]
pub struct OpenedLink {
    pub link_token: String,
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum HostedLinkError {
    #[error("no Item {0}")]
    NotFound(Uuid),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("/link/token/create failed: {0}")]
    Plaid(#[source] PlaidCallError),
    #[error("Plaid answered without a hosted_link_url")]
    NoUrl,
    #[error(transparent)]
    Credentials(CredentialsError),
}

impl From<CredentialsError> for HostedLinkError {
    fn from(error: CredentialsError) -> Self {
        match error {
            CredentialsError::Database(error) => Self::Database(error),
            CredentialsError::NotFound(id) => Self::NotFound(id),
            unreadable @ CredentialsError::Unreadable(_) => Self::Credentials(unreadable),
        }
    }
}

impl HostedLinkError {
    /// Worth trying again in a moment.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(_) => true,
            Self::Plaid(PlaidCallError::Plaid { error, .. }) => error.is_retryable(),
            Self::Plaid(_) => true,
            Self::NotFound(_) | Self::NoUrl | Self::Credentials(_) => false,
        }
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LinksReport {
    /// False when another replica held the round.
    pub ran: bool,
    pub announced: usize,
    pub renewed: usize,
    pub reminded: usize,
    pub escalated: usize,
}

/// Opens repair links and follows open alerts. Cheap to clone.
#[derive(Clone)]
pub struct HostedLinks {
    /// Who holds the lease when this runs a round.
    pub id: Uuid,
    pub reconciler: Reconciler,
    pub link: LinkSettings,
    pub alerts: AlertSettings,
    /// The webhook URL Plaid sends the session's LINK webhooks to.
    pub webhook_url: String,
}

impl HostedLinks {
    fn db(&self) -> &PgPool {
        &self.reconciler.db
    }

    /// Opens a Hosted Link session that repairs the Item (update mode) and stores it; the
    /// Item's older open sessions are superseded. `alert_id` ties it to the alert it serves.
    pub async fn open(
        &self,
        item_id: Uuid,
        alert_id: Option<Uuid>,
    ) -> Result<OpenedLink, HostedLinkError> {
        let client_user_id = sqlx::query_scalar!(
            "select client_user_id from items where id = $1 and status <> 'removed'",
            item_id
        )
        .fetch_optional(self.db())
        .await?
        .ok_or(HostedLinkError::NotFound(item_id))?
        // Plaid requires a user; Items linked elsewhere may not have one stored.
        .unwrap_or_else(|| format!("plaidhook-item-{item_id}"));
        let mut conn = self.db().acquire().await?;
        let access_token = rows::credentials(&mut conn, &self.reconciler.tokens, item_id)
            .await?
            .access_token;
        drop(conn);
        let settings = &self.link;
        let redirect = settings.completion_redirect_uri.trim();
        let request = LinkTokenCreateRequest {
            client_id: None,
            secret: None,
            client_name: settings.client_name.clone(),
            language: settings.language.clone(),
            country_codes: settings.country_codes.clone(),
            user: Some(LinkTokenUser {
                client_user_id,
                email_address: None,
                phone_number: None,
            }),
            products: None,
            webhook: Some(self.webhook_url.clone()),
            access_token: Some(access_token),
            redirect_uri: None,
            update: Some(LinkTokenUpdate {
                account_selection_enabled: None,
                reauthorization_enabled: None,
            }),
            transactions: None,
            institution_id: None,
            user_id: None,
            hosted_link: Some(LinkTokenCreateHostedLink {
                delivery_method: None,
                completion_redirect_uri: (!redirect.is_empty()).then(|| redirect.to_owned()),
                url_lifetime_seconds: Some(settings.hosted_url_lifetime.as_secs()),
                is_mobile_app: None,
            }),
        };
        let created: LinkTokenCreateResponse = self
            .reconciler
            .plaid
            .call("/link/token/create", Some(item_id), &request)
            .await
            .map_err(HostedLinkError::Plaid)?;
        let url = created.hosted_link_url.ok_or(HostedLinkError::NoUrl)?;
        let mut tx = self.db().begin().await?;
        sqlx::query!(
            "update link_sessions set status = 'superseded'
             where item_id = $1 and status = 'open'",
            item_id
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "insert into link_sessions (link_token, item_id, alert_id, hosted_link_url, expires_at)
             values ($1, $2, $3, $4, $5)",
            created.link_token.as_str(),
            item_id,
            alert_id,
            url,
            created.expiration,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(item.id = %item_id, expires_at = %created.expiration, "Hosted Link repair session opened");
        Ok(OpenedLink {
            link_token: created.link_token.into_inner(),
            url,
            expires_at: created.expiration,
        })
    }

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
            if super::announce(&mut tx, alert.id).await? {
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
    let document: Option<AlertDocument> = super::document(tx, alert_id).await?;
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
