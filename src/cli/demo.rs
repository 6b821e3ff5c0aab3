//! `plaidhook demo`: the whole flow in one command, against the built-in simulator.
//!
//! It starts plaidhook (listeners and workers) with the simulator as its Plaid, on a demo
//! database of its own, and then does what an app and its users would: links a few Items
//! through the management API and Link (the simulator plays the user), lets Plaid's webhooks
//! flow through the verified ingress into the sync worker, advances one bank's data, breaks one
//! Item's login, and prints a summary — Items, statuses, transaction counts, the alert raised —
//! every few seconds while it keeps running. Ctrl-C stops it.

use std::time::Duration;

use anyhow::Context;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::app::{cancel_on_signal, Application, Role};
use crate::config::{PlaidEnvironment, Settings};

/// How long the demo waits for something the flow should do on its own.
const PATIENCE: Duration = Duration::from_secs(60);

pub async fn run(mut settings: Settings, items: usize) -> anyhow::Result<()> {
    if settings.plaid.environment != PlaidEnvironment::Simulator {
        anyhow::bail!(
            "the demo runs against the built-in simulator: set plaid.environment = \"simulator\""
        );
    }
    // A database of its own, fresh each run: the simulator's banks are new every run.
    let mut url = settings.database.url.expose_secret().to_owned();
    if let Some(slash) = url.rfind('/') {
        url.truncate(slash);
    }
    settings.database.url = SecretString::from(format!("{url}/plaidhook_demo"));
    // Its simulator starts empty and stays in memory to match: a state file would keep Items
    // the fresh database no longer knows (and would be `plaidhook all`'s file).
    settings.sim.state_file.clear();
    // Plaid's lifecycle (nothing, the last 30 days, then the history), sped up so the demo
    // shows it in moments rather than Plaid's seconds to minutes.
    settings.sim.behaviour.initial_data_ready = false;
    settings.sim.behaviour.initial_update_delay_ms = 1_000;
    settings.sim.behaviour.historical_update_delay_ms = 2_000;
    reset_database(&settings).await?;
    // A bearer token for this run only; plaidhook keeps its hash, never the token.
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    let api_token = hex::encode(bytes);
    settings.api.tokens.insert(
        "demo".into(),
        hex::encode(Sha256::digest(api_token.as_bytes())),
    );

    let app = Application::build(settings, Role::All).await?;
    let api = format!("http://{}", app.internal_addr());
    let public = app.public_addr().context("the demo serves webhooks")?;
    let sim = app.plaid_base_url().to_owned();
    let db = app.db().clone();
    let shutdown = app.shutdown_token();
    cancel_on_signal(shutdown.clone());
    let running = tokio::spawn(app.run_until_stopped());

    println!("plaidhook demo");
    println!("  webhooks   http://{public}/webhooks/plaid");
    println!("  API        {api}/api/v1  (Authorization: Bearer {api_token})");
    println!("  OpenAPI    {api}/api/openapi.json   metrics {api}/metrics");
    println!("  Plaid      {sim}  (built-in simulator)\n");

    let client = Client {
        http: reqwest::Client::new(),
        api: api.clone(),
        sim,
        token: api_token,
    };
    client.wait_ready().await?;

    let mut linked = Vec::new();
    for n in 1..=items {
        let user = format!("user-{n}");
        let item = client.link(&user).await?;
        println!("linked an Item for {user}: {} (Plaid {})", item.0, item.1);
        linked.push(item);
    }
    println!("\nwaiting for the first syncs (Plaid's SYNC_UPDATES_AVAILABLE → ingress → RabbitMQ → sync worker)…");
    for (id, _) in &linked {
        client
            .wait_for(id, |item| item["last_synced_at"].is_string())
            .await?;
    }
    print_summary(&db).await?;

    if let Some((id, plaid_id)) = linked.first() {
        println!("\nthe bank of {plaid_id} moves 3 days on (new, posted, modified and removed transactions)…");
        let before = client.item(id).await?["last_synced_at"].clone();
        client
            .sim_post(
                &format!("/sim/items/{plaid_id}/advance"),
                json!({ "days": 3 }),
            )
            .await?;
        client
            .wait_for(id, |item| item["last_synced_at"] != before)
            .await?;
    }
    if let Some((id, plaid_id)) = linked.get(1).or(linked.first()) {
        println!("\nthe user of {plaid_id} changes their bank password (ITEM_LOGIN_REQUIRED)…");
        client
            .sim_post(&format!("/sim/items/{plaid_id}/reset_login"), json!({}))
            .await?;
        client
            .wait_for(id, |item| item["status"] == "login_required")
            .await?;
        let item = client.item(id).await?;
        for alert in item["open_alerts"].as_array().into_iter().flatten() {
            println!(
                "ALERT raised: {}",
                alert["message"].as_str().unwrap_or("(no message)")
            );
        }
        println!(
            "repair it with an update-mode Link token: POST {api}/api/v1/items/{id}/link-token"
        );
    }

    loop {
        print_summary(&db).await?;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(15)) => {}
        }
    }
    running.await?
}

async fn reset_database(settings: &Settings) -> anyhow::Result<()> {
    use sqlx::migrate::MigrateDatabase;
    let url = settings.database.url.expose_secret();
    if sqlx::Postgres::database_exists(url)
        .await
        .context("could not reach PostgreSQL")?
    {
        sqlx::Postgres::force_drop_database(url).await?;
    }
    Ok(())
}

async fn print_summary(db: &sqlx::PgPool) -> anyhow::Result<()> {
    let rows = sqlx::query!(
        r#"select i.plaid_item_id, i.client_user_id, i.status, i.last_synced_at,
                  (select count(*) from transactions t where t.item_id = i.id) as "transactions!",
                  (select count(*) from transactions t where t.item_id = i.id and t.pending) as "pending!",
                  (select count(*) from alerts a where a.item_id = i.id and a.resolved_at is null) as "open_alerts!"
           from items i order by i.created_at"#
    )
    .fetch_all(db)
    .await?;
    println!(
        "\n{:<40} {:<8} {:<16} {:>12} {:>8} {:>6}  last synced",
        "Item", "user", "status", "transactions", "pending", "alerts"
    );
    for row in rows {
        println!(
            "{:<40} {:<8} {:<16} {:>12} {:>8} {:>6}  {}",
            row.plaid_item_id,
            row.client_user_id.unwrap_or_default(),
            row.status,
            row.transactions,
            row.pending,
            row.open_alerts,
            row.last_synced_at
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_else(|| "-".into()),
        );
    }
    Ok(())
}

/// The demo's HTTP calls: plaidhook's API as an app makes them, the simulator as a user.
struct Client {
    http: reqwest::Client,
    api: String,
    sim: String,
    token: String,
}

impl Client {
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while tokio::time::Instant::now() < deadline {
            let ready = self.http.get(format!("{}/readyz", self.api)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("plaidhook did not become ready: are PostgreSQL and RabbitMQ running?")
    }

    async fn api_post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "POST {path} answered {status}: {body}");
        Ok(body)
    }

    async fn sim_post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.sim))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        anyhow::ensure!(
            status.is_success(),
            "simulator {path} answered {status}: {body}"
        );
        Ok(body)
    }

    async fn item(&self, id: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}/api/v1/items/{id}", self.api))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok(response.error_for_status()?.json().await?)
    }

    /// Link as an app does: a Link token from plaidhook, the user through Link (simulated),
    /// the public token exchanged by plaidhook. Returns (our id, Plaid's id).
    async fn link(&self, user: &str) -> anyhow::Result<(String, String)> {
        let token = self
            .api_post("/api/v1/link/token", json!({ "client_user_id": user }))
            .await?;
        let link_token = token["link_token"].as_str().context("a link_token")?;
        let linked = self
            .sim_post("/sim/link/complete", json!({ "link_token": link_token }))
            .await?;
        let public_token = linked["public_token"].as_str().context("a public_token")?;
        let exchanged = self
            .api_post(
                "/api/v1/link/exchange",
                json!({ "public_token": public_token, "client_user_id": user }),
            )
            .await?;
        Ok((
            exchanged["item_id"]
                .as_str()
                .context("an item_id")?
                .to_owned(),
            exchanged["plaid_item_id"]
                .as_str()
                .context("a plaid_item_id")?
                .to_owned(),
        ))
    }

    async fn wait_for(&self, id: &str, done: impl Fn(&Value) -> bool) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while tokio::time::Instant::now() < deadline {
            if done(&self.item(id).await?) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        anyhow::bail!("Item {id} did not reach the expected state within {PATIENCE:?}")
    }
}
