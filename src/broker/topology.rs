//! The exchanges and queues plaidhook uses, declared idempotently at start.
//!
//! ```text
//! plaid.webhooks (topic) ── TRANSACTIONS.# ──▶ plaidhook.sync   (quorum)
//!      │                 ├─ ITEM.#         ──▶ plaidhook.items  (quorum)
//!      │                 ├─ LINK.#         ──▶ plaidhook.link_sessions (quorum)
//!      │                 └─ subscribers' own bindings (AUTH.#, HOLDINGS.#, …)
//!      └─ alternate exchange: whatever no binding routes
//!         plaid.webhooks.unrouted (fanout) ──▶ plaidhook.unrouted (quorum, kept 7 days)
//! plaid.events   (topic) ──▶ downstream subscribers bind their own queues
//! plaidhook.dead-letter (fanout) ──▶ plaidhook.dead (quorum, parking)
//! <queue>.retry.<delay> (quorum, TTL) ──expires──▶ default exchange ──▶ <queue>
//! ```
//!
//! Every webhook is routable by construction: a type no queue is bound for (a product plaidhook
//! does not handle, a type Plaid adds next year) goes through the alternate exchange to
//! `plaidhook.unrouted` instead of coming back as unroutable, so a `mandatory` publish of any
//! verified webhook is confirmed. Operators inspect and drain that queue; it keeps a message
//! 7 days (`x-message-ttl`) and refuses publishes past a million (`reject-publish`), which the
//! ingress answers by spooling, so nothing accepted is dropped silently.
//!
//! The retry queues are the backoff path: a consumer republishes a message that failed
//! transiently to the delay queue of its attempt; when its TTL runs out it is dead-lettered
//! back to the queue it came from. (RabbitMQ 3.10 has no delayed-message plugin.)
//!
//! The topology is described once, as data ([`Topology::exchanges`], [`Topology::queues`],
//! [`Topology::bindings`]); `declare` applies it to a broker and `definitions` renders it as
//! the RabbitMQ definitions file in `deploy/` (a test keeps that file in step). Every name can
//! carry a namespace prefix (`rabbitmq.namespace`), so tests and several deployments can share
//! one broker.

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use serde_json::{json, Value};

use crate::config::RabbitMqSettings;

/// Backoff steps of the retry path, in order.
pub const RETRY_DELAYS: [(&str, u32); 5] = [
    ("1s", 1_000),
    ("5s", 5_000),
    ("30s", 30_000),
    ("2m", 120_000),
    ("10m", 600_000),
];

/// Names of everything plaidhook declares.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    delivery_limit: u32,
    /// Replicas each quorum queue starts with (`x-quorum-initial-group-size`); 0 leaves it to
    /// the broker.
    quorum_group_size: u32,
}

/// How long `plaidhook.unrouted` keeps a message nobody consumed.
pub const PARKED_WEBHOOK_TTL_MS: u32 = 7 * 24 * 60 * 60 * 1000;
/// Most messages `plaidhook.unrouted` holds; past it publishes are refused (and spooled).
pub const UNROUTED_MAX_LENGTH: u32 = 1_000_000;

/// An exchange: name, kind (`topic`, `fanout`) and arguments.
pub struct ExchangeSpec {
    pub name: String,
    pub kind: &'static str,
    pub arguments: Vec<(&'static str, QueueArgument)>,
}

/// A quorum queue and its arguments.
pub struct QueueSpec {
    pub name: String,
    pub arguments: Vec<(&'static str, QueueArgument)>,
}

pub enum QueueArgument {
    Text(String),
    Number(u32),
}

/// `exchange` → `queue` for messages matching `routing_key`.
pub struct BindingSpec {
    pub exchange: String,
    pub queue: String,
    pub routing_key: &'static str,
}

impl Topology {
    pub fn new(namespace: &str, delivery_limit: u32) -> Self {
        let prefix = if namespace.is_empty() {
            String::new()
        } else {
            format!("{namespace}.")
        };
        Self {
            prefix,
            delivery_limit,
            quorum_group_size: 0,
        }
    }

    /// The topology `settings` describe (namespace, delivery limit, quorum group size).
    pub fn from_settings(settings: &RabbitMqSettings) -> Self {
        Self {
            quorum_group_size: settings.quorum_initial_group_size,
            ..Self::new(&settings.namespace, settings.delivery_limit)
        }
    }

    fn name(&self, base: &str) -> String {
        format!("{}{}", self.prefix, base)
    }

    /// Verified webhooks, routed by `<webhook_type>.<webhook_code>`.
    pub fn webhooks_exchange(&self) -> String {
        self.name("plaid.webhooks")
    }

    /// Where `plaid.webhooks` sends what no binding routes (its alternate exchange).
    pub fn unrouted_exchange(&self) -> String {
        self.name("plaid.webhooks.unrouted")
    }

    /// Verified webhooks of types no queue is bound for, kept for operators.
    pub fn unrouted_queue(&self) -> String {
        self.name("plaidhook.unrouted")
    }

    /// LINK webhooks (`SESSION_FINISHED`, `ITEM_ADD_RESULT`, `EVENTS`): how the Hosted Link
    /// sessions plaidhook opened ended. (Before Hosted Link was consumed, `plaidhook.link` kept
    /// them unconsumed; an upgraded broker may still hold that queue: it can be deleted.)
    pub fn link_queue(&self) -> String {
        self.name("plaidhook.link_sessions")
    }

    /// Events for downstream subscribers (`transactions.synced`, `alert.raised`, …).
    pub fn events_exchange(&self) -> String {
        self.name("plaid.events")
    }

    /// Where consumer queues send messages past their delivery limit.
    pub fn dead_letter_exchange(&self) -> String {
        self.name("plaidhook.dead-letter")
    }

    pub fn sync_queue(&self) -> String {
        self.name("plaidhook.sync")
    }

    pub fn items_queue(&self) -> String {
        self.name("plaidhook.items")
    }

    pub fn dead_queue(&self) -> String {
        self.name("plaidhook.dead")
    }

    /// The delay queues of `queue`, in backoff order.
    pub fn retry_queues(&self, queue: &str) -> Vec<String> {
        RETRY_DELAYS
            .iter()
            .map(|(label, _)| format!("{queue}.retry.{label}"))
            .collect()
    }

    pub fn exchanges(&self) -> Vec<ExchangeSpec> {
        vec![
            ExchangeSpec {
                name: self.webhooks_exchange(),
                kind: "topic",
                // Whatever no binding routes goes on to plaidhook.unrouted instead of back.
                arguments: vec![(
                    "alternate-exchange",
                    QueueArgument::Text(self.unrouted_exchange()),
                )],
            },
            ExchangeSpec {
                name: self.unrouted_exchange(),
                kind: "fanout",
                arguments: Vec::new(),
            },
            ExchangeSpec {
                name: self.events_exchange(),
                kind: "topic",
                arguments: Vec::new(),
            },
            ExchangeSpec {
                name: self.dead_letter_exchange(),
                kind: "fanout",
                arguments: Vec::new(),
            },
        ]
    }

    pub fn queues(&self) -> Vec<QueueSpec> {
        // Replicated, and it counts deliveries (x-delivery-limit needs a quorum queue).
        let quorum = ("x-queue-type", QueueArgument::Text("quorum".into()));
        let consumer = |name: String| QueueSpec {
            name,
            arguments: vec![
                ("x-queue-type", QueueArgument::Text("quorum".into())),
                // RabbitMQ 3.10 has no default limit: a poison message would loop forever.
                (
                    "x-delivery-limit",
                    QueueArgument::Number(self.delivery_limit),
                ),
                (
                    "x-dead-letter-exchange",
                    QueueArgument::Text(self.dead_letter_exchange()),
                ),
                // At-least-once dead-lettering: a message leaves only once the parking queue
                // has it. It requires the reject-publish overflow behaviour.
                (
                    "x-dead-letter-strategy",
                    QueueArgument::Text("at-least-once".into()),
                ),
                ("x-overflow", QueueArgument::Text("reject-publish".into())),
            ],
        };
        let delay = |queue: &str, name: String, ttl_ms: u32| QueueSpec {
            name,
            arguments: vec![
                ("x-queue-type", QueueArgument::Text("quorum".into())),
                ("x-message-ttl", QueueArgument::Number(ttl_ms)),
                // Expired messages go back to the queue they came from, through the default
                // exchange (routing key = queue name).
                ("x-dead-letter-exchange", QueueArgument::Text(String::new())),
                (
                    "x-dead-letter-routing-key",
                    QueueArgument::Text(queue.to_owned()),
                ),
                (
                    "x-dead-letter-strategy",
                    QueueArgument::Text("at-least-once".into()),
                ),
                ("x-overflow", QueueArgument::Text("reject-publish".into())),
            ],
        };
        // Webhooks no plaidhook consumer takes yet: kept a week for operators and subscribers.
        let kept = |name: String, max_length: Option<u32>| {
            let mut arguments = vec![
                ("x-queue-type", QueueArgument::Text("quorum".into())),
                (
                    "x-message-ttl",
                    QueueArgument::Number(PARKED_WEBHOOK_TTL_MS),
                ),
            ];
            if let Some(max_length) = max_length {
                arguments.push(("x-max-length", QueueArgument::Number(max_length)));
                // Refuse rather than drop the oldest: a refused publish is spooled, not lost.
                arguments.push(("x-overflow", QueueArgument::Text("reject-publish".into())));
            }
            QueueSpec { name, arguments }
        };
        let mut queues = vec![
            consumer(self.sync_queue()),
            consumer(self.items_queue()),
            consumer(self.link_queue()),
            kept(self.unrouted_queue(), Some(UNROUTED_MAX_LENGTH)),
            QueueSpec {
                name: self.dead_queue(),
                arguments: vec![quorum],
            },
        ];
        for queue in [self.sync_queue(), self.items_queue(), self.link_queue()] {
            for (name, (_, ttl_ms)) in self.retry_queues(&queue).into_iter().zip(RETRY_DELAYS) {
                queues.push(delay(&queue, name, ttl_ms));
            }
        }
        if self.quorum_group_size > 0 {
            for queue in &mut queues {
                queue.arguments.push((
                    "x-quorum-initial-group-size",
                    QueueArgument::Number(self.quorum_group_size),
                ));
            }
        }
        queues
    }

    pub fn bindings(&self) -> Vec<BindingSpec> {
        vec![
            BindingSpec {
                exchange: self.webhooks_exchange(),
                queue: self.sync_queue(),
                routing_key: "TRANSACTIONS.#",
            },
            BindingSpec {
                exchange: self.webhooks_exchange(),
                queue: self.items_queue(),
                routing_key: "ITEM.#",
            },
            BindingSpec {
                exchange: self.webhooks_exchange(),
                queue: self.link_queue(),
                routing_key: "LINK.#",
            },
            BindingSpec {
                exchange: self.unrouted_exchange(),
                queue: self.unrouted_queue(),
                routing_key: "",
            },
            BindingSpec {
                exchange: self.dead_letter_exchange(),
                queue: self.dead_queue(),
                routing_key: "",
            },
        ]
    }

    /// Declares everything; safe to repeat (the arguments never change between calls).
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        for exchange in self.exchanges() {
            let kind = if exchange.kind == "fanout" {
                ExchangeKind::Fanout
            } else {
                ExchangeKind::Topic
            };
            // durable: survives broker restarts; auto_delete off: unbound is not unused.
            let options = ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            };
            channel
                .exchange_declare(
                    exchange.name.into(),
                    kind,
                    options,
                    field_table(exchange.arguments),
                )
                .await?;
        }
        for queue in self.queues() {
            let arguments = field_table(queue.arguments);
            // Quorum queues must be durable, and neither exclusive nor auto-delete.
            let options = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            channel
                .queue_declare(queue.name.into(), options, arguments)
                .await?;
        }
        for binding in self.bindings() {
            channel
                .queue_bind(
                    binding.queue.into(),
                    binding.exchange.into(),
                    binding.routing_key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Deletes everything `declare` made: for tests and for tearing a namespace down.
    pub async fn delete(&self, channel: &Channel) -> lapin::Result<()> {
        for queue in self.queues() {
            channel
                .queue_delete(queue.name.into(), QueueDeleteOptions::default())
                .await?;
        }
        for exchange in self.exchanges() {
            channel
                .exchange_delete(exchange.name.into(), ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }

    /// The topology as a RabbitMQ definitions document for virtual host `vhost`.
    pub fn definitions(&self, vhost: &str) -> Value {
        let exchanges: Vec<Value> = self
            .exchanges()
            .into_iter()
            .map(|e| json!({ "name": e.name, "vhost": vhost, "type": e.kind, "durable": true, "auto_delete": false, "internal": false, "arguments": json_arguments(e.arguments) }))
            .collect();
        let queues: Vec<Value> = self
            .queues()
            .into_iter()
            .map(|q| {
                json!({ "name": q.name, "vhost": vhost, "durable": true, "auto_delete": false, "arguments": json_arguments(q.arguments) })
            })
            .collect();
        let bindings: Vec<Value> = self
            .bindings()
            .into_iter()
            .map(|b| json!({ "source": b.exchange, "vhost": vhost, "destination": b.queue, "destination_type": "queue", "routing_key": b.routing_key, "arguments": {} }))
            .collect();
        json!({ "vhosts": [{ "name": vhost }], "exchanges": exchanges, "queues": queues, "bindings": bindings })
    }
}

fn field_table(arguments: Vec<(&'static str, QueueArgument)>) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in arguments {
        let value = match value {
            QueueArgument::Text(text) => AMQPValue::LongString(text.into()),
            QueueArgument::Number(number) => AMQPValue::LongUInt(number),
        };
        table.insert(key.into(), value);
    }
    table
}

fn json_arguments(arguments: Vec<(&'static str, QueueArgument)>) -> Value {
    let map: serde_json::Map<String, Value> = arguments
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                QueueArgument::Text(text) => Value::from(text),
                QueueArgument::Number(number) => Value::from(number),
            };
            (key.to_owned(), value)
        })
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_initial_group_size_is_declared_on_every_queue_and_none_by_default() {
        let group_size = |topology: &Topology| -> Vec<Value> {
            topology.definitions("/")["queues"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| q["arguments"]["x-quorum-initial-group-size"].clone())
                .collect()
        };
        let default = Topology::new("", 10);
        assert!(group_size(&default).iter().all(Value::is_null));
        let three = Topology {
            quorum_group_size: 3,
            ..Topology::new("", 10)
        };
        let declared = group_size(&three);
        assert_eq!(declared.len(), three.queues().len());
        assert!(declared.iter().all(|n| n == 3), "{declared:?}");
    }
}
