//! Item health end to end, against the in-process simulator, PostgreSQL and RabbitMQ: ITEM
//! webhooks reconciled with `/item/get`, alerts raised once and delivered, update-mode repair.

use std::time::{Duration, Instant};

use crate::helpers::item_truth::{deliver, set_login_required};
use reqwest::Method;
use serde_json::Value;
use testkit::alerts::AlertReceiver;
use testkit::api::{start, Harness};
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(15);

/// Links an Item and waits until its first fetch at Plaid and its syncs are over, so later
/// syncs do not race the test.
async fn linked_and_synced(h: &Harness, user: &str) -> (Uuid, String) {
    h.link_settled(user).await
}

fn events<'a>(received: &'a [Value], event: &str) -> Vec<&'a Value> {
    received.iter().filter(|b| b["event"] == event).collect()
}

fn transitions_to(item: &Value, status: &str) -> usize {
    item["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["to_status"] == status)
        .count()
}

#[tokio::test]
async fn reset_login_flags_the_item_alerts_once_and_update_mode_repairs_and_resyncs_it() {
    let receiver = AlertReceiver::start().await;
    let h = start(&[("PLAIDHOOK__ALERTS__WEBHOOK_URL", receiver.url.as_str())]).await;
    let (item_id, plaid_item_id) = linked_and_synced(&h, "user-42").await;

    let broke_at = Instant::now();
    assert!(h.app.sim().reset_login(&plaid_item_id));
    let item = h
        .item_until(item_id, WITHIN, |i| i["status"] == "login_required")
        .await;
    assert_eq!(item["status"], "login_required", "{item}");
    assert!(
        broke_at.elapsed() < Duration::from_secs(5),
        "took {:?}",
        broke_at.elapsed()
    );
    assert_eq!(item["error_code"], "ITEM_LOGIN_REQUIRED");
    let entry = &item["history"][0];
    assert_eq!(entry["from_status"], "active", "{entry}");
    assert_eq!(entry["to_status"], "login_required");
    assert_eq!(entry["error_code"], "ITEM_LOGIN_REQUIRED");
    assert_eq!(h.alert_counts(item_id, "login_required").await, (1, 1));
    assert_eq!(item["open_alerts"].as_array().unwrap().len(), 1);

    let received = receiver
        .until(WITHIN, |r| !events(r, "alert.raised").is_empty())
        .await;
    let raised = events(&received, "alert.raised");
    assert_eq!(raised.len(), 1, "{received:?}");
    let alert = &raised[0]["alert"];
    assert_eq!(alert["item"]["client_user_id"], "user-42");
    assert_eq!(alert["item"]["plaid_item_id"], plaid_item_id.as_str());
    assert_eq!(alert["cause"], "login_required");
    let message = alert["message"].as_str().unwrap();
    for needle in [
        "user-42",
        &plaid_item_id,
        "ITEM_LOGIN_REQUIRED",
        "since",
        "/link-token",
    ] {
        assert!(
            message.contains(needle),
            "`{needle}` missing from: {message}"
        );
    }

    // Re-auth: an update-mode Link token for exactly this Item.
    let (status, token) = h
        .call(
            Method::POST,
            &format!("/api/v1/items/{item_id}/link-token"),
            None,
        )
        .await;
    assert_eq!(status, 201, "{token}");
    assert_eq!(token["mode"], "update");
    let link_token = token["link_token"].as_str().unwrap().to_owned();
    let repairs = h
        .app
        .sim()
        .with_state(|s| s.link_tokens[&link_token].update_item.clone());
    assert_eq!(repairs.as_deref(), Some(plaid_item_id.as_str()));

    let repaired_at = chrono::Utc::now();
    let completed = h.complete_link(&link_token).await;
    assert_eq!(completed["update_mode"], true);
    // Plaid's spec: LOGIN_REPAIRED is "fired when an Item recovers from the
    // ITEM_LOGIN_REQUIRED without the user going through update mode in your app". After
    // update mode in the app no ITEM webhook comes: the app reports Link's success instead.
    let (status, success) = h
        .call(
            Method::POST,
            &format!("/api/v1/items/{item_id}/link-success"),
            Some(serde_json::json!({"link_session_id": "link-session-1"})),
        )
        .await;
    assert_eq!(status, 200, "{success}");
    assert_eq!(success["status"], "active", "{success}");
    assert_eq!(success["sync_requested"], true, "{success}");
    let item = h
        .item_until(item_id, WITHIN, |i| i["status"] == "active")
        .await;
    assert_eq!(item["status"], "active", "{item}");
    assert_eq!(item["history"][0]["cause"], "link_success");
    assert!(
        h.app
            .sim()
            .deliveries()
            .iter()
            .all(|d| d.webhook_code != "LOGIN_REPAIRED"),
        "no LOGIN_REPAIRED after an in-app repair"
    );
    assert_eq!(h.alert_counts(item_id, "login_required").await, (0, 1));
    let received = receiver
        .until(WITHIN, |r| !events(r, "alert.resolved").is_empty())
        .await;
    assert_eq!(events(&received, "alert.resolved").len(), 1, "{received:?}");
    assert_eq!(events(&received, "alert.raised").len(), 1, "{received:?}");

    let synced_again = h
        .app
        .eventually(WITHIN, || async {
            sqlx::query_scalar::<_, bool>(
                "select exists (select 1 from sync_runs where item_id = $1
                                and started_at >= $2 and outcome = 'succeeded')",
            )
            .bind(item_id)
            .bind(repaired_at)
            .fetch_one(&h.app.db)
            .await
            .unwrap()
        })
        .await;
    assert!(synced_again, "a sync ran after the repair");
    let events: Vec<String> = sqlx::query_scalar(
        "select routing_key from outbox where payload->>'item_id' = $1 order by id",
    )
    .bind(item_id.to_string())
    .fetch_all(&h.app.db)
    .await
    .unwrap();
    for expected in ["item.status_changed", "alert.raised", "alert.resolved"] {
        assert!(
            events.iter().any(|e| e == expected),
            "{expected} in {events:?}"
        );
    }
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn ten_duplicated_error_webhooks_raise_exactly_one_alert() {
    let receiver = AlertReceiver::start().await;
    let h = start(&[("PLAIDHOOK__ALERTS__WEBHOOK_URL", receiver.url.as_str())]).await;
    let (item_id, plaid_item_id) = linked_and_synced(&h, "user-dup").await;
    h.app.sim().update_config(|c| c.webhook_duplicates = 9);
    h.app.sim().reset_login(&plaid_item_id);

    let all_reconciled = h
        .app
        .eventually(WITHIN, || async { h.item_get_calls(item_id).await >= 10 })
        .await;
    assert!(all_reconciled, "calls: {}", h.item_get_calls(item_id).await);
    let item = h
        .item_until(item_id, WITHIN, |i| i["status"] == "login_required")
        .await;
    assert_eq!(item["status"], "login_required");
    assert_eq!(transitions_to(&item, "login_required"), 1, "{item}");
    assert_eq!(h.alert_counts(item_id, "login_required").await, (1, 1));
    let received = receiver
        .until(WITHIN, |r| !events(r, "alert.raised").is_empty())
        .await;
    assert_eq!(events(&received, "alert.raised").len(), 1, "{received:?}");
    h.app.stop().await.unwrap();
}

/// Waits until plaidhook has reconciled `calls` ITEM webhooks in all for the Item.
async fn reconciled(h: &Harness, item_id: Uuid, calls: i64) {
    let done = h
        .app
        .eventually(WITHIN, || async {
            h.item_get_calls(item_id).await >= calls
        })
        .await;
    assert!(
        done,
        "{} of {calls} reconciliations",
        h.item_get_calls(item_id).await
    );
}

#[tokio::test]
async fn webhooks_the_simulator_reorders_leave_the_item_as_item_get_reports() {
    let h = start(&[]).await;
    let (item_id, plaid_item_id) = linked_and_synced(&h, "user-order").await;
    let sim = h.app.sim();
    // Webhooks are held two at a time and delivered in reverse order.
    sim.update_config(|c| c.webhook_reorder_window = 2);

    // Broken then repaired; LOGIN_REPAIRED arrives before its ERROR. Plaid says healthy.
    sim.reset_login(&plaid_item_id);
    sim.repair_outside_app(&plaid_item_id);
    reconciled(&h, item_id, 2).await;
    let item = h.item(item_id).await;
    assert_eq!(item["status"], "active", "{item}");
    assert_eq!(transitions_to(&item, "login_required"), 0, "{item}");
    assert_eq!(h.alert_counts(item_id, "login_required").await, (0, 0));

    // Broken (delivered alone), then repaired and broken again: ERROR arrives before the
    // LOGIN_REPAIRED that preceded it. Plaid says broken; the late LOGIN_REPAIRED changes
    // nothing and the one alert stays open.
    sim.reset_login(&plaid_item_id);
    sim.flush_webhooks();
    reconciled(&h, item_id, 3).await;
    sim.repair_outside_app(&plaid_item_id);
    sim.reset_login(&plaid_item_id);
    reconciled(&h, item_id, 5).await;
    // The /item/get call is logged before its reconciliation commits: wait for the status.
    let item = h
        .item_until(item_id, WITHIN, |i| i["status"] == "login_required")
        .await;
    assert_eq!(item["status"], "login_required", "{item}");
    assert_eq!(transitions_to(&item, "login_required"), 1, "{item}");
    assert_eq!(transitions_to(&item, "active"), 1, "only the link: {item}");
    assert_eq!(h.alert_counts(item_id, "login_required").await, (1, 1));
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn alert_deliveries_are_retried_with_backoff_until_the_receiver_accepts() {
    let receiver = AlertReceiver::start().await;
    receiver.fail_next(&[500, 503]);
    let h = start(&[
        ("PLAIDHOOK__ALERTS__WEBHOOK_URL", receiver.url.as_str()),
        ("PLAIDHOOK__ALERTS__FORMAT", "slack"),
    ])
    .await;
    let (item_id, plaid_item_id) = linked_and_synced(&h, "user-retry").await;
    h.app.sim().reset_login(&plaid_item_id);

    let delivered = h
        .app
        .eventually(WITHIN, || async {
            sqlx::query_scalar::<_, String>(
                "select d.status from alert_deliveries d join alerts a on a.id = d.alert_id
                 where a.item_id = $1 and d.kind = 'raised'",
            )
            .bind(item_id)
            .fetch_optional(&h.app.db)
            .await
            .unwrap()
            .as_deref()
                == Some("delivered")
        })
        .await;
    assert!(delivered);
    let attempts: i32 = sqlx::query_scalar(
        "select d.attempts from alert_deliveries d join alerts a on a.id = d.alert_id
         where a.item_id = $1 and d.kind = 'raised'",
    )
    .bind(item_id)
    .fetch_one(&h.app.db)
    .await
    .unwrap();
    assert_eq!(attempts, 3);
    let received = receiver.received();
    assert_eq!(
        received.len(),
        3,
        "two failures, then success: {received:?}"
    );
    let text = received[2]["text"].as_str().unwrap();
    assert!(
        text.contains("user-retry") && text.contains("needs attention"),
        "{text}"
    );
    assert_eq!(received[2]["blocks"][0]["type"], "section");
    h.app.stop().await.unwrap();
}

fn item_webhook(plaid_item_id: &str, code: &str) -> Value {
    let mut body = serde_json::json!({
        "webhook_type": "ITEM", "webhook_code": code, "item_id": plaid_item_id,
        "environment": "sandbox",
    });
    if code == "ERROR" {
        body["error"] = serde_json::json!({
            "error_type": "ITEM_ERROR", "error_code": "ITEM_LOGIN_REQUIRED",
            "error_message": "the login details of this item have changed",
            "display_message": null, "status": 400,
        });
    }
    body
}

#[tokio::test]
async fn login_repaired_before_error_and_ten_copies_of_error_follow_item_get_with_one_alert() {
    let h = start(&[]).await;
    let (item_id, plaid_item_id) = linked_and_synced(&h, "user-hints").await;

    // Plaid says broken; the first webhook to arrive is a (stale) LOGIN_REPAIRED.
    set_login_required(&h, &plaid_item_id, true);
    deliver(&h, item_webhook(&plaid_item_id, "LOGIN_REPAIRED")).await;
    reconciled(&h, item_id, 1).await;
    // The /item/get call is logged before its reconciliation commits: wait for the status.
    let item = h
        .item_until(item_id, WITHIN, |i| i["status"] == "login_required")
        .await;
    assert_eq!(item["status"], "login_required", "{item}");

    for _ in 0..10 {
        deliver(&h, item_webhook(&plaid_item_id, "ERROR")).await;
    }
    reconciled(&h, item_id, 11).await;
    let item = h.item(item_id).await;
    assert_eq!(item["status"], "login_required", "{item}");
    assert_eq!(transitions_to(&item, "login_required"), 1, "{item}");
    assert_eq!(h.alert_counts(item_id, "login_required").await, (1, 1));

    // Plaid says healthy again; a late ERROR does not break the Item.
    set_login_required(&h, &plaid_item_id, false);
    deliver(&h, item_webhook(&plaid_item_id, "ERROR")).await;
    reconciled(&h, item_id, 12).await;
    let item = h
        .item_until(item_id, WITHIN, |i| i["status"] == "active")
        .await;
    assert_eq!(item["status"], "active", "{item}");
    assert_eq!(h.alert_counts(item_id, "login_required").await, (0, 1));
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn an_item_get_refused_by_plaids_rate_limit_is_retried_and_never_marks_the_item_broken() {
    // https://plaid.com/docs/errors/rate-limit-exceeded/#item_get_limit: ITEM_GET_LIMIT is a
    // RATE_LIMIT_EXCEEDED error (HTTP 429), a reason to wait, not news about the Item.
    let h = start(&[]).await;
    let (item_id, plaid_item_id) = linked_and_synced(&h, "user-item-get-limit").await;
    let sim = h.app.sim();
    sim.inject_fault(plaidhook::sim::InjectedFault {
        endpoint: Some("/item/get".into()),
        item_id: Some(plaid_item_id.clone()),
        error: plaidhook::plaid::PlaidError::new(
            "RATE_LIMIT_EXCEEDED".into(),
            "ITEM_GET_LIMIT".into(),
            "rate limit exceeded for attempts to access this item. please try again later",
        ),
        remaining: 1,
    });
    let before = h.item_get_calls(item_id).await;
    sim.reset_login(&plaid_item_id);
    // The ERROR webhook's reconciliation is refused once, retried, and then sees the error.
    reconciled(&h, item_id, before + 2).await;
    let item = h
        .item_until(item_id, WITHIN, |i| i["status"] == "login_required")
        .await;
    assert_eq!(item["status"], "login_required", "{item}");
    assert_eq!(transitions_to(&item, "error"), 0, "{item}");
    assert_eq!(transitions_to(&item, "login_required"), 1, "{item}");
    let refused: i64 = sqlx::query_scalar(
        "select count(*) from plaid_api_calls
         where method = '/item/get' and item_id = $1 and error_code = 'ITEM_GET_LIMIT'",
    )
    .bind(item_id)
    .fetch_one(&h.app.db)
    .await
    .unwrap();
    assert_eq!(refused, 1);
    h.app.stop().await.unwrap();
}
