//! Shared helpers of the simulator's integration tests: starting a simulator, calling its
//! Plaid API, a webhook receiver that records what it gets, and the official OpenAPI schemas
//! (read from the shared spec directory at test time) as JSON-Schema validators.

pub use super::receiver;
pub use super::schemas;

use plaidhook::sim::{SimConfig, SimHandle, Simulator};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Settings for tests: fixed dates, fast redelivery, no rate limits unless a test sets them,
/// instant data unless a test asks for Plaid's lifecycle (`lifecycle_config`).
pub fn test_config() -> SimConfig {
    SimConfig {
        initial_data_ready: true,
        today: chrono::NaiveDate::from_ymd_opt(2026, 3, 14),
        webhook_time_scale: 0.001,
        webhook_timeout_ms: 2_000,
        sync_limit_per_item_per_minute: Some(0),
        sync_limit_per_client_per_minute: Some(0),
        balance_limit_per_item_per_minute: Some(0),
        balance_limit_per_client_per_minute: Some(0),
        ..SimConfig::default()
    }
}

/// `test_config` with Plaid's lifecycle of a new Item's data, its delays in tens of ms.
pub fn lifecycle_config() -> SimConfig {
    SimConfig {
        initial_data_ready: false,
        initial_update_delay_ms: 30,
        historical_update_delay_ms: 60,
        ..test_config()
    }
}

pub async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

/// A small Plaid client for tests: credentials in the body, JSON in and out.
#[derive(Clone)]
pub struct Plaid {
    pub base_url: String,
    pub http: reqwest::Client,
    pub client_id: String,
    pub secret: String,
}

impl Plaid {
    pub fn new(handle: &SimHandle) -> Self {
        let config = handle.sim().config();
        Self {
            base_url: handle.base_url(),
            http: reqwest::Client::new(),
            client_id: config.client_id,
            secret: config.secret,
        }
    }

    /// POST with credentials added to the body; returns the status and the JSON body.
    pub async fn call(&self, path: &str, body: Value) -> (u16, Value) {
        let mut body = body;
        let object = body.as_object_mut().expect("a JSON object body");
        object.entry("client_id").or_insert(json!(self.client_id));
        object.entry("secret").or_insert(json!(self.secret));
        self.raw(path, &body).await
    }

    /// POST exactly `body` (no credentials added).
    pub async fn raw(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .json(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON response"))
    }

    /// A linked Item through the sandbox flow: (item_id, access_token).
    pub async fn link_item(&self, webhook: Option<&str>) -> (String, String) {
        let mut options = json!({});
        if let Some(url) = webhook {
            options["webhook"] = json!(url);
        }
        let (status, created) = self
            .call("/sandbox/public_token/create", json!({"institution_id": "ins_109508", "initial_products": ["transactions"], "options": options}))
            .await;
        assert_eq!(status, 200, "{created}");
        let (status, exchanged) = self
            .call(
                "/item/public_token/exchange",
                json!({"public_token": created["public_token"]}),
            )
            .await;
        assert_eq!(status, 200, "{exchanged}");
        (
            exchanged["item_id"].as_str().unwrap().to_owned(),
            exchanged["access_token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .json(&body)
            .send()
            .await
            .expect("control call");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }
}

pub type Ledger = BTreeMap<String, Value>;

/// What a client holds after applying pages: transactions by id.
pub fn apply(ledger: &mut Ledger, page: &Value) {
    for txn in page["added"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page["modified"].as_array().unwrap())
    {
        ledger.insert(
            txn["transaction_id"].as_str().unwrap().to_owned(),
            txn.clone(),
        );
    }
    for gone in page["removed"].as_array().unwrap() {
        ledger.remove(gone["transaction_id"].as_str().unwrap());
    }
}

pub fn truth(handle: &plaidhook::sim::SimHandle, item_id: &str) -> Ledger {
    handle
        .sim()
        .ground_truth(item_id)
        .unwrap()
        .into_iter()
        .map(|t| {
            (
                t.transaction_id.to_string(),
                serde_json::to_value(&t).unwrap(),
            )
        })
        .collect()
}

/// Sync from `cursor` until `has_more` is false; returns the final cursor and every page.
pub async fn sync_all(
    plaid: &Plaid,
    token: &str,
    cursor: &str,
    count: u32,
) -> (String, Vec<Value>) {
    let mut cursor = cursor.to_owned();
    let mut pages = Vec::new();
    loop {
        let (status, page) = plaid
            .call(
                "/transactions/sync",
                json!({"access_token": token, "cursor": cursor, "count": count}),
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
