//! Plaid's rate limits: the documented figures per endpoint (the one place they live) and a
//! rolling-window limiter. "N calls per minute" means no more than N calls in any 60-second
//! window, per Item and per client, counted when the call arrives (the window is
//! `sim.rate_limit_window_ms`, a minute unless a test shortens it).
//!
//! Figures and codes from Plaid's "Rate Limit Exceeded errors" page
//! (https://plaid.com/docs/errors/rate-limit-exceeded/), its Production and Sandbox tables.

use crate::plaid::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Which of Plaid's tables of rate limits the simulator applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitProfile {
    #[default]
    Production,
    Sandbox,
}

/// An endpoint's limits per rolling minute (0 = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointLimit {
    pub per_item: u32,
    pub per_client: u32,
}

/// Plaid's documented limits of `endpoint` in `profile`; `None` for endpoints the simulator
/// does not limit (Plaid's table is not exhaustive; those it omits are left unlimited here).
pub fn documented(profile: RateLimitProfile, endpoint: &str) -> Option<EndpointLimit> {
    use RateLimitProfile::{Production, Sandbox};
    let (per_item, per_client) = match (profile, endpoint) {
        (Production, "/accounts/balance/get") => (5, 1_200),
        (Sandbox, "/accounts/balance/get") => (25, 100),
        (Production, "/accounts/get") => (15, 15_000),
        (Sandbox, "/accounts/get") => (100, 5_000),
        (Production, "/item/get") => (15, 5_000),
        (Sandbox, "/item/get") => (40, 5_000),
        (_, "/transactions/refresh") => (2, 100),
        (Production, "/transactions/sync") => (50, 2_500),
        (Sandbox, "/transactions/sync") => (50, 1_000),
        _ => return None,
    };
    Some(EndpointLimit {
        per_item,
        per_client,
    })
}

/// The `error_code` Plaid answers a call of `endpoint` refused by `limited` with. Only
/// `/accounts/balance/get` tells the two limits apart (BALANCE_LIMIT per Item,
/// ACCOUNTS_BALANCE_GET_LIMIT per client).
pub fn error_code(endpoint: &str, limited: Limited) -> ErrorCode {
    match (endpoint, limited) {
        ("/accounts/balance/get", Limited::PerItem) => ErrorCode::BalanceLimit,
        ("/accounts/balance/get", Limited::PerClient) => ErrorCode::AccountsBalanceGetLimit,
        ("/accounts/get", _) => ErrorCode::AccountsLimit,
        ("/item/get", _) => ErrorCode::ItemGetLimit,
        ("/transactions/refresh", _) => ErrorCode::TransactionsRefreshLimit,
        ("/transactions/sync", _) => ErrorCode::TransactionsSyncLimit,
        _ => ErrorCode::RateLimit,
    }
}

#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: HashMap<String, VecDeque<Instant>>,
}

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    PerItem,
    PerClient,
}

impl RateLimiter {
    fn has_room(&mut self, key: &str, limit: u32, now: Instant, window: Duration) -> bool {
        if limit == 0 {
            return true;
        }
        let calls = self.windows.entry(key.to_owned()).or_default();
        while calls
            .front()
            .is_some_and(|&at| now.duration_since(at) >= window)
        {
            calls.pop_front();
        }
        calls.len() < limit as usize
    }

    fn record(&mut self, key: &str, limit: u32, now: Instant) {
        if limit > 0 {
            self.windows
                .entry(key.to_owned())
                .or_default()
                .push_back(now);
        }
    }

    /// Count one call of `endpoint` for `item_id` if both the per-Item and the per-client limit
    /// allow it in the rolling `window` (0 = unlimited); refused calls are not counted.
    pub fn check(
        &mut self,
        endpoint: &str,
        item_id: &str,
        per_item: u32,
        per_client: u32,
        window: Duration,
    ) -> Result<(), Limited> {
        let now = Instant::now();
        let item_key = format!("{endpoint} item {item_id}");
        let client_key = format!("{endpoint} client");
        if !self.has_room(&item_key, per_item, now, window) {
            return Err(Limited::PerItem);
        }
        if !self.has_room(&client_key, per_client, now, window) {
            return Err(Limited::PerClient);
        }
        self.record(&item_key, per_item, now);
        self.record(&client_key, per_client, now);
        Ok(())
    }

    /// Forget every recorded call (control API).
    pub fn reset(&mut self) {
        self.windows.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_item_limit_refuses_the_call_past_the_limit_and_other_items_still_pass() {
        let mut limiter = RateLimiter::default();
        let minute = Duration::from_secs(60);
        for _ in 0..3 {
            limiter.check("sync", "a", 3, 10, minute).unwrap();
        }
        assert_eq!(
            limiter.check("sync", "a", 3, 10, minute),
            Err(Limited::PerItem)
        );
        for _ in 0..7 {
            limiter.check("sync", "b", 50, 10, minute).unwrap();
        }
        assert_eq!(
            limiter.check("sync", "c", 50, 10, minute),
            Err(Limited::PerClient)
        );
    }
}
