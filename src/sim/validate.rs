//! Field checks of a request body before it is parsed, as Plaid makes them: fields an endpoint
//! does not know, at the top level and inside its objects (named by dotted path, e.g.
//! `options.count`), and objects given as something else (`options: null` included, where the
//! spec does not make the object nullable).
//!
//! Plaid's Invalid Request errors page (https://plaid.com/docs/errors/invalid-request/):
//! UNKNOWN_FIELDS "the following fields are not recognized by this endpoint: {fields}";
//! INVALID_FIELD for a field "invalid, malformed, or used a wrong type".

use super::errors;
use crate::plaid::PlaidError;
use serde_json::{Map, Value};

/// An object-valued field of an endpoint's request, from the spec's request schemas.
struct ObjectField {
    endpoint: &'static str,
    path: &'static str,
    /// The spec marks the object `nullable`.
    nullable: bool,
    fields: &'static [&'static str],
}

/// `/link/token/create` is left to its own handler, which knows its many objects.
const OBJECTS: &[ObjectField] = &[
    ObjectField {
        endpoint: "/accounts/get",
        path: "options",
        nullable: false,
        fields: &["account_ids"],
    },
    ObjectField {
        endpoint: "/accounts/balance/get",
        path: "options",
        nullable: false,
        fields: &["account_ids", "min_last_updated_datetime"],
    },
    ObjectField {
        endpoint: "/transactions/sync",
        path: "options",
        nullable: false,
        fields: &[
            "include_original_description",
            "include_personal_finance_category",
            "include_logo_and_counterparty_beta",
            "personal_finance_category_version",
            "days_requested",
            "account_id",
        ],
    },
    ObjectField {
        endpoint: "/sandbox/public_token/create",
        path: "options",
        nullable: false,
        fields: &[
            "webhook",
            "override_username",
            "override_password",
            "transactions",
            "statements",
            "income_verification",
        ],
    },
    ObjectField {
        endpoint: "/sandbox/public_token/create",
        path: "options.transactions",
        nullable: true,
        fields: &["start_date", "end_date", "days_requested"],
    },
    ObjectField {
        endpoint: "/sandbox/public_token/create",
        path: "options.statements",
        nullable: true,
        fields: &["start_date", "end_date"],
    },
    ObjectField {
        endpoint: "/sandbox/public_token/create",
        path: "options.income_verification",
        nullable: false,
        fields: &["income_source_types", "bank_income"],
    },
];

/// Check `body`'s fields for `endpoint`, whose top-level fields are `top` (besides `client_id`
/// and `secret`): unknown fields first (all of them, at every depth), then wrongly typed objects.
pub fn check(endpoint: &str, top: &[&str], body: &Map<String, Value>) -> Result<(), PlaidError> {
    let mut unknown: Vec<String> = body
        .keys()
        .filter(|key| {
            !matches!(key.as_str(), "client_id" | "secret") && !top.contains(&key.as_str())
        })
        .cloned()
        .collect();
    let mut wrong_type = None;
    for object in OBJECTS.iter().filter(|o| o.endpoint == endpoint) {
        match lookup(body, object.path) {
            None => {}
            Some(Value::Object(fields)) => unknown.extend(
                fields
                    .keys()
                    .filter(|key| !object.fields.contains(&key.as_str()))
                    .map(|key| format!("{}.{key}", object.path)),
            ),
            Some(Value::Null) if object.nullable => {}
            Some(_) => {
                wrong_type.get_or_insert(object.path);
            }
        }
    }
    if !unknown.is_empty() {
        return Err(errors::unknown_fields(&unknown));
    }
    match wrong_type {
        Some(path) => Err(errors::invalid_field(format!("{path} must be an object"))),
        None => Ok(()),
    }
}

/// The value at a dotted `path`; `None` when a step is absent or not an object (that step is
/// reported itself).
fn lookup<'a>(body: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut steps = path.split('.');
    let mut value = body.get(steps.next()?)?;
    for step in steps {
        value = value.as_object()?.get(step)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(endpoint: &str, body: Value) -> Result<(), PlaidError> {
        let top = ["access_token", "cursor", "count", "options"];
        check(endpoint, &top, body.as_object().unwrap())
    }

    #[test]
    fn nested_unknown_fields_are_named_by_dotted_path() {
        let refused = run(
            "/transactions/sync",
            json!({"access_token": "a", "options": {"count": 5, "account_id": "x"}, "extra": 1}),
        )
        .unwrap_err();
        assert_eq!(
            refused.error_message,
            "the following fields are not recognized by this endpoint: extra, options.count"
        );
    }

    #[test]
    fn an_object_given_as_null_or_a_scalar_is_a_wrong_type() {
        for options in [json!(null), json!("x"), json!([1])] {
            let refused = run("/transactions/sync", json!({"options": options})).unwrap_err();
            assert_eq!(refused.error_code.as_str(), "INVALID_FIELD");
        }
        assert!(run("/transactions/sync", json!({"options": {}})).is_ok());
    }
}
