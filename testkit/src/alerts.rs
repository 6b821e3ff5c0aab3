//! A test alert webhook: records what plaidhook delivers, answers with statuses a test queues.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

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
            // The app's page Hosted Link sends the user back to.
            .route(
                "/done",
                get(|| async { Html("<h1 id=\"back\">Back in the app</h1>") }),
            )
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        receiver.url = format!("http://{}/alerts", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    /// The app's completion page (`link.completion_redirect_uri`).
    pub fn completion_url(&self) -> String {
        self.url.replace("/alerts", "/done")
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
