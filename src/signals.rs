//! `capsa run` in the foreground: every signal capsa receives goes to the
//! container's init (as runc does), and capsa exits with the init's status.
//! Signals are taken through a signalfd, blocked from before the clone so
//! none is lost; the init unblocks them for itself first thing.

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
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
        let mut code = None;
        let mut proxy_left = proxy;
        while code.is_none() {
            let info = match self.sfd.read_signal() {
                Ok(Some(i)) => i,
                Ok(None) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(SysError::new("read signalfd", e).into()),
            };
            let signo = info.ssi_signo as i32;
            if signo == libc::SIGCHLD {
                loop {
                    match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::Exited(p, c)) if p.as_raw() == init => code = Some(c),
                        Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == init => {
                            code = Some(128 + s as i32)
                        }
                        Ok(WaitStatus::StillAlive) | Err(_) => break,
                        Ok(ws) => {
                            if ws.pid().map(|p| p.as_raw()) == proxy_left {
                                proxy_left = None;
                            }
                        }
                    }
                }
                continue;
            }
            // The tty proxy follows window size changes itself.
            if signo == libc::SIGWINCH && proxy.is_some() {
                continue;
            }
            if let Ok(sig) = Signal::try_from(signo) {
                let _ = nix::sys::signal::kill(Pid::from_raw(init), sig);
            }
        }
        if let Some(p) = proxy_left {
            let _ = waitpid(Pid::from_raw(p), None);
        }
        Ok(code.unwrap_or(0))
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}
