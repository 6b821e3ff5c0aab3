//! `plaidhook dead-letters`: look at and replay what parked in `plaidhook.dead`.
//!
//! A message parks when a consumer gave up on it (a permanent failure, retries exhausted) or
//! when it exceeded the queue's delivery limit (it kept killing workers). A consumer's park
//! carries the cause and the queue in headers of its own; RabbitMQ's dead-lettering records
//! the queue and the reason in `x-death`. Replay publishes it back to that queue, with
//! confirm, and only then removes it from the parking queue, so a failed replay loses nothing.

use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use serde::Serialize;

use crate::broker::consumer::{ATTEMPT_HEADER, PARKED_CAUSE_HEADER, PARKED_FROM_HEADER};
use crate::broker::{Publisher, Topology};

/// One parked message, as `list` shows it.
#[derive(Debug, Serialize)]
pub struct ParkedMessage {
    pub message_id: Option<String>,
    pub kind: Option<String>,
    /// The queue it was dead-lettered from.
    pub from_queue: Option<String>,
    /// `rejected` (a consumer gave up on it), `delivery_limit`, `expired`, …
    pub reason: Option<String>,
    /// The error that made the consumer give up, when it said (`x-plaidhook-parked-cause`).
    pub cause: Option<String>,
    pub body_preview: String,
}

fn header(properties: &BasicProperties, name: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// The queue a parked message came from: the consumer's header, else RabbitMQ's `x-death`.
fn origin(properties: &BasicProperties) -> Option<String> {
    header(properties, PARKED_FROM_HEADER).or_else(|| death_field(properties, "queue"))
}

fn death_field(properties: &BasicProperties, field: &str) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    match first.inner().get(field)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Messages waiting in the parking queue.
pub async fn depth(channel: &Channel, topology: &Topology) -> anyhow::Result<u32> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare(topology.dead_queue().into(), passive, FieldTable::default())
        .await?;
    Ok(queue.message_count())
}

/// Reads up to `limit` parked messages without removing them.
pub async fn list(
    channel: &Channel,
    topology: &Topology,
    limit: usize,
) -> anyhow::Result<Vec<ParkedMessage>> {
    let mut parked = Vec::new();
    let mut tags = Vec::new();
    while parked.len() < limit {
        let Some(message) = channel
            .basic_get(
                topology.dead_queue().into(),
                BasicGetOptions { no_ack: false },
            )
            .await?
        else {
            break;
        };
        let delivery = message.delivery;
        let properties = &delivery.properties;
        parked.push(ParkedMessage {
            message_id: properties.message_id().as_ref().map(|s| s.to_string()),
            kind: properties.kind().as_ref().map(|s| s.to_string()),
            from_queue: origin(properties),
            // A consumer's own park copy may carry older `x-death` entries (its trips through
            // the delay queues), so its header is read first.
            reason: header(properties, PARKED_CAUSE_HEADER)
                .map(|_| "rejected".to_owned())
                .or_else(|| death_field(properties, "reason")),
            cause: header(properties, PARKED_CAUSE_HEADER),
            body_preview: String::from_utf8_lossy(&delivery.data[..delivery.data.len().min(160)])
                .into_owned(),
        });
        tags.push(delivery.delivery_tag);
    }
    // Put them all back where they were: listing must not consume.
    for tag in tags {
        channel
            .basic_nack(
                tag,
                BasicNackOptions {
                    requeue: true,
                    multiple: false,
                },
            )
            .await?;
    }
    // A synchronous round trip on the same channel: the broker has taken the requeues before
    // this returns (they become visible to other channels as the queue applies them).
    depth(channel, topology).await?;
    Ok(parked)
}

/// Republishes up to `limit` parked messages to the queue each came from; returns how many.
/// It takes at most what was parked when it started: a replayed message that fails and parks
/// again joins the back of the queue, and must wait for the next replay, not loop in this one.
pub async fn replay(
    channel: &Channel,
    publisher: &Publisher,
    limit: usize,
    progress: bool,
) -> anyhow::Result<usize> {
    let topology = publisher.topology();
    let total = (depth(channel, topology).await? as usize).min(limit);
    let bar = if progress {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} replayed ({per_sec}, eta {eta})")
            .expect("a static template"),
    );
    let mut replayed = 0;
    while replayed < total {
        let Some(message) = channel
            .basic_get(
                topology.dead_queue().into(),
                BasicGetOptions { no_ack: false },
            )
            .await?
        else {
            break;
        };
        let delivery = message.delivery;
        let origin = origin(&delivery.properties)
            .context("a parked message that names no queue cannot be routed back")?;
        // Fresh attempt count: the replay is an operator's decision to try again.
        let mut headers = FieldTable::default();
        if let Some(old) = delivery.properties.headers() {
            for (key, value) in old.inner() {
                if ![
                    "x-death",
                    ATTEMPT_HEADER,
                    PARKED_CAUSE_HEADER,
                    PARKED_FROM_HEADER,
                ]
                .contains(&key.as_str())
                {
                    headers.insert(key.clone(), value.clone());
                }
            }
        }
        let properties = delivery.properties.clone().with_headers(headers);
        // The default exchange routes straight to the queue named by the routing key.
        publisher
            .publish("", &origin, &delivery.data, properties)
            .await?;
        delivery.acker.ack(BasicAckOptions::default()).await?;
        replayed += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(replayed)
}

/// Connects for the CLI: the broker and a publisher with the configured topology.
pub async fn connect(
    settings: &crate::config::Settings,
) -> anyhow::Result<(Channel, Publisher, tokio_util::sync::CancellationToken)> {
    use secrecy::ExposeSecret;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let broker = crate::broker::Broker::start(
        settings.rabbitmq.nodes(),
        "plaidhook-dead-letters",
        shutdown.clone(),
    );
    let connection = tokio::time::timeout(Duration::from_secs(10), broker.connected())
        .await
        .with_context(|| {
            // Hosts only: the URLs carry credentials.
            let hosts: Vec<String> = settings
                .rabbitmq
                .nodes()
                .iter()
                .map(|url| {
                    let url = url.expose_secret();
                    url.rsplit('@').next().unwrap_or("the broker").to_owned()
                })
                .collect();
            format!("could not reach RabbitMQ at {}", hosts.join(", "))
        })?;
    let channel = connection.create_channel().await?;
    let topology = Topology::from_settings(&settings.rabbitmq);
    let publisher = Publisher::new(broker, topology, settings.rabbitmq.publish_timeout);
    publisher.ensure_topology().await?;
    Ok((channel, publisher, shutdown))
}
