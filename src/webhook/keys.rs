//! Plaid's webhook verification keys, cached by `kid`.
//!
//! Plaid's published algorithm: look the `kid` up in the cache; on a miss fetch it from
//! `/webhook_verification_key/get`, and refresh every cached key whose `expired_at` is still
//! null (so a rotation Plaid announced is learned too). plaidhook refreshes only when the miss
//! turns out to be a key Plaid really issued: the sign of a rotation. A miss for a kid Plaid
//! does not know refreshes nothing, so forged kids cannot multiply fetches of real keys. A key with `expired_at` set is never
//! trusted again.
//!
//! Keys are shared by every replica through PostgreSQL (`webhook_keys`): a miss looks there
//! first, which costs no Plaid call and no fetch budget, and every key fetched from Plaid is
//! written there. A new process, or one whose budget forged kids have spent, still verifies
//! with any key another process has learned.
//!
//! Concurrent misses for one kid share a single fetch: each kid has a gate, and whoever waited
//! at it finds the key cached when it gets through. Misses for different kids do not wait for
//! each other. Two protections keep forged traffic from turning into traffic to Plaid: kids
//! Plaid rejected are remembered for a while, and fetches for unknown kids have a budget per
//! minute, for the process and for each source address (see `source`). A forger spends its
//! own source's share: a key Plaid rotates in is still learned from Plaid's webhooks. Against
//! forgers on many addresses, `webhook.allowed_sources` refuses them before any lookup.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::DecodingKey;
use tokio::sync::Mutex;

use sqlx::PgPool;

use crate::plaid::client::{PlaidCallError, PlaidClient};
use crate::plaid::JwkPublicKey;
use crate::telemetry::names;

/// How long a kid Plaid said it does not know stays rejected without asking again.
const UNKNOWN_KID_TTL: Duration = Duration::from_secs(600);
/// Remembered unknown kids, at most; the list is cleared when it fills (a flood of random kids).
const UNKNOWN_KID_CAPACITY: usize = 10_000;
/// Key fetches for kids not in the cache, per window, for the whole process.
const FETCH_BUDGET: u32 = 60;
/// Of those, at most this many for one source address.
const SOURCE_FETCH_BUDGET: u32 = 10;
/// Sources counted per window, at most; beyond it a new source gets no fetch in that window.
const SOURCE_CAPACITY: usize = 10_000;
const FETCH_WINDOW: Duration = Duration::from_secs(60);
/// A look-up in the shared keys runs inside a webhook request too: never wait long for it.
const SHARED_LOOKUP_TIMEOUT: Duration = Duration::from_millis(500);
/// A key fetch runs inside a webhook request, which Plaid abandons after 10 s.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// A verification key ready for ES256 checks.
pub struct CachedKey {
    pub kid: String,
    pub decoding: DecodingKey,
    pub expired_at: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Plaid does not know this kid (or said so recently).
    #[error("unknown key id")]
    Unknown,
    /// Plaid served a key that is not an ES256 P-256 public key.
    #[error("unusable key: {0}")]
    Unusable(String),
    /// The key could not be checked at all (Plaid unreachable, fetch budget spent).
    #[error("key unavailable: {0}")]
    Unavailable(String),
}

pub struct KeyCache {
    client: PlaidClient,
    /// The keys every replica shares; `None` for callers without a database.
    shared: Option<PgPool>,
    keys: RwLock<HashMap<String, Arc<CachedKey>>>,
    /// One gate per kid being fetched; removed once its fetch is done.
    gates: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Unknown kids and the fetch budget; held only briefly, never across a fetch.
    fetch: std::sync::Mutex<FetchState>,
}

struct FetchState {
    unknown: HashMap<String, Instant>,
    window_started: Instant,
    fetches_in_window: u32,
    /// Fetches in this window by source (`None`: the source is not known).
    by_source: HashMap<Option<IpAddr>, u32>,
}

impl FetchState {
    fn recently_unknown(&mut self, kid: &str) -> bool {
        match self.unknown.get(kid) {
            Some(at) if at.elapsed() < UNKNOWN_KID_TTL => true,
            Some(_) => {
                self.unknown.remove(kid);
                false
            }
            None => false,
        }
    }

    fn remember_unknown(&mut self, kid: &str) {
        if self.unknown.len() >= UNKNOWN_KID_CAPACITY {
            self.unknown.clear();
        }
        self.unknown.insert(kid.to_owned(), Instant::now());
    }

    fn take_budget(&mut self, source: Option<IpAddr>) -> bool {
        if self.window_started.elapsed() >= FETCH_WINDOW {
            self.window_started = Instant::now();
            self.fetches_in_window = 0;
            self.by_source.clear();
        }
        if self.fetches_in_window >= FETCH_BUDGET {
            return false;
        }
        let known_sources = self.by_source.len();
        let spent = match self.by_source.get_mut(&source) {
            Some(spent) => spent,
            None if known_sources >= SOURCE_CAPACITY => return false,
            None => self.by_source.entry(source).or_default(),
        };
        if *spent >= SOURCE_FETCH_BUDGET {
            return false;
        }
        *spent += 1;
        self.fetches_in_window += 1;
        true
    }
}

impl KeyCache {
    pub fn new(client: PlaidClient, shared: Option<PgPool>) -> Self {
        Self {
            client,
            shared,
            keys: RwLock::new(HashMap::new()),
            gates: std::sync::Mutex::new(HashMap::new()),
            fetch: std::sync::Mutex::new(FetchState {
                unknown: HashMap::new(),
                window_started: Instant::now(),
                fetches_in_window: 0,
                by_source: HashMap::new(),
            }),
        }
    }

    fn cached(&self, kid: &str) -> Option<Arc<CachedKey>> {
        self.keys.read().expect("key cache lock").get(kid).cloned()
    }

    /// The key for `kid`, from the cache or from Plaid; a fetch is charged to `source`.
    pub async fn get(&self, kid: &str, source: Option<IpAddr>) -> Result<Arc<CachedKey>, KeyError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let gate = self
            .gates
            .lock()
            .expect("key gates lock")
            .entry(kid.to_owned())
            .or_default()
            .clone();
        let _through = gate.lock().await;
        let result = self.fetch_through_gate(kid, source).await;
        // Whoever waited at this gate has seen the outcome (cached key or remembered unknown
        // kid); a later miss makes a new gate.
        self.gates.lock().expect("key gates lock").remove(kid);
        result
    }

    async fn fetch_through_gate(
        &self,
        kid: &str,
        source: Option<IpAddr>,
    ) -> Result<Arc<CachedKey>, KeyError> {
        // Another request may have fetched it while this one waited at the gate.
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        if self
            .fetch
            .lock()
            .expect("key fetch state lock")
            .recently_unknown(kid)
        {
            return Err(KeyError::Unknown);
        }
        // Another replica may have learned it: no Plaid call, no budget.
        if let Some(key) = self.shared_key(kid).await {
            metrics::counter!(names::WEBHOOK_KEY_FETCHES, "outcome" => "shared").increment(1);
            return Ok(self.store(key));
        }
        {
            let mut state = self.fetch.lock().expect("key fetch state lock");
            if !state.take_budget(source) {
                metrics::counter!(names::WEBHOOK_KEY_FETCHES, "outcome" => "budget_exhausted")
                    .increment(1);
                return Err(KeyError::Unavailable("key fetch budget exhausted".into()));
            }
        }
        match self.fetch_one(kid).await {
            Ok(key) => {
                metrics::counter!(names::WEBHOOK_KEY_FETCHES, "outcome" => "fetched").increment(1);
                // A new key Plaid really issued means a rotation: refresh the keys still valid
                // so an expiry Plaid announced with it is learned (Plaid's algorithm). Only a
                // real key triggers this, so a flood of forged kids refreshes nothing.
                self.refresh_still_valid().await;
                Ok(self.store(key))
            }
            Err(KeyError::Unknown) => {
                metrics::counter!(names::WEBHOOK_KEY_FETCHES, "outcome" => "unknown").increment(1);
                self.fetch
                    .lock()
                    .expect("key fetch state lock")
                    .remember_unknown(kid);
                Err(KeyError::Unknown)
            }
            Err(other) => {
                metrics::counter!(names::WEBHOOK_KEY_FETCHES, "outcome" => "failed").increment(1);
                Err(other)
            }
        }
    }

    async fn refresh_still_valid(&self) {
        let still_valid: Vec<String> = self
            .keys
            .read()
            .expect("key cache lock")
            .values()
            .filter(|k| k.expired_at.is_none())
            .map(|k| k.kid.clone())
            .collect();
        let refreshed =
            futures::future::join_all(still_valid.iter().map(|kid| self.fetch_one(kid))).await;
        for key in refreshed.into_iter().flatten() {
            self.store(key);
        }
    }

    /// The key another replica stored for `kid`, if any. Best effort: the database being away
    /// only means asking Plaid.
    async fn shared_key(&self, kid: &str) -> Option<CachedKey> {
        let db = self.shared.as_ref()?;
        let lookup = sqlx::query_scalar!("select jwk from webhook_keys where kid = $1", kid)
            .fetch_optional(db);
        let jwk = tokio::time::timeout(SHARED_LOOKUP_TIMEOUT, lookup)
            .await
            .ok()?
            .ok()??;
        let jwk: JwkPublicKey = serde_json::from_value(jwk).ok()?;
        decoding_key(&jwk).ok()
    }

    /// Shares a key fetched from Plaid with every replica. Best effort, like the lookup.
    async fn share(&self, jwk: &JwkPublicKey) {
        let Some(db) = &self.shared else {
            return;
        };
        let Ok(value) = serde_json::to_value(jwk) else {
            return;
        };
        let upsert = sqlx::query!(
            "insert into webhook_keys (kid, jwk, expired_at) values ($1, $2, $3)
             on conflict (kid) do update set jwk = excluded.jwk, expired_at = excluded.expired_at,
                                             fetched_at = now()",
            jwk.kid,
            value,
            jwk.expired_at,
        )
        .execute(db);
        if let Ok(Err(error)) = tokio::time::timeout(SHARED_LOOKUP_TIMEOUT, upsert).await {
            tracing::warn!(webhook.kid = %jwk.kid, error = %error, "could not share a webhook key");
        }
    }

    fn store(&self, key: CachedKey) -> Arc<CachedKey> {
        let key = Arc::new(key);
        self.keys
            .write()
            .expect("key cache lock")
            .insert(key.kid.clone(), key.clone());
        key
    }

    async fn fetch_one(&self, kid: &str) -> Result<CachedKey, KeyError> {
        match tokio::time::timeout(FETCH_TIMEOUT, self.client.webhook_verification_key(kid)).await {
            Err(_) => Err(KeyError::Unavailable("key fetch timed out".into())),
            Ok(Ok(response)) => {
                if response.key.kid != kid {
                    return Err(KeyError::Unusable(
                        "Plaid returned a key for another kid".into(),
                    ));
                }
                let key = decoding_key(&response.key)?;
                self.share(&response.key).await;
                Ok(key)
            }
            // Plaid answers 4xx (INVALID_WEBHOOK_VERIFICATION_KEY_ID) for a kid it never issued.
            Ok(Err(PlaidCallError::Plaid { status, .. }))
                if (400..500).contains(&status) && status != 429 =>
            {
                Err(KeyError::Unknown)
            }
            Ok(Err(other)) => Err(KeyError::Unavailable(other.to_string())),
        }
    }
}

/// Checks that `jwk` is an EC P-256 public key on the curve, and prepares it for ES256.
fn decoding_key(jwk: &JwkPublicKey) -> Result<CachedKey, KeyError> {
    if jwk.kty != "EC" || jwk.crv != "P-256" {
        return Err(KeyError::Unusable(format!(
            "kty {} crv {}",
            jwk.kty, jwk.crv
        )));
    }
    if !jwk.alg.is_empty() && jwk.alg != "ES256" {
        return Err(KeyError::Unusable(format!("alg {}", jwk.alg)));
    }
    let coordinate = |value: &str| -> Result<[u8; 32], KeyError> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| KeyError::Unusable("coordinate is not 32 base64url bytes".into()))
    };
    let (x, y) = (coordinate(&jwk.x)?, coordinate(&jwk.y)?);
    use p256::elliptic_curve::sec1::FromEncodedPoint;
    let point = p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
    if Option::<p256::PublicKey>::from(p256::PublicKey::from_encoded_point(&point)).is_none() {
        return Err(KeyError::Unusable("point is not on P-256".into()));
    }
    let decoding = DecodingKey::from_ec_components(&jwk.x, &jwk.y)
        .map_err(|e| KeyError::Unusable(e.to_string()))?;
    Ok(CachedKey {
        kid: jwk.kid.clone(),
        decoding,
        expired_at: jwk.expired_at,
    })
}
