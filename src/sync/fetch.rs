//! Fetching one sync's worth of changes from `/transactions/sync`.
//!
//! From the Item's stored cursor, pages of `sync.page_size` until `has_more` is false, each
//! staged as it comes (`staging`: a later page wins over an earlier one for the same
//! transaction), so the worker holds one page at a time whatever the Item's size. Plaid's
//! failure modes of the loop itself are handled here:
//! - TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION: the data changed under the pagination;
//!   everything staged is discarded and the loop restarts from the cursor it began with (not
//!   from the start of history), up to `sync.max_pagination_restarts` times.
//! - a cursor Plaid rejects: a mid-pagination cursor restarts from the first cursor; the stored
//!   cursor itself is reset, and the Item is fetched in full (recorded as `cursor_reset`).
//! - more than `sync.max_pages` pages: stops with an error that says so.
//!
//! Every other failure is classified for the caller ([`Failure`]).

use std::time::Duration;

use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::limits::{LimitError, SyncRateLimiter};
use super::staging::{self, Totals};
use crate::config::SyncSettings;
use crate::plaid::client::{PlaidCallError, PlaidClient};
use crate::plaid::{
    AccessToken, AccountBase, Cursor, ErrorCode, ErrorType, PlaidError, Raw, TransactionsSyncPage,
    TransactionsSyncRequest,
};

/// What a successful fetch brings back.
#[derive(Debug)]
pub struct Fetched {
    /// The run's net changes, staged in `sync_staging` under its id; their counts.
    pub totals: Totals,
    /// Accounts and balances as of the last page.
    pub accounts: Vec<Raw<AccountBase>>,
    /// The cursor to store; `None` while Plaid has no data yet (it answers `""`).
    pub next_cursor: Option<String>,
}

/// What a sync run did with Plaid, kept whether it succeeds or fails.
#[derive(Debug, Default)]
pub struct Progress {
    pub pages: u32,
    pub restarts: u32,
    pub cursor_reset: bool,
    pub request_ids: Vec<String>,
    pub rate_limit_wait: Duration,
    /// Time spent staging pages (part of the fetch).
    pub staging: Duration,
}

/// Why a sync could not finish, by what should happen next.
#[derive(Debug)]
pub enum Failure {
    /// The Item needs attention (ITEM_LOGIN_REQUIRED, revoked consent, …): record it on the
    /// Item; retrying would only fail again.
    Item(PlaidError),
    /// Worth retrying later: rate limits, Plaid or institution outages, timeouts.
    Transient {
        code: Option<String>,
        message: String,
    },
    /// Will not succeed by retrying: park the message for an operator.
    Permanent {
        code: Option<String>,
        message: String,
    },
}

impl Failure {
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Item(error) => Some(error.error_code.as_str()),
            Self::Transient { code, .. } | Self::Permanent { code, .. } => code.as_deref(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Item(error) => error.error_message.clone(),
            Self::Transient { message, .. } | Self::Permanent { message, .. } => message.clone(),
        }
    }

    /// Sorts a failed Plaid call.
    pub fn classify(error: PlaidCallError) -> Self {
        let message = error.to_string();
        match error {
            PlaidCallError::Plaid { status, error } => {
                let code = Some(error.error_code.as_str().to_owned());
                // An access token Plaid does not accept is a broken Item, not a broken message.
                if error.error_type == ErrorType::ItemError
                    || error.error_code == ErrorCode::InvalidAccessToken
                {
                    Self::Item(error)
                } else if error.is_retryable() || status == 429 || status >= 500 {
                    Self::Transient { code, message }
                } else {
                    Self::Permanent { code, message }
                }
            }
            PlaidCallError::Timeout(_) | PlaidCallError::Transport(_) => Self::Transient {
                code: None,
                message,
            },
            PlaidCallError::Unexpected { status, .. } if status == 429 || status >= 500 => {
                Self::Transient {
                    code: None,
                    message,
                }
            }
            PlaidCallError::Unexpected { .. } => Self::Permanent {
                code: None,
                message,
            },
        }
    }
}

/// What the fetch needs besides the Item.
pub struct Fetcher<'a> {
    pub plaid: &'a PlaidClient,
    pub limiter: &'a SyncRateLimiter,
    pub settings: &'a SyncSettings,
    pub shutdown: &'a CancellationToken,
}

fn is_cursor_rejection(error: &PlaidCallError) -> bool {
    error.plaid_error().is_some_and(|e| {
        e.error_code == ErrorCode::InvalidField && e.error_message.to_lowercase().contains("cursor")
    })
}

impl Fetcher<'_> {
    /// Fetches every change since `stored_cursor`, staged under `run_id`. `conn` is the sync's
    /// connection (the rate limiter and the staging run on it).
    pub async fn fetch(
        &self,
        conn: &mut PgConnection,
        item_id: Uuid,
        run_id: Uuid,
        access_token: &AccessToken,
        stored_cursor: Option<String>,
        progress: &mut Progress,
    ) -> Result<Fetched, Failure> {
        let mut start = stored_cursor.filter(|c| !c.is_empty());
        let mut staged = false;
        'attempt: loop {
            if staged {
                // What an abandoned pagination staged is never applied.
                staging::discard(conn, run_id)
                    .await
                    .map_err(|error| Failure::Transient {
                        code: None,
                        message: format!("discarding staged pages: {error}"),
                    })?;
            }
            let mut totals = Totals::default();
            let mut cursor = start.clone();
            let mut pages = 0u32;
            loop {
                // A stopping process gives the Item back between pages (nothing is committed
                // until the last one) rather than holding its shutdown for the whole history.
                if self.shutdown.is_cancelled() {
                    return Err(Failure::Transient {
                        code: None,
                        message: "shutting down".into(),
                    });
                }
                if pages >= self.settings.max_pages {
                    return Err(Failure::Permanent {
                        code: Some("PAGE_CAP".into()),
                        message: format!(
                            "more than sync.max_pages = {} pages ({} transactions) in one sync; raise the setting if the Item is that large",
                            self.settings.max_pages,
                            u64::from(self.settings.max_pages) * u64::from(self.settings.page_size)
                        ),
                    });
                }
                let waited = match self.limiter.acquire(conn, item_id, self.shutdown).await {
                    Ok(waited) => waited,
                    Err(LimitError::ShuttingDown) => {
                        return Err(Failure::Transient {
                            code: None,
                            message: "shutting down".into(),
                        })
                    }
                    Err(LimitError::Database(error)) => {
                        return Err(Failure::Transient {
                            code: None,
                            message: format!("rate limiter: {error}"),
                        })
                    }
                };
                progress.rate_limit_wait += waited;
                let request = TransactionsSyncRequest {
                    client_id: None,
                    secret: None,
                    access_token: access_token.clone(),
                    cursor: cursor.clone().map(Cursor::new),
                    count: Some(self.settings.page_size),
                    options: None,
                };
                let result = self
                    .plaid
                    .call::<_, TransactionsSyncPage>("/transactions/sync", Some(item_id), &request)
                    .await;
                let mut page = match result {
                    Ok(page) => page,
                    Err(error) => {
                        if let Some(id) = error.plaid_error().and_then(|e| e.request_id.clone()) {
                            progress.request_ids.push(id);
                        }
                        let code = error.plaid_error().map(|e| e.error_code.clone());
                        if code == Some(ErrorCode::TransactionsSyncMutationDuringPagination)
                            || (is_cursor_rejection(&error) && cursor != start)
                        {
                            progress.restarts += 1;
                            if progress.restarts > self.settings.max_pagination_restarts {
                                return Err(Failure::Transient {
                                    code: code.map(|c| c.as_str().to_owned()),
                                    message: format!(
                                        "the Item's data kept changing during pagination ({} restarts)",
                                        progress.restarts - 1
                                    ),
                                });
                            }
                            tracing::info!(item.id = %item_id, restarts = progress.restarts, "restarting pagination from the sync's first cursor");
                            continue 'attempt;
                        }
                        if is_cursor_rejection(&error) && start.is_some() {
                            tracing::warn!(item.id = %item_id, "Plaid rejected the stored cursor; re-syncing the Item in full");
                            progress.cursor_reset = true;
                            start = None;
                            continue 'attempt;
                        }
                        return Err(Failure::classify(error));
                    }
                };
                pages += 1;
                progress.pages += 1;
                progress
                    .request_ids
                    .push(std::mem::take(&mut page.request_id));
                staged = true;
                let staging_started = std::time::Instant::now();
                staging::stage_page(conn, run_id, item_id, &page, &mut totals)
                    .await
                    .map_err(|error| Failure::Transient {
                        code: None,
                        message: format!("staging a page: {error}"),
                    })?;
                progress.staging += staging_started.elapsed();
                if !page.has_more {
                    let next = page.next_cursor.into_inner();
                    return Ok(Fetched {
                        totals,
                        accounts: page.accounts,
                        next_cursor: (!next.is_empty()).then_some(next),
                    });
                }
                cursor = Some(page.next_cursor.into_inner());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plaid::{ErrorCode, ErrorType};

    fn plaid(status: u16, error_type: &str, code: &str) -> PlaidCallError {
        PlaidCallError::Plaid {
            status,
            error: PlaidError::new(ErrorType::from(error_type), ErrorCode::from(code), "x"),
        }
    }

    #[test]
    fn errors_are_sorted_into_item_transient_and_permanent() {
        let item = |e| matches!(Failure::classify(e), Failure::Item(_));
        let transient = |e| matches!(Failure::classify(e), Failure::Transient { .. });
        let permanent = |e| matches!(Failure::classify(e), Failure::Permanent { .. });
        assert!(item(plaid(400, "ITEM_ERROR", "ITEM_LOGIN_REQUIRED")));
        assert!(item(plaid(400, "ITEM_ERROR", "SOMETHING_NEW")));
        assert!(item(plaid(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN")));
        assert!(transient(plaid(
            429,
            "RATE_LIMIT_EXCEEDED",
            "TRANSACTIONS_SYNC_LIMIT"
        )));
        assert!(transient(plaid(500, "API_ERROR", "INTERNAL_SERVER_ERROR")));
        assert!(transient(plaid(
            400,
            "INSTITUTION_ERROR",
            "INSTITUTION_DOWN"
        )));
        assert!(transient(PlaidCallError::Timeout(Duration::from_secs(1))));
        assert!(transient(PlaidCallError::Transport("reset".into())));
        assert!(transient(PlaidCallError::Unexpected {
            status: 502,
            detail: "bad gateway".into()
        }));
        assert!(permanent(plaid(400, "INVALID_REQUEST", "UNKNOWN_FIELDS")));
        assert!(permanent(PlaidCallError::Unexpected {
            status: 200,
            detail: "undecodable".into()
        }));
    }
}
