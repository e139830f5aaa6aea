//! The fd-based mount API (open_tree, move_mount, mount_setattr, fsopen,
//! fsconfig, fsmount; Linux >= 5.12). Used after the root switch, when
//! there may be no trustworthy procfs for "/proc/self/fd/N" targets.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;

use crate::sys::{SysError, SysResult, own};

// uapi/linux/mount.h and fcntl.h values (stable kernel ABI).
const OPEN_TREE_CLONE: u32 = 1;
const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
const AT_EMPTY_PATH: u32 = libc::AT_EMPTY_PATH as u32;
const AT_RECURSIVE: u32 = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
const FSOPEN_CLOEXEC: u32 = 1;
const FSMOUNT_CLOEXEC: u32 = 1;
const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
// MOUNT_ATTR_*: for mount_setattr, fsmount and the recursive mount options.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_IDMAP: u64 = 0x100000;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const EMPTY: &std::ffi::CStr = c"";

fn ret_fd(ret: libc::c_long, op: &'static str, path: &Path) -> SysResult<OwnedFd> {
    if ret < 0 {
        return Err(SysError::at(op, path, Errno::last()));
    }
    let fd = RawFd::try_from(ret).map_err(|_| SysError::at(op, path, Errno::EBADF))?;
    Ok(own(fd))
}

fn ret_unit(ret: libc::c_long, op: &'static str, path: &Path) -> SysResult<()> {
    if ret < 0 {
        return Err(SysError::at(op, path, Errno::last()));
    }
    Ok(())
}

/// A detached copy of the mount tree at `fd` (recursive if `rec`).
/// `path` only names the object in errors.
pub fn clone_tree(fd: &OwnedFd, rec: bool, path: &Path) -> SysResult<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH;
    if rec {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: fd is an open descriptor we own for the duration of the
    // call; EMPTY is a NUL-terminated static string.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), EMPTY.as_ptr(), flags) };
    ret_fd(ret, "open_tree", path)
}

/// Attach the detached mount `tree` on top of the object `target` refers to.
pub fn attach(tree: &OwnedFd, target: &OwnedFd, path: &Path) -> SysResult<()> {
    // SAFETY: both fds are open and owned by the caller; the two paths are
    // the NUL-terminated empty static string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            EMPTY.as_ptr(),
            target.as_raw_fd(),
            EMPTY.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    ret_unit(ret, "move_mount", path)
}

/// Set and clear mount attributes (MOUNT_ATTR_*) on the mount `fd` refers
/// to (and every mount below it if `recursive`), leaving the others as
/// they are.
pub fn set_attr(
    fd: &OwnedFd,
    attr_set: u64,
    attr_clr: u64,
    recursive: bool,
    path: &Path,
) -> SysResult<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: 0,
    };
    mount_setattr(fd, &attr, recursive, "mount_setattr", path)
}

/// Give the detached tree `fd` the id mapping of the user namespace
/// `userns` (MOUNT_ATTR_IDMAP); only its top mount unless `recursive`. The
/// kernel allows this only before the tree is attached anywhere.
pub fn set_idmap(fd: &OwnedFd, userns: &OwnedFd, recursive: bool, path: &Path) -> SysResult<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: u64::from(userns.as_raw_fd().unsigned_abs()),
    };
    // userns stays open (borrowed) for the duration of the call.
    mount_setattr(
        fd,
        &attr,
        recursive,
        "mount_setattr(MOUNT_ATTR_IDMAP)",
        path,
    )
}

fn mount_setattr(
    fd: &OwnedFd,
    attr: &MountAttr,
    recursive: bool,
    op: &'static str,
    path: &Path,
) -> SysResult<()> {
    let flags = if recursive {
        AT_EMPTY_PATH | AT_RECURSIVE
    } else {
        AT_EMPTY_PATH
    };
    // SAFETY: attr is a valid mount_attr (VER0 layout) that outlives the
    // call and whose size we pass; fd (and any userns fd in attr) is open;
    // the path is the empty static string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    ret_unit(ret, op, path)
}

fn fsconfig(
    fs: &OwnedFd,
    cmd: u32,
    key: Option<&CString>,
    value: Option<&CString>,
    path: &Path,
) -> SysResult<()> {
    let key = key.map_or(std::ptr::null(), |k| k.as_ptr());
    let value = value.map_or(std::ptr::null(), |v| v.as_ptr());
    // SAFETY: fs is an open fs context; key/value are null or point to
    // NUL-terminated strings that outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, key, value, 0) };
    ret_unit(ret, "fsconfig", path)
}

/// A new file system of type `fstype`, mounted nowhere (fsopen, fsconfig,
/// fsmount): `source` as its source, `ro` for a read-only superblock, and
/// the MOUNT_ATTR_* `attrs` on the mount. `path` only names it in errors.
pub fn new_fs(
    fstype: &CStr,
    source: Option<&CStr>,
    ro: bool,
    attrs: u64,
    path: &Path,
) -> SysResult<OwnedFd> {
    // SAFETY: the fs name is a NUL-terminated string that outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    let fs = ret_fd(ret, "fsopen", path)?;
    if let Some(src) = source {
        let key = CString::from(c"source");
        fsconfig(
            &fs,
            FSCONFIG_SET_STRING,
            Some(&key),
            Some(&src.to_owned()),
            path,
        )?;
    }
    if ro {
        let key = CString::from(c"ro");
        fsconfig(&fs, FSCONFIG_SET_FLAG, Some(&key), None, path)?;
    }
    fsconfig(&fs, FSCONFIG_CMD_CREATE, None, None, path)?;
    // SAFETY: fs is an open fs context that has been created.
    let ret = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    ret_fd(ret, "fsmount", path)
}

/// A new, detached, read-only tmpfs (source "tmpfs", superblock "ro", as a
/// classic `mount -t tmpfs -o ro tmpfs` would show).
pub fn readonly_tmpfs(path: &Path) -> SysResult<OwnedFd> {
    new_fs(c"tmpfs", Some(c"tmpfs"), true, MOUNT_ATTR_RDONLY, path)
}
