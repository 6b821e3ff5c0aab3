//! plaidhook's integration tests: one binary, one module per suite.
//!
//! One binary links the library once instead of once per suite; nextest still runs every test
//! in a process of its own. Each test owns its world (a fresh database, a broker namespace,
//! listeners on port 0) through the `testkit` crate, which the benchmarks share.

mod helpers;

mod alerts_hosted_link;
mod alerts_signing;
mod api_contract;
mod api_items;
mod api_management;
mod broker;
mod deadletters;
mod foundation;
mod ingress;
mod items_health;
mod items_scheduler;
mod metrics;
mod outages;
mod retention;
mod routing;
mod sim_api;
mod sim_hosted_link;
mod sim_lifecycle;
mod sim_plaid_python;
mod sim_requests;
mod sim_restart;
mod sim_schemas;
mod sim_sync;
mod sim_webhooks;
mod sync_concurrency;
mod sync_e2e;
mod sync_faults;
mod sync_staging;
mod tokens;
