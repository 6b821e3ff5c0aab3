//! What the management API and Item-health tests share: an app whose simulator address is
//! known (to finish Link as the user would), an authenticated API client, an Item linked
//! through the API, an alert receiver, and a log capture.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use plaidhook::app::{Application, Role};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{settings_with, TestApp, TestDatabase};

/// The token whose SHA-256 `config/test.toml` configures.
pub const TOKEN: &str = "test-api-token";

/// Every log line of this test process, captured from before the app starts.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(Default::default)
}

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufferWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (everything at debug, plaidhook at trace), so that the
/// app's own `init_logging` finds one installed and leaves it.
pub fn capture_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let buffer = log_buffer().clone();
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("debug,plaidhook=trace"))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || BufferWriter(buffer.clone())),
        )
        .try_init();
}

/// A running app (role `all`, built-in simulator) and its simulator's base URL.
pub struct Harness {
    pub app: TestApp,
    pub sim_url: String,
}

/// Starts the app as `common::spawn_app_with` does, keeping the simulator's address.
pub async fn start(overrides: &[(&str, &str)]) -> Harness {
    capture_logs();
    let database = TestDatabase::new();
    let namespace = format!("test-{}", Uuid::new_v4().simple());
    let mut all: Vec<(&str, &str)> = vec![
        ("PLAIDHOOK__DATABASE__URL", database.url.as_str()),
        ("PLAIDHOOK__RABBITMQ__NAMESPACE", namespace.as_str()),
    ];
    all.extend_from_slice(overrides);
    let settings = settings_with(&all).expect("test settings are valid");
    plaidhook::telemetry::init_logging(&settings.telemetry);
    let app = Application::build(settings.clone(), Role::All)
        .await
        .expect("the application builds");
    let sim_url = app.state().plaid_base_url.clone();
    let app = TestApp {
        sim: app.sim(),
        topology: app.state().topology.clone(),
        db: app.state().db.clone(),
        public_addr: app.public_addr(),
        internal_addr: app.internal_addr(),
        shutdown: app.shutdown_token(),
        task: tokio::spawn(app.run_until_stopped()),
        http: reqwest::Client::new(),
        settings,
        database,
    };
    assert!(
        app.wait_broker_connected(Duration::from_secs(10)).await,
        "the broker connects"
    );
    Harness { app, sim_url }
}

impl Harness {
    /// An API request with the test token.
    pub fn api(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app
            .http
            .request(method, self.app.internal_url(path))
            .bearer_auth(TOKEN)
    }

    /// Sends an authenticated request; returns the status and the JSON body (null if none).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.api(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// The user finishes Link with `link_token` in the simulator, as `/sim/link/complete` does.
    pub async fn complete_link(&self, link_token: &str) -> Value {
        let response = self
            .app
            .http
            .post(format!("{}/sim/link/complete", self.sim_url))
            .json(&json!({ "link_token": link_token }))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
        response.json().await.unwrap()
    }

    /// Links a new Item through the API as an app would: Link token, Link, exchange.
    /// Returns plaidhook's Item id and Plaid's.
    pub async fn link_item(&self, client_user_id: &str) -> (Uuid, String) {
        let (status, token) = self
            .call(
                Method::POST,
                "/api/v1/link/token",
                Some(json!({ "client_user_id": client_user_id })),
            )
            .await;
        assert_eq!(status, 201, "{token}");
        let linked = self
            .complete_link(token["link_token"].as_str().unwrap())
            .await;
        let (status, exchanged) = self
            .call(
                Method::POST,
                "/api/v1/link/exchange",
                Some(json!({
                    "public_token": linked["public_token"],
                    "client_user_id": client_user_id,
                })),
            )
            .await;
        assert_eq!(status, 201, "{exchanged}");
        let item_id = exchanged["item_id"].as_str().unwrap().parse().unwrap();
        (
            item_id,
            exchanged["plaid_item_id"].as_str().unwrap().to_owned(),
        )
    }

    /// The Item as `GET /api/v1/items/{id}` shows it.
    pub async fn item(&self, item_id: Uuid) -> Value {
        let (status, item) = self
            .call(Method::GET, &format!("/api/v1/items/{item_id}"), None)
            .await;
        assert_eq!(status, 200, "{item}");
        item
    }

    /// Polls the Item until `check` holds or `within` passes; returns the last view.
    pub async fn item_until(
        &self,
        item_id: Uuid,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let item = self.item(item_id).await;
            if check(&item) || tokio::time::Instant::now() >= deadline {
                return item;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Alerts of the Item by cause: (open, total).
    pub async fn alert_counts(&self, item_id: Uuid, cause: &str) -> (i64, i64) {
        let row: (i64, i64) = sqlx::query_as(
            "select count(*) filter (where resolved_at is null), count(*) from alerts
             where item_id = $1 and cause = $2",
        )
        .bind(item_id)
        .bind(cause)
        .fetch_one(&self.app.db)
        .await
        .unwrap();
        row
    }

    /// `/item/get` calls plaidhook made for the Item (each ITEM webhook makes one).
    pub async fn item_get_calls(&self, item_id: Uuid) -> i64 {
        sqlx::query_scalar(
            "select count(*) from plaid_api_calls where method = '/item/get' and item_id = $1",
        )
        .bind(item_id)
        .fetch_one(&self.app.db)
        .await
        .unwrap()
    }
}

/// A test alert webhook: records every body, answers with queued statuses (then 200).
#[derive(Clone, Default)]
pub struct AlertReceiver {
    pub url: String,
    received: Arc<Mutex<Vec<Value>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
}

impl AlertReceiver {
    pub async fn start() -> Self {
        let mut receiver = Self::default();
        let app = Router::new()
            .route("/alerts", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        receiver.url = format!("http://{}/alerts", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    /// Answer the next deliveries with these statuses, in order.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.statuses.lock().unwrap().extend_from_slice(statuses);
    }

    /// Every body received so far, failed attempts included.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// Polls until `check` holds on what was received, or `within` passes.
    pub async fn until(&self, within: Duration, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let received = self.received();
            if check(&received) || tokio::time::Instant::now() >= deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(State(receiver): State<AlertReceiver>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    receiver.received.lock().unwrap().push(value);
    let mut statuses = receiver.statuses.lock().unwrap();
    if statuses.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::from_u16(statuses.remove(0)).unwrap()
    }
}
