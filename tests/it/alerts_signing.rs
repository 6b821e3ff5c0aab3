//! Signed alert webhooks: a receiver checks each delivery with implementations of Standard
//! Webhooks that are not plaidhook's (the `standardwebhooks` crate, and the README's Python
//! with the standard library), across a retry and a secret rotation; forgeries fail.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use serde_json::Value;
use standardwebhooks::{Webhook, WebhookError};
use testkit::api::start;
use testkit::settings_with;
use tokio::io::AsyncWriteExt;

use crate::helpers::tools;

const WITHIN: Duration = Duration::from_secs(20);

/// A fresh `whsec_` secret of `len` random bytes.
fn secret(len: usize) -> String {
    let key: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// One request as the receiver saw it: headers and the raw body.
#[derive(Clone)]
struct Delivery {
    headers: HeaderMap,
    body: Bytes,
}

impl Delivery {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no `{name}` header"))
            .to_str()
            .unwrap()
    }
}

/// An alert webhook that records headers and raw bodies, answering queued statuses (then 200).
#[derive(Clone, Default)]
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Delivery>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start(statuses: &[u16]) -> Self {
        let mut receiver = Self {
            statuses: Arc::new(Mutex::new(statuses.to_vec())),
            ..Self::default()
        };
        let app = Router::new()
            .route("/alerts", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        receiver.url = format!("http://{}/alerts", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    /// Waits until `count` deliveries arrived (or `WITHIN` passes); returns them all.
    async fn until(&self, count: usize) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let received = self.received.lock().unwrap().clone();
            if received.len() >= count || tokio::time::Instant::now() >= deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    receiver
        .received
        .lock()
        .unwrap()
        .push(Delivery { headers, body });
    let mut statuses = receiver.statuses.lock().unwrap();
    if statuses.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::from_u16(statuses.remove(0)).unwrap()
    }
}

/// Starts plaidhook delivering to `receiver` with `extra` settings, links an Item and breaks
/// it, so a `login_required` alert is raised and delivered.
async fn raise_an_alert(receiver: &Receiver, extra: &[(&str, &str)]) -> testkit::api::Harness {
    let mut settings = vec![("PLAIDHOOK__ALERTS__WEBHOOK_URL", receiver.url.as_str())];
    settings.extend_from_slice(extra);
    let h = start(&settings).await;
    let (item_id, plaid_item_id) = h.link_item("user-signed").await;
    let item = h
        .item_until(item_id, WITHIN, |i| !i["last_synced_at"].is_null())
        .await;
    assert!(!item["last_synced_at"].is_null(), "first sync: {item}");
    assert!(h.app.sim().reset_login(&plaid_item_id));
    h
}

/// The verifying function the README shows, word for word (the test checks it is there).
const README_PYTHON: &str = r#"import base64, hashlib, hmac, time

def verify(secret: str, headers, body: bytes, tolerance: int = 300) -> bool:
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False  # too old (a replay) or from the future
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for signature in headers["webhook-signature"].split():
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False
"#;

/// Runs the README's `verify` with python3: the body on stdin, headers and secret as arguments.
async fn python_verifies(secret: &str, delivery: &Delivery, body: &[u8]) -> bool {
    let script = format!(
        "{README_PYTHON}\nimport json, sys\n\
         ok = verify(sys.argv[1], json.loads(sys.argv[2]), sys.stdin.buffer.read())\n\
         print('valid' if ok else 'forged')\n"
    );
    let headers = serde_json::json!({
        "webhook-id": delivery.header("webhook-id"),
        "webhook-timestamp": delivery.header("webhook-timestamp"),
        "webhook-signature": delivery.header("webhook-signature"),
    });
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", &script, secret, &headers.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(body).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python failed: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.trim() == "valid"
}

#[tokio::test]
async fn alert_deliveries_are_signed_with_every_rotation_secret_and_keep_their_id_across_retries() {
    let (new, old, stranger) = (secret(32), secret(24), secret(32));
    let receiver = Receiver::start(&[500]).await;
    let secrets = format!("{new},{old}");
    let h = raise_an_alert(
        &receiver,
        &[
            ("PLAIDHOOK__ALERTS__SIGNING_SECRETS", secrets.as_str()),
            // Over a second between attempts, so their timestamps (in seconds) must differ.
            ("PLAIDHOOK__ALERTS__BACKOFF_INITIAL_MS", "1100"),
            ("PLAIDHOOK__ALERTS__BACKOFF_MAX_SECS", "2"),
        ],
    )
    .await;

    let received = receiver.until(2).await;
    assert_eq!(received.len(), 2, "a failed attempt, then the delivery");
    let (first, retry) = (&received[0], &received[1]);

    // One id for the delivery, whatever the attempt; a timestamp per attempt.
    let body: Value = serde_json::from_slice(&retry.body).unwrap();
    assert_eq!(body["event"], "alert.raised", "{body}");
    for delivery in [first, retry] {
        assert_eq!(delivery.header("webhook-id"), body["id"].as_str().unwrap());
        assert_eq!(
            delivery.header("webhook-id"),
            delivery.header("Idempotency-Key")
        );
        assert_eq!(delivery.header("content-type"), "application/json");
    }
    let first_at: i64 = first.header("webhook-timestamp").parse().unwrap();
    let retry_at: i64 = retry.header("webhook-timestamp").parse().unwrap();
    assert!(retry_at > first_at, "{first_at} then {retry_at}");
    let now = chrono::Utc::now().timestamp();
    assert!((now - 60..=now).contains(&retry_at), "{retry_at} vs {now}");

    // Two `v1,` signatures while rotating; either secret verifies every attempt.
    let signatures: Vec<&str> = retry.header("webhook-signature").split(' ').collect();
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    assert!(signatures.iter().all(|s| s.starts_with("v1,")));
    for delivery in [first, retry] {
        for key in [&new, &old] {
            Webhook::new(key)
                .unwrap()
                .verify(&delivery.body, &delivery.headers)
                .expect("a configured secret verifies the delivery");
        }
    }

    // Forgeries: another secret, a changed body, or another id do not verify.
    let forged = |outcome: Result<(), WebhookError>| {
        assert!(
            matches!(outcome, Err(WebhookError::InvalidSignature)),
            "{outcome:?}"
        );
    };
    forged(
        Webhook::new(&stranger)
            .unwrap()
            .verify(&retry.body, &retry.headers),
    );
    let tampered = String::from_utf8(retry.body.to_vec())
        .unwrap()
        .replace("user-signed", "user-evil0");
    assert_ne!(tampered.as_bytes(), &retry.body[..]);
    forged(
        Webhook::new(&new)
            .unwrap()
            .verify(tampered.as_bytes(), &retry.headers),
    );
    let mut other_id = retry.headers.clone();
    other_id.insert("webhook-id", "another-delivery".parse().unwrap());
    forged(Webhook::new(&new).unwrap().verify(&retry.body, &other_id));

    // The README's Python, with nothing but the standard library, agrees.
    if tools::available("python3", &["-c", "import hmac"], "apt-get install python3") {
        assert!(python_verifies(&old, retry, &retry.body).await);
        assert!(!python_verifies(&stranger, retry, &retry.body).await);
        assert!(!python_verifies(&new, retry, tampered.as_bytes()).await);
    }

    // The secrets never reach a log line.
    let logs = testkit::logs::captured();
    for key in [&new, &old] {
        let encoded = key.strip_prefix("whsec_").unwrap();
        assert!(!logs.contains(encoded), "a signing secret was logged");
    }
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_signing_secret_deliveries_are_unsigned_and_the_start_warns() {
    let receiver = Receiver::start(&[]).await;
    let h = raise_an_alert(&receiver, &[]).await;
    let received = receiver.until(1).await;
    assert_eq!(received.len(), 1);
    let delivery = &received[0];
    assert!(delivery.headers.get("Idempotency-Key").is_some());
    for header in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert!(delivery.headers.get(header).is_none(), "{header} was sent");
    }
    let logs = testkit::logs::captured();
    assert!(
        logs.contains("alert webhooks are unsigned") && logs.contains("alerts.signing_secrets"),
        "no warning at start"
    );
    h.app.stop().await.unwrap();
}

#[test]
fn signing_secrets_are_read_as_a_list_and_a_malformed_one_is_refused_by_name_not_value() {
    let (a, b) = (secret(24), secret(64));
    let joined = format!("{a}, {b}");
    let settings = settings_with(&[("PLAIDHOOK__ALERTS__SIGNING_SECRETS", joined.as_str())])
        .expect("two valid secrets");
    assert_eq!(settings.alerts.signing_keys().unwrap().len(), 2);
    let debug = format!("{:?}", settings.alerts);
    assert!(
        !debug.contains(&a[6..]) && !debug.contains(&b[6..]),
        "{debug}"
    );

    let unprefixed = secret(32)["whsec_".len()..].to_owned();
    let short = secret(16);
    let long = secret(65);
    let not_base64 = "whsec_not*base64*at*all*0123456789abcdef".to_owned();
    for bad in [unprefixed, short, long, not_base64] {
        let value = format!("{a},{bad}");
        let error = settings_with(&[("PLAIDHOOK__ALERTS__SIGNING_SECRETS", value.as_str())])
            .expect_err("a malformed secret is refused");
        let message = format!("{error:#}");
        assert!(
            message.contains("`alerts.signing_secrets`") && message.contains("entry 2"),
            "{message}"
        );
        assert!(
            !message.contains(&bad[6..]),
            "the secret is echoed: {message}"
        );
    }
}

#[test]
fn the_readme_shows_the_python_verifier_this_suite_runs() {
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(README_PYTHON),
        "README's \"Verifying alert webhooks\" example differs from README_PYTHON"
    );
}
