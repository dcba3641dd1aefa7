//! The readers: a few dedicated threads, each with its own read connection
//! (WAL lets them read beside the writer). Dashboard reads run at a lower OS
//! priority than the writer so that they never starve ingestion of CPU: on a
//! busy machine such a read waits, a write does not. Live snapshots have their
//! own threads at the writer's priority (see [`Lane`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::store::StoreError;

/// How much lower than the request threads the writer and its checkpointer
/// run. Snapshot computations for the live feed (at the request threads'
/// priority) then get a core when they need one, even while ingest keeps the
/// writer busy; the writer still has every cycle nobody else wants, and it
/// stays well above dashboard reads (see [`Lane`]).
pub const WRITER_NICENESS: i32 = 5;

pub use crate::store::Lane;

impl Lane {
    fn niceness(self) -> i32 {
        match self {
            Lane::Dashboard => WRITER_NICENESS + 10,
            Lane::Live => 0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Lane::Dashboard => "ragpulse-reader",
            Lane::Live => "ragpulse-live",
        }
    }
}

/// One read: runs on a reader thread with its connection (or the error of opening it).
type Job = Box<dyn FnOnce(Result<&Connection, &StoreError>) + Send>;

#[derive(Clone)]
pub struct Pool {
    jobs: Arc<Mutex<mpsc::SyncSender<Job>>>,
    /// Reads waiting for a thread (not those running).
    waiting: Arc<AtomicUsize>,
    capacity: usize,
}

impl Pool {
    /// Starts `threads` reader threads of `lane` on the database at `path`,
    /// with room for `capacity` reads waiting for them; a read beyond that is
    /// refused at once ([`StoreError::ReadersBusy`]) rather than queued
    /// without end behind the ones already late.
    pub fn new(
        path: PathBuf,
        threads: usize,
        capacity: usize,
        lane: Lane,
    ) -> Result<Self, StoreError> {
        let capacity = capacity.max(1);
        let (jobs, queue) = mpsc::sync_channel::<Job>(capacity);
        let waiting = Arc::new(AtomicUsize::new(0));
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let (queue, path, waiting) = (queue.clone(), path.clone(), waiting.clone());
            std::thread::Builder::new()
                .name(format!("{}-{n}", lane.name()))
                .spawn(move || reader(&path, &queue, &waiting, lane.niceness()))
                .map_err(|e| StoreError::Open(format!("cannot start a reader thread: {e}")))?;
        }
        Ok(Self {
            jobs: Arc::new(Mutex::new(jobs)),
            waiting,
            capacity,
        })
    }

    /// Queues `job`, or refuses it when the queue is full; the threads end
    /// when the last `Pool` is dropped.
    pub fn submit(&self, job: Job) -> Result<(), StoreError> {
        let jobs = self.jobs.lock().map_err(|_| StoreError::ShuttingDown)?;
        self.waiting.fetch_add(1, Ordering::AcqRel);
        jobs.try_send(job).map_err(|e| {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            match e {
                mpsc::TrySendError::Full(_) => StoreError::ReadersBusy,
                mpsc::TrySendError::Disconnected(_) => StoreError::ShuttingDown,
            }
        })
    }

    /// Whether `n` more reads would fit in the queue now.
    pub fn has_room(&self, n: usize) -> bool {
        self.waiting.load(Ordering::Acquire) + n <= self.capacity
    }
}

fn reader(path: &Path, queue: &Mutex<mpsc::Receiver<Job>>, waiting: &AtomicUsize, niceness: i32) {
    if niceness != 0 {
        lower_priority(niceness);
    }
    // Opened on first use, reopened after a failure (the file may come back).
    let mut conn: Option<Connection> = None;
    loop {
        // The lock is held only to take one job, never while running it.
        let job = match queue.lock() {
            Ok(queue) => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        waiting.fetch_sub(1, Ordering::AcqRel);
        if conn.is_none() {
            match super::open_reader(path) {
                Ok(opened) => conn = Some(opened),
                Err(error) => {
                    run_job(job, Err(&error));
                    continue;
                }
            }
        }
        if let Some(c) = &conn
            && !run_job(job, Ok(c))
        {
            // A panic may have left a statement or transaction open on it.
            conn = None;
        }
    }
}

/// Runs `job`; a panic inside it ends that job only, not the thread that
/// serves every later read. (The job reports its own panic to its caller,
/// see `SqliteStore::read_in`.) `false` when it panicked.
fn run_job(job: Job, conn: Result<&Connection, &StoreError>) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn))).is_ok()
}

/// Lowers the calling thread's priority by `by` niceness steps (relative, so a
/// server started with `nice` keeps its place; lowering needs no privilege).
#[cfg(target_os = "linux")]
pub fn lower_priority(by: i32) {
    // SAFETY: plain syscalls on the calling thread; no memory is shared.
    let result = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        *libc::__errno_location() = 0;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        if current == -1 && *libc::__errno_location() != 0 {
            -1
        } else {
            libc::setpriority(libc::PRIO_PROCESS, tid, current + by)
        }
    };
    if result != 0 {
        tracing::debug!("could not lower the priority of a store thread");
    }
}

#[cfg(not(target_os = "linux"))]
pub fn lower_priority(_by: i32) {}
