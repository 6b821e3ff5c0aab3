//! RabbitMQ topology and confirmed publishing against the real broker.

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicRejectOptions};
use plaidhook::broker::{Broker, PublishError, Topology};

#[test]
fn the_definitions_file_in_deploy_is_the_topology_the_service_declares() {
    let file = std::fs::read_to_string("deploy/rabbitmq-definitions.json").unwrap();
    let on_disk: serde_json::Value = serde_json::from_str(&file).unwrap();
    // The defaults: no namespace, rabbitmq.delivery_limit = 10.
    let declared = Topology::new("", 10).definitions("/");
    assert_eq!(
        on_disk, declared,
        "regenerate with `plaidhook topology > deploy/rabbitmq-definitions.json`"
    );
}

#[tokio::test]
async fn a_webhook_of_any_type_is_routable_and_a_publish_nobody_can_route_is_a_failure() {
    let topology = testkit::test_topology(5);
    let (publisher, shutdown) = testkit::publisher_for(&topology).await;
    let channel = testkit::amqp_channel().await.unwrap();
    let exchange = topology.webhooks_exchange();
    let depth = |queue: String| {
        let channel = channel.clone();
        async move {
            let passive = lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            channel
                .queue_declare(queue.into(), passive, Default::default())
                .await
                .unwrap()
                .message_count()
        }
    };
    for routing_key in [
        "TRANSACTIONS.SYNC_UPDATES_AVAILABLE",
        "ITEM.ERROR",
        "LINK.SESSION_FINISHED",
        // Products plaidhook does not handle, and a type Plaid has not invented yet.
        "AUTH.DEFAULT_UPDATE",
        "HOLDINGS.DEFAULT_UPDATE",
        "NEXT_YEARS_PRODUCT.SOMETHING",
    ] {
        let published = publisher
            .publish(&exchange, routing_key, b"{}", Default::default())
            .await;
        assert!(published.is_ok(), "{routing_key}: {published:?}");
    }
    let arrived = testkit::eventually(Duration::from_secs(10), || async {
        depth(topology.sync_queue()).await == 1
            && depth(topology.items_queue()).await == 1
            && depth(topology.link_queue()).await == 1
            && depth(topology.unrouted_queue()).await == 3
    })
    .await;
    assert!(
        arrived,
        "each webhook is in its queue, the unbound types in plaidhook.unrouted"
    );

    // A mandatory publish no queue takes (here: to a queue that does not exist) fails loudly.
    let missing = format!("no-such-queue-{}", uuid::Uuid::new_v4().simple());
    let unroutable = publisher
        .publish("", &missing, b"{}", Default::default())
        .await;
    assert!(
        matches!(unroutable, Err(PublishError::Unroutable)),
        "{unroutable:?}"
    );

    topology.delete(&channel).await.unwrap();
    shutdown.cancel();
}

#[tokio::test]
async fn declaring_twice_is_harmless_and_a_message_past_its_delivery_limit_parks_in_the_dead_queue()
{
    let topology = testkit::test_topology(2);
    let (publisher, shutdown) = testkit::publisher_for(&topology).await;
    let channel = testkit::amqp_channel().await.unwrap();
    topology
        .declare(&channel)
        .await
        .expect("a second declare with the same arguments succeeds");

    publisher
        .publish(
            &topology.webhooks_exchange(),
            "ITEM.ERROR",
            b"poison",
            Default::default(),
        )
        .await
        .unwrap();
    // Deliver and requeue until the quorum queue gives up on it.
    let mut deliveries = 0;
    while let Some(message) = channel
        .basic_get(topology.items_queue().into(), BasicGetOptions::default())
        .await
        .unwrap()
    {
        deliveries += 1;
        channel
            .basic_reject(
                message.delivery.delivery_tag,
                BasicRejectOptions { requeue: true },
            )
            .await
            .unwrap();
        assert!(
            deliveries <= 5,
            "the delivery limit did not stop redelivery"
        );
    }
    let parked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(message) = channel
                .basic_get(
                    topology.dead_queue().into(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .unwrap()
            {
                return message.delivery.data.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the message reaches plaidhook.dead");
    assert_eq!(parked, b"poison");
    assert_eq!(
        deliveries,
        2 + 1,
        "delivered up to the limit, then once more over it"
    );

    topology.delete(&channel).await.unwrap();
    shutdown.cancel();
}

#[tokio::test]
async fn a_retried_message_comes_back_after_its_delay_and_a_parked_one_lands_in_the_dead_queue() {
    use plaidhook::broker::consumer::{run, ConsumerSpec, Message, Outcome};
    use std::sync::{Arc, Mutex};

    let topology = testkit::test_topology(5);
    let (publisher, shutdown) = testkit::publisher_for(&topology).await;
    let publisher = Arc::new(publisher);
    let seen: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let spec = ConsumerSpec {
        name: "test",
        queue: topology.sync_queue(),
        prefetch: 4,
        retry_queues: topology.retry_queues(&topology.sync_queue()),
    };
    let record = seen.clone();
    let handler = move |message: Message| {
        let record = record.clone();
        async move {
            let body = String::from_utf8(message.body).unwrap();
            record.lock().unwrap().push((body.clone(), message.attempt));
            match (body.as_str(), message.attempt) {
                ("flaky", 0) => Outcome::Retry {
                    reason: "rate limited".into(),
                },
                ("poison", _) => Outcome::Park {
                    reason: "cannot ever work".into(),
                },
                _ => Outcome::Ack,
            }
        }
    };
    let broker = Broker::start(
        vec![testkit::amqp_url().into()],
        "plaidhook-test-consumer",
        shutdown.clone(),
    );
    let consumer = tokio::spawn(run(
        broker,
        publisher.clone(),
        spec,
        handler,
        shutdown.clone(),
    ));

    let exchange = topology.webhooks_exchange();
    for body in ["flaky", "poison"] {
        publisher
            .publish(
                &exchange,
                "TRANSACTIONS.SYNC_UPDATES_AVAILABLE",
                body.as_bytes(),
                Default::default(),
            )
            .await
            .unwrap();
    }
    let done = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if seen.lock().unwrap().contains(&("flaky".to_owned(), 1)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "the retried message came back with attempt 1: {:?}",
        seen.lock().unwrap()
    );

    let channel = testkit::amqp_channel().await.unwrap();
    let parked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(m) = channel
                .basic_get(
                    topology.dead_queue().into(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .unwrap()
            {
                return m.delivery.data.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the parked message is in plaidhook.dead");
    assert_eq!(parked, b"poison");
    let poison_deliveries = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(b, _)| b == "poison")
        .count();
    assert_eq!(poison_deliveries, 1, "a parked message is not retried");

    shutdown.cancel();
    consumer.await.unwrap();
    topology.delete(&channel).await.unwrap();
}

#[tokio::test]
async fn a_retry_copy_the_broker_refuses_returns_the_message_and_the_consumer_recovers() {
    use lapin::options::QueueDeleteOptions;
    use plaidhook::broker::consumer::{run, ConsumerSpec, Message, Outcome};
    use std::sync::{Arc, Mutex};

    // A high delivery limit: the refused message goes back to its queue several times.
    let topology = testkit::test_topology(100);
    let (publisher, shutdown) = testkit::publisher_for(&topology).await;
    let publisher = Arc::new(publisher);
    publisher.ensure_topology().await.unwrap();
    // The first delay queue is gone: every retry copy is refused (as in a memory alarm or a
    // quorum leader election, the broker will not take it).
    let channel = testkit::amqp_channel().await.unwrap();
    let delay_queue = topology.retry_queues(&topology.sync_queue())[0].clone();
    channel
        .queue_delete(delay_queue.into(), QueueDeleteOptions::default())
        .await
        .unwrap();

    let seen: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let record = seen.clone();
    let handler = move |message: Message| {
        let record = record.clone();
        async move {
            let body = String::from_utf8(message.body).unwrap();
            record.lock().unwrap().push((body.clone(), message.attempt));
            match (body.as_str(), message.attempt) {
                ("flaky", 0) => Outcome::retry("rate limited"),
                _ => Outcome::Ack,
            }
        }
    };
    let spec = ConsumerSpec {
        name: "test",
        queue: topology.sync_queue(),
        // One unacked message at most: a leaked delivery would stop this consumer for good.
        prefetch: 1,
        retry_queues: topology.retry_queues(&topology.sync_queue()),
    };
    let broker = Broker::start(
        vec![testkit::amqp_url().into()],
        "plaidhook-test-consumer",
        shutdown.clone(),
    );
    let consumer = tokio::spawn(run(
        broker,
        publisher.clone(),
        spec,
        handler,
        shutdown.clone(),
    ));
    let exchange = topology.webhooks_exchange();
    for body in ["flaky", "second"] {
        publisher
            .publish(
                &exchange,
                "TRANSACTIONS.SYNC_UPDATES_AVAILABLE",
                body.as_bytes(),
                Default::default(),
            )
            .await
            .unwrap();
    }
    let seen_at_least = |body: &'static str, attempt: u32, times: usize| {
        let seen = seen.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    let count = seen
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(b, a)| b == body && *a == attempt)
                        .count();
                    if count >= times {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await
            .is_ok()
        }
    };
    assert!(
        seen_at_least("flaky", 0, 2).await,
        "the refused message went back to its queue and came again: {:?}",
        seen.lock().unwrap()
    );
    // The broker takes publishes again: the retry goes through and the consumer moves on.
    topology.declare(&channel).await.unwrap();
    assert!(
        seen_at_least("flaky", 1, 1).await,
        "the retry went through: {:?}",
        seen.lock().unwrap()
    );
    assert!(
        seen_at_least("second", 0, 1).await,
        "the message behind it was handled: {:?}",
        seen.lock().unwrap()
    );

    shutdown.cancel();
    consumer.await.unwrap();
    topology.delete(&channel).await.unwrap();
}
