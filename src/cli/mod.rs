//! The command line: one binary, one subcommand per role or chore, and what each runs.
//!
//! With `main`, this is the only place that starts an [`Application`]; `demo` is the scripted
//! tour of the whole flow.

pub mod demo;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{cancel_on_signal, Application, Role};
use crate::config::Settings;
use crate::deadletters;

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

/// `plaidhook sim --help`: how to use the simulator without reading its source (the README's
/// "The Plaid simulator" says the same at length).
const SIM_LONG_ABOUT: &str = "\
Run the Plaid simulator alone, on [sim] host and port (default 127.0.0.1:4010), until interrupted.

It serves Plaid's API (point a Plaid client or plaidhook's plaid.base_url at it; credentials
sim.client_id / sim.secret) and a control API under /sim/. `curl localhost:4010/` lists every
route.

Link an Item (plaidhook running beside it with PLAIDHOOK__PLAID__ENVIRONMENT=custom and
PLAIDHOOK__PLAID__BASE_URL=http://127.0.0.1:4010, or `plaidhook all` with its built-in one):
  1. a Link token: plaidhook's POST /api/v1/link/token {\"client_user_id\":\"user-1\"}
     (or Plaid's POST /link/token/create here)
  2. finish Link as the user: POST /sim/link/complete {\"link_token\":\"link-...\"}
     -> {\"public_token\":...} (or Plaid's POST /sandbox/public_token/create)
  3. exchange through plaidhook: POST /api/v1/link/exchange
     {\"public_token\":...,\"client_user_id\":\"user-1\"}; the first sync follows.

State: Items, access tokens and signing keys are kept in sim.state_file (default
plaidhook-sim.json in the working directory) across restarts; --fresh starts over.
Another process on this machine that needs this simulator (e.g. `plaidhook worker` beside
`plaidhook all`): PLAIDHOOK__SIM__EMBEDDED=false.";

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
    #[command(long_about = SIM_LONG_ABOUT)]
    Sim {
        /// Start with no Items, replacing what the state file holds (sim.fresh).
        #[arg(long)]
        fresh: bool,
    },
    /// Inspect or replay messages parked in plaidhook.dead.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Inspect or replay webhooks the spool parked because the broker kept refusing them.
    Spool {
        #[command(subcommand)]
        action: SpoolAction,
    },
    /// Re-seal every stored access token under `tokens.active_key_id` (after a key rotation).
    ResealTokens,
    /// Benchmarks only: `serve`, but the webhook route answers right after verification and
    /// drops the webhook (never published, never spooled). Hidden; `scripts/bench-ingress`
    /// runs it to measure the verify-only floor.
    #[command(name = "bench-ingress-floor", hide = true)]
    BenchIngressFloor,
    /// Print the RabbitMQ topology as a definitions file (for `load_definitions`).
    Topology {
        /// Virtual host the definitions are for.
        #[arg(long, default_value = "/")]
        vhost: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpoolAction {
    /// Show parked webhooks (they stay parked).
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put parked webhooks back in line for the spool relay, oldest first.
    Replay {
        /// Replay at most this many (default: all).
        #[arg(long)]
        limit: Option<i64>,
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

/// Runs the command `cli` names, to completion (a service role: until SIGINT or SIGTERM).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = Settings::load_from(&cli.config_dir, &cli.environment, std::env::vars())?;
    if matches!(cli.command, Command::Demo { .. }) {
        // The demo prints its own story; the service's logs would drown it.
        settings.telemetry.filter = "warn,plaidhook=error,lapin=error".into();
    }
    crate::telemetry::init_logging(&settings.telemetry);
    let role = match cli.command {
        Command::Serve => Role::Serve,
        Command::Worker => Role::Worker,
        Command::All => Role::All,
        Command::BenchIngressFloor => {
            let app = Application::build(settings, Role::Serve)
                .await?
                .drop_webhooks_for_benchmark();
            cancel_on_signal(app.shutdown_token());
            return app.run_until_stopped().await;
        }
        Command::Migrate => {
            crate::store::migrate(&settings.database).await?;
            tracing::info!("migrations applied");
            return Ok(());
        }
        Command::DeadLetters { action } => return dead_letters(&settings, action).await,
        Command::Spool { action } => return spool(&settings, action).await,
        Command::Demo { items } => return demo::run(settings, items).await,
        Command::ResealTokens => {
            let tokens = crate::crypto::TokenCipher::new(
                &settings.tokens.active_key_id,
                &settings.tokens.keys,
            )?;
            let db = crate::store::lazy_pool(&settings.database)?;
            let resealed = crate::items::rows::reseal_tokens(&db, &tokens).await?;
            println!(
                "re-sealed {resealed} access token(s) under key `{}`",
                tokens.active_key_id()
            );
            return Ok(());
        }
        Command::Topology { vhost } => {
            let topology = crate::broker::Topology::from_settings(&settings.rabbitmq);
            println!(
                "{}",
                serde_json::to_string_pretty(&topology.definitions(&vhost))?
            );
            return Ok(());
        }
        Command::Sim { fresh } => {
            let addr = settings.sim.addr()?;
            settings.sim.fresh |= fresh;
            let persistence = settings.sim.persistence();
            return crate::sim::run(settings.sim.behaviour, addr, persistence)
                .await
                .context("the Plaid simulator failed");
        }
    };
    let app = Application::build(settings, role).await?;
    cancel_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}

async fn dead_letters(settings: &Settings, action: DeadLetterAction) -> anyhow::Result<()> {
    let (channel, publisher, shutdown) = deadletters::connect(settings).await?;
    let result = match action {
        DeadLetterAction::List { limit, json } => {
            let depth = deadletters::depth(&channel, publisher.topology()).await?;
            let parked = deadletters::list(&channel, publisher.topology(), limit).await?;
            if json {
                for message in &parked {
                    println!("{}", serde_json::to_string(message)?);
                }
            } else {
                println!("{depth} parked in {}", publisher.topology().dead_queue());
                for m in &parked {
                    println!(
                        "{:<38} {:<44} from {:<24} ({})  {}",
                        m.message_id.as_deref().unwrap_or("-"),
                        m.kind.as_deref().unwrap_or("-"),
                        m.from_queue.as_deref().unwrap_or("?"),
                        m.cause.as_deref().or(m.reason.as_deref()).unwrap_or("?"),
                        m.body_preview.replace('\n', " ")
                    );
                }
            }
            Ok(())
        }
        DeadLetterAction::Replay { limit } => {
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let replayed =
                deadletters::replay(&channel, &publisher, limit.unwrap_or(usize::MAX), progress)
                    .await?;
            println!("replayed {replayed} message(s)");
            Ok(())
        }
    };
    shutdown.cancel();
    result
}

async fn spool(settings: &Settings, action: SpoolAction) -> anyhow::Result<()> {
    use crate::webhook::spool;
    let db = crate::store::lazy_pool(&settings.database)?;
    match action {
        SpoolAction::List { limit, json } => {
            let depth = spool::parked_depth(&db).await?;
            let parked = spool::parked(&db, limit).await?;
            if json {
                for row in &parked {
                    println!("{}", serde_json::to_string(row)?);
                }
            } else {
                println!("{depth} parked in the webhook spool");
                for row in &parked {
                    println!(
                        "{:<8} {:<38} {:<44} attempts {:<3} {}",
                        row.id,
                        row.webhook_id,
                        row.routing_key,
                        row.attempts,
                        row.last_error.as_deref().unwrap_or("-"),
                    );
                }
            }
        }
        SpoolAction::Replay { limit } => {
            let replayed = spool::replay_parked(&db, limit.unwrap_or(i64::MAX)).await?;
            println!("put {replayed} parked webhook(s) back in line for the relay");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    /// The benchmark floor drops verified webhooks: nobody should find it in the help and take
    /// it for a way to run the service.
    #[test]
    fn the_benchmark_floor_command_is_hidden_but_runs() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("serve"), "{help}");
        assert!(!help.contains("bench-ingress-floor"), "{help}");
        let cli = Cli::try_parse_from(["plaidhook", "bench-ingress-floor"]).unwrap();
        assert!(matches!(cli.command, Command::BenchIngressFloor));
    }
}
