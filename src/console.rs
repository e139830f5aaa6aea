//! Terminals: the init opens a pty from the container's /dev/ptmx, sends the
//! master over --console-socket (SCM_RIGHTS, as runc does) and makes the slave
//! its controlling terminal, stdio and /dev/console. `capsa run` in the
//! foreground receives the master itself and proxies it to its own stdio.
//!
//! INTERFACE OWNED BY THE CONSOLE WORK.

use std::os::fd::OwnedFd;
use std::path::Path;

use crate::sys::SysError;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("console socket {path}: {msg}")]
    Socket { path: String, msg: String },
}

/// Parent side, before clone: connect to the --console-socket path.
pub fn connect(_path: &Path) -> Result<OwnedFd, ConsoleError> {
    Err(ConsoleError::Socket {
        path: _path.display().to_string(),
        msg: "not implemented".into(),
    })
}

/// Init side, after the root switch: open a pty from /dev/ptmx, send the
/// master over `socket`, bind the slave over /dev/console, make it the
/// controlling terminal and dup it onto 0, 1 and 2.
pub fn setup_in_container(_socket: OwnedFd) -> Result<(), ConsoleError> {
    Ok(())
}

/// `run` in the foreground with a terminal: a connected pair; the child end
/// stands in for --console-socket in the init.
pub fn socketpair() -> Result<(OwnedFd, OwnedFd), ConsoleError> {
    Err(ConsoleError::Socket {
        path: String::new(),
        msg: "not implemented".into(),
    })
}

/// Receive the pty master the init sent over `sock`.
pub fn recv_master(_sock: &OwnedFd) -> Result<OwnedFd, ConsoleError> {
    Err(ConsoleError::Socket {
        path: String::new(),
        msg: "not implemented".into(),
    })
}

/// Fork a process that copies stdin -> master and master -> stdout until
/// the master hangs up. Returns its pid.
pub fn spawn_proxy(_master: OwnedFd) -> Result<libc::pid_t, ConsoleError> {
    Err(ConsoleError::Socket {
        path: String::new(),
        msg: "not implemented".into(),
    })
}

/// `exec` with a terminal: like `setup_in_container` but without binding
/// /dev/console (the container's console belongs to its init).
pub fn setup_for_exec(_socket: OwnedFd) -> Result<(), ConsoleError> {
    Ok(())
}
