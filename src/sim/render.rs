//! Rendering the simulator's compact records into Plaid's wire types.

use super::catalog::MERCHANTS;
use super::data::{AccountKind, ItemData, SimTxn};
use super::state::ItemRecord;
use crate::plaid::{
    AccountBalance, AccountBase, AccountSubtype, AccountType, Location, PaymentChannel,
    PaymentMeta, PersonalFinanceCategory, RemovedTransaction, Transaction, TransactionCounterparty,
};
use chrono::{NaiveTime, TimeZone, Utc};
use rust_decimal::Decimal;

fn cents(value: i64) -> Decimal {
    Decimal::new(value, 2)
}

pub fn account(data: &ItemData, index: usize) -> AccountBase {
    let account = &data.accounts[index];
    let (name, official, mask, account_type, subtype, limit) = match account.kind {
        AccountKind::Checking => (
            "Plaid Checking",
            Some("Plaid Gold Standard 0% Interest Checking"),
            "0000",
            AccountType::Depository,
            AccountSubtype::Checking,
            None,
        ),
        AccountKind::Savings => (
            "Plaid Saving",
            Some("Plaid Silver Standard 0.1% Interest Saving"),
            "1111",
            AccountType::Depository,
            AccountSubtype::Savings,
            None,
        ),
        AccountKind::CreditCard => (
            "Plaid Credit Card",
            Some("Plaid Diamond 12.5% APR Interest Credit Card"),
            "3333",
            AccountType::Credit,
            AccountSubtype::CreditCard,
            Some(200_000),
        ),
    };
    let available = match account.kind {
        AccountKind::CreditCard => None,
        _ => Some(cents(
            account.current_cents - data.pending_cents(index as u8).max(0),
        )),
    };
    AccountBase {
        account_id: account.account_id.as_str().into(),
        balances: AccountBalance {
            available,
            current: Some(cents(account.current_cents)),
            limit: limit.map(cents),
            iso_currency_code: Some("USD".to_owned()),
            unofficial_currency_code: None,
            last_updated_datetime: None,
        },
        mask: Some(mask.to_owned()),
        name: name.to_owned(),
        official_name: official.map(str::to_owned),
        account_type,
        subtype: Some(subtype),
        persistent_account_id: None,
    }
}

/// The Item's accounts as Plaid's API gives them: `balances.last_updated_datetime` is "returned
/// only when the institution is ins_128026 (Capital One)" (spec, AccountBalance), whose
/// balances are not real-time: when they were last refreshed. Null for every other
/// institution.
pub fn item_accounts(record: &ItemRecord) -> Vec<AccountBase> {
    let mut accounts = accounts(&record.data);
    if !super::catalog::realtime_balances(&record.institution_id) {
        for account in &mut accounts {
            account.balances.last_updated_datetime = Some(record.last_successful_update);
        }
    }
    accounts
}

pub fn accounts(data: &ItemData) -> Vec<AccountBase> {
    (0..data.accounts.len())
        .map(|index| account(data, index))
        .collect()
}

pub fn transaction(data: &ItemData, txn: &SimTxn) -> Transaction {
    let merchant = &MERCHANTS[txn.merchant as usize];
    let logo = merchant.merchant_name.map(|name| {
        format!(
            "https://plaid-merchant-logos.plaid.com/{}.png",
            name.to_lowercase().replace([' ', '\''], "_")
        )
    });
    let name = if txn.revision == 0 {
        merchant.description.to_owned()
    } else {
        format!("{} REV{}", merchant.description, txn.revision)
    };
    let location = match merchant.city {
        Some((city, region, postal_code)) => Location {
            city: Some(city.to_owned()),
            region: Some(region.to_owned()),
            postal_code: Some(postal_code.to_owned()),
            country: Some("US".to_owned()),
            ..Location::default()
        },
        None => Location::default(),
    };
    let seconds = (txn.transaction_id.bytes().map(u32::from).sum::<u32>() * 97) % 86_400;
    let time = NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0).unwrap_or_default();
    let entity_id = merchant
        .merchant_name
        .map(|name| format!("sim_{}", name.to_lowercase().replace([' ', '\'', '&'], "")));
    Transaction {
        transaction_id: txn.transaction_id.as_ref().into(),
        account_id: data.accounts[txn.account as usize]
            .account_id
            .as_str()
            .into(),
        amount: cents(txn.amount_cents),
        iso_currency_code: Some("USD".to_owned()),
        unofficial_currency_code: None,
        date: txn.date,
        datetime: Some(Utc.from_utc_datetime(&txn.date.and_time(time))),
        authorized_date: Some(txn.authorized_date),
        authorized_datetime: Some(Utc.from_utc_datetime(&txn.authorized_date.and_time(time))),
        pending: txn.pending,
        pending_transaction_id: txn.pending_transaction_id.as_deref().map(Into::into),
        name,
        merchant_name: merchant.merchant_name.map(str::to_owned),
        merchant_entity_id: entity_id.clone(),
        original_description: None,
        account_owner: None,
        check_number: None,
        logo_url: logo.clone(),
        website: merchant.website.map(str::to_owned),
        payment_channel: PaymentChannel::from(merchant.channel),
        location,
        payment_meta: PaymentMeta::default(),
        personal_finance_category: Some(PersonalFinanceCategory {
            primary: merchant.primary.to_owned(),
            detailed: merchant.detailed.to_owned(),
            confidence_level: Some("VERY_HIGH".to_owned()),
        }),
        personal_finance_category_icon_url: Some(format!(
            "https://plaid-category-icons.plaid.com/PFC_{}.png",
            merchant.primary
        )),
        transaction_code: None,
        transaction_type: Some(
            if merchant.channel == "online" {
                "digital"
            } else {
                "place"
            }
            .to_owned(),
        ),
        counterparties: merchant
            .merchant_name
            .map(|name| TransactionCounterparty {
                name: name.to_owned(),
                counterparty_type: "merchant".to_owned(),
                entity_id,
                website: merchant.website.map(str::to_owned),
                logo_url: logo,
                confidence_level: Some("VERY_HIGH".to_owned()),
            })
            .into_iter()
            .collect(),
        category: None,
        category_id: None,
    }
}

pub fn removed(data: &ItemData, txn: &SimTxn) -> RemovedTransaction {
    RemovedTransaction {
        transaction_id: txn.transaction_id.as_ref().into(),
        account_id: data.accounts[txn.account as usize]
            .account_id
            .as_str()
            .into(),
    }
}

/// The `item` object of an Item record.
pub fn item(record: &super::state::ItemRecord) -> crate::plaid::Item {
    use crate::plaid::Product;
    let available = [
        Product::Balance,
        Product::Auth,
        Product::Identity,
        Product::Investments,
        Product::Liabilities,
    ]
    .into_iter()
    .filter(|p| !record.products.contains(p))
    .collect();
    crate::plaid::Item {
        item_id: record.item_id.as_str().into(),
        institution_id: Some(record.institution_id.clone()),
        institution_name: Some(record.institution_name.clone()),
        webhook: record.webhook.clone(),
        auth_method: None,
        // `status` "will only be returned in the response body when the error information is
        // provided via a webhook" (spec, PlaidError.status): not in an API answer's item.error.
        error: record.error.clone().map(|mut error| {
            error.status = None;
            crate::sim::errors::documented(error)
        }),
        available_products: available,
        billed_products: record.products.clone(),
        products: record.products.clone(),
        consented_products: record.products.clone(),
        consent_expiration_time: record.consent_expiration_time,
        update_type: "background".to_owned(),
    }
}

/// Adds `fields` to every object in the arrays `lists` of `response`: Plaid adds fields to its
/// objects without notice, and clients must keep what they do not model.
pub fn add_fields(
    response: &mut serde_json::Value,
    lists: &[&str],
    fields: &serde_json::Map<String, serde_json::Value>,
) {
    if fields.is_empty() {
        return;
    }
    for list in lists {
        for object in response[*list].as_array_mut().into_iter().flatten() {
            if let Some(object) = object.as_object_mut() {
                object.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }
}
