//! Logging and metrics set-up.
//!
//! Logs go through `tracing` to stderr (stdout stays for command output): human-readable by
//! default, with colours only on a terminal, JSON when `telemetry.format = "json"`. Rules for
//! every log line in plaidhook: identifiers as fields (`item.id`, `webhook.code`), never an
//! access token, a secret or a raw webhook body. Some libraries log message bodies (lapin logs
//! every returned message whole, and its frames at debug): [`body_guard`] drops those events
//! in code, whatever `telemetry.filter` or `RUST_LOG` asks for. Metrics are recorded with the `metrics`
//! facade under the names of [`names`] (each with its description) and rendered in Prometheus
//! text format on the internal listener's `/metrics`. A condition that repeats is logged on
//! change with a count ([`Repeated`]), and ERROR is kept for what needs a human.
//!
//! This module imports nothing of plaidhook's: every other room may record metrics.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, FilterFn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::TryInitError;
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

pub mod names;
pub mod repeated;

pub use repeated::Repeated;

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

/// Installs the global subscriber, writing to stderr. Later calls are no-ops, so tests may
/// call it freely.
pub fn init_logging(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let _ = install(filter, settings.format, ansi, std::io::stderr);
}

/// Installs plaidhook's subscriber writing to `writer`: `filter` chooses what is logged, and
/// [`body_guard`] then removes whatever could carry a message body. The tests capture logs
/// through this too, so they check what production would write.
pub fn install<W>(
    filter: EnvFilter,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> Result<(), TryInitError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(writer)
                    .with_filter(body_guard()),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .with_target(true)
                    .with_ansi(ansi)
                    .with_writer(writer)
                    .with_filter(body_guard()),
            )
            .try_init(),
    }
}

/// Library targets that log AMQP frames and message contents below INFO.
const FRAME_LOGGING_TARGETS: [&str; 4] = ["lapin", "amq_protocol", "tcp_stream", "axum::rejection"];

/// Drops the events that can carry a message body: lapin's returned-message warnings (the whole
/// message, body included) at every level, and the frame-level logs of the AMQP stack (and
/// axum's rejection traces, which quote request bodies) below INFO.
pub fn body_guard() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    filter_fn(carries_no_body as fn(&Metadata<'_>) -> bool)
}

fn carries_no_body(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    if target.starts_with("lapin::returned_messages") {
        return false;
    }
    let verbose = *metadata.level() > Level::INFO;
    !(verbose && FRAME_LOGGING_TARGETS.iter().any(|t| target.starts_with(t)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_drops_returned_messages_and_frame_logs_but_keeps_the_rest() {
        use tracing::callsite::Identifier;
        use tracing::field::FieldSet;
        use tracing::metadata::Kind;

        struct Callsite;
        impl tracing::Callsite for Callsite {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!("only identifies the test metadata")
            }
        }
        static CALLSITE: Callsite = Callsite;
        let metadata = |target: &'static str, level: Level| {
            Metadata::new(
                "event",
                target,
                level,
                None,
                None,
                None,
                FieldSet::new(&[], Identifier(&CALLSITE)),
                Kind::EVENT,
            )
        };
        assert!(!carries_no_body(&metadata(
            "lapin::returned_messages",
            Level::WARN
        )));
        assert!(!carries_no_body(&metadata("lapin::channel", Level::TRACE)));
        assert!(!carries_no_body(&metadata(
            "amq_protocol::frame",
            Level::DEBUG
        )));
        assert!(carries_no_body(&metadata("lapin::connection", Level::WARN)));
        assert!(carries_no_body(&metadata(
            "plaidhook::sync::worker",
            Level::TRACE
        )));
        assert!(carries_no_body(&metadata("hyper::proto", Level::TRACE)));
    }
}
