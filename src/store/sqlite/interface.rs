//! The SQLite backend behind the store interface (`crate::store::interface`):
//! [`SqliteStore`] as a [`Store`], a read transaction on a reader connection
//! as a [`Snapshot`], the finaliser's connection as a [`PendingSource`], and
//! SQLite's errors wrapped into the backend-neutral [`StoreError`].

use std::path::Path;
use std::time::Instant;

use futures::future::BoxFuture;
use rusqlite::Connection;
use uuid::Uuid;

use super::pending::{PendingReader, PendingRows, TraceId};
use super::read::{self, ReadCtx, TrendingQuery};
use super::{SqliteStore, assistants, backup, timeseries};
use crate::metrics::models::*;
use crate::metrics::timeseries::Timeseries;
use crate::metrics::utilization::Status as UtilizationStatus;
use crate::store::interface::*;
use crate::store::{
    AppendOutcome, BackendError, Batch, FailureKind, PendingSource, ReadOptions, Snapshot, Store,
    StoreError, Window,
};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(BackendError::new(failure_kind(&e), e))
    }
}

/// Which of SQLite's failures say "come back later", "stopped at the
/// deadline" or "damaged".
fn failure_kind(e: &rusqlite::Error) -> FailureKind {
    use rusqlite::ErrorCode as Code;
    let rusqlite::Error::SqliteFailure(e, _) = e else {
        return FailureKind::Other;
    };
    match e.code {
        Code::DiskFull
        | Code::DatabaseBusy
        | Code::DatabaseLocked
        | Code::ReadOnly
        | Code::CannotOpen
        | Code::SystemIoFailure => FailureKind::Unavailable,
        Code::OperationInterrupted => FailureKind::Interrupted,
        Code::DatabaseCorrupt | Code::NotADatabase => FailureKind::Corrupt,
        _ => FailureKind::Other,
    }
}

impl Store for SqliteStore {
    fn append(&self, batch: Batch) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        Box::pin(SqliteStore::append(self, batch))
    }

    fn append_spans(&self, append: SpanAppend) -> BoxFuture<'_, Result<SpanOutcome, StoreError>> {
        Box::pin(SqliteStore::append_spans(self, append))
    }

    fn finalize_traces(
        &self,
        traces: Vec<Finalization>,
    ) -> BoxFuture<'_, Result<Vec<FinalOutcome>, StoreError>> {
        Box::pin(SqliteStore::finalize_traces(self, traces))
    }

    fn pending(&self) -> &PendingIndex {
        SqliteStore::pending(self)
    }

    fn pending_reader(&self) -> Result<Box<dyn PendingSource>, StoreError> {
        Ok(Box::new(SqliteStore::pending_reader(self)?))
    }

    fn read(
        &self,
        lane: Lane,
        options: ReadOptions,
        work: ReadWork,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let ctx = ReadCtx {
            path: options.path,
            cache: self.merge_cache(),
        };
        Box::pin(self.read_in(lane, move |conn| {
            in_view(conn, &ctx, options.deadline, |view| {
                work(view);
                Ok(())
            })
        }))
    }

    fn data_version(&self) -> u64 {
        SqliteStore::data_version(self)
    }

    fn readers_have_room(&self, n: usize) -> bool {
        SqliteStore::readers_have_room(self, n)
    }

    fn reprice(&self, request: RepriceRequest) -> BoxFuture<'_, Result<RepriceReport, StoreError>> {
        Box::pin(SqliteStore::reprice(self, request))
    }

    fn reprice_status(&self) -> RepriceStatus {
        SqliteStore::reprice_status(self)
    }

    fn erase_user(&self, user: String) -> BoxFuture<'_, Result<Option<EraseReport>, StoreError>> {
        Box::pin(SqliteStore::erase_user(self, user))
    }

    fn retain_batch(
        &self,
        cutoff: i64,
        limit: usize,
        cursor: RetentionCursor,
    ) -> BoxFuture<'_, Result<RetainBatch, StoreError>> {
        Box::pin(SqliteStore::retain_batch(self, cutoff, limit, cursor))
    }

    fn backup(&self, to: &Path) -> Result<CopyReport, StoreError> {
        let data_dir = self.path().parent().unwrap_or(Path::new("."));
        backup::backup(data_dir, to, false, &mut |_, _| {})
    }

    fn readiness(&self) -> Result<(), String> {
        SqliteStore::readiness(self)
    }

    fn write_fault(&self) -> Option<String> {
        SqliteStore::write_fault(self)
    }

    fn queued_events(&self) -> usize {
        SqliteStore::queued_events(self)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(SqliteStore::close(self))
    }
}

/// Runs `f` in one read transaction of `conn`, its SQL interrupted once
/// `deadline` passes so that a timed-out read stops working instead of
/// finishing unseen.
pub(crate) fn in_view<T>(
    conn: &Connection,
    ctx: &ReadCtx,
    deadline: Option<Instant>,
    f: impl FnOnce(&SqliteSnapshot<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let _interrupt = deadline.map(|deadline| Interrupt::set(conn, deadline));
    let tx = conn.unchecked_transaction()?;
    f(&SqliteSnapshot { conn: &tx, ctx })
}

/// The progress handler that interrupts a connection's SQL after a deadline,
/// removed when dropped (also when a read panics, so the reader's next
/// reads are not interrupted by a deadline of the past).
struct Interrupt<'c>(&'c Connection);

impl<'c> Interrupt<'c> {
    fn set(conn: &'c Connection, deadline: Instant) -> Self {
        conn.progress_handler(10_000, Some(move || Instant::now() > deadline));
        Self(conn)
    }
}

impl Drop for Interrupt<'_> {
    fn drop(&mut self) {
        self.0.progress_handler(0, None::<fn() -> bool>);
    }
}

/// One read transaction of a reader connection, with the read path.
pub(crate) struct SqliteSnapshot<'a> {
    pub(crate) conn: &'a Connection,
    ctx: &'a ReadCtx,
}

impl Snapshot for SqliteSnapshot<'_> {
    fn pin(&self) -> Result<(), StoreError> {
        // A read transaction takes its snapshot at its first read.
        self.conn
            .query_row("SELECT count(*) FROM meta", [], |_| Ok(()))?;
        Ok(())
    }

    fn ttft(&self, w: &Window, hours: i64) -> Result<Option<TtftPercentiles>, StoreError> {
        read::ttft(self.conn, w, self.ctx, hours)
    }

    fn steps(&self, w: &Window) -> Result<Vec<StepBreakdown>, StoreError> {
        read::steps(self.conn, w, self.ctx)
    }

    fn cache(&self, w: &Window, hours: i64) -> Result<Option<CacheMetrics>, StoreError> {
        read::cache(self.conn, w, self.ctx, hours)
    }

    fn sessions(&self, w: &Window) -> Result<Vec<SessionDistribution>, StoreError> {
        read::sessions(self.conn, w, self.ctx)
    }

    fn trending(&self, q: &TrendingQuery) -> Result<Vec<TrendingTopic>, StoreError> {
        read::trending(self.conn, q, self.ctx)
    }

    fn diversity(
        &self,
        assistant: Option<Uuid>,
        days: Option<i64>,
        now: i64,
    ) -> Result<Option<TopicDiversity>, StoreError> {
        read::diversity(self.conn, assistant, days, now, self.ctx)
    }

    fn costs(&self, w: &Window) -> Result<Vec<AssistantCost>, StoreError> {
        read::costs(self.conn, w, self.ctx)
    }

    fn utilization(
        &self,
        w: &Window,
        status: Option<UtilizationStatus>,
        limit: usize,
    ) -> Result<Vec<DocumentUtilization>, StoreError> {
        read::utilization(self.conn, w, self.ctx, status, limit)
    }

    fn cold_documents(&self, w: &Window) -> Result<u64, StoreError> {
        read::cold_documents(self.conn, w, self.ctx)
    }

    fn users(&self, w: &Window, limit: usize) -> Result<Vec<UserStat>, StoreError> {
        read::users(self.conn, w, self.ctx, limit)
    }

    fn reranking(&self, w: &Window) -> Result<Option<RerankingImpact>, StoreError> {
        read::reranking(self.conn, w, self.ctx)
    }

    fn sync(&self, w: &Window) -> Result<Vec<ConnectorSyncRate>, StoreError> {
        read::sync(self.conn, w, self.ctx)
    }

    fn freshness(&self, now: i64) -> Result<Vec<DocumentFreshness>, StoreError> {
        read::freshness(self.conn, now)
    }

    fn timeseries(&self, w: &Window, bucket_us: i64, hours: i64) -> Result<Timeseries, StoreError> {
        timeseries::timeseries(self.conn, w, bucket_us, hours)
    }

    fn assistants(&self) -> Result<Vec<AssistantSummary>, StoreError> {
        assistants::assistants(self.conn)
    }

    fn unpriced_models(&self) -> Result<Vec<UnpricedModel>, StoreError> {
        read::unpriced_models(self.conn)
    }
}

impl PendingSource for PendingReader {
    fn rows(&self, trace: &TraceId) -> Result<Option<PendingRows>, StoreError> {
        PendingReader::rows(self, trace)
    }

    fn assistant_registered(&self, id: Uuid) -> Result<bool, StoreError> {
        PendingReader::assistant_registered(self, id)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::ReadPath;

    /// A query that counts for ever, until its deadline interrupts it.
    fn endless(conn: &Connection) -> Result<i64, StoreError> {
        let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)
                   SELECT count(*) FROM c";
        Ok(conn.query_row(sql, [], |r| r.get(0))?)
    }

    #[test]
    fn a_view_of_slow_reads_ends_by_its_one_deadline() {
        // Arrange: twelve reads that never finish, 300 ms for them all.
        let conn = Connection::open_in_memory().unwrap();
        let ctx = ReadCtx {
            path: ReadPath::Rollups,
            cache: std::sync::Arc::new(super::super::rollup::cache::MergeCache::new()),
        };
        let started = Instant::now();
        let deadline = started + Duration::from_millis(300);

        // Act
        let results = in_view(&conn, &ctx, Some(deadline), |view| {
            Ok((0..12).map(|_| endless(view.conn)).collect::<Vec<_>>())
        })
        .unwrap();
        let elapsed = started.elapsed();
        let after = bounded_count(&conn);

        // Assert
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(e) if e.is_interrupted())),
            "{results:?}"
        );
        assert!(elapsed < Duration::from_millis(800), "took {elapsed:?}");
        assert_eq!(after, 1000, "the deadline was removed with the view");
    }

    /// A bounded count on `conn`, with no view around it.
    fn bounded_count(conn: &Connection) -> i64 {
        let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)
                   SELECT count(*) FROM c";
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn sqlite_failures_keep_their_kind_behind_the_neutral_error() {
        let failure = |code| {
            StoreError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        assert!(failure(rusqlite::ffi::SQLITE_FULL).is_unavailable());
        assert!(failure(rusqlite::ffi::SQLITE_BUSY).is_unavailable());
        assert!(failure(rusqlite::ffi::SQLITE_INTERRUPT).is_interrupted());
        assert!(!failure(rusqlite::ffi::SQLITE_INTERRUPT).is_unavailable());
        assert!(!failure(rusqlite::ffi::SQLITE_CONSTRAINT).is_unavailable());
        assert_eq!(
            failure(rusqlite::ffi::SQLITE_FULL).to_string(),
            format!(
                "storage error: {}",
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                    None
                )
            )
        );
    }
}
