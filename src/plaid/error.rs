//! Plaid's error body (`PlaidError` in the spec): returned by every endpoint on failure and
//! embedded in ITEM webhooks and in `item.error`.

use super::enums::{ErrorCode, ErrorType};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A Plaid error. Match on `error_code`; messages are for humans and change without notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaidError {
    pub error_type: ErrorType,
    pub error_code: ErrorCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code_reason: Option<String>,
    pub error_message: String,
    /// A message safe to show the end user, or null.
    #[serde(default)]
    pub display_message: Option<String>,
    /// Present on API responses, absent inside webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<serde_json::Value>,
    /// The HTTP status the error came with; present in webhooks and `item.error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Plaid's page about the error; every error body Plaid sends has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
    /// Steps to resolve it; the spec has it `nullable` and Plaid sends it as null when it has
    /// none, so it is always written.
    #[serde(default)]
    pub suggested_action: Option<String>,
}

impl PlaidError {
    pub fn new(
        error_type: ErrorType,
        error_code: ErrorCode,
        error_message: impl Into<String>,
    ) -> Self {
        Self {
            error_type,
            error_code,
            error_code_reason: None,
            error_message: error_message.into(),
            display_message: None,
            request_id: None,
            causes: Vec::new(),
            status: None,
            documentation_url: None,
            suggested_action: None,
        }
    }

    /// The HTTP status Plaid uses for this error: `status` when present, else derived from the
    /// error type and code as documented.
    pub fn http_status(&self) -> u16 {
        if let Some(status) = self.status {
            return status;
        }
        match (&self.error_type, &self.error_code) {
            (_, ErrorCode::NotFound) => 404,
            (ErrorType::RateLimitExceeded, _) => 429,
            (ErrorType::ApiError, ErrorCode::PlannedMaintenance) => 503,
            (ErrorType::ApiError, _) => 500,
            (ErrorType::InstitutionError, _) => 400,
            _ => 400,
        }
    }

    /// Errors worth retrying later with backoff (rate limits, Plaid or institution outages).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.error_type,
            ErrorType::RateLimitExceeded | ErrorType::ApiError | ErrorType::InstitutionError
        )
    }

    pub fn with_display_message(mut self, message: impl Into<String>) -> Self {
        self.display_message = Some(message.into());
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
}

impl fmt::Display for PlaidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.error_type, self.error_code, self.error_message
        )
    }
}

impl std::error::Error for PlaidError {}
