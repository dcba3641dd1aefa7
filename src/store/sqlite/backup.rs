//! Online copies of a store. A backup reads the database through a read-only
//! connection of its own, inside one read transaction held from the first
//! page to the last: SQLite's online backup API then copies that one
//! snapshot (every commit before it, none after) while the server goes on
//! writing beside it, and never restarts however busy the writer is. It
//! takes no directory lock, so it runs beside `serve`.
//!
//! A restore checks the file (a ragpulse database, `PRAGMA integrity_check`
//! ok), takes the data directory's lock and puts the file in place. Both
//! write to a temporary name beside their target and rename it at the end:
//! a copy cut short never has the name of a finished one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{DATABASE_FILE, lock, schema};
use crate::store::StoreError;

/// Pages copied per backup step (16 MiB of 16 KiB pages), between progress reports.
const PAGES_PER_STEP: i32 = 1024;
/// Wait before retrying a step that found the destination busy.
const BUSY_PAUSE: Duration = Duration::from_millis(20);

/// What a finished backup or restore wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyReport {
    pub bytes: u64,
    pub duration: Duration,
}

/// Copies the store of `data_dir` into `to` (a new file unless `overwrite`),
/// calling `progress(done, total)` (pages) after each step.
pub fn backup(
    data_dir: &Path,
    to: &Path,
    overwrite: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<CopyReport, StoreError> {
    let started = Instant::now();
    let source_path = data_dir.join(DATABASE_FILE);
    if !source_path.is_file() {
        return Err(StoreError::Open(format!(
            "no ragpulse database at {}",
            source_path.display()
        )));
    }
    if !overwrite && to.exists() {
        return Err(StoreError::Open(format!(
            "{} already exists; choose another file or pass --force to replace it",
            to.display()
        )));
    }
    let source = Connection::open_with_flags(
        &source_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Open(format!("cannot open {}: {e}", source_path.display())))?;
    source.busy_timeout(Duration::from_secs(5))?;
    schema::check_identity(&source)?;
    // The snapshot: a read transaction the backup steps run inside (they
    // open one of their own only when the connection has none).
    source.execute_batch("BEGIN")?;
    source.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
    let partial = PartialFile::beside(to)?;
    let mut target = Connection::open(partial.path())?;
    // The copy is made durable once, at the end (`PartialFile::finish`): no
    // journal and no sync per step, whose flushes would queue the writer's
    // commits behind the backup's writes.
    target.pragma_update(None, "synchronous", "OFF")?;
    target.pragma_update(None, "journal_mode", "OFF")?;
    copy_pages(&source, &mut target, progress)?;
    drop(source);
    // A self-contained file: no WAL beside it, readable where it lies.
    target.pragma_update(None, "journal_mode", "DELETE")?;
    drop(target);
    let bytes = partial.finish(to)?;
    Ok(CopyReport {
        bytes,
        duration: started.elapsed(),
    })
}

fn copy_pages(
    source: &Connection,
    target: &mut Connection,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), StoreError> {
    let backup = Backup::new(source, target)?;
    loop {
        let began = Instant::now();
        let step = backup.step(PAGES_PER_STEP)?;
        let state = backup.progress();
        let total = u64::try_from(state.pagecount).unwrap_or(0);
        let left = u64::try_from(state.remaining).unwrap_or(0);
        progress(total.saturating_sub(left), total);
        match step {
            StepResult::Done => return Ok(()),
            // Paced: after each step a pause as long as the step, so a backup
            // takes at most half of the disk and a core from the server's ingest.
            StepResult::More => std::thread::sleep(began.elapsed()),
            _ => std::thread::sleep(BUSY_PAUSE),
        }
    }
}

/// Checks that `file` is an undamaged ragpulse database, then makes it the
/// store of `data_dir` (created when missing). A directory that already holds
/// anything is refused unless `replace`; then its database files are replaced
/// and its other files (the token file) kept. `progress(done, total)` in bytes.
pub fn restore(
    file: &Path,
    data_dir: &Path,
    replace: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<CopyReport, StoreError> {
    let started = Instant::now();
    verify(file)?;
    std::fs::create_dir_all(data_dir).map_err(|e| {
        StoreError::Open(format!(
            "cannot create data directory {}: {e}",
            data_dir.display()
        ))
    })?;
    super::restrict_permissions(data_dir);
    let _dir_lock = lock::DirLock::acquire(data_dir)?;
    let held = contents(data_dir)?;
    if !held.is_empty() && !replace {
        return Err(StoreError::Open(format!(
            "the data directory {} is not empty (it holds {}); restore into an empty \
             directory, or pass --force to replace its store",
            data_dir.display(),
            held.join(", ")
        )));
    }
    let target = data_dir.join(DATABASE_FILE);
    let partial = PartialFile::beside(&target)?;
    copy_file(file, partial.path(), progress)?;
    // The old store's WAL must never be replayed onto the restored file.
    for suffix in ["-wal", "-shm"] {
        remove_if_present(&PathBuf::from(format!("{}{suffix}", target.display())))?;
    }
    let bytes = partial.finish(&target)?;
    Ok(CopyReport {
        bytes,
        duration: started.elapsed(),
    })
}

/// A ragpulse database with every page intact, or why not.
pub fn verify(file: &Path) -> Result<(), StoreError> {
    if !file.is_file() {
        return Err(StoreError::Open(format!(
            "{} is not a file",
            file.display()
        )));
    }
    let not_ours = |why: String| {
        StoreError::Open(format!(
            "{} is not a ragpulse backup ({why})",
            file.display()
        ))
    };
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not_ours(e.to_string()))?;
    let app_id: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(|e| not_ours(e.to_string()))?;
    if app_id != schema::APPLICATION_ID {
        return Err(not_ours(format!(
            "its application id is {app_id:#x}, a ragpulse database's {:#x}",
            schema::APPLICATION_ID
        )));
    }
    schema::check_identity(&conn)?;
    let mut statement = conn.prepare("PRAGMA integrity_check(5)")?;
    let problems: Vec<String> = statement
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
        .unwrap_or_else(|e| vec![e.to_string()]);
    if problems != ["ok"] {
        return Err(StoreError::Open(format!(
            "{} is damaged (integrity check: {}); restore another backup",
            file.display(),
            problems.join("; ")
        )));
    }
    Ok(())
}

/// Names of the entries of `dir`, its lock file aside.
fn contents(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StoreError::Open(format!("cannot read {}: {e}", dir.display())))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| StoreError::Open(format!("cannot read {}: {e}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != lock::LOCK_FILE {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn copy_file(from: &Path, to: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Open(format!("cannot copy {}: {e}", from.display()));
    let mut input = std::fs::File::open(from).map_err(io)?;
    let total = input.metadata().map_err(io)?.len();
    let mut output = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(to)
        .map_err(io)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let read = input.read(&mut buffer).map_err(io)?;
        if read == 0 {
            break;
        }
        output.write_all(&buffer[..read]).map_err(io)?;
        done += read as u64;
        progress(done, total);
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Open(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
    }
}

/// A file written under a temporary name beside its destination (removed if
/// dropped unfinished; left as `.NAME.*.partial` only if the process is
/// killed), renamed to the destination once complete and synced.
struct PartialFile {
    file: tempfile::NamedTempFile,
}

impl PartialFile {
    fn beside(destination: &Path) -> Result<Self, StoreError> {
        let dir = match destination.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = destination
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ragpulse".to_string());
        let file = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(|e| {
                StoreError::Open(format!("cannot create a file in {}: {e}", dir.display()))
            })?;
        Ok(Self { file })
    }

    fn path(&self) -> &Path {
        self.file.path()
    }

    /// Syncs the file, renames it to `destination` and syncs the directory;
    /// the file's size.
    fn finish(self, destination: &Path) -> Result<u64, StoreError> {
        let io = |e: std::io::Error| {
            StoreError::Open(format!("cannot write {}: {e}", destination.display()))
        };
        self.file.as_file().sync_all().map_err(io)?;
        let bytes = self.file.as_file().metadata().map_err(io)?.len();
        self.file.persist(destination).map_err(|e| io(e.error))?;
        if let Some(dir) = destination.parent()
            && !dir.as_os_str().is_empty()
            && let Ok(dir) = std::fs::File::open(dir)
        {
            let _ = dir.sync_all();
        }
        Ok(bytes)
    }
}
