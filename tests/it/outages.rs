//! The database or the broker going away under a running plaidhook: nothing accepted is lost,
//! and the Item ends equal to Plaid once it is back.
//!
//! The app reaches PostgreSQL or RabbitMQ through a TCP proxy the test cuts and restores; the
//! servers themselves (shared by the other tests) keep running.

use std::time::Duration;

use plaidhook::app::Role;
use plaidhook::messages::SyncTrigger;
use testkit::proxy::TcpProxy;
use testkit::world::{Linked, Node, World};

#[tokio::test]
async fn a_database_outage_during_a_sync_loses_no_webhook_and_the_item_ends_equal_to_plaid() {
    let world = World::new(testkit::world::sim_config()).await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    proxy.bring_up();
    let proxied = format!("postgres://postgres@{}/{}", proxy.addr, world.database.name);
    let node = world
        .node(
            Role::All,
            &[
                ("PLAIDHOOK__DATABASE__URL", &proxied),
                ("PLAIDHOOK__DATABASE__ACQUIRE_TIMEOUT_SECS", "1"),
            ],
        )
        .await;
    let item = linked_and_synced(&world, &node).await;

    // The database goes away; the bank moves on and Plaid says so with a webhook.
    proxy.take_down();
    // The ingress needs no database to accept it: the broker confirms.
    let accepted = advance_and_deliver(&world, &item, 3).await;
    assert!(
        accepted,
        "the webhook was answered 200 with the database away"
    );
    // The sync cannot write; its message waits in a delay queue rather than being lost.
    let waiting = world
        .eventually(Duration::from_secs(15), || async {
            world.queue_depth("plaidhook.sync.retry.1s").await.0 > 0
                || world.queue_depth("plaidhook.sync.retry.5s").await.0 > 0
        })
        .await;
    assert!(waiting, "the failed sync is waiting to be retried");
    assert!(!world.in_step(&item).await, "nothing could be written yet");

    // The database is back: the retried sync brings the Item level with Plaid.
    proxy.bring_up();
    world.assert_in_step(&item, Duration::from_secs(60)).await;
    node.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn after_a_broker_outage_the_consumers_come_back_and_the_item_ends_equal_to_plaid() {
    let world = World::new(testkit::world::sim_config()).await;
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    proxy.bring_up();
    let broker = format!("amqp://guest:guest@{}/%2f?heartbeat=2", proxy.addr);
    let node = world
        .node(
            Role::All,
            &[
                ("PLAIDHOOK__RABBITMQ__URL", &broker),
                ("PLAIDHOOK__RABBITMQ__PUBLISH_TIMEOUT_MS", "500"),
            ],
        )
        .await;
    let item = linked_and_synced(&world, &node).await;

    // The broker goes away for a while: connections cut, reconnects refused.
    proxy.take_down();
    let lost = world
        .eventually(Duration::from_secs(15), || async {
            node.broker_status() == plaidhook::broker::BrokerStatus::Disconnected
        })
        .await;
    assert!(lost, "the node noticed the broker was gone");
    // Meanwhile the bank moves on; Plaid's webhook is accepted into the spool.
    let accepted = advance_and_deliver(&world, &item, 2).await;
    assert!(
        accepted,
        "the webhook was answered 200 with the broker away"
    );

    // The broker is back: the spool is relayed, the consumer resumes, the Item catches up.
    proxy.bring_up();
    world.assert_in_step(&item, Duration::from_secs(60)).await;
    node.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn with_webhooks_waiting_in_the_spool_and_the_database_failing_a_webhook_still_reaches_the_broker(
) {
    let database = testkit::TestDatabase::new();
    let pg = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mq = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    pg.bring_up();
    let db_url = format!("postgres://postgres@{}/{}", pg.addr, database.name);
    let broker_url = format!("amqp://guest:guest@{}/%2f?heartbeat=2", mq.addr);
    let app = testkit::spawn_app_with(
        Role::Serve,
        &[
            ("PLAIDHOOK__DATABASE__URL", &db_url),
            ("PLAIDHOOK__DATABASE__ACQUIRE_TIMEOUT_SECS", "1"),
            ("PLAIDHOOK__RABBITMQ__URL", &broker_url),
            ("PLAIDHOOK__RABBITMQ__PUBLISH_TIMEOUT_MS", "500"),
        ],
    )
    .await;
    let post = |item: &'static str| {
        let body = serde_json::to_vec(&serde_json::json!({
            "webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE",
            "item_id": item, "environment": "sandbox"
        }))
        .unwrap();
        let header = app.sim().sign_webhook(&body);
        app.http
            .post(app.public_url("/webhooks/plaid"))
            .header("Plaid-Verification", header)
            .body(body)
            .send()
    };

    // The broker is away: the first webhook is spooled, and the spool now has a backlog.
    assert_eq!(post("item-spooled").await.unwrap().status(), 200);
    assert_eq!(app.spool_depth().await, 1);
    // Then the database fails and the broker comes back, before the relay could drain.
    pg.take_down();
    mq.bring_up();
    assert!(app.wait_broker_connected(Duration::from_secs(15)).await);
    // Connected is not yet able to publish: wait until the publisher's channel is open and the
    // topology declared, so the next publish is one confirm, well inside its 500 ms.
    app.publisher
        .ensure_topology()
        .await
        .expect("the publisher's channel opens");
    // The spool cannot take the next webhook; the broker can, and durable beats in order.
    assert_eq!(post("item-direct").await.unwrap().status(), 200);
    let queue = app.topology.sync_queue();
    assert!(
        app.eventually(Duration::from_secs(10), || async {
            app.queue_depth(&queue).await == 1
        })
        .await
    );

    // The database is back: the spooled webhook is relayed too; none is lost.
    pg.bring_up();
    assert!(
        app.eventually(Duration::from_secs(30), || async {
            app.queue_depth(&queue).await == 2
        })
        .await
    );
    assert_eq!(app.spool_depth().await, 0);
    app.stop().await.unwrap();
    drop(database);
}

/// Links an Item whose webhooks go to `node`, and waits for its first sync.
async fn linked_and_synced(world: &World, node: &Node) -> Linked {
    let item = world.link(Some(node.webhook_url()), 300).await;
    // The first sync request goes through the outbox, as the exchange sends it: these nodes
    // publish with a short timeout, and a busy broker must delay the request, not lose it.
    let (request, queue) = node
        .sync_requests
        .prepare(&item.plaid_item_id, SyncTrigger::Exchange);
    let mut tx = node.db.begin().await.unwrap();
    plaidhook::outbox::enqueue_sync_request(&mut tx, &request, &queue)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    world.assert_in_step(&item, Duration::from_secs(30)).await;
    item
}

/// Moves the Item's bank on by `days`; true once Plaid's webhook about it was answered 200.
async fn advance_and_deliver(world: &World, item: &Linked, days: u32) -> bool {
    let delivered_before = world.sim().deliveries().len();
    world
        .sim()
        .advance(&item.plaid_item_id, days)
        .expect("the Item exists");
    world
        .eventually(Duration::from_secs(15), || async {
            world.sim().deliveries()[delivered_before..]
                .iter()
                .any(|d| d.webhook_code == "SYNC_UPDATES_AVAILABLE" && d.status == Some(200))
        })
        .await
}

/// The first sync request of a new Item is written to the outbox in the transaction that
/// stores the Item, and relayed from there: whatever the broker does at the moment of the
/// exchange, the request is committed with the Item (no scheduler here to make up for it).
#[tokio::test]
async fn a_new_items_first_sync_request_commits_with_the_item_and_is_relayed_from_the_outbox() {
    // Instant data: no INITIAL_UPDATE webhook may start a sync before the exchange's request.
    let h = testkit::api::start(&[
        ("PLAIDHOOK__SCHEDULER__ENABLED", "false"),
        ("PLAIDHOOK__SIM__INITIAL_DATA_READY", "true"),
    ])
    .await;
    let (item_id, plaid_item_id) = h.link_item("user-first-sync").await;
    let item = h
        .item_until(item_id, Duration::from_secs(60), |i| {
            i["last_sync"]["outcome"] == "succeeded"
        })
        .await;
    assert_eq!(item["last_sync"]["outcome"], "succeeded", "{item}");
    assert_eq!(item["last_sync"]["trigger"], "exchange", "{item}");
    let relayed: Vec<(serde_json::Value, bool)> = sqlx::query_as(
        "select payload, published_at is not null from outbox
         where amqp_type = 'plaidhook.sync_request'",
    )
    .fetch_all(&h.app.db)
    .await
    .unwrap();
    assert_eq!(relayed.len(), 1, "one request, from the outbox");
    assert_eq!(relayed[0].0["plaid_item_id"], plaid_item_id.as_str());
    assert_eq!(relayed[0].0["trigger"], "exchange");
    assert!(relayed[0].1, "relayed");
    h.app.stop().await.unwrap();
}

/// Two nodes of a cluster, as two routes to the test broker: the first dies for good, and the
/// service moves to the second instead of waiting for the first to come back.
#[tokio::test]
async fn with_several_broker_nodes_a_node_that_stays_down_is_left_for_the_next() {
    let world = World::new(testkit::world::sim_config()).await;
    let first = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let second = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    first.bring_up();
    second.bring_up();
    let nodes = format!(
        "amqp://guest:guest@{}/%2f?heartbeat=2,amqp://guest:guest@{}/%2f?heartbeat=2",
        first.addr, second.addr
    );
    let node = world
        .node(
            Role::All,
            &[
                ("PLAIDHOOK__RABBITMQ__URLS", &nodes),
                ("PLAIDHOOK__RABBITMQ__PUBLISH_TIMEOUT_MS", "500"),
            ],
        )
        .await;
    let item = linked_and_synced(&world, &node).await;

    first.take_down();
    // The bank moves on; the webhook is accepted (broker or spool), and the Item catches up
    // through the second node while the first never returns.
    assert!(advance_and_deliver(&world, &item, 2).await);
    world.assert_in_step(&item, Duration::from_secs(60)).await;
    assert_eq!(
        node.broker_status(),
        plaidhook::broker::BrokerStatus::Connected
    );
    node.stop().await.unwrap();
    world.finish().await;
}
