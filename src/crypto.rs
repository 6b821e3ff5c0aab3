//! Access tokens at rest: sealed with ChaCha20-Poly1305 under a named key.
//!
//! Each sealed token records the id of the key that sealed it, so keys can be rotated: add the
//! new key to `tokens.keys`, make it `tokens.active_key_id`, and old tokens still open with
//! their own key until they are re-sealed. The Plaid Item id is the associated data, so a
//! ciphertext copied onto another Item's row does not decrypt.

use std::collections::HashMap;

use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secrecy::{ExposeSecret, SecretString};

use crate::plaid::AccessToken;

/// An access token as stored: which key, the nonce, the ciphertext (with its tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedToken {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("no token key with id `{0}` is configured")]
    UnknownKey(String),
    /// Wrong key, tampered ciphertext, or a ciphertext from another Item.
    #[error("the sealed token does not open")]
    Tampered,
}

/// The configured keys; cheap to clone.
#[derive(Clone)]
pub struct TokenCipher {
    active_key_id: String,
    keys: HashMap<String, ChaCha20Poly1305>,
}

impl TokenCipher {
    /// Builds the cipher from base64 32-byte keys. Errors name the offending setting.
    pub fn new(active_key_id: &str, keys: &HashMap<String, SecretString>) -> anyhow::Result<Self> {
        let mut ciphers = HashMap::new();
        for (id, encoded) in keys {
            // An empty key is a removed one: the way to drop a key the compiled-in defaults
            // carry (`dev`) after a rotation, since a layer can override a key but not unset it.
            if encoded.expose_secret().trim().is_empty() {
                continue;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.expose_secret().trim())
                .map_err(|_| anyhow::anyhow!("invalid setting `tokens.keys.{id}`: not base64"))?;
            if bytes.len() != 32 {
                anyhow::bail!(
                    "invalid setting `tokens.keys.{id}`: must be 32 bytes, base64-encoded"
                );
            }
            let key: [u8; 32] = bytes.try_into().expect("length checked above");
            ciphers.insert(id.clone(), ChaCha20Poly1305::new(&Key::from(key)));
        }
        if !ciphers.contains_key(active_key_id) {
            anyhow::bail!(
                "invalid setting `tokens.active_key_id`: no key `{active_key_id}` in `tokens.keys`"
            );
        }
        Ok(Self {
            active_key_id: active_key_id.to_owned(),
            keys: ciphers,
        })
    }

    pub fn active_key_id(&self) -> &str {
        &self.active_key_id
    }

    /// Seals `token` for the Item `plaid_item_id` under the active key.
    pub fn seal(&self, plaid_item_id: &str, token: &AccessToken) -> SealedToken {
        let cipher = &self.keys[&self.active_key_id];
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: token.expose_secret().as_bytes(),
                    aad: plaid_item_id.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 encryption of a short message cannot fail");
        SealedToken {
            key_id: self.active_key_id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Opens a token sealed for `plaid_item_id`.
    pub fn open(
        &self,
        plaid_item_id: &str,
        sealed: &SealedToken,
    ) -> Result<AccessToken, CryptoError> {
        let cipher = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        let nonce: [u8; 12] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Tampered)?;
        let plaintext = cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: plaid_item_id.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Tampered)?;
        String::from_utf8(plaintext)
            .map(AccessToken::new)
            .map_err(|_| CryptoError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(active: &str) -> TokenCipher {
        let keys = HashMap::from([
            (
                "k1".to_owned(),
                SecretString::from("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ),
            (
                "k2".to_owned(),
                SecretString::from("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="),
            ),
        ]);
        TokenCipher::new(active, &keys).unwrap()
    }

    #[test]
    fn a_sealed_token_opens_for_its_item_and_hides_the_plaintext() {
        let token = AccessToken::new("access-sandbox-secret");
        let sealed = cipher("k1").seal("item-1", &token);
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"access"));
        assert_eq!(cipher("k1").open("item-1", &sealed).unwrap(), token);
    }

    #[test]
    fn a_token_moved_to_another_item_or_tampered_with_does_not_open() {
        let sealed = cipher("k1").seal("item-1", &AccessToken::new("access-x"));
        assert!(matches!(
            cipher("k1").open("item-2", &sealed),
            Err(CryptoError::Tampered)
        ));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(matches!(
            cipher("k1").open("item-1", &tampered),
            Err(CryptoError::Tampered)
        ));
    }

    #[test]
    fn after_rotation_old_tokens_still_open_with_their_own_key() {
        let old = cipher("k1").seal("item-1", &AccessToken::new("access-old"));
        let rotated = cipher("k2");
        assert_eq!(
            rotated.open("item-1", &old).unwrap().expose_secret(),
            "access-old"
        );
        assert_eq!(rotated.seal("item-1", &AccessToken::new("n")).key_id, "k2");
    }

    #[test]
    fn keys_of_the_wrong_size_name_their_setting() {
        let keys = HashMap::from([("short".to_owned(), SecretString::from("AAAA"))]);
        let error = TokenCipher::new("short", &keys).err().unwrap().to_string();
        assert!(error.contains("tokens.keys.short"), "{error}");
    }

    #[test]
    fn an_empty_key_is_a_removed_key_so_a_default_one_can_be_dropped() {
        let sealed = cipher("k1").seal("item-1", &AccessToken::new("access-sandbox-old"));
        let keys = HashMap::from([
            ("k1".to_owned(), SecretString::from("  ")),
            (
                "k2".to_owned(),
                SecretString::from("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="),
            ),
        ]);
        let without_k1 = TokenCipher::new("k2", &keys).unwrap();
        assert!(without_k1.open("item-1", &sealed).is_err());
        // And a removed key cannot be the active one.
        let error = TokenCipher::new("k1", &keys).err().unwrap().to_string();
        assert!(error.contains("tokens.active_key_id"), "{error}");
    }
}
