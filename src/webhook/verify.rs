//! Plaid webhook verification, in Plaid's documented order, over the raw bytes.
//!
//! 1. The `Plaid-Verification` header holds a compact JWS of exactly three segments.
//! 2. Its header says `alg: ES256` (nothing else, ever) and names a `kid`.
//! 3. The key for `kid` comes from the cache or Plaid, is EC P-256, and has no `expired_at`.
//! 4. The ES256 signature (raw R‖S) verifies.
//! 5. `iat` is at most `max_age` old and at most `future_skew` ahead.
//! 6. `request_body_sha256` equals the lowercase hex SHA-256 of the bytes received, compared in
//!    constant time.
//! 7. Only then is the body parsed: JSON with string `webhook_type` and `webhook_code`.
//!
//! The result, [`VerifiedWebhook`], can only be built here: holding one is proof of all seven.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use base64::Engine;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::keys::{KeyCache, KeyError};

/// A webhook proven to come from Plaid. Fields are private: only the verifier builds one.
#[derive(Debug, Clone)]
pub struct VerifiedWebhook {
    body: Bytes,
    webhook_type: String,
    webhook_code: String,
    item_id: Option<String>,
    environment: Option<String>,
    key_id: String,
    issued_at: i64,
}

impl VerifiedWebhook {
    /// The body exactly as Plaid sent it.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
    pub fn webhook_type(&self) -> &str {
        &self.webhook_type
    }
    pub fn webhook_code(&self) -> &str {
        &self.webhook_code
    }
    pub fn item_id(&self) -> Option<&str> {
        self.item_id.as_deref()
    }
    /// `environment` from the body (`sandbox`, `production`), when Plaid included it.
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }
}

/// Why a webhook was refused. Clients only ever see the HTTP status; the reason goes to logs
/// and the `reason` label of `plaidhook_webhooks_total`.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("missing Plaid-Verification header")]
    MissingHeader,
    #[error("malformed Plaid-Verification token")]
    MalformedToken,
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("token has no kid")]
    MissingKeyId,
    #[error("kid is not shaped like a Plaid key id")]
    MalformedKeyId,
    #[error("unknown key id")]
    UnknownKey,
    #[error("key has expired")]
    ExpiredKey,
    #[error("key is not usable for ES256")]
    UnusableKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("token is too old")]
    Stale,
    #[error("token is issued in the future")]
    IssuedInFuture,
    #[error("body does not match request_body_sha256")]
    BodyHashMismatch,
    #[error("verification key unavailable: {0}")]
    KeyUnavailable(String),
    #[error("body is not JSON")]
    NotJson,
    #[error("body is not a Plaid webhook")]
    NotAWebhook,
}

impl Rejection {
    /// Stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader => "missing_header",
            Self::MalformedToken => "malformed_token",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::MissingKeyId => "missing_kid",
            Self::MalformedKeyId => "malformed_kid",
            Self::UnknownKey => "unknown_kid",
            Self::ExpiredKey => "expired_key",
            Self::UnusableKey => "unusable_key",
            Self::BadSignature => "bad_signature",
            Self::Stale => "stale",
            Self::IssuedInFuture => "issued_in_future",
            Self::BodyHashMismatch => "body_hash_mismatch",
            Self::KeyUnavailable(_) => "key_unavailable",
            Self::NotJson => "not_json",
            Self::NotAWebhook => "not_a_webhook",
        }
    }
}

#[derive(Deserialize)]
struct TokenHeader {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iat: i64,
    request_body_sha256: String,
}

#[derive(Deserialize)]
struct WebhookHead {
    webhook_type: String,
    webhook_code: String,
    #[serde(default)]
    item_id: Option<String>,
    #[serde(default)]
    environment: Option<String>,
}

pub struct Verifier {
    keys: Arc<KeyCache>,
    max_age_secs: i64,
    future_skew_secs: i64,
    validation: Validation,
}

impl Verifier {
    pub fn new(keys: Arc<KeyCache>, max_age: Duration, future_skew: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::ES256);
        // Plaid's tokens carry no exp/nbf/aud; the age check on iat is ours.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        Self {
            keys,
            max_age_secs: max_age.as_secs() as i64,
            future_skew_secs: future_skew.as_secs() as i64,
            validation,
        }
    }

    /// Verifies `body` against the `Plaid-Verification` header value at time `now` (Unix s);
    /// `source` is where it came from (it pays for a key fetch).
    pub async fn verify(
        &self,
        header: Option<&str>,
        body: Bytes,
        now: i64,
        source: Option<IpAddr>,
    ) -> Result<VerifiedWebhook, Rejection> {
        let token = header
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Rejection::MissingHeader)?;
        let segments: Vec<&str> = token.split('.').collect();
        if segments.len() != 3 || segments.iter().any(|s| s.is_empty()) {
            return Err(Rejection::MalformedToken);
        }
        let header: TokenHeader = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segments[0])
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(Rejection::MalformedToken)?;
        if header.alg != "ES256" {
            return Err(Rejection::AlgorithmNotAllowed);
        }
        let kid = header
            .kid
            .filter(|k| !k.is_empty())
            .ok_or(Rejection::MissingKeyId)?;
        // Before any lookup: a kid no Plaid key could have never reaches the cache or Plaid.
        if !plausible_kid(&kid) {
            return Err(Rejection::MalformedKeyId);
        }

        let key = self
            .keys
            .get(&kid, source)
            .await
            .map_err(|error| match error {
                KeyError::Unknown => Rejection::UnknownKey,
                KeyError::Unusable(_) => Rejection::UnusableKey,
                KeyError::Unavailable(why) => Rejection::KeyUnavailable(why),
            })?;
        if key.expired_at.is_some() {
            return Err(Rejection::ExpiredKey);
        }

        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Rejection::BadSignature,
                _ => Rejection::MalformedToken,
            })?
            .claims;

        if now - claims.iat > self.max_age_secs {
            return Err(Rejection::Stale);
        }
        if claims.iat - now > self.future_skew_secs {
            return Err(Rejection::IssuedInFuture);
        }

        let digest = hex::encode(Sha256::digest(&body));
        if !bool::from(
            digest
                .as_bytes()
                .ct_eq(claims.request_body_sha256.as_bytes()),
        ) {
            return Err(Rejection::BodyHashMismatch);
        }

        let head: WebhookHead =
            serde_json::from_slice(&body).map_err(|error| match error.classify() {
                // Well-formed JSON of the wrong shape: not a webhook. Anything else: not JSON.
                serde_json::error::Category::Data => Rejection::NotAWebhook,
                _ => Rejection::NotJson,
            })?;
        if !is_code(&head.webhook_type) || !is_code(&head.webhook_code) {
            return Err(Rejection::NotAWebhook);
        }
        Ok(VerifiedWebhook {
            body,
            webhook_type: head.webhook_type,
            webhook_code: head.webhook_code,
            item_id: head.item_id,
            environment: head.environment,
            key_id: kid,
            issued_at: claims.iat,
        })
    }
}

/// Plaid's webhook types and codes are short upper-case identifiers. They become AMQP routing
/// keys (at most 255 bytes), so anything else is refused rather than trusted.
fn is_code(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Longest `kid` accepted; Plaid's are UUIDs (36 characters).
const MAX_KID_LEN: usize = 64;

/// Plaid's key ids are UUIDs: letters, digits and `-` (`_` and `.` allowed for safety).
fn plausible_kid(kid: &str) -> bool {
    kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod kid_tests {
    use super::plausible_kid;

    #[test]
    fn only_kids_shaped_like_plaids_are_looked_up() {
        assert!(plausible_kid("6c5516e1-92dc-479e-a8ff-5a51992e0001"));
        assert!(!plausible_kid(&"a".repeat(65)));
        assert!(!plausible_kid("../../etc"));
        assert!(!plausible_kid("kid with spaces"));
        assert!(!plausible_kid("kïd"));
    }
}
