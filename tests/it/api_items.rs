//! What an app and an on-call meet beyond the happy path of the API: finding Items by the
//! app's user or by Plaid's id, `last_webhook_at`, `Retry-After`, JSON for unknown routes, an
//! Item created without plaidhook's webhook URL, and the same Plaid Item linked again.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use testkit::api::{start, Harness};
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(15);

/// The causes in the Item's status history, oldest first.
async fn history_causes(h: &Harness, item_id: Uuid) -> Vec<String> {
    sqlx::query_scalar("select cause from item_status_history where item_id = $1 order by id")
        .bind(item_id)
        .fetch_all(&h.app.db)
        .await
        .unwrap()
}

/// The Item's `/transactions/sync` runs that finished.
async fn finished_syncs(h: &Harness, item_id: Uuid) -> i64 {
    sqlx::query_scalar("select count(*) from sync_runs where item_id = $1 and outcome <> 'running'")
        .bind(item_id)
        .fetch_one(&h.app.db)
        .await
        .unwrap()
}

/// A public token for an Item the simulator already has, as a second pass through Link.
fn public_token_for(h: &Harness, plaid_item_id: &str) -> String {
    h.app
        .sim()
        .with_state(|state| state.issue_public_token(plaid_item_id))
}

async fn exchange(h: &Harness, public_token: &str, client_user_id: &str) -> (u16, Value) {
    h.call(
        Method::POST,
        "/api/v1/link/exchange",
        Some(json!({ "public_token": public_token, "client_user_id": client_user_id })),
    )
    .await
}

#[tokio::test]
async fn items_are_found_by_the_apps_user_and_by_plaids_id_and_know_their_last_webhook() {
    let h = start(&[]).await;
    let (first, first_plaid) = h.link_settled("user-lookup-1").await;
    let (second, _) = h.link_item("user-lookup-1").await;
    let (other, other_plaid) = h.link_item("user-lookup-2").await;

    let (status, mine) = h
        .call(
            Method::GET,
            "/api/v1/items?client_user_id=user-lookup-1",
            None,
        )
        .await;
    assert_eq!(status, 200, "{mine}");
    let ids: Vec<&str> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.to_string(), second.to_string()]);

    let (status, by_plaid) = h
        .call(
            Method::GET,
            &format!("/api/v1/items?plaid_item_id={other_plaid}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{by_plaid}");
    assert_eq!(by_plaid["items"].as_array().unwrap().len(), 1);
    assert_eq!(by_plaid["items"][0]["id"], other.to_string());

    let (status, none) = h
        .call(Method::GET, "/api/v1/items?client_user_id=nobody", None)
        .await;
    assert_eq!((status, none["items"].as_array().unwrap().len()), (200, 0));
    let (status, blank) = h
        .call(Method::GET, "/api/v1/items?client_user_id=%20", None)
        .await;
    assert_eq!(status, 400, "{blank}");
    // PostgreSQL's text cannot hold NUL (schemathesis found the 503 this used to be).
    let (status, nul) = h
        .call(Method::GET, "/api/v1/items?client_user_id=a%00b", None)
        .await;
    assert_eq!(status, 400, "{nul}");
    assert_eq!(nul["error"]["code"], "bad_request", "{nul}");

    // A TRANSACTIONS webhook (the bank moved on) is the Item's last webhook. The Item's first
    // fetch (INITIAL_UPDATE, HISTORICAL_UPDATE …) already set it once.
    let before: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(h.item(first).await["last_webhook_at"].clone())
            .expect("the first fetch's webhooks were heard");
    h.app.sim().advance(&first_plaid, 1).unwrap();
    let later = |i: &Value| {
        serde_json::from_value::<chrono::DateTime<chrono::Utc>>(i["last_webhook_at"].clone())
            .is_ok_and(|at| at > before)
    };
    let item = h.item_until(first, WITHIN, later).await;
    assert!(
        later(&item),
        "last_webhook_at after SYNC_UPDATES_AVAILABLE: {item}"
    );
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_manual_sync_says_when_to_come_back_and_unknown_routes_answer_json() {
    let h = start(&[("PLAIDHOOK__API__MANUAL_SYNC_MIN_INTERVAL_SECS", "120")]).await;
    let (item_id, _) = h.link_item("user-retry-after").await;
    let path = format!("/api/v1/items/{item_id}/sync");
    let (status, _) = h.call(Method::POST, &path, None).await;
    assert_eq!(status, 202);
    let refused = h.api(Method::POST, &path).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(
        (1..=120).contains(&retry_after),
        "Retry-After {retry_after} is within the 120 s interval"
    );

    let (status, body) = h.call(Method::GET, "/api/v1/no-such-thing", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let wrong_method = h
        .api(Method::DELETE, "/api/v1/link/token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert!(wrong_method.headers()["allow"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let body: Value = wrong_method.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    // The public listener answers the same way.
    let public = h
        .app
        .http
        .get(h.app.public_url("/webhooks/plaid"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 405);
    let body: Value = public.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn an_item_created_without_plaidhooks_webhook_url_gets_it_at_exchange() {
    let h = start(&[]).await;
    // What someone who knows Plaid does first: a sandbox public token, no `options.webhook`.
    let created: Value = h
        .app
        .http
        .post(format!("{}/sandbox/public_token/create", h.sim_url))
        .json(&json!({
            "client_id": "plaidhook-sim-client",
            "secret": "plaidhook-sim-secret",
            "institution_id": "ins_109508",
            "initial_products": ["transactions"],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public_token = created["public_token"].as_str().expect("a public token");
    let (status, exchanged) = exchange(&h, public_token, "user-no-webhook").await;
    assert_eq!(status, 201, "{exchanged}");
    let item_id: Uuid = exchanged["item_id"].as_str().unwrap().parse().unwrap();
    let plaid_item_id = exchanged["plaid_item_id"].as_str().unwrap().to_owned();

    let webhook = h
        .app
        .sim()
        .with_state(|state| state.items[&plaid_item_id].webhook.clone());
    assert_eq!(webhook.as_deref(), Some(h.app.webhook_url().as_str()));
    assert_eq!(
        history_causes(&h, item_id).await,
        ["linked", "webhook_url_set"]
    );

    // And so the Item hears from Plaid: the bank moves on, a webhook comes, the Item syncs.
    h.item_until(item_id, WITHIN, |i| !i["last_synced_at"].is_null())
        .await;
    let before = finished_syncs(&h, item_id).await;
    h.app.sim().advance(&plaid_item_id, 1).unwrap();
    let heard = h
        .app
        .eventually(WITHIN, || async {
            finished_syncs(&h, item_id).await > before
        })
        .await;
    assert!(heard, "a webhook-driven sync ran after the URL was set");
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn the_same_plaid_item_linked_again_is_consistent_and_never_moves_to_another_user() {
    let h = start(&[]).await;
    let (item_id, plaid_item_id) = h.link_settled("user-relink").await;

    // Linked again by its own user: active, the new token recorded.
    let (status, again) = exchange(&h, &public_token_for(&h, &plaid_item_id), "user-relink").await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["item_id"], item_id.to_string());
    assert_eq!(history_causes(&h, item_id).await, ["linked", "relinked"]);

    // Linked by another user of the app: refused, and nothing changes.
    let (status, refused) =
        exchange(&h, &public_token_for(&h, &plaid_item_id), "someone-else").await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "conflict");
    let item = h.item(item_id).await;
    assert_eq!(item["client_user_id"], "user-relink");
    assert_eq!(history_causes(&h, item_id).await, ["linked", "relinked"]);

    // Removed, then Plaid hands the same Item out again: active again, `removed_at` cleared,
    // the return recorded, and a sync from the beginning.
    let (status, removed) = h
        .call(Method::DELETE, &format!("/api/v1/items/{item_id}"), None)
        .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["status"], "removed");
    h.app.sim().with_state(|state| {
        state.items.get_mut(&plaid_item_id).unwrap().removed = false;
    });
    let syncs_before = finished_syncs(&h, item_id).await;
    let (status, back) = exchange(&h, &public_token_for(&h, &plaid_item_id), "user-relink").await;
    assert_eq!(status, 201, "{back}");
    let item = h
        .item_until(item_id, WITHIN, |i| i["status"] == "active")
        .await;
    assert_eq!(item["status"], "active", "{item}");
    assert!(item["removed_at"].is_null(), "{item}");
    // (Plaid's removal forgot the Item's webhook URL, so the exchange may also set it again.)
    let causes: Vec<String> = history_causes(&h, item_id)
        .await
        .into_iter()
        .filter(|cause| cause != "webhook_url_set")
        .collect();
    assert_eq!(causes, ["linked", "relinked", "removed_by_api", "relinked"]);
    let synced = h
        .app
        .eventually(WITHIN, || async {
            finished_syncs(&h, item_id).await > syncs_before
        })
        .await;
    assert!(synced, "the Item synced again after its return");
    h.app.stop().await.unwrap();
}
