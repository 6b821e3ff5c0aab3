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

fn assert_invalid_request(status: u16, body: &Value, code: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_type"], "INVALID_REQUEST", "{body}");
    assert_eq!(body["error_code"], code, "{body}");
    assert!(body["request_id"].is_string(), "{body}");
}

#[tokio::test]
async fn unknown_fields_inside_an_endpoints_objects_are_refused_by_their_dotted_path() {
    // https://plaid.com/docs/errors/invalid-request/#unknown_fields: "the following fields are
    // not recognized by this endpoint: {fields}". TransactionsSyncRequestOptions has no
    // `count`; AccountsGetRequestOptions has no `min_last_updated_datetime` (balance's has).
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (_, token) = plaid.link_item(None).await;
    let (status, body) = plaid
        .call(
            "/transactions/sync",
            json!({"access_token": token, "options": {"count": 5}}),
        )
        .await;
    assert_invalid_request(status, &body, "UNKNOWN_FIELDS");
    assert_eq!(
        body["error_message"],
        "the following fields are not recognized by this endpoint: options.count"
    );
    let since = json!({"account_ids": [], "min_last_updated_datetime": "2026-03-01T00:00:00Z"});
    let (status, body) = plaid
        .call(
            "/accounts/get",
            json!({"access_token": token, "options": since}),
        )
        .await;
    assert_invalid_request(status, &body, "UNKNOWN_FIELDS");
    assert_eq!(
        body["error_message"],
        "the following fields are not recognized by this endpoint: options.min_last_updated_datetime"
    );
    let (status, body) = plaid
        .call(
            "/accounts/balance/get",
            json!({"access_token": token, "options": {"min_last_updated_datetime": "2026-03-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Two levels down, in the sandbox's options.
    let (status, body) = plaid
        .call(
            "/sandbox/public_token/create",
            json!({"institution_id": "ins_109508", "initial_products": ["transactions"],
                   "options": {"transactions": {"days_requested": 30, "count": 1}}}),
        )
        .await;
    assert_invalid_request(status, &body, "UNKNOWN_FIELDS");
    assert_eq!(
        body["error_message"],
        "the following fields are not recognized by this endpoint: options.transactions.count"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn an_options_object_given_as_null_is_a_wrong_type_unless_the_spec_makes_it_nullable() {
    // https://plaid.com/docs/errors/invalid-request/#invalid_field: a field that "used a wrong
    // type". The spec's TransactionsSyncRequest.options is an object, not nullable;
    // SandboxPublicTokenCreateRequestOptions.transactions is `nullable: true`.
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (_, token) = plaid.link_item(None).await;
    for options in [json!(null), json!("all"), json!([])] {
        let (status, body) = plaid
            .call(
                "/transactions/sync",
                json!({"access_token": token, "options": options}),
            )
            .await;
        assert_invalid_request(status, &body, "INVALID_FIELD");
        assert_eq!(body["error_message"], "options must be an object");
    }
    let (status, body) = plaid
        .call(
            "/sandbox/public_token/create",
            json!({"institution_id": "ins_109508", "initial_products": ["transactions"],
                   "options": {"transactions": null}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    handle.shutdown().await;
}

#[tokio::test]
async fn a_body_of_another_content_type_is_invalid_body() {
    // https://plaid.com/docs/errors/invalid-request/#invalid_body: a cause is "the request
    // content-type was not of type application/json"; message "body could not be parsed as JSON".
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let body = json!({"client_id": plaid.client_id, "secret": plaid.secret, "key_id": "k"});
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let response = plaid
            .http
            .post(format!("{}/webhook_verification_key/get", plaid.base_url))
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        assert_invalid_request(status, &answer, "INVALID_BODY");
        assert_eq!(answer["error_message"], "body could not be parsed as JSON");
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn an_empty_client_id_is_an_invalid_field_and_an_absent_one_a_missing_field() {
    // https://plaid.com/docs/errors/invalid-request/: MISSING_FIELDS for a field not given,
    // INVALID_FIELD for one "invalid, malformed"; an empty client_id is the second.
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (_, token) = plaid.link_item(None).await;
    let (status, body) = plaid
        .call("/item/get", json!({"client_id": "", "access_token": token}))
        .await;
    assert_invalid_request(status, &body, "INVALID_FIELD");
    assert_eq!(
        body["error_message"],
        "client_id must be a non-empty string"
    );
    let (status, body) = plaid
        .raw(
            "/item/get",
            &json!({"secret": plaid.secret, "access_token": token}),
        )
        .await;
    assert_invalid_request(status, &body, "MISSING_FIELDS");
    assert_eq!(
        body["error_message"],
        "the following required fields are missing: client_id"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn another_method_on_a_plaid_path_answers_plaids_not_found_body() {
    // Every Plaid endpoint is a POST; https://plaid.com/docs/errors/invalid-request/#not_found
    // is Plaid's answer for "the endpoint you requested does not exist" (HTTP 404). What Plaid
    // answers a GET on a POST path is undocumented: the simulator gives the same body.
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let response = plaid
            .http
            .request(method.clone(), format!("{}/item/get", plaid.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404, "{method}");
        let body: Value = response.json().await.expect("a Plaid error body");
        assert_eq!(body["error_type"], "INVALID_REQUEST", "{method}");
        assert_eq!(body["error_code"], "NOT_FOUND");
        assert_eq!(body["error_message"], "not found");
        assert!(body["request_id"].is_string());
    }
    handle.shutdown().await;
}

fn assert_documented(body: &Value, url: &str) {
    assert_eq!(body["documentation_url"], url, "{body}");
    let object = body.as_object().unwrap();
    assert!(object.contains_key("suggested_action"), "{body}");
    assert_eq!(body["suggested_action"], Value::Null, "{body}");
}

#[tokio::test]
async fn every_error_body_carries_its_documentation_url_and_a_null_suggested_action() {
    // The spec's PlaidError: `documentation_url` "the URL of a Plaid documentation page with
    // more information about the error", `suggested_action` nullable. Plaid's pages put each
    // code at https://plaid.com/docs/errors/<type page>/#<code in lower case>.
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (item_id, token) = plaid.link_item(None).await;
    let (_, body) = plaid
        .call("/item/get", json!({"access_token": token, "x": 1}))
        .await;
    assert_documented(
        &body,
        "https://plaid.com/docs/errors/invalid-request/#unknown_fields",
    );
    let (_, body) = plaid
        .call(
            "/item/get",
            json!({"access_token": "access-sandbox-unknown"}),
        )
        .await;
    assert_documented(
        &body,
        "https://plaid.com/docs/errors/invalid-input/#invalid_access_token",
    );
    let (_, body) = plaid.call("/nowhere", json!({})).await;
    assert_documented(
        &body,
        "https://plaid.com/docs/errors/invalid-request/#not_found",
    );
    // An injected fault gets its URL too.
    plaid
        .control(
            "/sim/faults",
            json!({"error_type": "API_ERROR", "error_code": "INTERNAL_SERVER_ERROR", "endpoint": "/item/get"}),
        )
        .await;
    let (status, body) = plaid
        .call("/item/get", json!({"access_token": token}))
        .await;
    assert_eq!(status, 500, "{body}");
    assert_documented(
        &body,
        "https://plaid.com/docs/errors/api/#internal_server_error",
    );
    // ITEM_LOGIN_REQUIRED, as an API answer and as item.error.
    assert!(handle.sim().reset_login(&item_id));
    let (status, body) = plaid
        .call("/transactions/sync", json!({"access_token": token}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_documented(
        &body,
        "https://plaid.com/docs/errors/item/#item_login_required",
    );
    let (_, body) = plaid
        .call("/item/get", json!({"access_token": token}))
        .await;
    assert_documented(
        &body["item"]["error"],
        "https://plaid.com/docs/errors/item/#item_login_required",
    );
    handle.shutdown().await;
}
