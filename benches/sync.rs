//! Sync benchmark, against the real PostgreSQL and RabbitMQ and the in-process simulator.
//!
//! `cargo bench --bench sync` (release build). Two figures:
//! 1. Upsert rate: one Item of BENCH_TRANSACTIONS (default 50,000) transactions, synced from
//!    scratch with the simulator at zero latency and no rate limits (Plaid's 50 calls per Item
//!    per minute would otherwise make a 100-page sync wait a minute). Reported: the write
//!    transaction's rows per second (run duration minus the fetch phase, from `sync_runs`), and
//!    end to end. The database is compared with the ground truth afterwards.
//! 2. Drain: BENCH_ITEMS (default 2,000) Items asked to sync at once, against the simulator's
//!    `/transactions/sync` limit of BENCH_CLIENT_LIMIT (default 1,000) calls per client per
//!    rolling minute, with plaidhook's limiter set to the same. 2,000 single-page Items at
//!    1,000 a minute cannot finish in less than one window (60 s), the minimum the limit
//!    allows; the figure is the measured drain time as a ratio to it, and the number of 429s
//!    (must be 0). The limit is scaled down from Plaid's 2,500 so the run takes about a minute
//!    rather than needing 5,000+ Items; Plaid's own window (60 s) is kept.

use std::time::{Duration, Instant};

use plaidhook::app::Role;
use plaidhook::messages::SyncTrigger;
use testkit::world::{sim_config, World};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    upsert_rate(env_or("BENCH_TRANSACTIONS", 50_000) as usize).await?;
    drain(
        env_or("BENCH_ITEMS", 2_000) as usize,
        env_or("BENCH_CLIENT_LIMIT", 1_000) as u32,
    )
    .await?;
    Ok(())
}

async fn upsert_rate(transactions: usize) -> anyhow::Result<()> {
    let world = World::new(plaidhook::sim::SimConfig {
        sync_limit_per_item_per_minute: Some(0),
        sync_limit_per_client_per_minute: Some(0),
        latency_ms: 0,
        ..sim_config()
    })
    .await;
    let node = world
        .node(
            Role::Worker,
            &[
                ("PLAIDHOOK__SYNC__ITEM_LIMIT_PER_WINDOW", "0"),
                ("PLAIDHOOK__SYNC__CLIENT_LIMIT_PER_WINDOW", "0"),
            ],
        )
        .await;
    let item = world.link(None, transactions).await;
    let started = Instant::now();
    node.request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    let runs = world
        .wait_finished_runs(&item, 1, Duration::from_secs(600))
        .await;
    let wall = started.elapsed();
    let run = runs.first().expect("the sync finished");
    anyhow::ensure!(run.outcome == "succeeded", "sync failed: {run:?}");
    let (fetch_ms,): (Option<i32>,) =
        sqlx::query_as("select fetch_ms from sync_runs where item_id = $1")
            .bind(item.id)
            .fetch_one(&world.db)
            .await?;
    let duration = (run.finished_at.unwrap() - run.started_at).to_std()?;
    let write = duration.saturating_sub(Duration::from_millis(fetch_ms.unwrap_or(0) as u64));
    anyhow::ensure!(
        world.in_step(&item).await,
        "database differs from the ground truth"
    );
    println!(
        "initial sync of {transactions} transactions ({} pages, simulator at zero latency):",
        run.pages
    );
    println!(
        "  fetch {:.2} s, write transaction {:.2} s → {:.0} rows upserted/s in the transaction",
        fetch_ms.unwrap_or(0) as f64 / 1000.0,
        write.as_secs_f64(),
        transactions as f64 / write.as_secs_f64()
    );
    println!(
        "  whole run {:.2} s → {:.0} rows/s end to end; request to commit {:.2} s",
        duration.as_secs_f64(),
        transactions as f64 / duration.as_secs_f64(),
        wall.as_secs_f64()
    );
    node.stop().await?;
    world.finish().await;
    Ok(())
}

async fn drain(items: usize, client_limit: u32) -> anyhow::Result<()> {
    if items == 0 {
        return Ok(());
    }
    let world = World::new(plaidhook::sim::SimConfig {
        sync_limit_per_client_per_minute: Some(client_limit),
        latency_ms: 0,
        ..sim_config()
    })
    .await;
    let limit = client_limit.to_string();
    let node = world
        .node(
            Role::Worker,
            &[
                ("PLAIDHOOK__SYNC__CLIENT_LIMIT_PER_WINDOW", limit.as_str()),
                ("PLAIDHOOK__SYNC__CONCURRENCY", "16"),
                ("PLAIDHOOK__DATABASE__MAX_CONNECTIONS", "24"),
                ("PLAIDHOOK__RABBITMQ__PREFETCH", "64"),
            ],
        )
        .await;
    let mut linked = Vec::with_capacity(items);
    for _ in 0..items {
        linked.push(world.link(None, 10).await);
    }
    let started = Instant::now();
    for chunk in linked.chunks(200) {
        let requests = chunk
            .iter()
            .map(|item| node.request_sync(&item.plaid_item_id, SyncTrigger::Manual));
        futures::future::join_all(requests).await;
    }
    let done = world
        .eventually(Duration::from_secs(900), || async {
            let synced: i64 = sqlx::query_scalar(
                "select count(distinct item_id) from sync_runs where outcome = 'succeeded'",
            )
            .fetch_one(&world.db)
            .await
            .unwrap_or(0);
            synced as usize >= items
        })
        .await;
    let drained = started.elapsed();
    anyhow::ensure!(done, "the burst did not drain");
    let calls: i64 = sqlx::query_scalar(
        "select count(*) from plaid_api_calls where method = '/transactions/sync'",
    )
    .fetch_one(&world.db)
    .await?;
    let limited = world.rate_limited_calls().await;
    let window = 60.0;
    let minimum = ((calls.max(1) - 1) / i64::from(client_limit)) as f64 * window;
    println!(
        "burst of {items} Items against {client_limit} /transactions/sync calls per client per minute:"
    );
    println!(
        "  {calls} calls, drained in {:.1} s; minimum the limit allows {minimum:.0} s → ratio {:.3}; 429s: {limited}",
        drained.as_secs_f64(),
        drained.as_secs_f64() / minimum.max(1.0)
    );
    node.stop().await?;
    world.finish().await;
    Ok(())
}
