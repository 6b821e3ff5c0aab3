//! A sync run's pages are staged in PostgreSQL as they arrive and applied from there in one
//! transaction: the merge across pages equals a walk of the pages in order, a restarted
//! pagination discards what it staged, and what a dead worker staged never reaches the next run.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::helpers::processes::worker_process;
use plaidhook::app::Role;
use plaidhook::messages::SyncTrigger;
use plaidhook::plaid::TransactionsSyncPage;
use plaidhook::sync::apply::{self, Commit, Committed};
use plaidhook::sync::fetch::{Fetched, Progress};
use plaidhook::sync::{runs, staging};
use serde_json::{json, Value};
use sqlx::Connection;
use testkit::world::{sim_config, Linked, World};
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(60);

fn txn(id: &str, amount: &str, extra: &str) -> Value {
    json!({
        "transaction_id": id, "account_id": "acc-1", "amount": amount, "date": "2026-11-20",
        "pending": false, "name": format!("{id} {extra}"), "payment_channel": "online",
        "iso_currency_code": "USD", "unknown_field": {"kept": extra}
    })
}

fn removal(id: &str) -> Value {
    json!({"transaction_id": id, "account_id": "acc-1"})
}

/// A page as the client reads it: from text, amounts as Plaid writes them (decimals kept).
fn page(added: Vec<Value>, modified: Vec<Value>, removed: Vec<Value>, more: bool) -> String {
    let page = json!({
        "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE",
        "accounts": [], "added": added, "modified": modified, "removed": removed,
        "next_cursor": "cursor-next", "has_more": more, "request_id": "req"
    });
    // Amounts as JSON numbers with their decimals, as Plaid sends them.
    page.to_string()
        .replace("\"amount\":\"", "\"amount\":")
        .replace("\",\"date\"", ",\"date\"")
}

/// What a walk of the pages in order gives: the net changes, as subscribers must hear them.
#[derive(Default)]
struct Expected {
    /// id → (added in this run?, object)
    upserts: BTreeMap<String, (bool, Value)>,
    removed: BTreeMap<String, Value>,
}

impl Expected {
    fn walk(&mut self, page: &Value) {
        for t in page["added"].as_array().unwrap() {
            let id = t["transaction_id"].as_str().unwrap().to_owned();
            self.removed.remove(&id);
            self.upserts.insert(id, (true, t.clone()));
        }
        for t in page["modified"].as_array().unwrap() {
            let id = t["transaction_id"].as_str().unwrap().to_owned();
            self.removed.remove(&id);
            let added = matches!(self.upserts.get(&id), Some((true, _)));
            self.upserts.insert(id, (added, t.clone()));
        }
        for r in page["removed"].as_array().unwrap() {
            let id = r["transaction_id"].as_str().unwrap().to_owned();
            self.upserts.remove(&id);
            self.removed.insert(id, r.clone());
        }
    }
}

#[tokio::test]
async fn pages_that_revise_and_remove_the_same_transactions_apply_as_a_walk_of_the_pages_would() {
    let world = World::new(sim_config()).await;
    let item = world.link(None, 0).await;
    // Already stored before this run: one the run modifies, one it removes, one it leaves.
    for (id, amount) in [
        ("old-mod", "1.00"),
        ("old-rm", "2.00"),
        ("old-keep", "3.00"),
    ] {
        sqlx::query(
            "insert into transactions (transaction_id, item_id, account_id, amount, date, pending, raw)
             values ($1, $2, 'acc-1', $3::numeric, '2026-11-01', false, $4)",
        )
        .bind(id)
        .bind(item.id)
        .bind(amount)
        .bind(txn(id, amount, "stored"))
        .execute(&world.db)
        .await
        .unwrap();
    }
    let pages = vec![
        // "a" added, "b" added, "old-mod" modified; "c" added then modified within one page.
        page(
            vec![
                txn("a", "10.10", "v1"),
                txn("b", "20.00", "v1"),
                txn("c", "1.5", "v1"),
            ],
            vec![txn("old-mod", "1.25", "v2"), txn("c", "1.75", "v2")],
            vec![],
            true,
        ),
        // "a" revised (still added), "b" removed, "old-rm" removed, "z" removed (never held).
        page(
            vec![],
            vec![txn("a", "10.20", "v2")],
            vec![removal("b"), removal("old-rm"), removal("z")],
            true,
        ),
        // "b" added again after its removal; "a" removed; "d" added and removed within one
        // page.
        page(
            vec![txn("b", "20.50", "v3"), txn("d", "4.00", "v1")],
            vec![],
            vec![removal("a"), removal("d")],
            true,
        ),
        // "a" modified after its removal: modified, no longer new.
        page(vec![], vec![txn("a", "10.30", "v4")], vec![], false),
    ];
    let mut expected = Expected::default();
    for text in &pages {
        expected.walk(&serde_json::from_str(text).unwrap());
    }

    let mut conn = sqlx::PgConnection::connect(&world.database.url)
        .await
        .unwrap();
    let run_id = open_run(&mut conn, item.id).await;
    let mut totals = staging::Totals::default();
    let mut progress = Progress::default();
    for text in &pages {
        let page: TransactionsSyncPage = serde_json::from_str(text).unwrap();
        staging::stage_page(&mut conn, run_id, item.id, &page, &mut totals)
            .await
            .unwrap();
        progress.pages += 1;
    }
    let added = expected.upserts.values().filter(|(a, _)| *a).count();
    assert_eq!(
        (totals.added, totals.modified, totals.removed),
        (
            added,
            expected.upserts.len() - added,
            expected.removed.len()
        ),
        "the counts kept while staging"
    );

    let settings = testkit::settings_with(&[("PLAIDHOOK__SYNC__EVENT_CHUNK_SIZE", "2")]).unwrap();
    let committed = apply::commit(
        &mut conn,
        &settings.sync,
        Commit {
            item_id: item.id,
            plaid_item_id: &item.plaid_item_id,
            run_id,
            trigger: "manual",
            stored_cursor: None,
            progress: &progress,
            fetch: Duration::ZERO,
        },
        Fetched {
            totals,
            accounts: Vec::new(),
            next_cursor: Some("cursor-next".into()),
        },
    )
    .await
    .unwrap();
    assert!(matches!(committed, Committed::Applied { .. }));

    // The database: what was stored, with the walk's net changes applied, raw kept whole.
    let mut want: BTreeMap<String, Value> = BTreeMap::new();
    want.insert("old-keep".into(), txn("old-keep", "3.00", "stored"));
    want.insert("old-mod".into(), txn("old-mod", "1.00", "stored"));
    want.insert("old-rm".into(), txn("old-rm", "2.00", "stored"));
    for id in expected.removed.keys() {
        want.remove(id);
    }
    for (id, (_, t)) in &expected.upserts {
        want.insert(id.clone(), t.clone());
    }
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "select transaction_id, raw::text, raw->>'amount' from transactions where item_id = $1",
    )
    .bind(item.id)
    .fetch_all(&world.db)
    .await
    .unwrap();
    let stored: BTreeMap<String, Value> = rows
        .iter()
        .map(|(id, raw, _)| (id.clone(), serde_json::from_str(raw).unwrap()))
        .collect();
    let want_text: BTreeMap<String, String> = want
        .iter()
        .map(|(id, t)| (id.clone(), canonical(t)))
        .collect();
    let stored_text: BTreeMap<String, String> = stored
        .iter()
        .map(|(id, t)| (id.clone(), canonical(t)))
        .collect();
    assert_eq!(stored_text, want_text);
    // Decimals as Plaid wrote them, through staging and apply.
    let amount_of = |id: &str| rows.iter().find(|r| r.0 == id).unwrap().2.clone();
    assert_eq!(amount_of("a"), "10.30");
    assert_eq!(amount_of("b"), "20.50");
    assert_eq!(amount_of("c"), "1.75");

    // The events: added, then modified, then removed, each by id, in chunks of 2.
    let mut entries: Vec<(&str, Value)> = Vec::new();
    for (_, (added, t)) in expected.upserts.iter().filter(|(_, (a, _))| *a) {
        assert!(added);
        entries.push(("added", t.clone()));
    }
    for (_, (_, t)) in expected.upserts.iter().filter(|(_, (a, _))| !*a) {
        entries.push(("modified", t.clone()));
    }
    for r in expected.removed.values() {
        entries.push(("removed", r.clone()));
    }
    let events = world.synced_events(&item).await;
    let chunks = entries.len().div_ceil(2);
    assert_eq!(events.len(), chunks);
    for (index, (event, chunk)) in events.iter().zip(entries.chunks(2)).enumerate() {
        let data = &event["data"];
        assert_eq!(event["type"], "transactions.synced");
        assert_eq!(event["item_id"], json!(item.id));
        assert_eq!(event["id"].as_str().unwrap().len(), 36);
        assert!(event["occurred_at"].is_string());
        assert_eq!(data["plaid_item_id"], json!(item.plaid_item_id));
        assert_eq!(data["sync_run_id"], json!(run_id));
        assert_eq!(data["trigger"], "manual");
        assert_eq!(data["chunk"], json!(index + 1));
        assert_eq!(data["chunks"], json!(chunks));
        assert_eq!(data["cursor_reset"], json!(false));
        assert_eq!(
            data["totals"],
            json!({"added": totals.added, "modified": totals.modified, "removed": totals.removed})
        );
        for list in ["added", "modified", "removed"] {
            let want: Vec<String> = chunk
                .iter()
                .filter(|(l, _)| *l == list)
                .map(|(_, v)| canonical(v))
                .collect();
            let got: Vec<String> = data[list]
                .as_array()
                .unwrap()
                .iter()
                .map(canonical)
                .collect();
            assert_eq!(got, want, "chunk {} {list}", index + 1);
        }
    }
    let staged: i64 = sqlx::query_scalar("select count(*) from sync_staging where run_id = $1")
        .bind(run_id)
        .fetch_one(&world.db)
        .await
        .unwrap();
    assert_eq!(staged, 0, "a committed run's staged rows are deleted");
    drop(conn);
    world.finish().await;
}

/// JSON text with sorted keys and numbers as written, for comparing objects exactly.
fn canonical(value: &Value) -> String {
    serde_json::to_string(value).unwrap()
}

async fn staged_rows_of_running_run(world: &World, item: &Linked) -> i64 {
    sqlx::query_scalar(
        "select count(*) from sync_staging s join sync_runs r on r.id = s.run_id
         where r.item_id = $1 and r.outcome = 'running'",
    )
    .bind(item.id)
    .fetch_one(&world.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_mutation_during_pagination_discards_what_the_run_staged_before_it() {
    let world = World::new(sim_config()).await;
    world.sim().update_config(|c| c.latency_ms = 200);
    let node = world
        .node(Role::Worker, &[("PLAIDHOOK__SYNC__PAGE_SIZE", "100")])
        .await;
    let item = world.link(None, 2_000).await;
    node.request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    // Once the first pages are staged, the bank removes one of the transactions they held:
    // the next page fails with TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION, and the restart
    // (from the beginning: an initial sync) never sees it. Were the first attempt's rows kept,
    // it would be applied.
    let staged = world
        .eventually(WITHIN, || async {
            staged_rows_of_running_run(&world, &item).await >= 100
        })
        .await;
    assert!(staged, "the first page is staged while the run goes on");
    let victim: String = sqlx::query_scalar(
        "select s.transaction_id from sync_staging s join sync_runs r on r.id = s.run_id
         where r.item_id = $1 and r.outcome = 'running' order by s.transaction_id limit 1",
    )
    .bind(item.id)
    .fetch_one(&world.db)
    .await
    .unwrap();
    let removed = world.sim().with_state(|s| {
        let record = s.items.get_mut(&item.plaid_item_id).unwrap();
        let index = record
            .data
            .txns
            .iter()
            .position(|t| &*t.transaction_id == victim.as_str())
            .unwrap();
        record.data.remove(index as u32);
        record.update_cache = None;
        true
    });
    assert!(removed);

    world.assert_in_step(&item, WITHIN).await;
    let runs = world.runs(&item).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].outcome, "succeeded");
    assert_eq!(runs[0].pagination_restarts, 1);
    assert_eq!(runs[0].added, 1_999);
    assert!(!world.stored(&item).await.contains_key(&victim));
    assert_eq!(world.replayed_events(&item).await, world.truth(&item));
    let left: i64 = sqlx::query_scalar("select count(*) from sync_staging")
        .fetch_one(&world.db)
        .await
        .unwrap();
    assert_eq!(left, 0);

    node.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn what_a_killed_worker_staged_never_reaches_the_next_run_and_is_deleted_by_it() {
    let world = World::new(sim_config()).await;
    world.sim().update_config(|c| c.latency_ms = 300);
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
    let mid_sync = world
        .eventually(WITHIN, || async {
            staged_rows_of_running_run(&world, &item).await >= 500
        })
        .await;
    assert!(mid_sync, "the worker staged a page");
    doomed.kill().expect("SIGKILL");
    doomed.wait().unwrap();
    let dead_run: Uuid =
        sqlx::query_scalar("select id from sync_runs where item_id = $1 and outcome = 'running'")
            .bind(item.id)
            .fetch_one(&world.db)
            .await
            .unwrap();
    // Make the dead run's rows unmistakable: a transaction Plaid never had, and a staged
    // version of a real one that differs from Plaid's.
    sqlx::query(
        "insert into sync_staging (run_id, item_id, transaction_id, change, account_id, amount,
                                   date, name, payment_channel, pending, raw)
         values ($1, $2, 'ghost', 'a', 'acc', 1, '2026-11-20', 'ghost', 'online', false,
                 '{\"transaction_id\": \"ghost\"}')",
    )
    .bind(dead_run)
    .bind(item.id)
    .execute(&world.db)
    .await
    .unwrap();
    sqlx::query(
        "update sync_staging set raw = raw || '{\"name\": \"tampered\"}', name = 'tampered'
         where run_id = $1",
    )
    .bind(dead_run)
    .execute(&world.db)
    .await
    .unwrap();
    assert!(
        world.stored(&item).await.is_empty(),
        "nothing was committed"
    );

    let survivor = world.node(Role::Worker, &[]).await;
    world.assert_in_step(&item, WITHIN).await;
    let runs = world.runs(&item).await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[0].error_code.as_deref(), Some("WORKER_LOST"));
    assert_eq!(runs[1].outcome, "succeeded");
    assert_eq!(runs[1].added, 3_000);
    let stored = world.stored(&item).await;
    assert!(!stored.contains_key("ghost"));
    assert!(stored.values().all(|t| t.name != "tampered"));
    assert_eq!(world.replayed_events(&item).await, world.truth(&item));
    let left: i64 = sqlx::query_scalar("select count(*) from sync_staging where run_id = $1")
        .bind(dead_run)
        .fetch_one(&world.db)
        .await
        .unwrap();
    assert_eq!(left, 0, "the next run deleted the dead run's rows");

    survivor.stop().await.unwrap();
    serve.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn retention_sweeps_the_staged_rows_of_runs_no_longer_running() {
    let world = World::new(sim_config()).await;
    let item = world.link(None, 0).await;
    let mut conn = sqlx::PgConnection::connect(&world.database.url)
        .await
        .unwrap();
    let live = open_run(&mut conn, item.id).await;
    let finished = Uuid::now_v7();
    sqlx::query(
        "insert into sync_runs (id, item_id, trigger, outcome, finished_at)
         values ($1, $2, 'manual', 'retrying', now())",
    )
    .bind(finished)
    .bind(item.id)
    .execute(&world.db)
    .await
    .unwrap();
    for run in [live, finished, Uuid::now_v7()] {
        sqlx::query(
            "insert into sync_staging (run_id, item_id, transaction_id, change, account_id)
             values ($1, $2, 'x', 'r', 'acc')",
        )
        .bind(run)
        .bind(item.id)
        .execute(&world.db)
        .await
        .unwrap();
    }
    assert_eq!(staging::sweep(&world.db).await.unwrap(), 2);
    let left: Vec<Uuid> = sqlx::query_scalar("select run_id from sync_staging")
        .fetch_all(&world.db)
        .await
        .unwrap();
    assert_eq!(left, vec![live], "a running run keeps its rows");
    drop(conn);
    world.finish().await;
}

/// Opens a run of the Item as a worker does: the Item marked dirty, then the run begun.
async fn open_run(conn: &mut sqlx::PgConnection, item_id: Uuid) -> Uuid {
    sqlx::query("update items set sync_requested_at = now() where id = $1")
        .bind(item_id)
        .execute(&mut *conn)
        .await
        .unwrap();
    runs::begin(conn, item_id, "manual")
        .await
        .unwrap()
        .expect("the Item is marked, so a run begins")
        .run_id
}
