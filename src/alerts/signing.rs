//! Signatures on alert webhooks, as the Standard Webhooks specification defines them, so a
//! receiver can tell plaidhook's alert from a forgery.
//!
//! Each delivery attempt carries `webhook-id` (the delivery's id, the same on every retry: also
//! the `Idempotency-Key`), `webhook-timestamp` (unix seconds of this attempt, so a receiver can
//! refuse replays) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! once per configured secret, space-separated. Several secrets are there for rotation: the
//! receiver accepts a delivery when any one signature matches a secret it knows.
//!
//! The secrets are decoded from their `whsec_<base64>` form by the configuration
//! (`AlertSettings::signing_keys`), which names the setting when one is malformed.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// Signs deliveries with every configured key (none: deliveries go unsigned).
pub struct Signer {
    keys: Vec<SecretSlice<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Signer {
    pub fn new(keys: Vec<SecretSlice<u8>>) -> Self {
        Self { keys }
    }

    pub fn is_signing(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The three headers of one attempt; empty when no key is configured.
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
        let Some(signature) = self.signature(id, timestamp, body) else {
            return Vec::new();
        };
        vec![
            (WEBHOOK_ID, id.to_owned()),
            (WEBHOOK_TIMESTAMP, timestamp.to_string()),
            (WEBHOOK_SIGNATURE, signature),
        ]
    }

    /// The `webhook-signature` value: one `v1,` signature per key, in the configured order.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
        if self.keys.is_empty() {
            return None;
        }
        let signatures: Vec<String> = self
            .keys
            .iter()
            .map(|key| v1(key.expose_secret(), id, timestamp, body))
            .collect();
        Some(signatures.join(" "))
    }
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`. The id must hold no `.` (ours are
/// `<alert uuid>:<kind>`), or two messages could sign the same content.
fn v1(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(whsec: &str) -> SecretSlice<u8> {
        let encoded = whsec.strip_prefix("whsec_").unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap()
            .into()
    }

    // The vector the Standard Webhooks reference libraries test against.
    const SPEC_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const SPEC_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const SPEC_TIMESTAMP: i64 = 1649367553;
    const SPEC_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SPEC_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    #[test]
    fn signs_the_specifications_test_vector() {
        let signer = Signer::new(vec![key(SPEC_SECRET)]);
        assert_eq!(
            signer
                .signature(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
                .as_deref(),
            Some(SPEC_SIGNATURE)
        );
        let headers = signer.headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY);
        assert_eq!(
            headers,
            [
                (WEBHOOK_ID, SPEC_ID.to_owned()),
                (WEBHOOK_TIMESTAMP, "1649367553".to_owned()),
                (WEBHOOK_SIGNATURE, SPEC_SIGNATURE.to_owned()),
            ]
        );
    }

    #[test]
    fn each_key_signs_in_order_space_separated_for_rotation() {
        let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let signer = Signer::new(vec![key(other), key(SPEC_SECRET)]);
        let header = signer
            .signature(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
            .unwrap();
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2, "{header}");
        assert_ne!(parts[0], SPEC_SIGNATURE);
        assert!(parts[0].starts_with("v1,"));
        assert_eq!(parts[1], SPEC_SIGNATURE);
    }

    #[test]
    fn the_id_timestamp_and_body_are_all_signed() {
        let signer = Signer::new(vec![key(SPEC_SECRET)]);
        let sign = |id, ts, body| signer.signature(id, ts, body).unwrap();
        let original = sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY);
        assert_ne!(original, sign("msg_other", SPEC_TIMESTAMP, SPEC_BODY));
        assert_ne!(original, sign(SPEC_ID, SPEC_TIMESTAMP + 1, SPEC_BODY));
        assert_ne!(original, sign(SPEC_ID, SPEC_TIMESTAMP, b"{}"));
    }

    #[test]
    fn without_keys_nothing_is_signed_and_debug_shows_no_key() {
        let unsigned = Signer::new(Vec::new());
        assert!(!unsigned.is_signing());
        assert!(unsigned
            .headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
            .is_empty());
        let signer = Signer::new(vec![key(SPEC_SECRET)]);
        assert_eq!(format!("{signer:?}"), "Signer { keys: 1 }");
    }
}
