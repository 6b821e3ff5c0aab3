//! The simulator's API edges: credentials, rate limits, injected faults, latency and 5xx,
//! determinism per seed (of the bank histories; ids are new every run), and speed with tens of
//! thousands of transactions.

use crate::helpers::sim as support;

use plaidhook::sim::NewItem;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{start, sync_all, test_config, truth, Plaid};

#[tokio::test]
async fn credentials_work_in_headers_and_wrong_ones_get_invalid_api_keys() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (_, token) = plaid.link_item(None).await;
    let response = plaid
        .http
        .post(format!("{}/item/get", plaid.base_url))
        .header("PLAID-CLIENT-ID", &plaid.client_id)
        .header("PLAID-SECRET", &plaid.secret)
        .json(&json!({"access_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (status, error) = plaid
        .raw(
            "/item/get",
            &json!({"client_id": plaid.client_id, "secret": "wrong", "access_token": token}),
        )
        .await;
    assert_eq!(
        (
            status,
            error["error_type"].as_str().unwrap(),
            error["error_code"].as_str().unwrap()
        ),
        (400, "INVALID_INPUT", "INVALID_API_KEYS")
    );
    let (status, error) = plaid
        .raw("/item/get", &json!({"access_token": token}))
        .await;
    assert_eq!(
        (status, error["error_code"].as_str().unwrap()),
        (400, "MISSING_FIELDS")
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn rate_limits_per_item_and_per_client_answer_429_transactions_sync_limit() {
    let handle = start(plaidhook::sim::SimConfig {
        sync_limit_per_item_per_minute: Some(3),
        sync_limit_per_client_per_minute: Some(5),
        ..test_config()
    })
    .await;
    let plaid = Plaid::new(&handle);
    let (_, a) = plaid.link_item(None).await;
    let (_, b) = plaid.link_item(None).await;
    let mut statuses = Vec::new();
    for token in [&a, &a, &a, &a, &b, &b, &b] {
        let (status, body) = plaid
            .call(
                "/transactions/sync",
                json!({"access_token": token, "count": 1}),
            )
            .await;
        if status == 429 {
            assert_eq!(
                (body["error_type"].as_str(), body["error_code"].as_str()),
                (Some("RATE_LIMIT_EXCEEDED"), Some("TRANSACTIONS_SYNC_LIMIT"))
            );
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 200, 200, 429]);
    handle.shutdown().await;
}

#[tokio::test]
async fn injected_faults_latency_and_the_5xx_rate_answer_in_plaids_shape() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (_, token) = plaid.link_item(None).await;
    plaid
        .control(
            "/sim/faults",
            json!({"endpoint": "/transactions/sync", "error_type": "API_ERROR",
        "error_code": "INTERNAL_SERVER_ERROR", "count": 2}),
        )
        .await;
    for _ in 0..2 {
        let (status, body) = plaid
            .call("/transactions/sync", json!({"access_token": token}))
            .await;
        assert_eq!(
            (status, body["error_code"].as_str().unwrap()),
            (500, "INTERNAL_SERVER_ERROR")
        );
    }
    let (status, _) = plaid
        .call("/transactions/sync", json!({"access_token": token}))
        .await;
    assert_eq!(status, 200);
    plaid
        .control("/sim/config", json!({"error_rate": 1.0, "latency_ms": 150}))
        .await;
    let started = Instant::now();
    let (status, body) = plaid
        .call("/item/get", json!({"access_token": token}))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(
        (status, body["error_type"].as_str().unwrap()),
        (500, "API_ERROR")
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn the_same_seed_gives_the_same_bank_histories_under_ids_never_seen_before() {
    let first = start(test_config()).await;
    let second = start(test_config()).await;
    let (a, _) = Plaid::new(&first).link_item(None).await;
    let (b, _) = Plaid::new(&second).link_item(None).await;
    assert_ne!(a, b, "a new simulator never reuses an Item id");
    let story = |handle: &plaidhook::sim::SimHandle, item: &str| {
        let mut story: Vec<_> = truth(handle, item)
            .into_values()
            .map(|t| {
                (
                    t["date"].clone(),
                    t["name"].clone(),
                    t["amount"].clone(),
                    t["pending"].clone(),
                )
            })
            .collect();
        story.sort_by_key(|entry| format!("{entry:?}"));
        story
    };
    assert_eq!(story(&first, &a), story(&second, &b));
    let ids = |handle: &plaidhook::sim::SimHandle, item: &str| {
        truth(handle, item)
            .into_keys()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert!(ids(&first, &a).is_disjoint(&ids(&second, &b)));
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn fifty_thousand_transactions_sync_in_a_hundred_full_pages() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (item_id, token) = handle.sim().create_item(NewItem {
        transactions: Some(50_000),
        days_requested: Some(730),
        ..NewItem::default()
    });
    let (_, pages) = sync_all(&plaid, token.expose_secret(), "", 500).await;
    assert_eq!(pages.len(), 100);
    assert_eq!(
        pages
            .iter()
            .map(|p| p["added"].as_array().unwrap().len())
            .sum::<usize>(),
        50_000
    );
    assert_eq!(
        handle.sim().ground_truth(item_id.as_str()).unwrap().len(),
        50_000
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn the_control_api_creates_items_finishes_link_advances_data_and_reports_ground_truth() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let created = plaid
        .control("/sim/items", json!({"transactions": 42}))
        .await;
    let item_id = created["item_id"].as_str().unwrap().to_owned();
    let token = created["access_token"].as_str().unwrap().to_owned();
    let get = |path: String| {
        let http = plaid.http.clone();
        let url = format!("{}{path}", plaid.base_url);
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let truth = get(format!("/sim/items/{item_id}/transactions")).await;
    assert_eq!(truth["transactions"].as_array().unwrap().len(), 42);
    assert_eq!(truth["accounts"].as_array().unwrap().len(), 3);

    let advanced = plaid
        .control(&format!("/sim/items/{item_id}/advance"), json!({"days": 3}))
        .await;
    assert!(
        advanced["changes"]["added"].as_u64().unwrap() >= 3,
        "{advanced}"
    );
    let (_, pages) = sync_all(&plaid, &token, "", 500).await;
    let synced: usize = pages
        .iter()
        .map(|p| p["added"].as_array().unwrap().len())
        .sum();
    let truth = get(format!("/sim/items/{item_id}/transactions")).await;
    assert_eq!(synced, truth["transactions"].as_array().unwrap().len());

    let (_, link) = plaid
        .call(
            "/link/token/create",
            json!({"client_name": "app", "language": "en", "country_codes": ["US"],
            "user": {"client_user_id": "u"}, "products": ["transactions"]}),
        )
        .await;
    let linked = plaid
        .control(
            "/sim/link/complete",
            json!({"link_token": link["link_token"]}),
        )
        .await;
    let (status, exchanged) = plaid
        .call(
            "/item/public_token/exchange",
            json!({"public_token": linked["public_token"]}),
        )
        .await;
    assert_eq!((status, &exchanged["item_id"]), (200, &linked["item_id"]));

    plaid
        .control(
            &format!("/sim/items/{item_id}/error"),
            json!({"error_code": "USER_PERMISSION_REVOKED"}),
        )
        .await;
    let (status, error) = plaid
        .call("/accounts/get", json!({"access_token": token}))
        .await;
    assert_eq!(
        (status, error["error_code"].as_str().unwrap()),
        (400, "USER_PERMISSION_REVOKED")
    );
    let items = get("/sim/items".to_owned()).await;
    assert_eq!(items["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        get("/sim/keys".to_owned()).await["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(get("/sim/webhooks".to_owned()).await["deliveries"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(get("/sim/config".to_owned()).await["seed"], 42);
    handle.shutdown().await;
}
