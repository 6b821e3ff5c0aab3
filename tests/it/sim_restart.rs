//! The simulator as a newcomer and an on-call engineer meet it: the README's local flow (Link
//! token, `/sim/link/complete`, exchange) with plaidhook's built-in simulator, a restart of the
//! simulator on its state file with the Item still working and still syncing, `--fresh`
//! (`sim.fresh`) starting over under new ids, a second simulator refused, a taken port named
//! with its fix, a process sharing the running simulator (`sim.embedded = false`), and
//! `GET /`, the simulator's index.

use crate::helpers::sim::{start, sync_all, test_config, Plaid};

use plaidhook::app::{Application, Role};
use plaidhook::sim::{Persistence, SimHandle, Simulator, CONTROL_ROUTES};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use testkit::world::{sim_config, Linked, World};
use testkit::{settings_with, TestDatabase};
use uuid::Uuid;

const API_TOKEN: &str = testkit::api::TOKEN;

/// A state file in a directory of its own, removed when the test ends.
struct StateDir(PathBuf);

impl StateDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("plaidhook-sim-{}", Uuid::new_v4().simple())))
    }

    fn file(&self) -> PathBuf {
        self.0.join("plaidhook-sim.json")
    }

    fn keep(&self, fresh: bool) -> Option<Persistence> {
        Some(Persistence {
            path: self.file(),
            fresh,
        })
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn start_at(addr: SocketAddr, persistence: Option<Persistence>) -> SimHandle {
    Simulator::start_with(test_config(), addr, persistence)
        .await
        .expect("the simulator starts")
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = http
        .post(url)
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("the request is answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(http: &reqwest::Client, url: String) -> (u16, Value) {
    let response = http.get(url).send().await.expect("the request is answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The README's "Link an Item locally", call for call: a Link token from plaidhook's API, Link
/// finished at the simulator, the public token exchanged through plaidhook's API.
async fn link_as_the_readme_shows(node: &testkit::TestApp) -> Linked {
    let http = reqwest::Client::new();
    let (status, link) = post(
        &http,
        node.internal_url("/api/v1/link/token"),
        json!({"client_user_id": "user-1"}),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    let (status, completed) = post(
        &http,
        format!("{}/sim/link/complete", node.sim_url),
        json!({"link_token": link["link_token"]}),
    )
    .await;
    assert_eq!(status, 200, "{completed}");
    let (status, item) = post(
        &http,
        node.internal_url("/api/v1/link/exchange"),
        json!({"public_token": completed["public_token"], "client_user_id": "user-1"}),
    )
    .await;
    assert_eq!(status, 201, "{item}");
    Linked {
        id: item["item_id"].as_str().unwrap().parse().unwrap(),
        plaid_item_id: item["plaid_item_id"].as_str().unwrap().to_owned(),
    }
}

/// Whether the database holds exactly the transactions the node's built-in simulator has.
async fn wait_synced(world: &World, node: &testkit::TestApp, item: &Linked) -> bool {
    world
        .eventually(Duration::from_secs(30), || async {
            let truth: BTreeSet<String> = node
                .sim()
                .ground_truth(&item.plaid_item_id)
                .expect("the simulator knows the Item")
                .into_iter()
                .map(|t| t.transaction_id.as_str().to_owned())
                .collect();
            let stored: BTreeSet<String> = world.stored(item).await.into_keys().collect();
            !truth.is_empty() && stored == truth && world.running(item).await == 0
        })
        .await
}

#[tokio::test]
async fn the_readme_flow_links_an_item_that_keeps_syncing_after_the_simulator_restarts() {
    let world = World::new(sim_config()).await;
    let state = StateDir::new();
    let (sim_port, public_port) = (free_port().to_string(), free_port().to_string());
    let state_file = state.file().display().to_string();
    // `plaidhook all` as the quick start runs it: the built-in simulator, on fixed ports (the
    // Item's webhook URL names the public one), keeping its state in a file.
    let all = [
        ("PLAIDHOOK__PLAID__ENVIRONMENT", "simulator"),
        ("PLAIDHOOK__SIM__PORT", sim_port.as_str()),
        ("PLAIDHOOK__SIM__STATE_FILE", state_file.as_str()),
        ("PLAIDHOOK__SIM__WEBHOOK_TIME_SCALE", "0.001"),
        ("PLAIDHOOK__PUBLIC__PORT", public_port.as_str()),
    ];
    let node = world.node(Role::All, &all).await;
    let item = link_as_the_readme_shows(&node).await;
    assert!(
        wait_synced(&world, &node, &item).await,
        "the first sync stores the Item's transactions"
    );
    let before = world.stored(&item).await.len();
    node.stop().await.expect("plaidhook stops");

    // The simulator (and plaidhook with it) restarts on the same state file.
    let node = world.node(Role::All, &all).await;
    let http = reqwest::Client::new();
    let (status, refreshed) = post(
        &http,
        node.internal_url(&format!("/api/v1/items/{}/balances/refresh", item.id)),
        json!({}),
    )
    .await;
    assert_eq!(
        status, 200,
        "the stored access token still works: {refreshed}"
    );
    let (status, advanced) = post(
        &http,
        format!("{}/sim/items/{}/advance", node.sim_url, item.plaid_item_id),
        json!({"days": 3}),
    )
    .await;
    assert_eq!(status, 200, "{advanced}");
    assert!(advanced["changes"]["added"].as_u64().unwrap() > 0);
    assert!(
        wait_synced(&world, &node, &item).await,
        "the webhook after the restart brings the new transactions"
    );
    assert!(world.stored(&item).await.len() > before);
    assert_eq!(world.item_status(&item).await.0, "active");
    node.stop().await.expect("plaidhook stops");
    world.finish().await;
}

#[tokio::test]
async fn a_restarted_simulator_keeps_items_tokens_keys_and_cursors() {
    let state = StateDir::new();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let first = start_at(addr, state.keep(false)).await;
    let plaid = Plaid::new(&first);
    let (item_id, token) = plaid.link_item(None).await;
    let (cursor, _) = sync_all(&plaid, &token, "", 500).await;
    plaid
        .control(&format!("/sim/items/{item_id}/advance"), json!({"days": 2}))
        .await;
    let rotated = plaid.control("/sim/keys/rotate", json!({})).await;
    let (other, other_token) = plaid.link_item(None).await;
    plaid
        .control(&format!("/sim/items/{other}/reset_login"), json!({}))
        .await;
    let truth = first.sim().ground_truth(&item_id).unwrap();
    let keys = first.sim().keys();
    first.shutdown().await;

    let second = start_at(addr, state.keep(false)).await;
    let plaid = Plaid::new(&second);
    let (status, got) = plaid
        .call("/item/get", json!({"access_token": token}))
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["item"]["item_id"], json!(item_id));
    assert_eq!(second.sim().ground_truth(&item_id).unwrap(), truth);
    let kids = |keys: &[plaidhook::sim::SigningKey]| {
        keys.iter()
            .map(|k| (k.kid.clone(), k.public_jwk()))
            .collect::<Vec<_>>()
    };
    assert_eq!(kids(&second.sim().keys()), kids(&keys));
    assert_eq!(json!(second.sim().current_key().kid), rotated["key"]["kid"]);
    // The Item in error stays in error.
    let (status, error) = plaid
        .call("/transactions/sync", json!({"access_token": other_token}))
        .await;
    assert_eq!(
        (status, error["error_code"].as_str()),
        (400, Some("ITEM_LOGIN_REQUIRED"))
    );
    // A cursor from before the restart yields exactly what changed after it.
    let (_, pages) = sync_all(&plaid, &token, &cursor, 500).await;
    let added: usize = pages
        .iter()
        .map(|p| p["added"].as_array().unwrap().len())
        .sum();
    assert!(
        added > 0,
        "the two days advanced before the restart are there"
    );
    second
        .sim()
        .advance(&item_id, 1)
        .expect("the Item is there");
    assert_eq!(
        second.sim().ground_truth(&item_id).unwrap().len(),
        {
            let (_, pages) = sync_all(&plaid, &token, "", 500).await;
            pages
                .iter()
                .map(|p| p["added"].as_array().unwrap().len())
                .sum::<usize>()
        },
        "a full sync after changes made since the restart equals the ground truth"
    );
    let old_transactions: BTreeSet<String> = second
        .sim()
        .ground_truth(&item_id)
        .unwrap()
        .into_iter()
        .map(|t| t.transaction_id.as_str().to_owned())
        .collect();

    // A second simulator cannot take the same file while this one runs.
    let refused = Simulator::start_with(
        test_config(),
        "127.0.0.1:0".parse().unwrap(),
        state.keep(false),
    )
    .await
    .err()
    .expect("a second simulator on the same state file is refused")
    .to_string();
    assert!(refused.contains("sim.state_file"), "{refused}");
    second.shutdown().await;

    // Fresh: nothing of the previous run, and nothing it handed out is handed out again.
    let third = start_at(addr, state.keep(true)).await;
    let plaid = Plaid::new(&third);
    let (status, gone) = plaid
        .call("/item/get", json!({"access_token": token}))
        .await;
    assert_eq!(
        (status, gone["error_code"].as_str()),
        (400, Some("INVALID_ACCESS_TOKEN"))
    );
    assert!(third.sim().with_state(|s| s.items.is_empty()));
    let (new_item, new_token) = plaid.link_item(None).await;
    assert!(new_item != item_id && new_item != other);
    assert!(new_token != token && new_token != other_token);
    let new_transactions: BTreeSet<String> = third
        .sim()
        .ground_truth(&new_item)
        .unwrap()
        .into_iter()
        .map(|t| t.transaction_id.as_str().to_owned())
        .collect();
    assert!(new_transactions.is_disjoint(&old_transactions));
    assert!(third
        .sim()
        .keys()
        .iter()
        .all(|k| keys.iter().all(|old| old.kid != k.kid)));
    third.shutdown().await;

    // And what the fresh run wrote is what the next start reads.
    let fourth = start_at(addr, state.keep(false)).await;
    assert_eq!(fourth.sim().with_state(|s| s.order.clone()), vec![new_item]);
    fourth.shutdown().await;
}

#[tokio::test]
async fn a_taken_simulator_port_fails_start_up_naming_the_setting_that_shares_it() {
    let running = start(test_config()).await;
    let port = running.local_addr().port().to_string();
    let database = TestDatabase::new();
    let settings = settings_with(&[
        ("PLAIDHOOK__DATABASE__URL", database.url.as_str()),
        ("PLAIDHOOK__PLAID__ENVIRONMENT", "simulator"),
        ("PLAIDHOOK__SIM__PORT", port.as_str()),
    ])
    .expect("test settings");
    let error = Application::build(settings.clone(), Role::Worker)
        .await
        .err()
        .expect("a second simulator on a taken port is refused");
    let message = format!("{error:#}");
    assert!(
        message.contains(&format!("127.0.0.1:{port} is in use"))
            && message.contains("PLAIDHOOK__SIM__EMBEDDED=false"),
        "{message}"
    );

    // The fix it names: this process uses the simulator already running there.
    let mut shared = settings;
    shared.sim.embedded = false;
    let app = Application::build(shared, Role::Worker)
        .await
        .expect("a process sharing the running simulator starts");
    assert!(app.sim().is_none(), "no simulator of its own");
    assert_eq!(app.plaid_base_url(), running.base_url());
    drop(app);
    running.shutdown().await;
}

#[tokio::test]
async fn get_slash_on_the_simulator_lists_its_routes_and_how_to_link_an_item() {
    let handle = start(test_config()).await;
    let http = reqwest::Client::new();
    let (status, index) = get(&http, format!("{}/", handle.base_url())).await;
    assert_eq!(status, 200, "{index}");
    let listed: Vec<(String, String)> = index["control_api"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_owned(),
                r["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(listed.len(), CONTROL_ROUTES.len());
    assert!(listed.contains(&("POST".to_owned(), "/sim/link/complete".to_owned())));
    assert!(index["link_an_item"]
        .as_array()
        .unwrap()
        .iter()
        .any(|step| step.as_str().unwrap().contains("/sim/link/complete")));
    // Every listed route is served (a path the simulator does not know answers 404).
    let item = handle.sim().create_item(Default::default()).0;
    for (method, path) in &listed {
        let url = format!(
            "{}{}",
            handle.base_url(),
            path.replace("{item_id}", item.as_str())
        );
        let request = match method.as_str() {
            "GET" => http.get(url),
            "DELETE" => http.delete(url),
            _ => http.post(url).json(&json!({})),
        };
        let status = request.send().await.unwrap().status().as_u16();
        assert!(status != 404 && status != 405, "{method} {path}: {status}");
    }
    // So is every Plaid endpoint listed (credentials missing: Plaid's 400, not a 404).
    let endpoints = index["plaid_api"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 14);
    for endpoint in endpoints {
        let (status, body) = Plaid::new(&handle)
            .raw(endpoint.as_str().unwrap(), &json!({}))
            .await;
        assert_eq!(status, 400, "{endpoint}: {body}");
    }
    handle.shutdown().await;
}
