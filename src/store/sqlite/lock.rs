//! The data directory's advisory lock: one process at a time writes a data
//! directory (`serve`, `demo`, `import`, `reprice`, `rebuild-rollups`). The
//! writer keeps state beside the database (the stored-id filter, key caches,
//! open rollup states) that a second writer would make stale without either
//! noticing, so a second process is refused at open with a clear message.
//!
//! `flock(2)` on `ragpulse.lock`: the kernel releases it when the process
//! ends, however it ends, so a crash never leaves a stale lock behind.

use std::fs::File;
use std::path::Path;

use crate::store::StoreError;

pub const LOCK_FILE: &str = "ragpulse.lock";

/// Held while a store is open; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir` (which exists), or says who holds it.
    #[cfg(unix)]
    pub fn acquire(dir: &Path) -> Result<Self, StoreError> {
        use std::io::{Read, Seek, Write};
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                StoreError::Open(format!("cannot open the lock file {}: {e}", path.display()))
            })?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::WouldBlock {
                return Err(StoreError::Open(format!(
                    "cannot lock the data directory {}: {error}",
                    dir.display()
                )));
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (process {pid})"),
            };
            return Err(StoreError::Open(format!(
                "the data directory {} is in use by another ragpulse process{holder}: \
                 one process at a time may write it. Stop that process first, or send the \
                 events to the running server's ingest API and reprice through \
                 POST /api/v1/pricing/reprice",
                dir.display()
            )));
        }
        // Who holds it, for the message above; the lock, not this text, decides.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()));
        Ok(Self { _file: file })
    }

    #[cfg(not(unix))]
    pub fn acquire(_dir: &Path) -> Result<Self, StoreError> {
        Err(StoreError::Open(
            "data directory locking is implemented for Unix only".to_string(),
        ))
    }
}
