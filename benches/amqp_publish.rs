//! AMQP client benchmark: what a publish with confirm costs through lapin (plaidhook's client)
//! and through amqprs, side by side in one run, against the local RabbitMQ.
//!
//! `cargo bench --bench amqp_publish` (release build). Each phase publishes BENCH_MESSAGES
//! (default 30,000) messages shaped like ingress's (a ~700-byte envelope, its AMQP properties,
//! persistent, `mandatory`) to a quorum queue of its own through the default exchange, with
//! BENCH_IN_FLIGHT (default 32, the ingress bench's connection count) tasks that each publish
//! and wait for their own confirm, as concurrent webhooks do on one shared confirm channel. Per
//! phase: messages per second, the client's CPU per message (this process's utime + stime over
//! the phase: both clients live in it, the idle one costs nothing), the broker's CPU per message
//! (the local node's `beam.smp`), and the machine's busy share. BENCH_ROUNDS (default 3) rounds
//! alternate which client goes first; the summary is the median of each round's amqprs / lapin.
//! It answers one question: would another client make plaidhook's publishing measurably cheaper.
//!
//! The amqprs side does what plaidhook would have to do with it: amqprs reports confirms through
//! a channel callback, not per publish, so a publish takes the channel's next delivery tag and a
//! oneshot under one lock (tags follow the order publishes reach the channel), and the callback
//! resolves every tag an ack (or `multiple` ack) covers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use amqprs::callbacks::{ChannelCallback, DefaultConnectionCallback};
use amqprs::channel::{
    BasicPublishArguments, Channel as AmqprsChannel, ConfirmSelectArguments, QueueDeclareArguments,
    QueueDeleteArguments,
};
use amqprs::connection::{Connection as AmqprsConnection, OpenConnectionArguments};
use amqprs::{
    Ack, BasicProperties as AmqprsProperties, Cancel, CloseChannel, FieldTable, Nack, Return,
};
use anyhow::Context;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable as LapinTable};
use lapin::{Confirmation, ConnectionProperties};
use tokio::sync::{oneshot, Mutex};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An envelope the size of ingress's for one SYNC_UPDATES_AVAILABLE webhook.
fn envelope() -> Vec<u8> {
    serde_json::json!({
        "id": uuid::Uuid::now_v7(),
        "received_at": chrono::Utc::now(),
        "environment": "sandbox",
        "webhook_type": "TRANSACTIONS",
        "webhook_code": "SYNC_UPDATES_AVAILABLE",
        "item_id": "wz666MBjYWTp2PDzzggYhM6oWWmBb",
        "body": {
            "webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE",
            "item_id": "wz666MBjYWTp2PDzzggYhM6oWWmBb", "initial_update_complete": true,
            "historical_update_complete": true, "environment": "sandbox"
        },
        "request_id": "7f4c1d0e-3b7a-4d55-9a6e-1c2b3d4e5f60"
    })
    .to_string()
    .into_bytes()
}

/// CPU seconds (utime + stime) of a process, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').context("stat format")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // The kernel's USER_HZ: 100 on every Linux this runs on.
    Ok(ticks / 100.0)
}

/// Busy and total jiffies of the whole machine, from `/proc/stat`.
fn machine_jiffies() -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .context("/proc/stat")?
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let total: f64 = cpu.iter().sum();
    let idle = cpu[3] + cpu.get(4).copied().unwrap_or(0.0);
    Ok((total - idle, total))
}

/// The local node's `beam.smp`.
fn broker_pid() -> anyhow::Result<String> {
    let pid = std::fs::read_to_string("/var/lib/rabbitmq/mnesia/rabbit@localhost.pid")
        .ok()
        .map(|p| p.trim().to_owned())
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
    if let Some(pid) = pid {
        return Ok(pid);
    }
    let out = std::process::Command::new("pgrep")
        .args(["-o", "beam.smp"])
        .output()?;
    let pid = String::from_utf8(out.stdout)?.trim().to_owned();
    anyhow::ensure!(!pid.is_empty(), "no beam.smp running");
    Ok(pid)
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    rate: f64,
    client_us: f64,
    broker_us: f64,
    busy: f64,
}

/// Runs `args.in_flight` tasks, each publishing its share of `args.messages` with the future
/// `publisher` makes for that share, and measures them from the first spawn to the last confirm.
async fn measure<F, Fut>(args: &Args, publisher: F) -> anyhow::Result<Phase>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let me = std::process::id().to_string();
    let (client0, broker0, machine0) = (
        cpu_seconds(&me)?,
        cpu_seconds(&args.broker)?,
        machine_jiffies()?,
    );
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..args.in_flight {
        tasks.spawn(publisher(share(args.messages, args.in_flight, task)));
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let wall = started.elapsed().as_secs_f64();
    let (client1, broker1, machine1) = (
        cpu_seconds(&me)?,
        cpu_seconds(&args.broker)?,
        machine_jiffies()?,
    );
    let per_message = |cpu: f64| cpu / args.messages as f64 * 1e6;
    Ok(Phase {
        rate: args.messages as f64 / wall,
        client_us: per_message(client1 - client0),
        broker_us: per_message(broker1 - broker0),
        busy: (machine1.0 - machine0.0) / (machine1.1 - machine0.1).max(1.0),
    })
}

fn quorum_arguments_lapin() -> LapinTable {
    let mut table = LapinTable::default();
    table.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    table
}

async fn lapin_phase(url: &str, queue: &str, args: &Args) -> anyhow::Result<Phase> {
    let connection = lapin::Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            quorum_arguments_lapin(),
        )
        .await?;
    let body = Arc::new(envelope());
    let phase = measure(args, |count| {
        let (channel, body, queue) = (channel.clone(), body.clone(), queue.to_owned());
        async move {
            for _ in 0..count {
                let properties = plaidhook::messages::envelope::amqp_properties(
                    uuid::Uuid::now_v7(),
                    "TRANSACTIONS.SYNC_UPDATES_AVAILABLE",
                    chrono::Utc::now(),
                    Some("7f4c1d0e-3b7a-4d55-9a6e-1c2b3d4e5f60"),
                )
                .with_delivery_mode(2);
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..Default::default()
                        },
                        &body,
                        properties,
                    )
                    .await?;
                match confirm.await? {
                    Confirmation::Ack(None) => {}
                    other => anyhow::bail!("not confirmed: {other:?}"),
                }
            }
            Ok(())
        }
    })
    .await?;
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    connection.close(200, "done".into()).await?;
    Ok(phase)
}

/// Outstanding publishes of one amqprs channel, by delivery tag.
#[derive(Default)]
struct Confirms {
    next_tag: u64,
    waiting: BTreeMap<u64, oneshot::Sender<bool>>,
}

/// Resolves the waiting publishes an ack or nack covers.
#[derive(Clone)]
struct ConfirmCallback(Arc<std::sync::Mutex<Confirms>>);

impl ConfirmCallback {
    fn settle(&self, tag: u64, multiple: bool, acked: bool) {
        let mut confirms = self.0.lock().expect("confirms lock");
        let covered: Vec<u64> = if multiple {
            confirms.waiting.range(..=tag).map(|(t, _)| *t).collect()
        } else {
            vec![tag]
        };
        for tag in covered {
            if let Some(waiter) = confirms.waiting.remove(&tag) {
                let _ = waiter.send(acked);
            }
        }
    }
}

#[async_trait::async_trait]
impl ChannelCallback for ConfirmCallback {
    async fn close(
        &mut self,
        _: &AmqprsChannel,
        _: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn cancel(&mut self, _: &AmqprsChannel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(
        &mut self,
        _: &AmqprsChannel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &AmqprsChannel, ack: Ack) {
        self.settle(ack.delivery_tag(), ack.mutiple(), true);
    }
    async fn publish_nack(&mut self, _: &AmqprsChannel, nack: Nack) {
        self.settle(nack.delivery_tag(), nack.multiple(), false);
    }
    async fn publish_return(
        &mut self,
        _: &AmqprsChannel,
        _: Return,
        _: AmqprsProperties,
        _: Vec<u8>,
    ) {
        // The bench publishes to a queue that exists: a return would surface as a missing ack.
    }
}

async fn amqprs_phase(queue: &str, args: &Args) -> anyhow::Result<Phase> {
    let connection = AmqprsConnection::open(&OpenConnectionArguments::new(
        "127.0.0.1",
        5672,
        "guest",
        "guest",
    ))
    .await?;
    connection
        .register_callback(DefaultConnectionCallback)
        .await?;
    let channel = connection.open_channel(None).await?;
    let confirms = Arc::new(std::sync::Mutex::new(Confirms {
        next_tag: 1,
        ..Default::default()
    }));
    channel
        .register_callback(ConfirmCallback(confirms.clone()))
        .await?;
    channel
        .confirm_select(ConfirmSelectArguments::default())
        .await?;
    let mut arguments = FieldTable::new();
    arguments.insert(
        "x-queue-type".try_into().expect("short string"),
        "quorum".into(),
    );
    channel
        .queue_declare(
            QueueDeclareArguments::durable_client_named(queue)
                .arguments(arguments)
                .finish(),
        )
        .await?;
    let body = Arc::new(envelope());
    // Serialises tag assignment with the publish, so tags follow the channel's order.
    let publishing = Arc::new(Mutex::new(()));
    let phase = measure(args, |count| {
        let (channel, body, queue) = (channel.clone(), body.clone(), queue.to_owned());
        let (confirms, publishing) = (confirms.clone(), publishing.clone());
        async move {
            for _ in 0..count {
                let mut headers = FieldTable::new();
                headers.insert(
                    "x-request-id".try_into().expect("short string"),
                    "7f4c1d0e-3b7a-4d55-9a6e-1c2b3d4e5f60".into(),
                );
                let properties = AmqprsProperties::default()
                    .with_message_id(&uuid::Uuid::now_v7().to_string())
                    .with_message_type("TRANSACTIONS.SYNC_UPDATES_AVAILABLE")
                    .with_timestamp(chrono::Utc::now().timestamp() as u64)
                    .with_content_type("application/json")
                    .with_headers(headers)
                    .with_persistence(true)
                    .finish();
                let mut publish = BasicPublishArguments::new("", &queue);
                publish.mandatory(true);
                let (tx, rx) = oneshot::channel();
                {
                    let _order = publishing.lock().await;
                    {
                        let mut confirms = confirms.lock().expect("confirms lock");
                        let tag = confirms.next_tag;
                        confirms.next_tag += 1;
                        confirms.waiting.insert(tag, tx);
                    }
                    channel
                        .basic_publish(properties, body.to_vec(), publish)
                        .await?;
                }
                anyhow::ensure!(rx.await?, "nacked");
            }
            Ok(())
        }
    })
    .await?;
    channel
        .queue_delete(QueueDeleteArguments::new(queue))
        .await?;
    channel.close().await?;
    connection.close().await?;
    Ok(phase)
}

/// Task `task`'s share of `total` among `tasks`.
fn share(total: usize, tasks: usize, task: usize) -> usize {
    total / tasks + usize::from(task < total % tasks)
}

struct Args {
    messages: usize,
    in_flight: usize,
    broker: String,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args {
        messages: env_or("BENCH_MESSAGES", 30_000) as usize,
        in_flight: env_or("BENCH_IN_FLIGHT", 32).max(1) as usize,
        broker: broker_pid()?,
    };
    let rounds = env_or("BENCH_ROUNDS", 3).max(1);
    let url = std::env::var("PLAIDHOOK_BENCH_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "{} confirmed publishes per phase, {} in flight, quorum queue, {cores} cores, {rounds} rounds",
        args.messages, args.in_flight
    );
    let mut ratios: Vec<[f64; 3]> = Vec::new();
    let mut phases = Vec::new();
    for round in 1..=rounds {
        let queue =
            |client: &str| format!("bench.amqp_publish.{client}.{}.{round}", std::process::id());
        // Alternate the order: the broker and the machine warm up, and the second phase
        // of a round must not always be the same client.
        let (lapin, amqprs) = if round % 2 == 1 {
            let l = lapin_phase(&url, &queue("lapin"), &args).await?;
            (l, amqprs_phase(&queue("amqprs"), &args).await?)
        } else {
            let a = amqprs_phase(&queue("amqprs"), &args).await?;
            (lapin_phase(&url, &queue("lapin"), &args).await?, a)
        };
        for (name, p) in [("lapin", lapin), ("amqprs", amqprs)] {
            println!(
                "  round {round} {name:>6}: {:>7.0} msg/s, client {:>6.1} µs/msg, broker {:>6.1} µs/msg, machine {:>3.0} % busy",
                p.rate,
                p.client_us,
                p.broker_us,
                p.busy * 100.0
            );
        }
        ratios.push([
            amqprs.rate / lapin.rate,
            amqprs.client_us / lapin.client_us,
            amqprs.broker_us / lapin.broker_us,
        ]);
        phases.push(serde_json::json!({
            "round": round,
            "lapin": {"rate": lapin.rate, "client_us": lapin.client_us, "broker_us": lapin.broker_us, "busy": lapin.busy},
            "amqprs": {"rate": amqprs.rate, "client_us": amqprs.client_us, "broker_us": amqprs.broker_us, "busy": amqprs.busy},
        }));
    }
    let pick = |i: usize| median(ratios.iter().map(|r| r[i]).collect());
    let (rate, client, broker) = (pick(0), pick(1), pick(2));
    println!(
        "amqprs / lapin (median of rounds): rate {:.0} %, client CPU per message {:.0} %, broker CPU per message {:.0} %",
        rate * 100.0,
        client * 100.0,
        broker * 100.0
    );
    let summary = serde_json::json!({
        "messages": args.messages, "in_flight": args.in_flight, "cores": cores,
        "rounds": phases,
        "amqprs_to_lapin": {"rate": rate, "client_cpu_per_message": client, "broker_cpu_per_message": broker},
    });
    println!("summary: {summary}");
    std::fs::write(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/bench-amqp-publish.json"
        ),
        summary.to_string(),
    )?;
    Ok(())
}
