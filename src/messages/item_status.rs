//! The statuses an Item can be in: one list, from which everything that names them derives.
//!
//! The database column (`items.status`, a checked `text`), the events (`item.status_changed`),
//! the API's filters and OpenAPI document, the gauges and the scheduler's queries all take the
//! names from [`ItemStatus`]; the migration's check constraint is the one copy SQL needs, and a
//! test keeps it equal to [`ItemStatus::ALL`].

use serde::{Deserialize, Serialize};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Active,
    LoginRequired,
    PendingExpiration,
    PendingDisconnect,
    Revoked,
    Error,
    Removed,
}

impl ItemStatus {
    /// Every status, in the order documents list them.
    pub const ALL: [ItemStatus; 7] = [
        Self::Active,
        Self::LoginRequired,
        Self::PendingExpiration,
        Self::PendingDisconnect,
        Self::Revoked,
        Self::Error,
        Self::Removed,
    ];

    /// Statuses whose transactions keep syncing: the user's consent still holds. A pending
    /// disconnect is one: Plaid's PENDING_DISCONNECT says the Item "will stop working in the near
    /// future" (7 days out), and it is how a US or Canadian Item's consent expiry is announced.
    pub const SYNCING: [ItemStatus; 3] = [
        Self::Active,
        Self::PendingExpiration,
        Self::PendingDisconnect,
    ];

    /// Statuses that only Plaid's word (`/item/get`) can clear, re-checked by the scheduler.
    pub const AWAITING_REPAIR: [ItemStatus; 4] = [
        Self::LoginRequired,
        Self::Error,
        Self::Revoked,
        Self::PendingDisconnect,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::LoginRequired => "login_required",
            Self::PendingExpiration => "pending_expiration",
            Self::PendingDisconnect => "pending_disconnect",
            Self::Revoked => "revoked",
            Self::Error => "error",
            Self::Removed => "removed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
    }

    /// The names of `statuses`, e.g. for a `status = any($1)` filter.
    pub fn names(statuses: &[ItemStatus]) -> Vec<String> {
        statuses.iter().map(|s| s.as_str().to_owned()).collect()
    }

    /// `active, login_required, …`: the list as error messages spell it.
    pub fn listed() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl std::fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What moved an Item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusSource {
    Webhook,
    Api,
    Sync,
    Operator,
    Scheduler,
    /// Plaid reported a finished Hosted Link session (LINK webhooks).
    HostedLink,
}

impl StatusSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Api => "api",
            Self::Sync => "sync",
            Self::Operator => "operator",
            Self::Scheduler => "scheduler",
            Self::HostedLink => "hosted_link",
        }
    }
}

// Stored as its name in a `text` column: read with `status as "status: ItemStatus"`, bound
// directly; a name the enum does not know fails to decode instead of passing as a string.
impl Type<Postgres> for ItemStatus {
    fn type_info() -> PgTypeInfo {
        <&str as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for ItemStatus {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<Postgres>>::encode(self.as_str(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for ItemStatus {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let name = <&str as Decode<Postgres>>::decode(value)?;
        Self::parse(name).ok_or_else(|| format!("`{name}` is not an Item status").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_parses_back_from_its_name() {
        for status in ItemStatus::ALL {
            assert_eq!(ItemStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
        }
        assert_eq!(ItemStatus::parse("healthy"), None);
    }

    #[test]
    fn the_migration_allows_exactly_these_statuses() {
        let schema = include_str!("../../migrations/20261121000001_schema.sql");
        let check = schema
            .split("check (status in (")
            .nth(1)
            .and_then(|rest| rest.split("))").next())
            .expect("the items.status check constraint");
        let allowed: Vec<&str> = check
            .split(',')
            .map(|name| name.trim().trim_matches('\''))
            .collect();
        assert_eq!(allowed, ItemStatus::ALL.map(ItemStatus::as_str));
    }
}
