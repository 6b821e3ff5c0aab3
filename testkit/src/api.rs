//! The management API as an app calls it: an authenticated client, Link completed in the
//! simulator as the user would, an Item linked end to end.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::app::TestApp;

/// The token whose SHA-256 `config/test.toml` configures.
pub const TOKEN: &str = "test-api-token";

/// A running app (role `all`, built-in simulator) and its simulator's base URL.
pub struct Harness {
    pub app: TestApp,
    pub sim_url: String,
}

/// Starts an app (role `all`, built-in simulator, logs captured) connected to the broker.
pub async fn start(overrides: &[(&str, &str)]) -> Harness {
    let app = TestApp::builder()
        .envs(overrides)
        .capture_logs()
        .start()
        .await;
    assert!(
        app.wait_broker_connected(Duration::from_secs(10)).await,
        "the broker connects"
    );
    let sim_url = app.sim_url.clone();
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

    /// Waits until the Item has been through Plaid's whole first fetch (the simulator's initial
    /// and historical updates) and plaidhook is done with it: every webhook about it answered,
    /// its transactions all stored, no sync running, and no Plaid call made for a moment. Tests
    /// that count rows or runs start from there, so the lifecycle's syncs cannot race them.
    pub async fn settled(&self, item_id: Uuid, plaid_item_id: &str, within: Duration) -> bool {
        let sim = self.app.sim();
        let quiet = || async {
            let history_complete = sim.with_state(|s| {
                s.items.get(plaid_item_id).is_some_and(|item| {
                    item.phase == plaidhook::sim::state::Phase::HistoricalUpdateComplete
                })
            });
            let delivered = sim
                .deliveries()
                .iter()
                .filter(|d| d.item_id.as_deref() == Some(plaid_item_id))
                .all(|d| d.last_attempt);
            let truth = sim.ground_truth(plaid_item_id).map_or(0, |t| t.len()) as i64;
            let (stored, running, calls): (i64, i64, i64) = sqlx::query_as(
                "select (select count(*) from transactions where item_id = $1),
                        (select count(*) from sync_runs where item_id = $1 and finished_at is null),
                        (select count(*) from plaid_api_calls where item_id = $1)",
            )
            .bind(item_id)
            .fetch_one(&self.app.db)
            .await
            .unwrap();
            (history_complete && delivered && stored == truth && running == 0).then_some(calls)
        };
        let deadline = tokio::time::Instant::now() + within;
        let mut last = None;
        while tokio::time::Instant::now() < deadline {
            let now = quiet().await;
            if now.is_some() && now == last {
                return true;
            }
            last = now;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Links an Item and waits until it is [`Harness::settled`].
    pub async fn link_settled(&self, client_user_id: &str) -> (Uuid, String) {
        let (item_id, plaid_item_id) = self.link_item(client_user_id).await;
        assert!(
            self.settled(item_id, &plaid_item_id, Duration::from_secs(30))
                .await,
            "the Item's first fetch and syncs finish"
        );
        (item_id, plaid_item_id)
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
