//! The chaos run: plaidhook as it is deployed (the simulator, two ingress and three workers as
//! separate processes, a three-node RabbitMQ cluster, PostgreSQL), under traffic, while faults
//! are injected; then a bounded drain and a ledger that says whether anything was lost or
//! duplicated. `scripts/chaos` starts the cluster and runs it (`--short` in CI).
//!
//! - `fleet`: the processes, started, killed (SIGKILL) and stopped (SIGTERM).
//! - `traffic`: Items linked through the API; banks moving on, logins breaking and repaired.
//! - `faults`: what is injected, and how.
//! - `ledger`: the checks at the end, and the figures.

pub mod faults;
pub mod fleet;
pub mod ledger;
pub mod traffic;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use plaidhook::broker::{Broker, Topology};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::database::TestDatabase;
use faults::{Fault, Injector};
use fleet::{Fleet, Service};
use ledger::{Deliveries, Findings};
use traffic::Traffic;

/// What to run.
pub struct Plan {
    pub binary: PathBuf,
    pub cluster_script: PathBuf,
    /// `rabbitmq.urls` of the cluster.
    pub nodes: String,
    pub postgres_version: String,
    pub items: usize,
    pub traffic_for: Duration,
    /// Time between two traffic actions.
    pub pace: Duration,
    /// Mean time between two faults.
    pub fault_pause: Duration,
    pub drain_within: Duration,
    pub seed: u64,
    /// Where the processes' logs and the summary go.
    pub dir: PathBuf,
}

/// What the run did and found.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub items: usize,
    pub traffic_secs: f64,
    pub advances: u64,
    pub logins_broken: u64,
    pub repairs: u64,
    pub broken_at_end: usize,
    pub faults: BTreeMap<String, u32>,
    pub faults_total: u32,
    pub deliveries: Deliveries,
    pub events_applied: u64,
    pub event_duplicates_absorbed: u64,
    /// From the end of the traffic until every Item agreed with Plaid (the longest any Item
    /// lagged once the faults stopped).
    pub drain_secs: f64,
    pub findings: Findings,
    pub passed: bool,
}

/// A small seeded generator: a run is repeatable from its seed (faults and traffic alike).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// In [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

pub async fn run(plan: Plan) -> anyhow::Result<Summary> {
    std::fs::create_dir_all(&plan.dir)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let database = TestDatabase::new();
    let namespace = format!("chaos-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let status = tokio::process::Command::new(&plan.binary)
        .arg("migrate")
        .env("PLAIDHOOK__DATABASE__URL", &database.url)
        .status()
        .await?;
    anyhow::ensure!(status.success(), "plaidhook migrate failed");

    let sim_port = free_port()?;
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    let common = [
        ("PLAIDHOOK_ENVIRONMENT", "test".to_owned()),
        ("PLAIDHOOK__TELEMETRY__FILTER", "info".to_owned()),
        ("PLAIDHOOK__DATABASE__URL", database.url.clone()),
        ("PLAIDHOOK__DATABASE__MIGRATE_ON_START", "false".to_owned()),
        ("PLAIDHOOK__RABBITMQ__URLS", plan.nodes.clone()),
        ("PLAIDHOOK__RABBITMQ__NAMESPACE", namespace.clone()),
        (
            "PLAIDHOOK__RABBITMQ__QUORUM_INITIAL_GROUP_SIZE",
            "3".to_owned(),
        ),
        ("PLAIDHOOK__PLAID__ENVIRONMENT", "custom".to_owned()),
        ("PLAIDHOOK__PLAID__BASE_URL", sim_url.clone()),
    ];
    let sim = Service::new(
        "sim",
        "sim",
        env(&[
            ("PLAIDHOOK_ENVIRONMENT", "test".to_owned()),
            ("PLAIDHOOK__SIM__PORT", sim_port.to_string()),
            ("PLAIDHOOK__SIM__SEED", plan.seed.to_string()),
            ("PLAIDHOOK__SIM__TRANSACTIONS_PER_ITEM", "100".to_owned()),
            // Plaid's retries (30 s, then ×4) at a hundredth of the time.
            ("PLAIDHOOK__SIM__WEBHOOK_TIME_SCALE", "0.01".to_owned()),
            ("PLAIDHOOK__SIM__WEBHOOK_DUPLICATES", "1".to_owned()),
            ("PLAIDHOOK__SIM__WEBHOOK_REORDER_WINDOW", "3".to_owned()),
        ]),
        format!("{sim_url}/sim/config"),
        &plan.dir,
    );
    let mut ingress = Vec::new();
    let mut apis = Vec::new();
    for n in 1..=2 {
        let (public, internal) = (free_port()?, free_port()?);
        let mut vars = common.to_vec();
        vars.extend([
            ("PLAIDHOOK__PUBLIC__PORT", public.to_string()),
            ("PLAIDHOOK__INTERNAL__PORT", internal.to_string()),
            (
                "PLAIDHOOK__PLAID__WEBHOOK_URL",
                format!("http://127.0.0.1:{public}/webhooks/plaid"),
            ),
        ]);
        let api = format!("http://127.0.0.1:{internal}");
        ingress.push(Service::new(
            &format!("ingress-{n}"),
            "serve",
            env(&vars),
            format!("{api}/readyz"),
            &plan.dir,
        ));
        apis.push(api);
    }
    let mut workers = Vec::new();
    for n in 1..=3 {
        let internal = free_port()?;
        let mut vars = common.to_vec();
        vars.push(("PLAIDHOOK__INTERNAL__PORT", internal.to_string()));
        workers.push(Service::new(
            &format!("worker-{n}"),
            "worker",
            env(&vars),
            format!("http://127.0.0.1:{internal}/readyz"),
            &plan.dir,
        ));
    }
    let mut fleet = Fleet {
        binary: plan.binary.clone(),
        sim,
        ingress,
        workers,
    };
    fleet.start_all(&http).await?;

    // A downstream subscriber of plaid.events, on the cluster, read at the end.
    let subscriber_stop = CancellationToken::new();
    let nodes: Vec<secrecy::SecretString> = plan
        .nodes
        .split(',')
        .map(|url| url.to_owned().into())
        .collect();
    let broker = Broker::start(nodes, "plaidhook-chaos-subscriber", subscriber_stop.clone());
    let topology = Topology::new(&namespace, 10);
    let subscriber_queue = format!("{namespace}.chaos.subscriber");
    {
        let channel = broker.connected().await.create_channel().await?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        channel
            .queue_declare(
                subscriber_queue.clone().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await?;
        channel
            .queue_bind(
                subscriber_queue.clone().into(),
                topology.events_exchange().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }

    let traffic = Traffic {
        http: http.clone(),
        sim_url: sim_url.clone(),
        apis,
    };
    let items = traffic.link(plan.items).await?;
    eprintln!(
        "chaos: {} Items linked; traffic and faults for {:?}",
        items.len(),
        plan.traffic_for
    );

    let stop = CancellationToken::new();
    let started = Instant::now();
    let driving = {
        let (items, stop, pace) = (items.clone(), stop.clone(), plan.pace);
        let mut rng = Rng::new(plan.seed ^ 0x7261_6666_6963);
        let traffic = Traffic {
            http: http.clone(),
            sim_url: sim_url.clone(),
            apis: Vec::new(),
        };
        tokio::spawn(async move { traffic.drive(&items, &mut rng, pace, stop).await })
    };
    let injector = Injector {
        cluster: plan.cluster_script.clone(),
        postgres_version: plan.postgres_version.clone(),
    };
    let timer = {
        let (stop, after) = (stop.clone(), plan.traffic_for);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            stop.cancel();
        })
    };
    let mut rng = Rng::new(plan.seed);
    let injected = injector
        .run(&mut fleet, &mut rng, plan.fault_pause, stop.clone())
        .await;
    stop.cancel();
    timer.abort();
    let driven = driving.await?;
    let traffic_secs = started.elapsed().as_secs_f64();
    let injected = injected?;

    // Drain: every process and node is up again (each fault restores what it broke); Plaid's
    // held-back webhooks go out; then wait until every Item agrees with Plaid.
    eprintln!("chaos: traffic stopped; draining");
    let drain_started = Instant::now();
    http.post(format!("{sim_url}/sim/webhooks/flush"))
        .send()
        .await?;
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&database.url)
        .await?;
    let mut findings;
    loop {
        findings = Findings::default();
        for (n, item) in items.iter().enumerate() {
            let broken = driven.broken.contains(&n);
            if !broken
                && ledger::stored(&db, item).await? != ledger::truth(&http, &sim_url, item).await?
            {
                findings
                    .items_not_equal_to_plaid
                    .push(item.plaid_item_id.clone());
            }
            if !ledger::status_matches(&db, item, broken).await? {
                findings
                    .items_with_wrong_status_or_alerts
                    .push(item.plaid_item_id.clone());
            }
        }
        (findings.spooled_webhooks_left, findings.spooled_webhooks_parked) = sqlx::query_as(
            "select count(*) filter (where parked_at is null), count(*) filter (where parked_at is not null)
             from webhook_spool",
        )
        .fetch_one(&db)
        .await?;
        if findings.clean() || drain_started.elapsed() >= plan.drain_within {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();

    // The event stream, as a subscriber that de-duplicates on event id holds it.
    let channel = broker.connected().await.create_channel().await?;
    let (held, events_applied, event_duplicates) =
        ledger::drain_events(&channel, &subscriber_queue).await?;
    for item in &items {
        let from_events = held.get(&item.id.to_string()).cloned().unwrap_or_default();
        if from_events != ledger::stored(&db, item).await? {
            findings
                .items_whose_events_differ
                .push(item.plaid_item_id.clone());
        }
    }
    let dead = channel
        .queue_declare(
            topology.dead_queue().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    findings.dead_letters = dead.message_count();
    let deliveries = ledger::deliveries(&http, &sim_url).await?;

    fleet.stop_all().await;
    let _ = channel
        .queue_delete(subscriber_queue.into(), Default::default())
        .await;
    subscriber_stop.cancel();
    db.close().await;

    let faults: BTreeMap<String, u32> = injected
        .iter()
        .map(|(fault, n): (&Fault, &u32)| (fault.name().to_owned(), *n))
        .collect();
    let passed = findings.clean() && deliveries.answered_200 == deliveries.webhooks;
    let summary = Summary {
        seed: plan.seed,
        items: items.len(),
        traffic_secs,
        advances: driven.advances,
        logins_broken: driven.logins_broken,
        repairs: driven.repairs,
        broken_at_end: driven.broken.len(),
        faults_total: faults.values().sum(),
        faults,
        deliveries,
        events_applied,
        event_duplicates_absorbed: event_duplicates,
        drain_secs,
        findings,
        passed,
    };
    std::fs::write(
        plan.dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    Ok(summary)
}
