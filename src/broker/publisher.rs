//! Publishing with publisher confirms, under a deadline.
//!
//! One channel in confirm mode is shared by every concurrent publish: lapin pipelines them and
//! each publish awaits only its own confirm, which is what makes throughput possible (~26k/s
//! with 100+ in flight against ~4k/s one at a time on this class of machine). A publish counts
//! only when the broker acked it *and* did not return it: messages are `mandatory`, so an
//! unroutable one comes back and is a failure, not a silent drop. The whole publish runs under
//! a timeout, because a broker that crashed mid-flight can hold a publish for many seconds.
//!
//! Why only messages that must be routed are `mandatory`: AMQP's `basic.return` names no
//! delivery tag, and lapin hands a returned message to whichever confirm completes next. With
//! many publishes in flight on one channel (and the broker acking several at once) a return
//! can be pinned on the wrong publish: a routed webhook would look refused, and a refused one
//! confirmed. So events, which may legitimately have no subscriber, go out without `mandatory`
//! ([`Publisher::publish_event`]) and are never returned; everything else published
//! `mandatory` is routable by construction (`plaid.webhooks` has an alternate exchange, the
//! default exchange routes to queues that exist), so a return means a broken topology.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::Confirmation;
use lapin::{BasicProperties, Channel};
use tokio::sync::Mutex;

use super::{Broker, Topology};
use crate::telemetry::names;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to RabbitMQ")]
    NotConnected,
    #[error("RabbitMQ returned the message as unroutable")]
    Unroutable,
    #[error("RabbitMQ nacked the message")]
    Nacked,
    #[error("no confirm within {0:?}")]
    Timeout(Duration),
    #[error("RabbitMQ error: {0}")]
    Amqp(#[from] lapin::Error),
}

impl PublishError {
    /// The broker has the message and will not take it (returned as unroutable, or nacked):
    /// unlike a broker that is away, trying again soon is unlikely to help.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Unroutable | Self::Nacked)
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::NotConnected => "not_connected",
            Self::Unroutable => "unroutable",
            Self::Nacked => "nacked",
            Self::Timeout(_) => "timeout",
            Self::Amqp(_) => "amqp_error",
        }
    }
}

pub struct Publisher {
    broker: Broker,
    topology: Topology,
    timeout: Duration,
    channel: RwLock<Option<Channel>>,
    /// Serialises opening a channel so a reconnect storm opens one, not one per request.
    opening: Mutex<()>,
}

impl Publisher {
    pub fn new(broker: Broker, topology: Topology, timeout: Duration) -> Self {
        Self {
            broker,
            topology,
            timeout,
            channel: RwLock::new(None),
            opening: Mutex::new(()),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Makes sure the topology is declared (a worker-only process may consume before it ever
    /// publishes).
    pub async fn ensure_topology(&self) -> Result<(), PublishError> {
        self.channel().await.map(|_| ())
    }

    /// Publishes `payload` persistently and `mandatory`, and waits for the broker's confirm,
    /// all within the configured timeout. A message no queue takes is an error (`Unroutable`).
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        self.publish_with(exchange, routing_key, payload, properties, true)
            .await
    }

    /// Publishes an event: persistently, with confirm, but not `mandatory`: an event nobody is
    /// bound to receive is dropped by the broker rather than returned (see the module notes).
    pub async fn publish_event(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        self.publish_with(exchange, routing_key, payload, properties, false)
            .await
    }

    async fn publish_with(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<(), PublishError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(
            self.timeout,
            self.publish_confirmed(exchange, routing_key, payload, properties, mandatory),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(PublishError::Timeout(self.timeout)),
        };
        let outcome = match &result {
            Ok(()) => "confirmed",
            Err(error) => error.label(),
        };
        metrics::histogram!(names::BROKER_PUBLISH_DURATION, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            if !matches!(error, PublishError::Unroutable | PublishError::Nacked) {
                // The channel may be dead; the next publish opens a fresh one. The old one is
                // closed, not just forgotten (a connection has a bounded number of channels),
                // once the publishes still in flight on it have had their time.
                let old = self.channel.write().expect("publisher lock").take();
                if let Some(old) = old {
                    let grace = self.timeout * 2;
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        let close = old.close(200, "replaced after a failed publish".into());
                        let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
                    });
                }
            }
        }
        result
    }

    async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                // mandatory: an unroutable message is returned instead of dropped.
                BasicPublishOptions {
                    mandatory,
                    ..Default::default()
                },
                payload,
                // delivery_mode 2: persisted by the broker before it confirms.
                properties.with_delivery_mode(2),
            )
            .await?;
        match confirm.await? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_returned)) => Err(PublishError::Unroutable),
            Confirmation::Nack(_) => Err(PublishError::Nacked),
            // Confirm mode is selected on every channel this publisher opens.
            Confirmation::NotRequested => Err(PublishError::Nacked),
        }
    }

    async fn channel(&self) -> Result<Channel, PublishError> {
        if let Some(channel) = self.usable_channel() {
            return Ok(channel);
        }
        let _opening = self.opening.lock().await;
        if let Some(channel) = self.usable_channel() {
            return Ok(channel);
        }
        let connection = self.broker.connection().ok_or(PublishError::NotConnected)?;
        if !connection.status().connected() {
            return Err(PublishError::NotConnected);
        }
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        // Declared on every new channel: cheap, idempotent, and it restores a topology lost
        // with a broker's data.
        self.topology.declare(&channel).await?;
        *self.channel.write().expect("publisher lock") = Some(channel.clone());
        Ok(channel)
    }

    fn usable_channel(&self) -> Option<Channel> {
        self.channel
            .read()
            .expect("publisher lock")
            .as_ref()
            .filter(|c| c.status().connected())
            .cloned()
    }
}
