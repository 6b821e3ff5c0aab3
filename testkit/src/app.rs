//! A running plaidhook for a test, built through one builder.
//!
//! [`TestApp::builder`] is the one way tests and benchmarks start the application: a role,
//! settings as environment variables would give them, and either a database and namespace of
//! its own or those of a [`World`] it joins. It builds through `Application::build`, exactly as
//! the binary does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use plaidhook::app::{Application, Role};
use plaidhook::broker::{Broker, BrokerStatus, Publisher, Topology};
use plaidhook::config::Settings;
use plaidhook::gauges::GaugeSampler;
use plaidhook::messages::{SyncRequester, SyncTrigger};
use plaidhook::retention::Retention;
use plaidhook::scheduler::Scheduler;
use plaidhook::sim::Sim;
use tokio_util::sync::CancellationToken;

use crate::database::{settings_with, TestDatabase};
use crate::world::World;
use crate::{amqp_channel, eventually};

/// How a [`TestApp`] is to be started.
pub struct TestAppBuilder {
    role: Role,
    env: Vec<(String, String)>,
    /// Joins a world (its database, namespace and simulator) instead of owning its own.
    world: Option<Vec<(String, String)>>,
    capture_logs: bool,
    wait_for_broker: bool,
    drop_webhooks_for_benchmark: bool,
}

impl TestAppBuilder {
    /// What the process runs (default `all`).
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// One setting, as `PLAIDHOOK__SECTION__KEY` would give it.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Several settings; later ones override earlier ones.
    pub fn envs(mut self, settings: &[(&str, &str)]) -> Self {
        for (key, value) in settings {
            self = self.env(key, value);
        }
        self
    }

    /// Runs as a node of `world`: its database, namespace and simulator.
    pub fn in_world(mut self, world: &World) -> Self {
        self.world = Some(world.env());
        self
    }

    /// Captures every log line of the process (see [`crate::logs`]).
    pub fn capture_logs(mut self) -> Self {
        self.capture_logs = true;
        self
    }

    /// Returns only once the app is connected to RabbitMQ.
    pub fn wait_for_broker(mut self) -> Self {
        self.wait_for_broker = true;
        self
    }

    /// The webhook route of `plaidhook bench-ingress-floor`: verify, answer, keep nothing.
    pub fn drop_webhooks_for_benchmark(mut self) -> Self {
        self.drop_webhooks_for_benchmark = true;
        self
    }

    pub async fn start(self) -> TestApp {
        if self.capture_logs {
            crate::logs::capture();
        }
        let (database, namespace, mut env) = match self.world {
            Some(world_env) => (None, None, world_env),
            None => {
                let database = TestDatabase::new();
                let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
                let env = vec![
                    ("PLAIDHOOK__DATABASE__URL".to_owned(), database.url.clone()),
                    (
                        "PLAIDHOOK__RABBITMQ__NAMESPACE".to_owned(),
                        namespace.clone(),
                    ),
                ];
                (Some(database), Some(namespace), env)
            }
        };
        env.extend(self.env);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let settings = settings_with(&pairs).expect("test settings are valid");
        plaidhook::telemetry::init_logging(&settings.telemetry);
        let app = Application::build(settings.clone(), self.role)
            .await
            .expect("the application builds");
        let app = if self.drop_webhooks_for_benchmark {
            app.drop_webhooks_for_benchmark()
        } else {
            app
        };
        let test_app = TestApp {
            sim: app.sim(),
            sim_url: app.plaid_base_url().to_owned(),
            topology: app.topology().clone(),
            db: app.db().clone(),
            broker: app.broker().clone(),
            publisher: app.publisher().clone(),
            sync_requests: app.sync_requester(),
            scheduler: app.scheduler(),
            retention: app.retention(),
            gauges: app.gauges(),
            public_addr: app.public_addr(),
            internal_addr: app.internal_addr(),
            shutdown: app.shutdown_token(),
            task: tokio::spawn(app.run_until_stopped()),
            http: reqwest::Client::new(),
            settings,
            owns_namespace: namespace.is_some(),
            database,
        };
        if self.wait_for_broker {
            tokio::time::timeout(Duration::from_secs(15), test_app.broker.connected())
                .await
                .expect("the app connects to RabbitMQ");
        }
        test_app
    }
}

/// A running plaidhook.
pub struct TestApp {
    /// The built-in simulator, when `plaid.environment = "simulator"`.
    pub sim: Option<Sim>,
    /// The Plaid base URL the app uses (the simulator's).
    pub sim_url: String,
    pub topology: Topology,
    pub db: sqlx::PgPool,
    pub broker: Broker,
    pub publisher: Arc<Publisher>,
    pub sync_requests: SyncRequester,
    /// The safety net, to drive one round at a time (`scheduler.enabled = false` stops its timer).
    pub scheduler: Scheduler,
    /// Retention, to run one round now (`retention.enabled = false` stops its timer).
    pub retention: Retention,
    /// The gauge sampler, to take a sample now instead of waiting for its interval.
    pub gauges: GaugeSampler,
    pub public_addr: Option<SocketAddr>,
    pub internal_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
    pub settings: Settings,
    /// The app's own database; `None` for a node of a world.
    pub database: Option<TestDatabase>,
    owns_namespace: bool,
}

/// Builds and starts the app for `role` on its own fresh database and namespace.
pub async fn spawn_app_with(role: Role, overrides: &[(&str, &str)]) -> TestApp {
    TestApp::builder().role(role).envs(overrides).start().await
}

pub async fn spawn_app() -> TestApp {
    TestApp::builder().start().await
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            role: Role::All,
            env: Vec::new(),
            world: None,
            capture_logs: false,
            wait_for_broker: false,
            drop_webhooks_for_benchmark: false,
        }
    }

    pub fn public_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.public_addr.expect("this role has a public listener"),
            path
        )
    }

    pub fn internal_url(&self, path: &str) -> String {
        format!("http://{}{}", self.internal_addr, path)
    }

    /// Where Plaid sends this app's webhooks.
    pub fn webhook_url(&self) -> String {
        self.public_url("/webhooks/plaid")
    }

    /// The app's own database (panics for a node of a world, which has none of its own).
    pub fn database(&self) -> &TestDatabase {
        self.database
            .as_ref()
            .expect("an app with its own database")
    }

    /// Polls `/readyz` until it answers 200 or `within` passes; returns the last status.
    pub async fn wait_ready(&self, within: Duration) -> reqwest::StatusCode {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let status = self
                .http
                .get(self.internal_url("/readyz"))
                .send()
                .await
                .map(|r| r.status())
                .unwrap_or(reqwest::StatusCode::SERVICE_UNAVAILABLE);
            if status.is_success() || tokio::time::Instant::now() >= deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `/readyz` reports the broker connected; false if it did not within `within`.
    pub async fn wait_broker_connected(&self, within: Duration) -> bool {
        let url = self.internal_url("/readyz");
        self.eventually(within, || async {
            let Ok(response) = self.http.get(&url).send().await else {
                return false;
            };
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            body["checks"]["broker"] == "connected"
        })
        .await
    }

    /// The broker connection's state, as `/readyz` reports it.
    pub fn broker_status(&self) -> BrokerStatus {
        self.broker.status()
    }

    /// The built-in simulator this app talks to.
    pub fn sim(&self) -> &Sim {
        self.sim.as_ref().expect("plaid.environment = simulator")
    }

    /// Asks for a sync as the API does after a token exchange (or manually).
    pub async fn request_sync(&self, plaid_item_id: &str, trigger: SyncTrigger) {
        self.sync_requests
            .request(plaid_item_id, trigger)
            .await
            .expect("the sync request is confirmed");
    }

    /// Stops the app gracefully, waits for it, and deletes its broker namespace (a node of a
    /// world leaves the world's namespace to the world).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let result = self.task.await?;
        if self.owns_namespace {
            if let Ok(channel) = amqp_channel().await {
                let _ = self.topology.delete(&channel).await;
            }
        }
        result
    }

    /// Messages ready in `queue` (0 when the queue does not exist yet).
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        let channel = amqp_channel().await.expect("RabbitMQ is reachable");
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        match channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
        {
            Ok(declared) => declared.message_count(),
            Err(_) => 0,
        }
    }

    /// Takes every ready message off `queue`, in queue order.
    pub async fn drain_queue(&self, queue: &str) -> Vec<Vec<u8>> {
        let channel = amqp_channel().await.expect("RabbitMQ is reachable");
        let mut bodies = Vec::new();
        while let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            bodies.push(message.delivery.data.clone());
        }
        bodies
    }

    /// Rows in the webhook spool waiting for the relay (parked rows are not waiting).
    pub async fn spool_depth_pending(&self) -> i64 {
        plaidhook::webhook::spool::depth(&self.db)
            .await
            .expect("spool depth")
    }

    /// Rows in the webhook spool, parked ones included.
    pub async fn spool_depth(&self) -> i64 {
        sqlx::query_scalar("select count(*) from webhook_spool")
            .fetch_one(&self.db)
            .await
            .expect("spool count")
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.internal_url("/metrics"))
            .send()
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("/metrics has a body")
    }

    /// A subscriber's queue in this app's namespace, bound to `exchange` for `routing_key`, as
    /// a downstream service would bind one; the app's topology is declared first. Delete it
    /// with [`TestApp::unsubscribe`].
    pub async fn subscribe(&self, name: &str, exchange: &str, routing_key: &str) -> String {
        self.publisher
            .ensure_topology()
            .await
            .expect("the topology is declared");
        let channel = amqp_channel().await.expect("RabbitMQ is reachable");
        let queue = format!("{}.{name}", self.settings.rabbitmq.namespace);
        channel
            .queue_declare(
                queue.clone().into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .expect("the subscriber's queue is declared");
        channel
            .queue_bind(
                queue.clone().into(),
                exchange.into(),
                routing_key.into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .expect("the subscriber's queue is bound");
        queue
    }

    /// Deletes a queue made by [`TestApp::subscribe`].
    pub async fn unsubscribe(&self, queue: &str) {
        let channel = amqp_channel().await.expect("RabbitMQ is reachable");
        channel
            .queue_delete(queue.into(), Default::default())
            .await
            .expect("the subscriber's queue is deleted");
    }

    /// Polls `check` until it holds or `within` passes; returns whether it held.
    pub async fn eventually<F, Fut>(&self, within: Duration, check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        eventually(within, check).await
    }
}
