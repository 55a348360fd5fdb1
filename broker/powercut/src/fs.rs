//! The FUSE side: a passthrough to the backing directory whose file data writes stop in
//! [`Pending`] until the file is synced.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use parking_lot::Mutex;

use crate::pending::{Pending, read_full_at};

/// How long the kernel may cache entries and attributes. Short: after a cut the attributes
/// of the files that lost data are invalidated explicitly anyway.
const TTL: Duration = Duration::from_secs(1);

/// The largest range that a hole punch or zero-range fallocate is emulated for (it becomes
/// unsynced zeros in memory).
const MAX_ZERO_RANGE: u64 = 64 << 20;

/// What a cut threw away, or what a cut would throw away now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Unsynced written bytes.
    pub bytes: u64,
    /// Files with unsynced changes (data or size).
    pub files: u64,
}

struct Node {
    /// Path relative to the backing root ("" for the root).
    path: PathBuf,
}

#[derive(Default)]
struct Inodes {
    nodes: HashMap<u64, Node>,
    /// Backing inode number to ours. An entry goes when the backing inode's last link does,
    /// so a recycled backing inode number gets a fresh inode of ours (and no stale cache).
    by_backing: HashMap<u64, u64>,
    next: u64,
}

impl Inodes {
    fn register(&mut self, path: PathBuf, backing: u64) -> u64 {
        if let Some(&ino) = self.by_backing.get(&backing) {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.path = path;
            }
            return ino;
        }
        self.next += 1;
        let ino = self.next;
        self.by_backing.insert(backing, ino);
        self.nodes.insert(ino, Node { path });
        ino
    }

    /// Moves `from` (and everything under it) to `to`.
    fn renamed(&mut self, from: &Path, to: &Path) {
        for n in self.nodes.values_mut() {
            if let Ok(rest) = n.path.strip_prefix(from) {
                n.path = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
            }
        }
    }
}

struct Handle {
    file: Arc<File>,
    /// Opened with O_SYNC or O_DSYNC: every write is synced before it returns.
    sync: bool,
}

#[derive(Default)]
struct Handles {
    files: HashMap<u64, Handle>,
    dirs: HashMap<u64, Vec<(u64, FileType, OsString)>>,
    next: u64,
}

/// State shared by the FUSE threads and the [`crate::Mount`] that cuts the power.
pub(crate) struct Shared {
    root: PathBuf,
    inodes: Mutex<Inodes>,
    handles: Mutex<Handles>,
    /// Unsynced changes by inode. Everything that reads or changes file data holds this lock
    /// for the whole operation, so a cut or a sync is atomic with respect to them.
    pending: Mutex<HashMap<u64, Pending>>,
}

impl Shared {
    pub(crate) fn new(root: PathBuf) -> io::Result<Arc<Self>> {
        let md = std::fs::metadata(&root)?;
        if !md.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        let mut inodes = Inodes {
            next: INodeNo::ROOT.0,
            ..Inodes::default()
        };
        inodes.nodes.insert(
            INodeNo::ROOT.0,
            Node {
                path: PathBuf::new(),
            },
        );
        inodes.by_backing.insert(md.ino(), INodeNo::ROOT.0);
        Ok(Arc::new(Self {
            root,
            inodes: Mutex::new(inodes),
            handles: Mutex::new(Handles::default()),
            pending: Mutex::new(HashMap::new()),
        }))
    }

    /// Throws away every unsynced change.
    pub(crate) fn drop_pending(&self) -> (CutReport, Vec<u64>) {
        let dropped = std::mem::take(&mut *self.pending.lock());
        let report = CutReport {
            bytes: dropped.values().map(Pending::bytes).sum(),
            files: dropped.len() as u64,
        };
        (report, dropped.into_keys().collect())
    }

    /// Applies every unsynced change to the backing files, as if each file had been
    /// fsynced (the kernel's background writeback, or `sync(1)`). Files whose backing file
    /// cannot be opened (unlinked ones) stay unsynced.
    pub(crate) fn sync_all(&self) -> CutReport {
        let mut report = CutReport::default();
        let mut pending = self.pending.lock();
        let inos: Vec<u64> = pending.keys().copied().collect();
        for ino in inos {
            let Ok(path) = self.path(INodeNo(ino)) else {
                continue;
            };
            let Ok(file) = OpenOptions::new().write(true).open(&path) else {
                continue;
            };
            let bytes = pending.get(&ino).map_or(0, Pending::bytes);
            if sync_locked(&mut pending, ino, &file).is_ok() {
                report.bytes += bytes;
                report.files += 1;
            }
        }
        report
    }

    pub(crate) fn pending_report(&self) -> CutReport {
        let p = self.pending.lock();
        CutReport {
            bytes: p.values().map(Pending::bytes).sum(),
            files: p.len() as u64,
        }
    }

    pub(crate) fn all_inodes(&self) -> Vec<u64> {
        self.inodes.lock().nodes.keys().copied().collect()
    }

    fn rel(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.inodes
            .lock()
            .nodes
            .get(&ino.0)
            .map(|n| n.path.clone())
            .ok_or(Errno::ENOENT)
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        Ok(self.root.join(self.rel(ino)?))
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<(PathBuf, PathBuf), Errno> {
        let rel = self.rel(parent)?.join(name);
        Ok((self.root.join(&rel), rel))
    }

    fn file(&self, fh: FileHandle) -> Result<(Arc<File>, bool), Errno> {
        self.handles
            .lock()
            .files
            .get(&fh.0)
            .map(|h| (h.file.clone(), h.sync))
            .ok_or(Errno::EBADF)
    }

    fn new_handle(&self, file: File, sync: bool) -> u64 {
        let mut h = self.handles.lock();
        h.next += 1;
        let fh = h.next;
        h.files.insert(
            fh,
            Handle {
                file: Arc::new(file),
                sync,
            },
        );
        fh
    }

    /// The attributes applications see: the backing file's, with the unsynced size.
    fn attr(&self, ino: u64, md: &Metadata) -> FileAttr {
        let size = self
            .pending
            .lock()
            .get(&ino)
            .map_or(md.size(), Pending::size);
        attr_of(ino, md, size)
    }

    /// Registers the entry `rel` (just looked up or created) and answers with it.
    fn entry(&self, rel: PathBuf, md: &Metadata, reply: ReplyEntry) {
        let ino = self.inodes.lock().register(rel, md.ino());
        reply.entry(&TTL, &self.attr(ino, md), Generation(0));
    }

    /// Runs `f` on the unsynced state of `ino` (created over `file`'s current size), then
    /// applies it at once when `sync`.
    fn change(
        &self,
        ino: u64,
        file: &File,
        sync: bool,
        f: impl FnOnce(&mut Pending),
    ) -> io::Result<()> {
        let mut pending = self.pending.lock();
        let p = match pending.entry(ino) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Pending::new(file.metadata()?.len()))
            }
        };
        f(p);
        if p.is_clean() {
            pending.remove(&ino);
        } else if sync {
            sync_locked(&mut pending, ino, file)?;
        }
        Ok(())
    }

    /// Opens the backing file of `ino` for a handle: read-write if possible (reads of the
    /// merged view need the backing data whatever the caller's mode), else as asked.
    fn open_backing(path: &Path, flags: OpenFlags) -> io::Result<File> {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => Ok(f),
            Err(_) => {
                let acc = flags.0 & libc::O_ACCMODE;
                OpenOptions::new()
                    .read(acc != libc::O_WRONLY)
                    .write(acc != libc::O_RDONLY)
                    .open(path)
            }
        }
    }
}

/// Applies the unsynced state of `ino` to its backing file; on failure it stays unsynced.
fn sync_locked(pending: &mut HashMap<u64, Pending>, ino: u64, file: &File) -> io::Result<()> {
    if let Some(p) = pending.remove(&ino)
        && let Err(e) = p.apply(file)
    {
        pending.insert(ino, p);
        return Err(e);
    }
    Ok(())
}

fn systime(secs: i64, nsecs: i64) -> SystemTime {
    let (Ok(s), Ok(n)) = (u64::try_from(secs), u32::try_from(nsecs)) else {
        return UNIX_EPOCH;
    };
    UNIX_EPOCH + Duration::new(s, n)
}

fn attr_of(ino: u64, md: &Metadata, size: u64) -> FileAttr {
    let kind = FileType::from_std(md.file_type()).unwrap_or(FileType::RegularFile);
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512).max(md.blocks()),
        atime: systime(md.atime(), md.atime_nsec()),
        mtime: systime(md.mtime(), md.mtime_nsec()),
        ctime: systime(md.ctime(), md.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind,
        perm: (md.mode() & 0o7777) as u16,
        nlink: md.nlink().try_into().unwrap_or(u32::MAX),
        uid: md.uid(),
        gid: md.gid(),
        rdev: md.rdev().try_into().unwrap_or(0),
        blksize: 4096,
        flags: 0,
    }
}

fn nix_errno(e: nix::Error) -> Errno {
    Errno::from_i32(e as i32)
}

fn timespec(t: Option<TimeOrNow>) -> nix::sys::time::TimeSpec {
    use nix::sys::time::TimeSpec;
    match t {
        None => TimeSpec::UTIME_OMIT,
        Some(TimeOrNow::Now) => TimeSpec::UTIME_NOW,
        Some(TimeOrNow::SpecificTime(t)) => {
            TimeSpec::from_duration(t.duration_since(UNIX_EPOCH).unwrap_or_default())
        }
    }
}

/// The filesystem handed to fuser.
pub(crate) struct PowerCutFs {
    pub(crate) shared: Arc<Shared>,
}

macro_rules! tryr {
    ($reply:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => {
                $reply.error(e.into());
                return;
            }
        }
    };
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let s = &self.shared;
        let (path, rel) = tryr!(reply, s.child(parent, name));
        let md = tryr!(reply, std::fs::symlink_metadata(&path));
        s.entry(rel, &md, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let s = &self.shared;
        // Through the handle when there is one: the file may be unlinked and still open.
        let md = match fh.and_then(|fh| s.file(fh).ok()) {
            Some((file, _)) => file.metadata(),
            None => std::fs::symlink_metadata(tryr!(reply, s.path(ino))),
        };
        let md = tryr!(reply, md);
        reply.attr(&TTL, &s.attr(ino.0, &md));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let s = &self.shared;
        let path = tryr!(reply, s.path(ino));
        let handle = fh.and_then(|fh| s.file(fh).ok());
        if let Some(mode) = mode {
            let perm = std::fs::Permissions::from_mode(mode & 0o7777);
            let r = match &handle {
                Some((f, _)) => f.set_permissions(perm),
                None => std::fs::set_permissions(&path, perm),
            };
            tryr!(reply, r);
        }
        if uid.is_some() || gid.is_some() {
            let r = match &handle {
                Some((f, _)) => std::os::unix::fs::fchown(f.as_ref(), uid, gid),
                None => std::os::unix::fs::lchown(&path, uid, gid),
            };
            tryr!(reply, r);
        }
        if let Some(size) = size {
            // A size change is data: it stays in memory until a sync, like a write.
            let (file, sync) = match &handle {
                Some((f, sync)) => (f.clone(), *sync),
                None => (
                    Arc::new(tryr!(
                        reply,
                        OpenOptions::new().read(true).write(true).open(&path)
                    )),
                    false,
                ),
            };
            tryr!(reply, s.change(ino.0, &file, sync, |p| p.truncate(size)));
        }
        if atime.is_some() || mtime.is_some() {
            let (a, m) = (timespec(atime), timespec(mtime));
            let r = match &handle {
                Some((f, _)) => nix::sys::stat::futimens(f.as_ref(), &a, &m),
                None => nix::sys::stat::utimensat(
                    nix::fcntl::AT_FDCWD,
                    &path,
                    &a,
                    &m,
                    nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                ),
            };
            tryr!(reply, r.map_err(nix_errno));
        }
        let md = match &handle {
            Some((f, _)) => f.metadata(),
            None => std::fs::symlink_metadata(&path),
        };
        let md = tryr!(reply, md);
        reply.attr(&TTL, &s.attr(ino.0, &md));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let path = tryr!(reply, self.shared.path(ino));
        let target = tryr!(reply, std::fs::read_link(path));
        reply.data(std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()));
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        use nix::sys::stat::{Mode, SFlag};
        let s = &self.shared;
        let (path, rel) = tryr!(reply, s.child(parent, name));
        let kind = SFlag::from_bits_truncate(mode & libc::S_IFMT);
        let perm = Mode::from_bits_truncate(mode & 0o7777 & !umask);
        tryr!(
            reply,
            nix::sys::stat::mknod(&path, kind, perm, u64::from(rdev)).map_err(nix_errno)
        );
        let md = tryr!(reply, std::fs::symlink_metadata(&path));
        s.entry(rel, &md, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let s = &self.shared;
        let (path, rel) = tryr!(reply, s.child(parent, name));
        tryr!(
            reply,
            std::fs::DirBuilder::new()
                .mode(mode & 0o7777 & !umask)
                .create(&path)
        );
        let md = tryr!(reply, std::fs::symlink_metadata(&path));
        s.entry(rel, &md, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let s = &self.shared;
        let (path, _) = tryr!(reply, s.child(parent, name));
        let md = tryr!(reply, std::fs::symlink_metadata(&path));
        tryr!(reply, std::fs::remove_file(&path));
        if md.nlink() <= 1 {
            s.inodes.lock().by_backing.remove(&md.ino());
        }
        reply.ok();
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let s = &self.shared;
        let (path, _) = tryr!(reply, s.child(parent, name));
        let md = tryr!(reply, std::fs::symlink_metadata(&path));
        tryr!(reply, std::fs::remove_dir(&path));
        s.inodes.lock().by_backing.remove(&md.ino());
        reply.ok();
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let s = &self.shared;
        let (path, rel) = tryr!(reply, s.child(parent, link_name));
        tryr!(reply, std::os::unix::fs::symlink(target, &path));
        let md = tryr!(reply, std::fs::symlink_metadata(&path));
        s.entry(rel, &md, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let s = &self.shared;
        let (from, from_rel) = tryr!(reply, s.child(parent, name));
        let (to, to_rel) = tryr!(reply, s.child(newparent, newname));
        let replaced = std::fs::symlink_metadata(&to).ok();
        let r = if flags.is_empty() {
            std::fs::rename(&from, &to)
        } else {
            nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &from,
                nix::fcntl::AT_FDCWD,
                &to,
                nix::fcntl::RenameFlags::from_bits_truncate(flags.bits()),
            )
            .map_err(io::Error::from)
        };
        tryr!(reply, r);
        let mut inodes = s.inodes.lock();
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            // Through a name that is in neither tree, so the two moves don't mix.
            let tmp = PathBuf::from("\0exchange");
            inodes.renamed(&to_rel, &tmp);
            inodes.renamed(&from_rel, &to_rel);
            inodes.renamed(&tmp, &from_rel);
        } else {
            if let Some(md) = replaced
                && (md.is_dir() || md.nlink() <= 1)
            {
                inodes.by_backing.remove(&md.ino());
            }
            inodes.renamed(&from_rel, &to_rel);
        }
        reply.ok();
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let s = &self.shared;
        let from = tryr!(reply, s.path(ino));
        let (path, rel) = tryr!(reply, s.child(newparent, newname));
        tryr!(reply, std::fs::hard_link(&from, &path));
        let md = tryr!(reply, std::fs::symlink_metadata(&path));
        s.entry(rel, &md, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let s = &self.shared;
        let path = tryr!(reply, s.path(ino));
        let file = tryr!(reply, Shared::open_backing(&path, flags));
        let sync = flags.0 & (libc::O_SYNC | libc::O_DSYNC) != 0;
        if flags.0 & libc::O_TRUNC != 0 {
            tryr!(reply, s.change(ino.0, &file, sync, |p| p.truncate(0)));
        }
        let fh = s.new_handle(file, sync);
        // No FOPEN_KEEP_CACHE: every open starts from a clean page cache for the file.
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let s = &self.shared;
        let (file, _) = tryr!(reply, s.file(fh));
        let pending = s.pending.lock();
        let data = match pending.get(&ino.0) {
            Some(p) => p.read(&file, offset, size),
            None => {
                let mut buf = vec![0u8; size as usize];
                read_full_at(&file, &mut buf, offset).map(|n| {
                    buf.truncate(n);
                    buf
                })
            }
        };
        drop(pending);
        let data = tryr!(reply, data);
        reply.data(&data);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let s = &self.shared;
        let (file, sync) = tryr!(reply, s.file(fh));
        let Ok(len) = u32::try_from(data.len()) else {
            reply.error(Errno::EINVAL);
            return;
        };
        tryr!(
            reply,
            s.change(ino.0, &file, sync, |p| p.write(offset, data))
        );
        reply.written(len);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is not a sync.
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
        self.shared.handles.lock().files.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // fsync and fdatasync through any handle sync the whole file, as on a real
        // filesystem. Size changes count as data (fdatasync syncs them too).
        let s = &self.shared;
        let (file, _) = tryr!(reply, s.file(fh));
        let mut pending = s.pending.lock();
        tryr!(reply, sync_locked(&mut pending, ino.0, &file));
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let s = &self.shared;
        let rel = tryr!(reply, s.rel(ino));
        let read = tryr!(reply, std::fs::read_dir(s.root.join(&rel)));
        let mut entries = vec![
            (ino.0, FileType::Directory, OsString::from(".")),
            (ino.0, FileType::Directory, OsString::from("..")),
        ];
        {
            let mut inodes = s.inodes.lock();
            for e in read.flatten() {
                let kind = e
                    .file_type()
                    .ok()
                    .and_then(FileType::from_std)
                    .unwrap_or(FileType::RegularFile);
                let name = e.file_name();
                let child =
                    inodes.register(rel.join(&name), std::os::unix::fs::DirEntryExt::ino(&e));
                entries.push((child, kind, name));
            }
        }
        let mut h = s.handles.lock();
        h.next += 1;
        let fh = h.next;
        h.dirs.insert(fh, entries);
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let h = self.shared.handles.lock();
        let Some(entries) = h.dirs.get(&fh.0) else {
            reply.error(Errno::EBADF);
            return;
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(skip) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        drop(h);
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.shared.handles.lock().dirs.remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory changes are passed through at once: already durable.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let st = tryr!(
            reply,
            nix::sys::statvfs::statvfs(&self.shared.root).map_err(nix_errno)
        );
        reply.statfs(
            st.blocks(),
            st.blocks_free(),
            st.blocks_available(),
            st.files(),
            st.files_free(),
            u32::try_from(st.block_size()).unwrap_or(4096),
            u32::try_from(st.name_max()).unwrap_or(255),
            u32::try_from(st.fragment_size()).unwrap_or(4096),
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        match self.shared.path(ino).map(std::fs::symlink_metadata) {
            Ok(Ok(_)) => reply.ok(),
            Ok(Err(e)) => reply.error(e.into()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let s = &self.shared;
        let (path, rel) = tryr!(reply, s.child(parent, name));
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).mode(mode & 0o7777 & !umask);
        if flags & libc::O_EXCL != 0 {
            opts.create_new(true);
        } else {
            opts.create(true);
        }
        let file = tryr!(reply, opts.open(&path));
        let md = tryr!(reply, file.metadata());
        let ino = s.inodes.lock().register(rel, md.ino());
        let sync = flags & (libc::O_SYNC | libc::O_DSYNC) != 0;
        if flags & libc::O_TRUNC != 0 && md.len() > 0 {
            tryr!(reply, s.change(ino, &file, sync, |p| p.truncate(0)));
        }
        let attr = s.attr(ino, &md);
        let fh = s.new_handle(file, sync);
        reply.created(
            &TTL,
            &attr,
            Generation(0),
            FileHandle(fh),
            FopenFlags::empty(),
        );
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let s = &self.shared;
        let (file, sync) = tryr!(reply, s.file(fh));
        let end = offset.saturating_add(length);
        let keep = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let zero = mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0;
        let known =
            libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE;
        if mode & !known != 0
            || (mode & libc::FALLOC_FL_PUNCH_HOLE != 0 && !keep)
            || (zero && length > MAX_ZERO_RANGE)
        {
            reply.error(Errno::EOPNOTSUPP);
            return;
        }
        let r = s.change(ino.0, &file, sync, |p| {
            // Space reservation itself is invisible; what shows is the size and zeros.
            let visible_end = if keep { end.min(p.size()) } else { end };
            if zero && offset < visible_end {
                let zeros = vec![0u8; (visible_end - offset) as usize];
                p.write(offset, &zeros);
            }
            if !keep {
                p.extend(end);
            }
        });
        tryr!(reply, r);
        reply.ok();
    }
}
