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
    /// See the whole flow in one command: plaidhook with the built-in simulator links a few
    /// Items, syncs them, breaks one login, and prints a summary while it keeps running.
    Demo {
        /// How many Items to link.
        #[arg(long, default_value_t = 3)]
        items: usize,
    },
    /// Create the database if needed and apply pending migrations, then exit.
    Migrate,
    /// Run the Plaid simulator alone, on `[sim]` host and port, until interrupted.
    Sim,
    /// Inspect or replay messages parked in plaidhook.dead.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Re-seal every stored access token under `tokens.active_key_id` (after a key rotation).
    ResealTokens,
    /// Print the RabbitMQ topology as a definitions file (for `load_definitions`).
    Topology {
        /// Virtual host the definitions are for.
        #[arg(long, default_value = "/")]
        vhost: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// Show parked messages (they stay parked).
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Publish parked messages back to the queue each came from, oldest first.
    Replay {
        /// Replay at most this many (default: all).
        #[arg(long)]
        limit: Option<usize>,
    },
}
