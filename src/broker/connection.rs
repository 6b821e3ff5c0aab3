//! The shared AMQP connection and its health.
//!
//! lapin's auto-recovery restores a connection (and its channels) that was once established;
//! it cannot help when the broker is unreachable at start, so a background task keeps trying
//! until the first connection succeeds. Broker events (blocked, unblocked, errors) are logged
//! and reflected in [`BrokerStatus`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::{Connection, ConnectionProperties, Event};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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
    /// Starts connecting in the background and returns at once.
    pub fn start(url: SecretString, name: &str, shutdown: CancellationToken) -> Self {
        let (connection, _) = watch::channel(None);
        let broker = Broker {
            inner: Arc::new(Inner {
                connection,
                blocked: AtomicBool::new(false),
            }),
        };
        let task = broker.clone();
        let name = name.to_owned();
        tokio::spawn(async move { task.connect_until_up(url, name, shutdown).await });
        broker
    }

    async fn connect_until_up(self, url: SecretString, name: String, shutdown: CancellationToken) {
        let mut delay = Duration::from_millis(100);
        loop {
            // Auto-recovery re-opens the connection and its channels after a broker restart.
            let properties = ConnectionProperties::default()
                .with_connection_name(name.clone().into())
                .enable_auto_recover()
                // lapin's recovery gives up after 16 attempts by default; a broker that is away
                // longer must not leave this process disconnected for good. Retry for as long as
                // it takes, at least every 5 s, so the service is back soon after the broker.
                .configure_backoff(|backoff| {
                    backoff
                        .with_min_delay(Duration::from_millis(200))
                        .with_max_delay(Duration::from_secs(5))
                        .without_max_times()
                });
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => return,
                attempt = Connection::connect(url.expose_secret(), properties) => attempt,
            };
            match attempt {
                Ok(connection) => {
                    tracing::info!("connected to RabbitMQ");
                    let connection = Arc::new(connection);
                    self.watch_events(&connection, shutdown.clone());
                    self.inner.connection.send_replace(Some(connection.clone()));
                    shutdown.cancelled().await;
                    let _ = connection
                        .close(200, "plaidhook shutting down".into())
                        .await;
                    self.inner.connection.send_replace(None);
                    return;
                }
                Err(error) => {
                    tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "RabbitMQ unreachable");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn watch_events(&self, connection: &Connection, shutdown: CancellationToken) {
        let mut events = connection.events_listener();
        let inner = self.inner.clone();
        tokio::spawn(async move {
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
                    Some(Event::Connected) => tracing::info!("RabbitMQ connection (re)established"),
                    Some(Event::Error(error)) => {
                        tracing::warn!(error = %error, "RabbitMQ connection error")
                    }
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
