//! `--pidfd-socket` (create, run, exec), as runc 1.2 has it: connect to the
//! unix socket before anything is made (a bad path fails early), and once
//! the process exists send a pidfd of it (SCM_RIGHTS, data "pidfd"). The
//! receiver can then signal or wait for exactly that process, immune to pid
//! reuse.

use std::os::fd::OwnedFd;
use std::path::Path;

use crate::console::{self, ConsoleError};
use crate::error::{Error, Result};
use crate::inherit::ParentOnly;
use crate::sys;

/// A connected --pidfd-socket. Parent-only (crate::inherit): a created
/// init holding the connection would keep the receiver from seeing its
/// end until `start`.
pub struct PidfdSocket {
    /// Before `sock`: unregistered before the descriptor closes.
    _parent_only: ParentOnly,
    sock: OwnedFd,
}

impl PidfdSocket {
    pub fn connect(path: &Path) -> Result<PidfdSocket> {
        console::connect(path)
            .map(|sock| PidfdSocket {
                _parent_only: ParentOnly::new(&sock),
                sock,
            })
            .map_err(|e| match e {
                ConsoleError::Socket { path, msg } => {
                    Error::Usage(format!("--pidfd-socket {path}: {msg}"))
                }
                e => e.into(),
            })
    }

    /// Send a pidfd of `pid`.
    pub fn send(&self, pid: i32) -> Result<()> {
        let pidfd = sys::pidfd_open(pid)?;
        console::send_fd(&self.sock, b"pidfd", &pidfd, "pidfd")?;
        Ok(())
    }
}

/// Connect to `path` if given.
pub fn connect(path: Option<&Path>) -> Result<Option<PidfdSocket>> {
    path.map(PidfdSocket::connect).transpose()
}
