//! How the simulator treats requests as Plaid does, each test naming the Plaid document it
//! follows: rate limits per endpoint and profile, request validation, the error body, the
//! options of `/transactions/sync`, and the smaller fields of `/item/get` and balances.

use crate::helpers::sim as support;

use plaidhook::sim::{RateLimitProfile, SimConfig};
use serde_json::{json, Value};
use support::{start, test_config, Plaid};

/// Plaid's one message for every RATE_LIMIT_EXCEEDED code of the subset (its "Rate Limit
/// Exceeded errors" page shows it for per-client codes too).
const LIMIT_MESSAGE: &str =
    "rate limit exceeded for attempts to access this item. please try again later";

/// `test_config` with no overrides: the profile's figures everywhere.
fn documented_limits(profile: RateLimitProfile) -> SimConfig {
    SimConfig {
        rate_limit_profile: profile,
        sync_limit_per_item_per_minute: None,
        sync_limit_per_client_per_minute: None,
        balance_limit_per_item_per_minute: None,
        balance_limit_per_client_per_minute: None,
        ..test_config()
    }
}

/// Calls `path` until it is refused; returns how many calls passed and the refusal.
async fn calls_until_refused(
    plaid: &Plaid,
    path: &str,
    body: Value,
    most: usize,
) -> (usize, u16, Value) {
    for passed in 0..most {
        let (status, answer) = plaid.call(path, body.clone()).await;
        if status != 200 {
            return (passed, status, answer);
        }
    }
    panic!("{path}: {most} calls and no refusal");
}

fn assert_limit(status: u16, body: &Value, code: &str) {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error_type"], "RATE_LIMIT_EXCEEDED", "{body}");
    assert_eq!(body["error_code"], code, "{body}");
    assert_eq!(body["error_message"], LIMIT_MESSAGE, "{body}");
    assert_eq!(body["display_message"], Value::Null);
    assert!(body["request_id"].is_string());
}

#[tokio::test]
async fn production_limits_per_item_answer_each_endpoint_with_its_own_code() {
    // https://plaid.com/docs/errors/rate-limit-exceeded/, "Production rate limits": /item/get 15
    // per Item per minute (ITEM_GET_LIMIT), /accounts/get 15 (ACCOUNTS_LIMIT),
    // /transactions/refresh 2 (TRANSACTIONS_REFRESH_LIMIT), /accounts/balance/get 5 per Item
    // (BALANCE_LIMIT), /transactions/sync 50 (TRANSACTIONS_SYNC_LIMIT).
    let handle = start(documented_limits(RateLimitProfile::Production)).await;
    let plaid = Plaid::new(&handle);
    let (_, token) = plaid.link_item(None).await;
    let (_, other) = plaid.link_item(None).await;
    let body = json!({"access_token": token});
    for (path, figure, code) in [
        ("/item/get", 15, "ITEM_GET_LIMIT"),
        ("/accounts/get", 15, "ACCOUNTS_LIMIT"),
        ("/transactions/refresh", 2, "TRANSACTIONS_REFRESH_LIMIT"),
        ("/accounts/balance/get", 5, "BALANCE_LIMIT"),
        ("/transactions/sync", 50, "TRANSACTIONS_SYNC_LIMIT"),
    ] {
        let (passed, status, refusal) = calls_until_refused(&plaid, path, body.clone(), 60).await;
        assert_eq!(passed, figure, "{path}");
        assert_limit(status, &refusal, code);
        // Per Item: another Item still gets through.
        let (status, answer) = plaid.call(path, json!({"access_token": other})).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn the_sandbox_profile_applies_plaids_sandbox_figures_and_the_per_client_balance_code() {
    // Same page, "Sandbox rate limits": /item/get 40 per Item; /accounts/balance/get 100 per
    // client, refused with ACCOUNTS_BALANCE_GET_LIMIT ("client rate limited at a maximum of 100
    // requests per client per minute" in the Sandbox). The per-Item balance figure is lifted
    // here (an override) so one Item reaches the client's.
    let handle = start(SimConfig {
        balance_limit_per_item_per_minute: Some(0),
        ..documented_limits(RateLimitProfile::Sandbox)
    })
    .await;
    let plaid = Plaid::new(&handle);
    let (_, token) = plaid.link_item(None).await;
    let body = json!({"access_token": token});
    let (passed, status, refusal) =
        calls_until_refused(&plaid, "/item/get", body.clone(), 60).await;
    assert_eq!(passed, 40);
    assert_limit(status, &refusal, "ITEM_GET_LIMIT");
    let (passed, status, refusal) =
        calls_until_refused(&plaid, "/accounts/balance/get", body, 120).await;
    assert_eq!(passed, 100);
    assert_limit(status, &refusal, "ACCOUNTS_BALANCE_GET_LIMIT");
    handle.shutdown().await;
}

#[tokio::test]
async fn the_profile_is_production_by_default_and_selectable_at_run_time() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let config: Value = plaid
        .http
        .get(format!("{}/sim/config", plaid.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["rate_limit_profile"], "production");
    let changed = plaid
        .control("/sim/config", json!({"rate_limit_profile": "sandbox"}))
        .await;
    assert_eq!(changed["rate_limit_profile"], "sandbox");
    assert_eq!(
        handle
            .sim()
            .config()
            .rate_limit("/item/get")
            .unwrap()
            .per_item,
        40
    );
    handle.shutdown().await;
}
