//! Delivering alerts to the configured alert webhook, with retries and backoff.
//!
//! Deliveries are rows of `alert_deliveries`, written with the alert change itself, one per
//! alert and kind (`raised`, `resolved`, `reminder`): that unique key is the de-duplication, so
//! a receiver hears of each change once however many webhooks repeated it. Each round claims
//! due rows with `for update skip locked` (several workers never send one row twice at once),
//! pushing their next attempt out by the attempt's backoff before sending, so a crash mid-send
//! retries later rather than never. A `resolved` waits while its `raised` is still pending, so
//! a receiver never hears "resolved" first. Receivers may still see a repeat after a crash
//! between send and commit: the body's `id` (and the `Idempotency-Key` header) is stable.
//!
//! Bodies: `generic` is plaidhook's JSON (`{id, event, alert}`), `slack` a Slack
//! incoming-webhook body (`text` plus a mrkdwn section).
//!
//! With `alerts.signing_secrets` set, every attempt is signed the Standard Webhooks way
//! ([`super::signing`]) over the exact bytes sent: `webhook-id` is the delivery id, the
//! timestamp is the attempt's. Slack ignores the extra headers; signing its deliveries is
//! harmless.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::signing::Signer;
use super::AlertDocument;
use crate::config::{AlertFormat, AlertSettings};
use crate::telemetry::{names, Repeated};

const BATCH: i64 = 50;

pub struct Notifier {
    db: PgPool,
    settings: AlertSettings,
    http: reqwest::Client,
    signer: Signer,
}

impl Notifier {
    pub fn new(db: PgPool, settings: AlertSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("plaidhook/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .build()?;
        let signer = Signer::new(settings.signing_keys()?);
        // Slack cannot check a signature, so only a generic receiver is worth the warning.
        if settings.enabled() && !signer.is_signing() && settings.format == AlertFormat::Generic {
            tracing::warn!(
                "alert webhooks are unsigned: set alerts.signing_secrets so the receiver can \
                 tell plaidhook's alerts from forgeries"
            );
        }
        Ok(Self {
            db,
            settings,
            http,
            signer,
        })
    }

    /// Delivers due alerts until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let poll = self.settings.poll_interval;
        let mut failing = Repeated::new("alert delivery round");
        loop {
            match self.round().await {
                Ok(n) if n as i64 == BATCH => {
                    failing.recovered();
                    continue;
                }
                Ok(_) => failing.recovered(),
                Err(error) => failing.failed(&error),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// One round: claims due deliveries and attempts each. Returns how many it attempted.
    pub async fn round(&self) -> anyhow::Result<usize> {
        if !self.settings.enabled() && !self.settings.oncall_enabled() {
            // No webhook configured: alerts are events only; nothing will ever send these.
            sqlx::query!("update alert_deliveries set status = 'skipped' where status = 'pending'")
                .execute(&self.db)
                .await?;
            return Ok(0);
        }
        let lease_secs = (self.settings.timeout * 2).as_secs_f64();
        let claimed = sqlx::query!(
            r#"update alert_deliveries d
               set attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
               where id in (
                   select id from alert_deliveries c
                   where c.status = 'pending' and c.next_attempt_at <= now()
                     and (c.kind = 'raised' or not exists (
                         select 1 from alert_deliveries r
                         where r.alert_id = c.alert_id and r.kind = 'raised'
                           and r.status = 'pending'))
                   order by c.id limit $1
                   for update skip locked)
               returning d.id, d.alert_id, d.kind, d.attempts"#,
            BATCH,
            lease_secs,
        )
        .fetch_all(&self.db)
        .await?;
        let count = claimed.len();
        for delivery in claimed {
            self.attempt(
                delivery.id,
                delivery.alert_id,
                &delivery.kind,
                delivery.attempts,
            )
            .await?;
        }
        Ok(count)
    }

    async fn attempt(
        &self,
        id: i64,
        alert_id: Uuid,
        kind: &str,
        attempts: i32,
    ) -> anyhow::Result<()> {
        let mut conn = self.db.acquire().await?;
        let Some(document) = super::document(&mut conn, alert_id).await? else {
            return Ok(());
        };
        drop(conn);
        let delivery_id = format!("{alert_id}:{kind}");
        let (url, format) = self.settings.target(kind);
        if url.expose_secret().trim().is_empty() {
            // No channel for this kind (on-call only, and no alert webhook): nothing to send.
            sqlx::query!(
                "update alert_deliveries set status = 'skipped' where id = $1",
                id
            )
            .execute(&self.db)
            .await?;
            return Ok(());
        }
        let body = match format {
            AlertFormat::Generic => generic_body(&delivery_id, kind, &document),
            AlertFormat::Slack => slack_body(kind, &document),
        };
        // Serialised once: the signature covers exactly these bytes.
        let body = serde_json::to_vec(&body)?;
        let mut request = self
            .http
            .post(url.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &delivery_id);
        let timestamp = chrono::Utc::now().timestamp();
        for (name, value) in self.signer.headers(&delivery_id, timestamp, &body) {
            request = request.header(name, value);
        }
        let result = request.body(body).send().await;
        let failure = match result {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("the alert webhook answered {}", response.status())),
            // without_url: the URL is a secret (Slack's carries its credential).
            Err(error) => Some(format!(
                "could not reach the alert webhook: {}",
                error.without_url()
            )),
        };
        match failure {
            None => {
                sqlx::query!(
                    "update alert_deliveries set status = 'delivered', delivered_at = now(),
                            last_error = null
                     where id = $1",
                    id
                )
                .execute(&self.db)
                .await?;
                metrics::counter!(names::ALERT_DELIVERIES, "outcome" => "delivered").increment(1);
                tracing::info!(alert.id = %alert_id, alert.delivery = kind, "alert delivered");
            }
            Some(error) => {
                let exhausted = attempts as u32 >= self.settings.max_attempts;
                let backoff = self.backoff(attempts as u32).as_secs_f64();
                sqlx::query!(
                    "update alert_deliveries set last_error = $2,
                            status = case when $3 then 'failed' else 'pending' end,
                            next_attempt_at = now() + make_interval(secs => $4)
                     where id = $1",
                    id,
                    error,
                    exhausted,
                    backoff,
                )
                .execute(&self.db)
                .await?;
                let outcome = if exhausted { "failed" } else { "retrying" };
                metrics::counter!(names::ALERT_DELIVERIES, "outcome" => outcome).increment(1);
                tracing::warn!(alert.id = %alert_id, alert.delivery = kind, attempts, error, outcome, "alert delivery failed");
            }
        }
        Ok(())
    }

    /// The wait after the `attempts`-th failure: doubling from the initial backoff, capped.
    fn backoff(&self, attempts: u32) -> Duration {
        let initial = self.settings.backoff_initial;
        let cap = self.settings.backoff_max;
        initial
            .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)))
            .min(cap)
    }
}

/// The event a delivery kind announces: `reminder` and `reminder.N` are reminders,
/// `link_renewed.N` a renewed repair link.
fn event_name(kind: &str) -> &'static str {
    match kind.split('.').next().unwrap_or(kind) {
        "raised" => "alert.raised",
        "resolved" => "alert.resolved",
        "escalated" => "alert.escalated",
        "link_renewed" => "alert.link_renewed",
        _ => "alert.reminder",
    }
}

/// plaidhook's own alert document.
pub fn generic_body(delivery_id: &str, kind: &str, alert: &AlertDocument) -> Value {
    json!({ "id": delivery_id, "event": event_name(kind), "alert": alert })
}

/// A Slack incoming-webhook body.
pub fn slack_body(kind: &str, alert: &AlertDocument) -> Value {
    let user = alert
        .item
        .client_user_id
        .as_deref()
        .unwrap_or("(unknown user)");
    let link = alert
        .repair
        .hosted_link
        .as_ref()
        .map(|link| {
            format!(
                "\nRepair link for the user (until {}): {}",
                link.expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                link.url
            )
        })
        .unwrap_or_default();
    let text = match event_name(kind) {
        "alert.raised" => format!(":rotating_light: *Plaid Item needs attention* ({})\n{}{link}", alert.cause, alert.message),
        "alert.resolved" => format!(
            ":white_check_mark: *Resolved* ({}): Item {} of user {user} is no longer `{}` (was raised at {}).",
            alert.resolution.as_deref().unwrap_or("resolved"),
            alert.item.id,
            alert.cause,
            alert.raised_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        "alert.escalated" => format!(
            ":sos: *Escalated: still open after every reminder* ({})\n{}{link}",
            alert.cause, alert.message
        ),
        "alert.link_renewed" => format!(
            ":link: *New repair link* ({})\n{}{link}",
            alert.cause, alert.message
        ),
        _ => format!(":alarm_clock: *Reminder* ({})\n{}{link}", alert.cause, alert.message),
    };
    json!({
        "text": text,
        "blocks": [{ "type": "section", "text": { "type": "mrkdwn", "text": text } }],
    })
}
