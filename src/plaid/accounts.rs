//! Accounts and balances (`AccountBase`, `AccountBalance`) and the `/accounts/get` and
//! `/accounts/balance/get` response.

use super::enums::{AccountSubtype, AccountType};
use super::ids::AccountId;
use super::item::Item;
use super::raw::Raw;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountBalance {
    #[serde(with = "super::money::option", default)]
    pub available: Option<Decimal>,
    #[serde(with = "super::money::option", default)]
    pub current: Option<Decimal>,
    #[serde(with = "super::money::option", default)]
    pub limit: Option<Decimal>,
    #[serde(default)]
    pub iso_currency_code: Option<String>,
    #[serde(default)]
    pub unofficial_currency_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_datetime: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountBase {
    pub account_id: AccountId,
    pub balances: AccountBalance,
    #[serde(default)]
    pub mask: Option<String>,
    pub name: String,
    #[serde(default)]
    pub official_name: Option<String>,
    #[serde(rename = "type")]
    pub account_type: AccountType,
    #[serde(default)]
    pub subtype: Option<AccountSubtype>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_account_id: Option<String>,
}

/// Response of `/accounts/get` and `/accounts/balance/get`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountsGetResponse {
    pub accounts: Vec<AccountBase>,
    pub item: Item,
    pub request_id: String,
}

/// `/accounts/balance/get` as plaidhook reads it: every account kept as Plaid sent it.
#[derive(Debug, Deserialize)]
pub struct AccountsPage {
    pub accounts: Vec<Raw<AccountBase>>,
    pub request_id: String,
}
