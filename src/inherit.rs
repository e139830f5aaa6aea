//! What a process capsa clones may inherit from it.
//!
//! capsa's children (the init, an exec'd process, their stage 1) are
//! clones: they start with a copy of the command's whole fd table and keep
//! it until their last execve, which for a created init can be hours away,
//! and a child that joins a frozen cgroup may never get there. Close-on-exec
//! does not help in that time. Two kinds of descriptor must therefore go as
//! soon as a child exists ([`scrub_child`], before it joins anything):
//! - the command's own *parent-only* descriptors ([`ParentOnly`]): the
//!   container lock (a child holding a copy of a flock'd descriptor holds
//!   the lock itself, past the command's death), the --pidfd-socket;
//! - the caller's descriptors that are not for the workload: anything
//!   inherited at or above 3 + --preserve-fds (an engine's pipe, waiting for
//!   end-of-file), and the /dev/null placeholders capsa put in the
//!   --preserve-fds gaps (`sys::fill_fd_holes`), so that a gap stays closed
//!   for the workload, as in runc.
//!
//! Every descriptor capsa opens itself is O_CLOEXEC, and everything
//! inherited through execve is not: that flag tells the two apart.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;

use crate::sys::{SysError, SysResult};

/// The parent-only descriptors of this process (-1: free slot). Atomics,
/// not a lock: a clone must read them without taking anything another
/// thread could have held at clone time. One command holds one container
/// lock and one socket at a time; the slots leave room to spare.
static PARENT_ONLY: [AtomicI32; 8] = [const { AtomicI32::new(-1) }; 8];

/// Marks a descriptor that no child of this process may hold, for as long
/// as this value lives. It does not own the descriptor: declare it before
/// the owning field, so that it is dropped (unregistered) first.
#[derive(Debug)]
pub struct ParentOnly(RawFd);

impl ParentOnly {
    pub fn new(fd: &impl AsRawFd) -> ParentOnly {
        let raw = fd.as_raw_fd();
        // All slots taken would be a capsa bug (every holder is dropped
        // before the next is made); the child then keeps this one, which
        // only delays a lock's release until the child's execve.
        for slot in &PARENT_ONLY {
            if slot
                .compare_exchange(-1, raw, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                break;
            }
        }
        ParentOnly(raw)
    }
}

impl Drop for ParentOnly {
    fn drop(&mut self) {
        for slot in &PARENT_ONLY {
            let _ = slot.compare_exchange(self.0, -1, Ordering::SeqCst, Ordering::SeqCst);
        }
    }
}

/// In a freshly cloned child, before it joins any namespace (it reads the
/// host's /proc/self/fd): close the parent-only descriptors, the caller's
/// descriptors above the --preserve-fds range and capsa's placeholders in
/// it.
///
/// # Safety
/// Only in a cloned child that ends in execve or _exit: the owners of the
/// closed descriptors (in its copy of the parent's memory) must never
/// use or drop them.
pub unsafe fn scrub_child(preserve_fds: i32) {
    for slot in &PARENT_ONLY {
        let fd = slot.load(Ordering::SeqCst);
        if fd >= 0 {
            close(fd);
        }
    }
    let first_closed = 3i32.saturating_add(preserve_fds.max(0));
    // Without a /proc to list them (a host without one mounted), the
    // caller's other fds stay until execve closes them (finalize marks
    // them close-on-exec); the placeholders go all the same.
    let fds = open_fds().unwrap_or_else(|_| (3..first_closed).collect());
    for fd in fds {
        if fd < 3 {
            continue;
        }
        // SAFETY: F_GETFD only reads the flags of an integer fd.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            continue;
        }
        let ours = flags & libc::FD_CLOEXEC != 0;
        // Below first_closed: the workload's fds, or our placeholder for a
        // gap; at or above it: ours (kept until execve), or the caller's.
        if ours == (fd < first_closed) {
            close(fd);
        }
    }
}

/// The open descriptors of this process.
fn open_fds() -> SysResult<Vec<RawFd>> {
    let dir = std::path::Path::new("/proc/self/fd");
    let rd = std::fs::read_dir(dir).map_err(|e| SysError::io("readdir", dir, &e))?;
    let mut out: Vec<RawFd> = rd
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The directory's own descriptor was among them; it is closed now.
    out.retain(|&fd| {
        // SAFETY: F_GETFD only reads the flags of an integer fd.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        flags >= 0 || Errno::last() != Errno::EBADF
    });
    Ok(out)
}

fn close(fd: RawFd) {
    // SAFETY: only reached from `scrub_child`, whose caller guarantees that
    // nothing in this process uses these descriptors again.
    unsafe { libc::close(fd) };
}

/// For a hook's `Command::pre_exec`: only stdio crosses into a hook.
pub fn cloexec_all_but_stdio() -> std::io::Result<()> {
    crate::sys::cloexec_fds_from(3).map_err(|e| std::io::Error::from_raw_os_error(e.errno as i32))
}
