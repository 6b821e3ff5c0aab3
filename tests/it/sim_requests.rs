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

/// Pages of `/transactions/sync` from `cursor` with `options` until `has_more` is false:
/// the last cursor and the ids of (added, modified, removed).
async fn sync_stream(
    plaid: &Plaid,
    token: &str,
    cursor: &str,
    options: Value,
) -> (String, Vec<Value>) {
    let mut cursor = cursor.to_owned();
    let mut pages = Vec::new();
    loop {
        let (status, page) = plaid
            .call(
                "/transactions/sync",
                json!({"access_token": token, "cursor": cursor, "count": 100, "options": options}),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        cursor = page["next_cursor"].as_str().unwrap().to_owned();
        let more = page["has_more"].as_bool().unwrap();
        pages.push(page);
        if !more {
            return (cursor, pages);
        }
    }
}

fn ids(pages: &[Value], kind: &str) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p[kind].as_array().unwrap().clone())
        .map(|t| t["transaction_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn options_account_id_gives_each_account_its_own_stream_and_cursor() {
    // Spec, TransactionsSyncRequestOptions.account_id: "the returned updates and cursor will
    // only reflect the specified account's transactions", "a separate incremental update
    // stream -- and therefore a separate cursor", "an error will be returned if a provided
    // account_id is not associated with the Item" (Plaid's INVALID_ACCOUNT_ID, INVALID_INPUT).
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (item_id, token) = plaid.link_item(None).await;
    let accounts: Vec<String> = handle
        .sim()
        .accounts(&item_id)
        .unwrap()
        .iter()
        .map(|a| a.account_id.to_string())
        .collect();
    assert!(accounts.len() >= 2);
    let (_, everything) = sync_stream(&plaid, &token, "", json!({})).await;
    let mut all = ids(&everything, "added");
    all.sort();

    let mut union = Vec::new();
    let mut cursors = Vec::new();
    for account in &accounts {
        let (cursor, pages) = sync_stream(&plaid, &token, "", json!({"account_id": account})).await;
        for page in &pages {
            for txn in page["added"].as_array().unwrap() {
                assert_eq!(&txn["account_id"], account);
            }
        }
        union.extend(ids(&pages, "added"));
        cursors.push(cursor);
    }
    union.sort();
    assert_eq!(union, all, "the accounts' streams make up the Item's");

    // Later changes come on each account's own cursor, only its own.
    handle.sim().advance(&item_id, 5).unwrap();
    for (account, cursor) in accounts.iter().zip(&cursors) {
        let (_, pages) = sync_stream(&plaid, &token, cursor, json!({"account_id": account})).await;
        for page in &pages {
            for txn in page["added"]
                .as_array()
                .unwrap()
                .iter()
                .chain(page["modified"].as_array().unwrap())
            {
                assert_eq!(&txn["account_id"], account);
            }
        }
    }
    // One account's cursor is not another's, nor the Item's.
    let (status, body) = plaid
        .call(
            "/transactions/sync",
            json!({"access_token": token, "cursor": cursors[0], "options": {"account_id": accounts[1]}}),
        )
        .await;
    assert_invalid_request(status, &body, "INVALID_FIELD");
    let (status, body) = plaid
        .call(
            "/transactions/sync",
            json!({"access_token": token, "cursor": cursors[0]}),
        )
        .await;
    assert_invalid_request(status, &body, "INVALID_FIELD");
    // An account of no Item of this one.
    let (status, body) = plaid
        .call(
            "/transactions/sync",
            json!({"access_token": token, "options": {"account_id": "not-an-account"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_type"], "INVALID_INPUT");
    assert_eq!(body["error_code"], "INVALID_ACCOUNT_ID");
    handle.shutdown().await;
}

#[tokio::test]
async fn original_description_is_null_unless_include_original_description_is_true() {
    // Spec, TransactionsSyncRequestOptions.include_original_description (default false):
    // "Include the raw unparsed transaction description from the financial institution".
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (_, token) = plaid.link_item(None).await;
    for options in [json!({}), json!({"include_original_description": false})] {
        let (_, page) = plaid
            .call(
                "/transactions/sync",
                json!({"access_token": token, "count": 20, "options": options}),
            )
            .await;
        let added = page["added"].as_array().unwrap();
        assert!(!added.is_empty());
        assert!(
            added.iter().all(|t| t["original_description"].is_null()),
            "{page}"
        );
    }
    let (_, page) = plaid
        .call(
            "/transactions/sync",
            json!({"access_token": token, "count": 20, "options": {"include_original_description": true}}),
        )
        .await;
    for txn in page["added"].as_array().unwrap() {
        assert!(txn["original_description"].is_string(), "{txn}");
        assert_eq!(txn["original_description"], txn["name"]);
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn the_cursor_now_returns_nothing_and_a_cursor_at_the_latest_update() {
    // Spec, TransactionsSyncRequest.cursor: "the special value of \"now\", which can be used
    // to fast-forward the cursor" (Transactions Sync migration guide).
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (item_id, token) = plaid.link_item(None).await;
    let (status, page) = plaid
        .call(
            "/transactions/sync",
            json!({"access_token": token, "cursor": "now"}),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    for kind in ["added", "modified", "removed"] {
        assert_eq!(page[kind], json!([]), "{page}");
    }
    assert_eq!(page["has_more"], false);
    let now = page["next_cursor"].as_str().unwrap().to_owned();
    assert!(!now.is_empty() && now != "now");
    // Nothing new since: nothing. Then exactly what changed afterwards, as from a cursor
    // saved at the end of a full sync.
    let (_, pages) = sync_stream(&plaid, &token, &now, json!({})).await;
    assert!(ids(&pages, "added").is_empty() && ids(&pages, "modified").is_empty());
    let (full, _) = sync_stream(&plaid, &token, "", json!({})).await;
    handle.sim().advance(&item_id, 3).unwrap();
    let (_, from_now) = sync_stream(&plaid, &token, &now, json!({})).await;
    let (_, from_full) = sync_stream(&plaid, &token, &full, json!({})).await;
    for kind in ["added", "modified", "removed"] {
        assert_eq!(ids(&from_now, kind), ids(&from_full, kind), "{kind}");
    }
    assert!(!ids(&from_now, "added").is_empty());
    handle.shutdown().await;
}

#[tokio::test]
async fn updates_list_transactions_in_the_order_of_their_last_change() {
    // A transaction changed, then another, then the first again is listed after the second:
    // the update is ordered by last modification (Plaid's updates follow when changes
    // happened), not by the first change since the cursor.
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (item_id, token) = plaid.link_item(None).await;
    let (cursor, _) = sync_stream(&plaid, &token, "", json!({})).await;
    let (first, second) = handle.sim().with_state(|s| {
        let item = s.items.get_mut(&item_id).unwrap();
        let live: Vec<u32> = (0..item.data.txns.len() as u32)
            .filter(|&i| item.data.txns[i as usize].is_live())
            .take(2)
            .collect();
        let since = item.data.version();
        item.data.modify(live[0]);
        item.data.modify(live[1]);
        item.data.modify(live[0]);
        let names = (
            item.data.txns[live[0] as usize].transaction_id.to_string(),
            item.data.txns[live[1] as usize].transaction_id.to_string(),
        );
        s.data_changed(&item_id, since);
        names
    });
    let (_, pages) = sync_stream(&plaid, &token, &cursor, json!({})).await;
    assert_eq!(ids(&pages, "modified"), vec![second, first]);
    handle.shutdown().await;
}

#[tokio::test]
async fn item_get_reports_the_error_without_status_and_when_the_update_failed() {
    // Spec, PlaidError.status: "only be returned in the response body when the error
    // information is provided via a webhook"; ItemGetResponse.status.transactions
    // (ProductStatusTransactions): `last_failed_update`, "the last failed update".
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (item_id, token) = plaid.link_item(None).await;
    let (_, healthy) = plaid
        .call("/item/get", json!({"access_token": token}))
        .await;
    assert_eq!(healthy["item"]["error"], Value::Null);
    assert_eq!(
        healthy["status"]["transactions"]["last_failed_update"],
        Value::Null
    );
    let before = chrono::Utc::now();
    assert!(handle.sim().reset_login(&item_id));
    let (status, broken) = plaid
        .call("/item/get", json!({"access_token": token}))
        .await;
    assert_eq!(status, 200, "{broken}");
    let error = &broken["item"]["error"];
    assert_eq!(error["error_code"], "ITEM_LOGIN_REQUIRED");
    assert!(
        !error.as_object().unwrap().contains_key("status"),
        "{error}"
    );
    let failed: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(broken["status"]["transactions"]["last_failed_update"].clone())
            .expect("last_failed_update is set");
    assert!(failed >= before, "{failed} < {before}");
    assert!(broken["status"]["transactions"]["last_successful_update"].is_string());
    handle.shutdown().await;
}

#[tokio::test]
async fn balances_carry_last_updated_datetime_only_at_capital_one() {
    // Spec, AccountBalance.last_updated_datetime: "This field is returned only when the
    // institution is ins_128026 (Capital One)", whose balances are not real-time.
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (_, elsewhere) = plaid.link_item(None).await;
    let (status, created) = plaid
        .call(
            "/sandbox/public_token/create",
            json!({"institution_id": "ins_128026", "initial_products": ["transactions"]}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let (_, exchanged) = plaid
        .call(
            "/item/public_token/exchange",
            json!({"public_token": created["public_token"]}),
        )
        .await;
    let capital_one = exchanged["access_token"].as_str().unwrap().to_owned();
    for path in [
        "/accounts/get",
        "/accounts/balance/get",
        "/transactions/sync",
    ] {
        let (status, body) = plaid.call(path, json!({"access_token": elsewhere})).await;
        assert_eq!(status, 200, "{path}: {body}");
        for account in body["accounts"].as_array().unwrap() {
            assert_eq!(
                account["balances"]["last_updated_datetime"],
                Value::Null,
                "{path}"
            );
        }
        let (status, body) = plaid.call(path, json!({"access_token": capital_one})).await;
        assert_eq!(status, 200, "{path}: {body}");
        for account in body["accounts"].as_array().unwrap() {
            assert!(
                account["balances"]["last_updated_datetime"].is_string(),
                "{path}: {account}"
            );
        }
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn a_receiver_rejecting_more_than_90_percent_gets_no_more_retries() {
    // Plaid's webhook docs, "Webhook retries": "Plaid won't retry webhooks if we detect that
    // the webhook receiver endpoint has rejected more than 90% of webhooks sent by Plaid over
    // the last 24 hours". The sample before the rule applies is the simulator's (3 here).
    let handle = start(SimConfig {
        webhook_rejection_sample: 3,
        ..test_config()
    })
    .await;
    let plaid = Plaid::new(&handle);
    let receiver = support::receiver::Receiver::start().await;
    receiver.respond_with(&[500; 4]);
    let (_, token) = plaid.link_item(Some(&receiver.url)).await;
    let fire = || {
        plaid.call(
            "/sandbox/item/fire_webhook",
            json!({"access_token": token, "webhook_code": "LOGIN_REPAIRED"}),
        )
    };
    fire().await;
    let wait = std::time::Duration::from_secs(10);
    let log = handle
        .sim()
        .wait_for_deliveries(wait, |log| log.iter().any(|d| d.last_attempt))
        .await
        .expect("the retries stop");
    // Retried while under the sample, given up at the third rejection of three.
    let attempts: Vec<(u32, bool)> = log.iter().map(|d| (d.attempt, d.last_attempt)).collect();
    assert_eq!(attempts, vec![(1, false), (2, false), (3, true)]);
    assert!(log.iter().all(|d| d.status == Some(500)));
    // The next webhook is sent once (first attempts still go) and, rejected, not retried:
    // 4 of 4 rejected.
    fire().await;
    let log = handle
        .sim()
        .wait_for_deliveries(wait, |log| log.len() >= 4)
        .await
        .unwrap();
    assert_eq!(
        (log[3].attempt, log[3].status, log[3].last_attempt),
        (1, Some(500), true)
    );
    // Accepted webhooks bring the rate down: the receiver answers 200 from now on.
    fire().await;
    let log = handle
        .sim()
        .wait_for_deliveries(wait, |log| log.len() >= 5)
        .await
        .unwrap();
    assert_eq!((log[4].status, log[4].last_attempt), (Some(200), true));
    assert_eq!(
        receiver.received().len(),
        5,
        "no retry was sent after the rule applied"
    );
    handle.shutdown().await;
}
