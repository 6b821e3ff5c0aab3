//! One sync per Item at a time, whatever arrives and whoever dies: duplicate webhooks in a
//! burst, two worker processes on one queue, and a worker process killed (SIGKILL) or stopped
//! (SIGTERM) mid-sync.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use crate::helpers::processes::worker_process;
use plaidhook::app::Role;
use plaidhook::messages::SyncTrigger;
use serde_json::json;
use testkit::world::{assert_no_overlap, sim_config, World};

const WITHIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_same_webhook_delivered_20_times_at_once_costs_at_most_one_extra_sync_and_never_a_concurrent_one(
) {
    let world = World::new(sim_config()).await;
    // Slow Plaid answers, so the burst lands while the first sync is still paging.
    world.sim().update_config(|c| c.latency_ms = 60);
    let node = world.node(Role::All, &[]).await;
    let item = world.link(Some(node.webhook_url()), 2_000).await;

    let body = json!({
        "webhook_type": "TRANSACTIONS",
        "webhook_code": "SYNC_UPDATES_AVAILABLE",
        "item_id": item.plaid_item_id,
        "initial_update_complete": true,
        "historical_update_complete": true,
        "environment": "sandbox"
    });
    let signed = world.sim().signed_webhook(&body);
    let http = reqwest::Client::new();
    let deliveries = (0..20).map(|_| {
        http.post(node.webhook_url())
            .header("Plaid-Verification", &signed.plaid_verification)
            .header("Content-Type", "application/json")
            .body(signed.body.clone())
            .send()
    });
    for response in futures::future::join_all(deliveries).await {
        assert_eq!(response.unwrap().status(), 200);
    }

    world.assert_in_step(&item, WITHIN).await;
    let settled = world
        .eventually(WITHIN, || async {
            world.queue_depth("plaidhook.sync").await.0 == 0 && world.running(&item).await == 0
        })
        .await;
    assert!(settled);
    let runs = world.runs(&item).await;
    assert!(
        (1..=2).contains(&runs.len()),
        "20 duplicates cost {} syncs: {runs:#?}",
        runs.len()
    );
    assert_no_overlap(&runs);
    assert!(runs.iter().all(|r| r.outcome == "succeeded"));
    assert_eq!(runs[0].added, 2_000);
    if let Some(extra) = runs.get(1) {
        assert_eq!(extra.trigger, "coalesced");
        assert_eq!(extra.added + extra.modified + extra.removed, 0);
    }
    node.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn two_worker_processes_share_one_queue_and_never_sync_one_item_concurrently() {
    let world = World::new(sim_config()).await;
    world.sim().update_config(|c| c.latency_ms = 20);
    let first = world.node(Role::Worker, &[]).await;
    let second = world.node(Role::Worker, &[]).await;
    let mut items = Vec::new();
    for _ in 0..6 {
        items.push(world.link(None, 1_200).await);
    }
    let consumers = world
        .eventually(Duration::from_secs(10), || async {
            world.queue_depth("plaidhook.sync").await.1 == 2
        })
        .await;
    assert!(consumers, "both workers consume plaidhook.sync");

    // Every Item asked for several times, from both processes, all at once.
    let requests = items.iter().flat_map(|item| {
        [&first, &second, &first, &second]
            .map(|node| node.request_sync(&item.plaid_item_id, SyncTrigger::Manual))
    });
    futures::future::join_all(requests).await;
    for item in &items {
        world.assert_in_step(item, WITHIN).await;
    }
    for round in 0..2 {
        for item in &items {
            world.sim().advance(&item.plaid_item_id, 3 + round);
            second
                .request_sync(&item.plaid_item_id, SyncTrigger::Webhook)
                .await;
            first
                .request_sync(&item.plaid_item_id, SyncTrigger::Webhook)
                .await;
        }
        for item in &items {
            world.assert_in_step(item, WITHIN).await;
        }
    }
    for item in &items {
        // A request that arrived while its Item's sync ran is answered by one more (coalesced)
        // run, which may still be going when the Item is already in step: wait for it to end.
        let settled = world
            .eventually(WITHIN, || async {
                world
                    .runs(item)
                    .await
                    .iter()
                    .all(|r| r.outcome != "running")
            })
            .await;
        assert!(settled, "every run of the Item ended");
        let runs = world.runs(item).await;
        assert_no_overlap(&runs);
        assert!(runs.iter().all(|r| r.outcome == "succeeded"), "{runs:#?}");
    }
    assert_eq!(world.rate_limited_calls().await, 0);
    first.stop().await.unwrap();
    second.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn a_worker_process_killed_mid_sync_leaves_nothing_behind_and_the_next_worker_finishes_the_sync(
) {
    let world = World::new(sim_config()).await;
    world.sim().update_config(|c| c.latency_ms = 150);
    let serve = world.node(Role::Serve, &[]).await;
    let item = world.link(None, 3_000).await;
    let mut doomed = worker_process(&world);
    let consuming = world
        .eventually(WITHIN, || async {
            world.queue_depth("plaidhook.sync").await.1 == 1
        })
        .await;
    assert!(consuming, "the worker process consumes");

    serve
        .request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    // Kill it once it has fetched some pages but cannot have finished (6 pages, 150 ms each).
    let mid_sync = world
        .eventually(WITHIN, || async {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from plaid_api_calls where item_id = $1 and method = '/transactions/sync'",
            )
            .bind(item.id)
            .fetch_one(&world.db)
            .await
            .unwrap()
                >= 2
        })
        .await;
    assert!(mid_sync);
    doomed.kill().expect("SIGKILL");
    doomed.wait().unwrap();
    assert!(
        world.stored(&item).await.is_empty(),
        "nothing was committed"
    );
    assert_eq!(
        world.running(&item).await,
        1,
        "the dead worker's run is left open"
    );

    let survivor = world.node(Role::Worker, &[]).await;
    world.assert_in_step(&item, WITHIN).await;
    let runs = world.runs(&item).await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[0].outcome, "failed");
    assert_eq!(runs[0].error_code.as_deref(), Some("WORKER_LOST"));
    assert_eq!(runs[1].outcome, "succeeded");
    assert_eq!(runs[1].added, 3_000);

    // Every transaction announced once, by the run that committed.
    let events = world.synced_events(&item).await;
    let mut announced = BTreeSet::new();
    for event in &events {
        assert_eq!(
            event["data"]["sync_run_id"],
            json!(runs_id(&world, &item).await)
        );
        for t in event["data"]["added"].as_array().unwrap() {
            assert!(announced.insert(t["transaction_id"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(announced.len(), 3_000);
    assert_eq!(world.queue_depth("plaidhook.dead").await.0, 0);

    survivor.stop().await.unwrap();
    serve.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn a_worker_stopped_by_sigterm_mid_sync_hands_the_request_to_its_peer_which_finishes_it_once()
{
    let world = World::new(sim_config()).await;
    world.sim().update_config(|c| c.latency_ms = 150);
    let serve = world.node(Role::Serve, &[]).await;
    let item = world.link(None, 3_000).await;
    let mut stopping = worker_process(&world);
    let consumers = |n: u32| {
        let world = &world;
        async move {
            world
                .eventually(WITHIN, || async {
                    world.queue_depth("plaidhook.sync").await.1 == n
                })
                .await
        }
    };
    assert!(consumers(1).await, "the worker process consumes");
    serve
        .request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    let mid_sync = world
        .eventually(WITHIN, || async {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from plaid_api_calls where item_id = $1 and method = '/transactions/sync'",
            )
            .bind(item.id)
            .fetch_one(&world.db)
            .await
            .unwrap()
                >= 2
        })
        .await;
    assert!(mid_sync);
    // A peer is up and consuming while the first one is told to stop (a rolling deploy).
    let peer = world.node(Role::Worker, &[]).await;
    assert!(consumers(2).await, "the peer consumes too");
    let terminated = Command::new("kill")
        .args(["-TERM", &stopping.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    // Waited for off the runtime: the simulator it may still be calling runs on this one.
    let exit = tokio::task::spawn_blocking(move || stopping.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "a graceful stop: {exit:?}");

    world.assert_in_step(&item, WITHIN).await;
    let runs = world.runs(&item).await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(
        runs[0].outcome, "retrying",
        "the stopped worker gave the Item back"
    );
    assert_eq!(runs[1].outcome, "succeeded");
    assert_eq!(runs[1].added, 3_000);
    assert_eq!(world.running(&item).await, 0);
    assert_eq!(world.queue_depth("plaidhook.sync").await.0, 0);
    assert_eq!(world.queue_depth("plaidhook.dead").await.0, 0);

    peer.stop().await.unwrap();
    serve.stop().await.unwrap();
    world.finish().await;
}

/// The id of the Item's succeeded run.
async fn runs_id(world: &World, item: &testkit::world::Linked) -> uuid::Uuid {
    sqlx::query_scalar("select id from sync_runs where item_id = $1 and outcome = 'succeeded'")
        .bind(item.id)
        .fetch_one(&world.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn marking_an_item_dirty_sees_whether_another_session_holds_its_sync_lock() {
    use plaidhook::sync::lock::{self, ItemLock, Mark};
    use uuid::Uuid;

    let world = World::new(sim_config()).await;
    let item = world.link(None, 0).await;
    // The marking statement computes the lock key in SQL: it must be the key Rust locks.
    for id in [item.id, Uuid::now_v7(), Uuid::nil(), Uuid::max()] {
        let in_sql: i64 = sqlx::query_scalar("select item_sync_lock_key($1)")
            .bind(id)
            .fetch_one(&world.db)
            .await
            .unwrap();
        assert_eq!(in_sql, lock::lock_key(id), "{id}");
    }
    let mark = Mark {
        webhook_received_at: None,
        only_without_cursor: false,
    };
    let marked = || async {
        lock::mark_dirty(&world.db, &item.plaid_item_id, mark)
            .await
            .unwrap()
            .expect("the Item exists")
    };
    let free = marked().await;
    assert!(free.marked && !free.held, "{free:?}");
    let held = ItemLock::try_acquire(&world.db, item.id)
        .await
        .unwrap()
        .expect("no one holds the lock");
    let busy = marked().await;
    assert!(busy.marked && busy.held, "{busy:?}");
    held.release().await;
    let released = marked().await;
    assert!(released.marked && !released.held, "{released:?}");
    // A legacy hint does not mark an Item that syncs with a cursor.
    sqlx::query("update items set sync_cursor = 'c1', sync_requested_at = null where id = $1")
        .bind(item.id)
        .execute(&world.db)
        .await
        .unwrap();
    let legacy = lock::mark_dirty(
        &world.db,
        &item.plaid_item_id,
        Mark {
            only_without_cursor: true,
            ..mark
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!legacy.marked && !legacy.held, "{legacy:?}");
    assert!(!lock::is_dirty(&world.db, item.id).await.unwrap());
    world.finish().await;
}

#[tokio::test]
async fn the_holders_last_look_waits_for_a_mark_still_in_flight_and_sees_it() {
    use plaidhook::sync::lock;
    use sqlx::Connection;

    let world = World::new(sim_config()).await;
    let item = world.link(None, 0).await;
    sqlx::query("update items set sync_requested_at = null where id = $1")
        .bind(item.id)
        .execute(&world.db)
        .await
        .unwrap();
    // A request's marking statement that has looked at the lock (and found it held) but not
    // committed yet: its row lock is what the holder's look must wait for.
    let mut request = sqlx::PgConnection::connect(&world.database.url)
        .await
        .unwrap();
    let mut marking = request.begin().await.unwrap();
    sqlx::query("update items set sync_requested_at = now() where id = $1")
        .bind(item.id)
        .execute(&mut *marking)
        .await
        .unwrap();
    let db = world.db.clone();
    let look = tokio::spawn(async move { lock::is_dirty(&db, item.id).await.unwrap() });
    // Time for the look to reach the row: a look that does not wait answers `false` then. The
    // pause cannot fail a correct look: one that arrives only after the commit answers `true`.
    tokio::time::sleep(Duration::from_millis(200)).await;
    marking.commit().await.unwrap();
    assert!(
        look.await.unwrap(),
        "the holder's last look missed a mark made while it still held the lock"
    );
    world.finish().await;
}
