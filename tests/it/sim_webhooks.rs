//! Webhooks from the simulator: signed as Plaid signs them (checked with an independent ES256
//! implementation), keys served and rotated, redelivered with backoff, duplicated and
//! reordered on demand.

use crate::helpers::sim as support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;
use support::receiver::Receiver;
use support::{start, test_config, Plaid};

const WAIT: Duration = Duration::from_secs(10);

/// Verify a `Plaid-Verification` token the way Plaid documents it, with RustCrypto's p256
/// (plaidhook's ingress uses aws-lc-rs), fetching the key from the simulator's API.
async fn verify(plaid: &Plaid, token: &str, body: &[u8]) -> Result<Value, String> {
    let mut parts = token.split('.');
    let (header, claims, signature) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    if header["alg"] != "ES256" || header["typ"] != "JWT" {
        return Err(format!("unexpected header {header}"));
    }
    let (status, key) = plaid
        .call(
            "/webhook_verification_key/get",
            json!({"key_id": header["kid"]}),
        )
        .await;
    if status != 200 {
        return Err(format!("key lookup failed: {key}"));
    }
    let key = &key["key"];
    if key["kty"] != "EC" || key["crv"] != "P-256" || !key["expired_at"].is_null() {
        return Err(format!("unusable key {key}"));
    }
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(key["y"].as_str().unwrap()).unwrap());
    let verifying_key = VerifyingKey::from_sec1_bytes(&point).map_err(|e| e.to_string())?;
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap())
        .map_err(|e| e.to_string())?;
    let signed = format!("{}.{}", token.split('.').next().unwrap(), claims);
    verifying_key
        .verify(signed.as_bytes(), &signature)
        .map_err(|e| format!("bad signature: {e}"))?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    let age = chrono::Utc::now().timestamp() - claims["iat"].as_i64().unwrap();
    if !(0..=300).contains(&age) {
        return Err(format!("iat {age} s old"));
    }
    if claims["request_body_sha256"] != hex::encode(Sha256::digest(body)) {
        return Err("body hash mismatch".to_owned());
    }
    Ok(claims)
}

#[tokio::test]
async fn a_webhook_verifies_with_an_independent_es256_implementation_and_fails_when_one_body_byte_changes(
) {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let (_, token) = plaid.link_item(Some(&receiver.url)).await;
    plaid
        .call(
            "/sandbox/item/fire_webhook",
            json!({"access_token": token, "webhook_code": "SYNC_UPDATES_AVAILABLE"}),
        )
        .await;
    let webhook = receiver.wait_for(WAIT, |r| !r.is_empty()).await.remove(0);
    let jwt = webhook
        .verification
        .clone()
        .expect("Plaid-Verification header");
    let claims = verify(&plaid, &jwt, &webhook.body).await.expect("verifies");
    assert_eq!(
        claims.as_object().unwrap().len(),
        2,
        "only iat and request_body_sha256: {claims}"
    );
    assert!(
        String::from_utf8_lossy(&webhook.body).contains("\n  \"webhook_type\""),
        "pretty-printed like Plaid's"
    );

    for index in [0, webhook.body.len() / 2, webhook.body.len() - 1] {
        let mut tampered = webhook.body.clone();
        tampered[index] ^= 0x01;
        assert_eq!(
            verify(&plaid, &jwt, &tampered).await.unwrap_err(),
            "body hash mismatch"
        );
    }
    let mut forged = jwt.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    assert!(verify(&plaid, &forged, &webhook.body)
        .await
        .unwrap_err()
        .starts_with("bad signature"));

    // The in-process helper signs the same way.
    let signed = handle
        .sim()
        .signed_webhook(&json!({"webhook_type": "ITEM", "webhook_code": "LOGIN_REPAIRED"}));
    verify(&plaid, &signed.plaid_verification, &signed.body)
        .await
        .expect("helper-signed webhook verifies");
    // A key the simulator never registered is unknown to the key endpoint.
    let stranger = plaidhook::sim::SigningKey::unregistered();
    let token = stranger.sign_webhook(&signed.body, chrono::Utc::now().timestamp());
    assert!(verify(&plaid, &token, &signed.body)
        .await
        .unwrap_err()
        .contains("INVALID_WEBHOOK_VERIFICATION_KEY_ID"));
    handle.shutdown().await;
}

#[tokio::test]
async fn key_rotation_expires_the_old_key_which_stays_served_and_new_webhooks_use_the_new_key() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let (_, token) = plaid.link_item(Some(&receiver.url)).await;
    let old = handle.sim().current_key();
    let rotated = plaid.control("/sim/keys/rotate", json!({})).await;
    let new_kid = rotated["key"]["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old.kid);
    let (_, old_key) = plaid
        .call("/webhook_verification_key/get", json!({"key_id": old.kid}))
        .await;
    assert!(old_key["key"]["expired_at"].as_i64().is_some(), "{old_key}");
    plaid
        .call(
            "/sandbox/item/fire_webhook",
            json!({"access_token": token, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"}),
        )
        .await;
    let webhook = receiver.wait_for(WAIT, |r| !r.is_empty()).await.remove(0);
    let jwt = webhook.verification.unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        json!({"alg": "ES256", "kid": new_kid, "typ": "JWT"})
    );
    verify(&plaid, &jwt, &webhook.body).await.unwrap();
    // A token signed with the rotated-out key is refused by a verifier that honours expired_at.
    let stale = old.sign_webhook(&webhook.body, chrono::Utc::now().timestamp());
    assert!(verify(&plaid, &stale, &webhook.body)
        .await
        .unwrap_err()
        .starts_with("unusable key"));
    handle.shutdown().await;
}

#[tokio::test]
async fn a_webhook_not_answered_with_200_is_redelivered_with_growing_delays_until_it_is() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    receiver.respond_with(&[500, 503, 404]);
    let (_, token) = plaid.link_item(Some(&receiver.url)).await;
    plaid
        .call(
            "/sandbox/item/fire_webhook",
            json!({"access_token": token, "webhook_code": "LOGIN_REPAIRED"}),
        )
        .await;
    let log = handle
        .sim()
        .wait_for_deliveries(WAIT, |log| log.iter().any(|d| d.status == Some(200)))
        .await
        .expect("delivered in the end");
    let statuses: Vec<_> = log.iter().map(|d| d.status).collect();
    assert_eq!(statuses, vec![Some(500), Some(503), Some(404), Some(200)]);
    assert!(log.iter().all(|d| d.webhook_id == log[0].webhook_id));
    assert_eq!(
        log.iter().map(|d| d.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(log[3].last_attempt && !log[2].last_attempt);
    // Scaled delays: 30 s, 120 s, 480 s × 0.001 → gaps of ≥ 30 ms, 120 ms, 480 ms.
    let gaps: Vec<i64> = log
        .windows(2)
        .map(|w| (w[1].sent_at - w[0].sent_at).num_milliseconds())
        .collect();
    assert!(
        gaps[0] >= 30 && gaps[1] >= 120 && gaps[2] >= 480,
        "{gaps:?}"
    );
    let bodies: std::collections::HashSet<_> =
        receiver.received().iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies.len(), 1, "every attempt carries the same bytes");
    handle.shutdown().await;
}

#[tokio::test]
async fn duplicate_and_out_of_order_delivery_can_be_switched_on() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let (item_id, token) = plaid.link_item(Some(&receiver.url)).await;
    plaid
        .control(
            "/sim/config",
            json!({"webhook_duplicates": 1, "webhook_reorder_window": 3}),
        )
        .await;
    for code in [
        "NEW_ACCOUNTS_AVAILABLE",
        "PENDING_DISCONNECT",
        "USER_ACCOUNT_REVOKED",
    ] {
        plaid
            .call(
                "/sandbox/item/fire_webhook",
                json!({"access_token": token, "webhook_code": code}),
            )
            .await;
    }
    let received = receiver.wait_for(WAIT, |r| r.len() == 6).await;
    let mut codes: Vec<String> = received.iter().map(|r| r.code()).collect();
    codes.dedup();
    assert_eq!(
        codes,
        [
            "USER_ACCOUNT_REVOKED",
            "PENDING_DISCONNECT",
            "NEW_ACCOUNTS_AVAILABLE"
        ]
    );
    // A partial window is held until flushed. (No sync was called: the bank moving on sends
    // DEFAULT_UPDATE, and TRANSACTIONS_REMOVED if something went, but no SYNC_UPDATES_AVAILABLE.)
    let _ = item_id;
    plaid
        .call(
            "/sandbox/item/fire_webhook",
            json!({"access_token": token, "webhook_code": "LOGIN_REPAIRED"}),
        )
        .await;
    plaid
        .call(
            "/sandbox/item/fire_webhook",
            json!({"access_token": token, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"}),
        )
        .await;
    plaid.control("/sim/webhooks/flush", json!({})).await;
    let received = receiver.wait_for(WAIT, |r| r.len() == 10).await;
    let mut late: Vec<String> = received[6..].iter().map(|r| r.code()).collect();
    late.dedup();
    assert_eq!(late, ["NEW_ACCOUNTS_AVAILABLE", "LOGIN_REPAIRED"]);
    handle.shutdown().await;
}

#[tokio::test]
async fn reset_login_sends_item_error_and_fails_the_items_calls_until_update_mode_completes() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let (item_id, token) = plaid.link_item(Some(&receiver.url)).await;
    let (status, _) = plaid
        .call("/sandbox/item/reset_login", json!({"access_token": token}))
        .await;
    assert_eq!(status, 200);
    let error = receiver
        .wait_for(WAIT, |r| !r.is_empty())
        .await
        .remove(0)
        .json();
    assert_eq!(
        (
            error["webhook_type"].as_str(),
            error["webhook_code"].as_str()
        ),
        (Some("ITEM"), Some("ERROR"))
    );
    assert_eq!(error["error"]["error_code"], "ITEM_LOGIN_REQUIRED");
    assert_eq!(error["error"]["status"], 400);
    for path in [
        "/transactions/sync",
        "/accounts/get",
        "/accounts/balance/get",
        "/transactions/refresh",
    ] {
        let (status, body) = plaid.call(path, json!({"access_token": token})).await;
        assert_eq!(
            (status, body["error_code"].as_str().unwrap()),
            (400, "ITEM_LOGIN_REQUIRED"),
            "{path}"
        );
    }
    let (_, item) = plaid
        .call("/item/get", json!({"access_token": token}))
        .await;
    assert_eq!(item["item"]["error"]["error_code"], "ITEM_LOGIN_REQUIRED");

    // The user goes through update mode with a link token created for the Item.
    let (_, link) = plaid
        .call(
            "/link/token/create",
            json!({"client_name": "app", "language": "en", "country_codes": ["US"],
            "user": {"client_user_id": "u"}, "access_token": token}),
        )
        .await;
    let done = plaid
        .control(
            "/sim/link/complete",
            json!({"link_token": link["link_token"]}),
        )
        .await;
    assert_eq!(done, json!({"item_id": item_id, "update_mode": true}));
    let (status, _) = plaid
        .call("/accounts/get", json!({"access_token": token}))
        .await;
    assert_eq!(status, 200);
    // Repaired in the app: no LOGIN_REPAIRED (it is for repairs outside the app), so the next
    // webhook after the ERROR is the one this sends.
    plaid
        .call(
            "/sandbox/item/fire_webhook",
            json!({"access_token": token, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"}),
        )
        .await;
    let received = receiver.wait_for(WAIT, |r| r.len() == 2).await;
    assert_eq!(received[1].code(), "NEW_ACCOUNTS_AVAILABLE");
    handle.shutdown().await;
}
