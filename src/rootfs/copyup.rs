//! `tmpcopyup` (a runc/crun extension podman uses for tmpfs mounts): the
//! new tmpfs starts with a copy of what the image had at its destination.
//!
//! The copy reads through an fd of the destination taken *before* the
//! mount, which still reaches the covered directory, so no temporary mount
//! point is needed; every step is *at-relative with O_NOFOLLOW, so a
//! symlink in the image is copied as a symlink, never followed.

use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, fstatat, mkdirat, mknodat};
use nix::unistd::{Gid, Uid, fchownat, symlinkat};

use crate::sys::{SysError, SysResult};

/// Recursion limit: an image could nest directories arbitrarily deep.
const MAX_DEPTH: u32 = 128;

fn open_dir(dir: &OwnedFd, name: &CStr) -> nix::Result<OwnedFd> {
    openat(
        dir.as_fd(),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Copy the contents of directory `from` (an fd of the covered directory,
/// any open mode) into directory `to`. `dest` names the place in errors.
pub fn copy_up(from: &OwnedFd, to: &OwnedFd, dest: &Path) -> SysResult<()> {
    let from = open_dir(from, c".").map_err(|e| SysError::at("tmpcopyup: open", dest, e))?;
    let to = open_dir(to, c".").map_err(|e| SysError::at("tmpcopyup: open", dest, e))?;
    copy_dir(from, &to, dest, 0)
}

fn copy_dir(from: OwnedFd, to: &OwnedFd, dest: &Path, depth: u32) -> SysResult<()> {
    if depth > MAX_DEPTH {
        return Err(SysError::at("tmpcopyup", dest, Errno::ELOOP));
    }
    let err = |op: &'static str| move |e: Errno| SysError::at(op, dest, e);
    let src_fd = from
        .try_clone()
        .map_err(|_| SysError::at("tmpcopyup: dup", dest, Errno::EMFILE))?;
    let mut dir = Dir::from_fd(from).map_err(err("tmpcopyup: opendir"))?;
    for entry in dir.iter() {
        let entry = entry.map_err(err("tmpcopyup: readdir"))?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let path = dest.join(OsStr::from_bytes(name.to_bytes()));
        copy_entry(&src_fd, to, name, &path, depth)?;
    }
    Ok(())
}

fn copy_entry(from: &OwnedFd, to: &OwnedFd, name: &CStr, path: &Path, depth: u32) -> SysResult<()> {
    let err = |op: &'static str| move |e: Errno| SysError::at(op, path, e);
    let st = fstatat(from.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(err("tmpcopyup: stat"))?;
    let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
    match kind {
        SFlag::S_IFDIR => {
            mkdirat(to.as_fd(), name, perm).map_err(err("tmpcopyup: mkdir"))?;
            let sub_from = open_dir(from, name).map_err(err("tmpcopyup: open"))?;
            let sub_to = open_dir(to, name).map_err(err("tmpcopyup: open"))?;
            copy_dir(sub_from, &sub_to, path, depth + 1)?;
        }
        SFlag::S_IFREG => {
            let flags = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let src = openat(from.as_fd(), name, flags | OFlag::O_RDONLY, Mode::empty())
                .map_err(err("tmpcopyup: open"))?;
            let dst = openat(
                to.as_fd(),
                name,
                flags | OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                perm,
            )
            .map_err(err("tmpcopyup: create"))?;
            std::io::copy(&mut File::from(src), &mut File::from(dst))
                .map_err(|e| SysError::at("tmpcopyup: copy", path, crate::sys::io_errno(&e)))?;
        }
        SFlag::S_IFLNK => {
            let target = readlinkat(from.as_fd(), name).map_err(err("tmpcopyup: readlink"))?;
            symlinkat(target.as_os_str(), to.as_fd(), name).map_err(err("tmpcopyup: symlink"))?;
        }
        _ => {
            mknodat(to.as_fd(), name, kind, perm, st.st_rdev).map_err(err("tmpcopyup: mknod"))?;
        }
    }
    fchownat(
        to.as_fd(),
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(err("tmpcopyup: chown"))?;
    // After chown, which clears setuid/setgid bits; the umask also
    // narrowed the create modes. Symlinks have no mode of their own; any
    // other entry is one we just made in the fresh tmpfs, nothing to follow.
    if kind != SFlag::S_IFLNK {
        fchmodat(to.as_fd(), name, perm, FchmodatFlags::FollowSymlink)
            .map_err(err("tmpcopyup: chmod"))?;
    }
    Ok(())
}
