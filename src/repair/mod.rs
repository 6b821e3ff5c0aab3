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
//! Plaid's LINK webhooks tell how each session ended: see `items::link_sessions`. This module
//! sits above `alerts` and `items` (it uses both; neither uses it).
//!
//! - here: [`HostedLinks`] and [`HostedLinks::open`], which opens one repair session.
//! - `rounds`: the rounds above.

mod rounds;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::{AlertSettings, LinkSettings};
use crate::items::reconcile::Reconciler;
use crate::items::rows::{self, CredentialsError};
use crate::plaid::client::PlaidCallError;
use crate::plaid::{
    LinkTokenCreateHostedLink, LinkTokenCreateRequest, LinkTokenCreateResponse, LinkTokenUpdate,
    LinkTokenUser,
};

/// How long an alert that needs the user waits for its repair link before it is announced
/// without one (Plaid down, rate limited).
pub const LINK_WAIT: Duration = Duration::from_secs(60);
/// One round at a time across replicas: two would open two links for one alert.
pub(crate) const LEASE: &str = "alert_links";
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(300);
/// Alerts handled per step and round; the rest wait for the next round.
pub(crate) const ROUND_LIMIT: i64 = 50;

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
        let item = sqlx::query!(
            "select client_user_id, new_accounts_available from items
             where id = $1 and status <> 'removed'",
            item_id
        )
        .fetch_optional(self.db())
        .await?
        .ok_or(HostedLinkError::NotFound(item_id))?;
        // Plaid requires a user; Items linked elsewhere may not have one stored.
        let client_user_id = item
            .client_user_id
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
                // Link offers the accounts the user has not shared yet.
                account_selection_enabled: item.new_accounts_available.then_some(true),
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
}
