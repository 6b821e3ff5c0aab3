//! The simulator's whole world in one struct behind one mutex: settings, Items, tokens, keys,
//! rate-limit windows, injected faults, and the webhooks waiting to be handed to the
//! dispatcher. Every operation is synchronous and short; nothing awaits while holding it.
//!
//! Identifiers (Item ids, access, public and Link tokens, key ids) come from the OS RNG, never
//! from the seed: a simulator that starts over must not hand out an id an earlier run gave
//! plaidhook. The seed decides what happens at the banks. The records derive serde for the
//! state file (`persist`); what is only about this run (caches, queued webhooks) is skipped.

use super::bodies::{self, Context, OutgoingWebhook};
use super::config::SimConfig;
use super::data::{ChangeCounts, ItemData};
use super::errors;
use super::ids::{plaid_id, token};
use super::keys::KeyRing;
use super::limits::RateLimiter;
use super::sync::Update;
use crate::plaid::{PlaidError, Product, TransactionsUpdateStatus, WebhookCode};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::OsRng;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Plaid's first fetch of a new Item's transactions: nothing, then the most recent 30 days
/// (the initial update), then everything (the historical update). `/transactions/sync`
/// reports it as `transactions_update_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    NotReady,
    InitialUpdateComplete,
    HistoricalUpdateComplete,
}

impl Phase {
    fn deserialize_or_ready<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Phase, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum PhaseOrReady {
            Phase(Phase),
            Ready(bool),
        }
        Ok(match PhaseOrReady::deserialize(d)? {
            PhaseOrReady::Phase(phase) => phase,
            PhaseOrReady::Ready(true) => Phase::HistoricalUpdateComplete,
            PhaseOrReady::Ready(false) => Phase::NotReady,
        })
    }

    pub fn status(self) -> TransactionsUpdateStatus {
        match self {
            Phase::NotReady => TransactionsUpdateStatus::NotReady,
            Phase::InitialUpdateComplete => TransactionsUpdateStatus::InitialUpdateComplete,
            Phase::HistoricalUpdateComplete => TransactionsUpdateStatus::HistoricalUpdateComplete,
        }
    }
}

/// A lifecycle step due later: the Item reaches `phase` at `due`.
#[derive(Debug, Clone)]
pub struct Timer {
    pub due: std::time::Instant,
    pub item_id: String,
    pub phase: Phase,
}

/// One linked Item.
#[derive(Debug, Serialize, Deserialize)]
pub struct ItemRecord {
    pub item_id: String,
    pub access_token: String,
    pub institution_id: String,
    pub institution_name: String,
    pub webhook: Option<String>,
    pub products: Vec<Product>,
    pub created_at: DateTime<Utc>,
    pub error: Option<PlaidError>,
    pub removed: bool,
    pub consent_expiration_time: Option<DateTime<Utc>>,
    /// How far Plaid's first fetch of the Item's transactions has got. (State files written
    /// before there were phases hold `ready: bool`.)
    #[serde(alias = "ready", deserialize_with = "Phase::deserialize_or_ready")]
    pub phase: Phase,
    /// Whether `/transactions/sync` has been called: SYNC_UPDATES_AVAILABLE fires only then.
    pub sync_called: bool,
    pub last_webhook: Option<(DateTime<Utc>, String)>,
    pub last_successful_update: DateTime<Utc>,
    /// When an update of the Item's transactions last failed (it went into an ITEM_ERROR):
    /// `/item/get`'s `status.transactions.last_failed_update`.
    #[serde(default)]
    pub last_failed_update: Option<DateTime<Utc>>,
    #[serde(
        serialize_with = "ItemData::serialize_as_recipe",
        deserialize_with = "ItemData::deserialize_from_recipe"
    )]
    pub data: ItemData,
    #[serde(skip)]
    pub update_cache: Option<Arc<Update>>,
    /// Armed by the control API: the next mid-pagination sync call changes the data first.
    pub mutate_during_pagination: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PublicTokenRecord {
    pub item_id: String,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkTokenRecord {
    pub expires_at: DateTime<Utc>,
    pub webhook: Option<String>,
    pub products: Vec<Product>,
    pub days_requested: u32,
    /// Update mode: the Item being repaired.
    pub update_item: Option<String>,
    // What `/link/token/get` reports back (state files from before it have none of these).
    #[serde(default = "Utc::now")]
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub client_name: String,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub country_codes: Vec<String>,
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// The institution Link opens at (`institution_id` of the request).
    #[serde(default)]
    pub institution_id: Option<String>,
    /// Present when the token was created with `hosted_link`.
    #[serde(default)]
    pub hosted_link: Option<HostedLinkRecord>,
    /// Link sessions run with this token (Hosted Link), oldest first.
    #[serde(default)]
    pub sessions: Vec<LinkSessionRecord>,
}

/// Plaid keeps a token's session data "for up to six hours after the session has ended"; the
/// simulator keeps a link token (and its sessions, for `/link/token/get`) six hours past its
/// expiry, in memory and in the state file.
pub const LINK_TOKEN_KEPT_AFTER_EXPIRY: Duration = Duration::hours(6);

/// A Hosted Link URL: `{base_url}/hl/{url_id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostedLinkRecord {
    pub url_id: String,
    pub completion_redirect_uri: Option<String>,
}

/// One Link session of a Hosted Link URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkSessionRecord {
    pub link_session_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub events: Vec<crate::plaid::LinkEvent>,
    /// The last error the user met (a wrong password), reported in `exit.error` on exit.
    pub last_error: Option<PlaidError>,
    pub outcome: Option<SessionOutcome>,
}

/// How a finished session ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SessionOutcome {
    /// A new Item, with the public token Link handed over for it.
    ItemAdded {
        item_id: String,
        public_token: String,
    },
    /// Update mode: the Item's login was repaired.
    Updated { item_id: String },
    /// The user left without finishing.
    Exited,
}

/// An error the control API queued for upcoming requests.
#[derive(Debug, Clone)]
pub struct InjectedFault {
    pub endpoint: Option<String>,
    pub item_id: Option<String>,
    pub error: PlaidError,
    pub remaining: u32,
}

impl ItemRecord {
    /// The log position `/transactions/sync` serves up to: nothing before the initial update,
    /// its prefix of the log until the historical update, everything after.
    pub fn visible_version(&self) -> u64 {
        match self.phase {
            Phase::NotReady => 0,
            Phase::InitialUpdateComplete => self.data.initial_len.min(self.data.version()),
            Phase::HistoricalUpdateComplete => self.data.version(),
        }
    }
}

/// What a new Item looks like.
#[derive(Debug, Clone, Default)]
pub struct NewItem {
    pub institution_id: Option<String>,
    pub webhook: Option<String>,
    pub products: Vec<Product>,
    pub days_requested: Option<u32>,
    pub transactions: Option<usize>,
    /// The last day of the history (`/sandbox/public_token/create`'s
    /// `options.transactions.end_date`); today when absent.
    pub history_ends: Option<chrono::NaiveDate>,
}

#[derive(Debug)]
pub struct SimState {
    pub config: SimConfig,
    pub items: HashMap<String, ItemRecord>,
    /// Item ids in creation order.
    pub order: Vec<String>,
    pub by_token: HashMap<String, String>,
    pub public_tokens: HashMap<String, PublicTokenRecord>,
    pub link_tokens: HashMap<String, LinkTokenRecord>,
    pub rng: StdRng,
    pub keys: KeyRing,
    pub limiter: RateLimiter,
    /// What each webhook receiver did with what it was sent (Plaid's no-retry rule).
    pub receivers: super::webhooks::ReceiverLog,
    pub faults: Vec<InjectedFault>,
    pub outbox: Vec<OutgoingWebhook>,
    /// Lifecycle steps to schedule, handed to the lifecycle task after each operation.
    pub timers: Vec<Timer>,
    /// Where this simulator is reached (`http://host:port`), for the Hosted Link URLs it hands out.
    pub base_url: String,
}

impl SimState {
    pub fn new(config: SimConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        let keys = KeyRing::new(&mut OsRng, Utc::now().timestamp());
        Self {
            config,
            items: HashMap::new(),
            order: Vec::new(),
            by_token: HashMap::new(),
            public_tokens: HashMap::new(),
            link_tokens: HashMap::new(),
            rng,
            keys,
            limiter: RateLimiter::default(),
            receivers: Default::default(),
            faults: Vec::new(),
            outbox: Vec::new(),
            timers: Vec::new(),
            base_url: String::new(),
        }
    }

    /// Count a call of `endpoint` on `item_id` against Plaid's limits for it (the configured
    /// profile's, with overrides); past them, Plaid's RATE_LIMIT_EXCEEDED error (HTTP 429).
    pub fn rate_limit(&mut self, endpoint: &str, item_id: &str) -> Result<(), PlaidError> {
        let Some(limit) = self.config.rate_limit(endpoint) else {
            return Ok(());
        };
        let window = std::time::Duration::from_millis(self.config.rate_limit_window_ms);
        self.limiter
            .check(endpoint, item_id, limit.per_item, limit.per_client, window)
            .map_err(|limited| errors::rate_limit(super::limits::error_code(endpoint, limited)))
    }

    fn today(&self) -> NaiveDate {
        self.config.today.unwrap_or_else(|| Utc::now().date_naive())
    }

    /// Create an Item with its deterministic history (the seed and the Item's ordinal decide
    /// it) under new identifiers; returns its id.
    pub fn create_item(&mut self, new: NewItem) -> String {
        let ordinal = self.order.len() as u64;
        let mut item_rng = StdRng::seed_from_u64(
            self.config.seed ^ (ordinal + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let data_seed = rand::Rng::gen(&mut item_rng);
        let item_id = plaid_id(&mut OsRng);
        let access_token = token(&mut OsRng, "access", &self.config.environment);
        let id_seed = rand::Rng::gen(&mut OsRng);
        let days = new
            .days_requested
            .unwrap_or(self.config.default_days_requested)
            .clamp(1, 730);
        let count = new
            .transactions
            .unwrap_or(self.config.transactions_per_item);
        // A history that ends before today is generated as of its last day: its transactions
        // lie in the range asked for, and later ones follow on from there.
        let ends = new
            .history_ends
            .map_or(self.today(), |end| end.min(self.today()));
        let data = ItemData::generate(data_seed, id_seed, count, days, ends);
        let institution_id = new
            .institution_id
            .unwrap_or_else(|| "ins_109508".to_owned());
        // The products the Item was created with, as requested (Plaid adds none: `transactions`
        // is there only if Link or the sandbox request asked for it). An Item made through the
        // control API without any gets `transactions`, what it exists for.
        let products = if new.products.is_empty() {
            vec![Product::Transactions]
        } else {
            new.products
        };
        let instant = self.config.initial_data_ready;
        let now = Utc::now();
        let record = ItemRecord {
            item_id: item_id.clone(),
            access_token: access_token.clone(),
            institution_name: super::catalog::institution_name(&institution_id),
            institution_id,
            webhook: new.webhook.filter(|url| !url.is_empty()),
            products,
            created_at: now,
            error: None,
            removed: false,
            consent_expiration_time: None,
            phase: if instant {
                Phase::HistoricalUpdateComplete
            } else {
                Phase::NotReady
            },
            sync_called: false,
            last_webhook: None,
            last_successful_update: now,
            last_failed_update: None,
            data,
            update_cache: None,
            mutate_during_pagination: false,
        };
        self.by_token.insert(access_token, item_id.clone());
        self.items.insert(item_id.clone(), record);
        self.order.push(item_id.clone());
        if !instant {
            self.schedule(&item_id, Phase::InitialUpdateComplete);
        }
        item_id
    }

    /// Queue the Item's next lifecycle step, `phase`, after its configured delay.
    fn schedule(&mut self, item_id: &str, phase: Phase) {
        let delay = match phase {
            Phase::NotReady => return,
            Phase::InitialUpdateComplete => self.config.initial_update_delay_ms,
            Phase::HistoricalUpdateComplete => self.config.historical_update_delay_ms,
        };
        self.timers.push(Timer {
            due: std::time::Instant::now() + std::time::Duration::from_millis(delay),
            item_id: item_id.to_owned(),
            phase,
        });
    }

    /// After a restart: the steps of Items whose first fetch had not finished, from now.
    pub fn reschedule_unfinished(&mut self) {
        let unfinished: Vec<(String, Phase)> = self
            .order
            .iter()
            .filter_map(|id| self.items.get(id))
            .filter(|item| !item.removed)
            .filter_map(|item| match item.phase {
                Phase::NotReady => Some((item.item_id.clone(), Phase::InitialUpdateComplete)),
                Phase::InitialUpdateComplete => {
                    Some((item.item_id.clone(), Phase::HistoricalUpdateComplete))
                }
                Phase::HistoricalUpdateComplete => None,
            })
            .collect();
        for (item_id, phase) in unfinished {
            self.schedule(&item_id, phase);
        }
    }

    /// The Item reaches `phase` if it is one step before it (a timer that a manual `ready`
    /// overtook does nothing), with Plaid's webhooks: INITIAL_UPDATE or HISTORICAL_UPDATE
    /// (always; "unlike SYNC_UPDATES_AVAILABLE, fired upon Item creation"), then
    /// SYNC_UPDATES_AVAILABLE with the completion flags once `/transactions/sync` was called.
    pub fn reach_phase(&mut self, item_id: &str, phase: Phase) -> bool {
        let Some(item) = self.items.get_mut(item_id) else {
            return false;
        };
        let previous = match phase {
            Phase::NotReady => return false,
            Phase::InitialUpdateComplete => Phase::NotReady,
            Phase::HistoricalUpdateComplete => Phase::InitialUpdateComplete,
        };
        if item.phase != previous || item.removed {
            return false;
        }
        let before = item.visible_version();
        item.phase = phase;
        item.last_successful_update = Utc::now();
        let after = item.visible_version();
        let new_transactions = item.data.txns[..]
            .iter()
            .filter(|t| (before..after).contains(&t.added_at) && t.is_live())
            .count() as u64;
        let sync_called = item.sync_called;
        let (code, name, historical) = match phase {
            Phase::InitialUpdateComplete => (WebhookCode::InitialUpdate, "INITIAL_UPDATE", false),
            _ => (WebhookCode::HistoricalUpdate, "HISTORICAL_UPDATE", true),
        };
        self.emit(
            item_id,
            |ctx| bodies::transactions_update(ctx, code, new_transactions),
            ("TRANSACTIONS", name),
        );
        if sync_called {
            self.emit(
                item_id,
                |ctx| bodies::sync_updates_available(ctx, true, historical),
                ("TRANSACTIONS", "SYNC_UPDATES_AVAILABLE"),
            );
        }
        if phase == Phase::InitialUpdateComplete {
            self.schedule(item_id, Phase::HistoricalUpdateComplete);
        }
        true
    }

    /// A public token for an Item (valid 30 minutes, single use).
    pub fn issue_public_token(&mut self, item_id: &str) -> String {
        let public_token = token(&mut OsRng, "public", &self.config.environment);
        let record = PublicTokenRecord {
            item_id: item_id.to_owned(),
            expires_at: Utc::now() + Duration::minutes(30),
            used: false,
        };
        self.public_tokens.insert(public_token.clone(), record);
        public_token
    }

    /// The Item an access token belongs to, as Plaid resolves it (format, existence, removal).
    pub fn item_by_token(&mut self, access_token: &str) -> Result<&mut ItemRecord, PlaidError> {
        if !access_token.starts_with("access-") {
            return Err(errors::invalid_access_token_format());
        }
        let item_id = self
            .by_token
            .get(access_token)
            .ok_or_else(errors::unknown_access_token)?;
        let item = self
            .items
            .get_mut(item_id)
            .ok_or_else(errors::unknown_access_token)?;
        if item.removed {
            return Err(errors::item_not_found());
        }
        Ok(item)
    }

    /// Like `item_by_token`, and the Item must not be in an error state (data endpoints).
    pub fn healthy_item_by_token(
        &mut self,
        access_token: &str,
    ) -> Result<&mut ItemRecord, PlaidError> {
        let item = self.item_by_token(access_token)?;
        match &item.error {
            Some(error) => Err(error.clone()),
            None => Ok(item),
        }
    }

    /// Queue a webhook for the Item's current URL (dropped when it has none).
    pub fn emit(
        &mut self,
        item_id: &str,
        make: impl FnOnce(&Context) -> Vec<u8>,
        kind: (&str, &str),
    ) -> bool {
        let Some(item) = self.items.get_mut(item_id) else {
            return false;
        };
        let Some(url) = item.webhook.clone() else {
            return false;
        };
        let ctx = Context {
            item_id,
            environment: &self.config.environment,
        };
        let body = make(&ctx);
        item.last_webhook = Some((Utc::now(), kind.1.to_owned()));
        self.outbox.push(OutgoingWebhook {
            url,
            item_id: Some(item_id.to_owned()),
            webhook_type: kind.0.to_owned(),
            webhook_code: kind.1.to_owned(),
            body: Arc::new(body),
        });
        true
    }

    /// Queue a webhook that is about no Item (the LINK webhooks) for `url`.
    pub fn emit_to(&mut self, url: &str, kind: (&str, &str), body: Vec<u8>) {
        self.outbox.push(OutgoingWebhook {
            url: url.to_owned(),
            item_id: None,
            webhook_type: kind.0.to_owned(),
            webhook_code: kind.1.to_owned(),
            body: Arc::new(body),
        });
    }

    /// After the Item's data changed since log position `since`, what Plaid sends once the
    /// Item's history is complete (before, the lifecycle's own webhooks cover it): DEFAULT_UPDATE
    /// with the new transactions, TRANSACTIONS_REMOVED with the removed ones' ids, and
    /// SYNC_UPDATES_AVAILABLE if `/transactions/sync` was called on the Item.
    pub fn data_changed(&mut self, item_id: &str, since: u64) {
        let Some(item) = self.items.get_mut(item_id) else {
            return;
        };
        item.last_successful_update = Utc::now();
        if item.removed || item.phase != Phase::HistoricalUpdateComplete {
            return;
        }
        let data = &item.data;
        let new_transactions = data.txns[..]
            .iter()
            .filter(|t| t.added_at >= since && t.is_live())
            .count() as u64;
        let removed: Vec<String> = data
            .txns
            .iter()
            .filter(|t| t.added_at < since && t.removed_at.is_some_and(|r| r >= since))
            .map(|t| t.transaction_id.to_string())
            .collect();
        let sync_called = item.sync_called;
        if new_transactions > 0 {
            self.emit(
                item_id,
                |ctx| {
                    bodies::transactions_update(ctx, WebhookCode::DefaultUpdate, new_transactions)
                },
                ("TRANSACTIONS", "DEFAULT_UPDATE"),
            );
        }
        if !removed.is_empty() {
            self.emit(
                item_id,
                |ctx| bodies::transactions_removed(ctx, removed),
                ("TRANSACTIONS", "TRANSACTIONS_REMOVED"),
            );
        }
        if sync_called {
            self.emit(
                item_id,
                |ctx| bodies::sync_updates_available(ctx, true, true),
                ("TRANSACTIONS", "SYNC_UPDATES_AVAILABLE"),
            );
        }
    }

    /// Advance the Item's bank by `days` days.
    pub fn advance(&mut self, item_id: &str, days: u32) -> Option<ChangeCounts> {
        let item = self.items.get_mut(item_id)?;
        let since = item.data.version();
        let counts = item.data.advance(days);
        if !counts.is_empty() {
            self.data_changed(item_id, since);
        }
        Some(counts)
    }

    /// One new transaction today on the Item (the smallest change a bank makes), with the
    /// webhooks that follow it; returns the new transaction's id.
    pub fn add_transaction(&mut self, item_id: &str) -> Option<String> {
        let item = self.items.get_mut(item_id)?;
        let since = item.data.version();
        item.data.add_one();
        let added = item.data.txns.last()?.transaction_id.to_string();
        self.data_changed(item_id, since);
        Some(added)
    }

    /// Finish the Item's first fetch now, through the steps it has not reached, each with its
    /// webhooks (what the lifecycle's delays would do later).
    pub fn make_ready(&mut self, item_id: &str) -> bool {
        if !self.items.contains_key(item_id) {
            return false;
        }
        self.reach_phase(item_id, Phase::InitialUpdateComplete);
        self.reach_phase(item_id, Phase::HistoricalUpdateComplete);
        true
    }

    /// Put the Item into ITEM_LOGIN_REQUIRED and send ITEM ERROR.
    pub fn reset_login(&mut self, item_id: &str) -> bool {
        let Some(item) = self.items.get_mut(item_id) else {
            return false;
        };
        let error = errors::item_login_required();
        item.error = Some(error.clone());
        item.last_failed_update = Some(Utc::now());
        self.emit(
            item_id,
            |ctx| bodies::item_error(ctx, &error),
            ("ITEM", "ERROR"),
        );
        true
    }

    /// Set any ITEM_ERROR on the Item and send ITEM ERROR.
    pub fn set_error(&mut self, item_id: &str, error: PlaidError) -> bool {
        let Some(item) = self.items.get_mut(item_id) else {
            return false;
        };
        item.error = Some(error.clone());
        item.last_failed_update = Some(Utc::now());
        self.emit(
            item_id,
            |ctx| bodies::item_error(ctx, &error),
            ("ITEM", "ERROR"),
        );
        true
    }

    /// The user finished update mode in the app: the error clears and no webhook is sent.
    /// Plaid's spec: LOGIN_REPAIRED "fired when an Item recovers from the ITEM_LOGIN_REQUIRED
    /// without the user going through update mode in your app" (the app learns from Link).
    pub fn complete_update_mode(&mut self, item_id: &str) -> bool {
        let Some(item) = self.items.get_mut(item_id) else {
            return false;
        };
        item.error = None;
        true
    }

    /// The Item recovered outside the app (the user logged in at the bank, or through another
    /// app using Plaid): the error clears and LOGIN_REPAIRED is sent.
    pub fn repair_outside_app(&mut self, item_id: &str) -> bool {
        let Some(item) = self.items.get_mut(item_id) else {
            return false;
        };
        if item.error.take().is_some() {
            self.emit(
                item_id,
                |ctx| bodies::item_notice(ctx, WebhookCode::LoginRepaired, None),
                ("ITEM", "LOGIN_REPAIRED"),
            );
        }
        true
    }

    /// The Item's consent expires in 7 days. Plaid announces it by region: PENDING_EXPIRATION
    /// "fired only for Items associated with institutions in Europe (including the UK)";
    /// PENDING_DISCONNECT with `INSTITUTION_TOKEN_EXPIRATION` ("the consent on an Item associated
    /// with a US or CA institution is about to expire") everywhere else. Returns the code sent.
    pub fn consent_expiring(&mut self, item_id: &str) -> Option<&'static str> {
        let item = self.items.get_mut(item_id)?;
        let at = Utc::now() + Duration::days(7);
        item.consent_expiration_time = Some(at);
        match super::catalog::institution_region(&item.institution_id) {
            super::catalog::Region::Europe => {
                self.emit(
                    item_id,
                    |ctx| bodies::pending_expiration(ctx, at),
                    ("ITEM", "PENDING_EXPIRATION"),
                );
                Some("PENDING_EXPIRATION")
            }
            super::catalog::Region::NorthAmerica => {
                self.pending_disconnect(item_id, "INSTITUTION_TOKEN_EXPIRATION");
                Some("PENDING_DISCONNECT")
            }
        }
    }

    /// PENDING_DISCONNECT: the Item stops working in 7 days for `reason`
    /// (`INSTITUTION_MIGRATION` or `INSTITUTION_TOKEN_EXPIRATION`) unless the user goes through
    /// update mode.
    pub fn pending_disconnect(&mut self, item_id: &str, reason: &str) -> bool {
        if !self.items.contains_key(item_id) {
            return false;
        }
        let at = Utc::now() + Duration::days(7);
        self.emit(
            item_id,
            |ctx| bodies::pending_disconnect_for(ctx, reason, at),
            ("ITEM", "PENDING_DISCONNECT"),
        );
        true
    }

    /// Take one queued fault matching this request, if any.
    pub fn take_fault(&mut self, endpoint: &str, item_id: Option<&str>) -> Option<PlaidError> {
        let position = self.faults.iter().position(|fault| {
            fault.endpoint.as_deref().is_none_or(|e| e == endpoint)
                && fault.item_id.as_deref().is_none_or(|i| Some(i) == item_id)
        })?;
        let fault = &mut self.faults[position];
        fault.remaining = fault.remaining.saturating_sub(1);
        let error = fault.error.clone();
        if fault.remaining == 0 {
            self.faults.remove(position);
        }
        Some(error)
    }
}
