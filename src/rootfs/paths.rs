//! Resolving container paths without ever leaving the container's root.
//!
//! Every lookup goes through openat2(2) with RESOLVE_IN_ROOT from an O_PATH
//! fd of the root: symlinks (absolute or "..") are resolved as if the root
//! were "/", and magic links (/proc/self/root, /proc/PID/fd/N) are refused.
//! Mounts then target the resulting fd ("/proc/self/fd/N" or move_mount), so
//! a path component swapped for a symlink after the check cannot redirect
//! the mount onto the host (CVE-2021-30465).

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, mkdirat};

use super::options::clean_container_path;
use crate::sys::{Ctx, SysError, SysResult};

/// An O_PATH handle on a directory that plays "/" for lookups.
pub struct RootDir {
    fd: OwnedFd,
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

impl RootDir {
    /// `path` is a trusted host path (the canonical rootfs, or "/").
    pub fn open(path: &Path) -> SysResult<RootDir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx_at("open", path)?;
        Ok(RootDir { fd })
    }

    /// Check that "/proc/self/fd/N" names this process's fds (see
    /// `proc_fd`) before mounts are made through such paths.
    pub fn check_proc_fd(&self) -> SysResult<()> {
        crate::procfs::check_self_fd(&self.fd)
    }

    /// Open `path` (absolute or relative: both are relative to the root)
    /// with `flags`; the raw errno is kept so callers can branch on ENOENT.
    pub fn open_raw(&self, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        // openat2 rejects an empty path; the root itself is "/".
        let p: &Path = if path.as_os_str().is_empty() {
            Path::new("/")
        } else {
            path
        };
        // EAGAIN: a rename raced the ".." checks of RESOLVE_IN_ROOT; retry
        // a bounded number of times (a hostile renamer must not hang us).
        let mut tries = 0;
        loop {
            match openat2(self.fd.as_fd(), p, how(flags)) {
                Err(Errno::EAGAIN) | Err(Errno::EINTR) if tries < 32 => tries += 1,
                r => return r,
            }
        }
    }

    /// An O_PATH fd of `path`.
    pub fn open_path(&self, path: &Path) -> SysResult<OwnedFd> {
        self.open_raw(path, OFlag::O_PATH).ctx_at("openat2", path)
    }

    /// mkdir -p inside the root; returns an O_PATH fd of the directory.
    /// Each missing component is created with mkdirat in its parent's fd,
    /// the parent itself resolved in the root, so a symlink anywhere on
    /// the way can only lead to another place inside the root. A dangling
    /// symlink on the way has its target created (inside the root), as
    /// runc does (`/var/run -> /run` with no /run yet).
    pub fn mkdir_all(&self, path: &Path) -> SysResult<OwnedFd> {
        self.mkdir_all_depth(path, 0)
    }

    fn mkdir_all_depth(&self, path: &Path, depth: u32) -> SysResult<OwnedFd> {
        // Linux's own limit on symlinks followed in one lookup.
        const MAX_LINKS: u32 = 40;
        let dir = OFlag::O_PATH | OFlag::O_DIRECTORY;
        match self.open_raw(path, dir) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(SysError::at("openat2", path, e)),
        }
        let mut cur = PathBuf::from("/");
        let mut cur_fd = self.open_path(&cur)?;
        for comp in path.components() {
            let Component::Normal(name) = comp else {
                continue;
            };
            let parent = cur.clone();
            cur.push(name);
            match self.open_raw(&cur, dir) {
                Ok(fd) => {
                    cur_fd = fd;
                    continue;
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(SysError::at("openat2", &cur, e)),
            }
            match mkdirat(cur_fd.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                Ok(()) => {}
                // A dangling symlink: create its target, resolved the way
                // the kernel would, but inside the root.
                Err(Errno::EEXIST) => {
                    if depth >= MAX_LINKS {
                        return Err(SysError::at("mkdir", &cur, Errno::ELOOP));
                    }
                    let target =
                        nix::fcntl::readlinkat(cur_fd.as_fd(), name).ctx_at("readlink", &cur)?;
                    let target = clean_container_path(&parent.join(Path::new(&target)));
                    self.mkdir_all_depth(&target, depth + 1)?;
                }
                Err(e) => return Err(SysError::at("mkdirat", &cur, e)),
            }
            cur_fd = self.open_raw(&cur, dir).ctx_at("openat2", &cur)?;
        }
        Ok(cur_fd)
    }

    /// The parent directory of `path` (created if missing) and the last
    /// component's name, for the *at calls that create the entry itself.
    pub fn parent_of<'p>(&self, path: &'p Path) -> SysResult<(OwnedFd, &'p OsStr)> {
        let name = path
            .file_name()
            .ok_or_else(|| SysError::at("resolve", path, Errno::EINVAL))?;
        let parent = path.parent().unwrap_or(Path::new("/"));
        Ok((self.mkdir_all(parent)?, name))
    }

    /// Open `path` as an O_PATH fd, creating an empty regular file (and
    /// its parents) first if it does not exist.
    pub fn create_file(&self, path: &Path, mode: u32) -> SysResult<OwnedFd> {
        match self.open_raw(path, OFlag::O_PATH) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(SysError::at("openat2", path, e)),
        }
        let (parent, name) = self.parent_of(path)?;
        // O_EXCL|O_NOFOLLOW: never create through a (dangling) symlink.
        match nix::fcntl::openat(
            parent.as_fd(),
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        ) {
            Ok(_) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(SysError::at("create", path, e)),
        }
        self.open_path(path)
    }
}

/// The magic-link path of an fd, for syscalls that only take paths. Only
/// valid while the host's (or a verified) procfs is at /proc.
pub fn proc_fd(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}
