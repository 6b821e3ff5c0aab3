//! Durations in the configuration: written as whole seconds or milliseconds under keys that say
//! which (`timeout_secs`, `publish_timeout_ms`), read into [`Duration`] once, here, so no code
//! converts units or carries a bare integer that means time.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `#[serde(deserialize_with = "duration::secs")]`: a whole number of seconds.
pub fn secs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_secs)
}

/// `#[serde(deserialize_with = "duration::millis")]`: a whole number of milliseconds.
pub fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_millis)
}
