//! Every response of the simulator's 13 Plaid endpoints, its errors, and every webhook body it
//! sends validate against Plaid's official OpenAPI schemas.

use crate::helpers::sim as support;

use serde_json::json;
use std::time::Duration;
use support::receiver::Receiver;
use support::schemas::load_spec;
use support::{lifecycle_config, start, test_config, Plaid};

#[tokio::test]
async fn every_endpoint_response_and_error_matches_the_official_schemas() {
    let Some(mut spec) = load_spec() else { return };
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;

    let (status, link) = plaid
        .call("/link/token/create", json!({"client_name": "plaidhook", "language": "en", "country_codes": ["US"],
            "user": {"client_user_id": "user-1"}, "products": ["transactions"], "webhook": receiver.url}))
        .await;
    assert_eq!(status, 200, "{link}");
    spec.validate("LinkTokenCreateResponse", &link);

    let (status, public) = plaid
        .call(
            "/sandbox/public_token/create",
            json!({"institution_id": "ins_109508", "initial_products": ["transactions"],
            "options": {"webhook": receiver.url}}),
        )
        .await;
    assert_eq!(status, 200);
    spec.validate("SandboxPublicTokenCreateResponse", &public);

    let (status, exchanged) = plaid
        .call(
            "/item/public_token/exchange",
            json!({"public_token": public["public_token"]}),
        )
        .await;
    assert_eq!(status, 200);
    spec.validate("ItemPublicTokenExchangeResponse", &exchanged);
    let token = exchanged["access_token"].clone();

    let (status, update) = plaid
        .call("/link/token/create", json!({"client_name": "plaidhook", "language": "en", "country_codes": ["US"],
            "user": {"client_user_id": "user-1"}, "access_token": token, "update": {"account_selection_enabled": true}}))
        .await;
    assert_eq!(status, 200, "{update}");
    spec.validate("LinkTokenCreateResponse", &update);

    for (path, schema) in [
        ("/item/get", "ItemGetResponse"),
        ("/accounts/get", "AccountsGetResponse"),
        ("/accounts/balance/get", "AccountsGetResponse"),
        ("/transactions/refresh", "TransactionsRefreshResponse"),
    ] {
        let (status, body) = plaid.call(path, json!({"access_token": token})).await;
        assert_eq!(status, 200, "{path}: {body}");
        spec.validate(schema, &body);
    }

    let mut cursor = json!("");
    loop {
        let (status, page) = plaid
            .call(
                "/transactions/sync",
                json!({"access_token": token, "cursor": cursor, "count": 500}),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        assert!(!page["added"].as_array().unwrap().is_empty());
        spec.validate("TransactionsSyncResponse", &page);
        cursor = page["next_cursor"].clone();
        if page["has_more"] == false {
            break;
        }
    }
    let item_id = exchanged["item_id"].as_str().unwrap();
    handle.sim().advance(item_id, 4).unwrap();
    let (_, changes) = plaid
        .call(
            "/transactions/sync",
            json!({"access_token": token, "cursor": cursor, "count": 500}),
        )
        .await;
    assert!(
        !changes["removed"].as_array().unwrap().is_empty()
            && !changes["added"].as_array().unwrap().is_empty()
    );
    spec.validate("TransactionsSyncResponse", &changes);

    let (status, updated) = plaid
        .call(
            "/item/webhook/update",
            json!({"access_token": token, "webhook": receiver.url}),
        )
        .await;
    assert_eq!(status, 200);
    spec.validate("ItemWebhookUpdateResponse", &updated);

    let kid = handle.sim().current_key().kid;
    let (status, key) = plaid
        .call("/webhook_verification_key/get", json!({"key_id": kid}))
        .await;
    assert_eq!(status, 200);
    spec.validate("WebhookVerificationKeyGetResponse", &key);
    handle.sim().rotate_key();
    let (_, expired) = plaid
        .call("/webhook_verification_key/get", json!({"key_id": kid}))
        .await;
    assert!(expired["key"]["expired_at"].is_i64());
    spec.validate("WebhookVerificationKeyGetResponse", &expired);

    let (status, fired) = plaid
        .call(
            "/sandbox/item/fire_webhook",
            json!({"access_token": token, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"}),
        )
        .await;
    assert_eq!(status, 200);
    spec.validate("SandboxItemFireWebhookResponse", &fired);

    let (status, reset) = plaid
        .call("/sandbox/item/reset_login", json!({"access_token": token}))
        .await;
    assert_eq!(status, 200);
    spec.validate("SandboxItemResetLoginResponse", &reset);
    let (_, item) = plaid
        .call("/item/get", json!({"access_token": token}))
        .await;
    assert_eq!(item["item"]["error"]["error_code"], "ITEM_LOGIN_REQUIRED");
    spec.validate("ItemGetResponse", &item);

    let (status, removed) = plaid
        .call("/item/remove", json!({"access_token": token}))
        .await;
    assert_eq!(status, 200);
    spec.validate("ItemRemoveResponse", &removed);

    // Errors, each in Plaid's shape with Plaid's status.
    let wrong_keys =
        json!({"client_id": "nope", "secret": "nope", "access_token": "access-sandbox-x"});
    let cases = [
        ("/item/get", wrong_keys, 400, "INVALID_API_KEYS"),
        (
            "/item/get",
            json!({"client_id": plaid.client_id, "secret": plaid.secret}),
            400,
            "MISSING_FIELDS",
        ),
        (
            "/item/get",
            json!({"client_id": plaid.client_id, "secret": plaid.secret, "access_token": "x", "bogus": 1}),
            400,
            "UNKNOWN_FIELDS",
        ),
        (
            "/item/get",
            json!({"client_id": plaid.client_id, "secret": plaid.secret, "access_token": "bad"}),
            400,
            "INVALID_ACCESS_TOKEN",
        ),
        (
            "/item/get",
            json!({"client_id": plaid.client_id, "secret": plaid.secret, "access_token": token}),
            400,
            "ITEM_NOT_FOUND",
        ),
        (
            "/transactions/sync",
            json!({"client_id": plaid.client_id, "secret": plaid.secret, "access_token": "access-sandbox-x", "count": 501}),
            400,
            "INVALID_FIELD",
        ),
        (
            "/webhook_verification_key/get",
            json!({"client_id": plaid.client_id, "secret": plaid.secret, "key_id": "unknown"}),
            400,
            "INVALID_WEBHOOK_VERIFICATION_KEY_ID",
        ),
        (
            "/item/public_token/exchange",
            json!({"client_id": plaid.client_id, "secret": plaid.secret, "public_token": public["public_token"]}),
            400,
            "INVALID_PUBLIC_TOKEN",
        ),
        (
            "/sandbox/public_token/create",
            json!({"client_id": plaid.client_id, "secret": plaid.secret, "institution_id": "bank", "initial_products": ["transactions"]}),
            400,
            "INVALID_INSTITUTION",
        ),
        ("/no/such/endpoint", json!({}), 404, "NOT_FOUND"),
    ];
    for (path, body, expected_status, code) in cases {
        let (status, error) = plaid.raw(path, &body).await;
        assert_eq!(
            (status, error["error_code"].as_str().unwrap()),
            (expected_status, code),
            "{path}: {error}"
        );
        assert!(error["request_id"].is_string());
        spec.validate("PlaidError", &error);
    }
    let response = plaid
        .http
        .post(format!("{}/item/get", plaid.base_url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error_code"], "INVALID_BODY");
    spec.validate("PlaidError", &error);

    // Rate limits and item errors.
    plaid
        .control("/sim/config", json!({"sync_limit_per_item_per_minute": 1}))
        .await;
    let (_, token) = plaid.link_item(None).await;
    let (status, _) = plaid
        .call("/transactions/sync", json!({"access_token": token}))
        .await;
    assert_eq!(status, 200);
    let (status, limited) = plaid
        .call("/transactions/sync", json!({"access_token": token}))
        .await;
    assert_eq!(
        (
            status,
            limited["error_type"].as_str().unwrap(),
            limited["error_code"].as_str().unwrap()
        ),
        (429, "RATE_LIMIT_EXCEEDED", "TRANSACTIONS_SYNC_LIMIT")
    );
    spec.validate("PlaidError", &limited);
    plaid
        .call("/sandbox/item/reset_login", json!({"access_token": token}))
        .await;
    let (status, login) = plaid
        .call("/accounts/get", json!({"access_token": token}))
        .await;
    assert_eq!(
        (status, login["error_code"].as_str().unwrap()),
        (400, "ITEM_LOGIN_REQUIRED")
    );
    spec.validate("PlaidError", &login);
    handle.shutdown().await;
}

#[tokio::test]
async fn every_webhook_the_simulator_sends_matches_its_official_schema() {
    let Some(mut spec) = load_spec() else { return };
    // Plaid's lifecycle, so INITIAL_UPDATE and HISTORICAL_UPDATE are sent too.
    let handle = start(lifecycle_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let (item_id, token) = plaid.link_item(Some(&receiver.url)).await;

    for code in [
        "DEFAULT_UPDATE",
        "NEW_ACCOUNTS_AVAILABLE",
        "USER_PERMISSION_REVOKED",
        "USER_ACCOUNT_REVOKED",
        "PENDING_DISCONNECT",
        "RECURRING_TRANSACTIONS_UPDATE",
        "LOGIN_REPAIRED",
        "SYNC_UPDATES_AVAILABLE",
    ] {
        let (status, body) = plaid
            .call(
                "/sandbox/item/fire_webhook",
                json!({"access_token": token, "webhook_code": code}),
            )
            .await;
        assert_eq!(status, 200, "{code}: {body}");
    }
    let (status, body) = plaid
        .call(
            "/sandbox/item/fire_webhook",
            json!({"access_token": token, "webhook_code": "PRODUCT_READY"}),
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str().unwrap()),
        (400, "SANDBOX_PRODUCT_NOT_ENABLED")
    );
    plaid
        .call("/transactions/sync", json!({"access_token": token}))
        .await;
    // The bank moves on once the Item's history is complete: DEFAULT_UPDATE,
    // TRANSACTIONS_REMOVED (pending transactions posting) and SYNC_UPDATES_AVAILABLE.
    receiver
        .wait_for(Duration::from_secs(10), |r| {
            r.iter().any(|w| w.code() == "HISTORICAL_UPDATE")
        })
        .await;
    let changes = handle.sim().advance(&item_id, 3).unwrap();
    assert!(changes.removed > 0, "{changes:?}");
    plaid
        .call("/sandbox/item/reset_login", json!({"access_token": token}))
        .await;
    plaid
        .control(&format!("/sim/items/{item_id}/login_repaired"), json!({}))
        .await;
    plaid
        .control(&format!("/sim/items/{item_id}/consent_expiring"), json!({}))
        .await;
    // A European Item's consent expiry is PENDING_EXPIRATION.
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
    let eu_item = exchanged["item_id"].as_str().unwrap();
    plaid
        .control(&format!("/sim/items/{eu_item}/consent_expiring"), json!({}))
        .await;
    plaid
        .call(
            "/item/webhook/update",
            json!({"access_token": token, "webhook": receiver.url}),
        )
        .await;

    let expected = [
        "INITIAL_UPDATE",
        "HISTORICAL_UPDATE",
        "DEFAULT_UPDATE",
        "TRANSACTIONS_REMOVED",
        "SYNC_UPDATES_AVAILABLE",
        "RECURRING_TRANSACTIONS_UPDATE",
        "ERROR",
        "LOGIN_REPAIRED",
        "PENDING_DISCONNECT",
        "PENDING_EXPIRATION",
        "USER_PERMISSION_REVOKED",
        "USER_ACCOUNT_REVOKED",
        "NEW_ACCOUNTS_AVAILABLE",
        "WEBHOOK_UPDATE_ACKNOWLEDGED",
    ];
    let received = receiver
        .wait_for(Duration::from_secs(10), |r| {
            expected
                .iter()
                .all(|code| r.iter().any(|w| w.code() == *code))
        })
        .await;
    let mut seen = std::collections::BTreeSet::new();
    for webhook in &received {
        let body = webhook.json();
        let schema = match (
            body["webhook_type"].as_str().unwrap(),
            body["webhook_code"].as_str().unwrap(),
        ) {
            ("TRANSACTIONS", "SYNC_UPDATES_AVAILABLE") => "SyncUpdatesAvailableWebhook",
            ("TRANSACTIONS", "DEFAULT_UPDATE") => "DefaultUpdateWebhook",
            ("TRANSACTIONS", "INITIAL_UPDATE") => "InitialUpdateWebhook",
            ("TRANSACTIONS", "HISTORICAL_UPDATE") => "HistoricalUpdateWebhook",
            ("TRANSACTIONS", "TRANSACTIONS_REMOVED") => "TransactionsRemovedWebhook",
            ("TRANSACTIONS", "RECURRING_TRANSACTIONS_UPDATE") => {
                "RecurringTransactionsUpdateWebhook"
            }
            ("ITEM", "ERROR") => "ItemErrorWebhook",
            ("ITEM", "PENDING_EXPIRATION") => "PendingExpirationWebhook",
            ("ITEM", "PENDING_DISCONNECT") => "PendingDisconnectWebhook",
            ("ITEM", "USER_PERMISSION_REVOKED") => "UserPermissionRevokedWebhook",
            ("ITEM", "USER_ACCOUNT_REVOKED") => "UserAccountRevokedWebhook",
            ("ITEM", "NEW_ACCOUNTS_AVAILABLE") => "NewAccountsAvailableWebhook",
            ("ITEM", "WEBHOOK_UPDATE_ACKNOWLEDGED") => "WebhookUpdateAcknowledgedWebhook",
            ("ITEM", "LOGIN_REPAIRED") => "ItemLoginRepairedWebhook",
            other => panic!("unexpected webhook {other:?}"),
        };
        spec.validate(schema, &body);
        seen.insert(schema);
    }
    assert_eq!(seen.len(), 14, "{seen:?}");
    handle.shutdown().await;
}

#[test]
fn the_schema_check_rejects_bodies_that_break_the_spec() {
    let Some(mut spec) = load_spec() else { return };
    spec.validate("PlaidError", &json!({"error_type": "ITEM_ERROR", "error_code": "X", "error_message": "m", "display_message": null}));
    let broken = [
        (
            "PlaidError",
            json!({"error_type": "ITEM_ERROR", "error_code": "X", "display_message": null}),
        ),
        (
            "AccountsGetResponse",
            json!({"accounts": [{"account_id": "a"}], "item": {}, "request_id": "r"}),
        ),
        (
            "SyncUpdatesAvailableWebhook",
            json!({"webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE",
            "item_id": "i", "initial_update_complete": "yes", "historical_update_complete": true, "environment": "sandbox"}),
        ),
    ];
    for (schema, body) in broken {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            spec.validate(schema, &body)
        }));
        assert!(outcome.is_err(), "{schema} accepted {body}");
    }
}
