//! Consuming a queue: manual acks after the work is committed, bounded prefetch, retries with
//! backoff through delay queues, and parking of what can never succeed.
//!
//! A handler returns an [`Outcome`] for each message:
//! - `Ack`: done (its effects are committed). The message is acknowledged.
//! - `Retry`: a transient failure (rate limit, Plaid 5xx, timeout). A copy goes to the delay
//!   queue of the next backoff step, which dead-letters it back after its TTL, and the original
//!   is acked once the copy is confirmed. Past the last step it is parked instead.
//! - `Requeue`: not processed here (the process is stopping). The message goes back to its
//!   queue at once for another worker, without spending a retry.
//! - `Park`: a permanent failure. A copy goes to `plaidhook.dead` carrying the cause and the
//!   queue it came from (`PARKED_CAUSE_HEADER`, `PARKED_FROM_HEADER`), where an operator can
//!   inspect and replay it, and the original is acked once the copy is confirmed. If the
//!   broker refuses the copy, the original is rejected without requeue and the queue
//!   dead-letters it there itself (`x-death` says `rejected`, without the cause): parked either
//!   way. Each park is logged with the message id, the Item and the cause.
//!
//! A worker that dies mid-message leaves it unacked: the broker redelivers it, and the quorum
//! queue's `x-delivery-limit` parks a message that keeps killing workers.
//!
//! Nothing is left unsettled on a live channel: a retry whose copy the broker will not take
//! (memory alarm, leader election) returns the original to its queue after a pause, so the
//! prefetch slot is freed. A graceful stop cancels the consumer, lets the messages already
//! delivered finish and settle on their channel, and only then closes it: closing first would
//! hand them to a peer while their work still runs here. An acknowledgement the channel could
//! not carry (lapin answers `Ok(false)`) counts as not settled: the broker redelivers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Broker, Publisher, Topology};
use crate::telemetry::{names, Repeated};

/// Header carrying how many times a message has been retried through the delay queues.
pub const ATTEMPT_HEADER: &str = "x-plaidhook-attempt";

/// Header of a parked message: the error that parked it.
pub const PARKED_CAUSE_HEADER: &str = "x-plaidhook-parked-cause";

/// Header of a parked message: the queue it was consumed from (replay routes it back there).
pub const PARKED_FROM_HEADER: &str = "x-plaidhook-parked-from";

/// A consumer that consumed this long before it stopped counts as having recovered.
const CONSUMED_A_WHILE: Duration = Duration::from_secs(10);

/// Longest cause kept in a parked message's header.
const MAX_CAUSE_CHARS: usize = 500;

/// Why a message is retried: the error that stopped it, kept typed for the log line.
pub type RetryReason = Box<dyn std::error::Error + Send + Sync>;

/// How long a message whose retry copy the broker refused waits before going back to its
/// queue: the broker is refusing publishes (alarm, election), so an immediate redelivery would
/// only repeat the work and the refusal.
const REFUSED_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// What became of a message.
#[derive(Debug)]
pub enum Outcome {
    Ack,
    Retry { reason: RetryReason },
    Requeue { reason: &'static str },
    Park { reason: String },
}

impl Outcome {
    /// A transient failure: `reason` is the error (or a few words saying why).
    pub fn retry(reason: impl Into<RetryReason>) -> Self {
        Self::Retry {
            reason: reason.into(),
        }
    }
}

/// A delivered message, as a handler sees it.
pub struct Message {
    /// The AMQP `type` property, which says what the body is.
    pub kind: Option<String>,
    pub body: Vec<u8>,
    /// Retries so far through the delay queues (0 on first delivery).
    pub attempt: u32,
    /// The broker delivered it before (a worker died or a channel closed mid-message).
    pub redelivered: bool,
}

/// Which queue to consume and how.
#[derive(Clone)]
pub struct ConsumerSpec {
    /// Name for logs and metrics (`sync`, `items`).
    pub name: &'static str,
    pub queue: String,
    pub prefetch: u16,
    /// Delay queues in backoff order (from `Topology::retry_queues`).
    pub retry_queues: Vec<String>,
}

impl ConsumerSpec {
    /// Consume `queue` of `topology` with its delay queues.
    pub fn new(name: &'static str, topology: &Topology, queue: String, prefetch: u16) -> Self {
        Self {
            name,
            retry_queues: topology.retry_queues(&queue),
            queue,
            prefetch,
        }
    }
}

/// [`run`] for a consumer whose handler is a method of shared state: `handle(state, message)`
/// with `state` one `Arc` cloned per message.
pub async fn run_shared<S, H, Fut>(
    broker: Broker,
    publisher: Arc<Publisher>,
    spec: ConsumerSpec,
    state: Arc<S>,
    handle: H,
    shutdown: CancellationToken,
) where
    S: Send + Sync + 'static,
    H: Fn(Arc<S>, Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let handler = move |message| handle(state.clone(), message);
    run(broker, publisher, spec, handler, shutdown).await;
}

/// Consumes `spec.queue` until `shutdown`, running `handler` on up to `prefetch` messages at
/// once. Reconnects (and resumes) when the broker goes away. In-flight messages finish before
/// this returns.
pub async fn run<H, Fut>(
    broker: Broker,
    publisher: Arc<Publisher>,
    spec: ConsumerSpec,
    handler: H,
    shutdown: CancellationToken,
) where
    H: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let handler = Arc::new(handler);
    let in_flight = TaskTracker::new();
    let mut failing = Repeated::new(spec.name);
    while !shutdown.is_cancelled() {
        let started = tokio::time::Instant::now();
        let consumed = consume_once(
            &broker,
            &publisher,
            &spec,
            handler.clone(),
            &in_flight,
            &shutdown,
        )
        .await;
        // A consumer that ran a while before it stopped had recovered in between.
        if consumed.is_ok() || started.elapsed() >= CONSUMED_A_WHILE {
            failing.recovered();
        }
        if let Err(error) = consumed {
            failing.failed(&format_args!(
                "consumer stopped, resuming shortly: {error:#}"
            ));
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    in_flight.close();
    in_flight.wait().await;
}

async fn consume_once<H, Fut>(
    broker: &Broker,
    publisher: &Arc<Publisher>,
    spec: &ConsumerSpec,
    handler: Arc<H>,
    in_flight: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<()>
where
    H: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let connection = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        connection = broker.connected() => connection,
    };
    // Declares the topology if this process has not published yet (a worker-only process).
    publisher.ensure_topology().await?;
    let channel = connection.create_channel().await?;
    // Bounded prefetch: at most this many unacked messages, so work spreads across workers.
    channel
        .basic_qos(spec.prefetch, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            spec.queue.clone().into(),
            format!("plaidhook-{}-{}", spec.name, uuid::Uuid::new_v4().simple()).into(),
            // no_ack off: acks are manual, after the handler's work is committed.
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(consumer = spec.name, queue = %spec.queue, "consuming");
    loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => {
                stop_gracefully(&channel, deliveries.tag(), in_flight, spec.name).await;
                return Ok(());
            }
            // The broker moved to another node: this channel's node may never come back, and
            // its unsettled messages are redelivered by the cluster.
            _ = broker.superseded(&connection) => {
                anyhow::bail!("the broker connection moved to another node");
            }
            delivery = deliveries.next() => delivery,
        };
        let Some(delivery) = delivery else {
            anyhow::bail!("the broker ended the consumer");
        };
        let delivery = delivery?;
        let handler = handler.clone();
        let publisher = publisher.clone();
        let spec = spec.clone();
        in_flight.spawn(async move {
            let message = Message {
                kind: delivery
                    .properties
                    .kind()
                    .as_ref()
                    .map(|kind| kind.to_string()),
                body: delivery.data.clone(),
                attempt: attempt_of(&delivery),
                redelivered: delivery.redelivered,
            };
            let attempt = message.attempt;
            let outcome = handler(message).await;
            if let Err(error) = settle(&delivery, outcome, attempt, &publisher, &spec).await {
                // Unsettled: the broker redelivers it when the channel closes.
                tracing::warn!(consumer = spec.name, error = %error, "could not settle a message");
            }
        });
    }
}

/// Stops taking messages, lets the delivered ones finish and settle on `channel`, then closes
/// it. Messages lapin had buffered but no handler started go back to the queue with the close.
async fn stop_gracefully(
    channel: &lapin::Channel,
    consumer_tag: lapin::types::ShortString,
    in_flight: &TaskTracker,
    name: &'static str,
) {
    if let Err(error) = channel
        .basic_cancel(consumer_tag, BasicCancelOptions::default())
        .await
    {
        tracing::warn!(consumer = name, error = %error, "could not cancel the consumer");
    }
    in_flight.close();
    in_flight.wait().await;
    if let Err(error) = channel.close(200, "plaidhook shutting down".into()).await {
        tracing::debug!(consumer = name, error = %error, "channel already closed");
    }
    tracing::info!(
        consumer = name,
        "consumer stopped; in-flight messages settled"
    );
}

/// An ack, nack or reject the channel carried; `Ok(false)` means it did not (closed or used).
fn settled(carried: lapin::Result<bool>, what: &str) -> anyhow::Result<()> {
    if carried? {
        Ok(())
    } else {
        anyhow::bail!("the channel could not carry the {what}; the broker will redeliver")
    }
}

fn attempt_of(delivery: &Delivery) -> u32 {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(ATTEMPT_HEADER))
        .and_then(|value| match value {
            AMQPValue::LongUInt(n) => Some(*n),
            AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
            _ => None,
        })
        .unwrap_or(0)
}

async fn settle(
    delivery: &Delivery,
    outcome: Outcome,
    attempt: u32,
    publisher: &Publisher,
    spec: &ConsumerSpec,
) -> anyhow::Result<()> {
    let label = match &outcome {
        Outcome::Ack => "ack",
        Outcome::Retry { .. } => "retry",
        Outcome::Requeue { .. } => "requeue",
        Outcome::Park { .. } => "park",
    };
    metrics::counter!(names::CONSUMER_MESSAGES, "consumer" => spec.name, "outcome" => label)
        .increment(1);
    if delivery.redelivered {
        metrics::counter!(names::CONSUMER_REDELIVERIES, "consumer" => spec.name).increment(1);
    }
    match outcome {
        Outcome::Ack => {
            settled(delivery.acker.ack(BasicAckOptions::default()).await, "ack")?;
        }
        Outcome::Requeue { reason } => {
            tracing::info!(
                consumer = spec.name,
                reason,
                "returning the message to its queue"
            );
            requeue(delivery).await?;
        }
        Outcome::Retry { reason } => match spec.retry_queues.get(attempt as usize) {
            Some(delay_queue) => {
                let mut headers = delivery.properties.headers().clone().unwrap_or_default();
                headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(attempt + 1));
                let properties = delivery.properties.clone().with_headers(headers);
                // The default exchange routes by queue name straight to the delay queue.
                let copied = publisher
                    .publish("", delay_queue, &delivery.data, properties)
                    .await;
                if let Err(error) = copied {
                    // Not left unacked on a live channel (it would hold a prefetch slot for
                    // the life of the process): back to its queue, after a pause.
                    tracing::warn!(consumer = spec.name, error = %error, "the broker refused the retry copy; returning the message to its queue");
                    metrics::counter!(names::CONSUMER_MESSAGES, "consumer" => spec.name, "outcome" => "retry_refused").increment(1);
                    tokio::time::sleep(REFUSED_RETRY_PAUSE).await;
                    return requeue(delivery).await;
                }
                settled(delivery.acker.ack(BasicAckOptions::default()).await, "ack")?;
                tracing::info!(consumer = spec.name, attempt = attempt + 1, delay_queue = %delay_queue, reason = %reason, "message will be retried");
            }
            None => {
                let cause = format!("retries exhausted after {attempt} attempts: {reason}");
                park(delivery, &cause, publisher, spec).await?;
            }
        },
        Outcome::Park { reason } => park(delivery, &reason, publisher, spec).await?,
    }
    Ok(())
}

/// Parks the message in `plaidhook.dead` with its cause (see the module's map).
async fn park(
    delivery: &Delivery,
    cause: &str,
    publisher: &Publisher,
    spec: &ConsumerSpec,
) -> anyhow::Result<()> {
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.to_string());
    tracing::warn!(
        consumer = spec.name,
        message.id = message_id.as_deref().unwrap_or("-"),
        plaid.item_id = item_of(&delivery.data).as_deref().unwrap_or("-"),
        cause,
        "parking the message in the dead-letter queue"
    );
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    let cause: String = cause.chars().take(MAX_CAUSE_CHARS).collect();
    headers.insert(
        PARKED_CAUSE_HEADER.into(),
        AMQPValue::LongString(cause.into()),
    );
    headers.insert(
        PARKED_FROM_HEADER.into(),
        AMQPValue::LongString(spec.queue.as_str().into()),
    );
    let properties = delivery.properties.clone().with_headers(headers);
    let exchange = publisher.topology().dead_letter_exchange();
    // The dead-letter exchange is a fanout into the parking queue: the routing key is ignored.
    let copied = publisher
        .publish(&exchange, &spec.queue, &delivery.data, properties)
        .await;
    if copied.is_ok() {
        return settled(delivery.acker.ack(BasicAckOptions::default()).await, "ack");
    }
    // Rejected without requeue, the queue dead-letters it to plaidhook.dead itself.
    let rejected = delivery
        .acker
        .reject(BasicRejectOptions { requeue: false })
        .await;
    settled(rejected, "reject")
}

/// The Plaid item id a message is about, for the log: webhook envelopes carry `item_id`, sync
/// requests `plaid_item_id`. Only that field is read; nothing else of the body is kept.
fn item_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct About {
        item_id: Option<String>,
        plaid_item_id: Option<String>,
    }
    let about: About = serde_json::from_slice(body).ok()?;
    about.item_id.or(about.plaid_item_id)
}

/// Gives the message back to its queue for the next consumer.
async fn requeue(delivery: &Delivery) -> anyhow::Result<()> {
    let returned = delivery
        .acker
        .reject(BasicRejectOptions { requeue: true })
        .await;
    settled(returned, "requeue")
}
