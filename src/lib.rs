//! ragpulse: an analytics server for RAG assistant platforms. Platforms send
//! telemetry to `POST /api/v1/ingest`; dashboards read the twelve metrics of
//! `/api/v1/analytics/*`. See README.md and docs/.

pub(crate) mod analytics;
pub(crate) mod api;
pub(crate) mod backup;
pub(crate) mod bench;
pub mod cli;
pub mod config;
pub(crate) mod demo;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod ingest;
pub(crate) mod live;
pub(crate) mod metrics;
pub(crate) mod migrate;
pub(crate) mod otlp;
pub(crate) mod pricing;
pub(crate) mod probes;
pub(crate) mod retention;
pub mod server;
pub(crate) mod store;
pub(crate) mod telemetry;
pub(crate) mod time;
pub(crate) mod topics;

/// The commands the binary runs besides `serve`.
pub mod commands {
    pub use crate::backup::{backup, restore};
    pub use crate::bench::run as bench;
    pub use crate::demo::run as demo;
    pub use crate::export::run as export;
    pub use crate::import::{erase_user, rebuild_rollups, reprice, run as import};
    pub use crate::migrate::run as migrate;
}

/// What the fuzz targets and the integration tests reach below the HTTP
/// surface: decoders, the query parser and the store's read path. Not a
/// stable interface.
#[doc(hidden)]
pub mod internals {
    pub mod api {
        pub use crate::api::analytics::advanced_params;
        pub use crate::api::error::ApiError;
        pub use crate::api::query::Query;
    }
    pub mod ingest {
        pub use crate::ingest::check_body;
        pub use crate::ingest::decode::{BodyLimits, DecodeError, Format};
        pub use crate::ingest::validate::EventLimits;
    }
    pub mod otlp {
        pub use crate::otlp::assemble::map_trace;
        pub use crate::otlp::decode::{Compression, DecodeError, Encoding};
        pub use crate::otlp::facts::TraceRow;
        pub use crate::otlp::finalizer::{validate_draft, validate_interaction};
        pub use crate::otlp::receiver::prepare;
    }
    pub mod store {
        pub use crate::store::sqlite::details::{PackedStep, column};
        pub use crate::store::sqlite::export::{ExportFilter, export};
        pub use crate::store::sqlite::read::{self, ReadCtx};
        pub use crate::store::sqlite::rebuild_rollups;
        pub use crate::store::sqlite::rollup::cache::MergeCache;
        pub use crate::store::sqlite::rollup::is_built;
        pub use crate::store::{ReadPath, Window};
    }
    pub use crate::time::Timestamp;
    pub mod clickhouse {
        pub use crate::store::clickhouse::error::ClickHouseError;
        pub use crate::store::clickhouse::schema::expected_tables;
        pub use crate::store::clickhouse::{Client, Connection};
        pub use crate::store::{FailureKind, StoreError};
    }
}

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
