//! Health endpoints.
//!
//! `/healthz` says the process serves HTTP. `/readyz` says this process can do its job: the
//! database answers (needed by every role: the spool, the sync state) with every migration of
//! this binary applied (else every query would fail), and for processes that
//! consume, the broker is connected. An ingress-only process stays ready while the broker is
//! down because verified webhooks go to the spool, as long as the spool stays under
//! `webhook.spool_ready_max` rows. `/metrics` renders Prometheus text.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use sqlx::PgPool;

use crate::broker::{Broker, BrokerStatus};
use crate::store::SchemaState;

/// How long the readiness probe waits for the database before calling it unreachable.
const DATABASE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the probes look at, and what this process is for.
pub struct Probes {
    pub db: PgPool,
    pub broker: Broker,
    /// The process consumes queues: it is not ready without the broker.
    pub consumes: bool,
    /// The process runs the webhook ingress: it is not ready while the spool is too deep.
    pub ingests: bool,
    pub spool_ready_max: i64,
    pub metrics: PrometheusHandle,
    /// Set once the schema was seen current: migrations are never undone under a running
    /// process, so later probes skip the check.
    pub schema_current: AtomicBool,
}

impl Probes {
    /// `"current"`, `"behind"` (the binary's migrations are not all applied), or `None` when
    /// the database could not say.
    async fn schema(&self) -> Option<&'static str> {
        if self.schema_current.load(Ordering::Relaxed) {
            return Some("current");
        }
        match crate::store::schema_state(&self.db).await {
            Ok(SchemaState::Current) => {
                self.schema_current.store(true, Ordering::Relaxed);
                Some("current")
            }
            Ok(SchemaState::Behind { pending }) => {
                tracing::debug!(pending, "schema behind the binary's migrations");
                Some("behind")
            }
            Err(_) => None,
        }
    }
}

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<Arc<Probes>>) -> impl IntoResponse {
    let database_ok = tokio::time::timeout(
        DATABASE_PROBE_TIMEOUT,
        crate::store::is_reachable(&state.db),
    )
    .await
    .unwrap_or(false);
    let broker = state.broker.status();
    let broker_ok = !state.consumes || broker != BrokerStatus::Disconnected;
    // A spool that keeps growing means webhooks are arriving faster than they can be relayed:
    // past the threshold an ingress asks to be taken out of rotation (Plaid retries elsewhere).
    let spool_depth = if database_ok && state.ingests {
        crate::webhook::spool::depth(&state.db).await.ok()
    } else {
        None
    };
    let spool_ok = spool_depth.is_none_or(|depth| depth <= state.spool_ready_max);
    let schema = if database_ok {
        state.schema().await
    } else {
        None
    };
    let ready = database_ok && schema == Some("current") && broker_ok && spool_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "database": if database_ok { "ok" } else { "unreachable" },
            "schema": schema,
            "broker": broker,
            "spool_depth": spool_depth,
        },
    });
    (status, Json(body))
}

pub async fn metrics(State(state): State<Arc<Probes>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}
