//! RabbitMQ.
//!
//! - `connection`: one long-lived AMQP connection with lapin's auto-recovery, reconnected in the
//!   background when the broker is down at start; its health feeds `/readyz`.
//! - `topology`: the exchanges and queues, declared idempotently.
//! - `publisher`: persistent, mandatory publishes on a shared confirm-mode channel, under a
//!   deadline.
//! - `consumer`: manual-ack consumers with bounded prefetch, retry through delay queues, and
//!   parking in `plaidhook.dead`.
//!
//! The service keeps running while the broker is away: ingress spools, consumers wait.

mod connection;
pub mod consumer;
mod publisher;
mod topology;

pub use connection::{Broker, BrokerStatus};
pub use consumer::{ConsumerSpec, Message, Outcome};
pub use publisher::{PublishError, Publisher};
pub use topology::{Topology, RETRY_DELAYS};
