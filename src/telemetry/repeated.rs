//! Logging a condition that repeats (a broker that stays away, a relay round that keeps
//! failing) on change, not on every occurrence: one WARN when it starts, a reminder with the
//! count every [`REMINDER_EVERY`] while it lasts, and one INFO with the count when it clears.
//! A loop that retries every second would otherwise write 3,600 lines an hour that say
//! nothing new, and bury the one line that does.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How often a lasting condition is logged again, with its count so far.
pub const REMINDER_EVERY: Duration = Duration::from_secs(300);

/// One repeating condition of one loop; the loop owns it.
#[derive(Debug)]
pub struct Repeated {
    what: &'static str,
    since: Option<Instant>,
    last_logged: Option<Instant>,
    count: u64,
}

impl Repeated {
    /// `what` names the condition in the log (`"outbox relay"`, `"RabbitMQ connection"`).
    pub const fn new(what: &'static str) -> Self {
        Self {
            what,
            since: None,
            last_logged: None,
            count: 0,
        }
    }

    /// The condition happened (again). Logs at WARN when it starts and as a reminder, at
    /// DEBUG otherwise.
    pub fn failed(&mut self, error: &dyn Display) {
        let now = Instant::now();
        self.count += 1;
        let since = *self.since.get_or_insert(now);
        let due = self
            .last_logged
            .is_none_or(|logged| now.duration_since(logged) >= REMINDER_EVERY);
        if self.count == 1 {
            self.last_logged = Some(now);
            tracing::warn!(condition = self.what, error = %error, "{} failing", self.what);
        } else if due {
            self.last_logged = Some(now);
            tracing::warn!(
                condition = self.what,
                failures = self.count,
                for_secs = since.elapsed().as_secs(),
                error = %error,
                "{} still failing",
                self.what
            );
        } else {
            tracing::debug!(condition = self.what, failures = self.count, error = %error, "{} failing", self.what);
        }
    }

    /// The condition cleared. Logs at INFO, once, if it had happened.
    pub fn recovered(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                condition = self.what,
                failures = self.count,
                for_secs = since.elapsed().as_secs(),
                "{} recovered",
                self.what
            );
        }
        self.count = 0;
        self.last_logged = None;
    }

    /// How many times it has happened since it started (0 when clear).
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_is_counted_while_it_lasts_and_cleared_once() {
        let mut relay = Repeated::new("relay");
        relay.recovered();
        assert_eq!(relay.count(), 0);
        for _ in 0..5 {
            relay.failed(&"broker away");
        }
        assert_eq!(relay.count(), 5);
        assert!(relay.since.is_some());
        relay.recovered();
        assert_eq!(relay.count(), 0);
        assert!(relay.since.is_none() && relay.last_logged.is_none());
    }
}
