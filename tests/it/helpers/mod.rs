//! Helpers only these tests use; what benchmarks share too lives in the `testkit` crate.
//!
//! - `sim`: a simulator on port 0 and a small Plaid client for calling it.
//! - `receiver`: a webhook receiver that records what the simulator sends.
//! - `schemas`: Plaid's official OpenAPI schemas as JSON-Schema validators.
//! - `item_truth`: signed webhooks posted in the test's order, `/item/get`'s answer set directly.
//! - `browser`: headless Chromium through chromedriver (W3C WebDriver over HTTP).
//! - `tools`: external tools from PyPI, required in CI, skipped with a notice elsewhere.

pub mod browser;
pub mod item_truth;
pub mod processes;
pub mod receiver;
pub mod schemas;
pub mod sim;
pub mod tools;
