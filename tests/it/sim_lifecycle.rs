//! The simulator's Item lifecycle against Plaid's spec: the first fetch of a new Item's
//! transactions (nothing, the last 30 days, then the history), the legacy transactions webhooks
//! beside SYNC_UPDATES_AVAILABLE, products as requested, LOGIN_REPAIRED only for repairs outside
//! the app, and consent expiry announced by the institution's region.

use crate::helpers::sim as support;

use chrono::NaiveDate;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use support::receiver::Receiver;
use support::{apply, lifecycle_config, start, sync_all, test_config, truth, Ledger, Plaid};

const WITHIN: Duration = Duration::from_secs(10);

fn codes(received: &[support::receiver::Received]) -> Vec<String> {
    received.iter().map(|r| r.code()).collect()
}

fn dates(pages: &[Value]) -> Vec<NaiveDate> {
    pages
        .iter()
        .flat_map(|p| p["added"].as_array().unwrap().clone())
        .map(|t| t["date"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn a_new_item_syncs_nothing_then_its_last_30_days_then_its_history_each_step_announced() {
    // Spec, SyncUpdatesAvailableWebhook: "the webhook will fire twice: once the first 30 days of
    // transactions data has been fetched, and a second time when all available historical
    // transactions data has been fetched"; TransactionsUpdateStatus: "INITIAL_UPDATE_COMPLETE:
    // Initial pull for the Item is complete, historical pull is pending."
    let handle = start(lifecycle_config()).await;
    let today = handle.sim().config().today.unwrap();
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let (item_id, token) = plaid.link_item(Some(&receiver.url)).await;

    // Called at once after the exchange, as Plaid asks: nothing yet.
    let (status, first) = plaid
        .call("/transactions/sync", json!({"access_token": token}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(first["transactions_update_status"], "NOT_READY");
    assert_eq!(first["next_cursor"], "");
    assert!(first["added"].as_array().unwrap().is_empty());

    // The initial update: INITIAL_UPDATE, and SYNC_UPDATES_AVAILABLE (sync was called) saying
    // the history is not complete yet.
    let received = receiver.wait_for(WITHIN, |r| r.len() >= 2).await;
    assert_eq!(
        codes(&received)[..2],
        ["INITIAL_UPDATE", "SYNC_UPDATES_AVAILABLE"]
    );
    let initial = received[0].json();
    let sync_hook = received[1].json();
    assert_eq!(
        (
            sync_hook["initial_update_complete"].as_bool(),
            sync_hook["historical_update_complete"].as_bool()
        ),
        (Some(true), Some(false))
    );
    let (cursor, pages) = sync_all(&plaid, &token, "", 500).await;
    assert!(pages
        .iter()
        .all(|p| p["transactions_update_status"] == "INITIAL_UPDATE_COMPLETE"));
    let recent = dates(&pages);
    assert_eq!(
        recent.len() as u64,
        initial["new_transactions"].as_u64().unwrap()
    );
    assert!(!recent.is_empty());
    let cutoff = today - chrono::Duration::days(30);
    assert!(recent.iter().all(|d| *d > cutoff), "only the last 30 days");
    let mut ledger = Ledger::new();
    pages.iter().for_each(|p| apply(&mut ledger, p));

    // The historical update: HISTORICAL_UPDATE, then SYNC_UPDATES_AVAILABLE saying both are done.
    let received = receiver.wait_for(WITHIN, |r| r.len() >= 4).await;
    assert_eq!(
        codes(&received)[2..4],
        ["HISTORICAL_UPDATE", "SYNC_UPDATES_AVAILABLE"]
    );
    let historical = received[2].json();
    assert_eq!(received[3].json()["historical_update_complete"], true);
    let (_, pages) = sync_all(&plaid, &token, &cursor, 500).await;
    assert!(pages
        .iter()
        .all(|p| p["transactions_update_status"] == "HISTORICAL_UPDATE_COMPLETE"));
    let older = dates(&pages);
    assert_eq!(
        older.len() as u64,
        historical["new_transactions"].as_u64().unwrap()
    );
    assert!(
        older.iter().all(|d| *d <= cutoff),
        "the rest of the history"
    );
    pages.iter().for_each(|p| apply(&mut ledger, p));
    assert_eq!(
        ledger,
        truth(&handle, &item_id),
        "both steps make the whole history"
    );
    assert_eq!(ledger.len(), 500);
    handle.shutdown().await;
}

#[tokio::test]
async fn without_a_sync_call_only_the_legacy_initial_and_historical_webhooks_fire() {
    // Spec: "to receive this webhook for an Item, /transactions/sync must have been called at
    // least once on that Item. This means that, unlike the INITIAL_UPDATE and HISTORICAL_UPDATE
    // webhooks, it will not fire immediately upon Item creation."
    let handle = start(lifecycle_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let (_, token) = plaid.link_item(Some(&receiver.url)).await;
    let received = receiver.wait_for(WITHIN, |r| r.len() >= 2).await;
    assert_eq!(codes(&received), ["INITIAL_UPDATE", "HISTORICAL_UPDATE"]);
    // Called late, the first sync has everything.
    let (_, pages) = sync_all(&plaid, &token, "", 500).await;
    assert_eq!(dates(&pages).len(), 500);
    assert_eq!(
        pages[0]["transactions_update_status"],
        "HISTORICAL_UPDATE_COMPLETE"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn legacy_transactions_webhooks_are_sent_beside_sync_updates_available_with_their_fields() {
    // Spec: "when using /transactions/sync the older webhooks INITIAL_UPDATE, HISTORICAL_UPDATE,
    // DEFAULT_UPDATE, and TRANSACTIONS_REMOVED ... will also continue to be sent".
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let (item_id, token) = plaid.link_item(Some(&receiver.url)).await;
    let (cursor, _) = sync_all(&plaid, &token, "", 500).await;
    let before = truth(&handle, &item_id);
    handle.sim().advance(&item_id, 3).unwrap();
    let after = truth(&handle, &item_id);
    let new: BTreeSet<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let gone: BTreeSet<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    assert!(
        !new.is_empty() && !gone.is_empty(),
        "posting pending transactions removes some"
    );

    let received = receiver.wait_for(WITHIN, |r| r.len() >= 3).await;
    assert_eq!(
        codes(&received),
        [
            "DEFAULT_UPDATE",
            "TRANSACTIONS_REMOVED",
            "SYNC_UPDATES_AVAILABLE"
        ]
    );
    let default = received[0].json();
    assert_eq!(default["webhook_type"], "TRANSACTIONS");
    assert_eq!(default["new_transactions"].as_u64(), Some(new.len() as u64));
    let removed: BTreeSet<String> = received[1].json()["removed_transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(removed.iter().collect::<BTreeSet<_>>(), gone);
    // What the webhooks announce is what the next sync returns.
    let (_, pages) = sync_all(&plaid, &token, &cursor, 500).await;
    let synced_removed: BTreeSet<String> = pages
        .iter()
        .flat_map(|p| p["removed"].as_array().unwrap().clone())
        .map(|r| r["transaction_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(synced_removed, removed);
    handle.shutdown().await;
}

#[tokio::test]
async fn products_are_the_ones_requested_and_transactions_is_not_added() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (_, created) = plaid
        .call(
            "/sandbox/public_token/create",
            json!({"institution_id": "ins_109508", "initial_products": ["auth"]}),
        )
        .await;
    let (_, exchanged) = plaid
        .call(
            "/item/public_token/exchange",
            json!({"public_token": created["public_token"]}),
        )
        .await;
    let (status, item) = plaid
        .call(
            "/item/get",
            json!({"access_token": exchanged["access_token"]}),
        )
        .await;
    assert_eq!(status, 200, "{item}");
    assert_eq!(item["item"]["products"], json!(["auth"]), "{item}");
    handle.shutdown().await;
}

#[tokio::test]
async fn update_mode_in_the_app_sends_no_login_repaired_and_a_repair_outside_the_app_does() {
    // Spec: "LOGIN_REPAIRED: Fired when an Item recovers from the ITEM_LOGIN_REQUIRED without
    // the user going through update mode in your app."
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let (item_id, token) = plaid.link_item(Some(&receiver.url)).await;

    plaid
        .call("/sandbox/item/reset_login", json!({"access_token": token}))
        .await;
    let (_, link) = plaid
        .call(
            "/link/token/create",
            json!({"client_name": "app", "language": "en", "country_codes": ["US"],
                   "user": {"client_user_id": "u"}, "access_token": token}),
        )
        .await;
    let completed = plaid
        .control(
            "/sim/link/complete",
            json!({"link_token": link["link_token"]}),
        )
        .await;
    assert_eq!(completed["update_mode"], true);
    let (status, item) = plaid
        .call("/item/get", json!({"access_token": token}))
        .await;
    assert_eq!(
        (status, &item["item"]["error"]),
        (200, &Value::Null),
        "repaired"
    );

    // Broken again, and this time it recovers outside the app: LOGIN_REPAIRED.
    plaid
        .call("/sandbox/item/reset_login", json!({"access_token": token}))
        .await;
    plaid
        .control(&format!("/sim/items/{item_id}/login_repaired"), json!({}))
        .await;
    let received = receiver.wait_for(WITHIN, |r| r.len() >= 3).await;
    assert_eq!(codes(&received), ["ERROR", "ERROR", "LOGIN_REPAIRED"]);
    handle.shutdown().await;
}

#[tokio::test]
async fn consent_expiry_is_pending_expiration_in_europe_and_pending_disconnect_in_the_us() {
    // Spec, PendingExpirationWebhook: "fired only for Items associated with institutions in
    // Europe (including the UK); for Items associated with institutions in the US or Canada, see
    // PENDING_DISCONNECT"; PendingDisconnectWebhookReason: "INSTITUTION_TOKEN_EXPIRATION: The
    // consent on an Item associated with a US or CA institution is about to expire."
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let (us_item, _) = plaid.link_item(Some(&receiver.url)).await;
    let (_, created) = plaid
        .call(
            "/sandbox/public_token/create",
            json!({"institution_id": "ins_117650", "initial_products": ["transactions"],
                   "options": {"webhook": receiver.url}}),
        )
        .await;
    let (_, exchanged) = plaid
        .call(
            "/item/public_token/exchange",
            json!({"public_token": created["public_token"]}),
        )
        .await;
    let eu_item = exchanged["item_id"].as_str().unwrap().to_owned();

    let us = plaid
        .control(&format!("/sim/items/{us_item}/consent_expiring"), json!({}))
        .await;
    assert_eq!(us["webhook_code"], "PENDING_DISCONNECT");
    let received = receiver.wait_for(WITHIN, |r| !r.is_empty()).await;
    let body = received[0].json();
    assert_eq!(body["webhook_code"], "PENDING_DISCONNECT");
    assert_eq!(body["reason"], "INSTITUTION_TOKEN_EXPIRATION");

    let eu = plaid
        .control(&format!("/sim/items/{eu_item}/consent_expiring"), json!({}))
        .await;
    assert_eq!(eu["webhook_code"], "PENDING_EXPIRATION");
    let received = receiver.wait_for(WITHIN, |r| r.len() >= 2).await;
    assert_eq!(received[1].json()["item_id"], eu_item.as_str());
    assert_eq!(received[1].code(), "PENDING_EXPIRATION");

    // PENDING_EXPIRATION is refused for a US Item; PENDING_DISCONNECT takes either reason.
    let refused = plaid
        .http
        .post(format!(
            "{}/sim/items/{us_item}/pending_expiration",
            plaid.base_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    plaid
        .control(
            &format!("/sim/items/{us_item}/pending_disconnect"),
            json!({"reason": "INSTITUTION_MIGRATION"}),
        )
        .await;
    let received = receiver.wait_for(WITHIN, |r| r.len() >= 3).await;
    assert_eq!(received[2].json()["reason"], "INSTITUTION_MIGRATION");
    handle.shutdown().await;
}
