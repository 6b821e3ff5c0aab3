//! The `plaidhook` binary: parse the command line, load configuration, hand over to the library.

use anyhow::Context;
use clap::Parser;
use plaidhook::app::{cancel_on_signal, Application, Role};
use plaidhook::cli::{Cli, Command, DeadLetterAction};
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
    let mut settings = Settings::load_from(&cli.config_dir, &cli.environment, std::env::vars())?;
    if matches!(cli.command, Command::Demo { .. }) {
        // The demo prints its own story; the service's logs would drown it.
        settings.telemetry.filter = "warn,plaidhook=error,lapin=error".into();
    }
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
        Command::DeadLetters { action } => return dead_letters(&settings, action).await,
        Command::Demo { items } => return plaidhook::demo::run(settings, items).await,
        Command::ResealTokens => {
            let tokens = plaidhook::crypto::TokenCipher::new(
                &settings.tokens.active_key_id,
                &settings.tokens.keys,
            )?;
            let db = plaidhook::store::lazy_pool(&settings.database)?;
            let resealed = plaidhook::store::items::reseal_tokens(&db, &tokens).await?;
            println!(
                "re-sealed {resealed} access token(s) under key `{}`",
                tokens.active_key_id()
            );
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

async fn dead_letters(settings: &Settings, action: DeadLetterAction) -> anyhow::Result<()> {
    use plaidhook::deadletters;
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
                        m.reason.as_deref().unwrap_or("?"),
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
