//! `/metrics` after a small end-to-end run: every family an operator needs is exported.

use std::time::Duration;

use plaidhook::telemetry::names;
use reqwest::StatusCode;

const FAMILIES: &[&str] = &[
    // ingress
    names::WEBHOOKS,
    names::WEBHOOK_REQUEST_DURATION,
    names::WEBHOOK_VERIFY_DURATION,
    names::WEBHOOK_KEY_FETCHES,
    names::BROKER_PUBLISH_DURATION,
    names::WEBHOOK_SPOOL_DEPTH,
    // consumers
    names::CONSUMER_MESSAGES,
    names::QUEUE_DEPTH,
    names::DEAD_LETTERS,
    // sync
    names::SYNC_RUNS,
    names::SYNC_RUN_DURATION,
    names::SYNC_TRANSACTIONS,
    // Plaid
    names::PLAID_CALLS,
    names::PLAID_CALL_DURATION,
    // Items and alerts
    names::ITEMS,
    names::ALERTS_OPEN,
    names::ALERTS_RAISED,
    names::OUTBOX_PUBLISHED,
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

    // Gauges are sampled on an interval (10 s): take a sample now instead; the counters of
    // asynchronous work (the outbox relay, the consumers) are polled for.
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
        app.gauges.sample().await.expect("a gauge sample");
        body = app.metrics_text().await;
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
    // Every family carries its description from `telemetry::names`.
    for family in FAMILIES {
        let (_, _, help) = names::ALL
            .iter()
            .find(|(name, _, _)| name == family)
            .expect("every family is in the table");
        assert!(
            body.contains(&format!("# HELP {family} {help}")),
            "{family} has no description in:\n{body}"
        );
    }
    harness.app.stop().await.unwrap();
}
