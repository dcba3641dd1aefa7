//! The `ragpulse` binary: parse the command line, set up logging, run the
//! command. Everything else is in the library.

use anyhow::Context;
use clap::Parser;
use ragpulse::cli::{Cli, Command};
use ragpulse::config::Settings;
use ragpulse::server::{self, AppState};

/// Rust's allocations go to mimalloc: decoding OTLP requests and mapping
/// traces make many small, short-lived allocations on several threads, which
/// its per-thread free lists serve with no lock (15 % less server CPU per
/// OTLP span than glibc malloc; ingest's CPU per interaction is unchanged).
/// SQLite keeps glibc malloc, tuned below.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(run(cli))
}

/// glibc (SQLite's allocator) gives memory freed at the top of a heap back
/// to the kernel, and maps large blocks afresh each time: a server that frees
/// and allocates the same working memory all day then pays a page fault and
/// the kernel's zeroing for every page, again and again (8 % of the writer
/// thread at full ingest). Freed memory is kept for reuse instead; the
/// resident size stays near its peak.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::load(args, cli.config.as_deref())?;
            ragpulse::init_tracing(settings.log_json);
            serve(settings).await
        }
        Command::Demo(args) => {
            ragpulse::init_tracing(false);
            ragpulse::commands::demo(args, cli.config.as_deref()).await
        }
        Command::Import(args) => {
            ragpulse::init_tracing(false);
            ragpulse::commands::import(args, cli.config.as_deref()).await
        }
        Command::Bench(args) => {
            ragpulse::init_tracing(false);
            ragpulse::commands::bench(args).await
        }
        Command::Reprice(args) => {
            ragpulse::init_tracing(false);
            ragpulse::commands::reprice(args, cli.config.as_deref()).await
        }
        Command::RebuildRollups(args) => {
            ragpulse::init_tracing(false);
            ragpulse::commands::rebuild_rollups(args, cli.config.as_deref()).await
        }
        Command::Backup(args) => {
            ragpulse::init_tracing(false);
            ragpulse::commands::backup(args, cli.config.as_deref()).await
        }
        Command::Restore(args) => {
            ragpulse::init_tracing(false);
            ragpulse::commands::restore(args, cli.config.as_deref()).await
        }
        Command::Export(args) => {
            ragpulse::init_tracing(false);
            ragpulse::commands::export(args, cli.config.as_deref()).await
        }
        Command::EraseUser(args) => {
            ragpulse::init_tracing(false);
            ragpulse::commands::erase_user(args, cli.config.as_deref()).await
        }
        Command::Migrate(args) => {
            ragpulse::init_tracing(false);
            ragpulse::commands::migrate(args).await
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
