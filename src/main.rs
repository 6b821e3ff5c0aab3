//! The `plaidhook` binary: parse the command line, load configuration, hand over to the library.

use anyhow::Context;
use clap::Parser;
use plaidhook::app::{cancel_on_signal, Application, Role};
use plaidhook::cli::{Cli, Command};
use plaidhook::config::Settings;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("plaidhook: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load_from(&cli.config_dir, &cli.environment, std::env::vars())?;
    plaidhook::telemetry::init_logging(&settings.telemetry);
    let role = match cli.command {
        Command::Serve => Role::Serve,
        Command::Worker => Role::Worker,
        Command::All => Role::All,
        Command::Migrate => {
            plaidhook::store::migrate(&settings.database).await?;
            tracing::info!("migrations applied");
            return Ok(());
        }
        Command::Topology { vhost } => {
            let topology = plaidhook::broker::Topology::new(
                &settings.rabbitmq.namespace,
                settings.rabbitmq.delivery_limit,
            );
            println!(
                "{}",
                serde_json::to_string_pretty(&topology.definitions(&vhost))?
            );
            return Ok(());
        }
        Command::Sim => {
            let addr = settings.sim.addr()?;
            return plaidhook::sim::run(settings.sim.behaviour, addr)
                .await
                .context("the Plaid simulator failed");
        }
    };
    let app = Application::build(settings, role).await?;
    cancel_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}
