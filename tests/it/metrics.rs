//! `/metrics` after a small end-to-end run: every family an operator needs is exported.

use std::time::Duration;

use reqwest::StatusCode;

const FAMILIES: &[&str] = &[
    // ingress
    "plaidhook_webhooks_total",
    "plaidhook_webhook_request_duration_seconds",
    "plaidhook_webhook_verify_duration_seconds",
    "plaidhook_webhook_key_fetches_total",
    "plaidhook_broker_publish_duration_seconds",
    "plaidhook_webhook_spool_depth",
    // consumers
    "plaidhook_consumer_messages_total",
    "plaidhook_queue_depth",
    "plaidhook_dead_letters",
    // sync
    "plaidhook_sync_runs_total",
    "plaidhook_sync_run_duration_seconds",
    "plaidhook_sync_transactions_total",
    // Plaid
    "plaidhook_plaid_calls_total",
    "plaidhook_plaid_call_duration_seconds",
    // Items and alerts
    "plaidhook_items",
    "plaidhook_alerts_open",
    "plaidhook_alerts_raised_total",
    "plaidhook_outbox_published_total",
];

#[tokio::test]
async fn metrics_after_a_small_end_to_end_run_contain_every_family_operators_need() {
    let harness = testkit::api::start(&[]).await;
    let app = &harness.app;

    let (item_id, plaid_item_id) = harness.link_item("user-metrics").await;
    let synced = harness
        .item_until(item_id, Duration::from_secs(30), |item| {
            item["last_synced_at"].is_string()
        })
        .await;
    assert!(synced["last_synced_at"].is_string(), "{synced}");

    // A forged webhook, so rejections are counted too.
    let forged = app
        .http
        .post(app.public_url("/webhooks/plaid"))
        .header("Plaid-Verification", "not.a.jwt")
        .body(r#"{"webhook_type":"ITEM","webhook_code":"ERROR"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // A broken login: an alert is raised.
    assert!(app.sim().reset_login(&plaid_item_id));
    let broken = harness
        .item_until(item_id, Duration::from_secs(30), |item| {
            item["status"] == "login_required"
        })
        .await;
    assert_eq!(broken["status"], "login_required");

    // Gauges are sampled on an interval (10 s): poll until a sample has been taken since the
    // broker connected.
    let missing_in = |body: &str| -> Vec<&'static str> {
        FAMILIES
            .iter()
            .copied()
            .filter(|family| !body.lines().any(|line| line.starts_with(family)))
            .collect()
    };
    let mut body = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        body = app
            .http
            .get(app.internal_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if missing_in(&body).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let missing = missing_in(&body);

    assert!(
        missing.is_empty(),
        "missing families {missing:?} in:\n{body}"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("plaidhook_webhooks_total")
                && l.contains("outcome=\"unauthorized\"")),
        "rejections are counted by outcome"
    );
    harness.app.stop().await.unwrap();
}
