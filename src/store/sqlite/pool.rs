//! The readers: a few dedicated threads, each with its own read connection
//! (WAL lets them read beside the writer), running at a lower OS priority than
//! the writer so that dashboards and live snapshots never starve ingestion of
//! CPU: on a busy machine a read waits, a write does not.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::store::StoreError;

/// Niceness of the reader threads (the writer stays at 0): under contention
/// Linux gives the writer about ten times their share of a core.
const READER_NICENESS: i32 = 10;

/// One read: runs on a reader thread with its connection (or the error of opening it).
type Job = Box<dyn FnOnce(Result<&Connection, &StoreError>) + Send>;

#[derive(Clone)]
pub struct Pool {
    jobs: Arc<Mutex<mpsc::Sender<Job>>>,
}

impl Pool {
    /// Starts `threads` reader threads on the database at `path`.
    pub fn new(path: PathBuf, threads: usize) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let (queue, path) = (queue.clone(), path.clone());
            std::thread::Builder::new()
                .name(format!("ragpulse-reader-{n}"))
                .spawn(move || reader(&path, &queue))
                .map_err(|e| StoreError::Open(format!("cannot start a reader thread: {e}")))?;
        }
        Ok(Self {
            jobs: Arc::new(Mutex::new(jobs)),
        })
    }

    /// Queues `job`; the threads end when the last `Pool` is dropped.
    pub fn submit(&self, job: Job) -> Result<(), StoreError> {
        let jobs = self.jobs.lock().map_err(|_| StoreError::ShuttingDown)?;
        jobs.send(job).map_err(|_| StoreError::ShuttingDown)
    }
}

fn reader(path: &Path, queue: &Mutex<mpsc::Receiver<Job>>) {
    lower_priority();
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
        if conn.is_none() {
            match super::open_reader(path) {
                Ok(opened) => conn = Some(opened),
                Err(error) => {
                    job(Err(&error));
                    continue;
                }
            }
        }
        if let Some(conn) = &conn {
            job(Ok(conn));
        }
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread; no memory is shared.
    let result = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, READER_NICENESS)
    };
    if result != 0 {
        tracing::debug!("could not lower the priority of a reader thread");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}
