//! The backend-neutral store interface: what ingest, the OTLP finaliser,
//! retention, erasure, pricing, the analytics service and the commands ask of
//! storage. A backend implements [`Store`] (appends, writer jobs, readiness)
//! and [`Snapshot`] (the reads of one consistent view, each returning a
//! metric's finished answer, folded with the states of `crate::metrics`).
//! Nothing here names a database driver or hands out a connection: a
//! backend's connections stay inside its own module. The plain data types of
//! the writer's jobs and of pending traces are defined beside the SQLite code
//! that fills them and re-exported here, so callers name them from here.

use std::path::Path;
use std::time::Instant;

use futures::future::BoxFuture;
use uuid::Uuid;

use super::{AppendOutcome, Batch, ReadPath, StoreError, Window};
use crate::metrics::models::*;
use crate::metrics::timeseries::Timeseries;
use crate::metrics::utilization::Status as UtilizationStatus;

pub use super::sqlite::backup::CopyReport;
pub use super::sqlite::erase::EraseReport;
pub use super::sqlite::pending::{
    FinalOutcome, Finalization, PendingIndex, PendingRows, PendingStats, SpanAppend, SpanGroup,
    SpanOutcome, TraceId,
};
pub use super::sqlite::read::TrendingQuery;
pub use super::sqlite::reprice::{RepriceReport, RepriceRequest, RepriceState, RepriceStatus};
pub use super::sqlite::retention::{
    Cursor as RetentionCursor, Phase as RetentionPhase, RetainBatch,
};

/// Which readers run a read: a backend keeps the live feed's bounded reads
/// apart from arbitrary dashboard reads, so neither waits behind the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// HTTP analytics: any number of requests, any window, so their threads
    /// run 10 below the writer; under contention Linux gives the writer about
    /// ten times their share of a core.
    Dashboard,
    /// Live snapshots: one computation at a time (scopes take turns), each a
    /// few milliseconds of rollups, so their bounded CPU runs at the request
    /// threads' priority, above the writer. Below it, a 25 ms computation took
    /// 100 ms and more on a machine kept busy by ingest, which is what a live
    /// feed's delivery latency cannot afford.
    Live,
}

/// A read handed to a reader: it gets one consistent view of the store.
pub type ReadWork = Box<dyn FnOnce(&dyn Snapshot) + Send>;

/// How a read runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Rollups where the store keeps them, or every raw row.
    pub path: ReadPath,
    /// When the view's queries are stopped (they then fail with
    /// [`StoreError::is_interrupted`]).
    pub deadline: Option<Instant>,
}

/// Persistence as the rest of ragpulse sees it. Methods that wait return a
/// boxed future so that the store is usable as `Arc<dyn Store>`.
pub trait Store: Send + Sync {
    // Appends.

    /// Stores a validated batch; answered once it is durable.
    fn append(&self, batch: Batch) -> BoxFuture<'_, Result<AppendOutcome, StoreError>>;

    /// Stores the spans of one OTLP request as pending; refused at once when
    /// the write queue is full.
    fn append_spans(&self, append: SpanAppend) -> BoxFuture<'_, Result<SpanOutcome, StoreError>>;

    /// Stores the interactions of finalised traces and retires their spans.
    fn finalize_traces(
        &self,
        traces: Vec<Finalization>,
    ) -> BoxFuture<'_, Result<Vec<FinalOutcome>, StoreError>>;

    /// The pending OTLP traces (arrivals, spans, bytes), kept in memory.
    fn pending(&self) -> &PendingIndex;

    /// A reader of pending spans for the finaliser, on a connection of its own.
    fn pending_reader(&self) -> Result<Box<dyn PendingSource>, StoreError>;

    // Reads.

    /// Runs `work` on a reader of `lane` with one consistent view of the
    /// store, read as `options` say. An error is returned when no reader
    /// could run the work (queue full, reader failed, `work` panicked).
    fn read(
        &self,
        lane: Lane,
        options: ReadOptions,
        work: ReadWork,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Bumped after every commit: part of the cache key of computed answers.
    fn data_version(&self) -> u64;

    /// Whether `n` more dashboard reads would be queued now (an admission
    /// check for requests made of several reads).
    fn readers_have_room(&self, n: usize) -> bool;

    // Writer jobs.

    /// Recomputes catalogue costs, one day at a time; one reprice at a time.
    fn reprice(&self, request: RepriceRequest) -> BoxFuture<'_, Result<RepriceReport, StoreError>>;

    /// The running or last reprice.
    fn reprice_status(&self) -> RepriceStatus;

    /// Erases a user's data; `None` when the store knows no such user.
    fn erase_user(&self, user: String) -> BoxFuture<'_, Result<Option<EraseReport>, StoreError>>;

    /// One batch of a retention run: what is older than `cutoff`, from `cursor`.
    fn retain_batch(
        &self,
        cutoff: i64,
        limit: usize,
        cursor: RetentionCursor,
    ) -> BoxFuture<'_, Result<RetainBatch, StoreError>>;

    /// Copies the store into the file `to`, a consistent snapshot taken while
    /// ingest goes on (blocking: call it from a blocking task).
    fn backup(&self, to: &Path) -> Result<CopyReport, StoreError>;

    // Health and lifecycle.

    /// Whether the store can take reads and writes now, without I/O.
    fn readiness(&self) -> Result<(), String>;

    /// Why a write would fail right now, if it would (blocking).
    fn write_fault(&self) -> Option<String>;

    /// Events waiting for the writer right now.
    fn queued_events(&self) -> usize;

    /// Refuses new batches, lets the writer commit what it has, and waits for it.
    fn close(&self) -> BoxFuture<'_, ()>;
}

impl dyn Store {
    /// Runs `f` on a reader of `lane` (see [`Store::read`]) and returns its answer.
    pub async fn read_with<T, F>(
        &self,
        lane: Lane,
        options: ReadOptions,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Snapshot) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.read(
            lane,
            options,
            Box::new(move |view| {
                let _ = reply.send(f(view));
            }),
        )
        .await?;
        answer
            .await
            .map_err(|_| StoreError::Task("a read ended without an answer".to_string()))?
    }
}

/// The reads of one consistent view of the store, each a metric's finished
/// answer for a window. A backend folds its rows and rollups into the states
/// of `crate::metrics`, so every backend gives the same numbers.
pub trait Snapshot {
    /// Fixes the view now (a view may otherwise be taken at its first read).
    fn pin(&self) -> Result<(), StoreError>;
    fn ttft(&self, w: &Window, hours: i64) -> Result<Option<TtftPercentiles>, StoreError>;
    fn steps(&self, w: &Window) -> Result<Vec<StepBreakdown>, StoreError>;
    fn cache(&self, w: &Window, hours: i64) -> Result<Option<CacheMetrics>, StoreError>;
    fn sessions(&self, w: &Window) -> Result<Vec<SessionDistribution>, StoreError>;
    fn trending(&self, q: &TrendingQuery) -> Result<Vec<TrendingTopic>, StoreError>;
    fn diversity(
        &self,
        assistant: Option<Uuid>,
        days: Option<i64>,
        now: i64,
    ) -> Result<Option<TopicDiversity>, StoreError>;
    fn costs(&self, w: &Window) -> Result<Vec<AssistantCost>, StoreError>;
    fn utilization(
        &self,
        w: &Window,
        status: Option<UtilizationStatus>,
        limit: usize,
    ) -> Result<Vec<DocumentUtilization>, StoreError>;
    /// Current documents no interaction of the window retrieved, counted.
    fn cold_documents(&self, w: &Window) -> Result<u64, StoreError>;
    fn users(&self, w: &Window, limit: usize) -> Result<Vec<UserStat>, StoreError>;
    fn reranking(&self, w: &Window) -> Result<Option<RerankingImpact>, StoreError>;
    fn sync(&self, w: &Window) -> Result<Vec<ConnectorSyncRate>, StoreError>;
    fn freshness(&self, now: i64) -> Result<Vec<DocumentFreshness>, StoreError>;
    /// The window in buckets of `bucket_us`, from every raw row (exact percentiles).
    fn timeseries(&self, w: &Window, bucket_us: i64, hours: i64) -> Result<Timeseries, StoreError>;
    /// The assistants for the dashboard's selector.
    fn assistants(&self) -> Result<Vec<AssistantSummary>, StoreError>;
    /// Models stored with cost 0 because no price matched.
    fn unpriced_models(&self) -> Result<Vec<UnpricedModel>, StoreError>;
}

/// What the OTLP finaliser reads of pending traces.
pub trait PendingSource: Send {
    /// The rows of `trace` (their encoded facts) and the newest row's
    /// sequence number; `None` when nothing of it is pending.
    fn rows(&self, trace: &TraceId) -> Result<Option<PendingRows>, StoreError>;
    /// Whether the assistant is registered (an `assistant` event named it).
    fn assistant_registered(&self, id: Uuid) -> Result<bool, StoreError>;
}
