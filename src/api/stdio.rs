//! The container process's standard streams, as a library caller chooses
//! them: inherited (what the `capsa` command does, like runc), /dev/null, a
//! descriptor the caller gives, or a pipe whose other end it gets back.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::error::Result;
use crate::sys::{Ctx, SysError};

/// Where one standard stream (stdin, stdout or stderr) of a container's
/// process goes. Used by [`CreateOptions`](crate::CreateOptions) and
/// [`ExecOptions`](crate::ExecOptions).
///
/// With `process.terminal` the process gets a terminal instead, whatever
/// these say (see `console_socket`).
#[derive(Debug, Default)]
pub enum Stdio {
    /// The calling process's own fd 0, 1 or 2 (what the `capsa` command
    /// does, as runc). In a program that embeds capsa this is seldom what
    /// is wanted: every container would share the program's streams.
    #[default]
    Inherit,
    /// /dev/null.
    Null,
    /// A new pipe. The caller's end is returned: in
    /// [`Container::take_stdin`](crate::Container::take_stdin) (and
    /// `take_stdout`, `take_stderr`) for `create`, in
    /// [`Process`](crate::Process) for `exec_process`.
    Piped,
    /// This descriptor (a file, a pipe's end, a socket). The process gets a
    /// copy; this one is closed when the options are dropped.
    Fd(OwnedFd),
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Stdio {
        Stdio::Fd(fd)
    }
}

impl From<File> for Stdio {
    fn from(f: File) -> Stdio {
        Stdio::Fd(f.into())
    }
}

/// The fds a cloned child installs as its 0, 1 and 2 (-1: keep its own).
/// Plain integers: read in the child, where nothing may allocate or lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildStdio([RawFd; 3]);

impl Default for ChildStdio {
    fn default() -> ChildStdio {
        ChildStdio([-1; 3])
    }
}

impl ChildStdio {
    /// The fds the process's stdio will be, as seen in the parent.
    pub(crate) fn sources(&self) -> [RawFd; 3] {
        let mut out = [0, 1, 2];
        for (i, fd) in self.0.iter().enumerate() {
            if *fd >= 0 {
                out[i] = *fd;
            }
        }
        out
    }

    /// In a freshly cloned child, before it closes what it must not keep
    /// (inherit::scrub_child): make the chosen fds its 0, 1 and 2. Only
    /// fcntl, dup3 and close (async-signal-safe). The sources are first
    /// moved above 2, so that one stream may take another's number. A
    /// failure (no fd left) ends the child: its parent reports the init's
    /// death.
    ///
    /// # Safety
    /// Only in a cloned child that ends in execve or _exit: fds 0-2 are
    /// replaced under whatever (in its copy of the parent's memory) owns
    /// them.
    pub(crate) unsafe fn install(&self) {
        let mut tmp = [-1; 3];
        for (i, src) in self.0.iter().enumerate() {
            if *src < 0 {
                continue;
            }
            // SAFETY: fcntl on integer fds.
            tmp[i] = unsafe { libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 3) };
            if tmp[i] < 0 {
                crate::sys::child_exit(126);
            }
        }
        for (i, t) in tmp.iter().enumerate() {
            if *t < 0 {
                continue;
            }
            // SAFETY: dup3 and close on integer fds; `t` is our own copy.
            unsafe {
                if libc::dup3(*t, i as RawFd, 0) < 0 {
                    crate::sys::child_exit(126);
                }
                libc::close(*t);
            }
        }
    }
}

/// The three streams resolved: what the child installs, the child ends
/// to close once it is spawned, and the caller's ends of the pipes.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    pub child: ChildStdio,
    /// Kept open until the process exists (then dropped).
    pub held: Vec<OwnedFd>,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

/// Open what `streams` ask for (pipes are close-on-exec at both ends).
pub(crate) fn resolve(streams: [&Stdio; 3]) -> Result<Resolved> {
    let mut r = Resolved::default();
    for (i, s) in streams.into_iter().enumerate() {
        let fd = match s {
            Stdio::Inherit => continue,
            Stdio::Fd(fd) => fd.as_raw_fd(),
            Stdio::Null => {
                let null = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .ctx_at("open", std::path::Path::new("/dev/null"))?;
                let fd = null.as_raw_fd();
                r.held.push(null.into());
                fd
            }
            Stdio::Piped => {
                let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                    .map_err(|e| SysError::new("pipe2", e))?;
                // stdin: the process reads; stdout/stderr: it writes.
                let (child, ours) = if i == 0 { (rd, wr) } else { (wr, rd) };
                let fd = child.as_raw_fd();
                r.held.push(child);
                let ours = Some(File::from(ours));
                match i {
                    0 => r.stdin = ours,
                    1 => r.stdout = ours,
                    _ => r.stderr = ours,
                }
                fd
            }
        };
        r.child.0[i] = fd;
    }
    Ok(r)
}
