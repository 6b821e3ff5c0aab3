//! Webhook verification keys: the JWK Plaid serves from `/webhook_verification_key/get`.

use serde::{Deserialize, Serialize};

/// A public P-256 key in JWK form with Plaid's `created_at` / `expired_at` (Unix seconds).
/// A key with `expired_at` set must no longer be trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkPublicKey {
    pub alg: String,
    pub crv: String,
    pub kid: String,
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub x: String,
    pub y: String,
    pub created_at: i64,
    pub expired_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookVerificationKeyGetResponse {
    pub key: JwkPublicKey,
    pub request_id: String,
}
