//! Webhook signing keys, as Plaid uses them: P-256 keys identified by a `kid`, served as JWKs
//! by `/webhook_verification_key/get`, rotated with the old key kept (and served) with an
//! `expired_at`. Also the JWT construction itself, by hand: base64url header and claims, an
//! ES256 signature in raw 64-byte R‖S form. The helpers are public so tests can craft tokens
//! Plaid would never send (wrong alg, unknown kid, stale iat, wrong hash).

use crate::plaid::JwkPublicKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::Signature;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fmt;

/// One signing key: the private half stays in the simulator, the public half is a JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub secret: p256::ecdsa::SigningKey,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; set once the key has been rotated out.
    pub expired_at: Option<i64>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("expired_at", &self.expired_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key from `rng` with a UUID `kid`, like Plaid's.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R, created_at: i64) -> Self {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        Self {
            kid: uuid::Builder::from_random_bytes(id).into_uuid().to_string(),
            secret: p256::ecdsa::SigningKey::random(rng),
            created_at,
            expired_at: None,
        }
    }

    /// A fresh key from the OS RNG that no simulator knows: for "unknown kid" tests.
    pub fn unregistered() -> Self {
        Self::generate(&mut rand::rngs::OsRng, chrono::Utc::now().timestamp())
    }

    pub fn verifying_key(&self) -> p256::ecdsa::VerifyingKey {
        *self.secret.verifying_key()
    }

    /// The public key in the JWK form `/webhook_verification_key/get` returns.
    pub fn public_jwk(&self) -> JwkPublicKey {
        let point = self.verifying_key().to_encoded_point(false);
        let coordinate = |c: Option<&p256::FieldBytes>| {
            URL_SAFE_NO_PAD.encode(c.map(|b| &b[..]).unwrap_or_default())
        };
        JwkPublicKey {
            alg: "ES256".to_owned(),
            crv: "P-256".to_owned(),
            kid: self.kid.clone(),
            kty: "EC".to_owned(),
            use_: "sig".to_owned(),
            x: coordinate(point.x()),
            y: coordinate(point.y()),
            created_at: self.created_at,
            expired_at: self.expired_at,
        }
    }

    /// A compact JWS over arbitrary header and claims, signed ES256 with this key.
    pub fn sign_jwt(&self, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: Signature = self.secret.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// The `Plaid-Verification` header value for `body`, issued at `iat` (Unix seconds).
    pub fn sign_webhook(&self, body: &[u8], iat: i64) -> String {
        self.sign_jwt(&webhook_jwt_header(&self.kid), &webhook_claims(body, iat))
    }
}

/// The JWT header Plaid uses: `{"alg":"ES256","kid":…,"typ":"JWT"}`.
pub fn webhook_jwt_header(kid: &str) -> serde_json::Value {
    json!({"alg": "ES256", "kid": kid, "typ": "JWT"})
}

/// The claims Plaid uses: `iat` and the lowercase hex SHA-256 of the exact body bytes.
pub fn webhook_claims(body: &[u8], iat: i64) -> serde_json::Value {
    json!({"iat": iat, "request_body_sha256": body_sha256_hex(body)})
}

pub fn body_sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The simulator's keys: the current one last; rotated-out keys keep being served. Stored in
/// the state file with their private halves (hex), so webhooks signed before a restart still
/// verify after it and plaidhook's key cache stays right.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
}

/// A key as the state file holds it.
#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    secret_hex: String,
    created_at: i64,
    expired_at: Option<i64>,
}

impl KeyRing {
    pub fn new<R: RngCore + CryptoRng>(rng: &mut R, now: i64) -> Self {
        Self {
            keys: vec![SigningKey::generate(rng, now)],
        }
    }

    /// The key new webhooks are signed with.
    pub fn current(&self) -> &SigningKey {
        self.keys.last().expect("a key ring always holds a key")
    }

    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|key| key.kid == kid)
    }

    pub fn all(&self) -> &[SigningKey] {
        &self.keys
    }

    /// Expire the current key at `now` and start signing with a new one; returns the new key.
    pub fn rotate<R: RngCore + CryptoRng>(&mut self, rng: &mut R, now: i64) -> &SigningKey {
        for key in self.keys.iter_mut().filter(|key| key.expired_at.is_none()) {
            key.expired_at = Some(now);
        }
        self.keys.push(SigningKey::generate(rng, now));
        self.current()
    }
}

impl Serialize for KeyRing {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let stored: Vec<StoredKey> = self
            .keys
            .iter()
            .map(|key| StoredKey {
                kid: key.kid.clone(),
                secret_hex: hex::encode(key.secret.to_bytes()),
                created_at: key.created_at,
                expired_at: key.expired_at,
            })
            .collect();
        stored.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for KeyRing {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let stored = Vec::<StoredKey>::deserialize(deserializer)?;
        let keys = stored
            .into_iter()
            .map(|key| {
                let bytes = hex::decode(&key.secret_hex).map_err(D::Error::custom)?;
                let secret =
                    p256::ecdsa::SigningKey::from_slice(&bytes).map_err(D::Error::custom)?;
                Ok(SigningKey {
                    kid: key.kid,
                    secret,
                    created_at: key.created_at,
                    expired_at: key.expired_at,
                })
            })
            .collect::<Result<Vec<_>, D::Error>>()?;
        if keys.is_empty() {
            return Err(D::Error::custom("a key ring holds at least one key"));
        }
        Ok(Self { keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use rand::SeedableRng;

    #[test]
    fn a_signed_jwt_verifies_with_the_public_key_and_rotation_expires_the_old_key() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut ring = KeyRing::new(&mut rng, 100);
        let token = ring.current().sign_webhook(b"{}", 1_000);
        let (input, signature) = token.rsplit_once('.').unwrap();
        let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
        ring.current()
            .verifying_key()
            .verify(input.as_bytes(), &signature)
            .unwrap();
        let old = ring.current().kid.clone();
        ring.rotate(&mut rng, 200);
        assert_eq!(ring.get(&old).unwrap().expired_at, Some(200));
        assert_ne!(ring.current().kid, old);
        assert_eq!(ring.current().public_jwk().expired_at, None);
    }

    #[test]
    fn a_stored_key_ring_signs_as_before() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut ring = KeyRing::new(&mut rng, 100);
        ring.rotate(&mut rng, 200);
        let stored = serde_json::to_string(&ring).unwrap();
        let back: KeyRing = serde_json::from_str(&stored).unwrap();
        assert_eq!(back.all().len(), 2);
        assert_eq!(back.current().public_jwk(), ring.current().public_jwk());
        assert_eq!(back.all()[0].public_jwk(), ring.all()[0].public_jwk());
    }
}
