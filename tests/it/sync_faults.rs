//! Plaid's failure modes during a sync: data changing under the pagination, rate limits, server
//! errors and timeouts; and the shared rate limiter that keeps the service under Plaid's limits.

use std::time::{Duration, Instant};

use plaidhook::app::Role;
use plaidhook::messages::SyncTrigger;
use plaidhook::plaid::PlaidError;
use plaidhook::sim::{InjectedFault, SimConfig};
use plaidhook::sync::limits::SyncRateLimiter;
use testkit::world::{sim_config, Linked, World};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(30);

fn fault(item: &Linked, error_type: &str, error_code: &str) -> InjectedFault {
    InjectedFault {
        endpoint: Some("/transactions/sync".into()),
        item_id: Some(item.plaid_item_id.clone()),
        error: PlaidError::new(error_type.into(), error_code.into(), "injected"),
        remaining: 1,
    }
}

#[tokio::test]
async fn a_mutation_during_pagination_restarts_from_the_first_cursor_and_ends_equal_to_plaid() {
    let world = World::new(sim_config()).await;
    // Small pages, so an incremental update spans several.
    let node = world
        .node(Role::Worker, &[("PLAIDHOOK__SYNC__PAGE_SIZE", "100")])
        .await;
    let item = world.link(None, 1_600).await;
    node.request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    world.assert_in_step(&item, WITHIN).await;

    // An incremental sync that spans pages, with the data changing between them.
    let changes = world.sim().advance(&item.plaid_item_id, 20).unwrap();
    assert!(changes.added + changes.modified + changes.removed > 200);
    assert!(world
        .sim()
        .arm_mutation_during_pagination(&item.plaid_item_id));
    node.request_sync(&item.plaid_item_id, SyncTrigger::Manual)
        .await;
    world.assert_in_step(&item, WITHIN).await;
    let runs = world.runs(&item).await;
    let last = runs.last().unwrap();
    assert_eq!(last.outcome, "succeeded");
    assert_eq!(last.pagination_restarts, 1);
    assert!(
        !last.cursor_reset,
        "restarted from the sync's cursor, not from scratch"
    );
    assert!(
        (last.added as usize) < 1_600,
        "only the changes since the stored cursor were fetched again"
    );

    node.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn a_429_from_plaid_is_retried_through_the_delay_queue_and_the_sync_completes() {
    let world = World::new(sim_config()).await;
    let node = world.node(Role::Worker, &[]).await;
    let item = world.link(None, 300).await;
    // RATE_LIMIT_EXCEEDED comes with HTTP 429, as from Plaid.
    world.sim().inject_fault(fault(
        &item,
        "RATE_LIMIT_EXCEEDED",
        "TRANSACTIONS_SYNC_LIMIT",
    ));
    node.request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    world.assert_in_step(&item, WITHIN).await;
    let runs = world.runs(&item).await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[0].outcome, "retrying");
    assert_eq!(
        runs[0].error_code.as_deref(),
        Some("TRANSACTIONS_SYNC_LIMIT")
    );
    assert_eq!(
        runs[0].plaid_request_ids.len(),
        1,
        "the failed call's request id is kept"
    );
    assert_eq!(runs[1].outcome, "succeeded");
    assert!(
        runs[1].started_at - runs[0].finished_at.unwrap() >= chrono::Duration::milliseconds(900),
        "the retry waited in the 1 s delay queue, not a hot requeue"
    );
    assert_eq!(world.queue_depth("plaidhook.dead").await.0, 0);
    node.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn a_plaid_server_error_is_retried_and_the_sync_completes() {
    let world = World::new(sim_config()).await;
    let node = world.node(Role::Worker, &[]).await;
    let item = world.link(None, 300).await;
    world
        .sim()
        .inject_fault(fault(&item, "API_ERROR", "INTERNAL_SERVER_ERROR"));
    node.request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    world.assert_in_step(&item, WITHIN).await;
    let runs = world.runs(&item).await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[0].error_code.as_deref(), Some("INTERNAL_SERVER_ERROR"));
    assert_eq!(runs[1].outcome, "succeeded");
    node.stop().await.unwrap();
    world.finish().await;
}

#[tokio::test]
async fn a_plaid_call_that_times_out_is_retried_and_the_sync_completes() {
    let world = World::new(sim_config()).await;
    let node = world
        .node(Role::Worker, &[("PLAIDHOOK__PLAID__TIMEOUT_SECS", "1")])
        .await;
    let item = world.link(None, 300).await;
    world.sim().update_config(|c| c.latency_ms = 1_500);
    node.request_sync(&item.plaid_item_id, SyncTrigger::Exchange)
        .await;
    let runs = world.wait_finished_runs(&item, 1, WITHIN).await;
    assert_eq!(runs[0].outcome, "retrying");
    world.sim().update_config(|c| c.latency_ms = 0);
    world.assert_in_step(&item, WITHIN).await;
    assert_eq!(world.runs(&item).await.last().unwrap().outcome, "succeeded");
    node.stop().await.unwrap();
    world.finish().await;
}

/// Grants in any window of `window` (less a little clock tolerance) never exceed `limit`.
fn assert_within_limit(grants: &[Instant], window: Duration, limit: usize) {
    let tolerance = Duration::from_millis(20);
    for (i, start) in grants.iter().enumerate() {
        let inside = grants[i..]
            .iter()
            .filter(|g| g.duration_since(*start) < window - tolerance)
            .count();
        assert!(
            inside <= limit,
            "{inside} grants inside one window, limit {limit}"
        );
    }
}

#[tokio::test]
async fn the_shared_limiter_keeps_two_processes_under_the_client_and_item_limits_while_using_the_allowance(
) {
    let world = World::new(sim_config()).await;
    let settings = testkit::settings_with(&[
        ("PLAIDHOOK__SYNC__ITEM_LIMIT_PER_WINDOW", "3"),
        ("PLAIDHOOK__SYNC__CLIENT_LIMIT_PER_WINDOW", "5"),
        ("PLAIDHOOK__SYNC__LIMIT_WINDOW_SECS", "1"),
        ("PLAIDHOOK__SYNC__LIMIT_MARGIN_MS", "0"),
    ])
    .unwrap();
    let (a, b) = (world.link(None, 1).await, world.link(None, 1).await);
    let started = Instant::now();
    // Two limiters on two connections: two worker processes as far as PostgreSQL can tell.
    let take = |item: Linked| {
        let limiter = SyncRateLimiter::new(&settings.sync, "client-1", Duration::from_secs(10));
        let db = world.db.clone();
        async move {
            let mut conn = db.acquire().await.unwrap();
            let mut grants = Vec::new();
            for _ in 0..8 {
                limiter
                    .acquire(&mut conn, item.id, &CancellationToken::new())
                    .await
                    .unwrap();
                grants.push(Instant::now());
            }
            grants
        }
    };
    let (grants_a, grants_b) = tokio::join!(take(a), take(b));
    let elapsed = started.elapsed();
    let window = Duration::from_secs(1);
    assert_within_limit(&grants_a, window, 3);
    assert_within_limit(&grants_b, window, 3);
    let mut all: Vec<Instant> = grants_a.into_iter().chain(grants_b).collect();
    all.sort();
    assert_within_limit(&all, window, 5);
    // 16 calls at 5 per window need 3 full windows after the first burst; not much more.
    assert!(elapsed >= Duration::from_millis(2_950), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(4_500), "{elapsed:?}");
    world.finish().await;
}

/// Settings of a limiter that allows one call per client per second.
fn one_call_per_second() -> plaidhook::config::Settings {
    testkit::settings_with(&[
        ("PLAIDHOOK__SYNC__ITEM_LIMIT_PER_WINDOW", "0"),
        ("PLAIDHOOK__SYNC__CLIENT_LIMIT_PER_WINDOW", "1"),
        ("PLAIDHOOK__SYNC__LIMIT_WINDOW_SECS", "1"),
    ])
    .unwrap()
}

#[tokio::test]
async fn a_call_occupies_the_window_until_a_window_after_its_response() {
    let world = World::new(sim_config()).await;
    let settings = one_call_per_second();
    let window = Duration::from_secs(1);
    let (first, second) = (
        SyncRateLimiter::new(&settings.sync, "client-1", Duration::from_secs(10)),
        SyncRateLimiter::new(&settings.sync, "client-1", Duration::from_secs(10)),
    );
    let (mut a, mut b) = (
        world.db.acquire().await.unwrap(),
        world.db.acquire().await.unwrap(),
    );
    let item = Uuid::new_v4();
    let shutdown = CancellationToken::new();
    first.acquire(&mut a, item, &shutdown).await.unwrap();
    // The call takes a while to answer.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let answered = Instant::now();
    first.complete(&mut a, item).await;
    second
        .acquire(&mut b, Uuid::new_v4(), &shutdown)
        .await
        .unwrap();
    let granted = answered.elapsed();
    // A window after the response (less the clocks' tolerance), not after the grant …
    assert!(granted >= window - Duration::from_millis(20), "{granted:?}");
    // … and long before the end of a call that never answers (timeout + window).
    assert!(granted < Duration::from_secs(8), "{granted:?}");
    drop((a, b));
    world.finish().await;
}

#[tokio::test]
async fn a_grant_whose_call_never_answered_still_ends_a_window_after_the_plaid_timeout() {
    let world = World::new(sim_config()).await;
    let settings = one_call_per_second();
    let timeout = Duration::from_secs(1);
    let shutdown = CancellationToken::new();
    let granted = {
        // A worker that takes a grant and dies before the call returns: nothing records it.
        let crashed = SyncRateLimiter::new(&settings.sync, "client-1", timeout);
        let mut conn = world.db.acquire().await.unwrap();
        crashed
            .acquire(&mut conn, Uuid::new_v4(), &shutdown)
            .await
            .unwrap();
        Instant::now()
    };
    let peer = SyncRateLimiter::new(&settings.sync, "client-1", timeout);
    let mut conn = world.db.acquire().await.unwrap();
    tokio::time::timeout(WITHIN, peer.acquire(&mut conn, Uuid::new_v4(), &shutdown))
        .await
        .expect("the dead call's grant ends")
        .unwrap();
    let waited = granted.elapsed();
    // In flight for the call bound (the timeout and a second), then a window.
    assert!(waited >= Duration::from_millis(2_950), "{waited:?}");
    drop(conn);
    world.finish().await;
}

#[tokio::test]
async fn three_workers_against_tight_client_and_item_limits_use_them_without_a_single_429() {
    let world = World::new(SimConfig {
        sync_limit_per_client_per_minute: Some(4),
        sync_limit_per_item_per_minute: Some(2),
        rate_limit_window_ms: 1_000,
        // Calls are counted at the simulator 30 ms after they leave.
        latency_ms: 30,
        ..sim_config()
    })
    .await;
    let limits = [
        ("PLAIDHOOK__SYNC__CLIENT_LIMIT_PER_WINDOW", "4"),
        ("PLAIDHOOK__SYNC__ITEM_LIMIT_PER_WINDOW", "2"),
        ("PLAIDHOOK__SYNC__LIMIT_WINDOW_SECS", "1"),
        ("PLAIDHOOK__SYNC__PAGE_SIZE", "100"),
    ];
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(world.node(Role::Worker, &limits).await);
    }
    let mut items = Vec::new();
    for _ in 0..6 {
        // Three pages each: a sync needs more than its Item's allowance.
        items.push(world.link(None, 250).await);
    }
    for round in 0..2 {
        let requests = items.iter().enumerate().map(|(i, item)| {
            nodes[(i + round) % nodes.len()].request_sync(&item.plaid_item_id, SyncTrigger::Manual)
        });
        futures::future::join_all(requests).await;
        for item in &items {
            world.assert_in_step(item, WITHIN).await;
        }
        for item in &items {
            world.sim().advance(&item.plaid_item_id, 2);
        }
    }
    assert_eq!(world.rate_limited_calls().await, 0);
    let (calls, waited_ms): (i64, i64) = sqlx::query_as(
        "select (select count(*) from plaid_api_calls where method = '/transactions/sync'),
                (select coalesce(sum(rate_limit_wait_ms), 0)::bigint from sync_runs)",
    )
    .fetch_one(&world.db)
    .await
    .unwrap();
    // The limits bound: 18 or more calls at 4 a second, and the limiter made syncs wait.
    assert!(calls >= 18, "{calls} calls");
    assert!(waited_ms > 0, "no sync waited for the limiter");
    for node in nodes {
        node.stop().await.unwrap();
    }
    world.finish().await;
}
