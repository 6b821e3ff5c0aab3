//! The traffic of a chaos run: Items linked through the management API as an app would, then
//! the banks moving on (days advancing, pending transactions posting), logins breaking and
//! being repaired, all through the simulator's control API, which sends Plaid's webhooks
//! (duplicated and reordered, as configured) to the Items' ingress.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Rng;
use crate::api::TOKEN;

/// An Item of the run.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: Uuid,
    pub plaid_item_id: String,
}

/// What the traffic did.
#[derive(Debug, Default)]
pub struct Driven {
    pub advances: u64,
    pub logins_broken: u64,
    pub repairs: u64,
    /// Items whose login is broken at the end (not advanced while broken).
    pub broken: BTreeSet<usize>,
}

pub struct Traffic {
    pub http: reqwest::Client,
    pub sim_url: String,
    /// Internal listeners of the ingress processes (where the management API is).
    pub apis: Vec<String>,
}

impl Traffic {
    async fn post(&self, url: String, body: Value, bearer: bool) -> anyhow::Result<Value> {
        let mut request = self.http.post(&url).json(&body);
        if bearer {
            request = request.bearer_auth(TOKEN);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "POST {url}: {status} {body}");
        Ok(body)
    }

    async fn sim(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.post(format!("{}{path}", self.sim_url), body, false)
            .await
    }

    /// Links `count` Items, alternately through each ingress (so each gets webhooks).
    pub async fn link(&self, count: usize) -> anyhow::Result<Vec<Item>> {
        let mut items = Vec::with_capacity(count);
        for n in 0..count {
            let api = &self.apis[n % self.apis.len()];
            let token = self
                .post(
                    format!("{api}/api/v1/link/token"),
                    json!({ "client_user_id": format!("chaos-user-{n}") }),
                    true,
                )
                .await?;
            let linked = self
                .sim(
                    "/sim/link/complete",
                    json!({ "link_token": token["link_token"] }),
                )
                .await?;
            let exchanged = self
                .post(
                    format!("{api}/api/v1/link/exchange"),
                    json!({
                        "public_token": linked["public_token"],
                        "client_user_id": format!("chaos-user-{n}"),
                    }),
                    true,
                )
                .await?;
            items.push(Item {
                id: exchanged["item_id"].as_str().context("item_id")?.parse()?,
                plaid_item_id: exchanged["plaid_item_id"]
                    .as_str()
                    .context("plaid_item_id")?
                    .to_owned(),
            });
        }
        Ok(items)
    }

    /// Moves the banks on until `stop`: one action every `pace`.
    pub async fn drive(
        &self,
        items: &[Item],
        rng: &mut Rng,
        pace: Duration,
        stop: CancellationToken,
    ) -> Driven {
        let mut driven = Driven::default();
        while !stop.is_cancelled() {
            let n = rng.below(items.len());
            let item = &items[n].plaid_item_id;
            let roll = rng.unit();
            let done = if driven.broken.contains(&n) {
                // A broken Item is not advanced: its data could not be synced until repaired.
                if roll < 0.2 {
                    // Repaired outside any app, so Plaid tells plaidhook (LOGIN_REPAIRED); an
                    // in-app repair would need the app's link-success call.
                    let repaired = self
                        .sim(&format!("/sim/items/{item}/login_repaired"), json!({}))
                        .await;
                    if repaired.is_ok() {
                        driven.broken.remove(&n);
                        driven.repairs += 1;
                    }
                    repaired.map(|_| ())
                } else {
                    Ok(())
                }
            } else if roll < 0.03 {
                let broken = self
                    .sim(&format!("/sim/items/{item}/reset_login"), json!({}))
                    .await;
                if broken.is_ok() {
                    driven.broken.insert(n);
                    driven.logins_broken += 1;
                }
                broken.map(|_| ())
            } else {
                let advanced = self
                    .sim(&format!("/sim/items/{item}/advance"), json!({ "days": 1 }))
                    .await;
                if advanced.is_ok() {
                    driven.advances += 1;
                }
                advanced.map(|_| ())
            };
            if let Err(error) = done {
                eprintln!("chaos: traffic action failed: {error:#}");
            }
            tokio::time::sleep(pace).await;
        }
        driven
    }
}
