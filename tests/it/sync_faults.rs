//! Plaid's failure modes during a sync: data changing under the pagination, rate limits, server
//! errors and timeouts; and the shared rate limiter that keeps the service under Plaid's limits.

use std::time::{Duration, Instant};

use plaidhook::app::Role;
use plaidhook::messages::SyncTrigger;
use plaidhook::plaid::PlaidError;
use plaidhook::sim::InjectedFault;
use plaidhook::sync::limits::SyncRateLimiter;
use testkit::world::{sim_config, Linked, World};
use tokio_util::sync::CancellationToken;

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
        let limiter = SyncRateLimiter::new(&settings.sync, "client-1");
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
