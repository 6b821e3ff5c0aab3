//! The words of an alert: which Item, which user, why, since when, and how to repair it.
//!
//! On-call reads these in a chat channel at 3 a.m.: every message names the Item (ours and
//! Plaid's id), the institution, the app's user (`client_user_id`), the cause with Plaid's error
//! code, when it started, and the exact API calls that repair it.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::AlertCause;
use crate::messages::events::{HostedLinkView, ItemSummary, Repair};

/// What an alert message is made of, read from the Item row and its current repair link.
pub struct AlertContext {
    item: ItemSummary,
    hosted_link: Option<HostedLinkView>,
}

impl AlertContext {
    pub async fn load(conn: &mut PgConnection, item_id: Uuid) -> Result<Self, sqlx::Error> {
        let row = sqlx::query!(
            "select plaid_item_id, client_user_id, institution_name, institution_id, status,
                    consent_expires_at
             from items where id = $1",
            item_id
        )
        .fetch_one(&mut *conn)
        .await?;
        let hosted_link = sqlx::query_as!(
            HostedLinkView,
            r#"select hosted_link_url as url, expires_at from link_sessions
               where item_id = $1 and status = 'open' and expires_at > now()
               order by created_at desc limit 1"#,
            item_id
        )
        .fetch_optional(conn)
        .await?;
        Ok(Self {
            hosted_link,
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
                user_message: None,
                hosted_link: None,
            },
            AlertCause::ItemError => Repair {
                action: "update_mode",
                instructions: format!(
                    "plaidhook re-checks the Item with /item/get and recovers by itself when \
                     Plaid clears the error; if it persists, {update_mode}"
                ),
                link_token_endpoint: Some(link_token),
                link_success_endpoint: Some(link_success),
                user_message: None,
                hosted_link: None,
            },
            AlertCause::LoginRequired
            | AlertCause::PendingExpiration
            | AlertCause::PendingDisconnect
            | AlertCause::NewAccounts => Repair {
                action: "update_mode",
                instructions: match &self.hosted_link {
                    Some(_) => format!(
                        "send the user `repair.hosted_link.url` with `repair.user_message`; \
                         plaidhook learns from Plaid when they are done. Or {update_mode}"
                    ),
                    None => update_mode,
                },
                link_token_endpoint: Some(link_token),
                link_success_endpoint: Some(link_success),
                user_message: Some(self.user_message(cause)),
                hosted_link: self.hosted_link.clone(),
            },
        }
    }

    /// The reason in the user's words, for the app to send with the repair link.
    fn user_message(&self, cause: AlertCause) -> String {
        let bank = self.item.institution_name.as_deref().unwrap_or("your bank");
        let why = match cause {
            AlertCause::PendingExpiration => match self.item.consent_expires_at {
                Some(at) => format!(
                    "Your permission to share your {bank} accounts with us ends on {}.",
                    at.format("%-d %B %Y")
                ),
                None => format!("Your permission to share your {bank} accounts with us ends soon."),
            },
            AlertCause::PendingDisconnect => {
                format!("{bank} will soon stop sharing your accounts with us.")
            }
            AlertCause::NewAccounts => {
                format!("You have accounts at {bank} that you have not shared with us yet.")
            }
            _ => {
                format!("Your {bank} accounts stopped updating: {bank} needs you to sign in again.")
            }
        };
        let then = if cause == AlertCause::NewAccounts {
            "choose the accounts to share"
        } else {
            "reconnect"
        };
        format!("{why} It takes a minute: open the link and sign in to {bank} to {then}.")
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
            AlertCause::NewAccounts => {
                "has new accounts the user has not shared (NEW_ACCOUNTS_AVAILABLE)".to_owned()
            }
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
