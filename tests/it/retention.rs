//! Retention: old rows of the tables that grow with traffic are deleted, in batches, and
//! nothing that still matters is.

use plaidhook::app::Role;
use plaidhook::retention::Pruned;
use testkit::world::{sim_config, World};

#[tokio::test]
async fn old_rows_are_deleted_in_batches_and_pending_or_running_ones_are_kept() {
    let world = World::new(sim_config()).await;
    let node = world
        .node(
            Role::Worker,
            &[
                ("PLAIDHOOK__RETENTION__ENABLED", "false"),
                // Smaller than what is to delete: the round goes on until a table is done.
                ("PLAIDHOOK__RETENTION__BATCH", "2"),
            ],
        )
        .await;
    let item = world.link(None, 5).await;
    let db = &world.db;
    let run = |sql: &'static str| async move {
        sqlx::query(sql).bind(item.id).execute(db).await.unwrap();
    };
    // Five of each past its age, one of each recent; plus the ones that must stay however old.
    run(
        "insert into outbox (event_id, routing_key, payload, published_at, created_at)
         select gen_random_uuid(), 'x', '{}', now() - interval '8 days', now() - interval '8 days'
         from generate_series(1, 5) where $1 is not null",
    )
    .await;
    run(
        "insert into outbox (event_id, routing_key, payload, published_at)
         select gen_random_uuid(), 'recent', '{}', now() where $1 is not null",
    )
    .await;
    run(
        "insert into outbox (event_id, routing_key, payload, created_at)
         select gen_random_uuid(), 'unpublished', '{}', now() - interval '30 days'
         where $1 is not null",
    )
    .await;
    run(
        "insert into plaid_api_calls (method, item_id, duration_ms, created_at)
         select '/item/get', $1, 1, now() - interval '31 days' from generate_series(1, 5)
         union all select '/item/get', $1, 1, now()",
    )
    .await;
    run(
        "insert into sync_runs (id, item_id, trigger, outcome, started_at, finished_at)
         select gen_random_uuid(), $1, 'webhook', 'succeeded', now() - interval '91 days',
                now() - interval '91 days' from generate_series(1, 5)",
    )
    .await;
    run("insert into sync_runs (id, item_id, trigger, started_at)
         values (gen_random_uuid(), $1, 'webhook', now() - interval '200 days')")
    .await;
    run("insert into item_status_history (item_id, from_status, to_status, cause, source, created_at)
         select $1, 'active', 'active', 'old', 'api', now() - interval '366 days'
         from generate_series(1, 5)")
    .await;
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(db)
            .await
            .unwrap()
    };
    let before = (
        count("select count(*) from outbox").await,
        count("select count(*) from plaid_api_calls").await,
        count("select count(*) from sync_runs").await,
        count("select count(*) from item_status_history").await,
    );

    let pruned = node
        .retention
        .round()
        .await
        .unwrap()
        .expect("the round ran");
    assert_eq!(
        pruned,
        Pruned {
            outbox: 5,
            api_calls: 5,
            sync_runs: 5,
            status_history: 5,
        }
    );
    let after = (
        count("select count(*) from outbox").await,
        count("select count(*) from plaid_api_calls").await,
        count("select count(*) from sync_runs").await,
        count("select count(*) from item_status_history").await,
    );
    assert_eq!(
        after,
        (before.0 - 5, before.1 - 5, before.2 - 5, before.3 - 5)
    );
    assert_eq!(
        count("select count(*) from outbox where routing_key in ('recent', 'unpublished')").await,
        2
    );
    assert_eq!(
        count("select count(*) from sync_runs where outcome = 'running'").await,
        1,
        "a running run is never deleted"
    );
    let deleted = node.metrics_text().await;
    assert!(
        deleted.contains(r#"plaidhook_retention_deleted_total{table="outbox"} 5"#),
        "{deleted}"
    );
    // A second round finds nothing more.
    assert_eq!(
        node.retention.round().await.unwrap(),
        Some(Pruned::default())
    );

    node.stop().await.unwrap();
    world.finish().await;
}
