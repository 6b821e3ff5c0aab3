//! Rolling-window rate limits, like Plaid's: "N calls per minute" means no more than N calls
//! in any 60-second window, per Item and per client.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

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
    fn has_room(&mut self, key: &str, limit: u32, now: Instant) -> bool {
        if limit == 0 {
            return true;
        }
        let window = self.windows.entry(key.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|&at| now.duration_since(at) >= WINDOW)
        {
            window.pop_front();
        }
        window.len() < limit as usize
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
    /// allow it (0 = unlimited); refused calls are not counted.
    pub fn check(
        &mut self,
        endpoint: &str,
        item_id: &str,
        per_item: u32,
        per_client: u32,
    ) -> Result<(), Limited> {
        let now = Instant::now();
        let item_key = format!("{endpoint} item {item_id}");
        let client_key = format!("{endpoint} client");
        if !self.has_room(&item_key, per_item, now) {
            return Err(Limited::PerItem);
        }
        if !self.has_room(&client_key, per_client, now) {
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
        for _ in 0..3 {
            limiter.check("sync", "a", 3, 10).unwrap();
        }
        assert_eq!(limiter.check("sync", "a", 3, 10), Err(Limited::PerItem));
        for _ in 0..7 {
            limiter.check("sync", "b", 50, 10).unwrap();
        }
        assert_eq!(limiter.check("sync", "c", 50, 10), Err(Limited::PerClient));
    }
}
