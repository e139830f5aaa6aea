//! Creating and exec'ing from a multi-threaded caller: through a
//! single-threaded helper process.
//!
//! `create` and `exec` clone the calling process (sys::clone3) and run Rust
//! in the child until its execve: they allocate, format, take the stdio
//! lock. In a single-threaded process (the `capsa` binary) that is sound.
//! In a multi-threaded one (an engine embedding the library) a lock another
//! thread held at the moment of the clone (malloc's arena lock, stderr's, the
//! environment's) is held forever in the child, which has no such thread:
//! the child hangs, and the create with it. (glibc's fork() takes and
//! releases malloc's locks around the fork; a raw clone3 cannot.)
//!
//! So, when the caller has more than one thread (read from
//! /proc/self/stat: one open+read+close, nothing for the single-threaded
//! binary to notice: `capsa create` makes 228 syscalls instead of 225, and
//! its time is unchanged within the noise), the work is handed to a helper: the caller's own
//! executable, started with `std::process::Command` (safe from a threaded
//! program: between fork and exec its child runs only async-signal-safe
//! code) with argv[0] [`HELPER_ARGV0`], which `trampoline::run_if_asked`
//! recognises. The helper is single-threaded and runs the very same create
//! (or exec) path; every process it clones for the container (the init, an
//! exec'd process, their stage 1) is cloned with CLONE_PARENT, so it is the
//! caller's child exactly as without the helper: the caller can wait for
//! its exit status. The helper reports each such pid as it is made, then
//! the result; the caller reaps the ones that are not the container's (a
//! stage 1), and on a failure makes sure none is left.
//!
//! What crosses: the request (the Runtime and the options, as JSON) and the
//! replies over a SOCK_SEQPACKET pair; the caller's stdio and its
//! --preserve-fds (3..3+N) by inheritance, like a `capsa` command's; the
//! console socket's parent end (foreground run/exec with a terminal) by
//! SCM_RIGHTS. The helper's end of the pair is above the preserved range,
//! close-on-exec in the helper, and a parent-only fd (inherit.rs): no
//! container process keeps it.
//!
//! A program that never calls `run_if_asked` gets an error saying so (not
//! a hang, nor a second copy of itself running its own `main`).

use std::ffi::CStr;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use serde::{Deserialize, Serialize};

use crate::bundle::BundleError;
use crate::error::Error;
use crate::runtime::{CreateOptions, ExecOptions, Runtime};
use crate::state::StateError;

/// argv[0] that makes `run_if_asked` serve one helper request.
pub const HELPER_ARGV0: &CStr = c"capsa:[helper]";

/// Set by `run_if_asked`: the program's `main` recognises the helper.
static ENTRY_CALLED: AtomicBool = AtomicBool::new(false);
/// This process is a helper: its reply socket (-1 otherwise). Clones for
/// the container are then made for the caller (CLONE_PARENT) and reported.
static SERVING: AtomicI32 = AtomicI32::new(-1);

/// The largest message on the pair (a request goes in several).
const CHUNK: usize = 32 * 1024;

pub(crate) fn mark_entry_called() {
    ENTRY_CALLED.store(true, Ordering::Relaxed);
}

/// Does this process serve a helper request (clones are for its parent)?
pub(crate) fn serving() -> bool {
    SERVING.load(Ordering::Relaxed) >= 0
}

/// Extra clone flags for a process the caller must own: CLONE_PARENT in a
/// helper, none otherwise.
pub(crate) fn clone_flags() -> u64 {
    if serving() {
        libc::CLONE_PARENT as u64
    } else {
        0
    }
}

/// Why the helper could not do the work.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error(
        "capsa is called from a multi-threaded program, which must call \
         capsa::process::trampoline::run_if_asked() first thing in main (creating and \
         exec'ing go through a helper process started from the program's own executable)"
    )]
    NoEntry,
    #[error("capsa helper: {op}: {errno}")]
    Sys { op: &'static str, errno: Errno },
    #[error("capsa helper: starting {exe}: {msg}")]
    Spawn { exe: String, msg: String },
    #[error("capsa helper: {0}")]
    Protocol(String),
    #[error("capsa helper exited without an answer ({0})")]
    Died(String),
}

fn sys(op: &'static str) -> impl FnOnce(Errno) -> HelperError {
    move |errno| HelperError::Sys { op, errno }
}

/// Must this create or exec go through a helper? Only when the caller has
/// other threads; an error if the program cannot serve as one.
pub(crate) fn needed() -> Result<bool, HelperError> {
    if serving() || single_threaded() {
        return Ok(false);
    }
    if !ENTRY_CALLED.load(Ordering::Relaxed) {
        return Err(HelperError::NoEntry);
    }
    Ok(true)
}

/// num_threads (field 20) of /proc/self/stat is 1. Unknown counts as
/// threaded (the helper is always safe). Sound without a race: only the
/// calling thread could start another, and it is here.
fn single_threaded() -> bool {
    let mut buf = [0u8; 1024];
    let Ok(n) = read_small(c"/proc/self/stat", &mut buf) else {
        return false;
    };
    thread_count(&buf[..n]) == Some(b"1")
}

/// num_threads of a /proc/PID/stat text. comm (field 2) may hold spaces
/// and parentheses: fields are counted after the last ')'.
fn thread_count(stat: &[u8]) -> Option<&[u8]> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat[close + 1..]
        .split(|b| *b == b' ')
        .filter(|f| !f.is_empty())
        .nth(17)
}

/// open+read+close into a stack buffer: no allocation on the CLI's path.
fn read_small(path: &CStr, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: a NUL-terminated path and integer flags.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    let fd = crate::sys::own(fd);
    nix::unistd::read(&fd, buf)
}

/// The options of a create or exec, as they cross to the helper.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    root: PathBuf,
    no_cgroups: bool,
    rootless: bool,
    systemd: bool,
    id: String,
    op: Op,
}

#[derive(Debug, Serialize, Deserialize)]
enum Op {
    Create {
        opts: Box<WireCreate>,
        foreground: bool,
    },
    Exec {
        opts: Box<WireExec>,
        detached: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct WireCreate {
    bundle: PathBuf,
    spec: Option<oci_spec::runtime::Spec>,
    rootfs: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    console_socket: Option<PathBuf>,
    no_pivot: bool,
    no_new_keyring: bool,
    preserve_fds: u32,
    listen_fds: u32,
    pidfd_socket: Option<PathBuf>,
    config: Option<PathBuf>,
}

impl WireCreate {
    fn from(o: &CreateOptions) -> WireCreate {
        // Exhaustive: a new option is a compile error here until it crosses.
        // The streams cross as the helper's own stdio (`call`).
        let CreateOptions {
            bundle,
            spec,
            config,
            rootfs,
            stdin: _,
            stdout: _,
            stderr: _,
            pid_file,
            console_socket,
            no_pivot,
            no_new_keyring,
            preserve_fds,
            listen_fds,
            pidfd_socket,
        } = o;
        WireCreate {
            bundle: bundle.clone(),
            spec: spec.clone(),
            rootfs: rootfs.clone(),
            pid_file: pid_file.clone(),
            console_socket: console_socket.clone(),
            no_pivot: *no_pivot,
            no_new_keyring: *no_new_keyring,
            preserve_fds: *preserve_fds,
            listen_fds: *listen_fds,
            pidfd_socket: pidfd_socket.clone(),
            config: config.clone(),
        }
    }

    fn into_opts(self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle,
            spec: self.spec,
            rootfs: self.rootfs,
            pid_file: self.pid_file,
            console_socket: self.console_socket,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            listen_fds: self.listen_fds,
            pidfd_socket: self.pidfd_socket,
            config: self.config,
            ..CreateOptions::default()
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct WireExec {
    process: Option<PathBuf>,
    args: Vec<String>,
    tty: bool,
    console_socket: Option<PathBuf>,
    cwd: Option<PathBuf>,
    env: Vec<String>,
    user: Option<String>,
    additional_gids: Vec<u32>,
    caps: Vec<String>,
    no_new_privs: bool,
    detach: bool,
    pid_file: Option<PathBuf>,
    preserve_fds: u32,
    ignore_paused: bool,
    apparmor: Option<String>,
    process_label: Option<String>,
    cgroup: Vec<String>,
    pidfd_socket: Option<PathBuf>,
}

impl WireExec {
    fn from(o: &ExecOptions) -> WireExec {
        let ExecOptions {
            process,
            args,
            tty,
            console_socket,
            cwd,
            env,
            user,
            additional_gids,
            caps,
            no_new_privs,
            detach,
            pid_file,
            preserve_fds,
            ignore_paused,
            apparmor,
            process_label,
            cgroup,
            pidfd_socket,
            stdin: _,
            stdout: _,
            stderr: _,
        } = o;
        WireExec {
            process: process.clone(),
            args: args.clone(),
            tty: *tty,
            console_socket: console_socket.clone(),
            cwd: cwd.clone(),
            env: env.clone(),
            user: user.clone(),
            additional_gids: additional_gids.clone(),
            caps: caps.clone(),
            no_new_privs: *no_new_privs,
            detach: *detach,
            pid_file: pid_file.clone(),
            preserve_fds: *preserve_fds,
            ignore_paused: *ignore_paused,
            apparmor: apparmor.clone(),
            process_label: process_label.clone(),
            cgroup: cgroup.clone(),
            pidfd_socket: pidfd_socket.clone(),
        }
    }

    fn into_opts(self) -> ExecOptions {
        ExecOptions {
            process: self.process,
            args: self.args,
            tty: self.tty,
            console_socket: self.console_socket,
            cwd: self.cwd,
            env: self.env,
            user: self.user,
            additional_gids: self.additional_gids,
            caps: self.caps,
            no_new_privs: self.no_new_privs,
            detach: self.detach,
            pid_file: self.pid_file,
            preserve_fds: self.preserve_fds,
            ignore_paused: self.ignore_paused,
            apparmor: self.apparmor,
            process_label: self.process_label,
            cgroup: self.cgroup,
            pidfd_socket: self.pidfd_socket,
            ..ExecOptions::default()
        }
    }
}

/// The helper's messages, in order: any number of `Child`, then one of
/// the others (with `Done`, maybe the console socket's parent end).
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    /// A process made for the caller (its child): the caller reaps it
    /// unless it is `Done`'s.
    Child(i32),
    /// The container's init or the exec'd process.
    Done {
        pid: i32,
    },
    Failed(WireError),
}

/// The crate error, as far as an engine matches on it; the text is the
/// Display of the original (runc's words).
#[derive(Debug, Serialize, Deserialize)]
enum WireError {
    NotExist,
    Exists,
    InvalidId(String),
    Invalid { field: String, msg: String },
    Usage(String),
    Unsupported(String),
    NotRunning(String),
    WrongState(String),
    Other(String),
}

impl WireError {
    fn from(e: &Error) -> WireError {
        match e {
            Error::State(StateError::NotExist) => WireError::NotExist,
            Error::State(StateError::Exists) => WireError::Exists,
            Error::State(StateError::InvalidId(id)) => WireError::InvalidId(id.clone()),
            Error::Bundle(BundleError::Invalid { field, msg }) => WireError::Invalid {
                field: field.clone(),
                msg: msg.clone(),
            },
            Error::Usage(s) => WireError::Usage(s.clone()),
            // Display adds " is not supported by capsa" again.
            Error::Unsupported(s) => WireError::Unsupported(s.clone()),
            Error::NotRunning(s) => WireError::NotRunning(s.clone()),
            Error::WrongState(s) => WireError::WrongState(s.clone()),
            e => WireError::Other(e.to_string()),
        }
    }

    fn into_error(self) -> Error {
        match self {
            WireError::NotExist => StateError::NotExist.into(),
            WireError::Exists => StateError::Exists.into(),
            WireError::InvalidId(id) => StateError::InvalidId(id).into(),
            WireError::Invalid { field, msg } => BundleError::Invalid { field, msg }.into(),
            WireError::Usage(s) => Error::Usage(s),
            WireError::Unsupported(s) => Error::Unsupported(s),
            WireError::NotRunning(s) => Error::NotRunning(s),
            WireError::WrongState(s) => Error::WrongState(s),
            // Any other failure of the create or exec itself (a config the
            // kernel refused, a hook, the init's own report): its text.
            WireError::Other(s) => Error::Lifecycle(s),
        }
    }
}

/// What a call through the helper gives: the pid, the console socket's
/// parent end, and the caller's ends of the pipes asked for.
pub(crate) type Spawned = (i32, Option<OwnedFd>, [Option<std::fs::File>; 3]);

/// `create` (or `run`'s create) through a helper: the init's pid and, in
/// the foreground with a terminal, our end of the console socket pair.
pub(crate) fn create(
    rt: &Runtime,
    id: &str,
    opts: &CreateOptions,
    foreground: bool,
) -> Result<Spawned, Error> {
    let op = Op::Create {
        opts: Box::new(WireCreate::from(opts)),
        foreground,
    };
    let streams = [&opts.stdin, &opts.stdout, &opts.stderr];
    call(
        rt,
        id,
        op,
        opts.preserve_fds.saturating_add(opts.listen_fds),
        streams,
    )
}

/// `exec`'s spawn through a helper: the process's pid and, with a terminal
/// and no --console-socket, our end of the console socket pair.
pub(crate) fn exec(
    rt: &Runtime,
    id: &str,
    opts: &ExecOptions,
    detached: bool,
) -> Result<Spawned, Error> {
    let op = Op::Exec {
        opts: Box::new(WireExec::from(opts)),
        detached,
    };
    let streams = [&opts.stdin, &opts.stdout, &opts.stderr];
    call(rt, id, op, opts.preserve_fds, streams)
}

fn call(
    rt: &Runtime,
    id: &str,
    op: Op,
    preserve: u32,
    streams: [&crate::api::Stdio; 3],
) -> Result<Spawned, Error> {
    // The streams are opened here and become the helper's own 0, 1 and 2,
    // which it passes on as the `capsa` command does (inherited).
    let stdio = crate::api::stdio::resolve(streams)?;
    let Runtime {
        root,
        no_cgroups,
        rootless,
        systemd,
    } = rt.clone();
    let req = Request {
        root,
        no_cgroups,
        rootless,
        systemd,
        id: id.to_string(),
        op,
    };
    let data = serde_json::to_vec(&req).map_err(|e| HelperError::Protocol(e.to_string()))?;
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(sys("socketpair"))?;
    // Above the fds the container gets (3..3+N), so that it is none of them.
    let min = 3i32.saturating_add(i32::try_from(preserve).unwrap_or(i32::MAX));
    let mut child = spawn_self(HELPER_ARGV0, &theirs, min, stdio.child.sources())?;
    drop(theirs);
    // The helper holds its copies.
    drop(stdio.held);
    let mut exchange = Exchange::default();
    let result = send_request(&ours, &data).and_then(|()| exchange.run(&ours));
    drop(ours);
    let status = child.wait();
    exchange.settle(&result);
    match result {
        Ok(Some((pid, fd))) => Ok((pid, fd, [stdio.stdin, stdio.stdout, stdio.stderr])),
        Ok(None) => {
            let why = match status {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            Err(HelperError::Died(why).into())
        }
        Err(e) => Err(e),
    }
}

/// Start this executable as `argv0 FD`, where FD (at least `min`) is its
/// copy of `fd`, the only one of our close-on-exec fds it inherits: a
/// process that runs capsa's code without being a clone of a threaded one.
/// `stdio`: the fds to be its 0, 1 and 2 (an fd's own number: inherited).
pub(crate) fn spawn_self(
    argv0: &CStr,
    fd: &OwnedFd,
    min: RawFd,
    stdio: [RawFd; 3],
) -> Result<std::process::Child, HelperError> {
    let fd = dup_above(fd, min)?;
    let raw = fd.as_raw_fd();
    let exe = "/proc/self/exe";
    let mut cmd = std::process::Command::new(exe);
    cmd.arg0(OsStrFromCStr::get(argv0)).arg(raw.to_string());
    for (i, src) in stdio.into_iter().enumerate() {
        if src == i as RawFd {
            continue;
        }
        // SAFETY: `src` is an open fd of ours (the caller's resolved
        // stream) for the duration of this call; the copy is Command's.
        let copy = unsafe { std::os::fd::BorrowedFd::borrow_raw(src) }
            .try_clone_to_owned()
            .map_err(|e| HelperError::Spawn {
                exe: exe.into(),
                msg: format!("dup of stdio fd {src}: {e}"),
            })?;
        match i {
            0 => cmd.stdin(copy),
            1 => cmd.stdout(copy),
            _ => cmd.stderr(copy),
        };
    }
    // SAFETY: the closure runs in the forked child before exec and makes one
    // async-signal-safe call (fcntl) on an fd number it captured by value.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(raw, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| HelperError::Spawn {
        exe: exe.into(),
        msg: e.to_string(),
    })
}

/// The fd a process started by `spawn_self` was given (its argument).
pub(crate) fn inherited_fd(arg: Option<std::ffi::OsString>) -> Option<OwnedFd> {
    let fd: RawFd = arg?.to_str()?.parse().ok().filter(|&fd| fd > 2)?;
    // SAFETY: F_GETFD only reads the flags of an integer fd.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // Close-on-exec again: nothing this process execs may inherit it.
    // SAFETY: F_SETFD on that open fd, which the parent passed to us alone.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: open, passed to this fresh process for it alone; nothing
    // else here owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `OsStr` of a C string literal without allocating a CString.
struct OsStrFromCStr;

impl OsStrFromCStr {
    fn get(s: &CStr) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(s.to_bytes())
    }
}

fn dup_above(fd: &OwnedFd, min: RawFd) -> Result<OwnedFd, HelperError> {
    // SAFETY: F_DUPFD_CLOEXEC on an open fd we own returns a new one.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(HelperError::Sys {
            op: "fcntl(F_DUPFD_CLOEXEC)",
            errno: Errno::last(),
        });
    }
    Ok(crate::sys::own(new))
}

/// The request: its length, then chunks.
fn send_request(sock: &OwnedFd, data: &[u8]) -> Result<(), Error> {
    send(sock, &(data.len() as u64).to_le_bytes(), None)?;
    for chunk in data.chunks(CHUNK) {
        send(sock, chunk, None)?;
    }
    Ok(())
}

fn send(sock: &OwnedFd, data: &[u8], fd: Option<RawFd>) -> Result<(), HelperError> {
    let iov = [IoSlice::new(data)];
    let fds;
    let cmsg: &[ControlMessage] = match fd {
        Some(f) => {
            fds = [f];
            &[ControlMessage::ScmRights(&fds)]
        }
        None => &[],
    };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys("sendmsg")(e)),
        }
    }
}

/// One message (None at end-of-file) and the fd that came with it.
fn recv(sock: &OwnedFd, buf: &mut [u8]) -> Result<Option<(usize, Option<OwnedFd>)>, HelperError> {
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => break m,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys("recvmsg")(e)),
        }
    };
    let mut fd = None;
    for c in msg.cmsgs().map_err(sys("recvmsg"))? {
        if let ControlMessageOwned::ScmRights(got) = c {
            for f in got {
                // SAFETY: SCM_RIGHTS just installed this descriptor for us.
                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                fd.get_or_insert(owned);
            }
        }
    }
    if msg.bytes == 0 && fd.is_none() {
        return Ok(None);
    }
    Ok(Some((msg.bytes, fd)))
}

/// The caller's side of the replies: the pids made for it so far.
#[derive(Default)]
struct Exchange {
    children: Vec<i32>,
    done: Option<i32>,
}

impl Exchange {
    /// Read replies until the result. Ok(None): end-of-file before one.
    fn run(&mut self, sock: &OwnedFd) -> Result<Option<(i32, Option<OwnedFd>)>, Error> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let Some((n, fd)) = recv(sock, &mut buf)? else {
                return Ok(None);
            };
            let reply: Reply = serde_json::from_slice(&buf[..n])
                .map_err(|e| HelperError::Protocol(format!("reply: {e}")))?;
            match reply {
                Reply::Child(pid) => self.children.push(pid),
                Reply::Done { pid } => {
                    self.done = Some(pid);
                    return Ok(Some((pid, fd)));
                }
                Reply::Failed(e) => return Err(e.into_error()),
            }
        }
    }

    /// Once the helper has exited: reap the processes made for us that are
    /// not the result (a stage 1, which exits once it cloned), and on a
    /// failure make sure none is left (the helper killed them, unless it
    /// died first).
    fn settle<T>(&self, result: &Result<Option<T>, Error>) {
        let ok = matches!(result, Ok(Some(_)));
        for &pid in &self.children {
            if ok && Some(pid) == self.done {
                continue;
            }
            if !ok {
                kill_if_ours(pid);
            }
            // Only our own child: a pid another thread reaped meanwhile
            // gives ECHILD (and cannot have been reused by a child of ours
            // before we reap... it is reaped, so waitpid returns ECHILD).
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
    }
}

/// SIGKILL `pid` if it is still an unreaped child of ours (a pidfd, and
/// waitid on it, which only a parent may do: a reused pid is not touched).
fn kill_if_ours(pid: i32) {
    let Ok(pidfd) = crate::sys::pidfd_open(pid) else {
        return;
    };
    // SAFETY: waitid on a pidfd we own, into a zeroed siginfo.
    let ours = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        ) == 0
    };
    if ours {
        let _ = crate::sys::pidfd_send_signal(&pidfd, libc::SIGKILL);
    }
}

/// Helper side: tell the caller about a process made for it.
pub(crate) fn report_child(pid: i32) {
    let fd = SERVING.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    if let Ok(data) = serde_json::to_vec(&Reply::Child(pid)) {
        let sock = std::mem::ManuallyDrop::new(crate::sys::own(fd));
        let _ = send(&sock, &data, None);
    }
}

/// Helper mode (`run_if_asked` with [`HELPER_ARGV0`]): serve the request
/// on the fd named by the argument, exit 0 (the result went to the caller).
pub(crate) fn serve(arg: Option<std::ffi::OsString>) -> ! {
    let Some(sock) = inherited_fd(arg) else {
        eprintln!("capsa helper: malformed arguments");
        crate::sys::child_exit(2)
    };
    let fd = sock.as_raw_fd();
    // Never a container process's: scrub_child closes parent-only fds.
    let _parent_only = crate::inherit::ParentOnly::new(&sock);
    SERVING.store(fd, Ordering::Relaxed);
    let reply = match read_request(&sock).and_then(run) {
        Ok((pid, console)) => (Reply::Done { pid }, console),
        Err(e) => (Reply::Failed(WireError::from(&e)), None),
    };
    let data = serde_json::to_vec(&reply.0).unwrap_or_default();
    let _ = send(&sock, &data, reply.1.as_ref().map(|f| f.as_raw_fd()));
    crate::sys::child_exit(0)
}

fn read_request(sock: &OwnedFd) -> Result<Request, Error> {
    let mut head = [0u8; 8];
    let short = || HelperError::Protocol("short request".into());
    match recv(sock, &mut head)? {
        Some((8, None)) => {}
        _ => return Err(short().into()),
    }
    let len = usize::try_from(u64::from_le_bytes(head)).map_err(|_| short())?;
    let mut data = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let end = (got + CHUNK).min(len);
        match recv(sock, &mut data[got..end])? {
            Some((n, None)) if n > 0 => got += n,
            _ => return Err(short().into()),
        }
    }
    serde_json::from_slice(&data).map_err(|e| HelperError::Protocol(e.to_string()).into())
}

fn run(req: Request) -> Result<(i32, Option<OwnedFd>), Error> {
    let rt = Runtime {
        root: req.root,
        no_cgroups: req.no_cgroups,
        rootless: req.rootless,
        systemd: req.systemd,
    };
    match req.op {
        Op::Create { opts, foreground } => {
            // Only a foreground `run` comes here with `foreground`.
            let c = rt.create_inner(&req.id, &opts.into_opts(), foreground, foreground)?;
            Ok((c.state.pid, c.console))
        }
        Op::Exec { opts, detached } => {
            let (pid, console, _) = rt.exec_spawn(&req.id, &opts.into_opts(), detached)?;
            Ok((pid, console))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_after_the_last_parenthesis() {
        let stat = b"4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 7 0 12345 \
                     1000 10 18446744073709551615";
        assert_eq!(thread_count(stat), Some(&b"7"[..]));
        assert_eq!(thread_count(b"1 (x) S 0"), None);
        let own = std::fs::read("/proc/self/stat").expect("read /proc/self/stat");
        let n: usize = std::str::from_utf8(thread_count(&own).expect("num_threads"))
            .expect("utf-8")
            .parse()
            .expect("a number");
        assert!(n >= 1);
    }

    #[test]
    fn threaded_caller_without_the_entry_point_gets_an_error() {
        // libtest runs this on a thread of its own: the process has several,
        // and its main never called run_if_asked.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || rx.recv());
        let e = needed().expect_err("a helper is needed and cannot be started");
        assert!(matches!(e, HelperError::NoEntry), "{e}");
        assert!(e.to_string().contains("run_if_asked"), "{e}");
        drop(tx);
        let _ = other.join();
    }
}
