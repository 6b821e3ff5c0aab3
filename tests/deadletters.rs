//! Parked messages: listed without being consumed, replayed back to the queue they came from.

mod common;

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicRejectOptions};
use plaidhook::broker::{Broker, Publisher, Topology};
use plaidhook::deadletters;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_parked_message_is_listed_without_being_consumed_and_replayed_to_its_queue() {
    let topology = Topology::new(&format!("test-{}", uuid::Uuid::new_v4().simple()), 5);
    let shutdown = CancellationToken::new();
    let broker = Broker::start(
        common::amqp_url().into(),
        "plaidhook-test",
        shutdown.clone(),
    );
    tokio::time::timeout(Duration::from_secs(15), broker.connected())
        .await
        .unwrap();
    let publisher = Publisher::new(broker, topology.clone(), Duration::from_secs(2));
    let channel = common::amqp_channel().await.unwrap();

    // Park one message the way a consumer does: reject it without requeue.
    publisher
        .publish(
            &topology.webhooks_exchange(),
            "TRANSACTIONS.SYNC_UPDATES_AVAILABLE",
            br#"{"item_id":"parked"}"#,
            lapin::BasicProperties::default().with_message_id("m-1".into()),
        )
        .await
        .unwrap();
    let message = channel
        .basic_get(topology.sync_queue().into(), BasicGetOptions::default())
        .await
        .unwrap()
        .expect("the message is on the sync queue");
    channel
        .basic_reject(
            message.delivery.delivery_tag,
            BasicRejectOptions { requeue: false },
        )
        .await
        .unwrap();
    let parked_channel = common::amqp_channel().await.unwrap();
    let parked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if deadletters::depth(&parked_channel, &topology)
                .await
                .unwrap()
                == 1
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        parked.is_ok(),
        "the rejected message reached plaidhook.dead"
    );

    let listed = deadletters::list(&parked_channel, &topology, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].message_id.as_deref(), Some("m-1"));
    assert_eq!(
        listed[0].from_queue.as_deref(),
        Some(topology.sync_queue().as_str())
    );
    assert_eq!(listed[0].reason.as_deref(), Some("rejected"));
    assert!(listed[0].body_preview.contains("parked"));
    // Listing puts every message back (nack with requeue), which the broker applies
    // asynchronously: wait for the count to settle.
    let still_parked = tokio::time::timeout(Duration::from_secs(10), async {
        while deadletters::depth(&parked_channel, &topology)
            .await
            .unwrap()
            != 1
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(still_parked.is_ok(), "listing does not consume");

    let replayed = deadletters::replay(&parked_channel, &publisher, usize::MAX, false)
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    assert_eq!(
        deadletters::depth(&parked_channel, &topology)
            .await
            .unwrap(),
        0
    );
    let back = channel
        .basic_get(
            topology.sync_queue().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("the replayed message is back on the sync queue");
    assert_eq!(back.delivery.data, br#"{"item_id":"parked"}"#);
    let headers = back
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    assert!(
        !headers.inner().contains_key("x-death"),
        "a replay starts afresh"
    );

    topology.delete(&channel).await.unwrap();
    shutdown.cancel();
}
