//! The `plaidhook` binary: parse the command line and hand over to the library's `cli`.

use clap::Parser;
use plaidhook::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match plaidhook::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("plaidhook: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
