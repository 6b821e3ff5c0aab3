//! The webhook ingress through HTTP: Plaid's verification, durability, and the spool.
//!
//! Webhooks are signed with the built-in simulator's keys, exactly as Plaid signs them.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use plaidhook::app::Role;
use plaidhook::messages::WebhookEnvelope;
use plaidhook::sim::{body_sha256_hex, webhook_claims, webhook_jwt_header, SigningKey};
use reqwest::StatusCode;
use serde_json::json;
use testkit::proxy::TcpProxy;
use testkit::world::{sim_config, World};
use testkit::{spawn_app_with, TestApp};

fn sync_webhook(item_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "webhook_type": "TRANSACTIONS",
        "webhook_code": "SYNC_UPDATES_AVAILABLE",
        "item_id": item_id,
        "initial_update_complete": true,
        "historical_update_complete": true,
        "environment": "sandbox"
    }))
    .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

async fn post(app: &TestApp, header: Option<&str>, body: Vec<u8>) -> StatusCode {
    let mut request = app.http.post(app.public_url("/webhooks/plaid")).body(body);
    if let Some(header) = header {
        request = request.header("Plaid-Verification", header);
    }
    request.send().await.unwrap().status()
}

/// One request of the table: what is sent and the answer expected.
struct Case {
    name: &'static str,
    header: Option<String>,
    body: Vec<u8>,
    expect: StatusCode,
}

fn rejected_cases(current: &SigningKey, expired: &SigningKey) -> Vec<Case> {
    let body = sync_webhook("item-table");
    let valid = current.sign_webhook(&body, now());
    let header_for = |alg: &str| json!({ "alg": alg, "kid": current.kid, "typ": "JWT" });
    let claims = webhook_claims(&body, now());
    let unsigned_input = format!(
        "{}.{}",
        b64(header_for("none").to_string()),
        b64(claims.to_string())
    );

    // HS256 keyed with the public key's bytes: the classic algorithm-confusion forgery.
    let hs_input = format!(
        "{}.{}",
        b64(header_for("HS256").to_string()),
        b64(claims.to_string())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(
        current.verifying_key().to_encoded_point(false).as_bytes(),
    )
    .unwrap();
    mac.update(hs_input.as_bytes());
    let hs256 = format!("{hs_input}.{}", b64(mac.finalize().into_bytes()));
    let rs_input = format!(
        "{}.{}",
        b64(header_for("RS256").to_string()),
        b64(claims.to_string())
    );
    let rs256 = format!("{rs_input}.{}", b64([7u8; 256]));

    let stranger = SigningKey::unregistered();
    let mut reformatted =
        serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&body).unwrap())
            .unwrap();
    reformatted.push(b'\n');
    let mut one_byte_changed = body.clone();
    let at = one_byte_changed.iter().position(|&b| b == b't').unwrap(); // in "item-table"
    one_byte_changed[at] = b'T';
    let uppercase_hash = current.sign_jwt(
        &webhook_jwt_header(&current.kid),
        &json!({ "iat": now(), "request_body_sha256": body_sha256_hex(&body).to_uppercase() }),
    );
    let not_json = b"webhook_type=TRANSACTIONS".to_vec();
    let no_type =
        serde_json::to_vec(&json!({ "webhook_code": "SYNC_UPDATES_AVAILABLE", "item_id": "x" }))
            .unwrap();
    let oversized = {
        let padding = "x".repeat(70 * 1024);
        serde_json::to_vec(&json!({ "webhook_type": "TRANSACTIONS", "webhook_code": "DEFAULT_UPDATE", "pad": padding })).unwrap()
    };

    vec![
        Case {
            name: "missing header",
            header: None,
            body: body.clone(),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "garbage header",
            header: Some("garbage".into()),
            body: body.clone(),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "alg none, no signature",
            header: Some(format!("{unsigned_input}.")),
            body: body.clone(),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "alg none, some signature",
            header: Some(format!("{unsigned_input}.{}", b64([1u8; 64]))),
            body: body.clone(),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "HS256 keyed with the public key",
            header: Some(hs256),
            body: body.clone(),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "RS256",
            header: Some(rs256),
            body: body.clone(),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "unknown kid",
            header: Some(stranger.sign_webhook(&body, now())),
            body: body.clone(),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "expired key",
            header: Some(expired.sign_webhook(&body, now())),
            body: body.clone(),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "valid signature by another key under a known kid",
            header: Some(stranger.sign_jwt(
                &webhook_jwt_header(&current.kid),
                &webhook_claims(&body, now()),
            )),
            body: body.clone(),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "iat 6 minutes old",
            header: Some(current.sign_webhook(&body, now() - 6 * 60)),
            body: body.clone(),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "iat 10 minutes in the future",
            header: Some(current.sign_webhook(&body, now() + 10 * 60)),
            body: body.clone(),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "body changed by one byte",
            header: Some(valid.clone()),
            body: one_byte_changed,
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "body whitespace reformatted",
            header: Some(valid.clone()),
            body: reformatted,
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "hash in uppercase hex",
            header: Some(uppercase_hash),
            body: body.clone(),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "valid token replayed with another body",
            header: Some(valid.clone()),
            body: sync_webhook("item-other"),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "token with extra segments",
            header: Some(format!("{valid}.{}", b64("extra"))),
            body: body.clone(),
            expect: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "body over the limit",
            header: Some(current.sign_webhook(&oversized, now())),
            body: oversized,
            expect: StatusCode::PAYLOAD_TOO_LARGE,
        },
        Case {
            name: "body not JSON",
            header: Some(current.sign_webhook(&not_json, now())),
            body: not_json,
            expect: StatusCode::BAD_REQUEST,
        },
        Case {
            name: "JSON without webhook_type",
            header: Some(current.sign_webhook(&no_type, now())),
            body: no_type,
            expect: StatusCode::BAD_REQUEST,
        },
    ]
}

#[tokio::test]
async fn every_forged_stale_or_malformed_webhook_is_refused_and_leaves_no_trace() {
    // An ingress-only process: no consumer takes messages off the queue under our feet.
    let app = spawn_app_with(Role::Serve, &[]).await;
    assert!(app.wait_broker_connected(Duration::from_secs(15)).await);
    let sim = app.sim();
    // An old key, rotated out before plaidhook ever saw it: Plaid serves it with expired_at.
    let expired = sim.current_key();
    let current = sim.rotate_key();

    for case in rejected_cases(&current, &expired) {
        let status = post(&app, case.header.as_deref(), case.body).await;
        assert_eq!(status, case.expect, "case `{}`", case.name);
        assert_eq!(
            app.queue_depth(&app.topology.sync_queue()).await,
            0,
            "case `{}` published",
            case.name
        );
        assert_eq!(app.spool_depth().await, 0, "case `{}` spooled", case.name);
    }

    // The valid webhook, and only it, is published.
    let body = sync_webhook("item-valid");
    let status = post(
        &app,
        Some(&current.sign_webhook(&body, now())),
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let queue = app.topology.sync_queue();
    assert!(
        app.eventually(Duration::from_secs(15), || async {
            app.queue_depth(&queue).await == 1
        })
        .await
    );
    let messages = app.drain_queue(&queue).await;
    assert_eq!(messages.len(), 1);
    let envelope: WebhookEnvelope = serde_json::from_slice(&messages[0]).unwrap();
    assert_eq!(envelope.webhook_type.as_str(), "TRANSACTIONS");
    assert_eq!(envelope.webhook_code.as_str(), "SYNC_UPDATES_AVAILABLE");
    assert_eq!(envelope.item_id.as_deref(), Some("item-valid"));
    assert_eq!(envelope.environment, "sandbox");
    assert_eq!(
        envelope.body.get().as_bytes(),
        body.as_slice(),
        "the body travels byte for byte"
    );
    assert_eq!(app.queue_depth(&app.topology.items_queue()).await, 0);
    app.stop().await.unwrap();
}

/// The benchmark floor (`plaidhook bench-ingress-floor`) measures verification alone: it must
/// still refuse what the real ingress refuses, and keep nothing of what it accepts.
#[tokio::test]
async fn the_benchmark_floor_verifies_like_the_ingress_and_keeps_nothing() {
    let app = TestApp::builder()
        .role(Role::Serve)
        .drop_webhooks_for_benchmark()
        .wait_for_broker()
        .start()
        .await;
    // Declared, so an empty queue below is empty, not missing.
    app.publisher.ensure_topology().await.unwrap();
    let key = app.sim().current_key();
    let body = sync_webhook("item-floor");
    let header = key.sign_webhook(&body, now());

    assert_eq!(
        post(&app, Some(&header), body.clone()).await,
        StatusCode::OK
    );
    let other_body = sync_webhook("item-other");
    assert_eq!(
        post(&app, Some(&header), other_body).await,
        StatusCode::UNAUTHORIZED,
        "a signature over another body"
    );
    assert_eq!(
        post(&app, None, body).await,
        StatusCode::UNAUTHORIZED,
        "no signature"
    );

    assert_eq!(app.queue_depth(&app.topology.sync_queue()).await, 0);
    assert_eq!(app.queue_depth(&app.topology.unrouted_queue()).await, 0);
    assert_eq!(app.spool_depth().await, 0);
    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("plaidhook_webhooks_total")
                && line.contains(r#"reason="dropped_for_benchmark""#)),
        "the floor's answers are counted apart from durable ones:\n{metrics}"
    );
    assert!(!metrics.contains(r#"reason="published""#));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_streamed_without_content_length_is_still_cut_at_the_limit() {
    let app = spawn_app_with(Role::Serve, &[]).await;
    let key = app.sim().current_key();
    let big = vec![b' '; 200 * 1024];
    let header = key.sign_webhook(&big, now());
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(8192).map(|c| Ok(c.to_vec())).collect();
    let response = app
        .http
        .post(app.public_url("/webhooks/plaid"))
        .header("Plaid-Verification", header)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn item_webhooks_route_to_the_items_queue_with_amqp_properties() {
    let app = spawn_app_with(Role::Serve, &[]).await;
    let body = serde_json::to_vec(&json!({
        "webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": "item-err",
        "error": { "error_type": "ITEM_ERROR", "error_code": "ITEM_LOGIN_REQUIRED",
                   "error_message": "the login details of this item have changed", "display_message": null,
                   "status": 400 },
        "environment": "sandbox"
    }))
    .unwrap();
    assert!(app.wait_broker_connected(Duration::from_secs(15)).await);
    let header = app.sim().sign_webhook(&body);
    assert_eq!(post(&app, Some(&header), body).await, StatusCode::OK);

    // Durable may mean spooled (right after start the relay may not have looked yet): wait
    // for the message to reach the queue.
    let queue = app.topology.items_queue();
    assert!(
        app.eventually(Duration::from_secs(15), || async {
            app.queue_depth(&queue).await == 1
        })
        .await
    );
    let channel = testkit::amqp_channel().await.unwrap();
    let message = channel
        .basic_get(
            app.topology.items_queue().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("one message on the items queue");
    let properties = &message.delivery.properties;
    assert_eq!(properties.delivery_mode(), &Some(2), "persistent");
    assert_eq!(
        properties.kind().as_ref().map(|k| k.as_str()),
        Some("ITEM.ERROR")
    );
    assert_eq!(
        properties.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    let envelope: WebhookEnvelope = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(
        properties.message_id().as_ref().map(|m| m.to_string()),
        Some(envelope.id.to_string())
    );
    assert_eq!(app.queue_depth(&app.topology.sync_queue()).await, 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn after_a_key_rotation_the_new_key_is_fetched_once_and_the_old_one_is_refused() {
    let app = spawn_app_with(Role::Serve, &[]).await;
    let sim = app.sim();
    let old = sim.current_key();
    let body = sync_webhook("item-rot");
    assert_eq!(
        post(&app, Some(&old.sign_webhook(&body, now())), body.clone()).await,
        StatusCode::OK
    );

    assert_eq!(key_fetches(&app).await, 1);

    let new = sim.rotate_key();
    for _ in 0..5 {
        assert_eq!(
            post(&app, Some(&new.sign_webhook(&body, now())), body.clone()).await,
            StatusCode::OK
        );
    }
    // One miss: the new key fetched, and the cached old key refreshed alongside it.
    assert_eq!(
        key_fetches(&app).await,
        3,
        "one fetch for the new key, one refresh of the old"
    );
    // The refresh learned that Plaid expired the old key.
    assert_eq!(
        post(&app, Some(&old.sign_webhook(&body, now())), body.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        key_fetches(&app).await,
        3,
        "an expired cached key needs no fetch"
    );
    let queue = app.topology.sync_queue();
    let all_six = app
        .eventually(Duration::from_secs(15), || async {
            app.queue_depth(&queue).await == 6
        })
        .await;
    assert!(all_six, "the six accepted webhooks reach the queue");
    app.stop().await.unwrap();
}

/// `/webhook_verification_key/get` calls the app made, from its Plaid call log.
async fn key_fetches(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "select count(*) from plaid_api_calls where method = '/webhook_verification_key/get'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn concurrent_webhooks_with_an_unknown_kid_make_one_key_fetch() {
    let app = spawn_app_with(Role::Serve, &[]).await;
    let new = app.sim().rotate_key();
    let body = sync_webhook("item-burst");
    let header = new.sign_webhook(&body, now());
    let requests = (0..20).map(|_| post(&app, Some(&header), body.clone()));
    let statuses = futures::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(
        key_fetches(&app).await,
        1,
        "concurrent misses share one fetch"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_flood_of_unknown_kids_cannot_turn_into_a_flood_of_key_fetches() {
    let app = spawn_app_with(Role::Serve, &[]).await;
    let body = sync_webhook("item-flood");
    for _ in 0..60 {
        let stranger = SigningKey::unregistered();
        let status = post(
            &app,
            Some(&stranger.sign_webhook(&body, now())),
            body.clone(),
        )
        .await;
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}"
        );
    }
    // The same unknown kid again is answered from memory.
    let stranger = SigningKey::unregistered();
    let header = stranger.sign_webhook(&body, now());
    post(&app, Some(&header), body.clone()).await;
    post(&app, Some(&header), body.clone()).await;
    let fetched = key_fetches(&app).await;
    assert!(
        fetched <= 10,
        "{fetched} key fetches for 62 forged webhooks from one source"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_flood_of_forged_kids_refreshes_the_known_key_at_most_once_and_never_unlearns_it() {
    let app = spawn_app_with(Role::Serve, &[]).await;
    let body = sync_webhook("item-known");
    // The real key is learned: one fetch.
    let real = app.sim().sign_webhook(&body);
    assert_eq!(post(&app, Some(&real), body.clone()).await, StatusCode::OK);
    assert_eq!(key_fetches(&app).await, 1);

    // 300 forged requests over 30 kids, ten at a time.
    let strangers: Vec<SigningKey> = (0..30).map(|_| SigningKey::unregistered()).collect();
    for round in 0..10 {
        let requests = strangers
            .iter()
            .skip(round % 3 * 10)
            .take(10)
            .map(|stranger| {
                let header = stranger.sign_webhook(&body, now());
                let body = body.clone();
                let app = &app;
                async move { post(app, Some(&header), body).await }
            });
        for status in futures::future::join_all(requests).await {
            assert!(
                status == StatusCode::UNAUTHORIZED || status == StatusCode::SERVICE_UNAVAILABLE,
                "{status}"
            );
        }
    }
    // Each forged kid is fetched at most once (and the source's budget caps them); the known key is not
    // fetched again per miss: once per refresh interval at most, and here not at all.
    let fetched = key_fetches(&app).await;
    assert!(
        fetched <= 11,
        "{fetched} key fetches (one source may spend 10 a minute)"
    );
    // The real key still verifies, from the cache.
    let before = key_fetches(&app).await;
    let real = app.sim().sign_webhook(&body);
    assert_eq!(post(&app, Some(&real), body.clone()).await, StatusCode::OK);
    assert_eq!(
        key_fetches(&app).await,
        before,
        "the known key came from the cache"
    );
    app.stop().await.unwrap();
}

/// As [`post`], through a proxy that says the request came from `source`.
async fn post_from(app: &TestApp, source: &str, header: &str, body: Vec<u8>) -> StatusCode {
    app.http
        .post(app.public_url("/webhooks/plaid"))
        .header("Plaid-Verification", header)
        .header("X-Forwarded-For", source)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

/// The loopback peer of the tests stands for the load balancer in front of the ingress.
const BEHIND_A_PROXY: (&str, &str) = ("PLAIDHOOK__WEBHOOK__TRUSTED_PROXIES", "127.0.0.1");
const PLAID_SOURCE: &str = "52.21.26.131";
const FORGER: &str = "203.0.113.7";

#[tokio::test]
async fn a_forger_that_spent_its_fetch_budget_cannot_keep_a_rotated_key_from_being_learned() {
    let app = spawn_app_with(Role::Serve, &[BEHIND_A_PROXY]).await;
    let body = sync_webhook("item-rotated");
    // Plaid rotates its key; no replica has the new one yet.
    app.sim().rotate_key();
    // One sender floods forged kids until its budget is spent: 503s, and later 401s once known.
    let mut unavailable = 0;
    for _ in 0..30 {
        let stranger = SigningKey::unregistered();
        let status = post_from(
            &app,
            FORGER,
            &stranger.sign_webhook(&body, now()),
            body.clone(),
        )
        .await;
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}"
        );
        unavailable += usize::from(status == StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(unavailable > 0, "the forger's own budget ran out");
    assert_eq!(
        key_fetches(&app).await,
        10,
        "one source's share of the budget"
    );
    // Plaid's webhook, signed with the new key, is verified: its source has a budget of its own.
    let real = app.sim().sign_webhook(&body);
    assert_eq!(
        post_from(&app, PLAID_SOURCE, &real, body.clone()).await,
        StatusCode::OK
    );
    assert_eq!(key_fetches(&app).await, 11);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn with_an_allow_list_only_plaids_sources_are_heard_and_a_forged_header_does_not_help() {
    let allow_plaid = ("PLAIDHOOK__WEBHOOK__ALLOWED_SOURCES", "plaid");
    let behind = spawn_app_with(Role::Serve, &[allow_plaid, BEHIND_A_PROXY]).await;
    let body = sync_webhook("item-allow-list");
    let real = behind.sim().sign_webhook(&body);
    assert_eq!(
        post_from(&behind, FORGER, &real, body.clone()).await,
        StatusCode::FORBIDDEN,
        "a valid signature from elsewhere is still refused"
    );
    // A stranger's kid from a source not allowed costs no key fetch.
    let stranger = SigningKey::unregistered();
    let forged = stranger.sign_webhook(&body, now());
    assert_eq!(
        post_from(&behind, FORGER, &forged, body.clone()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(key_fetches(&behind).await, 0);
    // The proxy itself is not Plaid either.
    assert_eq!(
        post(&behind, Some(&real), body.clone()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post_from(&behind, PLAID_SOURCE, &real, body.clone()).await,
        StatusCode::OK
    );
    assert!(
        behind
            .metrics_text()
            .await
            .contains(r#"reason="source_not_allowed""#),
        "refusals are counted"
    );
    behind.stop().await.unwrap();

    // Without trusted proxies the header is the sender's word, and not believed.
    let direct = spawn_app_with(Role::Serve, &[allow_plaid]).await;
    let real = direct.sim().sign_webhook(&body);
    assert_eq!(
        post_from(&direct, PLAID_SOURCE, &real, body.clone()).await,
        StatusCode::FORBIDDEN
    );
    direct.stop().await.unwrap();
}

#[tokio::test]
async fn a_key_one_replica_learned_verifies_on_another_without_a_fetch() {
    let world = World::new(sim_config()).await;
    let first = world.node(Role::Serve, &[]).await;
    let second = world.node(Role::Serve, &[]).await;
    let body = sync_webhook("item-shared-key");
    let header = world.sim().sign_webhook(&body);
    assert_eq!(
        post(&first, Some(&header), body.clone()).await,
        StatusCode::OK
    );
    assert_eq!(
        key_fetches(&first).await,
        1,
        "the first replica fetched the key"
    );
    // A second replica, new and cold, verifies with the key the first one shared.
    let header = world.sim().sign_webhook(&body);
    assert_eq!(
        post(&second, Some(&header), body.clone()).await,
        StatusCode::OK
    );
    assert_eq!(
        key_fetches(&second).await,
        1,
        "no fetch on the second replica"
    );
    first.stop().await.unwrap();
    second.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn a_kid_no_plaid_key_could_have_is_refused_before_any_lookup() {
    let app = spawn_app_with(Role::Serve, &[]).await;
    let body = sync_webhook("item-odd-kid");
    for kid in [
        "x".repeat(65),
        "../../keys".to_owned(),
        "kid with spaces".to_owned(),
    ] {
        let header = format!(
            "{}.{}.{}",
            b64(serde_json::to_vec(&json!({"alg": "ES256", "kid": kid, "typ": "JWT"})).unwrap()),
            b64(b"{}"),
            b64([0u8; 64])
        );
        assert_eq!(
            post(&app, Some(&header), body.clone()).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(key_fetches(&app).await, 0, "no lookup for a malformed kid");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn with_the_broker_away_webhooks_are_spooled_then_relayed_in_order_when_it_returns() {
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let broker_url = format!("amqp://guest:guest@{}/%2f?heartbeat=2", proxy.addr);
    let app = spawn_app_with(
        Role::Serve,
        &[
            ("PLAIDHOOK__RABBITMQ__URL", &broker_url),
            ("PLAIDHOOK__RABBITMQ__PUBLISH_TIMEOUT_MS", "500"),
        ],
    )
    .await;
    let sim = app.sim().clone();

    // The broker is unreachable: every webhook is still answered 200, within the timeout.
    const COUNT: usize = 30;
    for n in 0..COUNT {
        let body = sync_webhook(&format!("item-{n:03}"));
        let started = std::time::Instant::now();
        assert_eq!(
            post(&app, Some(&sim.sign_webhook(&body)), body).await,
            StatusCode::OK
        );
        assert!(
            started.elapsed() < Duration::from_secs(9),
            "Plaid gives up at 10 s"
        );
    }
    assert_eq!(app.spool_depth().await, COUNT as i64);

    // The broker comes back: the relay drains the spool into the queue.
    proxy.bring_up();
    let queue = app.topology.sync_queue();
    let drained = app
        .eventually(Duration::from_secs(30), || async {
            app.spool_depth().await == 0 && app.queue_depth(&queue).await as usize == COUNT
        })
        .await;
    assert!(
        drained,
        "spool {} queue {}",
        app.spool_depth().await,
        app.queue_depth(&queue).await
    );

    let items: Vec<String> = app
        .drain_queue(&queue)
        .await
        .iter()
        .map(|m| {
            serde_json::from_slice::<WebhookEnvelope>(m)
                .unwrap()
                .item_id
                .unwrap()
        })
        .collect();
    let expected: Vec<String> = (0..COUNT).map(|n| format!("item-{n:03}")).collect();
    assert_eq!(
        items, expected,
        "all of them, once each, in the order received"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_broker_lost_mid_stream_sends_webhooks_to_the_spool_and_none_is_lost() {
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    proxy.bring_up();
    let broker_url = format!("amqp://guest:guest@{}/%2f?heartbeat=2", proxy.addr);
    let app = spawn_app_with(
        Role::Serve,
        &[
            ("PLAIDHOOK__RABBITMQ__URL", &broker_url),
            ("PLAIDHOOK__RABBITMQ__PUBLISH_TIMEOUT_MS", "500"),
        ],
    )
    .await;
    let sim = app.sim().clone();
    assert_eq!(
        app.wait_ready(Duration::from_secs(15)).await,
        StatusCode::OK
    );
    let mut accepted = 0;
    for n in 0..10 {
        let body = sync_webhook(&format!("item-{n:03}"));
        if post(&app, Some(&sim.sign_webhook(&body)), body).await == StatusCode::OK {
            accepted += 1;
        }
    }
    proxy.take_down();
    for n in 10..20 {
        let body = sync_webhook(&format!("item-{n:03}"));
        if post(&app, Some(&sim.sign_webhook(&body)), body).await == StatusCode::OK {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 20, "every webhook was answered 200");
    proxy.bring_up();
    let queue = app.topology.sync_queue();
    let drained = app
        .eventually(Duration::from_secs(40), || async {
            app.spool_depth().await == 0 && app.queue_depth(&queue).await >= 20
        })
        .await;
    assert!(
        drained,
        "spool {} queue {}",
        app.spool_depth().await,
        app.queue_depth(&queue).await
    );
    let mut items: Vec<String> = app
        .drain_queue(&queue)
        .await
        .iter()
        .map(|m| {
            serde_json::from_slice::<WebhookEnvelope>(m)
                .unwrap()
                .item_id
                .unwrap()
        })
        .collect();
    items.sort();
    items.dedup();
    assert_eq!(items.len(), 20, "every accepted webhook reached the queue");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn with_broker_and_database_both_down_a_webhook_gets_503_so_plaid_retries() {
    let app = spawn_app_with(
        Role::Serve,
        &[
            (
                "PLAIDHOOK__RABBITMQ__URL",
                "amqp://guest:guest@127.0.0.1:1/%2f",
            ),
            (
                "PLAIDHOOK__DATABASE__URL",
                "postgres://postgres@127.0.0.1:1/plaidhook",
            ),
            ("PLAIDHOOK__DATABASE__MIGRATE_ON_START", "false"),
            ("PLAIDHOOK__DATABASE__ACQUIRE_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let body = sync_webhook("item-nowhere");
    let header = app.sim().sign_webhook(&body);
    assert_eq!(
        post(&app, Some(&header), body).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    app.stop().await.unwrap();
}
