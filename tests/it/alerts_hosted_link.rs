//! Hosted Link repair end to end, against the in-process simulator, PostgreSQL and RabbitMQ:
//! an alert that needs the user carries a ready `hosted_link_url`; Plaid's LINK webhooks tell
//! plaidhook how the session ended (in any order, any number of times); abandoned sessions keep
//! the alert open and the reminder policy follows it; links about to expire are renewed.

use std::time::Duration;

use crate::helpers::item_truth::{deliver, set_login_required};
use reqwest::Method;
use serde_json::{json, Value};
use testkit::alerts::AlertReceiver;
use testkit::api::{start, Harness};
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(20);

fn events<'a>(received: &'a [Value], event: &str) -> Vec<&'a Value> {
    received.iter().filter(|b| b["event"] == event).collect()
}

fn session_finished(link_token: &str, status: &str, session: &str) -> Value {
    json!({
        "webhook_type": "LINK", "webhook_code": "SESSION_FINISHED", "status": status,
        "link_session_id": session, "link_token": link_token, "public_tokens": [],
        "environment": "sandbox",
    })
}

/// The link token of the Item's open Hosted Link session, once there is one.
async fn open_session(h: &Harness, item_id: Uuid) -> String {
    let query = || async {
        sqlx::query_scalar::<_, String>(
            "select link_token from link_sessions where item_id = $1 and status = 'open'
             order by created_at desc limit 1",
        )
        .bind(item_id)
        .fetch_optional(&h.app.db)
        .await
        .unwrap()
    };
    let found = h
        .app
        .eventually(WITHIN, || async { query().await.is_some() })
        .await;
    assert!(found, "a Hosted Link session was opened for the Item");
    query().await.unwrap()
}

async fn session_status(h: &Harness, link_token: &str) -> String {
    sqlx::query_scalar("select status from link_sessions where link_token = $1")
        .bind(link_token)
        .fetch_one(&h.app.db)
        .await
        .unwrap()
}

async fn runs_since(h: &Harness, item_id: Uuid, since: chrono::DateTime<chrono::Utc>) -> i64 {
    sqlx::query_scalar("select count(*) from sync_runs where item_id = $1 and started_at >= $2")
        .bind(item_id)
        .bind(since)
        .fetch_one(&h.app.db)
        .await
        .unwrap()
}

/// Breaks the Item's login and waits for the alert's announcement, which carries the link.
async fn broken_and_announced(h: &Harness, receiver: &AlertReceiver, plaid_item_id: &str) -> Value {
    assert!(h.app.sim().reset_login(plaid_item_id));
    let received = receiver
        .until(WITHIN, |r| !events(r, "alert.raised").is_empty())
        .await;
    let raised = events(&received, "alert.raised");
    assert_eq!(raised.len(), 1, "{received:?}");
    raised[0]["alert"].clone()
}

/// After a repair: one `alert.resolved` delivery beside the one `alert.raised`, the Item settled
/// in `active` with its alert closed, and exactly one sync since `repaired_at`.
async fn assert_repaired_once(
    h: &Harness,
    receiver: &AlertReceiver,
    (item_id, plaid_item_id): (Uuid, &str),
    repaired_at: chrono::DateTime<chrono::Utc>,
) {
    let received = receiver
        .until(WITHIN, |r| !events(r, "alert.resolved").is_empty())
        .await;
    assert_eq!(events(&received, "alert.resolved").len(), 1, "{received:?}");
    assert!(h.settled(item_id, plaid_item_id, WITHIN).await);
    let item = h.item(item_id).await;
    assert_eq!(item["status"], "active", "{item}");
    assert_eq!(h.alert_counts(item_id, "login_required").await, (0, 1));
    assert_eq!(
        runs_since(h, item_id, repaired_at).await,
        1,
        "one sync after the repair"
    );
    let received = receiver.received();
    assert_eq!(events(&received, "alert.raised").len(), 1, "{received:?}");
    assert_eq!(events(&received, "alert.resolved").len(), 1, "{received:?}");
}

#[tokio::test]
async fn the_login_required_alert_carries_a_ready_hosted_link_and_words_for_the_user() {
    let receiver = AlertReceiver::start().await;
    let h = start(&[("PLAIDHOOK__ALERTS__WEBHOOK_URL", receiver.url.as_str())]).await;
    let (item_id, plaid_item_id) = h.link_settled("user-hl-1").await;
    let alert = broken_and_announced(&h, &receiver, &plaid_item_id).await;

    let link = &alert["repair"]["hosted_link"];
    let url = link["url"]
        .as_str()
        .expect("the alert carries hosted_link.url");
    assert!(url.starts_with("http"), "{url}");
    let expires_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(link["expires_at"].clone()).unwrap();
    // link.hosted_url_lifetime_secs defaults to 3 days.
    let left = expires_at - chrono::Utc::now();
    assert!(left > chrono::Duration::days(2), "{left}");
    let words = alert["repair"]["user_message"].as_str().unwrap();
    assert!(words.contains("sign in"), "{words}");
    assert!(
        !words.contains("ITEM_LOGIN_REQUIRED"),
        "no Plaid codes for users: {words}"
    );

    // The session plaidhook opened is the one the link is for, in update mode for this Item.
    let link_token = open_session(&h, item_id).await;
    let (update_item, webhook) = h.app.sim().with_state(|s| {
        let record = &s.link_tokens[&link_token];
        (record.update_item.clone(), record.webhook.clone())
    });
    assert_eq!(update_item.as_deref(), Some(plaid_item_id.as_str()));
    assert_eq!(webhook.as_deref(), Some(h.app.webhook_url().as_str()));

    // The event carries the same link as the delivery.
    let raised: Value = sqlx::query_scalar(
        "select payload from outbox where routing_key = 'alert.raised'
           and payload->>'item_id' = $1",
    )
    .bind(item_id.to_string())
    .fetch_one(&h.app.db)
    .await
    .unwrap();
    assert_eq!(raised["data"]["repair"]["hosted_link"]["url"], url);
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn session_finished_before_or_after_the_item_webhook_or_twice_ends_as_plaid_reports() {
    let receiver = AlertReceiver::start().await;
    let h = start(&[("PLAIDHOOK__ALERTS__WEBHOOK_URL", receiver.url.as_str())]).await;
    let (item_id, plaid_item_id) = h.link_settled("user-hl-2").await;
    broken_and_announced(&h, &receiver, &plaid_item_id).await;
    let link_token = open_session(&h, item_id).await;

    // SESSION_FINISHED before Plaid has the login back: /item/get still reports the error,
    // so nothing moves, and the alert stays open.
    deliver(
        &h,
        session_finished(&link_token, "SUCCESS", "session-early"),
    )
    .await;
    let recorded = h
        .app
        .eventually(WITHIN, || async {
            session_status(&h, &link_token).await == "succeeded"
        })
        .await;
    assert!(recorded, "the session's end is recorded");
    let item = h.item(item_id).await;
    assert_eq!(item["status"], "login_required", "{item}");
    assert_eq!(h.alert_counts(item_id, "login_required").await, (1, 1));

    // Plaid has the login back; the same SESSION_FINISHED comes again (Plaid retries), twice.
    set_login_required(&h, &plaid_item_id, false);
    let repaired_at = chrono::Utc::now();
    deliver(
        &h,
        session_finished(&link_token, "SUCCESS", "session-early"),
    )
    .await;
    deliver(
        &h,
        session_finished(&link_token, "SUCCESS", "session-early"),
    )
    .await;
    let item = h
        .item_until(item_id, WITHIN, |i| i["status"] == "active")
        .await;
    assert_eq!(item["status"], "active", "{item}");
    assert_eq!(item["history"][0]["cause"], "user_repaired", "{item}");
    assert_eq!(item["history"][0]["source"], "hosted_link", "{item}");
    let resolution: String = sqlx::query_scalar(
        "select resolution from alerts where item_id = $1 and cause = 'login_required'",
    )
    .bind(item_id)
    .fetch_one(&h.app.db)
    .await
    .unwrap();
    assert_eq!(resolution, "user_repaired");

    // A late ITEM ERROR webhook (sent before the repair, delivered after) changes nothing:
    // /item/get says the Item is fine.
    deliver(
        &h,
        json!({
            "webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": plaid_item_id,
            "environment": "sandbox",
            "error": {"error_type": "ITEM_ERROR", "error_code": "ITEM_LOGIN_REQUIRED",
                      "error_message": "the login details of this item have changed",
                      "display_message": null, "status": 400},
        }),
    )
    .await;
    // However many SESSION_FINISHED came.
    assert_repaired_once(&h, &receiver, (item_id, &plaid_item_id), repaired_at).await;
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn an_abandoned_session_keeps_the_alert_open_reminds_with_the_link_then_escalates_to_on_call()
{
    let receiver = AlertReceiver::start().await;
    let oncall = AlertReceiver::start().await;
    let h = start(&[
        ("PLAIDHOOK__ALERTS__WEBHOOK_URL", receiver.url.as_str()),
        ("PLAIDHOOK__ALERTS__ONCALL_WEBHOOK_URL", oncall.url.as_str()),
        ("PLAIDHOOK__ALERTS__ONCALL_FORMAT", "generic"),
        ("PLAIDHOOK__ALERTS__REMIND_AFTER_SECS", "1"),
        ("PLAIDHOOK__ALERTS__MAX_REMINDERS", "1"),
    ])
    .await;
    let (item_id, plaid_item_id) = h.link_settled("user-hl-3").await;
    let alert = broken_and_announced(&h, &receiver, &plaid_item_id).await;
    let link_token = open_session(&h, item_id).await;

    deliver(&h, session_finished(&link_token, "EXITED", "session-quit")).await;
    let recorded = h
        .app
        .eventually(WITHIN, || async {
            session_status(&h, &link_token).await == "exited"
        })
        .await;
    assert!(recorded, "the abandoned session is recorded");
    assert_eq!(h.item(item_id).await["status"], "login_required");

    let received = receiver
        .until(WITHIN, |r| !events(r, "alert.reminder").is_empty())
        .await;
    let reminders = events(&received, "alert.reminder");
    assert_eq!(reminders.len(), 1, "{received:?}");
    assert_eq!(reminders[0]["alert"]["id"], alert["id"]);
    assert!(
        reminders[0]["alert"]["repair"]["hosted_link"]["url"].is_string(),
        "the reminder carries a link: {}",
        reminders[0]
    );
    let escalated = oncall
        .until(WITHIN, |r| !events(r, "alert.escalated").is_empty())
        .await;
    assert_eq!(
        events(&escalated, "alert.escalated").len(),
        1,
        "{escalated:?}"
    );
    assert_eq!(
        escalated.len(),
        1,
        "on-call hears only the escalation: {escalated:?}"
    );
    // The user's channel never hears the escalation, and only one reminder (max_reminders).
    let received = receiver.received();
    assert!(
        events(&received, "alert.escalated").is_empty(),
        "{received:?}"
    );
    assert_eq!(events(&received, "alert.reminder").len(), 1, "{received:?}");
    assert_eq!(h.alert_counts(item_id, "login_required").await, (1, 1));
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn a_link_about_to_expire_is_replaced_and_the_renewal_announced() {
    let receiver = AlertReceiver::start().await;
    let h = start(&[
        ("PLAIDHOOK__ALERTS__WEBHOOK_URL", receiver.url.as_str()),
        ("PLAIDHOOK__LINK__HOSTED_URL_LIFETIME_SECS", "4"),
        ("PLAIDHOOK__LINK__HOSTED_RENEW_BEFORE_SECS", "2"),
        ("PLAIDHOOK__ALERTS__MAX_REMINDERS", "0"),
    ])
    .await;
    let (item_id, plaid_item_id) = h.link_settled("user-hl-4").await;
    let alert = broken_and_announced(&h, &receiver, &plaid_item_id).await;
    let first = alert["repair"]["hosted_link"]["url"]
        .as_str()
        .unwrap()
        .to_owned();

    let received = receiver
        .until(WITHIN, |r| !events(r, "alert.link_renewed").is_empty())
        .await;
    let renewed = events(&received, "alert.link_renewed");
    assert!(!renewed.is_empty(), "{received:?}");
    let fresh = renewed[0]["alert"]["repair"]["hosted_link"]["url"]
        .as_str()
        .unwrap();
    assert_ne!(fresh, first, "a new link replaces the old one");
    let superseded: i64 = sqlx::query_scalar(
        "select count(*) from link_sessions where item_id = $1 and status = 'superseded'",
    )
    .bind(item_id)
    .fetch_one(&h.app.db)
    .await
    .unwrap();
    assert!(superseded >= 1);
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn the_api_hands_out_a_hosted_repair_link_that_the_open_alert_then_carries() {
    let h = start(&[]).await;
    let (item_id, plaid_item_id) = h.link_settled("user-hl-5").await;
    assert!(h.app.sim().reset_login(&plaid_item_id));
    h.item_until(item_id, WITHIN, |i| i["status"] == "login_required")
        .await;

    let (status, link) = h
        .call(
            Method::POST,
            &format!("/api/v1/items/{item_id}/link-token"),
            Some(json!({"hosted": true})),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(link["mode"], "update");
    let url = link["hosted_link_url"].as_str().unwrap();
    let alert: Value = sqlx::query_scalar(
        "select a.id::text from alerts a where a.item_id = $1 and a.resolved_at is null",
    )
    .bind(item_id)
    .fetch_one(&h.app.db)
    .await
    .map(|id: String| json!(id))
    .unwrap();
    let tied: i64 = sqlx::query_scalar(
        "select count(*) from link_sessions where hosted_link_url = $1 and alert_id::text = $2",
    )
    .bind(url)
    .bind(alert.as_str().unwrap())
    .fetch_one(&h.app.db)
    .await
    .unwrap();
    assert_eq!(tied, 1, "the new link belongs to the open alert");
    h.app.stop().await.unwrap();
}

/// The whole loop in a real headless Chromium: the alert's link opened, a wrong password, then
/// the right one; Plaid's LINK webhooks bring the Item back with no call from the app.
#[tokio::test]
async fn a_user_repairs_the_login_in_a_real_browser_from_the_alerts_link() {
    use crate::helpers::browser::Browser;
    use crate::helpers::tools;
    if !tools::available(
        "chromedriver",
        &["--version"],
        "apt-get install chromium chromium-driver",
    ) {
        return;
    }
    let receiver = AlertReceiver::start().await;
    let completion = receiver.completion_url();
    let h = start(&[
        ("PLAIDHOOK__ALERTS__WEBHOOK_URL", receiver.url.as_str()),
        (
            "PLAIDHOOK__LINK__COMPLETION_REDIRECT_URI",
            completion.as_str(),
        ),
    ])
    .await;
    let (item_id, plaid_item_id) = h.link_settled("user-browser").await;
    let alert = broken_and_announced(&h, &receiver, &plaid_item_id).await;
    let url = alert["repair"]["hosted_link"]["url"].as_str().unwrap();

    let browser = Browser::start().await;
    browser.open(url).await;
    let page = browser.text().await;
    assert!(page.contains("needs to be updated"), "{page}");
    browser.type_into("#username", "user_good").await;
    browser.type_into("#password", "wrong-password").await;
    browser.click("#submit").await;
    // The click returns once the form is submitted; the next page may still be loading.
    let refused = testkit::eventually(WITHIN, || async {
        browser
            .text()
            .await
            .contains("credentials were not correct")
    })
    .await;
    assert!(
        refused,
        "Plaid's INVALID_CREDENTIALS message: {}",
        browser.text().await
    );
    assert_eq!(h.item(item_id).await["status"], "login_required");
    let artefacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    browser
        .screenshot(&artefacts.join("hosted-link-wrong-password.png"))
        .await;

    let repaired_at = chrono::Utc::now();
    browser.type_into("#username", "user_good").await;
    browser.type_into("#password", "pass_good").await;
    browser.click("#submit").await;
    let back = testkit::eventually(WITHIN, || async { browser.url().await == completion }).await;
    assert!(back, "sent back to the app, not {}", browser.url().await);
    browser
        .screenshot(&artefacts.join("hosted-link-repaired.png"))
        .await;
    browser.close().await;

    let item = h
        .item_until(item_id, WITHIN, |i| i["status"] == "active")
        .await;
    assert_eq!(item["status"], "active", "{item}");
    assert_eq!(item["history"][0]["cause"], "user_repaired", "{item}");
    let received = receiver
        .until(WITHIN, |r| !events(r, "alert.resolved").is_empty())
        .await;
    let resolved = events(&received, "alert.resolved");
    assert_eq!(resolved.len(), 1, "{received:?}");
    assert_eq!(resolved[0]["alert"]["resolution"], "user_repaired");
    assert_repaired_once(&h, &receiver, (item_id, &plaid_item_id), repaired_at).await;
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn new_accounts_raise_an_alert_with_a_link_that_selection_through_hosted_link_resolves() {
    let receiver = AlertReceiver::start().await;
    let h = start(&[("PLAIDHOOK__ALERTS__WEBHOOK_URL", receiver.url.as_str())]).await;
    let (item_id, plaid_item_id) = h.link_settled("user-hl-6").await;
    deliver(
        &h,
        json!({
            "webhook_type": "ITEM", "webhook_code": "NEW_ACCOUNTS_AVAILABLE",
            "item_id": plaid_item_id, "error": null, "environment": "sandbox",
        }),
    )
    .await;
    let received = receiver
        .until(WITHIN, |r| !events(r, "alert.raised").is_empty())
        .await;
    let raised = events(&received, "alert.raised");
    assert_eq!(raised.len(), 1, "{received:?}");
    let alert = &raised[0]["alert"];
    assert_eq!(alert["cause"], "new_accounts");
    assert!(alert["repair"]["hosted_link"]["url"].is_string(), "{alert}");
    let words = alert["repair"]["user_message"].as_str().unwrap();
    assert!(words.contains("choose the accounts"), "{words}");
    assert_eq!(
        h.item(item_id).await["status"],
        "active",
        "the Item keeps syncing"
    );
    let link_token = open_session(&h, item_id).await;

    deliver(
        &h,
        session_finished(&link_token, "SUCCESS", "session-select"),
    )
    .await;
    let received = receiver
        .until(WITHIN, |r| !events(r, "alert.resolved").is_empty())
        .await;
    let resolved = events(&received, "alert.resolved");
    assert_eq!(resolved.len(), 1, "{received:?}");
    assert_eq!(resolved[0]["alert"]["resolution"], "user_repaired");
    let still_new: bool =
        sqlx::query_scalar("select new_accounts_available from items where id = $1")
            .bind(item_id)
            .fetch_one(&h.app.db)
            .await
            .unwrap();
    assert!(!still_new, "account selection done");
    assert_eq!(h.alert_counts(item_id, "new_accounts").await, (0, 1));
    h.app.stop().await.unwrap();
}
