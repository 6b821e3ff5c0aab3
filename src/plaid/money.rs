//! Serde for money: Plaid sends amounts and balances as JSON numbers; plaidhook keeps them as
//! `Decimal` (never floats). Deserialising goes through the shortest decimal rendering of the
//! number, so `72.1` becomes exactly `72.1`; strings are accepted too.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serializer};
use std::str::FromStr;

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(f64),
    String(String),
}

fn parse<E: serde::de::Error>(value: NumberOrString) -> Result<Decimal, E> {
    let text = match value {
        NumberOrString::Number(number) if number.is_finite() => number.to_string(),
        NumberOrString::Number(_) => return Err(E::custom("amount is not a finite number")),
        NumberOrString::String(text) => text,
    };
    Decimal::from_str(&text).map_err(|e| E::custom(format!("invalid amount {text:?}: {e}")))
}

fn to_number<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    match value.to_f64() {
        Some(number) => serializer.serialize_f64(number),
        None => Err(serde::ser::Error::custom("amount out of range")),
    }
}

/// `#[serde(with = "crate::plaid::money")]` for `Decimal`.
pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    to_number(value, serializer)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    parse(NumberOrString::deserialize(deserializer)?)
}

/// `#[serde(with = "crate::plaid::money::option")]` for `Option<Decimal>` (null allowed).
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<Decimal>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => to_number(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Decimal>, D::Error> {
        Option::<NumberOrString>::deserialize(deserializer)?
            .map(parse)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Serialize};
    use std::str::FromStr;

    #[derive(Serialize, Deserialize)]
    struct Amount {
        #[serde(with = "super")]
        amount: Decimal,
        #[serde(with = "super::option", default)]
        limit: Option<Decimal>,
    }

    #[test]
    fn amounts_round_trip_exactly_as_json_numbers() {
        let parsed: Amount = serde_json::from_str(r#"{"amount": 72.1, "limit": null}"#).unwrap();
        assert_eq!(parsed.amount, Decimal::from_str("72.1").unwrap());
        assert_eq!(parsed.limit, None);
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            r#"{"amount":72.1,"limit":null}"#
        );
        let negative: Amount = serde_json::from_str(r#"{"amount": "-4.33"}"#).unwrap();
        assert_eq!(negative.amount, Decimal::from_str("-4.33").unwrap());
    }
}
