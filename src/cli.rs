//! The command line: `serve`, `demo`, `import`, `bench`, `reprice`,
//! `rebuild-rollups`, `backup`, `restore`, `export`, `erase-user`, `migrate`. Parsing only; each
//! command's work lives in its own module.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::ServerArgs;
use crate::demo::questions::QuestionMix;

#[derive(Debug, Parser)]
#[command(
    name = "ragpulse",
    version,
    about = "Analytics server for RAG assistant platforms",
    after_help = "Every option, environment variable and config-file key: docs/configuration.md"
)]
pub struct Cli {
    /// Config file (TOML) of server settings, read by serve and demo, and by
    /// the offline commands (import, reprice, rebuild-rollups, backup, restore,
    /// export) for the settings they share with the server (bench ignores it)
    /// [default: ./ragpulse.toml when present]
    #[arg(long, global = true, env = "RAGPULSE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server
    Serve(ServerArgs),
    /// Run the server on synthetic history and live synthetic traffic
    Demo(DemoArgs),
    /// Load an NDJSON file of events into a data directory (same validation as
    /// the API); the server must be stopped
    Import(ImportArgs),
    /// Measure ingest throughput and /advanced latency on a synthetic dataset
    Bench(BenchArgs),
    /// Recompute stored catalogue costs after a price change (client costs are
    /// kept); the server must be stopped (POST /api/v1/pricing/reprice reprices
    /// on a running one)
    Reprice(RepriceArgs),
    /// Recompute the hourly and daily rollups from the stored events (after an
    /// upgrade, or to repair them); the server must be stopped
    RebuildRollups(RebuildRollupsArgs),
    /// Copy the store into one file while the server runs and ingests (a
    /// consistent snapshot of every event stored before it started)
    Backup(BackupArgs),
    /// Make a backup file the store of a data directory, after checking it;
    /// the server must be stopped
    Restore(RestoreArgs),
    /// Write the stored events as NDJSON in the ingest format (for import into
    /// another store); runs beside the server
    Export(ExportArgs),
    /// Erase a user's data: their interactions, the question texts only they
    /// asked and their name and e-mail; every metric is recomputed without
    /// them; the server must be stopped (DELETE /api/v1/users/{user_id}
    /// erases on a running one)
    EraseUser(EraseUserArgs),
    /// Create or upgrade the ClickHouse backend's schema on every node of a
    /// cluster; running it again changes nothing
    Migrate(MigrateArgs),
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
}

/// Where the ClickHouse cluster is and how to log in.
#[derive(Debug, Clone, clap::Args)]
pub struct ClickHouseArgs {
    /// HTTP URL of every ClickHouse node, comma-separated
    /// (http://host:8123,http://host2:8123)
    #[arg(
        long = "clickhouse-url",
        env = "RAGPULSE_CLICKHOUSE_URL",
        value_delimiter = ',',
        required = true
    )]
    pub urls: Vec<String>,
    /// Database of ragpulse's tables on every node (created when missing)
    #[arg(
        long,
        env = "RAGPULSE_CLICKHOUSE_DATABASE",
        value_name = "DB",
        default_value = "ragpulse"
    )]
    pub clickhouse_database: String,
    /// Cluster of the nodes' remote_servers that the Distributed tables span
    #[arg(
        long,
        env = "RAGPULSE_CLICKHOUSE_CLUSTER",
        value_name = "NAME",
        default_value = "ragpulse"
    )]
    pub clickhouse_cluster: String,
    /// ClickHouse user [default: ClickHouse's default user]
    #[arg(long, env = "RAGPULSE_CLICKHOUSE_USER", value_name = "USER")]
    pub clickhouse_user: Option<String>,
    /// ClickHouse password [default: none]
    #[arg(
        long,
        env = "RAGPULSE_CLICKHOUSE_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub clickhouse_password: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Data directory of the store to copy [default: ./ragpulse-data]
    #[arg(long, env = "RAGPULSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// File to write (written under a temporary name, renamed when complete)
    #[arg(long)]
    pub to: PathBuf,
    /// Replace the file when it exists
    #[arg(long)]
    pub force: bool,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Backup file (from `ragpulse backup` or POST /api/v1/admin/backup)
    #[arg(long)]
    pub from: PathBuf,
    /// Data directory to restore into [default: ./ragpulse-data]
    #[arg(long, env = "RAGPULSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Replace the store of a data directory that is not empty
    #[arg(long)]
    pub force: bool,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Data directory [default: ./ragpulse-data]
    #[arg(long, env = "RAGPULSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Interactions and syncs from this date (YYYY-MM-DD, UTC) or RFC 3339 time on
    #[arg(long)]
    pub since: Option<String>,
    /// Interactions and syncs before this date (YYYY-MM-DD, UTC) or RFC 3339 time
    #[arg(long)]
    pub until: Option<String>,
    /// Only this assistant's interactions, its registry entry and its users
    #[arg(long)]
    pub assistant: Option<uuid::Uuid>,
    /// File to write [default: standard output]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct EraseUserArgs {
    /// The user's id, as sent in events
    pub user_id: String,
    /// Data directory [default: ./ragpulse-data]
    #[arg(long, env = "RAGPULSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RebuildRollupsArgs {
    /// Data directory [default: ./ragpulse-data]
    #[arg(long, env = "RAGPULSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct RepriceArgs {
    /// Reprice interactions from this date (YYYY-MM-DD, UTC) or RFC 3339 time on
    #[arg(long)]
    pub since: String,
    /// Only this model (compared after name normalisation)
    #[arg(long)]
    pub model: Option<String>,
    /// Data directory [default: ./ragpulse-data]
    #[arg(long, env = "RAGPULSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML price file with the new prices, as for serve
    #[arg(long, env = "RAGPULSE_PRICING_FILE")]
    pub pricing_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[command(mut_arg("data_dir", |arg| arg.help(
    "Directory of the SQLite store and the generated token file; kept when given \
     [default: a temporary directory, removed on exit]"
)))]
pub struct DemoArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Days of synthetic history to generate
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// Interactions on a full day at the end of the history (60 % of that on
    /// its first day; busier in office hours, UTC)
    #[arg(long, default_value_t = 8_000)]
    pub per_day: u32,
    /// Live synthetic interactions per second after the history, 0 for none
    /// [default: the history's rate at this hour of the day]
    #[arg(long)]
    pub live_rate: Option<f64>,
    /// Seed of the random generator (same seed, same history)
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// NDJSON file of events, one per line (`-` for standard input)
    pub file: PathBuf,
    /// Data directory to load into [default: ./ragpulse-data]
    #[arg(long, env = "RAGPULSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML price file, as for serve
    #[arg(long, env = "RAGPULSE_PRICING_FILE")]
    pub pricing_file: Option<PathBuf>,
    /// Events per transaction
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
    /// Days in the past an interaction's timestamp or a sync's start may lie
    /// (raise it to load older history) [default: 400]
    #[arg(long)]
    pub max_event_age_days: Option<u32>,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Interactions in the dataset
    #[arg(long, default_value_t = 1_000_000)]
    pub interactions: u64,
    /// Days the dataset spans (ending now)
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Assistants in the dataset
    #[arg(long, default_value_t = 10)]
    pub assistants: u32,
    /// Events per ingest request
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Concurrent ingest clients
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Timed calls of /advanced per variant
    #[arg(long, default_value_t = 50)]
    pub calls: usize,
    /// Timed calls of /advanced per variant on the raw scan path (0 skips it)
    #[arg(long, default_value_t = 20)]
    pub scan_calls: usize,
    /// Data directory to build (a temporary one when absent; kept when given)
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Seed of the dataset generator
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Question mixes to run, side by side (comma-separated): realistic (a
    /// long tail asked once over recurring topics), unique (every question
    /// distinct, no labels or embeddings), repeated (60 fixed phrasings)
    #[arg(long, value_delimiter = ',', default_value = "realistic")]
    pub questions: Vec<QuestionMix>,
    /// Alternating rounds over the mixes (medians and ratios are printed)
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Another scenario instead of the ingest + /advanced one
    #[command(subcommand)]
    pub scenario: Option<BenchScenario>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchScenario {
    /// Live feed: many WebSocket clients on several scopes while ingest runs
    Live(LiveBenchArgs),
    /// Embedding-topic assignment cost as the number of topics grows
    Topics(TopicBenchArgs),
    /// Rollups: ingest with and without them, then /advanced from rollups and
    /// from the raw scan, side by side, on a large store
    Rollups(RollupBenchArgs),
    /// OTLP/HTTP trace ingestion: LlamaIndex-shaped protobuf exports from
    /// concurrent clients; spans accepted and traces finalised per second
    Otlp(OtlpBenchArgs),
    /// Ingest latency while a reprice of the whole history runs, against none
    Reprice(RepriceBenchArgs),
    /// The cold-document listing on a store of many documents
    Cold(ColdBenchArgs),
    /// The RAG series of /metrics: ingest with them on and off, scrape time,
    /// and (with --store) what they add to a start
    Prometheus(PrometheusBenchArgs),
    /// Export rate, and backup time with the ingest rate while a backup runs
    /// against the rate without one
    Backup(BackupBenchArgs),
    /// Erasure of one user in a large store, and ingest while retention
    /// deletes the old history
    Lifecycle(LifecycleBenchArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackupBenchArgs {
    /// Interactions of the store
    #[arg(long, default_value_t = 1_000_000)]
    pub interactions: u64,
    /// Days the store spans (ending now)
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Concurrent ingest clients
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Interactions per ingest batch
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Seconds of each half of a round (ingest alone, then during backups)
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Alternating rounds (ingest alone, then during backups back to back)
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LifecycleBenchArgs {
    /// Interactions of the history
    #[arg(long, default_value_t = 1_000_000)]
    pub interactions: u64,
    /// Days the history spans (ending now)
    #[arg(long, default_value_t = 60)]
    pub days: u32,
    /// Interactions of the user erased, spread over the history
    #[arg(long, default_value_t = 100_000)]
    pub user_interactions: u64,
    /// Retention: the history older than this many days is deleted
    #[arg(long, default_value_t = 30)]
    pub retention_days: u32,
    /// Concurrent ingest clients
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Interactions per ingest batch
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Seconds of ingest before and after the retention run, each
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub seconds: std::time::Duration,
}

#[derive(Debug, Clone, clap::Args)]
pub struct OtlpBenchArgs {
    /// Seconds the clients send
    #[arg(long, default_value_t = 45)]
    pub seconds: u64,
    /// Concurrent exporting clients
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Traces (of 12 spans) per export request
    #[arg(long, default_value_t = 40)]
    pub traces_per_request: usize,
    /// The server's settle period, seconds
    #[arg(long, default_value_t = 15.0)]
    pub settle: f64,
    /// Distinct request templates the clients cycle through
    #[arg(long, default_value_t = 32)]
    pub templates: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RepriceBenchArgs {
    /// Interactions of the history
    #[arg(long, default_value_t = 365_000)]
    pub interactions: u64,
    /// Days the history spans (ending now)
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Concurrent ingest clients
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Interactions per ingest batch
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Seconds of ingest without a reprice, per round
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub seconds: std::time::Duration,
    /// Alternating rounds (without, then during a reprice)
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ColdBenchArgs {
    /// Registered documents
    #[arg(long, default_value_t = 500_000)]
    pub documents: u64,
    /// Interactions over 30 days, retrieving some of the documents
    #[arg(long, default_value_t = 100_000)]
    pub interactions: u64,
    /// Timed calls (after two warm-up calls)
    #[arg(long, default_value_t = 20)]
    pub calls: usize,
}

fn seconds(text: &str) -> Result<std::time::Duration, String> {
    text.parse::<u64>()
        .map(std::time::Duration::from_secs)
        .map_err(|e| format!("{text:?} is not a number of seconds: {e}"))
}

#[derive(Debug, Clone, clap::Args)]
pub struct PrometheusBenchArgs {
    /// Interactions of each ingest round (the core bench's dataset, over 1 day)
    #[arg(long, default_value_t = 200_000)]
    pub interactions: u64,
    /// Assistants of the ingest dataset
    #[arg(long, default_value_t = 10)]
    pub assistants: u32,
    /// Alternating rounds of the ingest comparison (the medians are reported)
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Events per ingest request
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Concurrent ingest clients
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Assistants of the scrape store (each uses every model)
    #[arg(long, default_value_t = 50)]
    pub scrape_assistants: usize,
    /// Models of the scrape store
    #[arg(long, default_value_t = 20)]
    pub scrape_models: usize,
    /// Connectors of the scrape store
    #[arg(long, default_value_t = 20)]
    pub scrape_connectors: usize,
    /// Timed scrapes of /metrics
    #[arg(long, default_value_t = 200)]
    pub scrapes: usize,
    /// A data directory whose start cost is measured (read-only); built
    /// first with --store-interactions when it holds no complete store
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Interactions of the --store to build (over 90 days)
    #[arg(long, default_value_t = 10_000_000)]
    pub store_interactions: u64,
    /// Seed of the dataset generator
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RollupBenchArgs {
    /// Interactions in the large store
    #[arg(long, default_value_t = 10_000_000)]
    pub interactions: u64,
    /// Days the large store spans (ending now)
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    /// Assistants in the dataset
    #[arg(long, default_value_t = 10)]
    pub assistants: u32,
    /// Interactions of the ingest comparison (with / without rollups)
    #[arg(long, default_value_t = 1_000_000)]
    pub compare: u64,
    /// Days the ingest comparison spans, ending now (1: live traffic; more: a backfill)
    #[arg(long, default_value_t = 1)]
    pub compare_days: u32,
    /// Alternating rounds of the ingest comparison (the median is reported)
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Timed /advanced calls per variant from rollups
    #[arg(long, default_value_t = 40)]
    pub calls: usize,
    /// Timed /advanced calls per variant from the raw scan (slow)
    #[arg(long, default_value_t = 3)]
    pub scan_calls: usize,
    /// Concurrent ingest tasks
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Events per ingest batch
    #[arg(long, default_value_t = 2_000)]
    pub batch: usize,
    /// Keep the large store here; an existing complete one of the same mix is reused
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Question mix: realistic, unique or repeated
    #[arg(long, value_enum, default_value_t = QuestionMix::Realistic)]
    pub questions: QuestionMix,
    /// Seed of the dataset generator
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LiveBenchArgs {
    /// Concurrent WebSocket clients
    #[arg(long, default_value_t = 500)]
    pub clients: usize,
    /// Scopes the clients spread over (all assistants, and assistants 1..)
    #[arg(long, default_value_t = 5)]
    pub scopes: usize,
    /// Seconds the clients listen
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Broadcast interval of the server, seconds
    #[arg(long, default_value_t = 1)]
    pub interval: u64,
    /// Interactions stored before the clients connect
    #[arg(long, default_value_t = 100_000)]
    pub history: u64,
    /// Concurrent ingest clients running while the clients listen
    #[arg(long, default_value_t = 4)]
    pub ingest_clients: usize,
    /// Question mix of the history and the load: realistic, unique (each use
    /// of a load batch asks new questions) or repeated
    #[arg(long, value_enum, default_value_t = QuestionMix::Realistic)]
    pub questions: QuestionMix,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TopicBenchArgs {
    /// Embedding dimensions
    #[arg(long, default_value_t = 768)]
    pub dims: usize,
    /// Topic counts per assistant to measure (comma-separated)
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    pub topics: Vec<usize>,
    /// Assignments timed at each size
    #[arg(long, default_value_t = 2_000)]
    pub assignments: usize,
}
