//! The ledger a chaos run ends with: what was sent, what was accepted, what reached its
//! consumers, and whether the database, the alerts and the event stream agree with Plaid.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use plaidhook::plaid::Transaction;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

use super::traffic::Item;

/// Per-Item disagreements; empty when the run lost and duplicated nothing.
#[derive(Debug, Default, Serialize)]
pub struct Findings {
    /// Healthy Items whose transactions differ from Plaid's ground truth.
    pub items_not_equal_to_plaid: Vec<String>,
    /// Items whose status or open alerts do not match their login (broken or healthy).
    pub items_with_wrong_status_or_alerts: Vec<String>,
    /// Items whose transactions rebuilt from the event stream differ from the database.
    pub items_whose_events_differ: Vec<String>,
    pub spooled_webhooks_left: i64,
    pub spooled_webhooks_parked: i64,
    /// Messages parked in plaidhook.dead, with their reasons.
    pub dead_letters: u32,
}

impl Findings {
    pub fn clean(&self) -> bool {
        self.items_not_equal_to_plaid.is_empty()
            && self.items_with_wrong_status_or_alerts.is_empty()
            && self.items_whose_events_differ.is_empty()
            && self.spooled_webhooks_left == 0
            && self.spooled_webhooks_parked == 0
    }
}

/// The simulator's delivery log, summed up.
#[derive(Debug, Default, Serialize)]
pub struct Deliveries {
    /// Distinct webhooks Plaid (the simulator) sent.
    pub webhooks: usize,
    /// Of those, answered 200 at least once.
    pub answered_200: usize,
    /// Delivery attempts, duplicates and redeliveries included.
    pub attempts: usize,
    /// Attempts answered anything but 200 (or not answered): Plaid retries them.
    pub attempts_refused: usize,
    /// Extra copies sent (Plaid's duplicates), each absorbed by plaidhook.
    pub duplicate_copies: usize,
}

pub async fn deliveries(http: &reqwest::Client, sim_url: &str) -> anyhow::Result<Deliveries> {
    let log: Value = http
        .get(format!("{sim_url}/sim/webhooks"))
        .send()
        .await?
        .json()
        .await?;
    let records = log["deliveries"]
        .as_array()
        .or_else(|| log.as_array())
        .cloned()
        .unwrap_or_default();
    let mut sent = BTreeSet::new();
    let mut answered = BTreeSet::new();
    let mut summary = Deliveries {
        attempts: records.len(),
        ..Deliveries::default()
    };
    for record in &records {
        let id = record["webhook_id"].as_u64().unwrap_or_default();
        sent.insert(id);
        if record["status"] == 200 {
            answered.insert(id);
        } else {
            summary.attempts_refused += 1;
        }
        if record["copy"].as_u64().unwrap_or_default() > 0 && record["attempt"] == 1 {
            summary.duplicate_copies += 1;
        }
    }
    summary.webhooks = sent.len();
    summary.answered_200 = answered.len();
    Ok(summary)
}

/// The Item's transactions in PostgreSQL, by id.
pub async fn stored(db: &PgPool, item: &Item) -> anyhow::Result<BTreeMap<String, Transaction>> {
    let rows: Vec<(String, Value)> =
        sqlx::query_as("select transaction_id, raw from transactions where item_id = $1")
            .bind(item.id)
            .fetch_all(db)
            .await?;
    rows.into_iter()
        .map(|(id, raw)| Ok((id, serde_json::from_value(raw)?)))
        .collect()
}

/// Plaid's (the simulator's) transactions of the Item, by id.
pub async fn truth(
    http: &reqwest::Client,
    sim_url: &str,
    item: &Item,
) -> anyhow::Result<BTreeMap<String, Transaction>> {
    let truth: Value = http
        .get(format!(
            "{sim_url}/sim/items/{}/transactions",
            item.plaid_item_id
        ))
        .send()
        .await?
        .json()
        .await?;
    let transactions: Vec<Transaction> = serde_json::from_value(truth["transactions"].clone())?;
    Ok(transactions
        .into_iter()
        .map(|t| (t.transaction_id.as_str().to_owned(), t))
        .collect())
}

/// Whether the Item's status and open alerts match its login: broken Items are
/// `login_required` with exactly one open alert, healthy ones `active` with none.
pub async fn status_matches(db: &PgPool, item: &Item, broken: bool) -> anyhow::Result<bool> {
    let (status, open): (String, i64) = sqlx::query_as(
        "select i.status, (select count(*) from alerts a where a.item_id = i.id and a.resolved_at is null)
         from items i where i.id = $1",
    )
    .bind(item.id)
    .fetch_one(db)
    .await?;
    Ok(if broken {
        status == "login_required" && open == 1
    } else {
        status == "active" && open == 0
    })
}

/// Everything left in the subscriber's queue, applied per Item in order, each event once
/// (by its id): the transactions a subscriber of `plaid.events` holds. Also returns how many
/// deliveries were duplicates of an event already applied.
pub async fn drain_events(
    channel: &lapin::Channel,
    queue: &str,
) -> anyhow::Result<(BTreeMap<String, BTreeMap<String, Transaction>>, u64, u64)> {
    let mut seen = BTreeSet::new();
    let mut held: BTreeMap<String, BTreeMap<String, Transaction>> = BTreeMap::new();
    let (mut events, mut duplicates) = (0, 0);
    // Consumed with automatic acks and a large prefetch: one message per round trip (a get
    // and an ack, each through the quorum queue's log) would take minutes for a long run.
    channel.basic_qos(1_000, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "plaidhook-chaos-ledger".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    // Everything was published before the drain ended: a quiet second means the queue is empty.
    while let Ok(Some(delivery)) =
        tokio::time::timeout(std::time::Duration::from_secs(2), consumer.next()).await
    {
        let delivery = delivery?;
        let event: Value = serde_json::from_slice(&delivery.data)?;
        if !seen.insert(event["id"].as_str().unwrap_or_default().to_owned()) {
            duplicates += 1;
            continue;
        }
        events += 1;
        if event["type"] != "transactions.synced" {
            continue;
        }
        let item = event["item_id"].as_str().unwrap_or_default().to_owned();
        let store = held.entry(item).or_default();
        let data = &event["data"];
        for list in ["added", "modified"] {
            for value in data[list].as_array().into_iter().flatten() {
                let transaction: Transaction = serde_json::from_value(value.clone())?;
                store.insert(transaction.transaction_id.as_str().to_owned(), transaction);
            }
        }
        for removed in data["removed"].as_array().into_iter().flatten() {
            store.remove(removed["transaction_id"].as_str().unwrap_or_default());
        }
    }
    Ok((held, events, duplicates))
}
