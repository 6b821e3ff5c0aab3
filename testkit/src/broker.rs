//! The test broker: a namespace per test, fresh channels for looking at queues.

use std::time::Duration;

use plaidhook::broker::{Broker, Publisher, Topology};
use tokio_util::sync::CancellationToken;

/// The broker the tests use; override with `PLAIDHOOK_TEST_AMQP_URL`.
pub fn amqp_url() -> String {
    std::env::var("PLAIDHOOK_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A topology in a namespace of its own.
pub fn test_topology(delivery_limit: u32) -> Topology {
    Topology::new(
        &format!("test-{}", uuid::Uuid::new_v4().simple()),
        delivery_limit,
    )
}

/// A publisher on its own broker connection; cancel the token to close it.
pub async fn publisher_for(topology: &Topology) -> (Publisher, CancellationToken) {
    let shutdown = CancellationToken::new();
    let broker = Broker::start(vec![amqp_url().into()], "plaidhook-test", shutdown.clone());
    tokio::time::timeout(Duration::from_secs(15), broker.connected())
        .await
        .expect("RabbitMQ connects");
    (
        Publisher::new(broker, topology.clone(), Duration::from_secs(2)),
        shutdown,
    )
}

/// A fresh channel on a fresh connection, for inspecting the broker from a test.
pub async fn amqp_channel() -> lapin::Result<lapin::Channel> {
    let connection =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    // The connection closes when its last handle goes; keep it alive as long as the channel.
    std::mem::forget(connection);
    Ok(channel)
}
