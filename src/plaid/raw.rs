//! A Plaid object as Plaid sent it, beside its typed view.
//!
//! plaidhook models the fields it uses; Plaid sends more, and adds fields without notice. A
//! [`Raw<T>`] keeps the JSON exactly as received (`json`: unknown fields, explicit nulls, decimal
//! amounts as written) and parses the typed view (`T`) from it once. It serialises as the
//! original JSON, so what plaidhook stores and emits is Plaid's object, not a re-serialised
//! struct.

use std::fmt;
use std::ops::Deref;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

pub struct Raw<T> {
    value: T,
    json: Box<RawValue>,
}

impl<T> Raw<T> {
    /// The object's JSON, exactly as Plaid sent it.
    pub fn json(&self) -> &RawValue {
        &self.json
    }
}

impl<T: DeserializeOwned> Raw<T> {
    /// Parses `json` into its typed view, keeping the text.
    pub fn from_json(json: Box<RawValue>) -> serde_json::Result<Self> {
        let value = serde_json::from_str(json.get())?;
        Ok(Self { value, json })
    }
}

impl<T> Deref for Raw<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Raw<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Raw<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Box::<RawValue>::deserialize(deserializer)?;
        Self::from_json(json).map_err(D::Error::custom)
    }
}

impl<T> Serialize for Raw<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plaid::Transaction;

    #[test]
    fn unknown_fields_nulls_and_decimals_survive_the_round_trip() {
        let sent = r#"{"transaction_id":"t1","account_id":"a1","amount":12.30,"iso_currency_code":"USD","unofficial_currency_code":null,"date":"2026-11-20","name":"Coffee","merchant_name":null,"payment_channel":"in store","pending":false,"pending_transaction_id":null,"a_field_plaid_adds_next_year":{"nested":[1,2.50,null]}}"#;
        let raw: Raw<Transaction> = serde_json::from_str(sent).unwrap();
        assert_eq!(raw.transaction_id.as_str(), "t1");
        // The typed view has the value; the JSON keeps the text.
        assert_eq!(raw.amount, rust_decimal::Decimal::new(1230, 2));
        assert_eq!(serde_json::to_string(&raw).unwrap(), sent);
        assert_eq!(raw.json().get(), sent);
    }
}
