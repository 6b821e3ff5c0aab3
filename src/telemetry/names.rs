//! Every metric plaidhook exports: its name, kind and description, in one table.
//!
//! Code records through the constants (`metrics::counter!(names::WEBHOOKS, …)`), so a name is
//! spelt once; [`describe`] gives Prometheus the `# HELP` line of each; the README's metrics
//! table and the Grafana dashboard use the same names, and a test checks every one appears on
//! `/metrics` after an end-to-end run.

macro_rules! metric_names {
    ($( $(#[$doc:meta])* $kind:ident $name:ident = $wire:literal, $help:literal; )*) => {
        $( $(#[$doc])* pub const $name: &str = $wire; )*

        /// Every metric: (name, kind, description).
        pub const ALL: &[(&str, Kind, &str)] = &[ $( ($wire, Kind::$kind, $help), )* ];
    };
}

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

metric_names! {
    Counter WEBHOOKS = "plaidhook_webhooks_total",
        "Webhooks received, by outcome, rejection reason and webhook code";
    Histogram WEBHOOK_REQUEST_DURATION = "plaidhook_webhook_request_duration_seconds",
        "Time to answer a webhook request, by outcome";
    Histogram WEBHOOK_VERIFY_DURATION = "plaidhook_webhook_verify_duration_seconds",
        "Time to verify a Plaid-Verification JWT and the body hash";
    Counter WEBHOOK_KEY_FETCHES = "plaidhook_webhook_key_fetches_total",
        "Calls to /webhook_verification_key/get, by outcome";
    Counter WEBHOOK_SPOOL_RELAYED = "plaidhook_webhook_spool_relayed_total",
        "Spooled webhooks published to the broker by the relay";
    Gauge WEBHOOK_SPOOL_DEPTH = "plaidhook_webhook_spool_depth",
        "Webhooks waiting in the spool for the broker";
    Gauge WEBHOOK_SPOOL_PARKED = "plaidhook_webhook_spool_parked",
        "Spooled webhooks the broker kept refusing, parked for an operator";
    Counter WEBHOOK_SPOOL_PARKED_TOTAL = "plaidhook_webhook_spool_parked_total",
        "Spooled webhooks parked after the broker refused them repeatedly";
    Counter SYNC_LEGACY_WEBHOOKS_IGNORED = "plaidhook_sync_legacy_webhooks_ignored_total",
        "Legacy transactions webhooks (DEFAULT_UPDATE, …) not acted on: the Item syncs with a cursor and SYNC_UPDATES_AVAILABLE covers them";
    Histogram BROKER_PUBLISH_DURATION = "plaidhook_broker_publish_duration_seconds",
        "Time from publish to the broker's confirm";
    Counter CONSUMER_MESSAGES = "plaidhook_consumer_messages_total",
        "Messages settled by a consumer, by consumer and outcome (ack, retry, park)";
    Counter CONSUMER_REDELIVERIES = "plaidhook_consumer_redeliveries_total",
        "Messages the broker delivered again, by consumer";
    Gauge QUEUE_DEPTH = "plaidhook_queue_depth",
        "Messages ready in a queue, by queue";
    Gauge DEAD_LETTERS = "plaidhook_dead_letters",
        "Messages parked in the dead-letter queue";
    Counter OUTBOX_PUBLISHED = "plaidhook_outbox_published_total",
        "Events published to plaid.events by the outbox relay";
    Counter RETENTION_DELETED = "plaidhook_retention_deleted_total",
        "Rows deleted by retention, by table";
    Counter PLAID_CALLS = "plaidhook_plaid_calls_total",
        "Calls to Plaid, by method and outcome (ok, a Plaid error code, timeout, transport)";
    Histogram PLAID_CALL_DURATION = "plaidhook_plaid_call_duration_seconds",
        "Duration of calls to Plaid, by method";
    Counter SYNC_RUNS = "plaidhook_sync_runs_total",
        "Sync runs, by outcome";
    Histogram SYNC_RUN_DURATION = "plaidhook_sync_run_duration_seconds",
        "Duration of sync runs, by outcome";
    Counter SYNC_COALESCED = "plaidhook_sync_coalesced_total",
        "Sync requests folded into a sync already running for the Item";
    Counter SYNC_TRANSACTIONS = "plaidhook_sync_transactions_total",
        "Transactions written by syncs, by change (added, modified, removed)";
    Histogram SYNC_RATE_LIMIT_WAIT = "plaidhook_sync_rate_limit_wait_seconds",
        "Time a sync waited for Plaid's rate limits";
    Counter SYNC_RATE_LIMIT_WAITS = "plaidhook_sync_rate_limit_waits_total",
        "Times a sync waited for Plaid's rate limits, by limit";
    Gauge ITEMS = "plaidhook_items",
        "Items by status";
    Gauge ALERTS_OPEN = "plaidhook_alerts_open",
        "Alerts not yet resolved";
    Counter ALERTS_RAISED = "plaidhook_alerts_raised_total",
        "Alerts raised, by cause";
    Counter ALERTS_RESOLVED = "plaidhook_alerts_resolved_total",
        "Alerts resolved, by cause";
    Counter ALERT_DELIVERIES = "plaidhook_alert_deliveries_total",
        "Alert webhook delivery attempts, by outcome";
    Counter API_UNAUTHORIZED = "plaidhook_api_unauthorized_total",
        "Management API requests refused for missing or wrong credentials";
}

/// Gives the installed recorder the description of every metric.
pub fn describe() {
    for &(name, kind, help) in ALL {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_follow_prometheus_conventions() {
        let mut seen = std::collections::HashSet::new();
        for &(name, kind, help) in ALL {
            assert!(seen.insert(name), "{name} is listed twice");
            assert!(name.starts_with("plaidhook_"), "{name}");
            assert!(!help.is_empty(), "{name} has no description");
            match kind {
                Kind::Counter => assert!(name.ends_with("_total"), "{name}"),
                Kind::Histogram => assert!(name.ends_with("_seconds"), "{name}"),
                Kind::Gauge => assert!(!name.ends_with("_total"), "{name}"),
            }
        }
    }
}
