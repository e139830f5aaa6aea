//! Handles on what a library caller started: a [`Container`] (its init)
//! and a [`Process`] exec'd in one, each with a pidfd to wait on and the
//! caller's ends of the pipes it asked for.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Mutex, TryLockError};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;

use super::{Error, Result, Runtime};
use crate::runtime::Events;
use crate::state::Status;

/// A container's state as the runtime-spec (and runc's `state` command)
/// describe it. Serializes to runc's `state` JSON.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ContainerState {
    /// The runtime-spec version of the container's configuration.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// The container's id.
    pub id: String,
    /// The init's pid in the runtime's pid namespace (0 once stopped).
    pub pid: i32,
    /// The status, asked of the kernel now (not merely recorded).
    pub status: Status,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The root filesystem (absolute).
    pub rootfs: PathBuf,
    /// When it was created, RFC 3339 with nanoseconds, UTC.
    pub created: String,
    /// runc's `owner` field (empty, as runc's `state` prints it).
    pub owner: String,
    /// The configuration's annotations.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl ContainerState {
    pub(crate) fn of(st: &crate::state::State, status: Status) -> ContainerState {
        let o = st.oci(status);
        ContainerState {
            oci_version: o.oci_version.to_string(),
            id: o.id.to_string(),
            pid: o.pid,
            status,
            bundle: o.bundle.to_path_buf(),
            rootfs: o.rootfs.to_path_buf(),
            created: o.created.to_string(),
            owner: o.owner.to_string(),
            annotations: o.annotations.clone(),
        }
    }
}

/// How a container's init or an exec'd process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitStatus {
    /// It exited with this status.
    Exited(i32),
    /// A signal (this number) killed it.
    Signaled(i32),
    /// It has exited, but its status is not ours to read: it is not a
    /// child of this process (created by another process, or that process
    /// died and it was re-parented), or someone else reaped it first.
    Unknown,
}

impl ExitStatus {
    /// The status as a shell reports it (and `capsa run` exits with): the
    /// exit code, or 128 + the signal; `None` when unknown.
    ///
    /// ```
    /// use capsa::ExitStatus;
    /// assert_eq!(ExitStatus::Exited(3).code(), Some(3));
    /// assert_eq!(ExitStatus::Signaled(9).code(), Some(137));
    /// assert_eq!(ExitStatus::Unknown.code(), None);
    /// ```
    pub fn code(&self) -> Option<i32> {
        match self {
            ExitStatus::Exited(c) => Some(*c),
            ExitStatus::Signaled(s) => Some(128 + s),
            ExitStatus::Unknown => None,
        }
    }

    /// Exited with status 0.
    pub fn success(&self) -> bool {
        *self == ExitStatus::Exited(0)
    }
}

/// waitid's idtype for a pidfd (linux/wait.h; not in the libc crate).
const P_PIDFD: libc::idtype_t = 3;

/// Wait (or, without `block`, look) for the exit of the process `pidfd`
/// refers to, reaping it if it is our child.
fn wait_pidfd(pidfd: &OwnedFd, block: bool) -> Result<Option<ExitStatus>> {
    let flags = libc::WEXITED | if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value; waitid writes
        // one through the pointer, which is valid for the call.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid with an fd id and a valid siginfo pointer.
        let r = unsafe { libc::waitid(P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, flags) };
        if r == 0 {
            // SAFETY: waitid filled the SIGCHLD fields (or left zeros).
            let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
            if pid == 0 {
                return Ok(None); // WNOHANG: still running
            }
            return Ok(Some(match info.si_code {
                libc::CLD_EXITED => ExitStatus::Exited(status),
                _ => ExitStatus::Signaled(status),
            }));
        }
        match Errno::last() {
            Errno::EINTR => continue,
            // Not our child (or already reaped): the pidfd still says when
            // it exits, without the status.
            Errno::ECHILD => return exited(pidfd, block),
            e => {
                return Err(Error::Failed {
                    message: format!("waitid: {}", e.desc().to_lowercase()),
                });
            }
        }
    }
}

/// Poll `pidfd` for the process's exit.
fn exited(pidfd: &OwnedFd, block: bool) -> Result<Option<ExitStatus>> {
    loop {
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        let timeout = if block {
            PollTimeout::NONE
        } else {
            PollTimeout::ZERO
        };
        match poll(&mut fds, timeout) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(ExitStatus::Unknown)),
            Err(Errno::EINTR) => continue,
            Err(e) => {
                return Err(Error::Failed {
                    message: format!("poll pidfd: {}", e.desc().to_lowercase()),
                });
            }
        }
    }
}

/// The part of a [`Container`] and a [`Process`] that waits.
#[derive(Debug)]
struct Waiter {
    pidfd: Option<OwnedFd>,
    /// The status once reaped. Held while waiting: a second waiter waits
    /// for the first one's answer instead of finding the child already
    /// reaped (ECHILD, an Unknown status).
    status: Mutex<Option<ExitStatus>>,
}

impl Waiter {
    fn new(pid: i32) -> Waiter {
        Waiter {
            pidfd: crate::sys::pidfd_open(pid).ok(),
            status: Mutex::new(None),
        }
    }

    /// Wait (`block`) or look. Looking while another thread waits answers
    /// "not exited yet" at once, as that thread will tell.
    fn wait(&self, block: bool) -> Result<Option<ExitStatus>> {
        let mut status = if block {
            self.status.lock().unwrap_or_else(|p| p.into_inner())
        } else {
            match self.status.try_lock() {
                Ok(g) => g,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return Ok(None),
            }
        };
        if let Some(s) = *status {
            return Ok(Some(s));
        }
        let Some(fd) = &self.pidfd else {
            // Gone before we could open a pidfd.
            return Ok(Some(ExitStatus::Unknown));
        };
        let got = wait_pidfd(fd, block)?;
        if got.is_some() {
            *status = got;
        }
        Ok(got)
    }

    /// Reaped already (as far as this handle knows).
    fn reaped(&self) -> bool {
        matches!(self.status.try_lock().as_deref(), Ok(Some(_)))
    }
}

/// A container, as [`Runtime::create`] made it (or [`Runtime::container`]
/// found it): its id, its init's pid and a pidfd of the init, and the
/// caller's ends of the stdio pipes it asked for.
///
/// The handle is not the container: dropping it changes nothing (the
/// container stays, as after `capsa create`); [`delete`](Self::delete)
/// removes it. `Container` is `Send` and `Sync`: one thread may
/// [`wait`](Self::wait) while others read its output or signal it.
///
/// # Waiting and exit status
///
/// The init is a child of the process that created it (capsa clones it
/// with `CLONE_PARENT` when it needs an intermediate step), so the process
/// that called [`Runtime::create`] reaps it with [`wait`](Self::wait) and
/// gets its exit status, as with [`std::process::Child`]; until then an
/// exited init is a zombie (and `state` reports it stopped). This does not
/// work, and `wait` returns [`ExitStatus::Unknown`] once the init exits,
/// when: the container was created by another process (a `Container`
/// from [`Runtime::container`], or made by `capsa create`); this process
/// set `SIGCHLD` to `SIG_IGN` (the kernel then reaps at once); or something
/// else in the process reaps children with `waitpid(-1)` (a SIGCHLD
/// handler that reaps everything, an async runtime's child reaper for all
/// pids). An engine that must know the status of containers another
/// process created makes itself their subreaper (`PR_SET_CHILD_SUBREAPER`)
/// before they are created, as containerd's shim does.
#[derive(Debug)]
pub struct Container {
    rt: Runtime,
    id: String,
    pid: i32,
    waiter: Waiter,
    stdin: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
}

impl Container {
    pub(crate) fn new(rt: Runtime, id: &str, pid: i32, stdio: [Option<File>; 3]) -> Container {
        let [stdin, stdout, stderr] = stdio;
        Container {
            rt,
            id: id.to_string(),
            pid,
            waiter: Waiter::new(pid),
            stdin,
            stdout,
            stderr,
        }
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The init's pid in the runtime's pid namespace.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A pidfd of the init (readable once it exits), for an event loop;
    /// `None` if it had already exited when this handle was made.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.waiter.pidfd.as_ref().map(|f| f.as_fd())
    }

    /// The writing end of the init's stdin, if [`Stdio::Piped`](crate::Stdio::Piped)
    /// was asked for (once: it is moved out). Drop it to close the stream.
    pub fn take_stdin(&mut self) -> Option<File> {
        self.stdin.take()
    }

    /// The reading end of the init's stdout, if piped (once).
    pub fn take_stdout(&mut self) -> Option<File> {
        self.stdout.take()
    }

    /// The reading end of the init's stderr, if piped (once).
    pub fn take_stderr(&mut self) -> Option<File> {
        self.stderr.take()
    }

    /// Start the container's workload (runtime-spec `start`).
    pub fn start(&self) -> Result<()> {
        self.rt.start(&self.id)
    }

    /// Send `signal` to the init (see [`Runtime::kill`]).
    pub fn kill(&self, signal: i32) -> Result<()> {
        self.rt.kill(&self.id, signal, false)
    }

    /// Send `signal` to every process of the container.
    pub fn kill_all(&self, signal: i32) -> Result<()> {
        self.rt.kill(&self.id, signal, true)
    }

    /// Freeze every process of the container.
    pub fn pause(&self) -> Result<()> {
        self.rt.pause(&self.id)
    }

    /// Thaw a paused container.
    pub fn resume(&self) -> Result<()> {
        self.rt.resume(&self.id)
    }

    /// The container's state now.
    pub fn state(&self) -> Result<ContainerState> {
        self.rt.state(&self.id)
    }

    /// Host pids of the container's processes.
    pub fn pids(&self) -> Result<Vec<i32>> {
        self.rt.pids(&self.id)
    }

    /// Start a process in the running container (see [`Runtime::exec_process`]).
    pub fn exec(&self, opts: &crate::ExecOptions) -> Result<Process> {
        self.rt.exec_process(&self.id, opts)
    }

    /// The container's events (see [`Runtime::events`]).
    pub fn events(&self, interval: std::time::Duration) -> Result<Events> {
        self.rt.events(&self.id, false, interval)
    }

    /// Wait for the init to exit and return its status (see the type's
    /// documentation for when it is [`ExitStatus::Unknown`]). Blocks the
    /// calling thread only; other threads may use the handle meanwhile.
    /// Once known, the status is kept: later calls return it at once.
    pub fn wait(&self) -> Result<ExitStatus> {
        Ok(self.waiter.wait(true)?.unwrap_or(ExitStatus::Unknown))
    }

    /// The init's exit status if it has exited, without blocking (`None`
    /// also while another thread is in [`wait`](Self::wait): it gets the
    /// status).
    pub fn try_wait(&self) -> Result<Option<ExitStatus>> {
        self.waiter.wait(false)
    }

    /// Delete the container (see [`Runtime::delete`]): it must have
    /// stopped, unless `force`, which kills it first.
    pub fn delete(self, force: bool) -> Result<()> {
        self.rt.delete(&self.id, force)
    }
}

/// A process started in a running container by [`Runtime::exec_process`]:
/// its pid, a pidfd, and the caller's ends of its stdio pipes. It is a
/// child of the calling process: [`wait`](Self::wait) reaps it and gives
/// its exit status (the same caveats as for [`Container`]).
#[derive(Debug)]
pub struct Process {
    pid: i32,
    waiter: Waiter,
    stdin: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
}

impl Process {
    pub(crate) fn new(pid: i32, stdio: [Option<File>; 3]) -> Process {
        let [stdin, stdout, stderr] = stdio;
        Process {
            pid,
            waiter: Waiter::new(pid),
            stdin,
            stdout,
            stderr,
        }
    }

    /// The process's pid in the runtime's pid namespace.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A pidfd of the process (readable once it exits).
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.waiter.pidfd.as_ref().map(|f| f.as_fd())
    }

    /// The writing end of its stdin, if piped (once).
    pub fn take_stdin(&mut self) -> Option<File> {
        self.stdin.take()
    }

    /// The reading end of its stdout, if piped (once).
    pub fn take_stdout(&mut self) -> Option<File> {
        self.stdout.take()
    }

    /// The reading end of its stderr, if piped (once).
    pub fn take_stderr(&mut self) -> Option<File> {
        self.stderr.take()
    }

    /// Send `signal` to the process (through its pidfd: never to a reused
    /// pid). An error once it has been reaped.
    pub fn kill(&self, signal: i32) -> Result<()> {
        let Some(fd) = &self.waiter.pidfd else {
            return Err(Error::Failed {
                message: "the process has exited".into(),
            });
        };
        if self.waiter.reaped() {
            return Err(Error::Failed {
                message: "the process has exited".into(),
            });
        }
        crate::sys::pidfd_send_signal(fd, signal)
            .map_err(|e| Error::from(crate::error::Error::from(e)))
    }

    /// Wait for the process to exit and return its status.
    pub fn wait(&self) -> Result<ExitStatus> {
        Ok(self.waiter.wait(true)?.unwrap_or(ExitStatus::Unknown))
    }

    /// Its exit status if it has exited, without blocking.
    pub fn try_wait(&self) -> Result<Option<ExitStatus>> {
        self.waiter.wait(false)
    }
}
