//! Readiness kept current in the background: a thread checks, every
//! [`CHECK_EVERY`], that the database answers a read on a connection of its
//! own and that a write would go through (the file system, free space, the
//! write lock, the integrity check's verdict). `/readyz` then only reads the
//! last verdict and the writer's heartbeat: it never waits in a reader queue
//! behind dashboard reads and does no file I/O per probe.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::store::StoreError;
use crate::time::Timestamp;

/// How often the background check runs.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A verdict older than this is itself a fault (the check is stuck).
const STALE_AFTER: Duration = Duration::from_secs(15);
/// A writer in one job for longer than this is reported stuck.
pub const WRITER_STUCK_AFTER: Duration = Duration::from_secs(60);

/// When the writer started the job it is in (µs since the epoch), or 0 when
/// it waits for one. Set by the writer thread, read by `/readyz`.
#[derive(Debug, Default)]
pub struct Heartbeat(AtomicI64);

impl Heartbeat {
    pub fn busy(&self) {
        self.0.store(Timestamp::now().0.max(1), Ordering::Release);
    }

    pub fn idle(&self) {
        self.0.store(0, Ordering::Release);
    }

    /// How long the writer has been in its current job.
    pub fn busy_for(&self) -> Option<Duration> {
        let since = self.0.load(Ordering::Acquire);
        (since != 0)
            .then(|| Duration::from_micros(u64::try_from(Timestamp::now().0 - since).unwrap_or(0)))
    }
}

struct Verdict {
    fault: Option<String>,
    at: Instant,
}

/// The background check's thread and its last verdict.
pub struct Monitor {
    verdict: Arc<Mutex<Verdict>>,
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    /// Checks once now (so a fresh store has a verdict), then every
    /// [`CHECK_EVERY`] on its own thread.
    pub fn start(path: &Path, damaged: Arc<Mutex<Option<String>>>) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let mut reader: Option<Connection> = None;
        let first = check(&path, &damaged, &mut reader);
        let verdict = Arc::new(Mutex::new(Verdict {
            fault: first,
            at: Instant::now(),
        }));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let shared = verdict.clone();
        let thread = std::thread::Builder::new()
            .name("ragpulse-health".to_string())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECK_EVERY)
                {
                    let fault = check(&path, &damaged, &mut reader);
                    if let Ok(mut verdict) = shared.lock() {
                        *verdict = Verdict {
                            fault,
                            at: Instant::now(),
                        };
                    }
                }
            })
            .map_err(|e| StoreError::Open(format!("cannot start the health thread: {e}")))?;
        Ok(Self {
            verdict,
            stop,
            thread: Some(thread),
        })
    }

    /// The last verdict: `Err` names what is wrong.
    pub fn verdict(&self) -> Result<(), String> {
        let Ok(verdict) = self.verdict.lock() else {
            return Err("the health check failed".to_string());
        };
        let age = verdict.at.elapsed();
        if age > STALE_AFTER {
            return Err(format!(
                "the background health check has not finished for {} s",
                age.as_secs()
            ));
        }
        match &verdict.fault {
            Some(fault) => Err(fault.clone()),
            None => Ok(()),
        }
    }

    /// A fault found outside the background check (a commit that failed):
    /// readiness turns red now rather than at the next check, which clears it
    /// once the fault is gone.
    pub fn record(&self, fault: &str) {
        if let Ok(mut verdict) = self.verdict.lock() {
            *verdict = Verdict {
                fault: Some(format!("writes would fail: {fault}")),
                at: Instant::now(),
            };
        }
    }

    pub fn stop(mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One check: a read on the monitor's own connection, then the write probe.
fn check(
    path: &Path,
    damaged: &Mutex<Option<String>>,
    reader: &mut Option<Connection>,
) -> Option<String> {
    let mut read = || -> Result<(), StoreError> {
        if reader.is_none() {
            *reader = Some(super::open_reader(path)?);
        }
        if let Some(conn) = reader.as_ref() {
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })?;
        }
        Ok(())
    };
    if let Err(error) = read() {
        // Reopened at the next check: the file may come back.
        *reader = None;
        return Some(format!("store does not answer: {error}"));
    }
    super::write_fault(path, damaged).map(|fault| format!("writes would fail: {fault}"))
}
