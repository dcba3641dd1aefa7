//! A file system that can be turned read-only and writable again while files
//! are open for writing: a FUSE mirror of a directory, for the fault tests.
//!
//! Why FUSE: no in-kernel file system of the test machines (Linux 6.18) can
//! do both while the server runs, as tried by hand:
//! - `mount -o remount,ro` and `mount -o remount,bind,ro` fail with EBUSY
//!   ("mount point is busy") while any file is open for writing, and the
//!   server always holds its database files open.
//! - ext4 with errors=remount-ro (journal or not) marks itself read-only after
//!   an error until it is unmounted; a read-write remount does not clear it.
//! - A read-only btrfs subvolume (`btrfs property set ... ro true`) refuses new
//!   files and truncation but still accepts writes and fsyncs through
//!   descriptors opened before, so SQLite's commits would go through.
//! - vfat (whose error path could be remounted read-write) and the device
//!   mapper (dm-error, dm-flakey) are not built into the kernel.
//!
//! While switched read-only, the mirror answers as a file system mounted
//! read-only does: every change (a write or fsync through an open descriptor,
//! a truncation, creating, removing or renaming a file, opening one for
//! writing) fails with EROFS, and everything else (reads, lookups, `stat`,
//! POSIX locks, shared mappings) keeps working. Switched back, the same
//! descriptors write again, as after a read-write remount. POSIX locks are the
//! kernel's own (the mirror leaves them to it) and the page cache is used, so
//! SQLite's WAL mode (shared-memory mapping and locks) works as on a local
//! file system. statvfs(3) does not show the read-only state (the mount stays
//! `rw`), as after an ext4 error: the server has to find it out by writing.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};

/// Nothing is cached by the kernel beyond a request: every `stat` and lookup
/// comes here, so the mirror's answers are always current.
const TTL: Duration = Duration::ZERO;

/// The switch of a mounted mirror: `true` makes it read-only.
#[derive(Clone)]
pub struct Switch(Arc<AtomicBool>);

impl Switch {
    pub fn set_read_only(&self, read_only: bool) {
        self.0.store(read_only, Ordering::SeqCst);
    }
}

/// A mounted mirror: unmounted when dropped.
pub struct Mounted {
    session: Option<fuser::BackgroundSession>,
    point: PathBuf,
    pub switch: Switch,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // A process still inside the mount point would make a plain unmount
        // fail: detach it first, then end the session.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.point)
            .status();
        drop(self.session.take());
    }
}

/// Mounts a mirror of `backing` on `point` (both existing directories).
pub fn mount(backing: &Path, point: &Path) -> std::io::Result<Mounted> {
    let read_only = Arc::new(AtomicBool::new(false));
    let mirror = Mirror {
        read_only: read_only.clone(),
        state: Mutex::new(State {
            paths: HashMap::from([(INodeNo::ROOT.0, backing.to_path_buf())]),
            inodes: HashMap::from([(backing.to_path_buf(), INodeNo::ROOT.0)]),
            next_inode: INodeNo::ROOT.0 + 1,
            files: HashMap::new(),
            next_file: 1,
        }),
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("ragpulse-switchable".to_string()),
        fuser::MountOption::Subtype("switchable".to_string()),
    ];
    let session = fuser::spawn_mount(mirror, point, &config)?;
    Ok(Mounted {
        session: Some(session),
        point: point.to_path_buf(),
        switch: Switch(read_only),
    })
}

struct Mirror {
    read_only: Arc<AtomicBool>,
    state: Mutex<State>,
}

struct State {
    /// Inode number to the backing path (and back).
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    next_inode: u64,
    /// Open files by handle.
    files: HashMap<u64, Arc<File>>,
    next_file: u64,
}

impl State {
    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    fn inode(&mut self, path: &Path) -> INodeNo {
        if let Some(ino) = self.inodes.get(path) {
            return INodeNo(*ino);
        }
        let ino = self.next_inode;
        self.next_inode += 1;
        self.paths.insert(ino, path.to_path_buf());
        self.inodes.insert(path.to_path_buf(), ino);
        INodeNo(ino)
    }

    fn forget_path(&mut self, path: &Path) {
        if let Some(ino) = self.inodes.remove(path) {
            self.paths.remove(&ino);
        }
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        self.files.get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    fn add_file(&mut self, file: File) -> FileHandle {
        let fh = self.next_file;
        self.next_file += 1;
        self.files.insert(fh, Arc::new(file));
        FileHandle(fh)
    }
}

fn errno(error: std::io::Error) -> Errno {
    Errno::from(error)
}

fn time(seconds: i64, nanos: i64) -> SystemTime {
    let nanos = u32::try_from(nanos).unwrap_or(0);
    match u64::try_from(seconds) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, nanos),
        Err(_) => UNIX_EPOCH,
    }
}

fn attr(ino: INodeNo, meta: &std::fs::Metadata) -> FileAttr {
    let kind = FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile);
    FileAttr {
        ino,
        size: meta.size(),
        blocks: meta.blocks(),
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind,
        perm: (meta.mode() & 0o7777) as u16,
        nlink: u32::try_from(meta.nlink()).unwrap_or(u32::MAX),
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: u32::try_from(meta.rdev()).unwrap_or(0),
        blksize: u32::try_from(meta.blksize()).unwrap_or(4096),
        flags: 0,
    }
}

fn open_options(flags: i32) -> OpenOptions {
    let mut options = OpenOptions::new();
    match flags & libc::O_ACCMODE {
        libc::O_WRONLY => options.write(true),
        libc::O_RDWR => options.read(true).write(true),
        _ => options.read(true),
    };
    // Access mode, creation and truncation are set above or by the kernel's
    // own requests; pass on the rest (O_APPEND, O_SYNC, O_NOFOLLOW, ...).
    let passed =
        flags & !(libc::O_ACCMODE | libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_NOCTTY);
    options.custom_flags(passed);
    options
}

impl Mirror {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent maps behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn writable(&self) -> Result<(), Errno> {
        if self.read_only.load(Ordering::SeqCst) {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    /// Removes the child `name` of `parent` with `op` (a file or a directory).
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        reply: ReplyEmpty,
        op: fn(&Path) -> std::io::Result<()>,
    ) {
        let removed = self.writable().and_then(|()| {
            let path = self.state().child(parent, name)?;
            op(&path).map_err(errno)?;
            self.state().forget_path(&path);
            Ok(())
        });
        match removed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn entry(&self, path: &Path) -> Result<FileAttr, Errno> {
        let meta = std::fs::symlink_metadata(path).map_err(errno)?;
        let ino = self.state().inode(path);
        Ok(attr(ino, &meta))
    }

    fn do_setattr(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        size: Option<u64>,
        fh: Option<FileHandle>,
    ) -> Result<FileAttr, Errno> {
        self.writable()?;
        let (path, file) = {
            let state = self.state();
            (state.path(ino)?, fh.and_then(|fh| state.file(fh).ok()))
        };
        if let Some(size) = size {
            match &file {
                Some(file) => file.set_len(size).map_err(errno)?,
                None => OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(size))
                    .map_err(errno)?,
            }
        }
        if let Some(mode) = mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(errno)?;
        }
        // Owners and times are left as they are: nothing in these tests sets them.
        let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
        Ok(attr(ino, &meta))
    }

    fn do_create(
        &self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> Result<(FileAttr, FileHandle), Errno> {
        self.writable()?;
        let path = self.state().child(parent, name)?;
        let mut options = open_options(flags);
        options.create(true).mode(mode);
        if flags & libc::O_EXCL != 0 {
            options.create_new(true);
        }
        if flags & libc::O_TRUNC != 0 {
            options.truncate(true);
        }
        let file = options.open(&path).map_err(errno)?;
        let meta = file.metadata().map_err(errno)?;
        let mut state = self.state();
        let ino = state.inode(&path);
        let fh = state.add_file(file);
        Ok((attr(ino, &meta), fh))
    }
}

impl Filesystem for Mirror {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let path = match self.state().child(parent, name) {
            Ok(path) => path,
            Err(e) => return reply.error(e),
        };
        match self.entry(&path) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let (path, file) = {
            let state = self.state();
            (state.path(ino), fh.and_then(|fh| state.file(fh).ok()))
        };
        let meta = match (file, path) {
            (Some(file), _) => file.metadata(),
            (None, Ok(path)) => std::fs::symlink_metadata(path),
            (None, Err(e)) => return reply.error(e),
        };
        match meta {
            Ok(meta) => reply.attr(&TTL, &attr(ino, &meta)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.do_setattr(ino, mode, size, fh) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let made = self.writable().and_then(|()| {
            let path = self.state().child(parent, name)?;
            std::fs::create_dir(&path).map_err(errno)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(errno)?;
            self.entry(&path)
        });
        match made {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, |p| std::fs::remove_file(p));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, |p| std::fs::remove_dir(p));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let renamed = self.writable().and_then(|()| {
            let (from, to) = {
                let state = self.state();
                (state.child(parent, name)?, state.child(newparent, newname)?)
            };
            std::fs::rename(&from, &to).map_err(errno)?;
            let mut state = self.state();
            state.forget_path(&to);
            if let Some(ino) = state.inodes.remove(&from) {
                state.paths.insert(ino, to.clone());
                state.inodes.insert(to, ino);
            }
            Ok(())
        });
        match renamed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let opened = (|| {
            if flags.acc_mode() != OpenAccMode::O_RDONLY {
                self.writable()?;
            }
            let path = self.state().path(ino)?;
            let file = open_options(flags.0).open(&path).map_err(errno)?;
            Ok(self.state().add_file(file))
        })();
        match opened {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let file = match self.state().file(fh) {
            Ok(file) => file,
            Err(e) => return reply.error(e),
        };
        let mut buffer = vec![0u8; size as usize];
        let mut filled = 0;
        while filled < buffer.len() {
            match file.read_at(&mut buffer[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(errno(e)),
            }
        }
        reply.data(&buffer[..filled]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let written = self
            .writable()
            .and_then(|()| self.state().file(fh))
            .and_then(|file| file.write_all_at(data, offset).map_err(errno));
        match written {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().files.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let synced = self
            .writable()
            .and_then(|()| self.state().file(fh))
            .and_then(|file| {
                if datasync {
                    file.sync_data()
                } else {
                    file.sync_all()
                }
                .map_err(errno)
            });
        match synced {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listed = (|| {
            let path = self.state().path(ino)?;
            let mut entries = vec![
                (ino, FileType::Directory, OsStr::new(".").to_owned()),
                (ino, FileType::Directory, OsStr::new("..").to_owned()),
            ];
            for entry in std::fs::read_dir(&path).map_err(errno)? {
                let entry = entry.map_err(errno)?;
                let kind = entry
                    .file_type()
                    .ok()
                    .and_then(FileType::from_std)
                    .unwrap_or(FileType::RegularFile);
                let child = self.state().inode(&entry.path());
                entries.push((child, kind, entry.file_name()));
            }
            Ok(entries)
        })();
        match listed {
            Ok(entries) => {
                for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
                    if reply.add(*ino, i as u64 + 1, *kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let path = match self.state().path(ino) {
            Ok(path) => path,
            Err(e) => return reply.error(e),
        };
        let Ok(name) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return reply.error(Errno::EINVAL);
        };
        // SAFETY: statvfs fills the zeroed struct; `name` is a valid C string.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(name.as_ptr(), &mut stat) } != 0 {
            return reply.error(errno(std::io::Error::last_os_error()));
        }
        #[allow(clippy::useless_conversion)]
        reply.statfs(
            u64::from(stat.f_blocks),
            u64::from(stat.f_bfree),
            u64::from(stat.f_bavail),
            u64::from(stat.f_files),
            u64::from(stat.f_ffree),
            stat.f_bsize as u32,
            stat.f_namemax as u32,
            stat.f_frsize as u32,
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if mask.contains(AccessFlags::W_OK) && self.writable().is_err() {
            return reply.error(Errno::EROFS);
        }
        match self.state().path(ino) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.do_create(parent, name, mode, flags) {
            Ok((attr, fh)) => reply.created(&TTL, &attr, Generation(0), fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }
}
