//! Building, running and stopping plaidhook.
//!
//! [`Application::build`] is the one way to assemble the service, used by `main` and by every
//! test: it migrates, connects, starts the built-in simulator when configured, and binds its
//! listeners (port 0 allowed, the bound addresses are readable before it runs).
//! [`Application::run_until_stopped`] serves until the shutdown token is cancelled, then stops
//! accepting, lets in-flight work finish, and returns.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::{Broker, Publisher, Topology};
use crate::config::{PlaidEnvironment, Settings};
use crate::crypto::TokenCipher;
use crate::http::{health, layers};
use crate::plaid::client::PlaidClient;
use crate::sim::{Sim, SimHandle, Simulator};
use crate::webhook::keys::KeyCache;
use crate::webhook::spool::Spool;
use crate::webhook::{Ingress, Verifier};

/// What a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The listeners: webhook ingress and the management API.
    Serve,
    /// The queue consumers (the internal listener still serves probes and metrics).
    Worker,
    /// Both in one process.
    All,
}

impl Role {
    pub fn serves_public(self) -> bool {
        matches!(self, Role::Serve | Role::All)
    }

    pub fn consumes(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }
}

/// What request handlers and workers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub role: Role,
    pub db: PgPool,
    pub broker: Broker,
    pub topology: Topology,
    /// Confirmed publishes to RabbitMQ, shared by every component.
    pub publisher: Arc<Publisher>,
    pub plaid: PlaidClient,
    /// Seals and opens access tokens at rest.
    pub tokens: TokenCipher,
    pub metrics: PrometheusHandle,
    /// The Plaid base URL in use (the built-in simulator's address when it runs in-process).
    pub plaid_base_url: String,
    /// Where Plaid is told to send webhooks.
    pub webhook_url: String,
}

pub struct Application {
    state: AppState,
    public: Option<TcpListener>,
    internal: TcpListener,
    sim: Option<SimHandle>,
    shutdown: CancellationToken,
}

impl Application {
    /// Assembles the service for `role`. Fails with a message naming the cause when a listener
    /// cannot be bound or the database cannot be migrated.
    pub async fn build(settings: Settings, role: Role) -> anyhow::Result<Self> {
        if settings.database.migrate_on_start {
            crate::store::migrate(&settings.database).await?;
        }
        let db = crate::store::lazy_pool(&settings.database)?;
        let shutdown = CancellationToken::new();

        let public = if role.serves_public() {
            let addr = settings.public.addr()?;
            Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("could not bind the public listener on {addr}"))?,
            )
        } else {
            None
        };
        let internal_addr = settings.internal.addr()?;
        let internal = TcpListener::bind(internal_addr)
            .await
            .with_context(|| format!("could not bind the internal listener on {internal_addr}"))?;

        let webhook_url = if !settings.plaid.webhook_url.is_empty() {
            settings.plaid.webhook_url.clone()
        } else {
            let public_addr = match &public {
                Some(listener) => listener.local_addr()?,
                None => settings.public.addr()?,
            };
            format!("http://{public_addr}/webhooks/plaid")
        };

        let (sim, plaid_base_url) = match settings.plaid.fixed_base_url() {
            Some(url) => (None, url),
            None => {
                debug_assert_eq!(settings.plaid.environment, PlaidEnvironment::Simulator);
                let handle = Simulator::start(settings.sim.behaviour.clone(), settings.sim.addr()?)
                    .await
                    .context("could not start the built-in Plaid simulator")?;
                let url = handle.base_url();
                tracing::info!(plaid.base_url = %url, "built-in Plaid simulator started");
                (Some(handle), url)
            }
        };

        let broker = Broker::start(
            settings.rabbitmq.url.clone(),
            "plaidhook",
            shutdown.child_token(),
        );

        let topology = Topology::new(
            &settings.rabbitmq.namespace,
            settings.rabbitmq.delivery_limit,
        );
        let publisher = Arc::new(Publisher::new(
            broker.clone(),
            topology.clone(),
            settings.rabbitmq.publish_timeout(),
        ));
        let plaid = PlaidClient::new(
            plaid_base_url.clone(),
            settings.plaid.client_id.clone(),
            settings.plaid.secret.clone(),
            settings.plaid.timeout(),
            Some(db.clone()),
        )?;

        let tokens = TokenCipher::new(&settings.tokens.active_key_id, &settings.tokens.keys)?;

        let state = AppState {
            settings: Arc::new(settings),
            role,
            db,
            broker,
            topology,
            publisher,
            plaid,
            tokens,
            metrics: crate::telemetry::metrics_handle(),
            plaid_base_url,
            webhook_url,
        };
        Ok(Self {
            state,
            public,
            internal,
            sim,
            shutdown,
        })
    }

    /// Address of the public listener (webhooks), when this role has one.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.public.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Address of the internal listener (management API, probes, metrics).
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The built-in simulator, when `plaid.environment = "simulator"`.
    pub fn sim(&self) -> Option<Sim> {
        self.sim.as_ref().map(|handle| handle.sim().clone())
    }

    /// Cancelling this token stops the application gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then drains and returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            state,
            public,
            internal,
            sim,
            shutdown,
        } = self;
        let tasks = TaskTracker::new();

        if let Some(listener) = public {
            let spool = Arc::new(Spool::new(state.db.clone()));
            tasks.spawn(
                spool
                    .clone()
                    .run_relay(state.publisher.clone(), shutdown.clone()),
            );
            let router = layers::with_request_layers(public_router(&state, spool));
            tasks.spawn(serve(listener, router, shutdown.clone(), "public"));
        }
        if state.role.consumes() {
            let outbox = crate::outbox::OutboxRelay::new(state.db.clone(), state.publisher.clone());
            tasks.spawn(outbox.run(shutdown.clone()));
            crate::worker::spawn_consumers(&state, &tasks, &shutdown);
            // Alert delivery and the safety net run beside the consumers, in worker processes.
            let notifier = crate::alerts::notifier::Notifier::new(
                state.db.clone(),
                state.settings.alerts.clone(),
            )?;
            tasks.spawn(notifier.run(shutdown.clone()));
            tasks.spawn(crate::scheduler::run(state.clone(), shutdown.clone()));
        }
        tasks.spawn(crate::gauges::run(state.clone(), shutdown.clone()));
        let router = layers::with_request_layers(internal_router(state.clone()));
        tasks.spawn(serve(internal, router, shutdown.clone(), "internal"));

        tasks.close();
        shutdown.cancelled().await;
        tracing::info!("shutting down: draining in-flight work");
        tasks.wait().await;
        if let Some(sim) = sim {
            sim.shutdown().await;
        }
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

fn public_router(state: &AppState, spool: Arc<Spool>) -> Router {
    let settings = &state.settings;
    let ingress = Arc::new(Ingress {
        verifier: Verifier::new(
            Arc::new(KeyCache::new(state.plaid.clone())),
            settings.webhook.max_age_secs,
            settings.webhook.future_skew_secs,
        ),
        publisher: state.publisher.clone(),
        spool,
        max_body_bytes: settings.webhook.max_body_bytes,
        environment: settings.plaid.environment.as_str().to_owned(),
    });
    Router::new()
        .route("/webhooks/plaid", post(crate::webhook::ingress::receive))
        // The route enforces its own, configurable limit; axum's default (2 MiB) must not
        // cut in first.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(ingress)
        .route("/healthz", get(health::healthz))
}

fn internal_router(state: AppState) -> Router {
    // The management API belongs to the serving roles; a worker's internal listener serves
    // only probes and metrics.
    let api = state
        .role
        .serves_public()
        .then(|| crate::api::router(state.clone()));
    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(state);
    match api {
        Some(api) => router.merge(api),
        None => router,
    }
}

async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    name: &'static str,
) {
    let addr = listener.local_addr().ok();
    tracing::info!(listener = name, addr = ?addr, "listening");
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(error) = result {
        tracing::error!(listener = name, error = %error, "listener failed");
    }
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received"),
            _ = terminate => tracing::info!("SIGTERM received"),
        }
        token.cancel();
    });
}
