//! `/link/token/get`: a link token's metadata and the Link sessions run with it, with their
//! results (`LinkTokenGetResponse`, `LinkTokenGetSessionsResponse`, `LinkSessionResults`) and the
//! Link events both it and the LINK `EVENTS` webhook carry (`LinkEvent`).
//!
//! Hosted Link reports its outcome here and through the LINK webhooks (see `webhooks.rs`): the
//! public token of a new Item is in `results.item_add_results`. An update-mode session adds no
//! Item, so the spec gives it no result entry of its own (`cra_update_results` is for Plaid
//! Check Items only); its success is the session's `finished_at` with no `exit`.

use super::enums::Product;
use super::error::PlaidError;
use super::ids::{LinkToken, PublicToken};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::ApiSecret;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkTokenGetRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ApiSecret>,
    pub link_token: LinkToken,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkTokenGetResponse {
    pub link_token: LinkToken,
    pub created_at: Option<DateTime<Utc>>,
    pub expiration: Option<DateTime<Utc>>,
    /// Sessions run with this token; Plaid keeps them for six hours after they end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_sessions: Option<Vec<LinkTokenGetSession>>,
    pub metadata: LinkTokenGetMetadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub request_id: String,
}

/// `metadata`: the arguments given to `/link/token/create` (all required, several nullable).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkTokenGetMetadata {
    pub initial_products: Vec<Product>,
    pub webhook: Option<String>,
    pub country_codes: Vec<String>,
    pub language: Option<String>,
    pub redirect_uri: Option<String>,
    pub client_name: Option<String>,
}

/// One Link session (`LinkTokenGetSessionsResponse`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkTokenGetSession {
    pub link_session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// `None` while the session is still open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Present when the user left Link without success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<LinkSessionExit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<LinkEvent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<LinkSessionResults>,
}

/// `results` of a session. The lists plaidhook does not use stay raw JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkSessionResults {
    pub item_add_results: Vec<LinkSessionItemAddResult>,
    #[serde(default)]
    pub cra_item_add_results: Vec<serde_json::Value>,
    #[serde(default)]
    pub cra_update_results: Vec<serde_json::Value>,
    #[serde(default)]
    pub bank_income_results: Vec<serde_json::Value>,
    #[serde(default)]
    pub payroll_income_results: Vec<serde_json::Value>,
    #[serde(default)]
    pub document_income_results: Option<serde_json::Value>,
}

/// An Item added in the session: its public token, to exchange for an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkSessionItemAddResult {
    pub public_token: PublicToken,
    pub accounts: Vec<LinkSessionAccount>,
    pub institution: Option<LinkSessionInstitution>,
}

/// `LinkSessionSuccessMetadataAccount`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkSessionAccount {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub mask: Option<String>,
    #[serde(rename = "type")]
    pub account_type: String,
    pub subtype: String,
    #[serde(default)]
    pub verification_status: Option<String>,
}

/// `LinkSessionSuccessMetadataInstitution` / `LinkSessionExitMetadataInstitution`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkSessionInstitution {
    pub name: String,
    pub institution_id: String,
}

/// `exit` of a session (`LinkSessionExit`): why and where the user left.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkSessionExit {
    pub error: Option<PlaidError>,
    pub metadata: Option<LinkSessionExitMetadata>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkSessionExitMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution: Option<LinkSessionInstitution>,
    /// Where the user left, e.g. `requires_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A Link event (`LinkEvent`), e.g. `OPEN`, `SUBMIT_CREDENTIALS`, `ERROR`, `HANDOFF`, `EXIT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkEvent {
    pub event_name: String,
    /// ISO 8601; a string in the spec.
    pub timestamp: String,
    /// Deduplicates events repeated across `EVENTS` webhooks of one session.
    pub event_id: String,
    pub event_metadata: LinkEventMetadata,
}

/// `LinkEventMetadata`: which fields are set depends on the event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkEventMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_name: Option<String>,
}
