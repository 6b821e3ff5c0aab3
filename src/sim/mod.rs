//! The Plaid simulator (`plaidhook sim`): a local server that behaves like Plaid for every
//! endpoint and webhook plaidhook uses, for development, tests, demos and load tests.
//!
//! - Plaid's API (`routes`): the 14 endpoints of the spec, with Plaid's validation and errors.
//! - Data (`data`, `sync`, `lifecycle`): deterministic, seeded bank histories that keep
//!   changing, paged by `/transactions/sync` with opaque cursors exactly as Plaid documents,
//!   and made available as Plaid does: nothing, the last 30 days, then the whole history.
//! - Webhooks (`keys`, `bodies`, `webhooks`): signed ES256 JWTs as Plaid signs them, delivered
//!   and redelivered with Plaid's backoff.
//! - Hosted Link (`hosted`): the page a Hosted Link URL opens, with its LINK webhooks.
//! - Control (`control`): `/sim/…` endpoints for faults and ground truth, and `GET /`, an
//!   index of them.
//! - State (`persist`): with a state file, Items, tokens and keys survive a restart.
//!
//! In-process use: [`Simulator::start`] on port 0 (in memory), then [`SimHandle::sim`] for
//! direct access; [`Simulator::start_with`] adds a state file.

// Handlers return Plaid's error body by value: it is the response, built once per failed
// request, so boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod bodies;
mod catalog;
pub mod config;
mod control;
pub mod data;
mod errors;
mod hosted;
mod ids;
pub mod keys;
mod lifecycle;
pub mod limits;
mod persist;
mod render;
mod request;
mod routes;
pub mod state;
pub mod sync;
mod validate;
pub mod webhooks;

pub use config::SimConfig;
pub use control::CONTROL_ROUTES;
pub use data::ChangeCounts;
pub use keys::{body_sha256_hex, webhook_claims, webhook_jwt_header, SigningKey};
pub use limits::RateLimitProfile;
pub use persist::Persistence;
pub use state::{InjectedFault, NewItem};
pub use webhooks::DeliveryRecord;

use crate::plaid::{AccessToken, AccountBase, ItemId, Transaction};
use anyhow::Context as _;
use persist::StateFile;
use state::SimState;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use webhooks::Dispatch;

/// A webhook body and the `Plaid-Verification` header value that signs it.
#[derive(Debug, Clone)]
pub struct SignedWebhook {
    pub body: Vec<u8>,
    pub plaid_verification: String,
}

struct Inner {
    state: Mutex<SimState>,
    dispatch: mpsc::UnboundedSender<Dispatch>,
    lifecycle: mpsc::UnboundedSender<state::Timer>,
    deliveries: Mutex<Vec<DeliveryRecord>>,
    delivered: watch::Sender<usize>,
    /// Woken after every `with_state`: the state file writer's cue.
    changed: Notify,
}

/// A handle on the running simulator's state; cheap to clone.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

impl Sim {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Run `f` on the state; webhooks it queued are handed to the dispatcher afterwards.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        let (result, outbox, timers) = {
            let mut state = self.lock();
            let result = f(&mut state);
            let outbox = std::mem::take(&mut state.outbox);
            (result, outbox, std::mem::take(&mut state.timers))
        };
        self.inner.changed.notify_one();
        for timer in timers {
            // Gone only at shutdown, like the dispatcher.
            let _ = self.inner.lifecycle.send(timer);
        }
        for webhook in outbox {
            // The dispatcher only goes away at shutdown; webhooks queued then are dropped.
            let _ = self.inner.dispatch.send(Dispatch::Webhook(webhook));
        }
        result
    }

    pub fn config(&self) -> SimConfig {
        self.lock().config.clone()
    }

    /// Change settings at run time (faults, limits, webhook timing…).
    pub fn update_config(&self, f: impl FnOnce(&mut SimConfig)) {
        self.with_state(|s| f(&mut s.config));
    }

    /// Create an Item directly (no Link), with `new.transactions` or the configured count.
    pub fn create_item(&self, new: NewItem) -> (ItemId, AccessToken) {
        self.with_state(|s| {
            let item_id = s.create_item(new);
            let token = s.items[&item_id].access_token.clone();
            (ItemId::new(item_id), AccessToken::new(token))
        })
    }

    /// The Item's current transactions: what a correct sync ends with.
    pub fn ground_truth(&self, item_id: &str) -> Option<Vec<Transaction>> {
        self.with_state(|s| {
            let item = s.items.get(item_id)?;
            Some(
                item.data
                    .live()
                    .map(|t| render::transaction(&item.data, t))
                    .collect(),
            )
        })
    }

    pub fn accounts(&self, item_id: &str) -> Option<Vec<AccountBase>> {
        self.with_state(|s| {
            s.items
                .get(item_id)
                .map(|item| render::accounts(&item.data))
        })
    }

    /// Move the Item's bank forward by `days` (SYNC_UPDATES_AVAILABLE follows if sync was called).
    pub fn advance(&self, item_id: &str, days: u32) -> Option<ChangeCounts> {
        self.with_state(|s| s.advance(item_id, days))
    }

    pub fn reset_login(&self, item_id: &str) -> bool {
        self.with_state(|s| s.reset_login(item_id))
    }

    /// The user completes update mode in the app: the error clears, no webhook (Plaid sends
    /// LOGIN_REPAIRED only for a repair outside the app).
    pub fn complete_update_mode(&self, item_id: &str) -> bool {
        self.with_state(|s| s.complete_update_mode(item_id))
    }

    /// The Item recovers outside the app: the error clears, LOGIN_REPAIRED is sent.
    pub fn repair_outside_app(&self, item_id: &str) -> bool {
        self.with_state(|s| s.repair_outside_app(item_id))
    }

    /// The Item's consent is about to expire, as its institution's region has Plaid say it:
    /// PENDING_EXPIRATION (Europe) or PENDING_DISCONNECT `INSTITUTION_TOKEN_EXPIRATION` (US, CA).
    pub fn consent_expiring(&self, item_id: &str) -> Option<&'static str> {
        self.with_state(|s| s.consent_expiring(item_id))
    }

    /// PENDING_DISCONNECT with `reason` (`INSTITUTION_MIGRATION`, `INSTITUTION_TOKEN_EXPIRATION`).
    pub fn pending_disconnect(&self, item_id: &str, reason: &str) -> bool {
        self.with_state(|s| s.pending_disconnect(item_id, reason))
    }

    /// Finish an Item's first fetch of transactions now (initial and historical updates,
    /// with their webhooks), without waiting for the lifecycle's delays.
    pub fn set_ready(&self, item_id: &str) -> bool {
        self.with_state(|s| s.make_ready(item_id))
    }

    /// The next mid-pagination `/transactions/sync` call on the Item changes its data first,
    /// so it fails with TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION.
    pub fn arm_mutation_during_pagination(&self, item_id: &str) -> bool {
        self.with_state(|s| match s.items.get_mut(item_id) {
            Some(item) => {
                item.mutate_during_pagination = true;
                true
            }
            None => false,
        })
    }

    pub fn inject_fault(&self, fault: InjectedFault) {
        self.with_state(|s| s.faults.push(fault));
    }

    /// The key webhooks are signed with now.
    pub fn current_key(&self) -> SigningKey {
        self.lock().keys.current().clone()
    }

    /// Every key, expired ones included.
    pub fn keys(&self) -> Vec<SigningKey> {
        self.lock().keys.all().to_vec()
    }

    /// Expire the current key and sign with a new one from now on.
    pub fn rotate_key(&self) -> SigningKey {
        self.with_state(|s| {
            let now = chrono::Utc::now().timestamp();
            s.keys.rotate(&mut rand::rngs::OsRng, now).clone()
        })
    }

    /// `Plaid-Verification` for `body`, signed with the current key, issued now.
    pub fn sign_webhook(&self, body: &[u8]) -> String {
        self.current_key()
            .sign_webhook(body, chrono::Utc::now().timestamp())
    }

    /// A webhook body (pretty-printed like Plaid's) and its signature with the current key.
    pub fn signed_webhook(&self, body: &impl serde::Serialize) -> SignedWebhook {
        let body = serde_json::to_vec_pretty(body).expect("webhook body serialises");
        let plaid_verification = self.sign_webhook(&body);
        SignedWebhook {
            body,
            plaid_verification,
        }
    }

    /// Every delivery attempt so far.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.inner
            .deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait until `condition` holds for the delivery log, or `timeout` passes; returns the log.
    pub async fn wait_for_deliveries(
        &self,
        timeout: Duration,
        condition: impl Fn(&[DeliveryRecord]) -> bool,
    ) -> Result<Vec<DeliveryRecord>, Vec<DeliveryRecord>> {
        let mut changes = self.inner.delivered.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            let log = self.deliveries();
            if condition(&log) {
                return Ok(log);
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return Err(self.deliveries());
            }
        }
    }

    /// Release webhooks held back by `webhook_reorder_window`.
    pub fn flush_webhooks(&self) {
        let _ = self.inner.dispatch.send(Dispatch::Flush);
    }

    pub(crate) fn record_delivery(&self, record: DeliveryRecord) {
        let count = {
            let mut log = self
                .inner
                .deliveries
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            log.push(record);
            log.len()
        };
        self.inner.delivered.send_replace(count);
    }
}

/// Starts simulators.
pub struct Simulator;

/// The simulator's address is taken: most likely another simulator (a `plaidhook all` or
/// `plaidhook sim`) already runs there. The caller says what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("the simulator's address {addr} is in use (another plaidhook all or sim?)")]
pub struct AddressInUse {
    pub addr: SocketAddr,
}

/// A running simulator: its address, direct access to its state, and shutdown.
pub struct SimHandle {
    addr: SocketAddr,
    sim: Sim,
    cancel: CancellationToken,
    tracker: TaskTracker,
    state_file: Option<Arc<StateFile>>,
}

impl Simulator {
    /// Bind `addr` (port 0 picks a free port) and serve in the background, in memory.
    pub async fn start(config: SimConfig, addr: SocketAddr) -> anyhow::Result<SimHandle> {
        Self::start_with(config, addr, None).await
    }

    /// Like [`Simulator::start`], keeping the state in `persistence`'s file when given: what it
    /// holds is loaded (unless `fresh`), and every change is written back. A taken address
    /// fails with [`AddressInUse`].
    pub async fn start_with(
        config: SimConfig,
        addr: SocketAddr,
        persistence: Option<Persistence>,
    ) -> anyhow::Result<SimHandle> {
        config.validate().context("invalid [sim] settings")?;
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(AddressInUse { addr }.into())
            }
            Err(e) => {
                return Err(e).with_context(|| format!("binding the Plaid simulator to {addr}"))
            }
        };
        let addr = listener.local_addr()?;
        let mut state = SimState::new(config);
        state.base_url = reachable_base_url(state.config.public_url.as_deref(), addr);
        let (lifecycle, lifecycle_rx) = mpsc::unbounded_channel();
        let state_file = match &persistence {
            None => None,
            Some(persistence) => {
                let file = StateFile::lock(persistence)?;
                let loaded = !persistence.fresh && file.load_into(&mut state)?;
                tracing::info!(
                    path = %file.path().display(),
                    items = state.items.len(),
                    restored = loaded,
                    fresh = persistence.fresh,
                    "Plaid simulator state file"
                );
                state.reschedule_unfinished();
                Some(Arc::new(file))
            }
        };
        let (dispatch, dispatch_rx) = mpsc::unbounded_channel();
        let sim = Sim {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                dispatch,
                lifecycle,
                deliveries: Mutex::new(Vec::new()),
                delivered: watch::Sender::new(0),
                changed: Notify::new(),
            }),
        };
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        if let Some(file) = &state_file {
            // At once: a fresh start replaces the old file now, a new one shows where it is.
            file.save(&sim).await;
            tracker.spawn(persist::run_writer(
                sim.clone(),
                file.clone(),
                cancel.clone(),
            ));
        }
        tracker.spawn(lifecycle::run(sim.clone(), lifecycle_rx, cancel.clone()));
        // Hands over the steps rescheduled from the state file.
        sim.with_state(|_| ());
        tracker.spawn(webhooks::run_dispatcher(
            sim.clone(),
            dispatch_rx,
            cancel.clone(),
            tracker.clone(),
        ));
        let app = routes::plaid_router()
            .merge(control::control_router())
            .merge(hosted::hosted_router())
            .with_state(sim.clone());
        let shutdown = cancel.clone();
        tracker.spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "Plaid simulator stopped serving");
            }
        });
        let base = format!("http://{addr}");
        tracing::info!(
            %addr,
            plaid_api = %base,
            link_complete = %format!("{base}/sim/link/complete"),
            control_api = %format!("{base}/sim/"),
            routes = %format!("{base}/"),
            state_file = %state_file.as_ref().map_or_else(|| "none (in memory)".to_owned(), |f| f.path().display().to_string()),
            "Plaid simulator listening: Plaid's API at plaid_api; finish Link with POST link_complete {{\"link_token\"}}; GET routes lists the control API"
        );
        Ok(SimHandle {
            addr,
            sim,
            cancel,
            tracker,
            state_file,
        })
    }
}

impl SimHandle {
    /// e.g. `http://127.0.0.1:PORT`; point a Plaid client's base URL here.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    /// Stop accepting, finish in-flight requests, abandon pending redeliveries, write the
    /// state file a last time (and release it).
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        if let Some(file) = &self.state_file {
            file.save(&self.sim).await;
        }
    }
}

/// The base URL of the pages the simulator hands out (Hosted Link): `sim.public_url` when set,
/// else the bound address, with loopback for an all-interfaces bind (a browser cannot open
/// `0.0.0.0`).
fn reachable_base_url(public_url: Option<&str>, addr: SocketAddr) -> String {
    if let Some(url) = public_url.filter(|url| !url.is_empty()) {
        return url.trim_end_matches('/').to_owned();
    }
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

/// Serve until ctrl-c or SIGTERM (`plaidhook sim`).
pub async fn run(
    config: SimConfig,
    addr: SocketAddr,
    persistence: Option<Persistence>,
) -> anyhow::Result<()> {
    let handle = match Simulator::start_with(config, addr, persistence).await {
        Ok(handle) => handle,
        Err(e) => match e.downcast_ref::<AddressInUse>() {
            Some(in_use) => anyhow::bail!(
                "{in_use}; use the simulator already there, or stop it, or start this one \
                 elsewhere with sim.port (PLAIDHOOK__SIM__PORT): a second simulator is a \
                 different Plaid that knows none of the first one's Items"
            ),
            None => return Err(e),
        },
    };
    tracing::info!(base_url = %handle.base_url(), "Plaid simulator ready; ctrl-c to stop");
    wait_for_stop().await?;
    handle.shutdown().await;
    Ok(())
}

/// Ctrl-c, or SIGTERM on Unix (how service managers and containers stop a process): either
/// way the state file gets its last write.
async fn wait_for_stop() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        tokio::select! {
            signal = tokio::signal::ctrl_c() => signal.context("waiting for ctrl-c")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    Ok(())
}
