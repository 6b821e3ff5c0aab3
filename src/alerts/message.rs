//! The words of an alert: which Item, which user, why, since when, and how to repair it.
//!
//! On-call reads these in a chat channel at 3 a.m.: every message names the Item (ours and
//! Plaid's id), the institution, the app's user (`client_user_id`), the cause with Plaid's error
//! code, when it started, and the exact API calls that repair it.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::AlertCause;
use crate::messages::events::{ItemSummary, Repair};

/// What an alert message is made of, read from the Item row.
pub struct AlertContext {
    item: ItemSummary,
}

impl AlertContext {
    pub async fn load(conn: &mut PgConnection, item_id: Uuid) -> Result<Self, sqlx::Error> {
        let row = sqlx::query!(
            "select plaid_item_id, client_user_id, institution_name, institution_id, status,
                    consent_expires_at
             from items where id = $1",
            item_id
        )
        .fetch_one(conn)
        .await?;
        Ok(Self {
            item: ItemSummary {
                id: item_id,
                plaid_item_id: row.plaid_item_id,
                client_user_id: row.client_user_id,
                institution_name: row.institution_name.or(row.institution_id),
                status: row.status,
                consent_expires_at: row.consent_expires_at,
            },
        })
    }

    pub fn summary(&self) -> ItemSummary {
        self.item.clone()
    }

    pub fn repair(&self, cause: AlertCause) -> Repair {
        let id = self.item.id;
        let link_token = format!("/api/v1/items/{id}/link-token");
        let link_success = format!("/api/v1/items/{id}/link-success");
        let update_mode = format!(
            "ask the user to go through Plaid Link in update mode: POST {link_token} for a Link \
             token, open Link with it, then POST {link_success}"
        );
        match cause {
            AlertCause::Revoked => Repair {
                action: "relink",
                instructions: format!(
                    "the user must link the institution again with a new Link session; \
                     remove this Item with DELETE /api/v1/items/{id}"
                ),
                link_token_endpoint: None,
                link_success_endpoint: None,
            },
            AlertCause::ItemError => Repair {
                action: "update_mode",
                instructions: format!(
                    "plaidhook re-checks the Item with /item/get and recovers by itself when \
                     Plaid clears the error; if it persists, {update_mode}"
                ),
                link_token_endpoint: Some(link_token),
                link_success_endpoint: Some(link_success),
            },
            AlertCause::LoginRequired
            | AlertCause::PendingExpiration
            | AlertCause::PendingDisconnect => Repair {
                action: "update_mode",
                instructions: update_mode,
                link_token_endpoint: Some(link_token),
                link_success_endpoint: Some(link_success),
            },
        }
    }

    /// One paragraph: who, which Item, why, since when, how to repair.
    pub fn message(
        &self,
        cause: AlertCause,
        error_code: Option<&str>,
        error_message: Option<&str>,
        since: DateTime<Utc>,
    ) -> String {
        let item = &self.item;
        let user = item.client_user_id.as_deref().unwrap_or("(unknown user)");
        let institution = item
            .institution_name
            .as_deref()
            .unwrap_or("its institution");
        let why = match cause {
            AlertCause::LoginRequired => {
                "needs the user to log in again (ITEM_LOGIN_REQUIRED)".to_owned()
            }
            AlertCause::ItemError => format!(
                "is in error ({}{})",
                error_code.unwrap_or("ITEM_ERROR"),
                error_message.map(|m| format!(": {m}")).unwrap_or_default()
            ),
            AlertCause::PendingExpiration => match item.consent_expires_at {
                Some(at) => format!("has consent that expires at {}", at.to_rfc3339()),
                None => "has consent that expires soon".to_owned(),
            },
            AlertCause::PendingDisconnect => {
                "will be disconnected by the institution unless the user re-authenticates"
                    .to_owned()
            }
            AlertCause::Revoked => "lost access: the user revoked permission".to_owned(),
        };
        format!(
            "Item {} (Plaid {}) at {institution} of user {user} {why}, since {}. To repair: {}.",
            item.id,
            item.plaid_item_id,
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.repair(cause).instructions,
        )
    }
}
