//! Identifier generators: Plaid-looking ids (37 base62 characters), request ids and tokens.

use rand::Rng;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62<R: Rng + ?Sized>(rng: &mut R, len: usize) -> String {
    (0..len)
        .map(|_| BASE62[rng.gen_range(0..BASE62.len())] as char)
        .collect()
}

/// An id shaped like Plaid's `item_id`, `account_id`, `transaction_id`.
pub fn plaid_id<R: Rng + ?Sized>(rng: &mut R) -> String {
    base62(rng, 37)
}

/// A `request_id` (Plaid's are 15 characters).
pub fn request_id() -> String {
    base62(&mut rand::thread_rng(), 15)
}

/// A token like `access-sandbox-<uuid>` from `rng`.
pub fn token<R: Rng + ?Sized>(rng: &mut R, kind: &str, environment: &str) -> String {
    let bytes: [u8; 16] = rng.gen();
    format!(
        "{kind}-{environment}-{}",
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    )
}
