//! ragpulse: an analytics server for RAG assistant platforms. Platforms send
//! telemetry to `POST /api/v1/ingest`; dashboards read the twelve metrics of
//! `/api/v1/analytics/*`. See README.md and docs/.

pub mod analytics;
pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod import;
pub mod ingest;
pub mod live;
pub mod otlp;
pub mod pricing;
pub mod probes;
pub mod retention;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod topics;

/// Installs the tracing subscriber: human-readable or JSON lines, filtered by
/// `RUST_LOG` (default `info`). Colours only for a person at a terminal: a
/// log file or a pipe gets plain text (and `NO_COLOR` turns them off).
pub fn init_tracing(json: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
