//! Identifier newtypes, so an Item id cannot be passed where an access token is expected, and
//! secrets cannot leak through `Debug`.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// `item_id`: Plaid's stable identifier of a linked login at one institution.
    ItemId
);
string_id!(
    /// `account_id` of an account within an Item.
    AccountId
);
string_id!(
    /// `transaction_id` of a transaction.
    TransactionId
);
string_id!(
    /// `link_token`: short-lived token that initialises Link (not a long-lived secret).
    LinkToken
);
string_id!(
    /// `next_cursor` / `cursor` of `/transactions/sync`: opaque. The empty string means "from
    /// the start" (and is what Plaid returns before an Item's data is ready).
    Cursor
);

impl Cursor {
    /// The cursor that syncs from the beginning of an Item's history.
    pub fn start() -> Self {
        Self(String::new())
    }

    pub fn is_start(&self) -> bool {
        self.0.is_empty()
    }
}

macro_rules! secret_token {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            /// The secret value itself: only for sending it to Plaid or encrypting it at rest.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(***)", stringify!($name))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

secret_token!(
    /// `access_token`: the long-lived credential for one Item. `Debug` never shows it.
    AccessToken
);
secret_token!(
    /// `secret`: the API secret sent with every request (body or `PLAID-SECRET` header).
    ApiSecret
);
secret_token!(
    /// `public_token`: the short-lived token Link returns, exchanged for an access token.
    PublicToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_debug_is_redacted() {
        let token = AccessToken::new("access-sandbox-123");
        assert_eq!(format!("{token:?}"), "AccessToken(***)");
        assert_eq!(token.expose_secret(), "access-sandbox-123");
    }
}
