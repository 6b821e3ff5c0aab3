//! Webhook delivery, as Plaid does it: POST the exact body bytes with a fresh
//! `Plaid-Verification` JWT per attempt; anything but a 200 within the timeout is retried after
//! 30 s, then ×4 each time, for up to 24 hours (all scaled by `webhook_time_scale`), except to
//! a receiver that has rejected more than 90% of the webhooks sent to it over the last
//! 24 hours (`ReceiverLog`): Plaid "won't retry webhooks" to it. Faults
//! from the control API apply here: extra copies of each webhook, and a window of webhooks
//! held back and released in reverse order. Every attempt is recorded in the delivery log.

use super::bodies::OutgoingWebhook;
use super::Sim;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const FIRST_RETRY_SECS: f64 = 30.0;
const RETRY_FACTOR: f64 = 4.0;
const GIVE_UP_AFTER_SECS: f64 = 24.0 * 3600.0;
/// "Plaid won't retry webhooks if we detect that the webhook receiver endpoint has rejected
/// more than 90% of webhooks sent by Plaid over the last 24 hours" (Plaid's webhook docs,
/// "Webhook retries").
const REJECTION_WINDOW_SECS: f64 = 24.0 * 3600.0;
const REJECTION_RATE: f64 = 0.9;

/// What each receiver URL did with the webhooks sent to it (every attempt counts as one sent):
/// the record behind Plaid's rule of not retrying to an endpoint that rejects nearly all.
#[derive(Debug, Default)]
pub struct ReceiverLog {
    by_url: HashMap<String, VecDeque<(Instant, bool)>>,
}

impl ReceiverLog {
    /// Record one attempt at `url` (`accepted`: answered 200 in time) and say whether the
    /// endpoint now stands above Plaid's rejection rate over `window`, counting only once at
    /// least `min_sent` webhooks were sent to it there (Plaid gives no minimum; one rejected
    /// webhook is not a rate, so the simulator needs a sample, `sim.webhook_rejection_sample`).
    pub fn record(
        &mut self,
        url: &str,
        accepted: bool,
        now: Instant,
        window: Duration,
        min_sent: u32,
    ) -> bool {
        let log = self.by_url.entry(url.to_owned()).or_default();
        log.push_back((now, accepted));
        while log
            .front()
            .is_some_and(|&(at, _)| now.duration_since(at) >= window)
        {
            log.pop_front();
        }
        let sent = log.len();
        let rejected = log.iter().filter(|(_, accepted)| !accepted).count();
        sent >= min_sent.max(1) as usize && rejected as f64 > REJECTION_RATE * sent as f64
    }
}

/// One delivery attempt, for tests and `GET /sim/webhooks`.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    /// Identifies one logical webhook; duplicates and retries share it.
    pub webhook_id: u64,
    /// 0 for the original, 1.. for injected duplicates.
    pub copy: u32,
    /// 1 for the first attempt, 2.. for redeliveries.
    pub attempt: u32,
    pub url: String,
    pub item_id: Option<String>,
    pub webhook_type: String,
    pub webhook_code: String,
    pub kid: String,
    pub sent_at: DateTime<Utc>,
    /// The receiver's HTTP status; `None` when it could not be reached in time.
    pub status: Option<u16>,
    pub error: Option<String>,
    /// Whether no further attempt will be made (delivered, given up after 24 h, or the
    /// receiver rejects more than 90% of what it is sent).
    pub last_attempt: bool,
    /// The exact body sent (UTF-8 JSON).
    pub body: String,
}

pub(crate) enum Dispatch {
    Webhook(OutgoingWebhook),
    /// Release webhooks held back by the reorder window.
    Flush,
}

/// The delay before redelivery number `retry` (1-based), unscaled, in seconds.
pub fn retry_delay_secs(retry: u32) -> f64 {
    FIRST_RETRY_SECS * RETRY_FACTOR.powi(retry.saturating_sub(1) as i32)
}

pub(crate) async fn run_dispatcher(
    sim: Sim,
    mut rx: mpsc::UnboundedReceiver<Dispatch>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let client = reqwest::Client::builder()
        .build()
        .expect("an HTTP client builds");
    let mut held: Vec<OutgoingWebhook> = Vec::new();
    let mut next_id: u64 = 0;
    loop {
        let message = tokio::select! {
            _ = cancel.cancelled() => break,
            message = rx.recv() => match message {
                Some(message) => message,
                None => break,
            },
        };
        let (duplicates, window) =
            sim.with_state(|s| (s.config.webhook_duplicates, s.config.webhook_reorder_window));
        let flush = match message {
            Dispatch::Webhook(webhook) => {
                held.push(webhook);
                window <= 1 || held.len() >= window
            }
            Dispatch::Flush => true,
        };
        if !flush {
            continue;
        }
        let mut batch: Vec<OutgoingWebhook> = std::mem::take(&mut held);
        if window > 1 {
            batch.reverse();
        }
        for webhook in batch {
            next_id += 1;
            for copy in 0..=duplicates {
                let task = deliver(
                    sim.clone(),
                    client.clone(),
                    webhook.clone(),
                    next_id,
                    copy,
                    cancel.clone(),
                );
                tracker.spawn(task);
            }
        }
    }
}

async fn deliver(
    sim: Sim,
    client: reqwest::Client,
    webhook: OutgoingWebhook,
    webhook_id: u64,
    copy: u32,
    cancel: CancellationToken,
) {
    let mut waited = 0.0;
    for attempt in 1u32.. {
        let (key, timeout_ms, scale, sample) = sim.with_state(|s| {
            (
                s.keys.current().clone(),
                s.config.webhook_timeout_ms,
                s.config.webhook_time_scale,
                s.config.webhook_rejection_sample,
            )
        });
        let sent_at = Utc::now();
        let jwt = key.sign_webhook(&webhook.body, sent_at.timestamp());
        let request = client
            .post(&webhook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Plaid-Verification", jwt)
            .timeout(Duration::from_millis(timeout_ms))
            .body(webhook.body.as_ref().clone());
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            outcome = request.send() => outcome,
        };
        let (status, error) = match outcome {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(err) => (None, Some(err.without_url().to_string())),
        };
        let delivered = status == Some(200);
        let window = Duration::from_secs_f64(REJECTION_WINDOW_SECS * scale);
        let rejecting = sim.with_state(|s| {
            s.receivers
                .record(&webhook.url, delivered, Instant::now(), window, sample)
        });
        let delay = retry_delay_secs(attempt);
        let last_attempt = delivered || rejecting || waited + delay > GIVE_UP_AFTER_SECS;
        sim.record_delivery(DeliveryRecord {
            webhook_id,
            copy,
            attempt,
            url: webhook.url.clone(),
            item_id: webhook.item_id.clone(),
            webhook_type: webhook.webhook_type.clone(),
            webhook_code: webhook.webhook_code.clone(),
            kid: key.kid.clone(),
            sent_at,
            status,
            error,
            last_attempt,
            body: String::from_utf8_lossy(&webhook.body).into_owned(),
        });
        if last_attempt {
            return;
        }
        waited += delay;
        tracing::debug!(webhook.code = %webhook.webhook_code, attempt, "webhook not acknowledged, will retry");
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs_f64(delay * scale)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redelivery_delays_start_at_30_seconds_and_grow_four_fold() {
        assert_eq!(retry_delay_secs(1), 30.0);
        assert_eq!(retry_delay_secs(2), 120.0);
        assert_eq!(retry_delay_secs(3), 480.0);
        let total: f64 = (1..=6).map(retry_delay_secs).sum();
        assert!(total < GIVE_UP_AFTER_SECS && total + retry_delay_secs(7) > GIVE_UP_AFTER_SECS);
    }

    #[test]
    fn a_receiver_rejecting_more_than_90_percent_of_a_large_enough_sample_is_flagged() {
        let mut log = ReceiverLog::default();
        let day = Duration::from_secs(86_400);
        let now = Instant::now();
        // Below the sample: never flagged, however bad.
        for _ in 0..9 {
            assert!(!log.record("a", false, now, day, 10));
        }
        assert!(log.record("a", false, now, day, 10), "10 of 10 rejected");
        // One accepted in 11 is still above 90% rejected; 2 in 12 is not (83%).
        assert!(log.record("a", true, now, day, 10));
        assert!(!log.record("a", true, now, day, 10));
        // Other receivers are judged on their own; old attempts leave the window.
        assert!(!log.record("b", false, now, day, 10));
        let later = now + day;
        assert!(!log.record("a", false, later, day, 10));
    }
}
