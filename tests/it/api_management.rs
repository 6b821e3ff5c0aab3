//! The management API through HTTP: authentication, validation, secrecy of access tokens, and
//! each endpoint against the in-process simulator.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use testkit::api::{start, Harness};
use testkit::logs::captured as captured_logs;
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(15);

/// Every operation of the served OpenAPI document, with `{item_id}` filled in.
async fn operations(h: &Harness, item_id: Uuid) -> Vec<(Method, String)> {
    let (status, spec) = h.call(Method::GET, "/api/openapi.json", None).await;
    assert_eq!(status, 200);
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            operations.push((method, path.replace("{item_id}", &item_id.to_string())));
        }
    }
    operations
}

#[tokio::test]
async fn every_endpoint_answers_401_without_a_token_or_with_a_wrong_one() {
    let h = start(&[]).await;
    let (item_id, _) = h.link_item("user-auth").await;
    let operations = operations(&h, item_id).await;
    assert!(operations.len() >= 11, "{operations:?}");
    let hash_of_the_token = "3f98e3ad578064e710ba3876cb369f9c9c29331875673bebb80efe369c17adbd";
    for (method, path) in &operations {
        let url = h.app.internal_url(path);
        let attempts = [
            ("no token", h.app.http.request(method.clone(), &url)),
            (
                "wrong token",
                h.app
                    .http
                    .request(method.clone(), &url)
                    .bearer_auth("wrong"),
            ),
            (
                "the configured hash",
                h.app
                    .http
                    .request(method.clone(), &url)
                    .bearer_auth(hash_of_the_token),
            ),
            (
                "basic scheme",
                h.app
                    .http
                    .request(method.clone(), &url)
                    .basic_auth("test", Some(testkit::api::TOKEN)),
            ),
        ];
        for (what, request) in attempts {
            let response = request.json(&json!({})).send().await.unwrap();
            assert_eq!(response.status(), 401, "{what}: {method} {path}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body["error"]["code"], "unauthorized",
                "{what}: {method} {path}"
            );
        }
    }
    // Probes and metrics stay open on the same listener.
    for open in ["/healthz", "/readyz", "/metrics"] {
        let status = h
            .app
            .http
            .get(h.app.internal_url(open))
            .send()
            .await
            .unwrap()
            .status();
        assert_ne!(status, 401, "{open}");
    }
    // Nothing was removed or repaired by all those calls.
    assert_eq!(h.item(item_id).await["status"], "active");
    h.app.stop().await.unwrap();
}

/// Rows in the tables an API call could change.
async fn footprint(h: &Harness) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "items",
        "item_status_history",
        "alerts",
        "outbox",
        "plaid_api_calls",
    ] {
        let sql = format!("select count(*) from {table}");
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&h.app.db)
            .await
            .unwrap();
        counts.push(count);
    }
    counts
}

#[tokio::test]
async fn malformed_bodies_get_400_with_a_clear_message_and_change_nothing() {
    // Data at once: a late lifecycle sync would change the footprint this test compares.
    let h = start(&[("PLAIDHOOK__SIM__INITIAL_DATA_READY", "true")]).await;
    let (item_id, _) = h.link_settled("user-400").await;
    let item = format!("/api/v1/items/{item_id}");
    let long_note = format!(r#"{{"reason_note": "{}"}}"#, "x".repeat(600));
    // (method, path, raw body or None, what the message must mention)
    let cases: Vec<(Method, String, Option<&str>, &str)> = vec![
        (
            Method::POST,
            "/api/v1/link/token".into(),
            Some("not json"),
            "invalid request body",
        ),
        (
            Method::POST,
            "/api/v1/link/token".into(),
            Some("{}"),
            "client_user_id",
        ),
        (
            Method::POST,
            "/api/v1/link/token".into(),
            Some(r#"{"client_user_id": "  "}"#),
            "client_user_id",
        ),
        (
            Method::POST,
            "/api/v1/link/token".into(),
            Some(r#"{"client_user_id": "u", "prodcts": []}"#),
            "prodcts",
        ),
        (
            Method::POST,
            "/api/v1/link/token".into(),
            Some(r#"{"client_user_id": "u", "days_requested": 9999}"#),
            "days_requested",
        ),
        (
            Method::POST,
            "/api/v1/link/exchange".into(),
            Some(r#"{"public_token": 5, "client_user_id": "u"}"#),
            "public_token",
        ),
        (
            Method::POST,
            "/api/v1/link/exchange".into(),
            Some(r#"{"public_token": "public-x"}"#),
            "client_user_id",
        ),
        (
            Method::POST,
            format!("{item}/link-token"),
            Some(r#"{"account_selection_enabled": "yes"}"#),
            "account_selection_enabled",
        ),
        (
            Method::POST,
            format!("{item}/link-success"),
            Some("[1, 2"),
            "invalid request body",
        ),
        (
            Method::DELETE,
            item.clone(),
            Some(&long_note),
            "reason_note",
        ),
        (
            Method::POST,
            "/api/v1/items/not-a-uuid/sync".into(),
            None,
            "not an Item id",
        ),
        (
            Method::GET,
            "/api/v1/items?status=broken".into(),
            None,
            "status",
        ),
        (Method::GET, "/api/v1/items?limit=0".into(), None, "limit"),
        // serde would read a struct from an array; the document says object.
        (
            Method::POST,
            "/api/v1/link/token".into(),
            Some(r#"["u"]"#),
            "JSON object",
        ),
        (
            Method::POST,
            "/api/v1/dead-letters/replay".into(),
            Some("[]"),
            "JSON object",
        ),
    ];
    let before = footprint(&h).await;
    for (method, path, body, mentions) in cases {
        let mut request = h.api(method.clone(), &path);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 400, "{method} {path} {body:?}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"], "bad_request", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(mentions),
            "{method} {path}: `{message}` should mention `{mentions}`"
        );
    }
    // A JSON endpoint called without a JSON content type says so.
    let response = h
        .api(Method::POST, "/api/v1/link/token")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        footprint(&h).await,
        before,
        "a rejected request changed nothing"
    );
    assert_eq!(h.item(item_id).await["status"], "active");

    // These reach Plaid, so they come after the footprint check.
    // Whole numbers written as JSON Schema allows (`240.0`) are taken, like `240`.
    let (status, token) = h
        .call(
            Method::POST,
            "/api/v1/link/token",
            Some(serde_json::json!({ "client_user_id": "u", "days_requested": 240.0 })),
        )
        .await;
    assert_eq!(status, 201, "{token}");
    // A public token Plaid refuses is the client's mistake: 400 with Plaid's code, not a 502.
    let (status, refused) = h
        .call(
            Method::POST,
            "/api/v1/link/exchange",
            Some(
                serde_json::json!({ "public_token": "not-a-public-token", "client_user_id": "u" }),
            ),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "plaid_error");
    assert_eq!(refused["error"]["plaid_error_code"], "INVALID_PUBLIC_TOKEN");
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn the_access_token_is_never_stored_in_plaintext_nor_returned_nor_logged() {
    let h = start(&[]).await;
    let (item_id, plaid_item_id) = h.link_item("user-secret").await;
    let access_token = h
        .app
        .sim()
        .with_state(|s| s.items[&plaid_item_id].access_token.clone());
    assert!(access_token.starts_with("access-"));
    h.item_until(item_id, WITHIN, |i| !i["last_synced_at"].is_null())
        .await;
    let transactions = h.app.sim().ground_truth(&plaid_item_id).unwrap();
    assert!(!transactions.is_empty());
    // Every endpoint that uses the token, and what they return.
    let mut answers = Vec::new();
    for (method, path) in [
        (Method::GET, format!("/api/v1/items/{item_id}")),
        (Method::GET, "/api/v1/items".to_owned()),
        (
            Method::POST,
            format!("/api/v1/items/{item_id}/balances/refresh"),
        ),
        (Method::POST, format!("/api/v1/items/{item_id}/sync")),
        (Method::POST, format!("/api/v1/items/{item_id}/link-token")),
        (
            Method::POST,
            format!("/api/v1/items/{item_id}/link-success"),
        ),
        (Method::DELETE, format!("/api/v1/items/{item_id}")),
    ] {
        let (status, body) = h.call(method.clone(), &path, None).await;
        assert!(status < 300, "{method} {path}: {status} {body}");
        answers.push(body.to_string());
    }
    for answer in &answers {
        assert!(!answer.contains(&access_token), "returned: {answer}");
    }

    let dump = std::process::Command::new("pg_dump")
        .args(["--data-only", &h.app.database().url])
        .output()
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains(&plaid_item_id), "the dump has the Item");
    assert!(
        !dump.contains(&access_token),
        "plaintext token in the database"
    );
    assert!(
        !dump.contains(&hex::encode(&access_token)),
        "token bytes in the database"
    );

    // A message the broker returns: lapin would log it whole, body included.
    let returned = h
        .app
        .publisher
        .publish(
            "",
            &format!("no-such-queue-{item_id}"),
            br#"{"secret":"a body nobody may log"}"#,
            Default::default(),
        )
        .await;
    assert!(returned.is_err(), "{returned:?}");

    // Everything above ran with every target at `trace`.
    let logs = captured_logs();
    assert!(logs.contains("Item linked"), "the capture works");
    assert!(logs.contains("TRACE"), "the capture is at trace");
    assert!(!logs.contains(&access_token), "the access token was logged");
    assert!(
        !logs.contains("user-secret"),
        "the client_user_id was logged"
    );
    assert!(
        !logs.contains("Server returned us a message"),
        "a returned message was logged"
    );
    for transaction in transactions.iter().take(20) {
        assert!(
            !logs.contains(transaction.transaction_id.as_str()),
            "a transaction id was logged"
        );
        assert!(
            !logs.contains(&transaction.name),
            "a transaction was logged"
        );
    }
    assert!(
        !logs.contains("\"webhook_code\""),
        "a webhook body was logged"
    );
    assert!(
        !logs.contains(testkit::api::TOKEN),
        "the API token was logged"
    );
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn items_are_listed_by_status_and_read_with_accounts_balances_and_history() {
    let h = start(&[]).await;
    let (healthy, _) = h.link_item("user-a").await;
    let (broken, broken_plaid) = h.link_item("user-b").await;
    h.app.sim().reset_login(&broken_plaid);
    h.item_until(broken, WITHIN, |i| i["status"] == "login_required")
        .await;

    let (status, list) = h
        .call(Method::GET, "/api/v1/items?status=login_required", None)
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [broken.to_string()]);
    let (_, all) = h.call(Method::GET, "/api/v1/items?limit=1", None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    let next = all["next_after"].as_str().unwrap();
    let (_, rest) = h
        .call(Method::GET, &format!("/api/v1/items?after={next}"), None)
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);

    // A field Plaid adds to its accounts one day is kept by a balance refresh too.
    h.app.sim().update_config(|c| {
        c.account_extra_fields = serde_json::json!({"balance_field_of_tomorrow": "x"})
            .as_object()
            .unwrap()
            .clone();
    });
    let (status, balances) = h
        .call(
            Method::POST,
            &format!("/api/v1/items/{healthy}/balances/refresh"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{balances}");
    let kept: Vec<Option<String>> = sqlx::query_scalar(
        "select raw->>'balance_field_of_tomorrow' from accounts a
           join items i on i.id = a.item_id where i.id = $1",
    )
    .bind(healthy)
    .fetch_all(&h.app.db)
    .await
    .unwrap();
    assert!(
        !kept.is_empty() && kept.iter().all(|v| v.as_deref() == Some("x")),
        "{kept:?}"
    );
    let accounts = balances["accounts"].as_array().unwrap();
    assert!(!accounts.is_empty());
    assert!(
        accounts[0]["balances"]["current"].is_string(),
        "money as decimal strings: {balances}"
    );
    assert!(!accounts[0]["balances"]["updated_at"].is_null());

    let item = h
        .item_until(healthy, WITHIN, |i| {
            i["last_sync"]["outcome"] == "succeeded"
        })
        .await;
    assert_eq!(item["client_user_id"], "user-a");
    assert_eq!(item["accounts"].as_array().unwrap().len(), accounts.len());
    assert_eq!(item["last_sync"]["outcome"], "succeeded", "{item}");
    assert_eq!(item["history"][0]["cause"], "linked");
    assert!(item.get("access_token").is_none());

    // A Plaid ITEM_ERROR met on a balance call is recorded on the Item, and the client told:
    // a 409 (the Item's state, not a fault of plaidhook or Plaid) with Plaid's code.
    let (status, error) = h
        .call(
            Method::POST,
            &format!("/api/v1/items/{broken}/balances/refresh"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["code"], "plaid_error");
    assert_eq!(error["error"]["plaid_error_code"], "ITEM_LOGIN_REQUIRED");
    let (status, _) = h
        .call(
            Method::GET,
            &format!("/api/v1/items/{}", Uuid::now_v7()),
            None,
        )
        .await;
    assert_eq!(status, 404);
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn manual_sync_refreshes_then_syncs_and_is_rate_limited_per_item() {
    let h = start(&[]).await;
    let (first, first_plaid) = h.link_item("user-sync-1").await;
    let (second, _) = h.link_item("user-sync-2").await;
    h.item_until(first, WITHIN, |i| !i["last_synced_at"].is_null())
        .await;
    let before = h.app.sim().ground_truth(&first_plaid).unwrap().len();

    let (status, body) = h
        .call(Method::POST, &format!("/api/v1/items/{first}/sync"), None)
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = h
        .call(Method::POST, &format!("/api/v1/items/{first}/sync"), None)
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let (status, _) = h
        .call(Method::POST, &format!("/api/v1/items/{second}/sync"), None)
        .await;
    assert_eq!(status, 202, "another Item has its own limit");

    // /transactions/refresh found a new transaction at the bank; the manual sync stores it.
    assert_eq!(
        h.app.sim().ground_truth(&first_plaid).unwrap().len(),
        before + 1
    );
    let stored = h
        .app
        .eventually(WITHIN, || async {
            let count: i64 =
                sqlx::query_scalar("select count(*) from transactions where item_id = $1")
                    .bind(first)
                    .fetch_one(&h.app.db)
                    .await
                    .unwrap();
            count as usize == before + 1
        })
        .await;
    assert!(stored);
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn removing_an_item_removes_it_at_plaid_and_resolves_its_alerts() {
    let h = start(&[]).await;
    let (item_id, plaid_item_id) = h.link_item("user-remove").await;
    h.app.sim().reset_login(&plaid_item_id);
    h.item_until(item_id, WITHIN, |i| i["status"] == "login_required")
        .await;
    assert_eq!(h.alert_counts(item_id, "login_required").await, (1, 1));

    let (status, removed) = h
        .call(Method::DELETE, &format!("/api/v1/items/{item_id}"), None)
        .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["status"], "removed");
    assert!(!removed["removed_at"].is_null());
    assert!(h.app.sim().with_state(|s| s.items[&plaid_item_id].removed));
    assert_eq!(h.alert_counts(item_id, "login_required").await, (0, 1));
    // Removing again answers the same; repairing a removed Item is a conflict.
    let (status, again) = h
        .call(
            Method::POST,
            &format!("/api/v1/items/{item_id}/remove"),
            None,
        )
        .await;
    assert_eq!((status, &again["status"]), (200, &json!("removed")));
    let (status, conflict) = h
        .call(
            Method::POST,
            &format!("/api/v1/items/{item_id}/link-token"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], "conflict");
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn link_success_reported_by_the_app_reactivates_a_repaired_item() {
    let h = start(&[]).await;
    let (item_id, plaid_item_id) = h.link_item("user-link-success").await;
    h.app.sim().reset_login(&plaid_item_id);
    h.item_until(item_id, WITHIN, |i| i["status"] == "login_required")
        .await;

    // Still broken at Plaid: the report changes nothing.
    let path = format!("/api/v1/items/{item_id}/link-success");
    let (status, outcome) = h
        .call(Method::POST, &path, Some(json!({"link_session_id": "s-1"})))
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["status"], "login_required");
    assert_eq!(outcome["sync_requested"], false);

    // Repaired at Plaid (no webhook reaches us): the report brings the Item back.
    h.app
        .sim()
        .with_state(|s| s.items.get_mut(&plaid_item_id).unwrap().error = None);
    let (status, outcome) = h.call(Method::POST, &path, None).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["previous_status"], "login_required");
    assert_eq!(outcome["status"], "active");
    assert_eq!(outcome["sync_requested"], true);
    assert_eq!(h.alert_counts(item_id, "login_required").await, (0, 1));
    assert_eq!(h.item(item_id).await["history"][0]["cause"], "link_success");
    h.app.stop().await.unwrap();
}
