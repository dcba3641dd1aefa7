//! Settings, layered: defaults < `ragpulse.toml` (`--config PATH`, else
//! `./ragpulse.toml` when present) < `RAGPULSE_*` environment < flags. clap
//! reads the last two; this module adds the file and the defaults and turns
//! the result into one validated [`Settings`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::ingest::decode::BodyLimits;
use crate::ingest::validate::EventLimits;
use crate::store::ReadPath;

/// Server options shared by `serve` and `demo`. Every field is optional here
/// so "not given" can fall through to the file and the defaults.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ServerArgs {
    /// Directory of the SQLite store and the generated token file [default: ./ragpulse-data]
    #[arg(long, env = "RAGPULSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:8080]
    #[arg(long, env = "RAGPULSE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Token for the analytics API (generated and stored in the data directory when absent)
    #[arg(long, env = "RAGPULSE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Token for POST /api/v1/ingest (generated when absent)
    #[arg(long, env = "RAGPULSE_INGEST_TOKEN", hide_env_values = true)]
    pub ingest_token: Option<String>,
    /// Seconds between live snapshots, at least 1 [default: 10]
    #[arg(long, env = "RAGPULSE_BROADCAST_INTERVAL")]
    pub broadcast_interval: Option<u64>,
    /// TOML price file whose entries add to or replace the built-in catalogue
    #[arg(long, env = "RAGPULSE_PRICING_FILE")]
    pub pricing_file: Option<PathBuf>,
    /// Seconds one metric may take before it is reported degraded [default: 10]
    #[arg(long, env = "RAGPULSE_METRIC_TIMEOUT")]
    pub metric_timeout: Option<u64>,
    /// Origins allowed by CORS (comma-separated); CORS is off when empty
    #[arg(long, env = "RAGPULSE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Log as JSON lines instead of human-readable text
    #[arg(long, env = "RAGPULSE_LOG_JSON", num_args = 0..=1, default_missing_value = "true")]
    pub log_json: Option<bool>,
    /// Largest ingest body after decompression, bytes [default: 16 MiB]
    #[arg(long, env = "RAGPULSE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most events in one ingest request [default: 10000]
    #[arg(long, env = "RAGPULSE_MAX_EVENTS")]
    pub max_events: Option<usize>,
    /// Events waiting for the writer before ingest answers 503 [default: 200000]
    #[arg(long, env = "RAGPULSE_MAX_QUEUED_EVENTS")]
    pub max_queued_events: Option<usize>,
    /// Cosine similarity from which a question joins an embedding topic [default: 0.90]
    #[arg(long, env = "RAGPULSE_TOPIC_THRESHOLD")]
    pub topic_threshold: Option<f32>,
    /// Most live (WebSocket + SSE) clients [default: 1000]
    #[arg(long, env = "RAGPULSE_MAX_LIVE_CLIENTS")]
    pub max_live_clients: Option<usize>,
    /// Keep hourly and daily rollups at ingest and answer windows from them;
    /// `false` scans raw events for every answer [default: true]
    #[arg(long, env = "RAGPULSE_ROLLUPS", num_args = 0..=1, default_missing_value = "true")]
    pub rollups: Option<bool>,
    /// How windows are read: `scan` ignores rollups (the reference path, for
    /// comparisons and diagnosis) [default: rollups]
    #[arg(long, hide = true, value_enum)]
    pub read_path: Option<ReadPath>,
}

impl ServerArgs {
    /// Fills every field not given here from `lower`.
    fn or(self, lower: ServerArgs) -> ServerArgs {
        ServerArgs {
            data_dir: self.data_dir.or(lower.data_dir),
            listen: self.listen.or(lower.listen),
            admin_token: self.admin_token.or(lower.admin_token),
            ingest_token: self.ingest_token.or(lower.ingest_token),
            broadcast_interval: self.broadcast_interval.or(lower.broadcast_interval),
            pricing_file: self.pricing_file.or(lower.pricing_file),
            metric_timeout: self.metric_timeout.or(lower.metric_timeout),
            cors_origins: self.cors_origins.or(lower.cors_origins),
            log_json: self.log_json.or(lower.log_json),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            max_events: self.max_events.or(lower.max_events),
            max_queued_events: self.max_queued_events.or(lower.max_queued_events),
            max_live_clients: self.max_live_clients.or(lower.max_live_clients),
            topic_threshold: self.topic_threshold.or(lower.topic_threshold),
            rollups: self.rollups.or(lower.rollups),
            read_path: self.read_path.or(lower.read_path),
        }
    }
}

/// The validated settings a server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub admin_token: Option<String>,
    pub ingest_token: Option<String>,
    pub broadcast_interval: Duration,
    pub pricing_file: Option<PathBuf>,
    pub metric_timeout: Duration,
    pub cors_origins: Vec<String>,
    pub log_json: bool,
    pub body_limits: BodyLimits,
    pub event_limits: EventLimits,
    pub max_queued_events: usize,
    pub max_live_clients: usize,
    pub topic_threshold: f32,
    /// Keep rollups at ingest.
    pub rollups: bool,
    /// How windows are read; the raw scan is the reference the benchmark compares with.
    pub read_path: ReadPath,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{0}")]
    Invalid(String),
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_TOPIC_THRESHOLD: f32 = 0.90;

impl Settings {
    /// Layers flags/environment (`args`) over the config file over the defaults.
    /// `config` is `--config`; without it `./ragpulse.toml` is read when present.
    pub fn load(args: ServerArgs, config: Option<&Path>) -> Result<Settings, ConfigError> {
        let file = match config {
            Some(path) => read_file(path)?,
            None if Path::new("ragpulse.toml").exists() => read_file(Path::new("ragpulse.toml"))?,
            None => ServerArgs::default(),
        };
        Settings::from_args(args.or(file))
    }

    pub fn from_args(a: ServerArgs) -> Result<Settings, ConfigError> {
        let broadcast = a.broadcast_interval.unwrap_or(10);
        if broadcast < 1 {
            return Err(ConfigError::Invalid(
                "broadcast interval must be at least 1 second".to_string(),
            ));
        }
        let metric_timeout = a.metric_timeout.unwrap_or(10);
        if metric_timeout < 1 {
            return Err(ConfigError::Invalid(
                "metric timeout must be at least 1 second".to_string(),
            ));
        }
        let topic_threshold = a.topic_threshold.unwrap_or(DEFAULT_TOPIC_THRESHOLD);
        if !(topic_threshold > 0.0 && topic_threshold <= 1.0) {
            return Err(ConfigError::Invalid(format!(
                "topic threshold must be a cosine similarity in (0, 1], got {topic_threshold}"
            )));
        }
        let defaults = BodyLimits::default();
        let listen = match a.listen {
            Some(listen) => listen,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("default listen address: {e}")))?,
        };
        for (name, token) in [("admin", &a.admin_token), ("ingest", &a.ingest_token)] {
            if token.as_ref().is_some_and(|t| t.trim().len() < 16) {
                return Err(ConfigError::Invalid(format!(
                    "the {name} token must be at least 16 characters; omit it to have a strong one generated"
                )));
            }
        }
        Ok(Settings {
            data_dir: a.data_dir.unwrap_or_else(|| PathBuf::from("ragpulse-data")),
            listen,
            admin_token: a.admin_token,
            ingest_token: a.ingest_token,
            broadcast_interval: Duration::from_secs(broadcast),
            pricing_file: a.pricing_file,
            metric_timeout: Duration::from_secs(metric_timeout),
            cors_origins: a.cors_origins.unwrap_or_default(),
            log_json: a.log_json.unwrap_or(false),
            body_limits: BodyLimits {
                max_body_bytes: a.max_body_bytes.unwrap_or(defaults.max_body_bytes),
                max_events: a.max_events.unwrap_or(defaults.max_events),
            },
            event_limits: EventLimits::default(),
            max_queued_events: a.max_queued_events.unwrap_or(200_000).max(1),
            max_live_clients: a.max_live_clients.unwrap_or(1_000),
            topic_threshold,
            rollups: a.rollups.unwrap_or(true),
            read_path: a.read_path.unwrap_or(ReadPath::Rollups),
        })
    }
}

fn read_file(path: &Path) -> Result<ServerArgs, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ragpulse.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\ndata_dir = \"/from/file\"\nbroadcast_interval = 3\n",
        )
        .unwrap();
        let flags = ServerArgs {
            data_dir: Some(PathBuf::from("/from/flag")),
            ..Default::default()
        };
        let s = Settings::load(flags, Some(&path)).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(s.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(s.broadcast_interval, Duration::from_secs(3));
        assert_eq!(s.metric_timeout, Duration::from_secs(10));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ragpulse.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = Settings::load(ServerArgs::default(), Some(&path))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        let zero = ServerArgs {
            broadcast_interval: Some(0),
            ..Default::default()
        };
        assert!(Settings::from_args(zero).is_err());
        let weak = ServerArgs {
            admin_token: Some("short".into()),
            ..Default::default()
        };
        assert!(
            Settings::from_args(weak)
                .unwrap_err()
                .to_string()
                .contains("16 characters")
        );
    }
}
