//! Sync benchmark, against the real PostgreSQL and RabbitMQ and the in-process simulator.
//!
//! `cargo bench --bench sync` (release build). Two figures:
//! 1. Upsert rate and memory: one Item of BENCH_TRANSACTIONS (default 200,000) transactions,
//!    synced from scratch by `plaidhook worker` in its own process (pages of BENCH_PAGE_SIZE,
//!    default 500), with the simulator at zero latency and no rate limits (Plaid's 50 calls per
//!    Item per minute would otherwise make a 400-page sync wait minutes). Reported: the write
//!    transaction's rows per second (run duration minus the fetch phase, from `sync_runs`), the
//!    time staging pages took during the fetch, and, as the floor in the same run and database,
//!    a bare `UNNEST` upsert of the same rows into a scratch table shaped like `transactions`;
//!    the ratios of the two; and the worker process's peak RSS (VmHWM). The database is
//!    compared with the ground truth afterwards.
//! 2. Drain: BENCH_ITEMS (default 2,000) Items asked to sync at once, against the simulator's
//!    `/transactions/sync` limit of BENCH_CLIENT_LIMIT (default 1,000) calls per client per
//!    rolling minute, with plaidhook's limiter set to the same. The figure is the drain time
//!    (burst published to the last commit) as a ratio to the minimum the limit allows given the
//!    first window's own pace (the formula is in `drain`), and the number of 429s (must be 0);
//!    also the ratio to whole windows alone. The limit is scaled down from Plaid's 2,500 so the
//!    run takes about a minute rather than needing 5,000+ Items; Plaid's own window (60 s) is
//!    kept. `BENCH_TRANSACTIONS=0` runs the drain alone; the summary goes to
//!    `target/bench-drain.json`.
//!
//! `BENCH_PLAIDHOOK=path/to/plaidhook` runs another build as the worker of the initial sync (with
//! `PLAIDHOOK__DATABASE__MIGRATE_ON_START=false` when it predates a migration), for a
//! before/after in the same run.

use std::process::{Command, Stdio};
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
    let transactions = env_or("BENCH_TRANSACTIONS", 200_000) as usize;
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

/// `/proc/<pid>/status` field `name` (VmHWM: peak resident set; VmRSS: now), in KiB.
fn proc_status_kib(pid: u32, name: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/{pid}/status"))
}

/// A row of `transactions` as the floor's upsert sends it.
#[derive(sqlx::FromRow)]
struct Row {
    transaction_id: String,
    account_id: String,
    amount: rust_decimal::Decimal,
    iso_currency_code: Option<String>,
    unofficial_currency_code: Option<String>,
    date: chrono::NaiveDate,
    authorized_date: Option<chrono::NaiveDate>,
    datetime: Option<chrono::DateTime<chrono::Utc>>,
    authorized_datetime: Option<chrono::DateTime<chrono::Utc>>,
    name: Option<String>,
    merchant_name: Option<String>,
    merchant_entity_id: Option<String>,
    payment_channel: Option<String>,
    category_primary: Option<String>,
    category_detailed: Option<String>,
    pending: bool,
    pending_transaction_id: Option<String>,
    raw: String,
}

/// Leaves the database no work of the sync's to do while the floor runs: the run's 200,000
/// staged rows were deleted after its commit and the new rows inserted, which sets autovacuum
/// (and a checkpoint, after that much WAL) going at a moment of their own choosing, and the
/// floor varied by a third from run to run with them. A manual vacuum cancels and replaces an
/// autovacuum of the same table; the checkpoint flushes what the sync dirtied. This can only
/// favour the floor, so the ratio errs low.
async fn quiesce(db: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::query("vacuum (analyze) sync_staging, transactions")
        .execute(db)
        .await?;
    sqlx::query("checkpoint").execute(db).await?;
    Ok(())
}

/// The floor: a bare `UNNEST` upsert of the Item's rows (every column, `raw` as JSON text parsed
/// into jsonb) into a scratch table shaped like `transactions` (same columns, constraints and
/// indexes), in batches of 5,000, one transaction, same database. Returns the time it took.
async fn bare_upsert(db: &sqlx::PgPool, item_id: uuid::Uuid) -> anyhow::Result<(usize, Duration)> {
    sqlx::query(
        "create table bench_unnest (like transactions including defaults including constraints
                                    including indexes)",
    )
    .execute(db)
    .await?;
    let rows: Vec<Row> = sqlx::query_as(
        "select transaction_id, account_id, amount, iso_currency_code, unofficial_currency_code,
                date, authorized_date, datetime, authorized_datetime, name, merchant_name,
                merchant_entity_id, payment_channel, category_primary, category_detailed, pending,
                pending_transaction_id, raw::text as raw
         from transactions where item_id = $1",
    )
    .bind(item_id)
    .fetch_all(db)
    .await?;
    let started = Instant::now();
    let mut tx = db.begin().await?;
    for batch in rows.chunks(5_000) {
        macro_rules! column {
            ($field:ident) => {
                batch.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
            };
        }
        sqlx::query(
            "insert into bench_unnest (transaction_id, item_id, account_id, amount,
                    iso_currency_code, unofficial_currency_code, date, authorized_date, datetime,
                    authorized_datetime, name, merchant_name, merchant_entity_id, payment_channel,
                    category_primary, category_detailed, pending, pending_transaction_id, raw)
             select t.transaction_id, $1, t.account_id, t.amount, t.iso_currency_code,
                    t.unofficial_currency_code, t.date, t.authorized_date, t.datetime,
                    t.authorized_datetime, t.name, t.merchant_name, t.merchant_entity_id,
                    t.payment_channel, t.category_primary, t.category_detailed, t.pending,
                    t.pending_transaction_id, t.raw::jsonb
             from unnest($2::text[], $3::text[], $4::numeric[], $5::text[], $6::text[],
                         $7::date[], $8::date[], $9::timestamptz[], $10::timestamptz[],
                         $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                         $16::text[], $17::bool[], $18::text[], $19::text[])
                  as t(transaction_id, account_id, amount, iso_currency_code,
                       unofficial_currency_code, date, authorized_date, datetime,
                       authorized_datetime, name, merchant_name, merchant_entity_id,
                       payment_channel, category_primary, category_detailed, pending,
                       pending_transaction_id, raw)
             on conflict (transaction_id) do update set
                  account_id = excluded.account_id, amount = excluded.amount,
                  iso_currency_code = excluded.iso_currency_code,
                  unofficial_currency_code = excluded.unofficial_currency_code,
                  date = excluded.date, authorized_date = excluded.authorized_date,
                  datetime = excluded.datetime, authorized_datetime = excluded.authorized_datetime,
                  name = excluded.name, merchant_name = excluded.merchant_name,
                  merchant_entity_id = excluded.merchant_entity_id,
                  payment_channel = excluded.payment_channel,
                  category_primary = excluded.category_primary,
                  category_detailed = excluded.category_detailed, pending = excluded.pending,
                  pending_transaction_id = excluded.pending_transaction_id, raw = excluded.raw",
        )
        .bind(item_id)
        .bind(column!(transaction_id))
        .bind(column!(account_id))
        .bind(column!(amount))
        .bind(column!(iso_currency_code))
        .bind(column!(unofficial_currency_code))
        .bind(column!(date))
        .bind(column!(authorized_date))
        .bind(column!(datetime))
        .bind(column!(authorized_datetime))
        .bind(column!(name))
        .bind(column!(merchant_name))
        .bind(column!(merchant_entity_id))
        .bind(column!(payment_channel))
        .bind(column!(category_primary))
        .bind(column!(category_detailed))
        .bind(column!(pending))
        .bind(column!(pending_transaction_id))
        .bind(column!(raw))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let took = started.elapsed();
    sqlx::query("drop table bench_unnest").execute(db).await?;
    Ok((rows.len(), took))
}

/// Figure 1: one initial sync of `transactions`, the worker in its own process.
async fn upsert_rate(transactions: usize) -> anyhow::Result<()> {
    let world = World::new(plaidhook::sim::SimConfig {
        sync_limit_per_item_per_minute: Some(0),
        sync_limit_per_client_per_minute: Some(0),
        latency_ms: 0,
        ..sim_config()
    })
    .await;
    // Publishes the sync request; the sync itself runs in the worker process.
    let serve = world.node(Role::Serve, &[]).await;
    let item = world.link(None, transactions).await;
    let page_size = std::env::var("BENCH_PAGE_SIZE").unwrap_or_else(|_| "500".into());
    // BENCH_PLAIDHOOK: another build's binary (before/after in the same run and database).
    let binary =
        std::env::var("BENCH_PLAIDHOOK").unwrap_or_else(|_| env!("CARGO_BIN_EXE_plaidhook").into());
    let mut worker = Command::new(binary)
        .arg("worker")
        .env("PLAIDHOOK_ENVIRONMENT", "test")
        .envs(world.env())
        .envs([
            ("PLAIDHOOK__SYNC__ITEM_LIMIT_PER_WINDOW", "0"),
            ("PLAIDHOOK__SYNC__CLIENT_LIMIT_PER_WINDOW", "0"),
            ("PLAIDHOOK__SYNC__PAGE_SIZE", page_size.as_str()),
            ("PLAIDHOOK__SYNC__MAX_PAGES", "100000"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = worker.id();
    let consuming = world
        .eventually(Duration::from_secs(60), || async {
            world.queue_depth("plaidhook.sync").await.1 == 1
        })
        .await;
    anyhow::ensure!(consuming, "the worker process does not consume");
    let idle_kib = proc_status_kib(pid, "VmHWM")?;
    // The floor starts from a checkpoint too (`quiesce`): neither inherits the other's WAL.
    sqlx::query("checkpoint").execute(&world.db).await?;
    let started = Instant::now();
    serve
        .request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    let runs = world
        .wait_finished_runs(&item, 1, Duration::from_secs(1800))
        .await;
    let wall = started.elapsed();
    let peak_kib = proc_status_kib(pid, "VmHWM")?;
    worker.kill()?;
    worker.wait()?;
    let run = runs.first().expect("the sync finished");
    anyhow::ensure!(run.outcome == "succeeded", "sync failed: {run:?}");
    // As JSON, so the bench reads a sync_runs row with or without `staging_ms`.
    let (row,): (serde_json::Value,) =
        sqlx::query_as("select to_jsonb(r) from sync_runs r where item_id = $1")
            .bind(item.id)
            .fetch_one(&world.db)
            .await?;
    let ms = |key: &str| Duration::from_millis(row[key].as_u64().unwrap_or(0));
    let (fetch, staging) = (ms("fetch_ms"), ms("staging_ms"));
    let duration = (run.finished_at.unwrap() - run.started_at).to_std()?;
    let write = duration.saturating_sub(fetch);
    anyhow::ensure!(
        world.in_step(&item).await,
        "database differs from the ground truth"
    );
    let (events, event_bytes): (i64, i64) = sqlx::query_as(
        "select count(*), coalesce(sum(pg_column_size(payload)), 0)::bigint from outbox
         where routing_key = 'transactions.synced'",
    )
    .fetch_one(&world.db)
    .await?;
    quiesce(&world.db).await?;
    let (rows, floor) = bare_upsert(&world.db, item.id).await?;
    anyhow::ensure!(rows == transactions, "{rows} rows read back");

    let rate = |d: Duration| transactions as f64 / d.as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "initial sync of {transactions} transactions ({} pages of {page_size}), worker process, simulator at zero latency, {cores} cores:",
        run.pages
    );
    println!(
        "  fetch {:.2} s (of which staging pages {:.2} s); write transaction {:.2} s → {:.0} rows/s ({events} events, {:.0} MB stored)",
        fetch.as_secs_f64(),
        staging.as_secs_f64(),
        write.as_secs_f64(),
        rate(write),
        event_bytes as f64 / 1e6
    );
    println!(
        "  floor: bare UNNEST upsert of the same {rows} rows (raw jsonb, same indexes) {:.2} s → {:.0} rows/s",
        floor.as_secs_f64(),
        rate(floor)
    );
    println!(
        "  ratio write transaction / floor: {:.2}; write transaction + staging / floor: {:.2}",
        rate(write) / rate(floor),
        rate(write + staging) / rate(floor)
    );
    println!(
        "  whole run {:.2} s → {:.0} rows/s end to end; request to commit {:.2} s",
        duration.as_secs_f64(),
        rate(duration),
        wall.as_secs_f64()
    );
    println!(
        "  worker peak RSS (VmHWM) {:.1} MiB; idle before the sync {:.1} MiB; growth {:.1} MiB",
        peak_kib as f64 / 1024.0,
        idle_kib as f64 / 1024.0,
        (peak_kib.saturating_sub(idle_kib)) as f64 / 1024.0
    );
    let summary = serde_json::json!({
        "transactions": transactions, "pages": run.pages, "page_size": page_size, "cores": cores,
        "fetch_s": fetch.as_secs_f64(), "staging_s": staging.as_secs_f64(),
        "write_s": write.as_secs_f64(), "floor_s": floor.as_secs_f64(),
        "write_rows_per_s": rate(write), "floor_rows_per_s": rate(floor),
        "ratio_write_to_floor": rate(write) / rate(floor),
        "ratio_write_and_staging_to_floor": rate(write + staging) / rate(floor),
        "run_s": duration.as_secs_f64(), "events": events,
        "worker_vm_hwm_kib": peak_kib, "worker_idle_vm_hwm_kib": idle_kib,
    });
    println!("summary: {summary}");
    serve.stop().await?;
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
