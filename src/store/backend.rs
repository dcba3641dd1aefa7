//! Which backend keeps a data directory: the one place outside the backends
//! that names one. The server and the commands open a store here and hold it
//! as `dyn Store`; the operations on a directory that no server holds
//! (rebuilding rollups, an offline erasure, file backups, export) are also
//! reached here. SQLite is the only backend, so each function opens or calls
//! it; another backend becomes a choice in these functions.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::interface::{CopyReport, EraseReport};
use super::sqlite::{self, SqliteStore};
use super::{Store, StoreError};
use crate::pricing::Catalogue;
use crate::telemetry::Telemetry;

pub use super::sqlite::StoreOptions;
pub use super::sqlite::export::{ExportCounts, ExportFilter};

/// The merge cache's byte budget when none is configured.
pub const DEFAULT_MERGE_CACHE_BYTES: usize = sqlite::rollup::cache::DEFAULT_BUDGET_BYTES;

/// Opens (creating if needed) the store of `data_dir` and starts its writer.
pub fn open(
    data_dir: &Path,
    catalogue: Arc<Catalogue>,
    telemetry: Arc<Telemetry>,
    options: StoreOptions,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqliteStore::open(
        data_dir, catalogue, telemetry, options,
    )?))
}

/// Recomputes every rollup of a stopped server's store from its raw events.
pub fn rebuild_rollups(
    data_dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), StoreError> {
    sqlite::rebuild_rollups(data_dir, progress)
}

/// Erases a user's data in a stopped server's store; `None` when the store
/// knows no such user.
pub fn erase_user_offline(data_dir: &Path, user: &str) -> Result<Option<EraseReport>, StoreError> {
    sqlite::erase_user_offline(data_dir, user)
}

/// Copies the store of `data_dir` (served or not) into the file `to`.
pub fn backup(
    data_dir: &Path,
    to: &Path,
    overwrite: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<CopyReport, StoreError> {
    sqlite::backup::backup(data_dir, to, overwrite, progress)
}

/// Puts the backup `from` in place as the store of a stopped server's `data_dir`.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    overwrite: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<CopyReport, StoreError> {
    sqlite::backup::restore(from, data_dir, overwrite, progress)
}

/// Writes the events of `data_dir` (served or not) that `filter` selects to
/// `out`, in the ingest format.
pub fn export(
    data_dir: &Path,
    filter: &ExportFilter,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExportCounts, StoreError> {
    sqlite::export::export(data_dir, filter, out, progress)
}
