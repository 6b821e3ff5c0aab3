//! Items: the `Item` object, its consent fields and status, and the `/item/get` response.

use super::enums::Product;
use super::error::PlaidError;
use super::ids::ItemId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An Item as returned in `item` by most endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub item_id: ItemId,
    #[serde(default)]
    pub institution_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution_name: Option<String>,
    #[serde(default)]
    pub webhook: Option<String>,
    #[serde(default)]
    pub auth_method: Option<String>,
    /// The Item's current error (for example `ITEM_LOGIN_REQUIRED`), or null when healthy.
    #[serde(default)]
    pub error: Option<PlaidError>,
    #[serde(default)]
    pub available_products: Vec<Product>,
    #[serde(default)]
    pub billed_products: Vec<Product>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<Product>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consented_products: Vec<Product>,
    #[serde(default)]
    pub consent_expiration_time: Option<DateTime<Utc>>,
    /// `background` or `user_present_required`.
    #[serde(default = "default_update_type")]
    pub update_type: String,
}

fn default_update_type() -> String {
    "background".to_owned()
}

/// `Item` plus the consent fields `/item/get` adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemWithConsentFields {
    #[serde(flatten)]
    pub item: Item,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consented_use_cases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consented_data_scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProductStatus {
    #[serde(default)]
    pub last_successful_update: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_failed_update: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastWebhook {
    #[serde(default)]
    pub sent_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_sent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ItemStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub investments: Option<ProductStatus>,
    #[serde(default)]
    pub transactions: Option<ProductStatus>,
    #[serde(default)]
    pub last_webhook: Option<LastWebhook>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemGetResponse {
    pub item: ItemWithConsentFields,
    #[serde(default)]
    pub status: Option<ItemStatus>,
    pub request_id: String,
}
