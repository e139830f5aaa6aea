//! Who owns the container's stdio. A process can always use the fds it
//! holds, but reopening one (/dev/stdout, /proc/self/fd/1: nginx and many
//! images log that way) checks the inode's owner and mode. So, like runc,
//! capsa hands stdio to the container's user, with one rule runc lacks:
//! only objects that belong to nobody else change owner. Anonymous pipes
//! (pipefs) and the pty capsa itself allocated for `process.terminal` may be
//! chowned; a device (the host's /dev/null, a host terminal), a regular file
//! or a named FIFO on a host filesystem never is. runc chowns everything but
//! /dev/null, which lets a container take over a host log file or tty.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::ConsoleError;
use crate::sys::SysError;

/// statfs f_type of anonymous pipes (linux/magic.h).
const PIPEFS_MAGIC: i64 = 0x5049_5045;
/// statfs f_type of devpts (linux/magic.h).
const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// What a stdio descriptor refers to, as far as chowning it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An anonymous pipe: private to whoever holds it.
    Pipe,
    /// A pty slave on a devpts.
    Pty,
    /// Anything else: a device, a file, a socket, a named FIFO.
    Other,
}

/// The kind and owner uid of the open fd `fd`, or None if it is closed.
/// Raw syscalls: stdio may be closed, and a closed fd cannot be borrowed.
fn inspect(fd: RawFd) -> Option<(Kind, u32)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: st points to writable memory of the size of `struct stat`;
    // fstat on a closed fd number fails with EBADF and writes nothing.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat returned 0, so it filled the whole struct.
    let st = unsafe { st.assume_init() };
    let mut fs = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: as above, for `struct statfs`.
    if unsafe { libc::fstatfs(fd, fs.as_mut_ptr()) } != 0 {
        return Some((Kind::Other, st.st_uid));
    }
    // SAFETY: fstatfs returned 0, so it filled the whole struct.
    // (f_type's integer type differs between architectures.)
    #[allow(clippy::useless_conversion)]
    let fs_type = i64::from(unsafe { fs.assume_init() }.f_type);
    let kind = match (st.st_mode & libc::S_IFMT, fs_type) {
        (libc::S_IFIFO, PIPEFS_MAGIC) => Kind::Pipe,
        (libc::S_IFCHR, DEVPTS_SUPER_MAGIC) => Kind::Pty,
        _ => Kind::Other,
    };
    Some((kind, st.st_uid))
}

fn fchown(fd: RawFd, uid: u32, gid: Option<u32>) -> Result<(), Errno> {
    let gid = gid.unwrap_or(u32::MAX); // (gid_t)-1: leave the group
    // SAFETY: fchown takes integers only; on a closed fd it fails with EBADF.
    if unsafe { libc::fchown(fd, uid, gid) } != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Which of the stdio fds `fds` the rule allows to change owner to `uid`.
fn chownable(fds: [RawFd; 3], uid: u32, own_terminal: bool) -> Vec<RawFd> {
    fds.into_iter()
        .filter(|&fd| match inspect(fd) {
            Some((_, owner)) if owner == uid => false,
            Some((Kind::Pipe, _)) => true,
            Some((Kind::Pty, _)) => own_terminal,
            _ => false,
        })
        .collect()
}

/// Parent side, for a container with a new user namespace: give our stdio
/// pipes, which the init inherits, to the host ids of the container's root
/// (runc does the same for the pipes of a foreground `run`), so that root in
/// the container can reopen them; from there the init can hand them on to
/// `process.user` ([`fix_stdio_owner`]).
/// The pipes are those the process will get as its stdio (`stdio`: the
/// caller's own fds 0-2, or the ones a library caller gave it).
pub fn give_stdio_pipes(
    stdio: &crate::api::ChildStdio,
    uid: u32,
    gid: u32,
) -> Result<(), ConsoleError> {
    hand_over(stdio.sources(), uid, Some(gid), false)
}

/// Init or exec side, just before switching to `process.user`: hand it the
/// stdio pipes and, with `own_terminal` (stdio is the pty capsa allocated for
/// process.terminal), the terminal, so that it can reopen them and change
/// terminal modes. Only the owner changes (devpts gives the slave group tty).
pub fn fix_stdio_owner(uid: u32, own_terminal: bool) -> Result<(), ConsoleError> {
    hand_over([0, 1, 2], uid, None, own_terminal)
}

/// fchown the stdio fds the rule allows to `uid` (and `gid`, if given).
/// EINVAL (an id not mapped), EPERM (an owner not mapped in our user
/// namespace) and EROFS are ignored, as runc does: an unchangeable stdio is
/// better than a failed start.
fn hand_over(
    fds: [RawFd; 3],
    uid: u32,
    gid: Option<u32>,
    own_terminal: bool,
) -> Result<(), ConsoleError> {
    for fd in chownable(fds, uid, own_terminal) {
        match fchown(fd, uid, gid) {
            Ok(()) | Err(Errno::EINVAL | Errno::EPERM | Errno::EROFS) => {}
            Err(e) => return Err(SysError::at("fchown", format!("<fd {fd}>"), e).into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// The classification, on objects of each kind (no chown: the fds of
    /// the test process are not ours to hand over).
    #[test]
    fn kinds() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        assert_eq!(inspect(r.as_raw_fd()).map(|k| k.0), Some(Kind::Pipe));
        let null = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(inspect(null.as_raw_fd()).map(|k| k.0), Some(Kind::Other));
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(inspect(file.as_raw_fd()).map(|k| k.0), Some(Kind::Other));
        if let Ok(ptmx) = std::fs::File::open("/dev/ptmx") {
            // The master is a devpts-backed char device too.
            let k = inspect(ptmx.as_raw_fd()).map(|k| k.0);
            assert!(matches!(k, Some(Kind::Pty | Kind::Other)), "{k:?}");
        }
        assert_eq!(inspect(-1), None);
    }
}
