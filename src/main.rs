//! The `ragpulse` binary: parse the command line, set up logging, run the
//! command. Everything else is in the library.

use anyhow::Context;
use clap::Parser;
use ragpulse::cli::{Cli, Command};
use ragpulse::config::Settings;
use ragpulse::server::{self, AppState};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::load(args, cli.config.as_deref())?;
            ragpulse::init_tracing(settings.log_json);
            serve(settings).await
        }
        Command::Demo(args) => {
            ragpulse::init_tracing(false);
            ragpulse::demo::run(args, cli.config.as_deref()).await
        }
        Command::Import(args) => {
            ragpulse::init_tracing(false);
            ragpulse::import::run(args).await
        }
        Command::Bench(args) => {
            ragpulse::init_tracing(false);
            ragpulse::bench::run(args).await
        }
        Command::Reprice(args) => {
            ragpulse::init_tracing(false);
            ragpulse::import::reprice(args).await
        }
        Command::RebuildRollups(args) => {
            ragpulse::init_tracing(false);
            ragpulse::import::rebuild_rollups(args).await
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let data_dir = settings.data_dir.display().to_string();
    let state = AppState::build(settings)
        .with_context(|| format!("failed to start on data directory {data_dir}"))?;
    let listener = server::bind(&state.settings)
        .await
        .with_context(|| format!("failed to listen on {}", state.settings.listen))?;
    let addr = listener
        .local_addr()
        .context("failed to read the bound address")?;
    // Tests and scripts read this line from stdout to learn the port.
    println!("ragpulse listening on http://{addr}");
    server::serve(listener, state, server::shutdown_signal())
        .await
        .context("server failed")
}
