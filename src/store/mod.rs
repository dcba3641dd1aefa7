//! Persistence behind a narrow trait: append validated event batches, and fold
//! the events of a window into metric states. SQLite is the embedded backend
//! (`sqlite`); another backend implements the same trait in its own module.

pub mod sqlite;

use uuid::Uuid;

use crate::ingest::event::Event;

/// A time range `(from, to]` in microseconds, optionally of one assistant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub from_exclusive: i64,
    pub to_inclusive: i64,
    pub assistant: Option<Uuid>,
}

impl Window {
    /// The last `length_us` before `now`: `now - length < ts <= now`.
    pub fn last(now: i64, length_us: i64, assistant: Option<Uuid>) -> Self {
        Self {
            from_exclusive: now.saturating_sub(length_us),
            to_inclusive: now,
            assistant,
        }
    }

    /// Everything up to `now`.
    pub fn all_time(now: i64, assistant: Option<Uuid>) -> Self {
        Self {
            from_exclusive: i64::MIN,
            to_inclusive: now,
            assistant,
        }
    }
}

/// How a window is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadPath {
    /// Whole buckets from rollups (when the store has them), raw rows for the rest.
    Rollups,
    /// Every row of the window: the reference the rollups must equal.
    Scan,
}

/// The events of one request, each with its position in the request.
#[derive(Debug)]
pub struct Batch {
    pub events: Vec<(usize, Event)>,
}

/// What the store did with one batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AppendOutcome {
    pub accepted: usize,
    pub duplicates: usize,
    /// Events the store refused (index, message); the rest of the batch is kept.
    pub rejected: Vec<(usize, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the write queue is full")]
    QueueFull,
    #[error("the store is shutting down")]
    ShuttingDown,
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Open(String),
    #[error("a read task failed: {0}")]
    Task(String),
    /// Every reader is busy and the reads waiting for them fill the queue.
    #[error("the readers are busy: too many reads are waiting; retry shortly")]
    ReadersBusy,
    /// A reprice is already running (one at a time).
    #[error("a reprice is already running; follow it at GET /api/v1/pricing/reprice")]
    RepriceRunning,
    /// The writer thread ended (a bug): nothing can be stored until a restart.
    #[error("the writer thread stopped; restart the server")]
    WriterStopped,
    /// The group this batch was committed with failed and was rolled back.
    #[error("the events could not be committed to storage")]
    Commit { unavailable: bool },
}

impl StoreError {
    /// Failures that say "come back later" rather than "this is broken".
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::QueueFull
            | StoreError::ShuttingDown
            | StoreError::ReadersBusy
            | StoreError::WriterStopped => true,
            StoreError::Commit { unavailable } => *unavailable,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::SystemIoFailure
            ),
            _ => false,
        }
    }
}
