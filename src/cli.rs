//! The command line: one binary, one subcommand per role or chore.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "plaidhook",
    version,
    about = "Verified Plaid webhooks to RabbitMQ, with every Item's transactions kept current in PostgreSQL",
    long_about = "plaidhook receives Plaid's webhooks, verifies them (ES256), publishes them to RabbitMQ, \
                  and runs workers that keep every Item's transactions in PostgreSQL current with \
                  /transactions/sync. Configuration: config/default.toml, then config/<environment>.toml, \
                  then PLAIDHOOK__SECTION__KEY environment variables (see the README)."
)]
pub struct Cli {
    /// Directory holding `<environment>.toml` overrides.
    #[arg(
        long,
        global = true,
        env = "PLAIDHOOK_CONFIG_DIR",
        default_value = "config"
    )]
    pub config_dir: std::path::PathBuf,

    /// Which `config/<environment>.toml` to layer over the defaults.
    #[arg(
        long,
        global = true,
        env = "PLAIDHOOK_ENVIRONMENT",
        default_value = "local"
    )]
    pub environment: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the listeners: webhook ingress (public) and management API, probes, metrics (internal).
    Serve,
    /// Run the queue consumers (sync and Item health); probes and metrics on the internal listener.
    Worker,
    /// Run listeners and consumers in one process: the simplest way to run plaidhook.
    All,
    /// Create the database if needed and apply pending migrations, then exit.
    Migrate,
    /// Run the Plaid simulator alone, on `[sim]` host and port, until interrupted.
    Sim,
    /// Print the RabbitMQ topology as a definitions file (for `load_definitions`).
    Topology {
        /// Virtual host the definitions are for.
        #[arg(long, default_value = "/")]
        vhost: String,
    },
}
