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
    /// Admin token: the analytics API, the dashboard, the live feed and pricing
    /// (at least 16 visible ASCII characters) [default: generated into
    /// DATA_DIR/tokens.json]
    #[arg(long, env = "RAGPULSE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Ingest token: POST /api/v1/ingest and POST /v1/traces (at least 16
    /// visible ASCII characters, not the admin token's) [default: generated
    /// into DATA_DIR/tokens.json]
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
    /// Origins allowed by CORS, comma-separated `scheme://host[:port]`, or `*`
    /// for any origin; CORS is off when empty
    #[arg(long, env = "RAGPULSE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Log as JSON lines instead of human-readable text [default: false]
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
    /// Memory for merged rollups of past hours and days kept between reads,
    /// MiB (0 keeps none) [default: 64]
    #[arg(long, env = "RAGPULSE_MERGE_CACHE_MIB")]
    pub merge_cache_mib: Option<usize>,
    /// Cosine similarity from which a question joins an embedding topic [default: 0.90]
    #[arg(long, env = "RAGPULSE_TOPIC_THRESHOLD")]
    pub topic_threshold: Option<f32>,
    /// Days in the past an interaction's timestamp or a sync's start may lie
    /// before the event is refused [default: 400]
    #[arg(long, env = "RAGPULSE_MAX_EVENT_AGE_DAYS")]
    pub max_event_age_days: Option<u32>,
    /// Most live (WebSocket + SSE) clients [default: 1000]
    #[arg(long, env = "RAGPULSE_MAX_LIVE_CLIENTS")]
    pub max_live_clients: Option<usize>,
    /// Keep hourly and daily rollups at ingest and answer windows from them;
    /// `false` scans raw events for every answer [default: true]
    #[arg(long, env = "RAGPULSE_ROLLUPS", num_args = 0..=1, default_missing_value = "true")]
    pub rollups: Option<bool>,
    /// OTLP: seconds without a new span after which a trace is complete
    /// (fractions allowed) [default: 15]
    #[arg(long, env = "RAGPULSE_OTLP_SETTLE")]
    pub otlp_settle: Option<f64>,
    /// OTLP: seconds a trace may stay pending before it is finalised anyway [default: 120]
    #[arg(long, env = "RAGPULSE_OTLP_MAX_HOLD")]
    pub otlp_max_hold: Option<f64>,
    /// OTLP: spans waiting for their trace to complete before exports are
    /// answered 429 [default: 2000000]
    #[arg(long, env = "RAGPULSE_OTLP_MAX_PENDING_SPANS")]
    pub otlp_max_pending_spans: Option<usize>,
    /// OTLP: spans of one trace at most; more are refused [default: 10000]
    #[arg(long, env = "RAGPULSE_OTLP_MAX_TRACE_SPANS")]
    pub otlp_max_trace_spans: Option<usize>,
    /// How windows are read: `scan` ignores rollups (the reference path, for
    /// comparisons and diagnosis) [default: rollups]
    #[arg(long, hide = true, value_enum)]
    pub read_path: Option<ReadPath>,
    /// Serve the RAG series (per assistant, model, step and connector) on
    /// /metrics; `false` keeps only ragpulse's own health series [default: true]
    #[arg(long, env = "RAGPULSE_RAG_METRICS", num_args = 0..=1, default_missing_value = "true")]
    pub rag_metrics: Option<bool>,
    /// Seconds between recomputations of the document, session and topic
    /// gauges of /metrics, at least 1 [default: 60]
    #[arg(long, env = "RAGPULSE_GAUGE_INTERVAL")]
    pub gauge_interval: Option<u64>,
    /// Directory POST /api/v1/admin/backup writes backups into; the endpoint
    /// answers 409 without it
    #[arg(long, env = "RAGPULSE_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Delete raw interactions (with their steps, documents and question
    /// texts) older than this many days, in the background; rollups keep
    /// answering longer windows [default: keep forever]
    #[arg(long, env = "RAGPULSE_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
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
            merge_cache_mib: self.merge_cache_mib.or(lower.merge_cache_mib),
            max_live_clients: self.max_live_clients.or(lower.max_live_clients),
            max_event_age_days: self.max_event_age_days.or(lower.max_event_age_days),
            topic_threshold: self.topic_threshold.or(lower.topic_threshold),
            rollups: self.rollups.or(lower.rollups),
            read_path: self.read_path.or(lower.read_path),
            otlp_settle: self.otlp_settle.or(lower.otlp_settle),
            otlp_max_hold: self.otlp_max_hold.or(lower.otlp_max_hold),
            otlp_max_pending_spans: self.otlp_max_pending_spans.or(lower.otlp_max_pending_spans),
            otlp_max_trace_spans: self.otlp_max_trace_spans.or(lower.otlp_max_trace_spans),
            rag_metrics: self.rag_metrics.or(lower.rag_metrics),
            gauge_interval: self.gauge_interval.or(lower.gauge_interval),
            backup_dir: self.backup_dir.or(lower.backup_dir),
            retention_days: self.retention_days.or(lower.retention_days),
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
    /// Byte budget of the merge cache of rollups.
    pub merge_cache_bytes: usize,
    pub max_live_clients: usize,
    pub topic_threshold: f32,
    /// Keep rollups at ingest.
    pub rollups: bool,
    /// How windows are read; the raw scan is the reference the benchmark compares with.
    pub read_path: ReadPath,
    /// OTLP trace ingestion.
    pub otlp: crate::otlp::OtlpSettings,
    /// Serve the RAG series on /metrics.
    pub rag_metrics: bool,
    /// Between recomputations of the window gauges of /metrics.
    pub gauge_interval: Duration,
    /// Where `POST /api/v1/admin/backup` writes; `None`: not configured.
    pub backup_dir: Option<PathBuf>,
    /// Raw interactions older than this many days are deleted; `None` keeps them.
    pub retention_days: Option<u32>,
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
/// The data directory when none is given, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "ragpulse-data";
pub const DEFAULT_TOPIC_THRESHOLD: f32 = 0.90;

impl Settings {
    /// Layers flags/environment (`args`) over the config file over the defaults.
    /// `config` is `--config`; without it `./ragpulse.toml` is read when present.
    pub fn load(args: ServerArgs, config: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::from_args(args.or(file_layer(config)?))
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
        let gauge_interval = a.gauge_interval.unwrap_or(60);
        if gauge_interval < 1 {
            return Err(ConfigError::Invalid(
                "gauge interval must be at least 1 second".to_string(),
            ));
        }
        let topic_threshold = a.topic_threshold.unwrap_or(DEFAULT_TOPIC_THRESHOLD);
        if !(topic_threshold > 0.0 && topic_threshold <= 1.0) {
            return Err(ConfigError::Invalid(format!(
                "topic threshold must be a cosine similarity in (0, 1], got {topic_threshold}"
            )));
        }
        let otlp = otlp_settings(&a)?;
        let defaults = BodyLimits::default();
        let listen = match a.listen {
            Some(listen) => listen,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("default listen address: {e}")))?,
        };
        let admin_token = a
            .admin_token
            .as_deref()
            .map(|t| token("admin", t))
            .transpose()?;
        let ingest_token = a
            .ingest_token
            .as_deref()
            .map(|t| token("ingest", t))
            .transpose()?;
        if admin_token.is_some() && admin_token == ingest_token {
            return Err(ConfigError::Invalid(SAME_TOKENS.to_string()));
        }
        let cors_origins = cors_origins(a.cors_origins.unwrap_or_default())?;
        Ok(Settings {
            data_dir: a
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            listen,
            admin_token,
            ingest_token,
            broadcast_interval: Duration::from_secs(broadcast),
            pricing_file: a.pricing_file,
            metric_timeout: Duration::from_secs(metric_timeout),
            cors_origins,
            log_json: a.log_json.unwrap_or(false),
            body_limits: BodyLimits {
                max_body_bytes: a.max_body_bytes.unwrap_or(defaults.max_body_bytes),
                max_events: a.max_events.unwrap_or(defaults.max_events),
            },
            event_limits: EventLimits {
                max_age_days: max_event_age_days(a.max_event_age_days)?,
                ..EventLimits::default()
            },
            max_queued_events: a.max_queued_events.unwrap_or(200_000).max(1),
            merge_cache_bytes: a
                .merge_cache_mib
                .map_or(crate::store::backend::DEFAULT_MERGE_CACHE_BYTES, |mib| {
                    mib.saturating_mul(1 << 20)
                }),
            max_live_clients: a.max_live_clients.unwrap_or(1_000),
            topic_threshold,
            rollups: a.rollups.unwrap_or(true),
            read_path: a.read_path.unwrap_or(ReadPath::Rollups),
            otlp,
            rag_metrics: a.rag_metrics.unwrap_or(true),
            gauge_interval: Duration::from_secs(gauge_interval),
            backup_dir: a.backup_dir,
            retention_days: retention_days(a.retention_days)?,
        })
    }
}

fn otlp_settings(a: &ServerArgs) -> Result<crate::otlp::OtlpSettings, ConfigError> {
    let defaults = crate::otlp::OtlpSettings::default();
    let seconds = |value: Option<f64>, default: Duration, name: &str| match value {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(ConfigError::Invalid(format!(
            "{name} must be seconds above 0 and at most 86400, got {s}"
        ))),
    };
    let settle = seconds(a.otlp_settle, defaults.settle, "otlp settle")?;
    let max_hold = seconds(a.otlp_max_hold, defaults.max_hold, "otlp max hold")?;
    if max_hold < settle {
        return Err(ConfigError::Invalid(format!(
            "otlp max hold ({} s) must be at least the settle period ({} s)",
            max_hold.as_secs_f64(),
            settle.as_secs_f64()
        )));
    }
    Ok(crate::otlp::OtlpSettings {
        settle,
        max_hold,
        max_pending_spans: a
            .otlp_max_pending_spans
            .unwrap_or(defaults.max_pending_spans)
            .max(1),
        max_trace_spans: a
            .otlp_max_trace_spans
            .unwrap_or(defaults.max_trace_spans)
            .max(1),
    })
}

/// `--retention-days`: at least one day (the current day's raw rows stay).
fn retention_days(given: Option<u32>) -> Result<Option<u32>, ConfigError> {
    match given {
        Some(0) => Err(ConfigError::Invalid(
            "--retention-days must be at least 1; omit it to keep every raw interaction"
                .to_string(),
        )),
        other => Ok(other),
    }
}

/// `--max-event-age-days`: at least one day.
pub fn max_event_age_days(given: Option<u32>) -> Result<u32, ConfigError> {
    match given {
        None => Ok(crate::ingest::validate::DEFAULT_MAX_EVENT_AGE_DAYS),
        Some(0) => Err(ConfigError::Invalid(
            "--max-event-age-days must be at least 1".to_string(),
        )),
        Some(days) => Ok(days),
    }
}

/// Why the same value cannot be both tokens.
pub const SAME_TOKENS: &str = "the admin and the ingest token are the same: every ingest client \
     would be an admin; give them different values";

/// A token as given, trimmed of surrounding white space (a secret read from a
/// file often ends in a newline, and no client sends one), then checked: at
/// least 16 characters, visible ASCII only (it travels in an HTTP header).
pub fn token(name: &str, given: &str) -> Result<String, ConfigError> {
    let token = given.trim();
    if token.len() < 16 {
        return Err(ConfigError::Invalid(format!(
            "the {name} token must be at least 16 characters; omit it to have a strong one generated"
        )));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::Invalid(format!(
            "the {name} token may hold visible ASCII characters only (no spaces or control characters)"
        )));
    }
    Ok(token.to_string())
}

/// The CORS origins, trimmed: `*` alone (any origin), or origins of the form
/// `scheme://host[:port]`. Anything else is refused here, at start, with the
/// value named, rather than dropped or failing later.
fn cors_origins(given: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let origins: Vec<String> = given
        .iter()
        .map(|o| o.trim().to_string())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.iter().any(|o| o == "*") {
        if origins.len() > 1 {
            return Err(ConfigError::Invalid(
                "--cors-origins: `*` allows every origin and cannot be combined with others"
                    .to_string(),
            ));
        }
        return Ok(origins);
    }
    for origin in &origins {
        if !is_origin(origin) {
            return Err(ConfigError::Invalid(format!(
                "--cors-origins: {origin:?} is not an origin; write scheme://host[:port] \
                 (for example https://dashboard.example.com), or `*` for any origin"
            )));
        }
    }
    Ok(origins)
}

/// `scheme://host[:port]`, nothing after the authority, printable ASCII.
fn is_origin(text: &str) -> bool {
    let Some((scheme, authority)) = text.split_once("://") else {
        return false;
    };
    let scheme_ok = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let authority_ok = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '?' | '#' | '*' | '@'));
    scheme_ok && authority_ok
}

/// The config file's layer: `config` (`--config`), else `./ragpulse.toml`
/// when present, else nothing.
fn file_layer(config: Option<&Path>) -> Result<ServerArgs, ConfigError> {
    match config {
        Some(path) => read_file(path),
        None if Path::new("ragpulse.toml").exists() => read_file(Path::new("ragpulse.toml")),
        None => Ok(ServerArgs::default()),
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
        assert_eq!(s.otlp.settle, Duration::from_secs(15));
    }

    #[test]
    fn the_otlp_settle_period_comes_from_the_file_or_a_flag_in_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ragpulse.toml");
        std::fs::write(&path, "otlp_settle = 2.5\notlp_max_hold = 30\n").unwrap();
        let s = Settings::load(ServerArgs::default(), Some(&path)).unwrap();
        assert_eq!(s.otlp.settle, Duration::from_millis(2_500));
        assert_eq!(s.otlp.max_hold, Duration::from_secs(30));
        let bad = ServerArgs {
            otlp_settle: Some(0.0),
            ..Default::default()
        };
        assert!(Settings::from_args(bad).is_err());
        let inverted = ServerArgs {
            otlp_settle: Some(60.0),
            otlp_max_hold: Some(10.0),
            ..Default::default()
        };
        assert!(Settings::from_args(inverted).is_err());
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
        for bad in [
            vec!["*", "https://a.example"],
            vec!["a.example"],
            vec!["https://a/b"],
        ] {
            let args = ServerArgs {
                cors_origins: Some(bad.iter().map(|o| o.to_string()).collect()),
                ..Default::default()
            };
            let err = Settings::from_args(args).unwrap_err().to_string();
            assert!(err.contains("--cors-origins"), "{bad:?}: {err}");
        }
        let same = ServerArgs {
            admin_token: Some("the-same-token-0123456789".into()),
            ingest_token: Some(" the-same-token-0123456789\n".into()),
            ..Default::default()
        };
        let err = Settings::from_args(same).unwrap_err().to_string();
        assert!(err.contains("are the same"), "{err}");
        let inner_space = ServerArgs {
            admin_token: Some("a token with spaces inside".into()),
            ..Default::default()
        };
        let err = Settings::from_args(inner_space).unwrap_err().to_string();
        assert!(err.contains("visible ASCII"), "{err}");
        let newline = ServerArgs {
            admin_token: Some("admin-token-0123456789\n".into()),
            ..Default::default()
        };
        let trimmed = Settings::from_args(newline).unwrap().admin_token;
        assert_eq!(trimmed.as_deref(), Some("admin-token-0123456789"));
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
