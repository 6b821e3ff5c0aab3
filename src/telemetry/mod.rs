//! Logging and metrics set-up.
//!
//! Logs go through `tracing`: human-readable by default, JSON when `telemetry.format = "json"`.
//! Rules for every log line in plaidhook: identifiers as fields (`item.id`, `webhook.code`),
//! never an access token, a secret or a raw webhook body. Metrics are recorded with the `metrics`
//! facade under the names of [`names`] (each with its description) and rendered in Prometheus
//! text format on the internal listener's `/metrics`.
//!
//! This module imports nothing of plaidhook's: every other room may record metrics.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

use serde::Deserialize;

pub mod names;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    pub format: LogFormat,
    pub filter: String,
}

/// Installs the global subscriber. Later calls are no-ops, so tests may call it freely.
pub fn init_logging(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match settings.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_target(true)).try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use.
///
/// `metrics` has one global recorder per process; every `Application` in the process shares it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0,
                ])
                .expect("static bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a host program embedding plaidhook);
            // then our handle renders nothing but the service still runs.
            let _ = metrics::set_global_recorder(recorder);
            names::describe();
            handle
        })
        .clone()
}
