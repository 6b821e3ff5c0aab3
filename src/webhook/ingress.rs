//! `POST /webhooks/plaid`: verify, make durable, then answer.
//!
//! | answer | when |
//! |--------|------|
//! | 200 | verified and durable: confirmed by the broker, or committed to the spool |
//! | 400 | verified, but the body is not JSON or not a Plaid webhook |
//! | 401 | verification failed (the body says nothing about why) |
//! | 403 | the source is not in `webhook.allowed_sources` (refused before the body is read) |
//! | 413 | body over `webhook.max_body_bytes`, refused before it is read in full |
//! | 503 | nothing durable (broker and database both failing), or the key could not be checked |
//!
//! Plaid retries anything but a 200, so a 503 is never a loss.
//!
//! What "durable" means is the [`Sink`]: the broker with the spool behind it in every service
//! role; a sink that keeps nothing exists only for the `bench-ingress-floor` benchmark command,
//! to measure what verification alone costs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use uuid::Uuid;

use super::source::SourcePolicy;
use super::spool::Spool;
use super::verify::{Rejection, VerifiedWebhook, Verifier};
use crate::broker::Publisher;
use crate::error::ApiError;
use crate::messages::WebhookEnvelope;
use crate::telemetry::names;

/// Where a verified webhook goes before the 200.
pub enum Sink {
    /// Published with the broker's confirm, or committed to the spool: what every service role
    /// uses.
    Durable {
        publisher: Arc<Publisher>,
        spool: Arc<Spool>,
    },
    /// Keeps nothing: the answer follows verification at once. Only the benchmark command
    /// `plaidhook bench-ingress-floor` builds this (no setting selects it), to measure the
    /// verify-only floor the durable path is compared with.
    DropForBenchmark,
}

/// Everything the webhook route needs.
pub struct Ingress {
    pub verifier: Verifier,
    pub sink: Sink,
    pub max_body_bytes: usize,
    /// Used when a webhook body has no `environment`.
    pub environment: String,
    /// Which sources may send webhooks, and which proxies' `X-Forwarded-For` is believed.
    pub sources: SourcePolicy,
}

pub async fn receive(State(ingress): State<Arc<Ingress>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let source = ingress.sources.source(peer, &parts.headers);
    let (outcome, response) = match handle(&ingress, &parts.headers, body, source).await {
        Ok(path) => (
            path,
            (StatusCode::OK, Json(json!({ "status": "accepted" }))).into_response(),
        ),
        Err(failure) => (failure.outcome(), failure.into_response()),
    };
    metrics::histogram!(names::WEBHOOK_REQUEST_DURATION, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    response
}

/// How a request failed; each maps to one status and one metric outcome.
enum Failure {
    ForbiddenSource,
    TooLarge,
    Rejected(Rejection),
    NotDurable,
}

impl Failure {
    fn outcome(&self) -> &'static str {
        match self {
            Failure::ForbiddenSource => "forbidden",
            Failure::TooLarge => "too_large",
            Failure::Rejected(Rejection::NotJson | Rejection::NotAWebhook) => "bad_request",
            Failure::Rejected(Rejection::KeyUnavailable(_)) => "unavailable",
            Failure::Rejected(_) => "unauthorized",
            Failure::NotDurable => "unavailable",
        }
    }

    fn into_response(self) -> Response {
        let error = match self {
            Failure::ForbiddenSource => ApiError::Forbidden,
            Failure::TooLarge => ApiError::PayloadTooLarge,
            Failure::Rejected(rejection @ (Rejection::NotJson | Rejection::NotAWebhook)) => {
                ApiError::BadRequest(rejection.to_string())
            }
            Failure::Rejected(Rejection::KeyUnavailable(why)) => ApiError::Unavailable(
                anyhow::anyhow!("webhook verification key unavailable: {why}"),
            ),
            Failure::Rejected(_) => ApiError::Unauthorized,
            Failure::NotDurable => ApiError::Unavailable(anyhow::anyhow!(
                "neither broker nor spool accepted the webhook"
            )),
        };
        error.into_response()
    }
}

async fn handle(
    ingress: &Ingress,
    headers: &HeaderMap,
    body: Body,
    source: Option<IpAddr>,
) -> Result<&'static str, Failure> {
    if !ingress.sources.allows(source) {
        tracing::warn!(webhook.source = ?source, "webhook from a source not allowed");
        count("forbidden", "source_not_allowed", None);
        return Err(Failure::ForbiddenSource);
    }
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|len| len > ingress.max_body_bytes as u64) {
        count("too_large", "body_too_large", None);
        return Err(Failure::TooLarge);
    }
    // Bounded read: a body without Content-Length (chunked) is cut off at the limit too.
    let body: Bytes = axum::body::to_bytes(body, ingress.max_body_bytes)
        .await
        .map_err(|_| {
            count("too_large", "body_too_large", None);
            Failure::TooLarge
        })?;

    let verification = headers
        .get("plaid-verification")
        .and_then(|v| v.to_str().ok());
    let verify_started = Instant::now();
    let verified = ingress
        .verifier
        .verify(verification, body, chrono::Utc::now().timestamp(), source)
        .await;
    metrics::histogram!(names::WEBHOOK_VERIFY_DURATION)
        .record(verify_started.elapsed().as_secs_f64());
    let webhook = match verified {
        Ok(webhook) => webhook,
        Err(rejection) => {
            tracing::warn!(webhook.rejection = rejection.reason(), detail = %rejection, "webhook rejected");
            let reason = rejection.reason();
            let failure = Failure::Rejected(rejection);
            count(failure.outcome(), reason, None);
            return Err(failure);
        }
    };

    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    let path = match &ingress.sink {
        Sink::Durable { publisher, spool } => {
            make_durable(ingress, publisher, spool, &webhook, request_id).await?
        }
        Sink::DropForBenchmark => "dropped_for_benchmark",
    };
    // DEBUG: at Plaid's rates a line per webhook costs more than the rest of the answer but
    // verification; the counter below and the WARNs on every failure are what operators read.
    tracing::debug!(
        webhook.r#type = webhook.webhook_type(),
        webhook.code = webhook.webhook_code(),
        plaid.item_id = webhook.item_id().unwrap_or("-"),
        webhook.path = path,
        "webhook accepted"
    );
    count("accepted", path, Some(webhook.webhook_code()));
    Ok("accepted")
}

/// Publishes with confirm, or spools; returns which path made the webhook durable.
async fn make_durable(
    ingress: &Ingress,
    publisher: &Publisher,
    spool: &Spool,
    webhook: &VerifiedWebhook,
    request_id: Option<&str>,
) -> Result<&'static str, Failure> {
    let envelope = WebhookEnvelope {
        id: Uuid::now_v7(),
        received_at: chrono::Utc::now(),
        environment: webhook
            .environment()
            .unwrap_or(&ingress.environment)
            .to_owned(),
        webhook_type: webhook.webhook_type().into(),
        webhook_code: webhook.webhook_code().into(),
        item_id: webhook.item_id().map(str::to_owned),
        body: serde_json::value::RawValue::from_string(
            String::from_utf8(webhook.body().to_vec())
                .map_err(|_| Failure::Rejected(Rejection::NotJson))?,
        )
        .map_err(|_| Failure::Rejected(Rejection::NotJson))?,
    };

    let exchange = publisher.topology().webhooks_exchange();
    let (routing_key, payload) = (envelope.routing_key(), envelope.to_bytes());
    let publish = || {
        publisher.publish(
            &exchange,
            &routing_key,
            &payload,
            envelope.properties(request_id),
        )
    };
    let _order = spool.ordered().await;
    if !spool.has_backlog() {
        match publish().await {
            Ok(()) => return Ok("published"),
            Err(error) => {
                tracing::warn!(webhook.id = %envelope.id, error = %error, "broker did not confirm; spooling");
            }
        }
        return match spool.write(&envelope, &routing_key, &payload).await {
            Ok(()) => Ok("spooled"),
            Err(error) => not_durable(webhook, &envelope, &error),
        };
    }
    // Older webhooks wait in the spool: join them, to stay behind them.
    match spool.write(&envelope, &routing_key, &payload).await {
        Ok(()) => Ok("spooled"),
        // Durable out of order beats not durable: with the database failing, try the broker.
        Err(spool_error) => match publish().await {
            Ok(()) => Ok("published"),
            Err(_) => not_durable(webhook, &envelope, &spool_error),
        },
    }
}

fn not_durable(
    webhook: &VerifiedWebhook,
    envelope: &WebhookEnvelope,
    error: &sqlx::Error,
) -> Result<&'static str, Failure> {
    tracing::error!(webhook.id = %envelope.id, error = %error, "neither broker nor spool took the webhook; answering 503");
    count("unavailable", "not_durable", Some(webhook.webhook_code()));
    Err(Failure::NotDurable)
}

fn count(outcome: &'static str, reason: &'static str, code: Option<&str>) {
    metrics::counter!(
        names::WEBHOOKS,
        "outcome" => outcome,
        "reason" => reason,
        "webhook_code" => code.unwrap_or("-").to_owned()
    )
    .increment(1);
}
