//! Hosted Link in the simulator, driven with plain HTTP form posts: a new Item, update mode
//! after `reset_login`, a wrong password then the right one, an exit, an expired URL, what
//! `/link/token/get` reports, and `/link/token/create`'s validation. Every LINK webhook body and
//! `/link/token/get` response is checked against Plaid's official schemas.

use crate::helpers::sim as support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::Signature;
use plaidhook::sim::SimHandle;
use serde_json::{json, Value};
use std::time::Duration;
use support::receiver::{Received, Receiver};
use support::schemas::{load_spec, Spec};
use support::{start, test_config, Plaid};

const WAIT: Duration = Duration::from_secs(10);

/// A browser that does not follow redirects, so the 303 is seen.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get_page(url: &str) -> (u16, String) {
    let response = browser().get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Submit the login form; returns the status, the `Location` header and the page.
async fn log_in(url: &str, username: &str, password: &str) -> (u16, Option<String>, String) {
    let response = browser()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        // The test's values need no percent-encoding.
        .body(format!("username={username}&password={password}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, location, response.text().await.unwrap())
}

/// A link token with `hosted_link`; returns the create response.
async fn hosted_token(plaid: &Plaid, extra: Value) -> Value {
    let mut body = json!({"client_name": "Budget App", "language": "en", "country_codes": ["US"],
        "user": {"client_user_id": "user-1"}});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, created) = plaid.call("/link/token/create", body).await;
    assert_eq!(status, 200, "{created}");
    created
}

fn link_webhooks(received: &[Received]) -> Vec<Value> {
    received
        .iter()
        .map(Received::json)
        .filter(|w| w["webhook_type"] == "LINK")
        .collect()
}

fn codes(webhooks: &[Value]) -> Vec<&str> {
    webhooks
        .iter()
        .map(|w| w["webhook_code"].as_str().unwrap())
        .collect()
}

fn event_names(events: &Value) -> Vec<&str> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_name"].as_str().unwrap())
        .collect()
}

/// The webhook is signed as every simulator webhook: ES256 over its exact body.
fn assert_signed(handle: &SimHandle, webhook: &Received) {
    let jwt = webhook.verification.as_deref().expect("Plaid-Verification");
    let mut parts = jwt.split('.');
    let (header, claims, signature) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let key = handle.sim().current_key();
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
    key.verifying_key()
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .expect("signature verifies");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    assert_eq!(
        claims["request_body_sha256"],
        plaidhook::sim::body_sha256_hex(&webhook.body)
    );
}

/// Validate every LINK webhook against its schema in Plaid's spec.
fn validate_link_webhooks(spec: &mut Option<Spec>, webhooks: &[Value]) {
    let Some(spec) = spec else { return };
    for webhook in webhooks {
        let schema = match webhook["webhook_code"].as_str().unwrap() {
            "ITEM_ADD_RESULT" => "ItemAddResultWebhook",
            "EVENTS" => "LinkEventsWebhook",
            "SESSION_FINISHED" => "LinkSessionFinishedWebhook",
            other => panic!("unexpected LINK webhook {other}"),
        };
        spec.validate(schema, webhook);
    }
}

async fn link_token_get(plaid: &Plaid, spec: &mut Option<Spec>, link_token: &Value) -> Value {
    let (status, got) = plaid
        .call("/link/token/get", json!({"link_token": link_token}))
        .await;
    assert_eq!(status, 200, "{got}");
    if let Some(spec) = spec {
        spec.validate("LinkTokenGetResponse", &got);
    }
    got
}

#[tokio::test]
async fn hosted_link_adds_an_item_reports_it_by_link_webhooks_and_link_token_get() {
    let mut spec = load_spec();
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let before = chrono::Utc::now();
    let created = hosted_token(
        &plaid,
        json!({"products": ["transactions"], "webhook": receiver.url, "institution_id": "ins_109511",
            "hosted_link": {"completion_redirect_uri": "https://app.example/linked?x=1"}}),
    )
    .await;
    if let Some(spec) = &mut spec {
        spec.validate("LinkTokenCreateResponse", &created);
    }
    let url = created["hosted_link_url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/hl/", handle.base_url())),
        "{url}"
    );
    // Without url_lifetime_seconds the URL, and the token with it, lives Plaid's 30 minutes.
    let expiration: chrono::DateTime<chrono::Utc> =
        created["expiration"].as_str().unwrap().parse().unwrap();
    let lifetime = expiration - before;
    assert!(
        (chrono::Duration::minutes(29)..=chrono::Duration::minutes(31)).contains(&lifetime),
        "{lifetime}"
    );

    let (status, page) = get_page(&url).await;
    assert_eq!(status, 200);
    assert!(page.contains("Tartan Bank"), "{page}");
    assert!(page.contains("Budget App uses Plaid"), "{page}");
    for needle in [
        "name=\"username\"",
        "name=\"password\"",
        "id=\"submit\"",
        "id=\"exit\"",
    ] {
        assert!(page.contains(needle), "{needle} in {page}");
    }

    let (status, location, _) = log_in(&url, "user_good", "pass_good").await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("https://app.example/linked?x=1"));

    let received = receiver
        .wait_for(WAIT, |r| {
            codes(&link_webhooks(r)).contains(&"SESSION_FINISHED") && link_webhooks(r).len() == 3
        })
        .await;
    let link = link_webhooks(&received);
    let mut sorted = codes(&link);
    sorted.sort_unstable();
    assert_eq!(sorted, ["EVENTS", "ITEM_ADD_RESULT", "SESSION_FINISHED"]);
    validate_link_webhooks(&mut spec, &link);
    for webhook in received
        .iter()
        .filter(|w| w.json()["webhook_type"] == "LINK")
    {
        assert_signed(&handle, webhook);
    }
    let by_code = |code: &str| link.iter().find(|w| w["webhook_code"] == code).unwrap();
    let added = by_code("ITEM_ADD_RESULT");
    let finished = by_code("SESSION_FINISHED");
    let events = by_code("EVENTS");
    let session_id = &added["link_session_id"];
    assert!(session_id.is_string());
    for webhook in [added, finished, events] {
        assert_eq!(&webhook["link_session_id"], session_id);
        assert_eq!(webhook["link_token"], created["link_token"]);
    }
    assert_eq!(added["environment"], "sandbox");
    assert_eq!(finished["status"], "SUCCESS");
    assert_eq!(finished["environment"], "sandbox");
    let public_token = added["public_token"].clone();
    assert!(public_token
        .as_str()
        .unwrap()
        .starts_with("public-sandbox-"));
    assert_eq!(finished["public_tokens"], json!([public_token]));
    assert_eq!(
        event_names(&events["events"]),
        ["OPEN", "SUBMIT_CREDENTIALS", "HANDOFF"]
    );
    assert_eq!(
        events["events"][0]["event_metadata"]["institution_id"],
        "ins_109511"
    );

    // /link/token/get reports the session with the same public token.
    let got = link_token_get(&plaid, &mut spec, &created["link_token"]).await;
    assert_eq!(got["link_token"], created["link_token"]);
    assert_eq!(got["metadata"]["initial_products"], json!(["transactions"]));
    assert_eq!(got["metadata"]["webhook"], json!(receiver.url));
    assert_eq!(got["metadata"]["client_name"], "Budget App");
    let sessions = got["link_sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(&sessions[0]["link_session_id"], session_id);
    assert!(sessions[0]["finished_at"].is_string());
    let result = &sessions[0]["results"]["item_add_results"][0];
    assert_eq!(result["public_token"], public_token);
    assert_eq!(result["institution"]["institution_id"], "ins_109511");
    assert!(!result["accounts"].as_array().unwrap().is_empty());
    assert_eq!(
        event_names(&sessions[0]["events"]),
        ["OPEN", "SUBMIT_CREDENTIALS", "HANDOFF"]
    );

    // The public token exchanges for the new Item, made with the token's webhook and products.
    let (status, exchanged) = plaid
        .call(
            "/item/public_token/exchange",
            json!({"public_token": public_token}),
        )
        .await;
    assert_eq!(status, 200, "{exchanged}");
    let (_, item) = plaid
        .call(
            "/item/get",
            json!({"access_token": exchanged["access_token"]}),
        )
        .await;
    assert_eq!(item["item"]["institution_id"], "ins_109511");
    assert_eq!(item["item"]["webhook"], json!(receiver.url));
    assert_eq!(item["item"]["products"], json!(["transactions"]));

    // The URL is spent: revisiting shows the outcome, resubmitting adds no second Item.
    let (status, page) = get_page(&url).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"done\""), "{page}");
    let (status, _, _) = log_in(&url, "user_good", "pass_good").await;
    assert_eq!(status, 200);
    let items = handle.sim().with_state(|s| s.items.len());
    assert_eq!(items, 1);
    handle.shutdown().await;
}

#[tokio::test]
async fn hosted_link_update_mode_after_a_wrong_password_repairs_the_item_without_login_repaired() {
    let mut spec = load_spec();
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let (item_id, token) = plaid.link_item(Some(&receiver.url)).await;
    let (status, _) = plaid
        .call("/sandbox/item/reset_login", json!({"access_token": token}))
        .await;
    assert_eq!(status, 200);
    receiver
        .wait_for(WAIT, |r| r.iter().any(|w| w.code() == "ERROR"))
        .await;

    let created = hosted_token(
        &plaid,
        json!({"access_token": token, "webhook": receiver.url, "hosted_link": {}}),
    )
    .await;
    let url = created["hosted_link_url"].as_str().unwrap().to_owned();
    let (status, page) = get_page(&url).await;
    assert_eq!(status, 200);
    assert!(page.contains("First Platypus Bank"), "{page}");
    assert!(page.contains("needs to be updated"), "{page}");

    // A wrong password: Plaid's INVALID_CREDENTIALS message and the form again.
    let (status, location, page) = log_in(&url, "user_good", "pass_wrong").await;
    assert_eq!((status, location), (200, None));
    assert!(
        page.contains("The provided credentials were not correct. Please try again."),
        "{page}"
    );
    assert!(page.contains("INVALID_CREDENTIALS"), "{page}");
    assert!(page.contains("id=\"submit\""), "{page}");
    let (_, item) = plaid
        .call("/item/get", json!({"access_token": token}))
        .await;
    assert_eq!(item["item"]["error"]["error_code"], "ITEM_LOGIN_REQUIRED");

    // The right one: no completion_redirect_uri, so the done page; the error is gone.
    let (status, location, page) = log_in(&url, "user_good", "pass_good").await;
    assert_eq!((status, location), (200, None));
    assert!(page.contains("id=\"done\""), "{page}");
    let (_, item) = plaid
        .call("/item/get", json!({"access_token": token}))
        .await;
    assert!(item["item"]["error"].is_null(), "{item}");
    let (status, _) = plaid
        .call("/accounts/get", json!({"access_token": token}))
        .await;
    assert_eq!(status, 200);

    let received = receiver
        .wait_for(WAIT, |r| {
            codes(&link_webhooks(r)).contains(&"SESSION_FINISHED") && link_webhooks(r).len() == 2
        })
        .await;
    let link = link_webhooks(&received);
    validate_link_webhooks(&mut spec, &link);
    let finished = link
        .iter()
        .find(|w| w["webhook_code"] == "SESSION_FINISHED")
        .unwrap();
    assert_eq!(finished["status"], "SUCCESS");
    // Update mode adds no Item: no ITEM_ADD_RESULT, no public token to exchange.
    assert!(finished.get("public_tokens").is_none(), "{finished}");
    let events = link.iter().find(|w| w["webhook_code"] == "EVENTS").unwrap();
    assert_eq!(
        event_names(&events["events"]),
        [
            "OPEN",
            "SUBMIT_CREDENTIALS",
            "ERROR",
            "SUBMIT_CREDENTIALS",
            "HANDOFF"
        ]
    );
    assert_eq!(
        events["events"][2]["event_metadata"]["error_code"],
        "INVALID_CREDENTIALS"
    );

    let got = link_token_get(&plaid, &mut spec, &created["link_token"]).await;
    let session = &got["link_sessions"][0];
    assert_eq!(session["link_session_id"], finished["link_session_id"]);
    assert_eq!(session["results"]["item_add_results"], json!([]));
    assert!(session.get("exit").is_none(), "{session}");

    // Repaired in the app's own flow: no LOGIN_REPAIRED, so the next ITEM webhook after the
    // ERROR is the one this sends.
    plaid
        .call(
            "/sandbox/item/fire_webhook",
            json!({"access_token": token, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"}),
        )
        .await;
    let received = receiver
        .wait_for(WAIT, |r| {
            r.iter().any(|w| w.code() == "NEW_ACCOUNTS_AVAILABLE")
        })
        .await;
    let item_codes: Vec<String> = received
        .iter()
        .filter(|w| w.json()["webhook_type"] == "ITEM")
        .map(Received::code)
        .collect();
    assert_eq!(item_codes, ["ERROR", "NEW_ACCOUNTS_AVAILABLE"]);
    assert_eq!(handle.sim().with_state(|s| s.items.len()), 1, "{item_id}");
    handle.shutdown().await;
}

#[tokio::test]
async fn exiting_hosted_link_finishes_the_session_as_exited_with_the_last_error() {
    let mut spec = load_spec();
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let created = hosted_token(
        &plaid,
        json!({"products": ["transactions"], "webhook": receiver.url,
            "hosted_link": {"completion_redirect_uri": "https://app.example/linked"}}),
    )
    .await;
    let url = created["hosted_link_url"].as_str().unwrap().to_owned();
    assert_eq!(get_page(&url).await.0, 200);
    let (status, _, _) = log_in(&url, "someone", "pass_good").await;
    assert_eq!(status, 200);
    let response = browser().post(format!("{url}/exit")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.text().await.unwrap().contains("id=\"exited\""));

    let received = receiver
        .wait_for(WAIT, |r| link_webhooks(r).len() == 2)
        .await;
    let link = link_webhooks(&received);
    validate_link_webhooks(&mut spec, &link);
    let mut sorted = codes(&link);
    sorted.sort_unstable();
    assert_eq!(sorted, ["EVENTS", "SESSION_FINISHED"]);
    let finished = link
        .iter()
        .find(|w| w["webhook_code"] == "SESSION_FINISHED")
        .unwrap();
    assert_eq!(finished["status"], "EXITED");
    assert!(finished.get("public_tokens").is_none(), "{finished}");
    let events = link.iter().find(|w| w["webhook_code"] == "EVENTS").unwrap();
    assert_eq!(
        event_names(&events["events"]),
        ["OPEN", "SUBMIT_CREDENTIALS", "ERROR", "EXIT"]
    );

    let got = link_token_get(&plaid, &mut spec, &created["link_token"]).await;
    let session = &got["link_sessions"][0];
    assert!(session.get("results").is_none(), "{session}");
    assert_eq!(
        session["exit"]["error"]["error_code"],
        "INVALID_CREDENTIALS"
    );
    assert_eq!(
        session["exit"]["metadata"]["link_session_id"],
        finished["link_session_id"]
    );
    assert_eq!(
        session["exit"]["metadata"]["status"],
        "requires_credentials"
    );

    // Nothing was linked, and the URL stays ended.
    assert_eq!(handle.sim().with_state(|s| s.items.len()), 0);
    let (status, page) = get_page(&url).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"exited\""), "{page}");
    handle.shutdown().await;
}

#[tokio::test]
async fn an_expired_hosted_link_url_shows_invalid_link_token_with_a_4xx() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let created = hosted_token(
        &plaid,
        json!({"products": ["transactions"], "hosted_link": {"url_lifetime_seconds": 1}}),
    )
    .await;
    let url = created["hosted_link_url"].as_str().unwrap().to_owned();
    let expiration: chrono::DateTime<chrono::Utc> =
        created["expiration"].as_str().unwrap().parse().unwrap();
    assert!(expiration <= chrono::Utc::now() + chrono::Duration::seconds(1));
    // Poll until the lifetime has passed (the URL is fresh right after creation).
    let deadline = tokio::time::Instant::now() + WAIT;
    let (status, page) = loop {
        let (status, page) = get_page(&url).await;
        if status != 200 || tokio::time::Instant::now() > deadline {
            break (status, page);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("INVALID_LINK_TOKEN"), "{page}");
    let (status, _, page) = log_in(&url, "user_good", "pass_good").await;
    assert_eq!(status, 400, "{page}");
    assert_eq!(handle.sim().with_state(|s| s.items.len()), 0);
    assert_eq!(
        get_page(&format!("{}/hl/nope", handle.base_url())).await.0,
        404
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn link_token_create_and_get_refuse_what_plaid_refuses() {
    let mut spec = load_spec();
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let base = json!({"client_name": "app", "language": "en", "country_codes": ["US"],
        "user": {"client_user_id": "u"}, "products": ["transactions"]});
    let with = |patch: Value| {
        let mut body = base.clone();
        for (key, value) in patch.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(key);
            } else {
                body[key] = value.clone();
            }
        }
        body
    };
    for (patch, code) in [
        (json!({"user": null}), "MISSING_FIELDS"),
        (json!({"products": ["balance"]}), "INVALID_FIELD"),
        (
            json!({"products": ["transactions", "balance"]}),
            "INVALID_FIELD",
        ),
        (json!({"products": []}), "INVALID_FIELD"),
        (json!({"country_codes": ["US", "XX"]}), "INVALID_FIELD"),
        (
            json!({"institution_id": "not-an-institution"}),
            "INVALID_INSTITUTION",
        ),
        (
            json!({"hosted_link": {"url_lifetime_seconds": 0}}),
            "INVALID_FIELD",
        ),
        (
            json!({"hosted_link": {"url_lifetime_seconds": 21 * 24 * 3600 + 1}}),
            "INVALID_FIELD",
        ),
    ] {
        let (status, error) = plaid.call("/link/token/create", with(patch.clone())).await;
        assert_eq!(
            (status, error["error_code"].as_str()),
            (400, Some(code)),
            "{patch}: {error}"
        );
        if let Some(spec) = &mut spec {
            spec.validate("PlaidError", &error);
        }
    }
    // `user_id` instead of `user` is accepted; without hosted_link there is no URL.
    let (status, created) = plaid
        .call(
            "/link/token/create",
            with(json!({"user": null, "user_id": "usr_123"})),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert!(created.get("hosted_link_url").is_none(), "{created}");
    let got = link_token_get(&plaid, &mut spec, &created["link_token"]).await;
    assert_eq!(got["link_sessions"], json!([]));
    assert!(got["metadata"]["webhook"].is_null());

    for token in ["link-sandbox-00000000-0000-0000-0000-000000000000", "bogus"] {
        let (status, error) = plaid
            .call("/link/token/get", json!({"link_token": token}))
            .await;
        assert_eq!(
            (status, error["error_code"].as_str()),
            (400, Some("INVALID_LINK_TOKEN")),
            "{token}: {error}"
        );
        assert_eq!(error["error_type"], "INVALID_INPUT");
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn a_finished_hosted_link_session_survives_a_restart_on_the_state_file() {
    let dir = std::env::temp_dir().join(format!(
        "plaidhook-sim-hosted-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let persistence = || {
        Some(plaidhook::sim::Persistence {
            path: dir.join("state.json"),
            fresh: false,
        })
    };
    let start_on_file = || async {
        plaidhook::sim::Simulator::start_with(
            test_config(),
            "127.0.0.1:0".parse().unwrap(),
            persistence(),
        )
        .await
        .expect("the simulator starts")
    };
    let handle = start_on_file().await;
    let plaid = Plaid::new(&handle);
    let created = hosted_token(
        &plaid,
        json!({"products": ["transactions"], "hosted_link": {}}),
    )
    .await;
    let url = created["hosted_link_url"].as_str().unwrap().to_owned();
    let path = url.strip_prefix(&handle.base_url()).unwrap().to_owned();
    let (status, _, _) = log_in(&url, "user_good", "pass_good").await;
    assert_eq!(status, 200);
    handle.shutdown().await;

    let handle = start_on_file().await;
    let plaid = Plaid::new(&handle);
    let mut spec = load_spec();
    let got = link_token_get(&plaid, &mut spec, &created["link_token"]).await;
    let public_token = &got["link_sessions"][0]["results"]["item_add_results"][0]["public_token"];
    let (status, exchanged) = plaid
        .call(
            "/item/public_token/exchange",
            json!({"public_token": public_token}),
        )
        .await;
    assert_eq!(status, 200, "{exchanged}");
    let (status, page) = get_page(&format!("{}{path}", handle.base_url())).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"done\""), "{page}");
    handle.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
