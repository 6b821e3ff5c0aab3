//! RabbitMQ: the connection every component shares.
//!
//! - `connection`: one long-lived AMQP connection with lapin's auto-recovery, reconnected in the
//!   background when the broker is down at start; its health feeds `/readyz`.
//!
//! The service keeps running while the broker is away: ingress spools, consumers wait.

mod connection;

pub use connection::{Broker, BrokerStatus};
