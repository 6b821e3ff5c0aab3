//! Building, running and stopping plaidhook: the composition root.
//!
//! [`Application::build`] is the one way to assemble the service, used by the command line and
//! by every test: it migrates, connects, starts the built-in simulator when configured, and
//! binds its listeners (port 0 allowed, the bound addresses are readable before it runs).
//! [`Application::run_until_stopped`] builds each component's small context from the shared
//! parts (the sync worker's dependencies, the [`Reconciler`], the [`SyncRequester`], the API's
//! state, the probes), serves until the shutdown token is cancelled, then stops accepting, lets
//! in-flight work finish, and returns.
//!
//! Nothing in plaidhook imports this module but the command line: components never see the
//! whole application, only what they were handed.

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

use crate::alerts::notifier::Notifier;
use crate::api::ApiContext;
use crate::broker::{Broker, Publisher, Topology};
use crate::config::{PlaidEnvironment, Settings};
use crate::crypto::TokenCipher;
use crate::gauges::GaugeSampler;
use crate::http::health::{self, Probes};
use crate::http::layers;
use crate::items::consumer::ItemsConsumer;
use crate::items::link_sessions::LinkSessionsConsumer;
use crate::items::Reconciler;
use crate::messages::SyncRequester;
use crate::outbox::OutboxRelay;
use crate::plaid::client::PlaidClient;
use crate::repair::HostedLinks;
use crate::retention::Retention;
use crate::scheduler::Scheduler;
use crate::sim::{AddressInUse, Sim, SimHandle, Simulator};
use crate::store::api_calls::PgCallRecorder;
use crate::sync::worker::SyncWorker;
use crate::webhook::ingress::Sink;
use crate::webhook::keys::KeyCache;
use crate::webhook::source::SourcePolicy;
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

/// The shared parts every component's context is built from. Private to the composition root.
#[derive(Clone)]
struct Parts {
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
    state: Parts,
    public: Option<TcpListener>,
    internal: TcpListener,
    sim: Option<SimHandle>,
    shutdown: CancellationToken,
    /// Ends the broker connection's background task; cancelled only after every task that
    /// acks or publishes has finished (see `run_until_stopped`).
    broker_stop: CancellationToken,
    ingress_sink: IngressSink,
}

/// Which [`Sink`] the webhook route gets. Not a setting: only
/// [`Application::drop_webhooks_for_benchmark`] picks the other one.
#[derive(Debug, Clone, Copy)]
enum IngressSink {
    Durable,
    DropForBenchmark,
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
            Some(TcpListener::bind(addr).await.with_context(|| {
                format!(
                    "could not bind the public listener on {addr} (another plaidhook \
                             on this machine? give this process its own port: \
                             PLAIDHOOK__PUBLIC__PORT)"
                )
            })?)
        } else {
            None
        };
        let internal_addr = settings.internal.addr()?;
        let internal = TcpListener::bind(internal_addr).await.with_context(|| {
            format!(
                "could not bind the internal listener on {internal_addr} (another plaidhook \
                     on this machine? give this process its own port: PLAIDHOOK__INTERNAL__PORT)"
            )
        })?;

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
            None if !settings.sim.embedded => {
                // One simulator per machine: this process uses the one a `plaidhook all` or
                // `plaidhook sim` runs, so every process sees the same Plaid.
                let url = settings.sim.running_base_url()?;
                tracing::info!(plaid.base_url = %url, "using the Plaid simulator running there (sim.embedded = false)");
                (None, url)
            }
            None => {
                debug_assert_eq!(settings.plaid.environment, PlaidEnvironment::Simulator);
                let started = Simulator::start_with(
                    settings.sim.behaviour.clone(),
                    settings.sim.addr()?,
                    settings.sim.persistence(),
                )
                .await;
                let handle = match started {
                    Ok(handle) => handle,
                    Err(e) => match e.downcast_ref::<AddressInUse>() {
                        Some(in_use) => anyhow::bail!(
                            "could not start the built-in Plaid simulator: {in_use}; to use that \
                             simulator from this process set PLAIDHOOK__SIM__EMBEDDED=false \
                             (sim.embedded = false)"
                        ),
                        None => {
                            return Err(e.context("could not start the built-in Plaid simulator"))
                        }
                    },
                };
                let url = handle.base_url();
                tracing::info!(plaid.base_url = %url, "built-in Plaid simulator started");
                (Some(handle), url)
            }
        };

        // Not a child of `shutdown`: the connection outlives the consumers, whose in-flight
        // messages still settle (acks, retry copies) while the process stops.
        let broker_stop = CancellationToken::new();
        let broker = Broker::start(settings.rabbitmq.nodes(), "plaidhook", broker_stop.clone());

        let topology = Topology::from_settings(&settings.rabbitmq);
        let publisher = Arc::new(Publisher::new(
            broker.clone(),
            topology.clone(),
            settings.rabbitmq.publish_timeout,
        ));
        let plaid = PlaidClient::new(
            plaid_base_url.clone(),
            settings.plaid.client_id.clone(),
            settings.plaid.secret.clone(),
            settings.plaid.timeout,
            Some(Arc::new(PgCallRecorder::new(crate::store::call_log_pool(
                &settings.database,
            )?))),
        )?;

        let tokens = TokenCipher::new(&settings.tokens.active_key_id, &settings.tokens.keys)?;

        let state = Parts {
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
            broker_stop,
            ingress_sink: IngressSink::Durable,
        })
    }

    /// Benchmarks only: the webhook route answers 200 right after verification and publishes
    /// nothing, so a webhook it accepts is lost. `plaidhook bench-ingress-floor` is the only
    /// caller; it measures the floor the durable path is compared with.
    pub fn drop_webhooks_for_benchmark(mut self) -> Self {
        tracing::warn!(
            "benchmark mode: verified webhooks are answered and dropped, never published"
        );
        self.ingress_sink = IngressSink::DropForBenchmark;
        self
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

    /// The database pool the application uses.
    pub fn db(&self) -> &PgPool {
        &self.state.db
    }

    /// The broker connection the application uses.
    pub fn broker(&self) -> &Broker {
        &self.state.broker
    }

    /// The confirmed publisher every component shares.
    pub fn publisher(&self) -> &Arc<Publisher> {
        &self.state.publisher
    }

    /// The broker names of this application (its `rabbitmq.namespace`).
    pub fn topology(&self) -> &Topology {
        &self.state.topology
    }

    /// The Plaid base URL in use (the built-in simulator's address when it runs in-process).
    pub fn plaid_base_url(&self) -> &str {
        &self.state.plaid_base_url
    }

    /// The safety net as worker processes run it, for driving one round at a time (tests,
    /// operators' tooling) whatever `scheduler.enabled` says.
    pub fn scheduler(&self) -> Scheduler {
        self.state.scheduler()
    }

    /// The repair-link and reminder task of this application, for tests that run rounds.
    pub fn hosted_links(&self) -> HostedLinks {
        self.state.hosted_links()
    }

    /// The retention task of this application, for tests that run rounds themselves.
    pub fn retention(&self) -> Retention {
        self.state.retention()
    }

    /// The gauge sampler as every process runs it, for taking one sample on demand.
    pub fn gauges(&self) -> GaugeSampler {
        self.state.gauges()
    }

    /// Publishes sync requests as the application's components do.
    pub fn sync_requester(&self) -> SyncRequester {
        self.state.sync_requester()
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
            broker_stop,
            ingress_sink,
        } = self;
        let tasks = TaskTracker::new();

        if let Some(listener) = public {
            let spool = Arc::new(Spool::new(state.db.clone()));
            tasks.spawn(
                spool
                    .clone()
                    .run_relay(state.publisher.clone(), shutdown.clone()),
            );
            let router = layers::with_request_layers(public_router(&state, spool, ingress_sink));
            tasks.spawn(serve(listener, router, shutdown.clone(), "public"));
        }
        if state.role.consumes() {
            spawn_workers(&state, &tasks, &shutdown)?;
        }
        tasks.spawn(state.gauges().run(shutdown.clone()));
        let router = layers::with_request_layers(internal_router(&state));
        tasks.spawn(serve(internal, router, shutdown.clone(), "internal"));

        tasks.close();
        shutdown.cancelled().await;
        tracing::info!("shutting down: draining in-flight work");
        tasks.wait().await;
        // Every ack and publish is done: now the connection may go.
        state.broker.close().await;
        broker_stop.cancel();
        if let Some(sim) = sim {
            sim.shutdown().await;
        }
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

impl Parts {
    fn sync_requester(&self) -> SyncRequester {
        SyncRequester::new(
            self.publisher.clone(),
            self.settings.plaid.environment.as_str(),
        )
    }

    fn gauges(&self) -> GaugeSampler {
        GaugeSampler {
            db: self.db.clone(),
            broker: self.broker.clone(),
            publisher: self.publisher.clone(),
        }
    }

    fn scheduler(&self) -> Scheduler {
        Scheduler {
            id: uuid::Uuid::new_v4(),
            db: self.db.clone(),
            reconciler: self.reconciler(),
            sync_requests: self.sync_requester(),
            settings: self.settings.scheduler.clone(),
        }
    }

    fn hosted_links(&self) -> HostedLinks {
        HostedLinks {
            id: uuid::Uuid::new_v4(),
            reconciler: self.reconciler(),
            link: self.settings.link.clone(),
            alerts: self.settings.alerts.clone(),
            webhook_url: self.webhook_url.clone(),
        }
    }

    fn retention(&self) -> Retention {
        Retention {
            id: uuid::Uuid::new_v4(),
            db: self.db.clone(),
            settings: self.settings.retention.clone(),
        }
    }

    fn reconciler(&self) -> Reconciler {
        Reconciler {
            db: self.db.clone(),
            plaid: self.plaid.clone(),
            tokens: self.tokens.clone(),
        }
    }
}

/// The consumers, the outbox relay, alert delivery and the safety net of a worker process.
fn spawn_workers(
    state: &Parts,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let settings = &state.settings;
    let outbox = OutboxRelay::new(state.db.clone(), state.publisher.clone());
    tasks.spawn(outbox.clone().run(shutdown.clone()));

    let sync = SyncWorker::new(
        state.db.clone(),
        state.plaid.clone(),
        state.tokens.clone(),
        settings.sync.clone(),
        &settings.plaid.client_id,
        settings.plaid.timeout,
        shutdown.clone(),
    )
    .with_outbox(outbox.clone());
    crate::sync::worker::spawn(
        sync,
        state.broker.clone(),
        state.publisher.clone(),
        settings.rabbitmq.prefetch,
        tasks,
    );
    let items = ItemsConsumer {
        reconciler: state.reconciler(),
        sync_requests: state.sync_requester(),
    };
    tasks.spawn(items.run(
        state.broker.clone(),
        state.publisher.clone(),
        settings.rabbitmq.prefetch,
        shutdown.clone(),
    ));

    let link_sessions = LinkSessionsConsumer {
        reconciler: state.reconciler(),
        sync_requests: state.sync_requester(),
    };
    tasks.spawn(link_sessions.run(
        state.broker.clone(),
        state.publisher.clone(),
        settings.rabbitmq.prefetch,
        shutdown.clone(),
    ));

    // Alert delivery, repair links and the safety net run beside the consumers, in worker
    // processes.
    tasks.spawn(state.hosted_links().run(shutdown.clone()));
    let notifier = Notifier::new(state.db.clone(), settings.alerts.clone())?;
    tasks.spawn(notifier.run(shutdown.clone()));
    tasks.spawn(state.scheduler().run(shutdown.clone()));
    tasks.spawn(state.retention().run(shutdown.clone()));
    Ok(())
}

fn public_router(state: &Parts, spool: Arc<Spool>, sink: IngressSink) -> Router {
    let settings = &state.settings;
    let ingress = Arc::new(Ingress {
        verifier: Verifier::new(
            Arc::new(KeyCache::new(state.plaid.clone(), Some(state.db.clone()))),
            settings.webhook.max_age,
            settings.webhook.future_skew,
        ),
        sink: match sink {
            IngressSink::Durable => Sink::Durable {
                publisher: state.publisher.clone(),
                spool,
            },
            IngressSink::DropForBenchmark => Sink::DropForBenchmark,
        },
        max_body_bytes: settings.webhook.max_body_bytes,
        environment: settings.plaid.environment.as_str().to_owned(),
        sources: SourcePolicy::new(
            settings.webhook.allowed_sources.clone(),
            settings.webhook.trusted_proxies.clone(),
        ),
    });
    Router::new()
        .route("/webhooks/plaid", post(crate::webhook::ingress::receive))
        // The route enforces its own, configurable limit; axum's default (2 MiB) must not
        // cut in first.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(ingress)
        .route("/healthz", get(health::healthz))
}

fn internal_router(state: &Parts) -> Router {
    let settings = &state.settings;
    // The management API belongs to the serving roles; a worker's internal listener serves
    // only probes and metrics.
    let api = state.role.serves_public().then(|| {
        crate::api::router(Arc::new(ApiContext {
            db: state.db.clone(),
            plaid: state.plaid.clone(),
            tokens: state.tokens.clone(),
            reconciler: state.reconciler(),
            sync_requests: state.sync_requester(),
            broker: state.broker.clone(),
            publisher: state.publisher.clone(),
            api: settings.api.clone(),
            link: settings.link.clone(),
            balance_timeout: settings.plaid.balance_timeout,
            webhook_url: state.webhook_url.clone(),
            hosted_links: state.hosted_links(),
        }))
    });
    let probes = Arc::new(Probes {
        db: state.db.clone(),
        broker: state.broker.clone(),
        consumes: state.role.consumes(),
        ingests: state.role.serves_public(),
        spool_ready_max: settings.webhook.spool_ready_max,
        metrics: state.metrics.clone(),
        schema_current: Default::default(),
    });
    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(probes);
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
    // The peer address is the webhook's source (see `webhook::source`).
    let router = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
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
