//! `capsa run` in the foreground: every signal capsa receives goes to the
//! container's init (as runc does), and capsa exits with the init's status.
//! Signals are taken through a signalfd, blocked from before the clone so
//! none is lost; the init unblocks them for itself first thing.
//! Also the one parser of signal names and numbers (`kill`).

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::Result;
use crate::sys::{Ctx, SysError};

pub struct Forwarder {
    sfd: SignalFd,
    old: SigSet,
}

impl Forwarder {
    pub fn new() -> Result<Forwarder> {
        let all = SigSet::all();
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut old))
            .ctx("sigprocmask")?;
        let sfd = SignalFd::with_flags(&all, SfdFlags::SFD_CLOEXEC).ctx("signalfd")?;
        Ok(Forwarder { sfd, old })
    }

    /// Forward signals to `init` until it exits; then wait for the tty
    /// proxy (if any) so all output is written. Returns the exit status as a
    /// shell reports it (128 + signal for a killed init).
    pub fn wait_for(&self, init: i32, proxy: Option<i32>) -> Result<i32> {
        // The init's exit is seen on its pidfd, not by SIGCHLD: in a
        // multi-threaded caller (the library in an engine) SIGCHLD may go
        // to a thread that does not block it and be lost there; and only
        // our own processes are reaped, never another child of the caller.
        let pidfd = crate::sys::pidfd_open(init).ok();
        let mut code = None;
        while code.is_none() {
            code = match self.next(pidfd.as_ref())? {
                Some(signo) => {
                    // SIGCHLD: some child changed state (see below); the
                    // tty proxy follows window size changes itself.
                    let skip =
                        signo == libc::SIGCHLD || (signo == libc::SIGWINCH && proxy.is_some());
                    if !skip {
                        // By number: nix's Signal has no real-time signals,
                        // and those must reach the init too.
                        let _ = crate::sys::kill(init, signo);
                    }
                    reap(init, WaitPidFlag::WNOHANG)
                }
                None => reap(init, WaitPidFlag::empty()),
            };
        }
        if let Some(p) = proxy {
            let _ = waitpid(Pid::from_raw(p), None);
        }
        Ok(code.unwrap_or(0))
    }

    /// The next signal (Some), or None once `pidfd` is readable (the init
    /// exited). Without a pidfd (a kernel without pidfd_open) signals only.
    fn next(&self, pidfd: Option<&std::os::fd::OwnedFd>) -> Result<Option<i32>> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        loop {
            let mut fds = vec![PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
            if let Some(p) = pidfd {
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(SysError::new("poll signalfd", e).into()),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            if ready(&fds[0]) {
                match self.sfd.read_signal() {
                    Ok(Some(i)) => return Ok(Some(i.ssi_signo as i32)),
                    Ok(None) | Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
                    Err(e) => return Err(SysError::new("read signalfd", e).into()),
                }
            }
            if fds.get(1).is_some_and(ready) {
                return Ok(None);
            }
        }
    }
}

/// The init's exit status as a shell reports it, once it has exited.
fn reap(init: i32, flags: WaitPidFlag) -> Option<i32> {
    match waitpid(Pid::from_raw(init), Some(flags)) {
        Ok(WaitStatus::Exited(_, c)) => Some(c),
        Ok(WaitStatus::Signaled(_, s, _)) => Some(128 + s as i32),
        // Reaped by someone else (an engine's own reaper): no status left.
        Err(Errno::ECHILD) => Some(0),
        _ => None,
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

/// The highest signal number the kernel has (_NSIG - 1 on Linux).
const MAX_SIGNAL: i32 = 64;

/// Parse a signal as runc's `kill` takes it: a number, or a name with or
/// without "SIG" in any case. Beyond runc 1.1 (which knows only the 31
/// standard names), the real-time signals by name as kill(1), Docker and
/// crun spell them: RTMIN, RTMIN+n, RTMAX-n, RTMAX (RTMIN is the C
/// library's, 34 with glibc: 32 and 33 are its own). 0 is the kernel's
/// "is it alive" probe, as with runc. Anything the kernel has no signal
/// for is refused here rather than by kill(2)'s bare EINVAL.
pub fn parse(s: &str) -> std::result::Result<i32, String> {
    let unknown = || format!("unknown signal {s:?}");
    if let Ok(n) = s.parse::<i32>() {
        return if (0..=MAX_SIGNAL).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let (rtmin, rtmax) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let rt = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let n = if rest.is_empty() {
            0
        } else {
            // Digits only: "RTMIN+-1" or "RTMIN++1" are not signals.
            let d = rest.strip_prefix(if sign > 0 { '+' } else { '-' })?;
            if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            d.parse::<i32>().ok()?
        };
        let sig = base.checked_add(sign.checked_mul(n)?)?;
        (rtmin..=rtmax).contains(&sig).then_some(sig)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(rtmin, rest, 1).ok_or_else(unknown);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(rtmax, rest, -1).ok_or_else(unknown);
    }
    // nix knows the standard names (and their aliases, e.g. SIGIOT).
    if name.is_empty() || name.starts_with("SIG") {
        return Err(unknown());
    }
    use std::str::FromStr;
    nix::sys::signal::Signal::from_str(&format!("SIG{name}"))
        .map(|sig| sig as i32)
        .map_err(|_| unknown())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn runc_spellings_and_real_time_signals() {
        for (s, n) in [
            ("9", 9),
            ("0", 0),
            ("37", 37),
            ("64", 64),
            ("KILL", 9),
            ("kill", 9),
            ("SIGTERM", 15),
            ("sigusr1", 10),
            ("SIGRTMIN", libc::SIGRTMIN()),
            ("RTMIN+3", libc::SIGRTMIN() + 3),
            ("SIGRTMIN+3", libc::SIGRTMIN() + 3),
            ("rtmax-1", libc::SIGRTMAX() - 1),
            ("RTMAX", libc::SIGRTMAX()),
        ] {
            assert_eq!(parse(s), Ok(n), "{s}");
        }
        for s in [
            "",
            "65",
            "-1",
            "SIG",
            "SIGSIGKILL",
            "NOPE",
            "RTMIN+",
            "RTMIN-1",
            "RTMIN+99",
            "RTMAX+1",
            "RTMIN+-1",
            "RTMIN++1",
            "RTMAX-40",
        ] {
            assert!(parse(s).is_err(), "{s:?} accepted");
        }
    }
}
