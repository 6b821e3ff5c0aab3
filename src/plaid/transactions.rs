//! Transactions: the `Transaction` object and its parts, `RemovedTransaction`, and the
//! `/transactions/sync` response.

use super::accounts::AccountBase;
use super::enums::{PaymentChannel, TransactionsUpdateStatus};
use super::ids::{AccountId, Cursor, TransactionId};
use super::raw::Raw;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Location {
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub postal_code: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    #[serde(default)]
    pub store_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PaymentMeta {
    #[serde(default)]
    pub reference_number: Option<String>,
    #[serde(default)]
    pub ppd_id: Option<String>,
    #[serde(default)]
    pub payee: Option<String>,
    #[serde(default)]
    pub by_order_of: Option<String>,
    #[serde(default)]
    pub payer: Option<String>,
    #[serde(default)]
    pub payment_method: Option<String>,
    #[serde(default)]
    pub payment_processor: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalFinanceCategory {
    pub primary: String,
    pub detailed: String,
    #[serde(default)]
    pub confidence_level: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionCounterparty {
    pub name: String,
    /// `merchant`, `financial_institution`, `payment_app`, … (open set, kept as a string).
    #[serde(rename = "type")]
    pub counterparty_type: String,
    #[serde(default)]
    pub entity_id: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    #[serde(default)]
    pub logo_url: Option<String>,
    #[serde(default)]
    pub confidence_level: Option<String>,
}

/// A transaction as returned in `added` and `modified`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    pub transaction_id: TransactionId,
    pub account_id: AccountId,
    /// Positive when money leaves the account, negative when it comes in.
    #[serde(with = "super::money")]
    pub amount: Decimal,
    #[serde(default)]
    pub iso_currency_code: Option<String>,
    #[serde(default)]
    pub unofficial_currency_code: Option<String>,
    pub date: NaiveDate,
    #[serde(default)]
    pub datetime: Option<DateTime<Utc>>,
    #[serde(default)]
    pub authorized_date: Option<NaiveDate>,
    #[serde(default)]
    pub authorized_datetime: Option<DateTime<Utc>>,
    pub pending: bool,
    /// On a posted transaction: the id of the pending transaction it replaces.
    #[serde(default)]
    pub pending_transaction_id: Option<TransactionId>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub merchant_name: Option<String>,
    #[serde(default)]
    pub merchant_entity_id: Option<String>,
    #[serde(default)]
    pub original_description: Option<String>,
    #[serde(default)]
    pub account_owner: Option<String>,
    #[serde(default)]
    pub check_number: Option<String>,
    #[serde(default)]
    pub logo_url: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    pub payment_channel: PaymentChannel,
    #[serde(default)]
    pub location: Location,
    #[serde(default)]
    pub payment_meta: PaymentMeta,
    #[serde(default)]
    pub personal_finance_category: Option<PersonalFinanceCategory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal_finance_category_icon_url: Option<String>,
    #[serde(default)]
    pub transaction_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counterparties: Vec<TransactionCounterparty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RemovedTransaction {
    pub transaction_id: TransactionId,
    pub account_id: AccountId,
}

/// Response of `/transactions/sync`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransactionsSyncResponse {
    pub transactions_update_status: TransactionsUpdateStatus,
    pub accounts: Vec<AccountBase>,
    pub added: Vec<Transaction>,
    pub modified: Vec<Transaction>,
    pub removed: Vec<RemovedTransaction>,
    pub next_cursor: Cursor,
    pub has_more: bool,
    pub request_id: String,
}

/// `/transactions/sync` as plaidhook reads it: every transaction and account kept as Plaid sent it
/// ([`Raw`]), so what is stored and emitted is Plaid's object, unknown fields and all.
#[derive(Debug, Deserialize)]
pub struct TransactionsSyncPage {
    pub transactions_update_status: TransactionsUpdateStatus,
    pub accounts: Vec<Raw<AccountBase>>,
    pub added: Vec<Raw<Transaction>>,
    pub modified: Vec<Raw<Transaction>>,
    pub removed: Vec<RemovedTransaction>,
    pub next_cursor: Cursor,
    pub has_more: bool,
    pub request_id: String,
}
