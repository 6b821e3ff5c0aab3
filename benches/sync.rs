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
//!    rolling minute, with plaidhook's limiter set to the same. The figure is the drain time
//!    (burst published to the last commit) as a ratio to the minimum the limit allows given the
//!    first window's own pace (the formula is in `drain`), and the number of 429s (must be 0);
//!    also the ratio to whole windows alone. The limit is scaled down from Plaid's 2,500 so the
//!    run takes about a minute rather than needing 5,000+ Items; Plaid's own window (60 s) is
//!    kept. `BENCH_TRANSACTIONS=0` runs the drain alone; the summary goes to
//!    `target/bench-drain.json`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
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
    let transactions = env_or("BENCH_TRANSACTIONS", 50_000) as usize;
    if transactions > 0 {
        upsert_rate(transactions).await?;
    }
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
    let window = Duration::from_secs(60);
    let world = World::new(plaidhook::sim::SimConfig {
        sync_limit_per_client_per_minute: Some(client_limit),
        rate_limit_window_ms: window.as_millis() as u64,
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
                ("PLAIDHOOK__SYNC__LIMIT_WINDOW_SECS", "60"),
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
    // Every time is read on the database's clock, the one the limiter decides on.
    let started: DateTime<Utc> = sqlx::query_scalar("select clock_timestamp()")
        .fetch_one(&world.db)
        .await?;
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
    anyhow::ensure!(done, "the burst did not drain");
    let finished: DateTime<Utc> =
        sqlx::query_scalar("select max(finished_at) from sync_runs where outcome = 'succeeded'")
            .fetch_one(&world.db)
            .await?;
    // When each call left: recorded on its return, less its duration.
    let sent: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "select created_at - make_interval(secs => duration_ms / 1000.0) as sent
           from plaid_api_calls where method = '/transactions/sync' order by sent",
    )
    .fetch_all(&world.db)
    .await?;
    let limited = world.rate_limited_calls().await;
    let calls = sent.len();
    let seconds = |at: DateTime<Utc>| (at - started).num_microseconds().unwrap_or(0) as f64 / 1e6;
    let drained = seconds(finished);
    // The limit's minimum: with L calls allowed in any window W, call k + L cannot arrive
    // before call k arrived plus W. The last of N calls therefore arrives no sooner than
    // W·j after call N − j·L, j = ⌊(N − 1)/L⌋, which lies in the first window, whose pace is
    // the service's own (nothing waits there). Call N − j·L arrived after it left (t_sent), so
    //     minimum = t_sent(N − j·L) + j·W,   both from the burst's start.
    // Without the first window's pace: j·W (the floor the figure used to be given against).
    let limit = client_limit as usize;
    let j = calls.saturating_sub(1) / limit.max(1);
    let pace = sent
        .get(calls.saturating_sub(1 + j * limit))
        .map_or(0.0, |at| seconds(*at));
    let floor = j as f64 * window.as_secs_f64();
    let minimum = pace + floor;
    let first_window = sent
        .get(limit.min(calls).saturating_sub(1))
        .map_or(0.0, |at| seconds(*at));
    println!(
        "burst of {items} Items against {client_limit} /transactions/sync calls per client per minute (window {} s):",
        window.as_secs()
    );
    println!(
        "  {calls} calls, drained in {drained:.2} s; 429s: {limited}; first window's {} calls sent within {first_window:.2} s",
        limit.min(calls)
    );
    println!(
        "  minimum the limit allows t_sent(N - j*L) + j*W = {pace:.2} + {floor:.0} = {minimum:.2} s -> drain/minimum {:.4}",
        drained / minimum.max(f64::EPSILON)
    );
    println!(
        "  against j*W alone ({floor:.0} s): {:.4}",
        drained / floor.max(1.0)
    );
    let summary = serde_json::json!({
        "items": items,
        "client_limit": client_limit,
        "window_seconds": window.as_secs(),
        "calls": calls,
        "rate_limited_calls": limited,
        "drained_seconds": drained,
        "first_window_seconds": first_window,
        "minimum_seconds": minimum,
        "drain_over_minimum": drained / minimum.max(f64::EPSILON),
        "drain_over_windows": drained / floor.max(1.0),
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-drain.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&summary)?)?;
    println!("  summary: {}", out.display());
    node.stop().await?;
    world.finish().await;
    Ok(())
}
