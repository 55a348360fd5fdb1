//! A FUSE filesystem that simulates a power cut, for testing what a store promises about
//! acknowledged data (in the spirit of LazyFS).
//!
//! It passes everything through to a backing directory **except file data**: writes, size
//! changes (`ftruncate`, writes past EOF, `fallocate`) and `O_TRUNC` stay in memory until
//! the file is synced. Reads see them (the page-cache view: read-your-writes, from any
//! handle). A sync applies them to the backing file:
//! - `fsync` or `fdatasync` on any handle of the file (as on a real filesystem, a sync covers
//!   the file, not the handle);
//! - every write through a handle opened with `O_SYNC` or `O_DSYNC`.
//!
//! A **power cut** ([`Mount::cut`], or `SIGUSR1` to the CLI) throws away every change not
//! yet synced: each backing file keeps exactly what was synced, and its size goes back to
//! the synced size. The filesystem keeps serving afterwards, so a server can be restarted on
//! the same mount and see what a machine would see after the power came back.
//!
//! # Metadata is durable at once
//! Creating, renaming, linking and removing files and directories, `chmod`, `chown` and
//! `utimens` are passed through immediately and survive a cut (`fsync` of a directory is a
//! no-op). That is the conservative choice: it favours the server under test (a real
//! filesystem may lose a new directory entry that was never fsynced), so a loss this
//! filesystem shows is a loss a real machine can show too. Consequences:
//! - a file created and written but never fsynced survives a cut, empty;
//! - "write a temp file, rename it over the old one" without an fsync leaves, after a cut,
//!   the new name pointing at the new file with only its synced bytes (usually none).
//!
//! # Page cache
//! The kernel's page cache for the mount holds the unsynced data too (it is what reads were
//! served from). Every open starts with the file's cache dropped (no `keep_cache`); a cut
//! first invalidates the cache of every file the kernel knows (which also pushes dirty
//! pages of shared writable `mmap`s to this filesystem, where they are dropped with the
//! rest), then drops the unsynced state, then invalidates the files that lost data once
//! more, with their attributes. So a handle or mapping opened before the cut reads the
//! synced data after it.
//!
//! # Known limits
//! - `sync(2)` and `syncfs(2)` do not reach a FUSE filesystem: they persist nothing here
//!   (a server relying on them instead of `fsync` looks worse than on a real disk).
//! - Pages of a shared writable `mmap` dirtied *after* the cut's first invalidation and
//!   written back later arrive as new, unsynced writes.
//! - `mtime` is not advanced by unsynced writes.
//! - `fallocate` hole punching and zero ranges are emulated as unsynced zeros (up to 64
//!   MiB); other modes than those and plain allocation get `EOPNOTSUPP`.
//! - Extended attributes are not supported; locks are kept by the kernel (local locks).
//! - Unsynced data lives in this process's memory.
//! - No background writeback: a real kernel writes dirty pages back within about 30 s
//!   (`vm.dirty_expire_centisecs`) and ext4 commits its journal every 5 s, so on a real
//!   machine an unsynced write usually survives a cut that comes late enough. This
//!   filesystem shows the worst case, any time (call [`Mount::sync_all`] to model a
//!   writeback at a chosen moment).
//!
//! # CLI
//! `natrix-powercut <backing-dir> <mountpoint> [--control <fifo>]` mounts in the
//! foreground and prints `ready` once mounted. `SIGUSR1` cuts the power and prints
//! `cut: dropped N bytes in M files` when done; with `--control`, writing the line `cut` to
//! that FIFO does the same, `pending` prints `pending: N bytes in M files`, and `sync`
//! makes everything durable ([`Mount::sync_all`]) and prints `sync: wrote N bytes in M
//! files`.
//! `SIGTERM` or `SIGINT` unmounts and exits.
//!
//! Mounting needs `/dev/fuse` and root (or `fusermount3` from Debian's `fuse3`).

mod fs;
pub mod pending;

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

pub use fs::CutReport;
use fuser::{BackgroundSession, Config, INodeNo, MountOption, Notifier};

/// A mounted power-cut filesystem. Dropping it unmounts (lazily if the mount is busy).
pub struct Mount {
    session: parking_lot::Mutex<Option<BackgroundSession>>,
    notifier: Notifier,
    shared: Arc<fs::Shared>,
    mountpoint: PathBuf,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

/// Why this machine cannot mount FUSE filesystems, if it cannot: no `/dev/fuse`, or not
/// root and no `fusermount3`.
pub fn unavailable() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is absent".into());
    }
    if !nix::unistd::geteuid().is_root() && !has_fusermount() {
        return Some("not root and no fusermount3".into());
    }
    None
}

fn has_fusermount() -> bool {
    Command::new("fusermount3")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

impl Mount {
    /// Mounts a power-cut view of `backing` at `mountpoint` (both existing directories).
    /// Returns once the kernel has the filesystem.
    pub fn new(backing: impl AsRef<Path>, mountpoint: impl AsRef<Path>) -> io::Result<Self> {
        let root = backing.as_ref().canonicalize()?;
        let mountpoint = mountpoint.as_ref().canonicalize()?;
        let shared = fs::Shared::new(root)?;
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("natrix-powercut".into()),
            MountOption::Subtype("natrix-powercut".into()),
        ];
        config.n_threads = Some(4);
        config.clone_fd = true;
        let fs = fs::PowerCutFs {
            shared: shared.clone(),
        };
        let session = fuser::spawn_mount(fs, &mountpoint, &config)?;
        Ok(Self {
            notifier: session.notifier(),
            session: parking_lot::Mutex::new(Some(session)),
            shared,
            mountpoint,
        })
    }

    /// Where the filesystem is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// What a cut would throw away now.
    pub fn pending(&self) -> CutReport {
        self.shared.pending_report()
    }

    /// Makes every change so far durable, as if every file had been fsynced: the kernel's
    /// background writeback at a chosen moment (or `sync(1)`). A harness uses it to make the
    /// setup of a test durable before the part under test; returns what it wrote.
    pub fn sync_all(&self) -> CutReport {
        self.shared.sync_all()
    }

    /// Cuts the power: throws away every change not yet synced, and the kernel's cached view
    /// of it. The filesystem keeps serving.
    pub fn cut(&self) -> CutReport {
        // Dirty pages of shared mappings reach us through this invalidation (the kernel
        // writes them back first), so they are dropped below with the rest. Errors are
        // expected for inodes the kernel has forgotten.
        for ino in self.shared.all_inodes() {
            let _ = self.notifier.inval_inode(INodeNo(ino), 0, 0);
        }
        let (report, inos) = self.shared.drop_pending();
        for ino in inos {
            let _ = self.notifier.inval_inode(INodeNo(ino), 0, 0);
        }
        report
    }

    /// Unmounts, waiting for the FUSE threads; falls back to a lazy unmount if the mount is
    /// busy. Later calls do nothing.
    pub fn unmount(&self) -> io::Result<()> {
        let Some(session) = self.session.lock().take() else {
            return Ok(());
        };
        match session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(e) => {
                force_unmount(&self.mountpoint);
                Err(e)
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}

/// Detaches whatever is mounted at `mountpoint` (a lazy unmount, then `fusermount3 -u -z`,
/// then `umount -l`): for leftovers of a process that died without unmounting.
pub fn force_unmount(mountpoint: &Path) {
    if nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH).is_ok() {
        return;
    }
    for (cmd, args) in [("fusermount3", ["-u", "-z"]), ("umount", ["-l", "--"])] {
        let ok = Command::new(cmd)
            .args(args)
            .arg(mountpoint)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
    }
}
