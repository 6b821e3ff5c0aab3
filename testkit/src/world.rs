//! A world for sync tests: one database, one broker namespace and one standalone Plaid
//! simulator, shared by any number of plaidhook nodes.
//!
//! Every node talks to the same simulator (`plaid.environment = "custom"`), so several workers
//! see one Plaid, as they would in production; the simulator's ground truth is what the
//! database must end equal to.

use std::collections::BTreeMap;
use std::time::Duration;

use plaidhook::app::Role;
use plaidhook::crypto::TokenCipher;
use plaidhook::items::rows::LinkedItem;
use plaidhook::plaid::{AccountBase, Transaction};
use plaidhook::sim::{NewItem, Sim, SimConfig, SimHandle, Simulator};
use sqlx::PgPool;
use uuid::Uuid;

use crate::amqp_channel;
use crate::app::TestApp;
use crate::database::{settings_with, TestDatabase};

/// A plaidhook process of a world.
pub type Node = TestApp;

pub struct World {
    pub database: TestDatabase,
    pub namespace: String,
    pub sim_handle: SimHandle,
    pub db: PgPool,
    pub tokens: TokenCipher,
}

/// A linked Item: our id and Plaid's.
#[derive(Debug, Clone)]
pub struct Linked {
    pub id: Uuid,
    pub plaid_item_id: String,
}

/// A `sync_runs` row, as the tests read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Run {
    pub trigger: String,
    pub outcome: String,
    pub pages: i32,
    pub pagination_restarts: i32,
    pub cursor_reset: bool,
    pub added: i32,
    pub modified: i32,
    pub removed: i32,
    pub error_code: Option<String>,
    pub plaid_request_ids: Vec<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Simulator settings for tests: real rate limits, webhook retries sped up, and instant data
/// (a linked Item's whole history ready at once): these tests measure syncs of known sizes,
/// often of Items without a webhook. Tests of Plaid's initial/historical lifecycle turn it off.
pub fn sim_config() -> SimConfig {
    SimConfig {
        initial_data_ready: true,
        webhook_time_scale: 0.001,
        today: chrono::NaiveDate::from_ymd_opt(2026, 11, 20),
        ..SimConfig::default()
    }
}

impl World {
    pub async fn new(sim: SimConfig) -> Self {
        let sim_handle = Simulator::start(sim, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("the simulator starts");
        let database = TestDatabase::new();
        let settings = settings_with(&[("PLAIDHOOK__DATABASE__URL", database.url.as_str())])
            .expect("test settings");
        plaidhook::telemetry::init_logging(&settings.telemetry);
        plaidhook::store::migrate(&settings.database)
            .await
            .expect("the test database migrates");
        let db = PgPool::connect(&database.url).await.expect("connect");
        let tokens = TokenCipher::new(&settings.tokens.active_key_id, &settings.tokens.keys)
            .expect("the test token key");
        Self {
            database,
            namespace: format!("test-{}", Uuid::new_v4().simple()),
            sim_handle,
            db,
            tokens,
        }
    }

    pub fn sim(&self) -> &Sim {
        self.sim_handle.sim()
    }

    /// The settings every process of this world shares, as environment variables.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PLAIDHOOK__DATABASE__URL".into(), self.database.url.clone()),
            (
                "PLAIDHOOK__RABBITMQ__NAMESPACE".into(),
                self.namespace.clone(),
            ),
            ("PLAIDHOOK__PLAID__ENVIRONMENT".into(), "custom".into()),
            (
                "PLAIDHOOK__PLAID__BASE_URL".into(),
                self.sim_handle.base_url(),
            ),
        ]
    }

    /// Starts a node with `role`, plus `extra` settings, connected to RabbitMQ.
    pub async fn node(&self, role: Role, extra: &[(&str, &str)]) -> Node {
        TestApp::builder()
            .in_world(self)
            .role(role)
            .envs(extra)
            .wait_for_broker()
            .start()
            .await
    }

    /// Creates an Item of `transactions` at the simulator, sending its webhooks to `webhook`,
    /// and links it here as the API's token exchange would.
    pub async fn link(&self, webhook: Option<String>, transactions: usize) -> Linked {
        let (plaid_item_id, token) = self.sim().create_item(NewItem {
            webhook,
            transactions: Some(transactions),
            ..NewItem::default()
        });
        let mut tx = self.db.begin().await.expect("a transaction");
        let id = plaidhook::items::rows::link(
            &mut tx,
            &self.tokens,
            LinkedItem {
                plaid_item_id: plaid_item_id.as_str(),
                access_token: &token,
                client_user_id: Some("user-1"),
                institution_id: Some("ins_109508"),
                institution_name: Some("First Platypus Bank"),
            },
        )
        .await
        .expect("the Item links")
        .id();
        tx.commit().await.expect("the link commits");
        Linked {
            id,
            plaid_item_id: plaid_item_id.into_inner(),
        }
    }

    /// The simulator's transactions of the Item, by id.
    pub fn truth(&self, item: &Linked) -> BTreeMap<String, Transaction> {
        self.sim()
            .ground_truth(&item.plaid_item_id)
            .expect("the Item exists")
            .into_iter()
            .map(|t| (t.transaction_id.as_str().to_owned(), t))
            .collect()
    }

    /// The Item's transactions in PostgreSQL, by id, read back from `raw`.
    pub async fn stored(&self, item: &Linked) -> BTreeMap<String, Transaction> {
        let rows: Vec<(String, serde_json::Value)> =
            sqlx::query_as("select transaction_id, raw from transactions where item_id = $1")
                .bind(item.id)
                .fetch_all(&self.db)
                .await
                .expect("read transactions");
        rows.into_iter()
            .map(|(id, raw)| {
                (
                    id,
                    serde_json::from_value(raw).expect("raw is a transaction"),
                )
            })
            .collect()
    }

    /// Whether the database holds exactly the simulator's transactions for the Item.
    pub async fn in_step(&self, item: &Linked) -> bool {
        self.stored(item).await == self.truth(item)
    }

    /// Polls until the database equals the ground truth and no run of the Item is in flight.
    pub async fn wait_in_step(&self, item: &Linked, within: Duration) -> bool {
        self.eventually(within, || async {
            self.in_step(item).await && self.running(item).await == 0
        })
        .await
    }

    /// Asserts what `wait_in_step` waits for, with a readable difference when it fails.
    pub async fn assert_in_step(&self, item: &Linked, within: Duration) {
        if self.wait_in_step(item, within).await {
            return;
        }
        let (stored, truth) = (self.stored(item).await, self.truth(item));
        let missing = truth.keys().filter(|k| !stored.contains_key(*k)).count();
        let extra = stored.keys().filter(|k| !truth.contains_key(*k)).count();
        let differing = truth
            .iter()
            .filter(|(k, t)| stored.get(*k).is_some_and(|s| s != *t))
            .count();
        panic!(
            "database differs from the ground truth: {} stored, {} true, {missing} missing, {extra} extra, {differing} differing; runs: {:#?}",
            stored.len(),
            truth.len(),
            self.runs(item).await
        );
    }

    /// The numeric and link columns agree with the raw objects (money as `numeric`).
    pub async fn assert_columns_match_raw(&self, item: &Linked) {
        let rows: Vec<(
            String,
            rust_decimal::Decimal,
            bool,
            Option<String>,
            serde_json::Value,
        )> = sqlx::query_as(
            "select transaction_id, amount, pending, pending_transaction_id, raw
                 from transactions where item_id = $1",
        )
        .bind(item.id)
        .fetch_all(&self.db)
        .await
        .unwrap();
        for (id, amount, pending, pending_id, raw) in rows {
            let t: Transaction = serde_json::from_value(raw).unwrap();
            assert_eq!(amount, t.amount, "amount of {id}");
            assert_eq!(pending, t.pending, "pending of {id}");
            assert_eq!(
                pending_id,
                t.pending_transaction_id.map(|p| p.into_inner()),
                "pending link of {id}"
            );
        }
    }

    /// The Item's accounts and balances agree with the simulator's.
    pub async fn assert_accounts_match(&self, item: &Linked) {
        let truth: Vec<AccountBase> = self.sim().accounts(&item.plaid_item_id).unwrap();
        for account in truth {
            let row: (
                Option<rust_decimal::Decimal>,
                Option<rust_decimal::Decimal>,
                String,
            ) = sqlx::query_as(
                "select balance_current, balance_available, name from accounts
                     where account_id = $1 and item_id = $2",
            )
            .bind(account.account_id.as_str())
            .bind(item.id)
            .fetch_one(&self.db)
            .await
            .expect("the account is stored");
            assert_eq!(row.0, account.balances.current);
            assert_eq!(row.1, account.balances.available);
            assert_eq!(row.2, account.name);
        }
    }

    pub async fn runs(&self, item: &Linked) -> Vec<Run> {
        sqlx::query_as(
            "select trigger, outcome, pages, pagination_restarts, cursor_reset, added, modified,
                    removed, error_code, plaid_request_ids, started_at, finished_at
             from sync_runs where item_id = $1 order by started_at",
        )
        .bind(item.id)
        .fetch_all(&self.db)
        .await
        .expect("read sync runs")
    }

    pub async fn running(&self, item: &Linked) -> i64 {
        sqlx::query_scalar(
            "select count(*) from sync_runs where item_id = $1 and outcome = 'running'",
        )
        .bind(item.id)
        .fetch_one(&self.db)
        .await
        .unwrap()
    }

    /// Polls until the Item has `n` runs that are not `running` (or `within` passes).
    pub async fn wait_finished_runs(&self, item: &Linked, n: usize, within: Duration) -> Vec<Run> {
        self.eventually(within, || async {
            let runs = self.runs(item).await;
            runs.iter().filter(|r| r.outcome != "running").count() >= n
        })
        .await;
        self.runs(item).await
    }

    /// Calls to Plaid answered 429.
    pub async fn rate_limited_calls(&self) -> i64 {
        sqlx::query_scalar("select count(*) from plaid_api_calls where http_status = 429")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    pub async fn item_status(&self, item: &Linked) -> (String, Option<String>) {
        sqlx::query_as("select status, error_code from items where id = $1")
            .bind(item.id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// The payloads of the Item's `transactions.synced` events, in outbox order.
    pub async fn synced_events(&self, item: &Linked) -> Vec<serde_json::Value> {
        sqlx::query_scalar(
            "select payload from outbox where routing_key = 'transactions.synced'
               and payload->>'item_id' = $1 order by id",
        )
        .bind(item.id.to_string())
        .fetch_all(&self.db)
        .await
        .unwrap()
    }

    /// What a subscriber that applied every `transactions.synced` event of the Item, in order,
    /// to an empty store would hold.
    pub async fn replayed_events(&self, item: &Linked) -> BTreeMap<String, Transaction> {
        let mut store = BTreeMap::new();
        for event in self.synced_events(item).await {
            let data = &event["data"];
            for upsert in ["added", "modified"] {
                for value in data[upsert].as_array().expect("an array of transactions") {
                    let transaction: Transaction =
                        serde_json::from_value(value.clone()).expect("a transaction");
                    store.insert(transaction.transaction_id.as_str().to_owned(), transaction);
                }
            }
            for removed in data["removed"].as_array().expect("an array of removals") {
                store.remove(removed["transaction_id"].as_str().expect("an id"));
            }
        }
        store
    }

    /// Messages ready in a queue of this world's namespace (0 if it does not exist).
    pub async fn queue_depth(&self, queue: &str) -> (u32, u32) {
        let channel = amqp_channel().await.expect("RabbitMQ is reachable");
        let passive = lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        match channel
            .queue_declare(
                format!("{}.{queue}", self.namespace).into(),
                passive,
                lapin::types::FieldTable::default(),
            )
            .await
        {
            Ok(q) => (q.message_count(), q.consumer_count()),
            Err(_) => (0, 0),
        }
    }

    /// Polls `check` until it holds or `within` passes.
    pub async fn eventually<F, Fut>(&self, within: Duration, check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        crate::eventually(within, check).await
    }

    /// Deletes the world's broker namespace and stops the simulator.
    pub async fn finish(self) {
        if let Ok(channel) = amqp_channel().await {
            let topology = plaidhook::broker::Topology::new(&self.namespace, 10);
            let _ = topology.delete(&channel).await;
        }
        self.db.close().await;
        self.sim_handle.shutdown().await;
    }
}

/// Asserts that no two runs of one Item overlap in time.
pub fn assert_no_overlap(runs: &[Run]) {
    let mut finished: Vec<&Run> = runs.iter().collect();
    finished.sort_by_key(|r| r.started_at);
    for pair in finished.windows(2) {
        let end = pair[0].finished_at.expect("a finished run");
        assert!(
            end <= pair[1].started_at,
            "runs overlap: one ended {end}, the next started {}",
            pair[1].started_at
        );
    }
}
