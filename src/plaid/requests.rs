//! Request bodies of the endpoints plaidhook uses, and the small responses that have no other
//! home. `client_id` / `secret` are optional in every body because they may travel in the
//! `PLAID-CLIENT-ID` / `PLAID-SECRET` headers instead.

use super::enums::{Product, WebhookCode, WebhookType};
use super::ids::{AccessToken, ApiSecret, Cursor, ItemId, LinkToken, PublicToken};
use super::item::Item;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Request carrying only an access token: `/item/get`, `/item/remove` (plus reason),
/// `/transactions/refresh`, `/sandbox/item/reset_login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessTokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ApiSecret>,
    pub access_token: AccessToken,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemRemoveRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ApiSecret>,
    pub access_token: AccessToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemWebhookUpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ApiSecret>,
    pub access_token: AccessToken,
    #[serde(default)]
    pub webhook: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemWebhookUpdateResponse {
    pub item: Item,
    pub request_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemPublicTokenExchangeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ApiSecret>,
    pub public_token: PublicToken,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemPublicTokenExchangeResponse {
    pub access_token: AccessToken,
    pub item_id: ItemId,
    pub request_id: String,
}

/// Response with only a request id: `/item/remove`, `/transactions/refresh`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestIdResponse {
    pub request_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccountsOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_last_updated_datetime: Option<DateTime<Utc>>,
}

/// `/accounts/get` and `/accounts/balance/get`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountsGetRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ApiSecret>,
    pub access_token: AccessToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<AccountsOptions>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TransactionsSyncOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_original_description: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_personal_finance_category: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_requested: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransactionsSyncRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ApiSecret>,
    pub access_token: AccessToken,
    /// Omitted or empty: from the start of the Item's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
    /// 1–500, default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<TransactionsSyncOptions>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookVerificationKeyGetRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ApiSecret>,
    pub key_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkTokenUser {
    pub client_user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LinkTokenUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_selection_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reauthorization_enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LinkTokenTransactions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_requested: Option<u32>,
}

/// `/link/token/create`. New-Item mode sets `products`; update mode sets `access_token` and
/// omits `products`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkTokenCreateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ApiSecret>,
    pub client_name: String,
    pub language: String,
    pub country_codes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<LinkTokenUser>,
    /// A `user_id` from `/user/create`; one of `user` and `user_id` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products: Option<Vec<Product>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<AccessToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<LinkTokenUpdate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions: Option<LinkTokenTransactions>,
    /// Pre-selects the institution Link opens at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution_id: Option<String>,
    /// Present (possibly empty) to enable Hosted Link for the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_link: Option<LinkTokenCreateHostedLink>,
}

/// `hosted_link` of `/link/token/create` (`LinkTokenCreateHostedLink`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LinkTokenCreateHostedLink {
    /// Link Delivery (beta) only; ignored in Sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_method: Option<HostedLinkDeliveryMethod>,
    /// Where Hosted Link sends the browser when the flow completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_redirect_uri: Option<String>,
    /// How long the URL (and the link token) stays valid; positive, at most 21 days. Plaid's
    /// default without Link Delivery is 30 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_lifetime_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_mobile_app: Option<bool>,
}

open_enum! {
    /// `hosted_link.delivery_method` (`HostedLinkDeliveryMethod`).
    pub enum HostedLinkDeliveryMethod {
        Sms => "sms",
        Email => "email",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkTokenCreateResponse {
    pub link_token: LinkToken,
    pub expiration: DateTime<Utc>,
    pub request_id: String,
    /// Only when the request carried `hosted_link`: the URL of the Plaid-hosted Link flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_link_url: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SandboxTransactionsOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_requested: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SandboxPublicTokenCreateOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions: Option<SandboxTransactionsOptions>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxPublicTokenCreateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ApiSecret>,
    pub institution_id: String,
    pub initial_products: Vec<Product>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<SandboxPublicTokenCreateOptions>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxPublicTokenCreateResponse {
    pub public_token: PublicToken,
    pub request_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxItemResetLoginResponse {
    pub reset_login: bool,
    pub request_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxItemFireWebhookRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ApiSecret>,
    pub access_token: AccessToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_type: Option<WebhookType>,
    pub webhook_code: WebhookCode,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxItemFireWebhookResponse {
    pub webhook_fired: bool,
    pub request_id: String,
}
