//! The embedded SQLite backend: one database file in the data directory, a
//! single writer thread (see `writer`) and a small pool of read connections
//! used from blocking tasks (see `read`).

pub mod assistants;
pub mod backup;
pub mod details;
pub mod erase;
pub mod export;
pub mod health;
pub mod interface;
pub mod lock;
pub mod pending;
mod pool;
pub mod read;
pub mod reprice;
pub mod retention;
pub mod rollup;
pub mod schema;
pub mod series;
#[cfg(test)]
mod tests;
pub mod timeseries;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::pricing::Catalogue;
use crate::store::{AppendOutcome, Batch, StoreError};
use crate::telemetry::Telemetry;
pub use pool::Lane;
use pool::Pool;
use reprice::{RepriceReport, RepriceRequest, RepriceState, RepriceStatus, Tally};
use writer::{EraseJob, Job, WriteRequest, Writer, WriterHooks};

/// Below this much free space on the data directory's file system the store
/// reports itself not ready: the next large batch may not fit in the WAL.
pub const MIN_FREE_BYTES: u64 = 8 * 1024 * 1024;
/// How long the write probe waits for the write lock (the writer's own
/// transactions last milliseconds; another process may hold it for ever).
const PROBE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How often the checkpointer copies the WAL back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

pub const DATABASE_FILE: &str = "ragpulse.db";
/// Reader threads: more than a couple per core only adds memory (every
/// connection has its own page cache) and contention.
const READERS: usize = 4;
/// Reader threads of live snapshots: one computation runs at a time, and its
/// metrics run side by side on these.
const LIVE_READERS: usize = 2;
/// Reads that may wait for a dashboard reader (an `/advanced` is twelve):
/// past this, reads are answered 503 at once instead of joining a queue
/// whose last reads would only time out.
pub const READ_QUEUE: usize = 256;
/// Reads that may wait for a live reader (one snapshot at a time runs).
const LIVE_READ_QUEUE: usize = 32;
/// Batches the writer channel holds; the event semaphore is the real bound.
const CHANNEL_BATCHES: usize = 1024;

/// How a store is opened.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// Events queued for the writer before ingest is refused.
    pub max_queued_events: usize,
    /// Cosine similarity from which a question joins an embedding topic.
    pub topic_threshold: f32,
    /// Keep rollups at ingest (rebuilt at open when missing). Without them every
    /// window is a raw scan.
    pub rollups: bool,
    /// Keep the Prometheus series of `telemetry::rag` (their state is rebuilt
    /// at open when missing, dropped when off).
    pub rag_series: bool,
    /// Byte budget of the merge cache of rollups (see `rollup::cache`).
    pub merge_cache_bytes: usize,
}

pub struct SqliteStore {
    path: PathBuf,
    sender: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    writer_thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Events queued or being written; a request that cannot get permits is refused.
    queued_events: Arc<Semaphore>,
    max_queued_events: usize,
    closing: AtomicBool,
    data_version: Arc<AtomicU64>,
    pub(crate) pool: Pool,
    live_pool: Pool,
    merge_cache: Arc<rollup::cache::MergeCache>,
    checkpointer: std::sync::Mutex<Option<Checkpointer>>,
    /// What the background integrity check found wrong, if anything.
    damaged: Arc<std::sync::Mutex<Option<String>>>,
    /// Pending OTLP traces (see `pending`).
    pending: Arc<pending::PendingIndex>,
    /// The data directory's lock, released by [`SqliteStore::close`].
    dir_lock: std::sync::Mutex<Option<lock::DirLock>>,
    /// The writer thread's current job, for readiness.
    heartbeat: Arc<health::Heartbeat>,
    /// The background readiness check.
    monitor: std::sync::Mutex<Option<health::Monitor>>,
    /// The running or last reprice.
    reprice_status: std::sync::Mutex<RepriceStatus>,
}

/// A store in `dir` with the built-in catalogue and rollups, for tests.
#[cfg(test)]
pub(crate) fn open_for_test(dir: &Path) -> SqliteStore {
    SqliteStore::open(
        dir,
        Arc::new(Catalogue::load(None).expect("built-in catalogue")),
        Arc::new(Telemetry::new()),
        StoreOptions {
            max_queued_events: 100_000,
            topic_threshold: 0.9,
            rollups: true,
            rag_series: true,
            merge_cache_bytes: rollup::cache::DEFAULT_BUDGET_BYTES,
        },
    )
    .expect("store opens")
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir`, migrates it and
    /// starts the writer thread.
    pub fn open(
        data_dir: &Path,
        catalogue: Arc<Catalogue>,
        telemetry: Arc<Telemetry>,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Open(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        restrict_permissions(data_dir);
        let dir_lock = lock::DirLock::acquire(data_dir)?;
        let path = data_dir.join(DATABASE_FILE);
        create_private(&path)?;
        let mut conn = Connection::open(&path).map_err(|e| open_error(&path, e))?;
        // Identity first: a foreign file is refused before anything (WAL mode
        // included) is changed in it.
        schema::check_identity(&conn).map_err(|e| wrap_open(&path, e))?;
        // A small file is checked before anything starts; a large one (the check
        // reads every page) in the background, so a start stays quick.
        let damaged = Arc::new(std::sync::Mutex::new(None));
        if file_len(&path) <= FOREGROUND_CHECK_BYTES {
            check_integrity(&conn).map_err(|e| wrap_open(&path, e))?;
        } else {
            check_in_background(&path, damaged.clone());
        }
        restrict_files(&path);
        schema::configure(&conn).map_err(|e| wrap_open(&path, e))?;
        // The writer's transactions take the write lock when they begin: there
        // SQLite waits out another connection's brief hold (the readiness probe,
        // a tool), whereas a read transaction that turns into a write midway
        // fails at once with "database is locked".
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        schema::migrate(&mut conn).map_err(|e| wrap_open(&path, e))?;
        if erase::recover(&conn).map_err(|e| wrap_open(&path, e.into()))? {
            tracing::warn!("an erasure was interrupted: erase the user again to finish it");
        }
        prepare_rollups(&mut conn, options.rollups, &mut |done, total| {
            tracing::info!(done, total, "rebuilding rollups from the stored events");
        })
        .map_err(|e| wrap_open(&path, e.into()))?;
        let pending =
            Arc::new(pending::PendingIndex::load(&conn).map_err(|e| wrap_open(&path, e.into()))?);
        let series = series::prepare(&mut conn, options.rag_series)
            .map_err(|e| wrap_open(&path, e.into()))?;
        let data_version = Arc::new(AtomicU64::new(0));
        let heartbeat = Arc::new(health::Heartbeat::default());
        let (sender, receiver) = mpsc::channel(CHANNEL_BATCHES);
        let writer = Writer::new(
            conn,
            catalogue,
            telemetry,
            data_version.clone(),
            &options,
            WriterHooks {
                pending: pending.clone(),
                heartbeat: heartbeat.clone(),
                series,
            },
        )
        .map_err(|e| wrap_open(&path, e.into()))?;
        let thread = std::thread::Builder::new()
            .name("ragpulse-writer".to_string())
            .spawn(move || {
                pool::lower_priority(pool::WRITER_NICENESS);
                writer.run(receiver)
            })
            .map_err(|e| StoreError::Open(format!("cannot start the writer thread: {e}")))?;
        let checkpointer = Checkpointer::start(&path)?;
        let monitor = health::Monitor::start(&path, damaged.clone())?;
        let max = options.max_queued_events.clamp(1, Semaphore::MAX_PERMITS);
        Ok(Self {
            pool: Pool::new(path.clone(), READERS, READ_QUEUE, Lane::Dashboard)?,
            live_pool: Pool::new(path.clone(), LIVE_READERS, LIVE_READ_QUEUE, Lane::Live)?,
            path,
            sender: std::sync::Mutex::new(Some(sender)),
            writer_thread: std::sync::Mutex::new(Some(thread)),
            queued_events: Arc::new(Semaphore::new(max)),
            max_queued_events: max,
            closing: AtomicBool::new(false),
            data_version,
            merge_cache: Arc::new(rollup::cache::MergeCache::with_budget(
                options.merge_cache_bytes,
            )),
            checkpointer: std::sync::Mutex::new(Some(checkpointer)),
            damaged,
            pending,
            dir_lock: std::sync::Mutex::new(Some(dir_lock)),
            heartbeat,
            monitor: std::sync::Mutex::new(Some(monitor)),
            reprice_status: std::sync::Mutex::new(RepriceStatus::idle()),
        })
    }

    /// Merged past rollup buckets, shared by the readers of this store.
    pub fn merge_cache(&self) -> Arc<rollup::cache::MergeCache> {
        self.merge_cache.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bumped after every commit: part of the cache key of computed answers.
    pub fn data_version(&self) -> u64 {
        self.data_version.load(Ordering::Acquire)
    }

    /// Hands the batch to the writer and waits until it is committed. The
    /// batch's events count against the queue bound until the writer is done
    /// with it, whether or not this future is still awaited.
    pub async fn append(&self, batch: Batch) -> Result<AppendOutcome, StoreError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(StoreError::ShuttingDown);
        }
        let events = batch.events.len().clamp(1, self.max_queued_events) as u32;
        let permit = self
            .queued_events
            .clone()
            .try_acquire_many_owned(events)
            .map_err(|_| StoreError::QueueFull)?;
        let sender = match self.sender.lock() {
            Ok(guard) => guard.clone().ok_or(StoreError::ShuttingDown)?,
            Err(_) => return Err(StoreError::ShuttingDown),
        };
        let (reply, answer) = oneshot::channel();
        sender
            .try_send(Job::Write(WriteRequest {
                batch,
                reply,
                permit,
            }))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StoreError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => self.writer_gone(),
            })?;
        let reply = answer.await.map_err(|_| self.writer_gone())?;
        drop(reply.permit);
        drop(reply.batch);
        reply.result
    }

    /// Recomputes catalogue costs (see [`reprice`]) on the writer, one day
    /// per transaction, so ingest commits between the days; progress is in
    /// [`Self::reprice_status`]. One reprice at a time.
    pub async fn reprice(&self, request: RepriceRequest) -> Result<RepriceReport, StoreError> {
        {
            let mut status = self
                .reprice_status
                .lock()
                .map_err(|_| StoreError::RepriceRunning)?;
            if status.state == RepriceState::Running {
                return Err(StoreError::RepriceRunning);
            }
            *status = RepriceStatus {
                state: RepriceState::Running,
                since: Some(crate::time::Timestamp(request.since)),
                model: request.model.clone(),
                ..RepriceStatus::idle()
            };
        }
        let result = self.reprice_days(&request).await;
        if let Ok(mut status) = self.reprice_status.lock() {
            match &result {
                Ok(report) => {
                    status.state = RepriceState::Done;
                    status.report = Some(report.clone());
                }
                Err(error) => {
                    status.state = RepriceState::Failed;
                    status.error = Some(error.to_string());
                }
            }
        }
        result
    }

    async fn reprice_days(&self, request: &RepriceRequest) -> Result<RepriceReport, StoreError> {
        use crate::time::MICROS_PER_DAY;
        let since = request.since;
        let span = self
            .read(move |conn| Ok(reprice::span(conn, since)?))
            .await?;
        let mut tally = Tally::default();
        if let Some((first, last)) = span {
            let (first_day, last_day) = (
                first.div_euclid(MICROS_PER_DAY),
                last.div_euclid(MICROS_PER_DAY),
            );
            if let Ok(mut status) = self.reprice_status.lock() {
                status.days_total = last_day - first_day + 1;
            }
            for day in first_day..=last_day {
                let (from, to) = (day * MICROS_PER_DAY, (day + 1) * MICROS_PER_DAY);
                let request = request.clone();
                let done = self
                    .job(|reply| Job::RepriceDay {
                        request,
                        from,
                        to,
                        reply,
                    })
                    .await?;
                tally.add(&done);
                if let Ok(mut status) = self.reprice_status.lock() {
                    status.days_done += 1;
                    status.report = Some(tally.report());
                }
            }
        }
        self.job(|reply| Job::RepriceFinish { reply }).await?;
        Ok(tally.report())
    }

    /// Erases a user's data (see [`erase`]) on the writer, one step at a
    /// time with ingest commits in between; `None` when the store knows no
    /// such user. The steps go on if the caller stops waiting.
    pub async fn erase_user(&self, user: String) -> Result<Option<erase::EraseReport>, StoreError> {
        let sender = match self.sender.lock() {
            Ok(guard) => guard.clone().ok_or(StoreError::ShuttingDown)?,
            Err(_) => return Err(StoreError::ShuttingDown),
        };
        let steps = tokio::spawn(async move {
            let mut job = EraseJob::Begin(user);
            loop {
                let (reply, answer) = oneshot::channel();
                sender
                    .send(Job::Erase { job, reply })
                    .await
                    .map_err(|_| StoreError::WriterStopped)?;
                match answer.await.map_err(|_| StoreError::WriterStopped)?? {
                    None => return Ok(None),
                    Some(erase::Progress::Done(report)) => return Ok(Some(report)),
                    Some(erase::Progress::Running(erasure)) => job = EraseJob::Continue(erasure),
                }
            }
        });
        match steps.await {
            Ok(result) => result.map_err(|e| match e {
                StoreError::WriterStopped => self.writer_gone(),
                other => other,
            }),
            Err(_) => Err(self.writer_gone()),
        }
    }

    /// One batch of a retention run (see [`retention`]) on the writer.
    pub async fn retain_batch(
        &self,
        cutoff: i64,
        limit: usize,
        cursor: retention::Cursor,
    ) -> Result<retention::RetainBatch, StoreError> {
        self.job(|reply| Job::Retain {
            cutoff,
            limit,
            cursor,
            reply,
        })
        .await
    }

    /// The running or last reprice.
    pub fn reprice_status(&self) -> RepriceStatus {
        self.reprice_status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| RepriceStatus::idle())
    }

    /// Seals rollup days before `today` now (tests: midnight on demand).
    #[cfg(test)]
    pub async fn seal_rollups(&self, today: i64) -> Result<(), StoreError> {
        self.job(|reply| Job::Seal { today, reply }).await
    }

    /// Stalls the writer until the returned sender is dropped (tests).
    #[cfg(test)]
    pub(crate) async fn stall_writer(&self) -> std::sync::mpsc::Sender<()> {
        let (release, until) = std::sync::mpsc::channel();
        let sender = self.sender.lock().unwrap().clone().unwrap();
        let _ = sender.send(Job::Stall(until)).await;
        release
    }

    /// Ends the writer thread with a panic (tests).
    #[cfg(test)]
    pub(crate) async fn crash_writer(&self) {
        let sender = self.sender.lock().unwrap().clone().unwrap();
        let _ = sender.send(Job::Crash).await;
    }

    /// Hands a job to the writer (waiting for room in its queue) and awaits its answer.
    async fn job<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let sender = match self.sender.lock() {
            Ok(guard) => guard.clone().ok_or(StoreError::ShuttingDown)?,
            Err(_) => return Err(StoreError::ShuttingDown),
        };
        let (reply, answer) = oneshot::channel();
        sender
            .send(make(reply))
            .await
            .map_err(|_| self.writer_gone())?;
        answer.await.map_err(|_| self.writer_gone())?
    }

    /// Why the writer no longer answers: the store is closing, or its thread
    /// ended on its own (a bug), which no retry will mend.
    fn writer_gone(&self) -> StoreError {
        if self.is_closing() {
            StoreError::ShuttingDown
        } else {
            StoreError::WriterStopped
        }
    }

    /// Whether the store can take reads and writes now, from state kept
    /// current in the background and the writer's heartbeat: no I/O, no
    /// waiting, so a probe answers at once however busy the store is.
    pub fn readiness(&self) -> Result<(), String> {
        if self.is_closing() {
            return Err("shutting down".to_string());
        }
        let writer_ended = self
            .writer_thread
            .lock()
            .map(|thread| thread.as_ref().is_none_or(|t| t.is_finished()))
            .unwrap_or(true);
        if writer_ended {
            return Err("the writer thread stopped; restart the server".to_string());
        }
        if let Some(busy) = self.heartbeat.busy_for()
            && busy > health::WRITER_STUCK_AFTER
        {
            return Err(format!(
                "the writer has been in one job for {} s",
                busy.as_secs()
            ));
        }
        match self.monitor.lock() {
            Ok(monitor) => monitor.as_ref().map_or(Ok(()), health::Monitor::verdict),
            Err(_) => Err("the health check failed".to_string()),
        }
    }

    /// Whether `n` more dashboard reads would be queued now (an admission
    /// check for requests made of several reads).
    pub fn readers_have_room(&self, n: usize) -> bool {
        self.pool.has_room(n)
    }

    /// Events waiting for the writer right now.
    pub fn queued_events(&self) -> usize {
        self.max_queued_events - self.queued_events.available_permits()
    }

    /// Refuses new batches, lets the writer commit what it has, and waits for it.
    pub async fn close(&self) {
        self.closing.store(true, Ordering::Release);
        if let Ok(mut guard) = self.sender.lock() {
            guard.take();
        }
        let thread = self.writer_thread.lock().ok().and_then(|mut g| g.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let checkpointer = self.checkpointer.lock().ok().and_then(|mut g| g.take());
        if let Some(checkpointer) = checkpointer {
            let _ = tokio::task::spawn_blocking(move || checkpointer.stop()).await;
        }
        let monitor = self.monitor.lock().ok().and_then(|mut g| g.take());
        if let Some(monitor) = monitor {
            let _ = tokio::task::spawn_blocking(move || monitor.stop()).await;
        }
        // Nothing writes any more: another process may take the directory.
        if let Ok(mut guard) = self.dir_lock.lock() {
            guard.take();
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Why a write would fail right now, if it would (see [`write_fault`]).
    /// It blocks (up to [`PROBE_LOCK_WAIT`]): call it from a blocking task.
    /// A fault found here also turns readiness red at once.
    pub fn write_fault(&self) -> Option<String> {
        let fault = write_fault(&self.path, &self.damaged)?;
        if let Ok(monitor) = self.monitor.lock()
            && let Some(monitor) = monitor.as_ref()
        {
            monitor.record(&fault);
        }
        Some(fault)
    }

    /// Runs `f` on a dashboard reader thread's connection (queued while all are busy).
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.read_in(Lane::Dashboard, f).await
    }

    /// Runs `f` on a reader thread of `lane`.
    pub async fn read_in<T, F>(&self, lane: Lane, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = match lane {
            Lane::Dashboard => &self.pool,
            Lane::Live => &self.live_pool,
        };
        let (reply, answer) = oneshot::channel();
        pool.submit(Box::new(move |conn| {
            // The caller gave up (a timeout, a closed connection) while this
            // waited: its answer would be thrown away, so do no work for it.
            if reply.is_closed() {
                return;
            }
            let result = match conn {
                // A panic (a failed assertion in a test, a bug) is the
                // caller's error, with its message, not a lost thread.
                Ok(conn) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
                    .unwrap_or_else(|panic| Err(StoreError::Task(panic_message(&*panic)))),
                Err(error) => Err(StoreError::Open(error.to_string())),
            };
            let _ = reply.send(result);
        }))?;
        answer
            .await
            .map_err(|_| StoreError::Task("a reader thread stopped".to_string()))?
    }
}

/// Why a write would fail right now, if it would: the database is damaged,
/// the data directory's file system is read-only or (nearly) full, or another
/// process holds the database's write lock. `None` when a write can go
/// through. Blocks up to [`PROBE_LOCK_WAIT`].
fn write_fault(path: &Path, damaged: &std::sync::Mutex<Option<String>>) -> Option<String> {
    if let Some(damage) = damaged.lock().ok().and_then(|d| d.clone()) {
        return Some(damage);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Some(fault) = file_system_fault(dir) {
        return Some(fault);
    }
    // The write lock, taken and released at once: a probe of its own
    // connection, so it never waits behind the writer's queue.
    let probe = || -> Result<(), rusqlite::Error> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(PROBE_LOCK_WAIT)?;
        conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
    };
    match probe() {
        Ok(()) => None,
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            Some(format!(
                "the database {} is locked by another process (its write lock was not free within {} s)",
                path.display(),
                PROBE_LOCK_WAIT.as_secs()
            ))
        }
        Err(e) => Some(format!(
            "the database {} cannot be written: {e}",
            path.display()
        )),
    }
}

/// The text of a panic's payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    format!("a read panicked: {text}")
}

/// Rebuilds missing rollups when they are wanted; marks them missing when not,
/// so that reads scan instead of trusting stale ones.
fn prepare_rollups(
    conn: &mut Connection,
    wanted: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), rusqlite::Error> {
    if !wanted {
        return rollup::forget(conn);
    }
    if rollup::is_built(conn)? {
        return Ok(());
    }
    let today = crate::time::Timestamp::now()
        .0
        .div_euclid(crate::time::MICROS_PER_DAY);
    let mut last_logged = 0;
    rollup::rebuild::rebuild(conn, today, &mut |done, total| {
        // Every tenth: a large store takes minutes.
        if total > 0 && (done == total || done * 10 / total > last_logged) {
            last_logged = done * 10 / total;
            progress(done, total);
        }
    })
}

/// Opens the store of a stopped server's data directory for an offline
/// command: the directory's lock held (returned, to be dropped after the
/// connection), the file checked to be a ragpulse database, its schema current.
fn open_offline(data_dir: &Path) -> Result<(lock::DirLock, Connection, PathBuf), StoreError> {
    let path = data_dir.join(DATABASE_FILE);
    if !path.exists() {
        return Err(StoreError::Open(format!(
            "no ragpulse database at {}",
            path.display()
        )));
    }
    let dir_lock = lock::DirLock::acquire(data_dir)?;
    let mut conn = Connection::open(&path).map_err(|e| open_error(&path, e))?;
    schema::check_identity(&conn).map_err(|e| wrap_open(&path, e))?;
    schema::configure(&conn).map_err(|e| wrap_open(&path, e))?;
    schema::migrate(&mut conn).map_err(|e| wrap_open(&path, e))?;
    Ok((dir_lock, conn, path))
}

/// Recomputes every rollup of the store in `data_dir` from its raw events:
/// the `rebuild-rollups` command. The server must not be running.
pub fn rebuild_rollups(
    data_dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), StoreError> {
    let (_dir_lock, mut conn, path) = open_offline(data_dir)?;
    // Also SQLite's exclusive lock: a process of an older version takes no
    // directory lock.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    let today = crate::time::Timestamp::now()
        .0
        .div_euclid(crate::time::MICROS_PER_DAY);
    rollup::rebuild::rebuild(&mut conn, today, progress).map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
            StoreError::Open(format!(
                "{} is in use; stop the ragpulse server on this data directory first",
                path.display()
            ))
        }
        other => other.into(),
    })
}

/// Erases a user's data in a stopped server's data directory (the
/// `erase-user` command); `None` when the store knows no such user.
pub fn erase_user_offline(
    data_dir: &Path,
    user: &str,
) -> Result<Option<erase::EraseReport>, StoreError> {
    let (_dir_lock, mut conn, _) = open_offline(data_dir)?;
    erase::recover(&conn)?;
    // Rollups not built (or marked for a rebuild) are rebuilt at the next start.
    let correct = rollup::is_built(&conn)?;
    let report = erase::erase_user(&mut conn, user, correct)?;
    if report.is_some() {
        erase::truncate_wal(&conn)?;
    }
    Ok(report)
}

/// Copies the WAL into the database file from its own thread and connection,
/// so the writer's commits rarely pay for it.
struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ragpulse-checkpoint".to_string())
            .spawn(move || {
                pool::lower_priority(pool::WRITER_NICENESS);
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    checkpoint(&conn, "PASSIVE");
                }
                // The writer has stopped: leave a small WAL behind.
                checkpoint(&conn, "TRUNCATE");
            })
            .map_err(|e| StoreError::Open(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self { stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn checkpoint(conn: &Connection, mode: &str) {
    let result = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        r.get::<_, i64>(0)
    });
    if let Err(error) = result {
        tracing::warn!(%error, mode, "WAL checkpoint failed; it will be retried");
    }
}

/// A read-only or full file system under `dir`, from statvfs(3).
#[cfg(unix)]
fn file_system_fault(dir: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct; `name` is a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(name.as_ptr(), &mut stat) } != 0 {
        return Some(format!(
            "the data directory {} cannot be examined: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    if stat.f_flag & libc::ST_RDONLY != 0 {
        return Some(format!(
            "the data directory {} is on a read-only file system",
            dir.display()
        ));
    }
    // Both fields are narrower than u64 on some targets.
    #[allow(clippy::useless_conversion)]
    let free = u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize));
    if free < MIN_FREE_BYTES {
        return Some(format!(
            "the disk of the data directory {} is full ({free} bytes free, {MIN_FREE_BYTES} needed)",
            dir.display()
        ));
    }
    // A file system the kernel made read-only after an error (ext4's
    // errors=remount-ro) may still carry the `rw` flag: only a write tells.
    match probe_write(dir) {
        Ok(()) => None,
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => Some(format!(
            "the data directory {} is on a read-only file system",
            dir.display()
        )),
        Err(e) => Some(format!(
            "the data directory {} cannot be written: {e}",
            dir.display()
        )),
    }
}

/// Creates, syncs and removes a small file in `dir`.
#[cfg(unix)]
fn probe_write(dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(".ragpulse-write-probe");
    let result = std::fs::File::create(&path).and_then(|mut file| {
        file.write_all(b"probe")?;
        file.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    result
}

#[cfg(not(unix))]
fn file_system_fault(_dir: &Path) -> Option<String> {
    None
}

/// Refuses a damaged database at start rather than failing (or answering
/// wrongly) later. `quick_check` reads every page once: about a second per
/// few hundred MiB, paid once per start.
/// Databases up to this size are checked before the server starts (a few seconds at most).
const FOREGROUND_CHECK_BYTES: u64 = 1 << 30;

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Runs [`check_integrity`] on its own connection and thread; a damaged file
/// is logged and reported by [`SqliteStore::write_fault`] (ingest 503, `/readyz` red).
fn check_in_background(path: &Path, damaged: Arc<std::sync::Mutex<Option<String>>>) {
    let path = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("ragpulse-integrity".to_string())
        .spawn(move || {
            let result = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(StoreError::from)
                .and_then(|conn| check_integrity(&conn));
            match result {
                Ok(()) => tracing::info!(path = %path.display(), "integrity check passed"),
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "integrity check failed");
                    if let Ok(mut slot) = damaged.lock() {
                        *slot = Some(format!("{}: {error}", path.display()));
                    }
                }
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start the integrity check");
    }
}

fn check_integrity(conn: &Connection) -> Result<(), StoreError> {
    let problems = match quick_check(conn) {
        Ok(problems) => problems,
        // Damage where the check itself must read (a table's root page) stops it.
        Err(e) if is_corrupt(&e) => vec![e.to_string()],
        Err(e) => return Err(e.into()),
    };
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(damaged(&problems.join("; ")))
}

fn quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare("PRAGMA quick_check(5)")?;
    statement
        .query_map([], |r| r.get::<_, String>(0))?
        .collect()
}

fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

fn damaged(problems: &str) -> StoreError {
    StoreError::Open(format!(
        "the database is damaged ({problems}); restore it from a backup, or move it away to start empty"
    ))
}

fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::Open(format!("cannot open database {}: {e}", path.display()))
}

fn wrap_open(path: &Path, e: StoreError) -> StoreError {
    let e = match e {
        StoreError::Backend(e) if e.kind == crate::store::FailureKind::Corrupt => {
            damaged(&e.to_string())
        }
        other => other,
    };
    match e {
        StoreError::Open(message) => StoreError::Open(format!("{}: {message}", path.display())),
        other => StoreError::Open(format!("cannot open database {}: {other}", path.display())),
    }
}

/// Read connections never write; `query_only` makes that a guarantee.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "query_only", true)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 16 MiB of page cache per reader (READERS of them).
    conn.pragma_update(None, "cache_size", -16_384)?;
    Ok(conn)
}

#[cfg(unix)]
fn restrict_permissions(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(error) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!(%error, dir = %dir.display(), "could not restrict the data directory to its owner");
    }
}

#[cfg(not(unix))]
fn restrict_permissions(_dir: &Path) {}

/// Creates the database file readable by its owner only when it does not
/// exist yet; SQLite gives the `-wal` and `-shm` files it creates later the
/// mode of the database file, so they are private too.
#[cfg(unix)]
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Open(format!(
            "cannot create database {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// Makes an existing ragpulse database (and its WAL files) private to the
/// owner, for files an older version created with the umask's mode. Only
/// called once the file is known to be ours.
#[cfg(unix)]
fn restrict_files(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0
            && let Err(error) =
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(%error, file = %file.display(), "could not restrict a database file to its owner");
        }
    }
}

#[cfg(not(unix))]
fn restrict_files(_path: &Path) {}
