//! The error every HTTP handler returns, and what clients see of it.
//!
//! Clients get a stable machine-readable `code` and a message that never carries internals
//! (`{"error": {"code": "...", "message": "..."}}`); the full cause chain is logged once, here,
//! where the error is turned into a response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong credentials. Deliberately says nothing about which check failed.
    #[error("unauthorized")]
    Unauthorized,
    /// The request is malformed; the message says what to fix.
    #[error("{0}")]
    BadRequest(String),
    /// The caller may not make this request from where it is (e.g. a webhook source outside
    /// `webhook.allowed_sources`).
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("request body too large")]
    PayloadTooLarge,
    /// The request conflicts with the resource's state (e.g. the Item was removed).
    #[error("{0}")]
    Conflict(String),
    /// Too many requests of this kind; `Retry-After` says when to try again.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    /// The route exists but not with this method; `allow` lists the methods it has.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Plaid refused the call; `plaid_code` is Plaid's `error_code` (e.g. ITEM_LOGIN_REQUIRED),
    /// which clients may act on. The message is Plaid's, which carries no secrets.
    #[error("Plaid error {plaid_code}: {message}")]
    Plaid { plaid_code: String, message: String },
    /// Plaid refused the call because of the Item's state (an ITEM_ERROR such as
    /// ITEM_LOGIN_REQUIRED): not a fault of plaidhook or Plaid, and retrying will not help
    /// until the user repairs the Item, so a 409 with Plaid's `error_code`.
    #[error("the Item needs attention ({plaid_code}): {message}")]
    PlaidItemState { plaid_code: String, message: String },
    /// Plaid refused a value the client gave (e.g. an INVALID_PUBLIC_TOKEN): the client's
    /// request is at fault, so a 400, still with Plaid's `error_code`.
    #[error("Plaid refused the request's value ({plaid_code}): {message}")]
    PlaidRefusedInput { plaid_code: String, message: String },
    /// A dependency (database, broker, Plaid) is unavailable; the client may retry.
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::BadRequest(_) => "bad_request",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Conflict(_) => "conflict",
            Self::RateLimited { .. } => "rate_limited",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Plaid { .. } | Self::PlaidRefusedInput { .. } | Self::PlaidItemState { .. } => {
                "plaid_error"
            }
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Plaid { .. } => StatusCode::BAD_GATEWAY,
            Self::PlaidItemState { .. } => StatusCode::CONFLICT,
            Self::PlaidRefusedInput { .. } => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "dependency unavailable")
            }
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error")
            }
            Self::Plaid { plaid_code, .. } => {
                tracing::warn!(plaid.error_code = %plaid_code, "Plaid refused the call")
            }
            _ => {}
        }
        let mut body = json!({ "error": { "code": self.code(), "message": self.to_string() } });
        if let Self::Plaid { plaid_code, .. }
        | Self::PlaidRefusedInput { plaid_code, .. }
        | Self::PlaidItemState { plaid_code, .. } = &self
        {
            body["error"]["plaid_error_code"] = json!(plaid_code);
        }
        let mut response = (self.status(), Json(body)).into_response();
        if let Self::RateLimited { retry_after, .. } = &self {
            // Whole seconds, rounded up: a client that waits exactly this long is not refused.
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.max(1).into());
        }
        response
    }
}

/// A database failure as the client sees it: unavailable, try again.
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Unavailable(anyhow::Error::new(error).context("database"))
    }
}
