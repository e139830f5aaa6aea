//! Taking a container directory's lock without ever waiting on a process
//! that is not a running capsa command (issue 11 item 2).
//!
//! The lock is a flock on the directory. flock belongs to the open file
//! description, so any process that inherited the descriptor keeps the
//! lock after the capsa command that took it died (an init cloned by a
//! `create` killed before it finished, say). So instead of one blocking
//! flock: non-blocking attempts, and between them a look at who took the
//! lock (/proc/locks names the process that called flock). While that is a
//! live process running capsa's binary, it is a command at work and we
//! wait for it; otherwise the lock is stale and the caller decides (an
//! error naming the holder, or `delete --force` going on without it).

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::fstat;

use crate::sys::SysError;

/// How long a lock whose taker is gone may stay held before it counts as
/// stale: the holder's exit releases it at once, so this only absorbs a
/// /proc/locks read that raced with a lock changing hands.
const STALE_AFTER: Duration = Duration::from_millis(300);

/// What came of trying to lock.
pub enum Locked {
    Held(Flock<OwnedFd>),
    /// Held by an open file of a process that is not a running capsa
    /// command; `taker` is the pid /proc/locks names (0: none visible).
    Stale {
        taker: i32,
    },
}

/// Lock `fd` (the directory at `path`) exclusively; see the module text.
pub fn lock(fd: OwnedFd, path: &Path) -> Result<Locked, SysError> {
    let st = fstat(&fd).map_err(|e| SysError::at("fstat", path, e))?;
    let mut fd = fd;
    let mut delay = Duration::from_millis(1);
    let mut stale_since: Option<Instant> = None;
    loop {
        match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(Locked::Held(l)),
            Err((back, Errno::EWOULDBLOCK)) => fd = back,
            Err((back, Errno::EINTR)) => {
                fd = back;
                continue;
            }
            Err((_, e)) => return Err(SysError::at("flock", path, e)),
        }
        let taker = lock_taker(st.st_dev, st.st_ino);
        if taker.is_some_and(is_capsa_command) {
            stale_since = None;
        } else {
            let since = *stale_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= STALE_AFTER {
                return Ok(Locked::Stale {
                    taker: taker.unwrap_or(0),
                });
            }
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

/// The pid that took the flock on (dev, ino), from /proc/locks.
fn lock_taker(dev: libc::dev_t, ino: libc::ino_t) -> Option<i32> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let want = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    parse_taker(&text, &want)
}

/// "N: FLOCK  ADVISORY  WRITE <pid> <maj>:<min>:<ino> 0 EOF" lines; a
/// blocked waiter's line starts "N: -> " and is skipped.
fn parse_taker(text: &str, want: &str) -> Option<i32> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_ascii_whitespace().collect();
        if f.get(1) != Some(&"FLOCK") || f.get(5) != Some(&want) {
            return None;
        }
        f.get(4)?.parse().ok()
    })
}

/// A live (not zombie) process running the same binary as we do.
fn is_capsa_command(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match crate::sys::proc_start_time(pid) {
        Some((_, s)) if s != 'Z' && s != 'X' => {}
        _ => return false,
    }
    let (Ok(theirs), Ok(ours)) = (
        std::fs::metadata(format!("/proc/{pid}/exe")),
        std::fs::metadata("/proc/self/exe"),
    ) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    theirs.dev() == ours.dev() && theirs.ino() == ours.ino()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taker_from_proc_locks() {
        let text = "1: FLOCK  ADVISORY  WRITE 1629 fe:00:5464344 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 1700 fe:00:77 0 EOF\n\
                    2: POSIX  ADVISORY  WRITE 17 fe:00:77 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 26449 fe:00:77 0 EOF\n";
        assert_eq!(parse_taker(text, "fe:00:77"), Some(26449));
        assert_eq!(parse_taker(text, "fe:00:5464344"), Some(1629));
        assert_eq!(parse_taker(text, "fe:00:1"), None);
    }
}
