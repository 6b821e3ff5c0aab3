//! Every Plaid webhook type is an input: none is unroutable, none can stop the delivery of the
//! others, and a legacy transactions webhook costs no extra Plaid call.

use std::time::Duration;

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use plaidhook::app::Role;
use plaidhook::messages::SyncTrigger;
use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::world::{sim_config, World};
use testkit::{spawn_app_with, TestApp};

const WITHIN: Duration = Duration::from_secs(15);

fn webhook(webhook_type: &str, code: &str, item_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "webhook_type": webhook_type, "webhook_code": code, "item_id": item_id,
        "environment": "sandbox"
    }))
    .unwrap()
}

async fn post_signed(app: &TestApp, sign: &plaidhook::sim::Sim, body: Vec<u8>) -> StatusCode {
    let header = sign.sign_webhook(&body);
    app.http
        .post(app.webhook_url())
        .header("Plaid-Verification", header)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn webhooks_of_other_products_are_kept_and_never_hold_back_the_sync_webhooks() {
    let app = spawn_app_with(Role::Serve, &[]).await;
    assert!(app.wait_broker_connected(WITHIN).await);
    let others = [
        ("AUTH", "DEFAULT_UPDATE"),
        ("HOLDINGS", "DEFAULT_UPDATE"),
        ("INVESTMENTS_TRANSACTIONS", "DEFAULT_UPDATE"),
        ("LIABILITIES", "DEFAULT_UPDATE"),
        ("TRANSFER", "TRANSFER_EVENTS_UPDATE"),
        ("IDENTITY", "DEFAULT_UPDATE"),
        ("A_PRODUCT_PLAID_ADDS_NEXT_YEAR", "SOMETHING_NEW"),
    ];
    for (index, (webhook_type, code)) in others.iter().enumerate() {
        let other = webhook(webhook_type, code, &format!("item-{index}"));
        assert_eq!(post_signed(&app, app.sim(), other).await, StatusCode::OK);
        let sync = webhook(
            "TRANSACTIONS",
            "SYNC_UPDATES_AVAILABLE",
            &format!("item-{index}"),
        );
        assert_eq!(post_signed(&app, app.sim(), sync).await, StatusCode::OK);
    }
    let link = webhook("LINK", "SESSION_FINISHED", "item-link");
    assert_eq!(post_signed(&app, app.sim(), link).await, StatusCode::OK);

    let topology = &app.topology;
    let (sync, unrouted, link) = (
        topology.sync_queue(),
        topology.unrouted_queue(),
        topology.link_queue(),
    );
    let delivered = app
        .eventually(WITHIN, || async {
            app.queue_depth(&sync).await as usize == others.len()
                && app.queue_depth(&unrouted).await as usize == others.len()
                && app.queue_depth(&link).await == 1
                && app.spool_depth().await == 0
        })
        .await;
    assert!(
        delivered,
        "sync {} unrouted {} link {} spool {}",
        app.queue_depth(&sync).await,
        app.queue_depth(&unrouted).await,
        app.queue_depth(&link).await,
        app.spool_depth().await
    );
    app.stop().await.unwrap();
}

/// A queue the broker refuses every publish to (`x-max-length` 0, `reject-publish`), bound to
/// `plaid.webhooks` for one made-up type: a subscriber's full queue, made permanent.
async fn refusing_queue(app: &TestApp, routing_key: &str) -> String {
    // The exchange exists once the app has declared its topology: make sure it has.
    app.publisher.ensure_topology().await.unwrap();
    let channel = testkit::amqp_channel().await.unwrap();
    let name = format!("{}.refusing", app.settings.rabbitmq.namespace);
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongUInt(0));
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    channel
        .queue_declare(
            name.clone().into(),
            QueueDeclareOptions {
                auto_delete: false,
                ..Default::default()
            },
            arguments,
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            name.clone().into(),
            app.topology.webhooks_exchange().into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    name
}

#[tokio::test]
async fn a_spooled_webhook_the_broker_keeps_refusing_is_parked_and_the_rows_behind_it_are_relayed()
{
    let h = testkit::api::start(&[]).await;
    let app = &h.app;
    let refusing = refusing_queue(app, "REFUSED.#").await;

    // The broker refuses the first webhook: it is spooled (and answered 200), and the ones
    // after it join it in the spool to keep their order.
    let refused = webhook("REFUSED", "ALWAYS", "item-refused");
    assert_eq!(post_signed(app, app.sim(), refused).await, StatusCode::OK);
    for index in 0..5 {
        let body = webhook(
            "ITEM",
            "WEBHOOK_UPDATE_ACKNOWLEDGED",
            &format!("nobody-{index}"),
        );
        assert_eq!(post_signed(app, app.sim(), body).await, StatusCode::OK);
    }

    // After a bounded number of refusals the row is parked and the rest go through.
    let parked = app
        .eventually(Duration::from_secs(30), || async {
            app.spool_depth_pending().await == 0
                && plaidhook::webhook::spool::parked_depth(&app.db)
                    .await
                    .unwrap()
                    == 1
        })
        .await;
    assert!(parked, "the refused row parked, the others relayed");
    let (status, listed) = h.call(Method::GET, "/api/v1/spool/parked", None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["depth"], 1);
    let row = &listed["webhooks"][0];
    assert_eq!(row["routing_key"], "REFUSED.ALWAYS");
    assert_eq!(row["attempts"], plaidhook::webhook::spool::MAX_REFUSALS);
    assert!(
        row["last_error"].as_str().unwrap().contains("nack"),
        "{row}"
    );

    // The subscriber's queue is fixed (here: gone); the operator replays; the webhook arrives.
    let channel = testkit::amqp_channel().await.unwrap();
    channel
        .queue_delete(refusing.into(), Default::default())
        .await
        .unwrap();
    let (status, replayed) = h
        .call(Method::POST, "/api/v1/spool/parked/replay", None)
        .await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["replayed"], 1);
    let unrouted = app.topology.unrouted_queue();
    let arrived = app
        .eventually(WITHIN, || async {
            app.spool_depth().await == 0 && app.queue_depth(&unrouted).await == 1
        })
        .await;
    assert!(arrived, "the replayed webhook was relayed");
    h.app.stop().await.unwrap();
}

/// `/transactions/sync` calls made for the Item.
async fn sync_calls(world: &World, item_id: uuid::Uuid) -> i64 {
    sqlx::query_scalar(
        "select count(*) from plaid_api_calls where method = '/transactions/sync' and item_id = $1",
    )
    .bind(item_id)
    .fetch_one(&world.db)
    .await
    .unwrap()
}

/// The value of a counter on `/metrics` with these labels (0 when absent).
async fn counter(app: &TestApp, name: &str, label: &str) -> f64 {
    app.metrics_text()
        .await
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_legacy_transactions_webhook_costs_no_plaid_call_once_the_item_syncs_with_a_cursor() {
    let world = World::new(sim_config()).await;
    let node = world.node(Role::All, &[]).await;
    let synced = world.link(Some(node.webhook_url()), 50).await;
    node.request_sync(&synced.plaid_item_id, SyncTrigger::Exchange)
        .await;
    world.assert_in_step(&synced, WITHIN).await;
    let calls_before = sync_calls(&world, synced.id).await;

    for code in [
        "DEFAULT_UPDATE",
        "INITIAL_UPDATE",
        "HISTORICAL_UPDATE",
        "TRANSACTIONS_REMOVED",
    ] {
        let body = webhook("TRANSACTIONS", code, &synced.plaid_item_id);
        assert_eq!(post_signed(&node, world.sim(), body).await, StatusCode::OK);
    }
    let name = plaidhook::telemetry::names::SYNC_LEGACY_WEBHOOKS_IGNORED;
    let ignored = node
        .eventually(WITHIN, || async { counter(&node, name, "").await >= 4.0 })
        .await;
    assert!(ignored, "the four legacy webhooks were taken and counted");
    assert_eq!(sync_calls(&world, synced.id).await, calls_before);

    // An Item that never synced has no SYNC_UPDATES_AVAILABLE coming: the legacy webhook syncs.
    let fresh = world.link(Some(node.webhook_url()), 20).await;
    let body = webhook("TRANSACTIONS", "DEFAULT_UPDATE", &fresh.plaid_item_id);
    assert_eq!(post_signed(&node, world.sim(), body).await, StatusCode::OK);
    world.assert_in_step(&fresh, WITHIN).await;
    let runs = world.runs(&fresh).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].trigger, "webhook");
    node.stop().await.unwrap();
    world.finish().await;
}

/// Every webhook example in Plaid's full spec, pretty-printed as Plaid sends them; `None` when
/// the spec is not where the tests look for it.
fn spec_webhook_examples() -> Option<Vec<serde_json::Value>> {
    let path = crate::helpers::schemas::spec_dir().join("2020-09-14.yml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("SKIPPED: Plaid's full spec not found at {}", path.display());
        return None;
    };
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("the spec parses");
    let spec: serde_json::Value = serde_json::to_value(yaml).expect("the spec converts");
    let mut examples = Vec::new();
    for (name, schema) in spec["components"]["schemas"].as_object().unwrap() {
        if !name.ends_with("Webhook") {
            continue;
        }
        if let Some(found) = schema["x-examples"].as_object() {
            examples.extend(found.values().filter(|e| e.is_object()).cloned());
        }
    }
    Some(examples)
}

#[tokio::test]
async fn every_webhook_example_in_plaids_spec_is_accepted_routed_and_none_holds_back_the_syncs() {
    let Some(examples) = spec_webhook_examples() else {
        return;
    };
    assert!(examples.len() >= 80, "{} examples", examples.len());
    let app = spawn_app_with(Role::Serve, &[]).await;
    assert!(app.wait_broker_connected(WITHIN).await);
    // A subscriber that takes everything, as a downstream service binding `#` would.
    let everything = app
        .subscribe(
            "subscriber-everything",
            &app.topology.webhooks_exchange(),
            "#",
        )
        .await;

    let mut transactions = 0;
    for (index, example) in examples.iter().enumerate() {
        if example["webhook_type"] == "TRANSACTIONS" {
            transactions += 1;
        }
        // Pretty-printed, as Plaid sends them: the signature covers these exact bytes.
        let body = serde_json::to_vec_pretty(example).unwrap();
        let status = post_signed(&app, app.sim(), body).await;
        assert_eq!(status, StatusCode::OK, "example {index}: {example}");
        let sync = webhook(
            "TRANSACTIONS",
            "SYNC_UPDATES_AVAILABLE",
            &format!("item-{index}"),
        );
        assert_eq!(post_signed(&app, app.sim(), sync).await, StatusCode::OK);
    }
    let expected_sync = examples.len() + transactions;
    let sync = app.topology.sync_queue();
    let delivered = app
        .eventually(WITHIN, || async {
            app.spool_depth().await == 0
                && app.queue_depth(&sync).await as usize == expected_sync
                && app.queue_depth(&everything).await as usize == 2 * examples.len()
        })
        .await;
    assert!(
        delivered,
        "spool {} sync {}/{expected_sync} subscriber {}/{}",
        app.spool_depth().await,
        app.queue_depth(&sync).await,
        app.queue_depth(&everything).await,
        2 * examples.len()
    );
    app.unsubscribe(&everything).await;
    app.stop().await.unwrap();
}
