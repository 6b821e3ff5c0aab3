//! `chaos`: the chaos run (see `testkit::chaos`). Run it through `scripts/chaos`, which builds
//! plaidhook and starts the RabbitMQ cluster:
//!
//! ```text
//! chaos --plaidhook <binary> --cluster <scripts/rabbit-cluster> --nodes <amqp urls>
//!       [--short] [--seed N] [--dir DIR]
//! ```
//!
//! Prints the ledger as JSON on stdout (also written to `DIR/summary.json`); exits 1 when
//! anything was lost, duplicated into the database, or left disagreeing with Plaid.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use testkit::chaos::{run, Plan};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut binary, mut cluster, mut nodes) = (None, None, None);
    let (mut short, mut seed, mut dir) = (false, 20261203u64, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--plaidhook" => binary = args.next().map(PathBuf::from),
            "--cluster" => cluster = args.next().map(PathBuf::from),
            "--nodes" => nodes = args.next(),
            "--short" => short = true,
            "--seed" => seed = args.next().context("--seed N")?.parse()?,
            "--dir" => dir = args.next().map(PathBuf::from),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let postgres_version = std::fs::read_dir("/etc/postgresql")?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .context("no cluster in /etc/postgresql")?;
    let plan = Plan {
        binary: binary.context("--plaidhook <binary>")?,
        cluster_script: cluster.context("--cluster <scripts/rabbit-cluster>")?,
        nodes: nodes.context("--nodes <amqp urls>")?,
        postgres_version,
        items: if short { 30 } else { 200 },
        traffic_for: Duration::from_secs(if short { 75 } else { 330 }),
        pace: Duration::from_millis(if short { 20 } else { 4 }),
        fault_pause: Duration::from_millis(if short { 3000 } else { 1000 }),
        drain_within: Duration::from_secs(if short { 180 } else { 300 }),
        seed,
        dir: dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("plaidhook-chaos-{}", std::process::id()))
        }),
    };
    let summary = run(plan).await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if !summary.passed {
        std::process::exit(1);
    }
    Ok(())
}
