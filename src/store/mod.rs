//! Persistence behind one backend-neutral interface (`interface`): append
//! validated event batches, run the writer's jobs, and answer the reads of a
//! window with the metric states of `crate::metrics`. SQLite is the embedded
//! backend (`sqlite`); another backend implements the same traits in its own
//! module. `backend` opens one for the server and the commands: nothing else
//! outside `store` names a backend.

pub mod backend;
pub mod clickhouse;
pub mod interface;
#[cfg(test)]
mod layout;
pub mod sqlite;

pub use interface::{Lane, PendingSource, ReadOptions, Snapshot, Store};

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
    Backend(BackendError),
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
            StoreError::Backend(e) => e.kind == FailureKind::Unavailable,
            _ => false,
        }
    }

    /// A read stopped because its deadline passed (see [`Store::read`]).
    pub fn is_interrupted(&self) -> bool {
        matches!(self, StoreError::Backend(e) if e.kind == FailureKind::Interrupted)
    }
}

/// What kind of failure a backend's error is, as far as callers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Come back later: the disk is full or read-only, the store is locked
    /// or unreachable.
    Unavailable,
    /// The deadline of a read passed and its queries were stopped.
    Interrupted,
    /// The stored data is damaged.
    Corrupt,
    Other,
}

/// A backend's own error, kept opaque: callers see its message and its
/// [`FailureKind`], never the driver's error type.
#[derive(Debug)]
pub struct BackendError {
    pub kind: FailureKind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl BackendError {
    pub fn new(kind: FailureKind, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            kind,
            source: Box::new(source),
        }
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}
