//! Terminals: the init opens a pty from the container's /dev/ptmx, sends the
//! master over --console-socket (SCM_RIGHTS, as runc does) and makes the slave
//! its controlling terminal, stdio and /dev/console. `capsa run` in the
//! foreground receives the master itself and proxies it to its own stdio.
//!
//! Where each piece runs:
//!
//! | step | process | function |
//! |---|---|---|
//! | flag sanity (runc's messages) | create / exec, before anything | `runtime::create::check_console_flags` |
//! | connect to --console-socket | parent, before the state dir and clone | [`connect`] |
//! | or: a private socket pair (`run` in the foreground) | parent, before clone | [`socketpair`] |
//! | open pty, send master, bind /dev/console, ctty, stdio | init, after the root switch | [`setup_in_container`] / [`setup_terminal`] |
//! | the same without /dev/console | `exec`'d process, after joining the namespaces | [`setup_terminal`] |
//! | give stdio pipes to the user namespace's root | parent, before clone (create, exec) | [`give_stdio_pipes`] |
//! | give the terminal and pipes to process.user | init / exec, right before setuid | [`fix_stdio_owner`] |
//! | receive the master (`run` only) | parent, after the init is ready | [`recv_master`] |
//! | copy stdin/stdout <-> master (`run` only) | forked proxy | [`spawn_proxy`] |
//!
//! The wire format is runc's: one `sendmsg` on a SOCK_STREAM unix socket whose
//! data bytes are the master's file name (`/dev/ptmx`) and whose only control
//! message is SCM_RIGHTS carrying the master fd. runc's `recvtty`, conmon and
//! containerd's shim all read exactly that.

mod owner;
pub(crate) mod proxy;
mod pty;

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
};
use nix::sys::stat::Mode;

use crate::sys::{Ctx, SysError};

pub use owner::{fix_stdio_owner, give_stdio_pipes};
pub(crate) use proxy::clear_onlcr;
pub use proxy::spawn_proxy;
pub use pty::{TerminalOptions, setup_in_container, setup_terminal};

/// The data bytes that accompany the master fd, as runc sends them (the name
/// of the file it opened). Receivers such as `recvtty` use it as the name.
pub const MASTER_NAME: &[u8] = b"/dev/ptmx";

/// Largest data payload a runc-style receiver accepts with the fd.
const MAX_NAME_LEN: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("console socket {path}: {msg}")]
    Socket { path: String, msg: String },
    /// A flag combination runc refuses; the text is runc's, word for word.
    #[error("{0}")]
    Flags(&'static str),
    #[error("process.consoleSize: {field} {value} is out of range (0..=65535)")]
    Size { field: &'static str, value: u64 },
    #[error(
        "console socket: the container init closed it without sending a terminal (did it fail before setting up the console?)"
    )]
    NoMaster,
    #[error("console socket: {0}")]
    Protocol(String),
    /// The terminal proxy could not be started.
    #[error("terminal proxy: {0}")]
    Proxy(String),
    #[error("{path} is a symlink: refusing to mount the console over it")]
    ConsoleSymlink { path: String },
    #[error(
        "{path} is not a regular file or a device outside /proc and /sys: refusing to mount the console over it"
    )]
    ConsoleTarget { path: String },
}

/// process.consoleSize, in the units of `struct winsize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSize {
    pub height: u16,
    pub width: u16,
}

impl ConsoleSize {
    /// Convert the OCI values (JSON integers) to a window size; runc ignores
    /// the size when either side is 0, and so does [`setup_terminal`].
    pub fn new(height: u64, width: u64) -> Result<ConsoleSize, ConsoleError> {
        let height = u16::try_from(height).map_err(|_| ConsoleError::Size {
            field: "height",
            value: height,
        })?;
        let width = u16::try_from(width).map_err(|_| ConsoleError::Size {
            field: "width",
            value: width,
        })?;
        Ok(ConsoleSize { height, width })
    }
}

/// runc's check of the terminal flags (`checkTerminal` in utils_linux.go):
/// `detach` is true for `create` and for `run -d`. The reference the unit
/// tests hold runc's messages to; create and exec apply the same rules in
/// runtime::create::check_console_flags, with capsa's name in the text.
#[cfg(test)]
fn check_terminal(detach: bool, terminal: bool, console_socket: bool) -> Result<(), ConsoleError> {
    if detach && terminal && !console_socket {
        return Err(ConsoleError::Flags(
            "cannot allocate tty if runc will detach without setting console socket",
        ));
    }
    if (!detach || !terminal) && console_socket {
        return Err(ConsoleError::Flags(
            "cannot use console socket if runc will not detach or allocate tty",
        ));
    }
    Ok(())
}

/// Parent side, before clone: connect to the --console-socket path.
///
/// The socket is CLOEXEC: the init inherits it through clone (no exec in
/// between) and closes it itself after sending the master.
pub fn connect(path: &Path) -> Result<OwnedFd, ConsoleError> {
    let fail = |op: &'static str, errno: Errno| ConsoleError::Socket {
        path: path.display().to_string(),
        msg: SysError::new(op, errno).to_string(),
    };
    if path.as_os_str().is_empty() {
        return Err(fail("connect", Errno::ENOENT));
    }
    let sock = nix::sys::socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| fail("socket", e))?;
    match UnixAddr::new(path) {
        Ok(addr) => nix::sys::socket::connect(sock.as_raw_fd(), &addr),
        // sun_path holds 107 bytes: reach a longer path through an O_PATH
        // descriptor of its directory instead of changing our cwd.
        Err(Errno::ENAMETOOLONG) => connect_long(&sock, path),
        Err(e) => Err(e),
    }
    .map_err(|e| fail("connect", e))?;
    Ok(sock)
}

fn connect_long(sock: &OwnedFd, path: &Path) -> nix::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or(Errno::ENAMETOOLONG)?;
    let dirfd = open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut short = format!("/proc/self/fd/{}/", dirfd.as_raw_fd()).into_bytes();
    short.extend_from_slice(name.as_bytes());
    let addr = UnixAddr::new(std::ffi::OsStr::from_bytes(&short))?;
    nix::sys::socket::connect(sock.as_raw_fd(), &addr)
}

/// `capsa run` in the foreground: a private stream socket pair. The child end
/// goes to the init in place of a connected --console-socket; the parent end
/// is where [`recv_master`] reads the master. Both ends are CLOEXEC.
pub fn socketpair() -> Result<(OwnedFd, OwnedFd), ConsoleError> {
    let (parent, child) = nix::sys::socket::socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx("socketpair (console)")?;
    Ok((parent, child))
}

/// Send `master` the way runc does: data = "/dev/ptmx", SCM_RIGHTS = [master].
pub(crate) fn send_master(socket: &OwnedFd, master: &OwnedFd) -> Result<(), ConsoleError> {
    send_fd(socket, MASTER_NAME, master, "console master")
}

/// One `sendmsg` of `name` with SCM_RIGHTS = [fd] (runc's wire format for
/// the console master and for --pidfd-socket); `what` names it in errors.
pub(crate) fn send_fd(
    socket: &OwnedFd,
    name: &[u8],
    fd: &OwnedFd,
    what: &str,
) -> Result<(), ConsoleError> {
    let fds = [fd.as_raw_fd()];
    let iov = [IoSlice::new(name)];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    loop {
        match nix::sys::socket::sendmsg::<UnixAddr>(
            socket.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) if n == name.len() => return Ok(()),
            Ok(n) => {
                return Err(ConsoleError::Protocol(format!(
                    "short send of the {what} ({n} of {} bytes)",
                    name.len()
                )));
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(SysError::at("sendmsg", format!("<{what}>"), e).into()),
        }
    }
}

/// Receive one fd sent runc-style (name bytes + SCM_RIGHTS) on `socket`.
/// The fd arrives CLOEXEC. EOF before any fd means the init never got as far
/// as its console setup.
pub fn recv_master(socket: &OwnedFd) -> Result<OwnedFd, ConsoleError> {
    let mut name = [0u8; MAX_NAME_LEN];
    let mut cmsg_buf = nix::cmsg_space!([RawFd; 1]);
    let (bytes, fds, truncated) = loop {
        let mut iov = [IoSliceMut::new(&mut name)];
        match nix::sys::socket::recvmsg::<UnixAddr>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_buf),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs().ctx("recvmsg (console master)")? {
                    if let ControlMessageOwned::ScmRights(got) = c {
                        fds.extend(got.into_iter().map(crate::sys::own));
                    }
                }
                break (msg.bytes, fds, msg.flags.contains(MsgFlags::MSG_CTRUNC));
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(SysError::new("recvmsg (console master)", e).into()),
        }
    };
    if truncated {
        return Err(ConsoleError::Protocol(
            "control message truncated: more than one fd sent".into(),
        ));
    }
    let mut fds = fds.into_iter();
    match (fds.next(), fds.next()) {
        (Some(fd), None) => Ok(fd),
        (None, _) if bytes == 0 => Err(ConsoleError::NoMaster),
        (None, _) => Err(ConsoleError::Protocol(format!(
            "{bytes} bytes received without a file descriptor"
        ))),
        (Some(_), Some(_)) => Err(ConsoleError::Protocol(
            "more than one file descriptor received".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_flag_matrix_matches_runc() {
        // (detach, terminal, console_socket, error?)
        let cases = [
            (true, true, true, None),
            (true, true, false, Some("cannot allocate tty")),
            (true, false, true, Some("cannot use console socket")),
            (true, false, false, None),
            (false, true, true, Some("cannot use console socket")),
            (false, true, false, None),
            (false, false, true, Some("cannot use console socket")),
            (false, false, false, None),
        ];
        for (detach, terminal, sock, want) in cases {
            let got = check_terminal(detach, terminal, sock)
                .err()
                .map(|e| e.to_string());
            match (want, got) {
                (None, None) => {}
                (Some(w), Some(g)) => assert!(g.starts_with(w), "{detach} {terminal} {sock}: {g}"),
                (w, g) => panic!("{detach} {terminal} {sock}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn console_size_range() {
        assert_eq!(
            ConsoleSize::new(24, 80).ok(),
            Some(ConsoleSize {
                height: 24,
                width: 80
            })
        );
        assert!(ConsoleSize::new(65535, 0).is_ok());
        let e = ConsoleSize::new(1, 65536).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("process.consoleSize: width 65536 is out of range (0..=65535)")
        );
        assert!(ConsoleSize::new(u64::MAX, 1).is_err());
    }

    #[test]
    fn connect_missing_path_names_it() {
        let e = connect(Path::new("/nonexistent/capsa-test.sock"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("console socket /nonexistent/capsa-test.sock: connect: no such file or directory")
        );
    }

    #[test]
    fn send_and_receive_roundtrip() -> Result<(), ConsoleError> {
        let (a, b) = socketpair()?;
        let (r, _w) = nix::unistd::pipe().ctx("pipe")?;
        send_master(&b, &r)?;
        let got = recv_master(&a)?;
        let flags = nix::fcntl::fcntl(&got, nix::fcntl::FcntlArg::F_GETFD).ctx("fcntl")?;
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "received fd must be CLOEXEC");
        drop(b);
        assert!(matches!(recv_master(&a), Err(ConsoleError::NoMaster)));
        Ok(())
    }
}
