//! Parked messages: listed without being consumed, replayed back to the queue they came from.

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicRejectOptions};
use plaidhook::deadletters;

#[tokio::test]
async fn a_parked_message_is_listed_without_being_consumed_and_replayed_to_its_queue() {
    let topology = testkit::test_topology(5);
    let (publisher, shutdown) = testkit::publisher_for(&topology).await;
    let channel = testkit::amqp_channel().await.unwrap();

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
    let parked_channel = testkit::amqp_channel().await.unwrap();
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

#[tokio::test]
async fn the_api_lists_a_parked_message_and_replays_it() {
    use reqwest::Method;

    let harness = testkit::api::start(&[]).await;
    let app = &harness.app;
    // Nothing parked yet (and the call declares the topology if no one has yet).
    let (status, empty) = harness
        .call(Method::GET, "/api/v1/dead-letters", None)
        .await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["depth"], 0);

    // Something the Item-health consumer can never handle parks at once.
    let channel = testkit::amqp_channel().await.unwrap();
    let publisher_channel = testkit::amqp_channel().await.unwrap();
    publisher_channel
        .basic_publish(
            app.topology.webhooks_exchange().into(),
            "ITEM.ERROR".into(),
            Default::default(),
            b"not an envelope",
            lapin::BasicProperties::default().with_message_id("broken-1".into()),
        )
        .await
        .unwrap();
    let parked = app
        .eventually(Duration::from_secs(15), || async {
            deadletters::depth(&channel, &app.topology).await.unwrap() == 1
        })
        .await;
    assert!(parked, "the unreadable message parked");

    let (status, listed) = harness
        .call(Method::GET, "/api/v1/dead-letters?limit=5", None)
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["depth"], 1);
    assert_eq!(listed["messages"][0]["message_id"], "broken-1");
    assert_eq!(
        listed["messages"][0]["from_queue"],
        app.topology.items_queue()
    );
    // The listing says why it parked, not only that a consumer rejected it.
    assert_eq!(listed["messages"][0]["reason"], "rejected");
    let cause = listed["messages"][0]["cause"].as_str().unwrap_or_default();
    assert!(cause.contains("envelope"), "cause: {cause:?}");
    // And the log names the message and the cause (the body, never).
    let logs = testkit::logs::captured();
    let line = logs
        .lines()
        .find(|line| line.contains("parking the message"))
        .unwrap_or_else(|| panic!("no park line in the logs:\n{logs}"));
    assert!(
        line.contains("broken-1") && line.contains("envelope"),
        "{line}"
    );
    assert!(!logs.contains("not an envelope"), "the body reached a log");

    // Listing hands the message back to the queue asynchronously (another channel's requeue
    // becomes visible to this one when the broker has applied it): wait until it is ready again.
    let requeued = app
        .eventually(Duration::from_secs(15), || async {
            deadletters::depth(&channel, &app.topology).await.unwrap() == 1
        })
        .await;
    assert!(requeued, "listing left the message parked");

    let (status, bad) = harness
        .call(
            Method::POST,
            "/api/v1/dead-letters/replay",
            Some(serde_json::json!({ "limit": 0 })),
        )
        .await;
    assert_eq!(status, 400, "{bad}");

    let (status, replayed) = harness
        .call(
            Method::POST,
            "/api/v1/dead-letters/replay",
            Some(serde_json::json!({ "limit": 10 })),
        )
        .await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["replayed"], 1);
    // Replayed to plaidhook.items, the consumer parks it again: the round trip is visible.
    let parked_again = app
        .eventually(Duration::from_secs(15), || async {
            deadletters::depth(&channel, &app.topology).await.unwrap() == 1
        })
        .await;
    assert!(parked_again);
    harness.app.stop().await.unwrap();
}

#[tokio::test]
async fn the_cli_listing_writes_only_json_on_stdout_so_it_pipes_into_a_parser() {
    let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
    // The delivery limit of config/test.toml: the CLI declares the same topology.
    let topology = plaidhook::broker::Topology::new(&namespace, 10);
    let (publisher, shutdown) = testkit::publisher_for(&topology).await;
    let channel = testkit::amqp_channel().await.unwrap();
    for id in ["pipe-1", "pipe-2"] {
        publisher
            .publish(
                &topology.webhooks_exchange(),
                "TRANSACTIONS.SYNC_UPDATES_AVAILABLE",
                br#"{"item_id":"piped"}"#,
                lapin::BasicProperties::default().with_message_id(id.into()),
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
    }
    let parked = tokio::time::timeout(Duration::from_secs(10), async {
        while deadletters::depth(&channel, &topology).await.unwrap() != 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(parked.is_ok(), "both messages parked");

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_plaidhook"))
        .args(["--environment", "test", "--config-dir"])
        .arg(testkit::config_dir())
        .args(["dead-letters", "list", "--json"])
        .env("PLAIDHOOK__RABBITMQ__NAMESPACE", &namespace)
        // Logs on, at INFO: they must go to stderr, not into the data.
        .env("PLAIDHOOK__TELEMETRY__FILTER", "info")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    let ids: Vec<String> = stdout
        .lines()
        .map(|line| {
            let message: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
            message["message_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids, ["pipe-1", "pipe-2"]);
    assert!(!stdout.contains('\u{1b}'), "no colour codes in data");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains('\u{1b}'), "no colour codes into a pipe");

    topology.delete(&channel).await.unwrap();
    shutdown.cancel();
}
