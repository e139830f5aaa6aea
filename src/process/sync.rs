//! The parent <-> init protocol: typed messages, one SOCK_SEQPACKET datagram
//! each, binary encoded (no JSON on the create path).
//!
//! Fast path (nothing to join by path, no time offsets), one clone:
//!
//! | step | parent (`capsa create`)                 | init                                     |
//! |------|-----------------------------------------|------------------------------------------|
//! | 1    | clone3(all new namespaces[, cgroup fd]) | waits for `Continue`                     |
//! | 2    | cgroup add_pid, uid/gid maps            |                                          |
//! | 3    | `Continue` ->                           | cgroupns, rootfs, console, hostname, ... |
//! | 4    |                                         | <- `Ready` (or `Error`, then _exit)      |
//! | 5    | state.json, `Recorded` ->               | clears its parent-death signal           |
//! | 6    |                                         | <- `Detached`                            |
//! | 7    | pid file, exit                          | blocks opening exec.fifo for writing     |
//! | 8    | (`capsa start` opens exec.fifo)         | writes one byte, execve                  |
//!
//! Until step 5 the init dies with `create` (parent-death signal, or the
//! end-of-file it reads instead of a message), so a killed create never
//! leaves an init without a state.json naming it. The init closes its copy
//! of the state dir's lock fd first thing after clone: clone without exec
//! keeps even close-on-exec fds, and a flock lives as long as any copy.
//!
//! Slow path (a namespace joined by path, or timeOffsets): a plain clone
//! "stage 1" first joins the namespaces (the user namespace first), unshares
//! the user namespace and sends `MapRequest` (the parent writes the maps and
//! answers `MapDone`), unshares the rest, then clones the init as the
//! parent's sibling (CLONE_PARENT), reports `InitPid` and exits. The init
//! then continues at step 3 without waiting again, so its first message can
//! reach the parent before `InitPid` (the parent holds it until then).
//!
//! Hooks: when config.json has prestart/createRuntime/createContainer/
//! startContainer hooks, the init sends `HooksRequest` before it switches
//! root; the parent runs prestart + createRuntime (runtime namespace) and
//! answers `HooksDone`; the init then runs createContainer.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recv,
    recvmsg, send, sendmsg, socketpair,
};

use crate::sys::{Ctx, SysError};

const MAX_MSG: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// parent -> init: cgroups and id maps are in place, go on.
    Continue,
    /// stage 1 -> parent: the new user namespace exists, write its maps.
    MapRequest,
    /// parent -> stage 1: maps written.
    MapDone,
    /// stage 1 -> parent: the init's pid (in the parent's pid namespace).
    InitPid(i32),
    /// init -> parent: everything up to exec is done; waiting on exec.fifo.
    Ready,
    /// init -> parent: about to switch root; run prestart and createRuntime
    /// hooks now (runtime namespace) and answer `HooksDone`.
    HooksRequest,
    /// parent -> init: prestart and createRuntime hooks done.
    HooksDone,
    /// init -> parent: a step failed (errno, or 0, and the message).
    Error { errno: i32, text: String },
    /// init -> parent, with the seccomp listener fd attached (SCM_RIGHTS):
    /// hand it to the agent at linux.seccomp.listenerPath.
    SeccompFd,
    /// parent -> init: the agent has the listener fd.
    SeccompDone,
    /// parent -> init: state.json is written; the init may outlive us now.
    Recorded,
    /// init -> parent: parent-death signal cleared; waiting on exec.fifo.
    Detached,
}

impl Msg {
    fn encode(&self, buf: &mut Vec<u8>) {
        let (kind, val, text): (u8, i32, &str) = match self {
            Msg::Continue => (1, 0, ""),
            Msg::MapRequest => (2, 0, ""),
            Msg::MapDone => (3, 0, ""),
            Msg::InitPid(p) => (4, *p, ""),
            Msg::Ready => (5, 0, ""),
            Msg::Error { errno, text } => (6, *errno, text),
            Msg::HooksRequest => (7, 0, ""),
            Msg::HooksDone => (8, 0, ""),
            Msg::SeccompFd => (9, 0, ""),
            Msg::SeccompDone => (10, 0, ""),
            Msg::Recorded => (11, 0, ""),
            Msg::Detached => (12, 0, ""),
        };
        buf.push(kind);
        buf.extend_from_slice(&val.to_ne_bytes());
        let mut end = text.len().min(MAX_MSG - 5);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        buf.extend_from_slice(&text.as_bytes()[..end]);
    }

    fn decode(b: &[u8]) -> Option<Msg> {
        let (&kind, rest) = b.split_first()?;
        let val = i32::from_ne_bytes(rest.get(..4)?.try_into().ok()?);
        Some(match kind {
            1 => Msg::Continue,
            2 => Msg::MapRequest,
            3 => Msg::MapDone,
            4 => Msg::InitPid(val),
            5 => Msg::Ready,
            6 => Msg::Error {
                errno: val,
                text: String::from_utf8_lossy(&rest[4..]).into_owned(),
            },
            7 => Msg::HooksRequest,
            8 => Msg::HooksDone,
            9 => Msg::SeccompFd,
            10 => Msg::SeccompDone,
            11 => Msg::Recorded,
            12 => Msg::Detached,
            _ => return None,
        })
    }
}

/// One end of the channel. Closing it (drop) is how each side notices the
/// other died: recv returns end-of-file.
pub struct Channel(pub OwnedFd);

/// What `recv` can report besides a message.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the container init exited before it was ready")]
    Eof,
    #[error("unexpected message {0:?} from the container init")]
    Unexpected(Msg),
    #[error("{0}")]
    Sys(#[from] SysError),
}

pub fn pair() -> Result<(Channel, Channel), SysError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx("socketpair")?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn send(&self, m: &Msg) -> Result<(), SysError> {
        let mut buf = Vec::with_capacity(16);
        m.encode(&mut buf);
        loop {
            match send(self.0.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(SysError::new("send on sync socket", e)),
            }
        }
    }

    pub fn recv(&self) -> Result<Msg, SyncError> {
        let mut buf = [0u8; MAX_MSG];
        loop {
            match recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Err(SyncError::Eof),
                Ok(n) => {
                    return Msg::decode(&buf[..n]).ok_or(SyncError::Unexpected(Msg::Error {
                        errno: 0,
                        text: format!("{} undecodable bytes", n),
                    }));
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(SysError::new("recv on sync socket", e).into()),
            }
        }
    }

    /// Send a message with one fd attached (SCM_RIGHTS).
    pub fn send_fd(&self, m: &Msg, fd: BorrowedFd<'_>) -> Result<(), SysError> {
        let mut buf = Vec::with_capacity(16);
        m.encode(&mut buf);
        let fds = [fd.as_raw_fd()];
        loop {
            match sendmsg::<()>(
                self.0.as_raw_fd(),
                &[IoSlice::new(&buf)],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(SysError::new("sendmsg on sync socket", e)),
            }
        }
    }

    /// Receive a message and the fd attached to it, if any.
    pub fn recv_fd(&self) -> Result<(Msg, Option<OwnedFd>), SyncError> {
        let mut buf = [0u8; MAX_MSG];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let (n, fd) = match recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(r) => {
                    let mut fd = None;
                    for c in r.cmsgs().ctx("recvmsg on sync socket")? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for f in fds {
                                // Keep the first; close any extra one.
                                let owned = crate::sys::own(f);
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    (r.bytes, fd)
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(SysError::new("recvmsg on sync socket", e).into()),
            };
            if n == 0 {
                return Err(SyncError::Eof);
            }
            let m = Msg::decode(&buf[..n]).ok_or(SyncError::Unexpected(Msg::Error {
                errno: 0,
                text: format!("{n} undecodable bytes"),
            }))?;
            return Ok((m, fd));
        }
    }

    /// Receive and require exactly `want`.
    pub fn expect(&self, want: Msg) -> Result<(), SyncError> {
        match self.recv()? {
            m if m == want => Ok(()),
            m => Err(SyncError::Unexpected(m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let (a, b) = pair().unwrap();
        for m in [
            Msg::Continue,
            Msg::MapRequest,
            Msg::MapDone,
            Msg::InitPid(4242),
            Msg::Ready,
            Msg::HooksRequest,
            Msg::HooksDone,
            Msg::Error {
                errno: 2,
                text: "exec: \"x\": executable file not found in $PATH".into(),
            },
            Msg::SeccompDone,
            Msg::Recorded,
            Msg::Detached,
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), m);
        }
        // An fd travels with SeccompFd; a plain message has none.
        let (r, w) = nix::unistd::pipe().unwrap();
        a.send_fd(&Msg::SeccompFd, std::os::fd::AsFd::as_fd(&w))
            .unwrap();
        let (m, fd) = b.recv_fd().unwrap();
        assert_eq!(m, Msg::SeccompFd);
        nix::unistd::write(fd.unwrap(), b"x").unwrap();
        let mut got = [0u8; 1];
        nix::unistd::read(&r, &mut got).unwrap();
        assert_eq!(&got, b"x");
        a.send(&Msg::Ready).unwrap();
        assert!(matches!(b.recv_fd().unwrap(), (Msg::Ready, None)));
        drop(a);
        assert!(matches!(b.recv(), Err(SyncError::Eof)));
    }
}
