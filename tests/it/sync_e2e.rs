//! The sync worker end to end: Plaid's signed webhooks through the ingress, RabbitMQ, the
//! worker, PostgreSQL, and the database compared with the simulator's ground truth; plus what
//! happens to the Item when Plaid reports an error, and to the cursor when Plaid rejects it.

use std::time::Duration;

use plaidhook::app::Role;
use plaidhook::messages::SyncTrigger;
use plaidhook::sim::state::Phase;
use testkit::world::{assert_no_overlap, sim_config, World};

const WITHIN: Duration = Duration::from_secs(30);

/// Plaid calls (`/transactions/sync` and `/item/get`) plaidhook made for the Item.
async fn plaid_calls(world: &World, item: &testkit::world::Linked) -> i64 {
    sqlx::query_scalar(
        "select count(*) from plaid_api_calls
         where item_id = $1 and method in ('/transactions/sync', '/item/get')",
    )
    .bind(item.id)
    .fetch_one(&world.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_item_that_never_synced_syncs_on_initial_update_alone_and_later_legacy_webhooks_cost_nothing(
) {
    // Spec: SYNC_UPDATES_AVAILABLE needs "/transactions/sync ... called at least once on that
    // Item", "unlike the INITIAL_UPDATE and HISTORICAL_UPDATE webhooks". An Item whose first
    // sync never reached Plaid (here: none was requested) hears of its data from INITIAL_UPDATE
    // alone, and must sync on it; once it has a cursor, SYNC_UPDATES_AVAILABLE covers the rest.
    let world = World::new(plaidhook::sim::SimConfig {
        initial_data_ready: false,
        initial_update_delay_ms: 600_000,
        historical_update_delay_ms: 600_000,
        ..sim_config()
    })
    .await;
    let node = world.node(Role::All, &[]).await;
    let item = world.link(Some(node.webhook_url()), 400).await;
    let step = |phase| {
        world
            .sim()
            .with_state(|s| s.reach_phase(&item.plaid_item_id, phase))
    };
    assert!(step(Phase::InitialUpdateComplete));
    let synced = world
        .eventually(WITHIN, || async {
            !world.stored(&item).await.is_empty() && world.running(&item).await == 0
        })
        .await;
    assert!(synced, "INITIAL_UPDATE alone started a sync");
    let runs = world.runs(&item).await;
    assert_eq!(runs[0].trigger, "webhook");
    let codes: Vec<String> = world
        .sim()
        .deliveries()
        .into_iter()
        .map(|d| d.webhook_code)
        .collect();
    assert_eq!(
        codes,
        ["INITIAL_UPDATE"],
        "no SYNC_UPDATES_AVAILABLE before a sync call"
    );

    assert!(step(Phase::HistoricalUpdateComplete));
    world.assert_in_step(&item, WITHIN).await;
    // HISTORICAL_UPDATE came too, and was not acted on: its SYNC_UPDATES_AVAILABLE twin was.
    let heard = world
        .eventually(WITHIN, || async {
            world
                .sim()
                .deliveries()
                .iter()
                .filter(|d| d.status == Some(200))
                .count()
                == 3
        })
        .await;
    assert!(heard);
    let runs = world.wait_finished_runs(&item, 2, WITHIN).await;
    assert_eq!(runs.len(), 2, "one run per update: {runs:#?}");
    assert_eq!(runs.iter().map(|r| r.added).sum::<i32>(), 400);
    node.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn a_linked_item_is_synced_from_its_webhooks_and_stays_equal_to_plaid_as_the_bank_moves_on() {
    // Plaid's real first steps (SyncUpdatesAvailableWebhook: the webhook fires "once the first
    // 30 days of transactions data has been fetched, and a second time when all available
    // historical transactions data has been fetched"): nothing at the exchange, then the last
    // 30 days, then the history, each with INITIAL_UPDATE / HISTORICAL_UPDATE beside
    // SYNC_UPDATES_AVAILABLE. The steps are taken by hand here, so the order is certain.
    let world = World::new(plaidhook::sim::SimConfig {
        initial_data_ready: false,
        initial_update_delay_ms: 600_000,
        historical_update_delay_ms: 600_000,
        ..sim_config()
    })
    .await;
    let node = world.node(Role::All, &[]).await;
    let item = world.link(Some(node.webhook_url()), 1_234).await;
    let step = |phase| {
        world
            .sim()
            .with_state(|s| s.reach_phase(&item.plaid_item_id, phase))
    };

    node.request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    let runs = world.wait_finished_runs(&item, 1, WITHIN).await;
    assert_eq!(runs[0].trigger, "exchange");
    assert_eq!(runs[0].outcome, "succeeded");
    assert_eq!(runs[0].added, 0, "nothing is ready yet");
    // Plaid's `next_cursor: ""` is not stored: the next sync starts from the beginning.
    let cursor: Option<String> = sqlx::query_scalar("select sync_cursor from items where id = $1")
        .bind(item.id)
        .fetch_one(&world.db)
        .await
        .unwrap();
    assert_eq!(cursor, None);

    // The initial update: INITIAL_UPDATE and SYNC_UPDATES_AVAILABLE both ask an Item that never
    // got data to sync; the last 30 days arrive.
    assert!(step(Phase::InitialUpdateComplete));
    let total = world.truth(&item).len();
    let cutoff = world.sim().config().today.unwrap() - chrono::Duration::days(30);
    let initial = world
        .eventually(WITHIN, || async {
            !world.stored(&item).await.is_empty() && world.running(&item).await == 0
        })
        .await;
    assert!(initial, "the initial update was synced");
    let stored = world.stored(&item).await;
    assert!(
        stored.values().all(|t| t.date > cutoff),
        "only the last 30 days so far"
    );
    assert!(stored.len() < total, "{} of {total}", stored.len());

    // The historical update: the rest of the history.
    assert!(step(Phase::HistoricalUpdateComplete));
    world.assert_in_step(&item, WITHIN).await;
    let runs = world.runs(&item).await;
    assert!(runs.iter().all(|r| r.outcome == "succeeded"), "{runs:#?}");
    assert_eq!(runs.iter().map(|r| r.added).sum::<i32>(), 1_234);
    let delivered = world.sim().deliveries();
    for code in [
        "INITIAL_UPDATE",
        "HISTORICAL_UPDATE",
        "SYNC_UPDATES_AVAILABLE",
    ] {
        assert!(
            delivered
                .iter()
                .any(|d| d.webhook_code == code && d.status == Some(200)),
            "{code} delivered"
        );
    }
    let first_fetch_calls = plaid_calls(&world, &item).await;
    eprintln!("Plaid calls from link to the whole history: {first_fetch_calls}");

    // The bank moves on: new, modified, removed, and pending transactions posting.
    let calls_before = plaid_calls(&world, &item).await;
    let (mut added, mut modified, mut removed) = (0, 0, 0);
    for _ in 0..4 {
        let changes = world.sim().advance(&item.plaid_item_id, 2).unwrap();
        added += changes.added;
        modified += changes.modified;
        removed += changes.removed;
        world.assert_in_step(&item, WITHIN).await;
    }
    assert!(
        added > 0 && modified > 0 && removed > 0,
        "the bank changed in every way"
    );
    // Each change came with DEFAULT_UPDATE and TRANSACTIONS_REMOVED beside SYNC_UPDATES_AVAILABLE;
    // an Item with a cursor acts on the last alone: one Plaid call per bank change.
    let per_change = (plaid_calls(&world, &item).await - calls_before) as f64 / 4.0;
    eprintln!("Plaid calls per bank change (sync + item/get): {per_change}");
    assert_eq!(per_change, 1.0);
    assert!(world
        .sim()
        .deliveries()
        .iter()
        .any(|d| d.webhook_code == "DEFAULT_UPDATE" && d.status == Some(200)));
    world.assert_columns_match_raw(&item).await;
    world.assert_accounts_match(&item).await;

    // Pending → posted: the posted transaction keeps the link, the pending one is gone.
    let stored = world.stored(&item).await;
    let posted: Vec<_> = stored
        .values()
        .filter_map(|t| t.pending_transaction_id.as_ref())
        .filter(|pending| {
            world
                .sim()
                .ground_truth(&item.plaid_item_id)
                .unwrap()
                .iter()
                .all(|t| &t.transaction_id != *pending)
        })
        .collect();
    assert!(!posted.is_empty(), "some pending transactions posted");
    for pending in posted {
        assert!(!stored.contains_key(pending.as_str()));
    }

    let runs = world.runs(&item).await;
    assert!(runs.iter().all(|r| r.outcome == "succeeded"), "{runs:#?}");
    assert_no_overlap(&runs);
    assert_eq!(world.rate_limited_calls().await, 0);

    // Every change went out as transactions.synced events, and the relay published them.
    let events = world.synced_events(&item).await;
    let announced_added: usize = events
        .iter()
        .map(|e| e["data"]["added"].as_array().unwrap().len())
        .sum();
    let announced_removed: usize = events
        .iter()
        .map(|e| e["data"]["removed"].as_array().unwrap().len())
        .sum();
    let run_added: i32 = runs.iter().map(|r| r.added).sum();
    let run_removed: i32 = runs.iter().map(|r| r.removed).sum();
    assert_eq!(announced_added, run_added as usize);
    assert_eq!(announced_removed, run_removed as usize);
    let published = world
        .eventually(WITHIN, || async {
            sqlx::query_scalar::<_, i64>("select count(*) from outbox where published_at is null")
                .fetch_one(&world.db)
                .await
                .unwrap()
                == 0
        })
        .await;
    assert!(published, "the outbox relay published every event");
    assert_eq!(world.queue_depth("plaidhook.dead").await.0, 0);

    node.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn a_large_run_is_announced_in_numbered_chunks_that_together_hold_every_transaction() {
    let world = World::new(sim_config()).await;
    let node = world
        .node(
            Role::Worker,
            &[("PLAIDHOOK__SYNC__EVENT_CHUNK_SIZE", "400")],
        )
        .await;
    let item = world.link(None, 1_000).await;
    node.request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    world.assert_in_step(&item, WITHIN).await;

    let events = world.synced_events(&item).await;
    assert_eq!(events.len(), 3, "1,000 transactions in chunks of 400");
    let mut ids = std::collections::BTreeSet::new();
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event["type"], "transactions.synced");
        assert_eq!(event["data"]["chunk"], index + 1);
        assert_eq!(event["data"]["chunks"], 3);
        assert_eq!(event["data"]["totals"]["added"], 1_000);
        assert_eq!(event["data"]["plaid_item_id"], item.plaid_item_id.as_str());
        for t in event["data"]["added"].as_array().unwrap() {
            assert!(ids.insert(t["transaction_id"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(ids.len(), 1_000);
    let distinct_event_ids: std::collections::BTreeSet<_> =
        events.iter().map(|e| e["id"].to_string()).collect();
    assert_eq!(distinct_event_ids.len(), 3);

    node.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn item_login_required_moves_the_item_to_login_required_without_a_retry_loop_and_a_later_sync_clears_it(
) {
    let world = World::new(sim_config()).await;
    let node = world.node(Role::Worker, &[]).await;
    let item = world.link(None, 200).await;
    node.request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    world.assert_in_step(&item, WITHIN).await;

    assert!(world.sim().reset_login(&item.plaid_item_id));
    node.request_sync(&item.plaid_item_id, SyncTrigger::Manual)
        .await;
    let runs = world.wait_finished_runs(&item, 2, WITHIN).await;
    assert_eq!(runs[1].outcome, "item_error");
    assert_eq!(runs[1].error_code.as_deref(), Some("ITEM_LOGIN_REQUIRED"));
    assert_eq!(
        world.item_status(&item).await,
        (
            "login_required".to_owned(),
            Some("ITEM_LOGIN_REQUIRED".to_owned())
        )
    );
    let history: Vec<(String, String)> = sqlx::query_as(
        "select to_status, source from item_status_history where item_id = $1 order by id",
    )
    .bind(item.id)
    .fetch_all(&world.db)
    .await
    .unwrap();
    assert_eq!(
        history.last().unwrap(),
        &("login_required".into(), "sync".into())
    );
    // Completed, not retried: nothing waits in the queue, its delay queues or the parking lot.
    let settled = world
        .eventually(Duration::from_secs(3), || async {
            world.queue_depth("plaidhook.sync").await.0 == 0
                && world.queue_depth("plaidhook.sync.retry.1s").await.0 == 0
        })
        .await;
    assert!(settled);
    assert_eq!(world.queue_depth("plaidhook.dead").await.0, 0);
    assert_eq!(world.runs(&item).await.len(), 2, "no retry loop");

    // The user repairs the Item; the next sync succeeds and the Item is active again.
    assert!(world.sim().complete_update_mode(&item.plaid_item_id));
    world.sim().advance(&item.plaid_item_id, 1);
    node.request_sync(&item.plaid_item_id, SyncTrigger::Repaired)
        .await;
    world.assert_in_step(&item, WITHIN).await;
    assert_eq!(world.item_status(&item).await, ("active".to_owned(), None));

    node.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn revoked_consent_moves_the_item_to_revoked() {
    let world = World::new(sim_config()).await;
    let node = world.node(Role::Worker, &[]).await;
    let item = world.link(None, 50).await;
    let error = plaidhook::plaid::PlaidError::new(
        "ITEM_ERROR".into(),
        "USER_PERMISSION_REVOKED".into(),
        "the user revoked access",
    );
    world
        .sim()
        .with_state(|s| s.set_error(&item.plaid_item_id, error));
    node.request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    let runs = world.wait_finished_runs(&item, 1, WITHIN).await;
    assert_eq!(runs[0].outcome, "item_error");
    assert_eq!(world.item_status(&item).await.0, "revoked");
    node.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn a_cursor_plaid_rejects_is_reset_and_the_item_resynced_in_full_dropping_what_plaid_no_longer_has(
) {
    let world = World::new(sim_config()).await;
    let node = world.node(Role::Worker, &[]).await;
    let item = world.link(None, 700).await;
    node.request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    world.assert_in_step(&item, WITHIN).await;

    // A cursor Plaid will not accept, and a transaction Plaid no longer has.
    sqlx::query("update items set sync_cursor = 'not-a-cursor' where id = $1")
        .bind(item.id)
        .execute(&world.db)
        .await
        .unwrap();
    sqlx::query(
        "insert into transactions (transaction_id, item_id, account_id, amount, date, pending, raw)
         select 'stale-1', item_id, account_id, amount, date, pending, raw
         from transactions where item_id = $1 limit 1",
    )
    .bind(item.id)
    .execute(&world.db)
    .await
    .unwrap();
    world.sim().advance(&item.plaid_item_id, 2);
    node.request_sync(&item.plaid_item_id, SyncTrigger::Manual)
        .await;
    world.assert_in_step(&item, WITHIN).await;
    let last = world.runs(&item).await.pop().unwrap();
    assert!(last.cursor_reset);
    assert_eq!(last.outcome, "succeeded");

    // Subscribers were told: the reset's event lists what it pruned, and the whole event
    // stream, applied to an empty store, gives the database.
    let events = world.synced_events(&item).await;
    let reset = events
        .iter()
        .filter(|e| e["data"]["cursor_reset"] == true)
        .collect::<Vec<_>>();
    assert!(!reset.is_empty(), "a reset always emits an event");
    let pruned = reset.iter().any(|e| {
        e["data"]["removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["transaction_id"] == "stale-1")
    });
    assert!(pruned, "the pruned transaction is in the reset's `removed`");
    assert_eq!(
        world.replayed_events(&item).await,
        world.stored(&item).await
    );

    // A reset that finds the Item unchanged still says so: it re-lists everything.
    sqlx::query("update items set sync_cursor = 'not-a-cursor-either' where id = $1")
        .bind(item.id)
        .execute(&world.db)
        .await
        .unwrap();
    let before = world.synced_events(&item).await.len();
    node.request_sync(&item.plaid_item_id, SyncTrigger::Manual)
        .await;
    world
        .wait_finished_runs(&item, world.runs(&item).await.len() + 1, WITHIN)
        .await;
    world.assert_in_step(&item, WITHIN).await;
    let after = world.synced_events(&item).await;
    assert!(after.len() > before, "the unchanged reset was announced");
    assert!(after[before..]
        .iter()
        .all(|e| e["data"]["cursor_reset"] == true));
    assert_eq!(
        world.replayed_events(&item).await,
        world.stored(&item).await
    );

    node.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn fields_plaidhook_has_never_heard_of_survive_in_the_row_and_in_the_event() {
    let world = World::new(sim_config()).await;
    world.sim().update_config(|c| {
        let extra = serde_json::json!({
            "a_field_plaid_adds_next_year": { "score": 0.25, "tags": ["x", null] },
            "a_null_plaid_sends": null,
        });
        c.transaction_extra_fields = extra.as_object().unwrap().clone();
        c.account_extra_fields = serde_json::json!({"an_account_field_of_tomorrow": 0.75})
            .as_object()
            .unwrap()
            .clone();
    });
    let node = world.node(Role::All, &[]).await;
    // A subscriber of plaid.events.
    let subscriber = node
        .subscribe(
            "subscriber",
            &node.topology.events_exchange(),
            "transactions.synced",
        )
        .await;

    let item = world.link(None, 30).await;
    node.request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    world.assert_in_step(&item, WITHIN).await;

    let rows: Vec<String> =
        sqlx::query_scalar("select raw::text from transactions where item_id = $1")
            .bind(item.id)
            .fetch_all(&world.db)
            .await
            .unwrap();
    assert_eq!(rows.len(), 30);
    for raw in &rows {
        assert!(
            raw.contains(r#""a_field_plaid_adds_next_year": {"tags": ["x", null], "score": 0.25}"#),
            "{raw}"
        );
        assert!(raw.contains(r#""a_null_plaid_sends": null"#), "{raw}");
    }
    let accounts: Vec<String> =
        sqlx::query_scalar("select raw::text from accounts where item_id = $1")
            .bind(item.id)
            .fetch_all(&world.db)
            .await
            .unwrap();
    assert!(!accounts.is_empty());
    for raw in &accounts {
        assert!(
            raw.contains(r#""an_account_field_of_tomorrow": 0.75"#),
            "accounts are kept whole: {raw}"
        );
    }
    let event = world
        .eventually(WITHIN, || async {
            world.queue_depth("subscriber").await.0 > 0
        })
        .await;
    assert!(event, "the event reached the subscriber");
    let channel = testkit::amqp_channel().await.unwrap();
    let message = channel
        .basic_get(
            subscriber.clone().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("one event");
    let body = String::from_utf8(message.delivery.data.clone()).unwrap();
    assert_eq!(
        body.matches("a_field_plaid_adds_next_year").count(),
        30,
        "{body}"
    );
    assert_eq!(body.matches(r#""score": 0.25"#).count(), 30, "{body}");
    assert_eq!(body.matches(r#""a_null_plaid_sends": null"#).count(), 30);

    node.unsubscribe(&subscriber).await;
    node.stop().await.unwrap();
    world.finish().await;
}
