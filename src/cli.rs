//! The command line: `serve`, `demo`, `import`, `bench`, `reprice`,
//! `rebuild-rollups`. Parsing only; each
//! command's work lives in its own module.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::ServerArgs;

#[derive(Debug, Parser)]
#[command(
    name = "ragpulse",
    version,
    about = "Analytics server for RAG assistant platforms"
)]
pub struct Cli {
    /// Config file (TOML); default ./ragpulse.toml when present
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
    /// Load an NDJSON file of events into a data directory (same validation as the API)
    Import(ImportArgs),
    /// Measure ingest throughput and /advanced latency on a synthetic dataset
    Bench(BenchArgs),
    /// Recompute stored catalogue costs after a price change (client costs are kept)
    Reprice(RepriceArgs),
    /// Recompute the hourly and daily rollups from the stored events (after an
    /// upgrade, or to repair them); the server must be stopped
    RebuildRollups(RebuildRollupsArgs),
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
pub struct DemoArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Days of synthetic history to generate
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// Interactions per day of history
    #[arg(long, default_value_t = 2_000)]
    pub per_day: u32,
    /// Live synthetic interactions per second after the history (0 = none)
    #[arg(long, default_value_t = 2.0)]
    pub live_rate: f64,
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
    /// Keep the large store here; an existing complete one is reused
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
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
