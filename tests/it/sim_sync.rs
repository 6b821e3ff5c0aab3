//! `/transactions/sync` against the simulator: pagination, cursors, readiness and the
//! SYNC_UPDATES_AVAILABLE webhook.

use crate::helpers::sim as support;

use plaidhook::sim::NewItem;
use serde_json::json;
use std::time::Duration;
use support::receiver::Receiver;
use support::{apply, start, sync_all, test_config, truth, Ledger, Plaid};

#[tokio::test]
async fn a_full_sync_from_an_empty_cursor_equals_the_ground_truth() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (item_id, token) = handle.sim().create_item(NewItem {
        transactions: Some(2_345),
        ..NewItem::default()
    });
    let (status, first) = plaid
        .call(
            "/transactions/sync",
            json!({"access_token": token.expose_secret()}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        first["added"].as_array().unwrap().len(),
        100,
        "count defaults to 100"
    );
    assert_eq!(first["has_more"], true);
    assert_eq!(
        first["transactions_update_status"],
        "HISTORICAL_UPDATE_COMPLETE"
    );

    let (_, pages) = sync_all(&plaid, token.expose_secret(), "", 500).await;
    assert_eq!(pages.len(), 5);
    let mut ledger = Ledger::new();
    pages.iter().for_each(|p| apply(&mut ledger, p));
    assert_eq!(ledger.len(), 2_345);
    assert_eq!(ledger, truth(&handle, item_id.as_str()));
    handle.shutdown().await;
}

#[tokio::test]
async fn a_mutation_during_pagination_gives_plaids_error_and_restarting_from_the_first_cursor_recovers(
) {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (item_id, token) = handle.sim().create_item(NewItem {
        transactions: Some(1_000),
        ..NewItem::default()
    });
    let token = token.expose_secret();
    for mutate in [
        Box::new(|h: &plaidhook::sim::SimHandle, id: &str| {
            assert!(h.sim().arm_mutation_during_pagination(id))
        }) as Box<dyn Fn(&_, &str)>,
        Box::new(|h: &plaidhook::sim::SimHandle, id: &str| {
            assert!(h.sim().advance(id, 2).is_some())
        }),
    ] {
        let (start_cursor, _) = sync_all(&plaid, token, "", 500).await;
        handle.sim().advance(item_id.as_str(), 5);
        let (_, page) = plaid
            .call(
                "/transactions/sync",
                json!({"access_token": token, "cursor": start_cursor, "count": 5}),
            )
            .await;
        assert_eq!(page["has_more"], true);
        mutate(&handle, item_id.as_str());
        let (status, error) = plaid
            .call(
                "/transactions/sync",
                json!({"access_token": token, "cursor": page["next_cursor"], "count": 5}),
            )
            .await;
        assert_eq!(status, 400);
        assert_eq!(error["error_type"], "TRANSACTIONS_ERROR");
        assert_eq!(
            error["error_code"],
            "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"
        );

        let mut ledger = Ledger::new();
        let (_, everything) = sync_all(&plaid, token, "", 500).await;
        everything.iter().for_each(|p| apply(&mut ledger, p));
        let before = ledger.clone();
        let (_, restarted) = sync_all(&plaid, token, &start_cursor, 5).await;
        restarted.iter().for_each(|p| apply(&mut ledger, p));
        assert_eq!(
            ledger, before,
            "the restarted loop converges on the same data"
        );
        assert_eq!(ledger, truth(&handle, item_id.as_str()));
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn continuing_from_any_saved_cursor_yields_exactly_the_later_changes() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (item_id, token) = handle.sim().create_item(NewItem {
        transactions: Some(600),
        days_requested: Some(30),
        ..NewItem::default()
    });
    let (token, item_id) = (token.expose_secret().to_owned(), item_id.to_string());

    // Saved (cursor, what the client held at that cursor) after each sync, mid-page ones too.
    let mut saved: Vec<(String, Ledger)> = vec![(String::new(), Ledger::new())];
    let mut ledger = Ledger::new();
    let mut cursor = String::new();
    for days in [0, 1, 3, 2, 7] {
        handle.sim().advance(&item_id, days);
        loop {
            let (_, page) = plaid
                .call(
                    "/transactions/sync",
                    json!({"access_token": token, "cursor": cursor, "count": 150}),
                )
                .await;
            apply(&mut ledger, &page);
            cursor = page["next_cursor"].as_str().unwrap().to_owned();
            if page["has_more"] == false {
                break;
            }
        }
        saved.push((cursor.clone(), ledger.clone()));
    }
    let truth = truth(&handle, &item_id);
    assert_eq!(ledger, truth);
    let (_, nothing) = sync_all(&plaid, &token, &cursor, 500).await;
    assert!(
        nothing
            .iter()
            .all(|p| p["added"].as_array().unwrap().is_empty()
                && p["modified"].as_array().unwrap().is_empty()
                && p["removed"].as_array().unwrap().is_empty()),
        "the latest cursor has nothing new"
    );

    for (cursor, held) in &saved {
        let (_, pages) = sync_all(&plaid, &token, cursor, 100).await;
        let ids = |key: &str| -> std::collections::BTreeSet<String> {
            pages
                .iter()
                .flat_map(|p| {
                    p[key]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t["transaction_id"].as_str().unwrap().to_owned())
                })
                .collect()
        };
        let expected_added: std::collections::BTreeSet<String> = truth
            .keys()
            .filter(|id| !held.contains_key(*id))
            .cloned()
            .collect();
        let expected_removed: std::collections::BTreeSet<String> = held
            .keys()
            .filter(|id| !truth.contains_key(*id))
            .cloned()
            .collect();
        assert_eq!(ids("added"), expected_added);
        assert_eq!(ids("removed"), expected_removed);
        for id in ids("modified") {
            assert!(held.contains_key(&id) && truth.contains_key(&id));
        }
        for (id, txn) in &truth {
            if held.get(id).is_some_and(|old| old != txn) {
                assert!(ids("modified").contains(id), "changed {id} not reported");
            }
        }
        let mut replay = held.clone();
        pages.iter().for_each(|p| apply(&mut replay, p));
        assert_eq!(replay, truth);
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn pending_transactions_post_with_the_pending_id_removed_and_linked_from_the_posted_one() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let (item_id, token) = plaid.link_item(None).await;
    let (cursor, pages) = sync_all(&plaid, &token, "", 500).await;
    let pending: Vec<String> = pages
        .iter()
        .flat_map(|p| p["added"].as_array().unwrap().clone())
        .filter(|t| t["pending"] == true)
        .map(|t| t["transaction_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!pending.is_empty());
    handle.sim().advance(&item_id, 4);
    let (_, pages) = sync_all(&plaid, &token, &cursor, 500).await;
    let removed: Vec<&str> = pages
        .iter()
        .flat_map(|p| p["removed"].as_array().unwrap())
        .map(|t| t["transaction_id"].as_str().unwrap())
        .collect();
    let links: Vec<&str> = pages
        .iter()
        .flat_map(|p| p["added"].as_array().unwrap())
        .filter_map(|t| t["pending_transaction_id"].as_str())
        .collect();
    for id in &pending {
        assert!(
            removed.contains(&id.as_str()) && links.contains(&id.as_str()),
            "{id} did not post"
        );
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn before_initial_data_is_ready_sync_returns_empty_arrays_and_an_empty_cursor() {
    let handle = start(plaidhook::sim::SimConfig {
        initial_data_ready: false,
        ..test_config()
    })
    .await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let (item_id, token) = plaid.link_item(Some(&receiver.url)).await;
    let (status, page) = plaid
        .call("/transactions/sync", json!({"access_token": token}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (page["next_cursor"].as_str(), page["has_more"].as_bool()),
        (Some(""), Some(false))
    );
    assert_eq!(page["transactions_update_status"], "NOT_READY");
    assert!(page["added"].as_array().unwrap().is_empty());
    plaid
        .control(&format!("/sim/items/{item_id}/ready"), json!({}))
        .await;
    // `ready` finishes both steps at once, each with its webhooks.
    let received = receiver
        .wait_for(Duration::from_secs(10), |r| r.len() >= 4)
        .await;
    let codes: Vec<String> = received.iter().map(|r| r.code()).collect();
    assert_eq!(
        codes,
        [
            "INITIAL_UPDATE",
            "SYNC_UPDATES_AVAILABLE",
            "HISTORICAL_UPDATE",
            "SYNC_UPDATES_AVAILABLE"
        ]
    );
    let hook = received[3].json();
    assert_eq!(
        (
            hook["initial_update_complete"].as_bool(),
            hook["historical_update_complete"].as_bool()
        ),
        (Some(true), Some(true))
    );
    let (_, pages) = sync_all(&plaid, &token, "", 500).await;
    assert_eq!(
        pages
            .iter()
            .map(|p| p["added"].as_array().unwrap().len())
            .sum::<usize>(),
        500
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn sync_updates_available_fires_on_data_changes_only_once_sync_has_been_called() {
    let handle = start(test_config()).await;
    let plaid = Plaid::new(&handle);
    let receiver = Receiver::start().await;
    let (item_id, token) = plaid.link_item(Some(&receiver.url)).await;
    handle.sim().advance(&item_id, 1);
    plaid
        .call(
            "/transactions/sync",
            json!({"access_token": token, "count": 1}),
        )
        .await;
    handle.sim().advance(&item_id, 1);
    plaid
        .call("/transactions/refresh", json!({"access_token": token}))
        .await;
    // Each change also sends its legacy webhooks (DEFAULT_UPDATE, TRANSACTIONS_REMOVED); only
    // SYNC_UPDATES_AVAILABLE waits for the first sync call.
    let received = receiver
        .wait_for(Duration::from_secs(10), |r| {
            r.iter()
                .filter(|w| w.code() == "SYNC_UPDATES_AVAILABLE")
                .count()
                >= 2
        })
        .await;
    let codes: Vec<String> = received.iter().map(|r| r.code()).collect();
    let first_sync_hook = codes
        .iter()
        .position(|c| c == "SYNC_UPDATES_AVAILABLE")
        .unwrap();
    assert!(
        codes[..first_sync_hook]
            .iter()
            .all(|c| c == "DEFAULT_UPDATE" || c == "TRANSACTIONS_REMOVED"),
        "before the first sync call only legacy webhooks: {codes:?}"
    );
    assert!(first_sync_hook >= 1, "{codes:?}");
    assert_eq!(
        handle
            .sim()
            .deliveries()
            .iter()
            .filter(|d| d.webhook_code == "SYNC_UPDATES_AVAILABLE")
            .count(),
        2,
        "none before the first sync call"
    );
    handle.shutdown().await;
}
