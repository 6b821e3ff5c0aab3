//! The `plaidhook` binary: parse the command line and hand over to the library's `cli`.

use std::io::Write;

use clap::Parser;
use plaidhook::cli::Cli;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match plaidhook::cli::run(cli).await {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("plaidhook: {error:#}");
            1
        }
    };
    // `run` has stopped and drained everything. Exiting here rather than returning skips the
    // runtime's teardown, which has nothing left to do but can trip the AMQP client's I/O thread
    // when a connection attempt was still pending (a panic message on a clean stop).
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}
