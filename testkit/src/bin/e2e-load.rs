//! `e2e-load`: the end-to-end benchmark's generator and subscriber, run by `scripts/bench-e2e`
//! beside `plaidhook sim`, `plaidhook serve` and `plaidhook worker` processes.
//!
//! `e2e-load <api> <api-token> <sim> <namespace> <items> <rate> <seconds> <isolated>`:
//! 1. binds a queue of its own to the namespace's `plaid.events` for `transactions.synced`, as
//!    a downstream subscriber would;
//! 2. links `items` Items through plaidhook's API (Link token, Link at the simulator, token
//!    exchange) and waits for each one's first `transactions.synced`;
//! 3. the floor: `isolated` changes one at a time (each waits for its event before the next),
//!    on random Items, with nothing else going on;
//! 4. the load: an open loop of `rate` changes a second for `seconds`, each on a random Item,
//!    sent at its scheduled time whatever the answers do;
//! 5. waits until every change has been seen in an event (or a minute of silence).
//!
//! A change is one new transaction at the simulator (`POST /sim/items/{id}/transactions`,
//! which answers its id); the simulator then sends its DEFAULT_UPDATE and SYNC_UPDATES_AVAILABLE
//! webhooks to plaidhook. A change's latency runs from the moment its request left here (the
//! change exists at the simulator a fraction of a millisecond later) to the moment this
//! subscriber received the `transactions.synced` event whose `added` carries its id. Prints one
//! JSON line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// Changes whose event has not come yet, and events that came before their change's answer.
#[derive(Default)]
struct Ledger {
    pending: HashMap<String, Instant>,
    early: HashMap<String, Instant>,
    /// Each seen change: when its request left, and how long its event took.
    latencies: Vec<(Instant, Duration)>,
    /// Plaid Item ids that have had a `transactions.synced`.
    synced_items: std::collections::HashSet<String>,
    events: u64,
}

impl Ledger {
    fn sent(&mut self, transaction_id: String, at: Instant) {
        match self.early.remove(&transaction_id) {
            Some(seen) => self
                .latencies
                .push((at, seen.saturating_duration_since(at))),
            None => {
                self.pending.insert(transaction_id, at);
            }
        }
    }

    fn seen(&mut self, transaction_id: &str, at: Instant) {
        match self.pending.remove(transaction_id) {
            Some(sent) => self
                .latencies
                .push((sent, at.saturating_duration_since(sent))),
            None => {
                self.early.insert(transaction_id.to_owned(), at);
            }
        }
    }
}

struct Bench {
    http: reqwest::Client,
    api: String,
    token: String,
    sim: String,
    ledger: Arc<Mutex<Ledger>>,
    progress: Arc<Notify>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [api, token, sim, namespace, items, rate, seconds, isolated] = &args[..] else {
        anyhow::bail!(
            "usage: e2e-load <api> <api-token> <sim> <namespace> <items> <rate> <seconds> <isolated>"
        );
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bench = Bench {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
        api: api.clone(),
        token: token.clone(),
        sim: sim.clone(),
        ledger: Arc::default(),
        progress: Arc::new(Notify::new()),
    };
    runtime.block_on(bench.run(
        namespace,
        items.parse()?,
        rate.parse()?,
        seconds.parse()?,
        isolated.parse()?,
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0)
}

fn summary(mut latencies: Vec<Duration>) -> Value {
    latencies.sort();
    json!({
        "count": latencies.len(),
        "p50_ms": percentile(&latencies, 50.0),
        "p90_ms": percentile(&latencies, 90.0),
        "p99_ms": percentile(&latencies, 99.0),
        "max_ms": latencies.last().map(|d| d.as_secs_f64() * 1000.0),
    })
}

/// The width of the load's windows in the summary.
const LOAD_WINDOW: Duration = Duration::from_secs(10);

/// The load's latencies by when their change was sent, `width` at a time: a steady state has
/// windows alike, a backlog has them growing.
fn windows(latencies: &[(Instant, Duration)], started: Instant, width: Duration) -> Value {
    let mut by_window: Vec<Vec<Duration>> = Vec::new();
    for (sent, latency) in latencies {
        let n =
            (sent.saturating_duration_since(started).as_secs_f64() / width.as_secs_f64()) as usize;
        if by_window.len() <= n {
            by_window.resize_with(n + 1, Vec::new);
        }
        by_window[n].push(*latency);
    }
    by_window
        .into_iter()
        .enumerate()
        .map(|(n, latencies)| {
            let mut window = summary(latencies);
            window["from_seconds"] = json!(n as f64 * width.as_secs_f64());
            window
        })
        .collect()
}

impl Bench {
    async fn run(
        &self,
        namespace: &str,
        items: usize,
        rate: f64,
        seconds: f64,
        isolated: usize,
    ) -> anyhow::Result<()> {
        self.subscribe(namespace).await?;
        let started = Instant::now();
        let plaid_ids = self.link_all(items).await?;
        let linked_in = started.elapsed();
        self.wait_until(Duration::from_secs(600), |l| {
            l.synced_items.len() >= plaid_ids.len()
        })
        .await
        .context("every Item's first sync")?;
        let first_syncs_in = started.elapsed();

        // The floor: one change at a time.
        let mut floor = Vec::with_capacity(isolated);
        for n in 0..isolated {
            let item = &plaid_ids[fastrand(n as u64) as usize % plaid_ids.len()];
            let before = self.ledger.lock().unwrap().latencies.len();
            self.change(item).await?;
            self.wait_until(Duration::from_secs(60), |l| l.latencies.len() > before)
                .await
                .context("an isolated change's event")?;
            floor.push(self.ledger.lock().unwrap().latencies.last().unwrap().1);
        }
        self.ledger.lock().unwrap().latencies.clear();

        // The load: open loop.
        let total = (rate * seconds).round() as usize;
        let interval = Duration::from_secs_f64(1.0 / rate);
        let load_started = tokio::time::Instant::now();
        let load_started_std = load_started.into_std();
        let mut sends = Vec::with_capacity(total);
        let failures = Arc::new(Mutex::new(0u64));
        let mut late = Duration::ZERO;
        for n in 0..total {
            let scheduled = load_started + interval * n as u32;
            tokio::time::sleep_until(scheduled).await;
            late = late.max(tokio::time::Instant::now() - scheduled);
            let item = plaid_ids[fastrand(1_000_000 + n as u64) as usize % plaid_ids.len()].clone();
            let (http, sim, ledger, failures) = (
                self.http.clone(),
                self.sim.clone(),
                self.ledger.clone(),
                failures.clone(),
            );
            sends.push(tokio::spawn(async move {
                if change(&http, &sim, &ledger, &item).await.is_err() {
                    *failures.lock().unwrap() += 1;
                }
            }));
        }
        let sent_in = load_started.elapsed();
        for send in sends {
            let _ = send.await;
        }
        // Until every change is seen, or a minute passes without progress.
        loop {
            let before = self.ledger.lock().unwrap().latencies.len();
            if self.ledger.lock().unwrap().pending.is_empty() {
                break;
            }
            let progressed = self
                .wait_until(Duration::from_secs(60), |l| {
                    l.latencies.len() > before || l.pending.is_empty()
                })
                .await;
            if progressed.is_err() {
                break;
            }
        }
        let drained_in = load_started.elapsed();
        let ledger = self.ledger.lock().unwrap();
        let failed = *failures.lock().unwrap();
        let result = json!({
            "items": plaid_ids.len(),
            "linked_seconds": linked_in.as_secs_f64(),
            "first_syncs_seconds": first_syncs_in.as_secs_f64(),
            "offered_rate": rate,
            "seconds": seconds,
            "changes": total,
            "failed_changes": failed,
            "achieved_rate": (total as u64 - failed) as f64 / sent_in.as_secs_f64(),
            "generator_max_late_ms": late.as_secs_f64() * 1000.0,
            "unseen_changes": ledger.pending.len(),
            "events": ledger.events,
            "load_to_last_event_seconds": drained_in.as_secs_f64(),
            "floor": summary(floor),
            "load": summary(ledger.latencies.iter().map(|(_, latency)| *latency).collect()),
            "load_windows": windows(&ledger.latencies, load_started_std, LOAD_WINDOW),
        });
        println!("{result}");
        Ok(())
    }

    /// A queue of our own on `plaid.events`, consumed into the ledger.
    async fn subscribe(&self, namespace: &str) -> anyhow::Result<()> {
        let topology = plaidhook::broker::Topology::new(namespace, 10);
        let channel = testkit::broker::amqp_channel().await?;
        let queue = format!("{namespace}.bench-e2e-subscriber");
        channel
            .queue_declare(
                queue.clone().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                queue.clone().into(),
                topology.events_exchange().into(),
                "transactions.synced".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                "bench-e2e".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let (ledger, progress) = (self.ledger.clone(), self.progress.clone());
        tokio::spawn(async move {
            // The channel lives as long as its consumer.
            let _channel = channel;
            while let Some(Ok(delivery)) = consumer.next().await {
                let at = Instant::now();
                let Ok(event) = serde_json::from_slice::<Value>(&delivery.data) else {
                    continue;
                };
                let data = &event["data"];
                let mut ledger = ledger.lock().unwrap();
                ledger.events += 1;
                if let Some(item) = data["plaid_item_id"].as_str() {
                    ledger.synced_items.insert(item.to_owned());
                }
                for added in data["added"].as_array().into_iter().flatten() {
                    if let Some(id) = added["transaction_id"].as_str() {
                        ledger.seen(id, at);
                    }
                }
                drop(ledger);
                progress.notify_waiters();
            }
        });
        Ok(())
    }

    /// Waits until `done` holds, for at most `within`.
    async fn wait_until(
        &self,
        within: Duration,
        done: impl Fn(&Ledger) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.progress.notified();
            if done(&self.ledger.lock().unwrap()) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("not done within {within:?}");
            }
            // Woken by the subscriber, with a poll in case a wake-up fell between look and wait.
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    async fn change(&self, plaid_item_id: &str) -> anyhow::Result<()> {
        change(&self.http, &self.sim, &self.ledger, plaid_item_id).await
    }

    async fn link_all(&self, items: usize) -> anyhow::Result<Vec<String>> {
        let ids = futures::stream::iter(0..items)
            .map(|n| self.link(n))
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        ids.into_iter().collect()
    }

    /// Link as an app does: a Link token from plaidhook, Link at the simulator, the public
    /// token exchanged by plaidhook (which syncs the Item). Returns Plaid's Item id.
    async fn link(&self, n: usize) -> anyhow::Result<String> {
        let user = format!("bench-user-{n}");
        let token = self
            .post(
                &format!("{}/api/v1/link/token", self.api),
                json!({ "client_user_id": user }),
                true,
            )
            .await?;
        let link_token = token["link_token"].as_str().context("a link_token")?;
        let linked = self
            .post(
                &format!("{}/sim/link/complete", self.sim),
                json!({ "link_token": link_token }),
                false,
            )
            .await?;
        let public_token = linked["public_token"].as_str().context("a public_token")?;
        let exchanged = self
            .post(
                &format!("{}/api/v1/link/exchange", self.api),
                json!({ "public_token": public_token, "client_user_id": user }),
                true,
            )
            .await?;
        Ok(exchanged["plaid_item_id"]
            .as_str()
            .context("a plaid_item_id")?
            .to_owned())
    }

    async fn post(&self, url: &str, body: Value, auth: bool) -> anyhow::Result<Value> {
        let mut request = self.http.post(url).json(&body);
        if auth {
            request = request.bearer_auth(&self.token);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "POST {url} answered {status}: {body}");
        Ok(body)
    }
}

/// One change: a new transaction on the Item, its id entered in the ledger with the moment the
/// request left.
async fn change(
    http: &reqwest::Client,
    sim: &str,
    ledger: &Mutex<Ledger>,
    plaid_item_id: &str,
) -> anyhow::Result<()> {
    let at = Instant::now();
    let response = http
        .post(format!("{sim}/sim/items/{plaid_item_id}/transactions"))
        .send()
        .await?
        .error_for_status()?;
    let body: Value = response.json().await?;
    let id = body["transaction_id"]
        .as_str()
        .context("a transaction_id")?
        .to_owned();
    ledger.lock().unwrap().sent(id, at);
    Ok(())
}

/// A deterministic spread of Item choices (splitmix64), so runs pick the same Items.
fn fastrand(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce5_e9b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
