//! One `criu swrk 3` session: CRIU as a child with one end of a
//! SOCK_SEQPACKET socketpair as its fd 3 (and the caller's extra fds from
//! 4), one request sent, notifications answered, the final response read,
//! the child reaped.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};

use nix::cmsg_space;
use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, send, shutdown, socketpair,
};

use super::CriuError;
use super::proto::{self, Opts, ReqType, Resp};

/// What CRIU asks of its caller while it works (criu_notify).
pub trait Notify {
    /// `script` is CRIU's action name (pre-dump, post-dump, setup-namespaces,
    /// post-restore, orphan-pts-master...), `pid` the root task where it has
    /// one, `fd` a descriptor passed along (orphan-pts-master). An error
    /// aborts the operation: CRIU gets no success answer and rolls back.
    fn notify(&mut self, script: &str, pid: i32, fd: Option<OwnedFd>) -> Result<(), CriuError>;
}

/// The largest message CRIU sends is a few hundred bytes; runc reads 40 KiB.
const BUF: usize = 64 * 1024;

/// A started `criu swrk`, before its request is sent (so that the caller can
/// place it in a cgroup first: restore).
pub struct Swrk {
    child: Child,
    sock: OwnedFd,
    log: String,
}

impl Swrk {
    /// Start `criu swrk 3`. `extra` become fds 4, 5, ... in CRIU; stdio is
    /// inherited (restore: the restored init's pipes are named by them).
    pub fn start(criu: &Path, extra: &[&OwnedFd], log: String) -> Result<Swrk, CriuError> {
        let (ours, theirs) = socketpair(
            nix::sys::socket::AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| CriuError::Sys("socketpair", e))?;
        // Every fd CRIU gets is first copied above the numbers it will have,
        // so that the dup2s below never overwrite one another.
        let high = 10 + extra.len() as RawFd;
        let mut copies: Vec<OwnedFd> = Vec::with_capacity(extra.len() + 1);
        for fd in std::iter::once(&theirs).chain(extra.iter().copied()) {
            // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a valid descriptor; the result is owned.
            let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, high) };
            if n < 0 {
                return Err(CriuError::Sys("fcntl(F_DUPFD_CLOEXEC)", Errno::last()));
            }
            // SAFETY: n is a new descriptor nothing else owns.
            copies.push(unsafe { OwnedFd::from_raw_fd(n) });
        }
        let raw: Vec<RawFd> = copies.iter().map(|f| f.as_raw_fd()).collect();
        let mut cmd = Command::new(criu);
        cmd.arg("swrk").arg("3");
        // SAFETY: between fork and exec only dup2 (async-signal-safe) runs,
        // on descriptors that are open in the parent and not moved.
        unsafe {
            cmd.pre_exec(move || {
                for (i, fd) in raw.iter().enumerate() {
                    if libc::dup2(*fd, 3 + i as RawFd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| CriuError::Spawn {
            path: criu.to_path_buf(),
            msg: e.to_string(),
        })?;
        drop(copies);
        // Our copy of CRIU's end closed: if CRIU dies, reads see EOF.
        drop(theirs);
        Ok(Swrk {
            child,
            sock: ours,
            log,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Send `req` with `opts`, answer notifications through `n`, and return
    /// the final response (checked for success). CRIU is reaped before this
    /// returns, whatever the outcome.
    pub fn run(
        mut self,
        req: ReqType,
        opts: Option<&Opts>,
        n: &mut dyn Notify,
    ) -> Result<Resp, CriuError> {
        let res = self.exchange(req, opts, n);
        // Closing our end tells a CRIU waiting for more requests (pre-dump)
        // to exit; then reap it.
        let _ = shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let status = self.child.wait();
        let resp = res?;
        match status {
            // CRIU may exit non-zero once a pre-dump or feature check
            // has been answered (it waits for no further request).
            Ok(s) if s.success() || matches!(req, ReqType::PreDump | ReqType::FeatureCheck) => {
                Ok(resp)
            }
            Ok(s) => Err(CriuError::Failed {
                op: req.name(),
                detail: format!("criu exited with {s}"),
                log: self.log,
            }),
            Err(e) => Err(CriuError::Failed {
                op: req.name(),
                detail: format!("waiting for criu: {e}"),
                log: self.log,
            }),
        }
    }

    fn exchange(
        &mut self,
        req: ReqType,
        opts: Option<&Opts>,
        n: &mut dyn Notify,
    ) -> Result<Resp, CriuError> {
        self.send(&proto::request(req, opts))?;
        let mut buf = vec![0u8; BUF];
        loop {
            let (len, fd) = self.recv(&mut buf)?;
            if len == 0 {
                return Err(CriuError::Failed {
                    op: req.name(),
                    detail: "criu closed the connection without an answer".into(),
                    log: self.log.clone(),
                });
            }
            let resp = proto::decode_resp(&buf[..len]).map_err(|detail| CriuError::Failed {
                op: req.name(),
                detail,
                log: self.log.clone(),
            })?;
            if !resp.success {
                let mut detail = format!(
                    "criu failed: type {} errno {}",
                    resp.typ.map(ReqType::name).unwrap_or("?"),
                    resp.cr_errno.unwrap_or(0)
                );
                if let Some(m) = resp.cr_errmsg.as_deref().filter(|m| !m.is_empty()) {
                    detail.push_str(": ");
                    detail.push_str(m);
                }
                return Err(CriuError::Failed {
                    op: req.name(),
                    detail,
                    log: self.log.clone(),
                });
            }
            if resp.typ == Some(ReqType::Notify) {
                let script = resp.notify_script.clone().unwrap_or_default();
                n.notify(&script, resp.notify_pid.unwrap_or(0), fd)?;
                self.send(&proto::request(ReqType::Notify, None))?;
                continue;
            }
            if resp.typ != Some(req) {
                return Err(CriuError::Failed {
                    op: req.name(),
                    detail: format!("unexpected criu response type {}", resp.raw_type),
                    log: self.log.clone(),
                });
            }
            return Ok(resp);
        }
    }

    fn send(&self, msg: &[u8]) -> Result<(), CriuError> {
        loop {
            match send(self.sock.as_raw_fd(), msg, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(CriuError::Sys("send to criu", e)),
            }
        }
    }

    /// One message, and the descriptor that came with it, if any.
    fn recv(&self, buf: &mut [u8]) -> Result<(usize, Option<OwnedFd>), CriuError> {
        loop {
            let mut iov = [IoSliceMut::new(buf)];
            let mut cmsg = cmsg_space!([RawFd; 4]);
            let msg = match recvmsg::<()>(
                self.sock.as_fd().as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => m,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(CriuError::Sys("recvmsg from criu", e)),
            };
            let mut first = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for fd in fds {
                            // SAFETY: the kernel just installed fd for us.
                            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                            if first.is_none() {
                                first = Some(owned);
                            }
                        }
                    }
                }
            }
            if msg.flags.contains(MsgFlags::MSG_TRUNC) {
                return Err(CriuError::Sys(
                    "recvmsg from criu (message too long)",
                    Errno::EMSGSIZE,
                ));
            }
            return Ok((msg.bytes, first));
        }
    }
}
