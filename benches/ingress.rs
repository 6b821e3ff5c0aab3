//! Ingress benchmark: verified + broker-confirmed webhooks per second, and latency at a fixed
//! offered rate, on this machine, against the real PostgreSQL and RabbitMQ.
//!
//! `cargo bench --bench ingress` (release build). Load generator: this program's own
//! open-loop generator (reqwest over keep-alive connections on tokio), in the same process as
//! the service, so both share the machine's cores; figures are a floor for a dedicated box.
//! Webhooks are signed before timing starts (signing is Plaid's cost, not ours). Latency is
//! measured from each request's scheduled send time, so a stall is not hidden by a generator
//! that waits (no coordinated omission).
//!
//! Environment: BENCH_WEBHOOKS (throughput phase, default 20000), BENCH_RATE (offered rate of
//! the latency phase, default 2000/s), BENCH_SECONDS (default 10), BENCH_CONCURRENCY (default 128).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use plaidhook::app::{Application, Role};
use plaidhook::config::Settings;
use serde_json::json;
use sqlx::{Connection, Executor};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Signed {
    body: Vec<u8>,
    header: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let total = env_or("BENCH_WEBHOOKS", 20_000) as usize;
    let rate = env_or("BENCH_RATE", 2_000);
    let seconds = env_or("BENCH_SECONDS", 10);
    let concurrency = env_or("BENCH_CONCURRENCY", 128) as usize;

    let server = std::env::var("PLAIDHOOK_TEST_DATABASE_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let database = format!("plaidhook_bench_{run_id}");
    let namespace = format!("bench-{run_id}");
    let db_url = format!("{server}/{database}");
    let vars = [
        ("PLAIDHOOK__DATABASE__URL".to_owned(), db_url.clone()),
        (
            "PLAIDHOOK__RABBITMQ__NAMESPACE".to_owned(),
            namespace.clone(),
        ),
        (
            "PLAIDHOOK__DATABASE__MAX_CONNECTIONS".to_owned(),
            "20".to_owned(),
        ),
    ];
    let settings = Settings::load_from(std::path::Path::new("config"), "test", vars)?;
    let app = Application::build(settings, Role::Serve).await?;
    let url = format!(
        "http://{}/webhooks/plaid",
        app.public_addr().context("public listener")?
    );
    let sim = app.sim().context("the bench uses the built-in simulator")?;
    let (db, broker, publisher, topology) = (
        app.db().clone(),
        app.broker().clone(),
        app.publisher().clone(),
        app.topology().clone(),
    );
    let shutdown = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());
    tokio::time::timeout(Duration::from_secs(20), broker.connected()).await?;
    publisher.ensure_topology().await?;

    let latency_count = (rate * seconds) as usize;
    println!("signing {} webhooks…", total + latency_count + 100);
    let signed: Arc<Vec<Signed>> = Arc::new(
        (0..total + latency_count + 100)
            .map(|n| {
                let body = serde_json::to_vec_pretty(&json!({
                    "webhook_type": "TRANSACTIONS",
                    "webhook_code": "SYNC_UPDATES_AVAILABLE",
                    "item_id": format!("item-{n}"),
                    "initial_update_complete": true,
                    "historical_update_complete": true,
                    "environment": "sandbox"
                }))
                .unwrap();
                let header = sim.sign_webhook(&body);
                Signed { body, header }
            })
            .collect(),
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;

    // Warm-up: key fetch, connections, channel.
    for s in &signed[..100] {
        send(&http, &url, s).await?;
    }

    // Phase 1: throughput, closed loop.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(100));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, signed, next) =
                (http.clone(), url.clone(), signed.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= 100 + total {
                        return Ok::<_, anyhow::Error>(());
                    }
                    send(&http, &url, &signed[n]).await?;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed();
    let throughput = total as f64 / elapsed.as_secs_f64();
    println!(
        "throughput: {total} webhooks verified + confirmed in {:.2} s = {:.0}/s ({concurrency} concurrent requests)",
        elapsed.as_secs_f64(),
        throughput
    );

    // Phase 2: latency at a fixed offered rate, open loop.
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(latency_count);
    for i in 0..latency_count {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled).await;
        let (http, url, signed) = (http.clone(), url.clone(), signed.clone());
        let index = 100 + total + i;
        tasks.push(tokio::spawn(async move {
            send(&http, &url, &signed[index]).await?;
            Ok::<_, anyhow::Error>(scheduled.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(latency_count);
    for task in tasks {
        latencies.push(task.await??);
    }
    let achieved = latency_count as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "latency at {rate}/s offered ({achieved:.0}/s achieved, {latency_count} webhooks): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );

    // Every accepted webhook is durable: in the queue or in the spool.
    let spooled: i64 = sqlx::query_scalar("select count(*) from webhook_spool")
        .fetch_one(&db)
        .await?;
    let channel = broker.connected().await.create_channel().await?;
    let queue = channel
        .queue_declare(
            topology.sync_queue().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await?;
    println!(
        "durable: {} in the queue + {spooled} in the spool, of {} accepted",
        queue.message_count(),
        total + latency_count + 100
    );

    topology.delete(&channel).await?;
    shutdown.cancel();
    running.await??;
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "drop database if exists \"{database}\" with (force)"
        )))
        .await?;
    Ok(())
}

async fn send(http: &reqwest::Client, url: &str, signed: &Signed) -> anyhow::Result<()> {
    let response = http
        .post(url)
        .header("Plaid-Verification", &signed.header)
        .header("Content-Type", "application/json")
        .body(signed.body.clone())
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "webhook answered {}",
        response.status()
    );
    Ok(())
}
