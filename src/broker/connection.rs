//! The shared AMQP connection and its health.
//!
//! lapin's auto-recovery restores a connection (and its channels) that was once established;
//! it cannot help when the broker is unreachable at start, so a background task keeps trying
//! until the first connection succeeds. With several nodes (a cluster), that task also moves
//! to the next node when the current one stays unreachable: recovery would wait for that node
//! for ever, while its peers serve the replicated queues. Broker events (blocked, unblocked, errors) are logged
//! and reflected in [`BrokerStatus`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::{Connection, ConnectionProperties, Event};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::telemetry::Repeated;

/// How long the current node may stay unreachable before plaidhook moves to the next one, when
/// it has several: longer than a connection blip lapin's recovery absorbs on the same node.
const FAILOVER_AFTER: Duration = Duration::from_secs(5);

/// How long a connection attempt may stay unanswered before the log says so.
const SLOW_CONNECT: Duration = Duration::from_secs(5);

/// Auto-recovery re-opens the connection and its channels after a broker restart.
fn connection_properties(name: &str) -> ConnectionProperties {
    ConnectionProperties::default()
        .with_connection_name(name.to_owned().into())
        .enable_auto_recover()
        // lapin's recovery gives up after 16 attempts by default; a broker that is away longer
        // must not leave this process disconnected for good. Retry for as long as it takes, at
        // least every 5 s, so the service is back soon after the broker.
        .configure_backoff(|backoff| {
            backoff
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .without_max_times()
        })
}

/// Handle to the broker connection; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    connection: watch::Sender<Option<Arc<Connection>>>,
    blocked: AtomicBool,
}

/// What `/readyz` and the metrics report about the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerStatus {
    Connected,
    /// The broker refuses publishes for now (memory or disk alarm).
    Blocked,
    Disconnected,
}

impl Broker {
    /// Starts connecting in the background and returns at once. `nodes` are the broker's URLs
    /// (one, or the nodes of a cluster) in order of preference.
    pub fn start(nodes: Vec<SecretString>, name: &str, stop: CancellationToken) -> Self {
        assert!(!nodes.is_empty(), "at least one RabbitMQ URL");
        let (connection, _) = watch::channel(None);
        let broker = Broker {
            inner: Arc::new(Inner {
                connection,
                blocked: AtomicBool::new(false),
            }),
        };
        let task = broker.clone();
        let name = name.to_owned();
        tokio::spawn(async move { task.supervise(nodes, name, stop).await });
        broker
    }

    /// Connects to the first node that answers, keeps the connection, and moves to the next
    /// node when this one stays unreachable (with several nodes), until `stop`.
    async fn supervise(self, nodes: Vec<SecretString>, name: String, stop: CancellationToken) {
        let mut node = 0;
        let mut delay = Duration::from_millis(100);
        let mut unreachable = Repeated::new("RabbitMQ connection");
        loop {
            let url = &nodes[node % nodes.len()];
            let connect = Connection::connect(url.expose_secret(), connection_properties(&name));
            tokio::pin!(connect);
            // A node that drops packets leaves the attempt pending for the TCP timeout: say so
            // early rather than stay silent (the attempt itself goes on).
            let attempt = tokio::select! {
                _ = stop.cancelled() => return,
                attempt = &mut connect => attempt,
                _ = tokio::time::sleep(SLOW_CONNECT) => {
                    tracing::warn!(broker.node = node % nodes.len(), waited_secs = SLOW_CONNECT.as_secs(), "RabbitMQ has not answered yet; still trying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        attempt = &mut connect => attempt,
                    }
                }
            };
            let connection = match attempt {
                Ok(connection) => Arc::new(connection),
                Err(error) => {
                    unreachable.failed(&format_args!(
                        "node {} unreachable, retrying in {} ms: {error}",
                        node % nodes.len(),
                        delay.as_millis()
                    ));
                    node += 1;
                    // A pause once every node has been tried.
                    if node % nodes.len() == 0 {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    continue;
                }
            };
            delay = Duration::from_millis(100);
            unreachable.recovered();
            tracing::info!(broker.node = node % nodes.len(), "connected to RabbitMQ");
            let watching = stop.child_token();
            self.watch_events(&connection, watching.clone());
            self.inner.blocked.store(false, Ordering::Relaxed);
            self.inner.connection.send_replace(Some(connection.clone()));
            let lost = self.hold(&connection, nodes.len() > 1, &stop).await;
            watching.cancel();
            if !lost {
                let _ = connection
                    .close(200, "plaidhook shutting down".into())
                    .await;
                self.inner.connection.send_replace(None);
                return;
            }
            tracing::warn!(
                broker.node = node % nodes.len(),
                after_secs = FAILOVER_AFTER.as_secs(),
                "RabbitMQ node unreachable; moving to the next node"
            );
            // The old connection stops recovering; whoever used it resumes on the new one.
            tokio::spawn(async move {
                let close = connection.close(320, "plaidhook moved to another node".into());
                let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
            });
            node += 1;
        }
    }

    /// Holds `connection` until `stop` (false) or, when another node can take over, until it
    /// has been down for [`FAILOVER_AFTER`] (true). A lone node is left to lapin's recovery.
    async fn hold(
        &self,
        connection: &Connection,
        can_fail_over: bool,
        stop: &CancellationToken,
    ) -> bool {
        let mut down_since: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            if !can_fail_over || connection.status().connected() {
                down_since = None;
                continue;
            }
            if down_since.get_or_insert_with(Instant::now).elapsed() >= FAILOVER_AFTER {
                return true;
            }
        }
    }

    fn watch_events(&self, connection: &Connection, shutdown: CancellationToken) {
        let mut events = connection.events_listener();
        let inner = self.inner.clone();
        tokio::spawn(async move {
            // Recovery retries every few seconds while the broker is away: logged on change.
            let mut errors = Repeated::new("RabbitMQ connection recovery");
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = events.next() => event,
                };
                match event {
                    None => return,
                    Some(Event::ConnectionBlocked(reason)) => {
                        tracing::warn!(reason = %reason, "RabbitMQ blocked the connection");
                        inner.blocked.store(true, Ordering::Relaxed);
                    }
                    Some(Event::ConnectionUnblocked) => {
                        tracing::info!("RabbitMQ unblocked the connection");
                        inner.blocked.store(false, Ordering::Relaxed);
                    }
                    Some(Event::Connected) => {
                        errors.recovered();
                        tracing::info!("RabbitMQ connection (re)established")
                    }
                    Some(Event::Error(error)) => errors.failed(&error),
                    Some(_) => {}
                }
            }
        });
    }

    /// Closes the connection. Called once everything that acks or publishes has stopped: a
    /// consumer's last acks and retry copies go out on it.
    pub async fn close(&self) {
        if let Some(connection) = self.inner.connection.send_replace(None) {
            if let Err(error) = connection
                .close(200, "plaidhook shutting down".into())
                .await
            {
                tracing::debug!(error = %error, "RabbitMQ connection already closed");
            }
        }
    }

    /// The connection, if one has been established (it may be recovering).
    pub fn connection(&self) -> Option<Arc<Connection>> {
        self.inner.connection.borrow().clone()
    }

    /// Waits until a connection has been established once.
    pub async fn connected(&self) -> Arc<Connection> {
        let mut rx = self.inner.connection.subscribe();
        let connection = rx
            .wait_for(Option::is_some)
            .await
            .expect("the sender lives as long as the broker");
        connection.clone().expect("waited for Some")
    }

    /// Resolves once the broker has moved to another connection than `current` (another node
    /// of the cluster): whatever runs on `current` must start again on the new one.
    pub async fn superseded(&self, current: &Arc<Connection>) {
        let mut rx = self.inner.connection.subscribe();
        let moved = rx
            .wait_for(|now| !now.as_ref().is_some_and(|now| Arc::ptr_eq(now, current)))
            .await
            .is_ok();
        if !moved {
            // The broker handle is gone: nothing will ever supersede it.
            std::future::pending::<()>().await;
        }
    }

    pub fn status(&self) -> BrokerStatus {
        match self.connection() {
            Some(c) if c.status().connected() => {
                if self.inner.blocked.load(Ordering::Relaxed) || c.status().blocked() {
                    BrokerStatus::Blocked
                } else {
                    BrokerStatus::Connected
                }
            }
            _ => BrokerStatus::Disconnected,
        }
    }
}
