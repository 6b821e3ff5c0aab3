//! Bearer-token authentication of the management API.
//!
//! Tokens are configured as the SHA-256 of each token (`api.tokens.<name>`), so neither the
//! config nor a leaked copy of it grants access. A presented token is hashed and compared with
//! every configured hash in constant time, without stopping at a match, so the time taken says
//! nothing about which hash came close. A failure says only `unauthorized`, whatever the reason.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ApiSettings;
use crate::error::ApiError;
use crate::telemetry::names;

/// The configured API tokens, as hashes.
pub struct ApiAuth {
    tokens: Vec<(String, [u8; 32])>,
}

/// The name of the token a request authenticated with (a request extension), for logs.
#[derive(Debug, Clone)]
pub struct ApiClient(pub String);

impl ApiAuth {
    /// Hashes that do not decode are skipped; `Settings::validate` refuses them at start.
    pub fn from_settings(settings: &ApiSettings) -> Self {
        let tokens = settings
            .tokens
            .iter()
            .filter_map(|(name, hash)| {
                let bytes: [u8; 32] = hex::decode(hash.trim()).ok()?.try_into().ok()?;
                Some((name.clone(), bytes))
            })
            .collect();
        Self { tokens }
    }

    /// The names of the configured tokens, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tokens.iter().map(|(name, _)| name.as_str()).collect();
        names.sort_unstable();
        names
    }

    /// The name of the configured token `presented` is, if any.
    pub fn authenticate(&self, presented: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut matched = None;
        for (name, hash) in &self.tokens {
            if bool::from(digest.ct_eq(hash)) {
                matched = Some(name.as_str());
            }
        }
        matched
    }
}

/// Middleware: lets the request through only with a valid `Authorization: Bearer <token>`.
pub async fn require_bearer(
    State(auth): State<Arc<ApiAuth>>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    let client = presented
        .as_deref()
        .filter(|token| !token.is_empty())
        .and_then(|token| auth.authenticate(token))
        .map(str::to_owned);
    match client {
        Some(name) => {
            tracing::debug!(api.client = %name, "API request authenticated");
            request.extensions_mut().insert(ApiClient(name));
            next.run(request).await
        }
        None => {
            metrics::counter!(names::API_UNAUTHORIZED).increment(1);
            let mut response = ApiError::Unauthorized.into_response();
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> ApiAuth {
        let mut settings = ApiSettings {
            tokens: Default::default(),
            manual_sync_min_interval: std::time::Duration::from_secs(60),
        };
        settings.tokens.insert(
            "app".to_owned(),
            hex::encode(Sha256::digest(b"right-token")),
        );
        ApiAuth::from_settings(&settings)
    }

    #[test]
    fn only_the_token_whose_hash_is_configured_authenticates() {
        let auth = auth();
        assert_eq!(auth.authenticate("right-token"), Some("app"));
        assert_eq!(auth.authenticate("wrong-token"), None);
        // The configured hash itself is not a token.
        assert_eq!(
            auth.authenticate(&hex::encode(Sha256::digest(b"right-token"))),
            None
        );
    }
}
