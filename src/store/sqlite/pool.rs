//! A small pool of read connections: opening one costs more than a query, and
//! WAL lets readers run beside the writer.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::store::StoreError;

/// Idle connections kept (the store's reader limit keeps the open ones under it too).
const MAX_IDLE: usize = 8;

#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    pub fn new(path: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Runs `f` on an idle connection (or a new one) and returns it to the pool.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // The guard is dropped before opening a connection: opening can be slow.
        let idle = self.inner.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => super::open_reader(&self.inner.path)?,
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.inner.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
        result
    }
}
