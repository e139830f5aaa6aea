//! After the root switch: `root.readonly`, `linux.maskedPaths` and
//! `linux.readonlyPaths`. The container's "/" is now the root, so lookups
//! from an O_PATH fd of "/" with RESOLVE_IN_ROOT cannot leave it, and all
//! mounts go through fds (new mount API): /proc may be missing or be
//! whatever the image put there.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::sys::stat::{fstat, major, minor};

use super::RootfsError;
use super::newmount::{MOUNT_ATTR_RDONLY, attach, clone_tree, readonly_tmpfs, set_attr};
use super::options::{clean_container_path, locked_flags};
use super::paths::RootDir;
use crate::sys::{Ctx, SysError, SysResult};

/// Remount "/" read-only. As runc: plainly first; if the kernel refuses
/// (locked flags in a user namespace), again with the current flags kept.
pub fn readonly_root() -> SysResult<()> {
    let root = Path::new("/");
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    let none: Option<&str> = None;
    match mount(none, root, none, flags, none) {
        Err(Errno::EPERM) => {
            let vfs = nix::sys::statvfs::statvfs(root).ctx_at("statvfs", root)?;
            let keep = locked_flags(vfs.flags().bits());
            mount(none, root, none, flags | keep, none).ctx_at("remount read-only", root)
        }
        r => r.ctx_at("remount read-only", root),
    }
}

/// Open `path` in the root; None if it does not exist (runc skips those).
fn open_existing(root: &RootDir, path: &Path) -> SysResult<Option<OwnedFd>> {
    match root.open_raw(path, OFlag::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(SysError::at("openat2", path, e)),
    }
}

fn is_dir(fd: &OwnedFd, path: &Path) -> SysResult<bool> {
    let st = fstat(fd.as_fd()).ctx_at("stat", path)?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// The container's /dev/null, checked to be the real null device: an image
/// could ship a regular file or another device there, and binding that
/// over a masked path would unmask (or expose) data instead of hiding it.
fn dev_null(root: &RootDir) -> Result<OwnedFd, RootfsError> {
    let path = Path::new("/dev/null");
    let fd = root.open_path(path)?;
    let st = fstat(fd.as_fd()).ctx_at("stat", path)?;
    let is_chr = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
    if !is_chr || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3 {
        return Err(RootfsError::Config {
            field: "linux.maskedPaths".into(),
            msg: "/dev/null in the container is not the null device (char 1:3)".into(),
        });
    }
    Ok(fd)
}

/// Hide each path: a read-only tmpfs over a directory, /dev/null over
/// anything else. Missing paths are skipped. Every masked directory shows
/// the same empty tmpfs (one superblock, cloned), as runc 1.2+ does: a
/// config masking many directories costs one tmpfs, not one each.
pub fn mask_paths(root: &RootDir, paths: &[String]) -> Result<(), RootfsError> {
    let mut null: Option<OwnedFd> = None;
    let mut empty: Option<OwnedFd> = None;
    for (i, p) in paths.iter().enumerate() {
        let at = |e: SysError| RootfsError::At {
            field: format!("linux.maskedPaths[{i}]"),
            source: e,
        };
        let path = clean_container_path(Path::new(p));
        let Some(target) = open_existing(root, &path).map_err(at)? else {
            continue;
        };
        let dir = is_dir(&target, &path).map_err(at)?;
        let tree = if dir {
            match &empty {
                Some(first) => {
                    let tree = clone_tree(first, false, &path).map_err(at)?;
                    set_attr(&tree, MOUNT_ATTR_RDONLY, 0, false, &path).map_err(at)?;
                    tree
                }
                None => readonly_tmpfs(&path).map_err(at)?,
            }
        } else {
            if null.is_none() {
                null = Some(dev_null(root)?);
            }
            match &null {
                Some(fd) => clone_tree(fd, false, &path).map_err(at)?,
                None => continue,
            }
        };
        attach(&tree, &target, &path).map_err(at)?;
        if dir && empty.is_none() {
            empty = Some(tree);
        }
    }
    Ok(())
}

/// Make each path a read-only bind of itself (recursive bind, read-only on
/// the top mount, other flags kept). Missing paths are skipped.
pub fn readonly_paths(root: &RootDir, paths: &[String]) -> Result<(), RootfsError> {
    for (i, p) in paths.iter().enumerate() {
        let at = |e: SysError| RootfsError::At {
            field: format!("linux.readonlyPaths[{i}]"),
            source: e,
        };
        let path = clean_container_path(Path::new(p));
        let Some(target) = open_existing(root, &path).map_err(at)? else {
            continue;
        };
        let tree = clone_tree(&target, true, &path).map_err(at)?;
        // Read-only before it is attached: there is never a writable window.
        set_attr(&tree, MOUNT_ATTR_RDONLY, 0, false, &path).map_err(at)?;
        attach(&tree, &target, &path).map_err(at)?;
    }
    Ok(())
}
