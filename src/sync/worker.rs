//! The sync worker: the consumer of `plaidhook.sync`.
//!
//! Each message (Plaid's SYNC_UPDATES_AVAILABLE, a legacy transactions webhook, or plaidhook's
//! own sync request) is a hint that an Item has changes. The worker marks the Item dirty, takes
//! its lock (or leaves the work to the sync already running, see `lock`), runs syncs while the
//! Item stays dirty, and only then settles the message, so a message is acknowledged after the
//! commit of the sync that covers it. How each failure ends:
//! - an Item error (ITEM_LOGIN_REQUIRED, revoked consent, …): the Item's status moves through
//!   `items::transition`, the run is recorded as `item_error`, the message is acknowledged;
//! - rate limits, Plaid 5xx, timeouts, database trouble: `Retry`, through the delay queues;
//! - what retrying cannot fix (page cap, a request Plaid calls invalid): `Park`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgPool};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::apply::{self, Commit, Committed};
use super::fetch::{Failure, Fetcher, Progress};
use super::limits::SyncRateLimiter;
use super::lock::{self, ItemLock};
use super::runs::{self, RunOutcome, RunRecord};
use crate::broker::consumer::{self, ConsumerSpec, Message, Outcome};
use crate::broker::{Broker, Publisher};
use crate::config::SyncSettings;
use crate::crypto::TokenCipher;
use crate::items::rows;
use crate::items::{ItemStatus, StatusSource, Transition};
use crate::messages::{SyncQueueMessage, SyncTrigger};
use crate::outbox::OutboxRelay;
use crate::plaid::client::PlaidClient;
use crate::plaid::WebhookCode;
use crate::telemetry::names;

/// Recorded as the trigger of the extra runs a dirty Item gets.
const COALESCED: &str = "coalesced";

/// Why a sync message goes back through the delay queues.
#[derive(Debug, thiserror::Error)]
enum SyncRetry {
    #[error("looking up the Item: {0}")]
    Lookup(#[source] sqlx::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Starts the consumer of `plaidhook.sync` on `tasks`.
pub fn spawn(
    worker: SyncWorker,
    broker: Broker,
    publisher: Arc<Publisher>,
    prefetch: u16,
    tasks: &TaskTracker,
) {
    let shutdown = worker.shutdown.clone();
    let queue = publisher.topology().sync_queue();
    let spec = ConsumerSpec::new("sync", publisher.topology(), queue, prefetch);
    let worker = Arc::new(worker);
    tasks.spawn(consumer::run(
        broker,
        publisher,
        spec,
        move |message| {
            let worker = worker.clone();
            async move { worker.handle(message).await }
        },
        shutdown,
    ));
}

/// Everything a sync needs; shared by the consumer's in-flight messages.
pub struct SyncWorker {
    db: PgPool,
    plaid: PlaidClient,
    tokens: TokenCipher,
    settings: SyncSettings,
    limiter: SyncRateLimiter,
    /// Bounds concurrent syncs: each holds a database connection for its whole run.
    slots: Semaphore,
    /// This process's outbox relay, woken when a sync commits its events.
    outbox: Option<Arc<OutboxRelay>>,
    shutdown: CancellationToken,
}

/// How one run ended, for the loop around it.
enum RunEnd {
    /// The Item was not dirty: no run was due.
    NotDue,
    Succeeded,
    Stop(Outcome),
}

/// What a message of the sync queue asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    /// Sync, for this reason.
    Sync(SyncTrigger),
    /// A legacy transactions webhook (DEFAULT_UPDATE, INITIAL_UPDATE, HISTORICAL_UPDATE,
    /// TRANSACTIONS_REMOVED). Plaid sends SYNC_UPDATES_AVAILABLE beside it to an Item that
    /// syncs with a cursor, so it only matters to an Item that never synced.
    Legacy,
}

/// The hint a message carries, if any, and the Item's Plaid id.
fn hint_of(message: &SyncQueueMessage) -> Option<(Hint, Option<&str>)> {
    match message {
        SyncQueueMessage::Request(request) => Some((
            Hint::Sync(request.trigger),
            Some(request.plaid_item_id.as_str()),
        )),
        SyncQueueMessage::Webhook(envelope) => {
            let hint = match envelope.webhook_code {
                WebhookCode::SyncUpdatesAvailable => Hint::Sync(SyncTrigger::Webhook),
                WebhookCode::DefaultUpdate
                | WebhookCode::InitialUpdate
                | WebhookCode::HistoricalUpdate
                | WebhookCode::TransactionsRemoved => Hint::Legacy,
                _ => return None,
            };
            Some((hint, envelope.item_id.as_deref()))
        }
    }
}

impl SyncWorker {
    /// A worker over these dependencies; `client_id` names the Plaid client whose rate limit
    /// all replicas share, `call_timeout` is the Plaid client's timeout.
    pub fn new(
        db: PgPool,
        plaid: PlaidClient,
        tokens: TokenCipher,
        settings: SyncSettings,
        client_id: &str,
        call_timeout: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            limiter: SyncRateLimiter::new(&settings, client_id, call_timeout),
            slots: Semaphore::new(settings.concurrency as usize),
            outbox: None,
            db,
            plaid,
            tokens,
            settings,
            shutdown,
        }
    }

    /// Wakes `outbox` after each commit, so a sync's events leave at once rather than at the
    /// relay's next poll.
    pub fn with_outbox(mut self, outbox: Arc<OutboxRelay>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// Handles one message of `plaidhook.sync`.
    pub async fn handle(&self, message: Message) -> Outcome {
        let decoded = match SyncQueueMessage::decode(message.kind.as_deref(), &message.body) {
            Ok(decoded) => decoded,
            Err(error) => {
                return Outcome::Park {
                    reason: format!("not a sync request nor a webhook envelope: {error}"),
                }
            }
        };
        let Some((asked, plaid_item_id)) = hint_of(&decoded) else {
            tracing::debug!("not a sync hint; ignored");
            return Outcome::Ack;
        };
        let Some(plaid_item_id) = plaid_item_id.filter(|id| !id.is_empty()) else {
            return Outcome::Park {
                reason: "a sync hint without an item_id".into(),
            };
        };
        let received_at = match &decoded {
            SyncQueueMessage::Webhook(envelope) => Some(envelope.received_at),
            SyncQueueMessage::Request(_) => None,
        };
        let mark = lock::Mark {
            webhook_received_at: received_at,
            only_without_cursor: asked == Hint::Legacy,
        };
        let marked = match lock::mark_dirty(&self.db, plaid_item_id, mark).await {
            Ok(Some(marked)) => marked,
            Ok(None) => {
                // Plaid may notify about an Item before the exchange committed, or after it
                // was removed here; either way there is nothing of ours to sync.
                tracing::warn!(plaid.item_id = %plaid_item_id, "sync hint for an unknown Item; ignored");
                return Outcome::Ack;
            }
            Err(error) => return Outcome::retry(SyncRetry::Lookup(error)),
        };
        if !marked.marked {
            if marked.status != ItemStatus::Removed {
                // A legacy webhook for an Item that syncs with a cursor: its
                // SYNC_UPDATES_AVAILABLE twin asks for the same sync, one Plaid call, not two.
                if let SyncQueueMessage::Webhook(envelope) = &decoded {
                    metrics::counter!(names::SYNC_LEGACY_WEBHOOKS_IGNORED, "webhook_code" => envelope.webhook_code.as_str().to_owned())
                        .increment(1);
                }
            }
            return Outcome::Ack;
        }
        if marked.held {
            metrics::counter!(names::SYNC_COALESCED).increment(1);
            return Outcome::Ack;
        }
        let trigger = match asked {
            Hint::Sync(trigger) => trigger,
            // An Item that never synced: the legacy webhook is the only hint it gets.
            Hint::Legacy => SyncTrigger::Webhook,
        };
        let item_id = marked.item_id;
        match self.sync_item(item_id, trigger.as_str()).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(item.id = %item_id, error = %error, "sync failed on the database");
                Outcome::retry(SyncRetry::Database(error))
            }
        }
    }

    /// Runs the Item's syncs, or leaves them to the sync already running: the Item is marked
    /// dirty and its lock was free a moment ago (see `lock`).
    #[tracing::instrument(skip_all, fields(item.id = %item_id, sync.trigger = trigger))]
    async fn sync_item(&self, item_id: Uuid, trigger: &str) -> Result<Outcome, sqlx::Error> {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let mut trigger = trigger;
        loop {
            let Some(mut lock) = ItemLock::try_acquire(&self.db, item_id).await? else {
                metrics::counter!(names::SYNC_COALESCED).increment(1);
                return Ok(Outcome::Ack);
            };
            let ended = self.run_while_dirty(&mut lock, item_id, trigger).await;
            lock.release().await;
            if let Some(outcome) = ended? {
                return Ok(outcome);
            }
            // A request that marked the Item after our last look, while we still held the
            // lock, left the work to us.
            if !lock::is_dirty(&self.db, item_id).await? {
                return Ok(Outcome::Ack);
            }
            trigger = COALESCED;
        }
    }

    /// Runs while the Item is dirty. `Some` ends the message with that outcome.
    async fn run_while_dirty(
        &self,
        lock: &mut ItemLock,
        item_id: Uuid,
        trigger: &str,
    ) -> Result<Option<Outcome>, sqlx::Error> {
        let mut trigger = trigger;
        loop {
            if self.shutdown.is_cancelled() {
                // The mark stays set; the message goes back to the queue for another worker,
                // which finds the lock free once this one has released it.
                return Ok(Some(Outcome::Requeue {
                    reason: "shutting down",
                }));
            }
            match self.run_once(lock, item_id, trigger).await? {
                RunEnd::NotDue => return Ok(None),
                RunEnd::Succeeded => trigger = COALESCED,
                RunEnd::Stop(outcome) => return Ok(Some(outcome)),
            }
        }
    }

    /// One sync run, if the Item is dirty: fetch, then commit or record the failure.
    async fn run_once(
        &self,
        lock: &mut ItemLock,
        item_id: Uuid,
        trigger: &str,
    ) -> Result<RunEnd, sqlx::Error> {
        let started = Instant::now();
        // On the lock's connection: a sync never waits for a second connection while it holds one.
        let Some(begun) = runs::begin(lock.conn(), item_id, trigger).await? else {
            return Ok(RunEnd::NotDue);
        };
        let (run_id, stored_cursor) = (begun.run_id, begun.stored_cursor);
        let mut progress = Progress::default();
        let credentials =
            match rows::open_credentials(&self.tokens, begun.plaid_item_id, &begun.sealed_token) {
                Ok(credentials) => credentials,
                Err(error) => {
                    let failure = Failure::Permanent {
                        code: Some("ACCESS_TOKEN_UNREADABLE".into()),
                        message: error.to_string(),
                    };
                    return self
                        .record_failure(lock, item_id, run_id, &progress, failure, started)
                        .await;
                }
            };
        let (plaid_item_id, token) = (credentials.plaid_item_id, credentials.access_token);
        let fetcher = Fetcher {
            plaid: &self.plaid,
            limiter: &self.limiter,
            settings: &self.settings,
            shutdown: &self.shutdown,
        };
        let fetched = fetcher
            .fetch(
                lock.conn(),
                item_id,
                run_id,
                &token,
                stored_cursor.clone(),
                &mut progress,
            )
            .await;
        // The last call has returned: its rate-limit grant ends a window from now.
        self.limiter.complete(lock.conn(), item_id).await;
        let fetched = match fetched {
            Ok(fetched) => fetched,
            Err(failure) => {
                return self
                    .record_failure(lock, item_id, run_id, &progress, failure, started)
                    .await
            }
        };
        let commit = Commit {
            item_id,
            plaid_item_id: &plaid_item_id,
            run_id,
            trigger,
            stored_cursor: stored_cursor.as_deref(),
            progress: &progress,
            fetch: started.elapsed(),
        };
        match apply::commit(lock.conn(), &self.settings, commit, fetched).await {
            Ok(Committed::Applied {
                added,
                modified,
                removed,
            }) => {
                if let Some(outbox) = &self.outbox {
                    outbox.wake();
                }
                runs::observe(RunOutcome::Succeeded, started.elapsed());
                tracing::info!(
                    pages = progress.pages,
                    added,
                    modified,
                    removed,
                    restarts = progress.restarts,
                    cursor_reset = progress.cursor_reset,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "sync committed"
                );
                Ok(RunEnd::Succeeded)
            }
            Ok(Committed::Superseded) => {
                let failure = Failure::Transient {
                    code: Some("SUPERSEDED".into()),
                    message: "the Item's cursor moved during the sync; syncing again".into(),
                };
                self.record_failure(lock, item_id, run_id, &progress, failure, started)
                    .await
            }
            Err(error) => {
                // Best effort: the run row says why, otherwise the next run closes it as lost.
                let message = error.to_string();
                let failure = Failure::Transient {
                    code: Some("DATABASE".into()),
                    message,
                };
                let _ = self
                    .record_failure(lock, item_id, run_id, &progress, failure, started)
                    .await;
                Err(error)
            }
        }
    }

    /// Records a failed run and decides what becomes of the message.
    async fn record_failure(
        &self,
        lock: &mut ItemLock,
        item_id: Uuid,
        run_id: Uuid,
        progress: &Progress,
        failure: Failure,
        started: Instant,
    ) -> Result<RunEnd, sqlx::Error> {
        let (outcome, end) = match &failure {
            Failure::Item(_) => (RunOutcome::ItemError, Outcome::Ack),
            // Stopped by the shutdown (rate-limiter wait, a call cut short): not a failure of
            // the Item; another worker takes the message now.
            Failure::Transient { .. } if self.shutdown.is_cancelled() => (
                RunOutcome::Retrying,
                Outcome::Requeue {
                    reason: "shutting down",
                },
            ),
            Failure::Transient { .. } => (RunOutcome::Retrying, Outcome::retry(failure.message())),
            Failure::Permanent { .. } => (
                RunOutcome::Failed,
                Outcome::Park {
                    reason: failure.message(),
                },
            ),
        };
        let message = failure.message();
        let record = RunRecord {
            outcome,
            progress,
            added: 0,
            modified: 0,
            removed: 0,
            error_code: failure.code(),
            error_message: Some(&message),
            fetch: started.elapsed(),
        };
        // Best effort: rows a failed clean-up leaves are swept by the next run or retention.
        if let Err(error) = super::staging::discard(lock.conn(), run_id).await {
            tracing::warn!(error = %error, "could not delete the run's staged rows");
        }
        let mut tx = lock.conn().begin().await?;
        if let Failure::Item(error) = &failure {
            let to = crate::items::status_for_error(&error.error_code);
            crate::items::transition(
                &mut tx,
                item_id,
                Transition {
                    to,
                    cause: "item_error",
                    error_code: Some(error.error_code.as_str()),
                    error_message: Some(&error.error_message),
                    source: StatusSource::Sync,
                },
            )
            .await?;
        }
        runs::finish(&mut tx, run_id, record).await?;
        tx.commit().await?;
        runs::observe(outcome, started.elapsed());
        tracing::warn!(outcome = outcome.as_str(), error.code = failure.code().unwrap_or("-"), reason = %message, "sync did not complete");
        Ok(RunEnd::Stop(end))
    }
}
