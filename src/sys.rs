//! Thin syscall edge: the wrappers capsa needs beyond what nix offers, and the
//! one error type every module uses to report a failed syscall with its context
//! (operation, path, errno). Unsafe code lives here and in the few places where
//! a raw fork/clone/exec boundary makes it unavoidable.

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// A failed syscall: which operation, on which path (if any), and the errno.
#[derive(Debug, Clone)]
pub struct SysError {
    pub op: &'static str,
    pub path: Option<PathBuf>,
    pub errno: Errno,
}

impl SysError {
    pub fn new(op: &'static str, errno: Errno) -> Self {
        SysError {
            op,
            path: None,
            errno,
        }
    }
    pub fn at(op: &'static str, path: impl Into<PathBuf>, errno: Errno) -> Self {
        SysError {
            op,
            path: Some(path.into()),
            errno,
        }
    }
}

impl SysError {
    /// From a std::io error, keeping its errno.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, e: &std::io::Error) -> Self {
        SysError::at(op, path, io_errno(e))
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(
                f,
                "{} {}: {}",
                self.op,
                p.display(),
                self.errno.desc().to_lowercase()
            ),
            None => write!(f, "{}: {}", self.op, self.errno.desc().to_lowercase()),
        }
    }
}

impl std::error::Error for SysError {}

pub type SysResult<T> = Result<T, SysError>;

/// Extension to attach an operation (and path) to a nix result.
pub trait Ctx<T> {
    fn ctx(self, op: &'static str) -> SysResult<T>;
    fn ctx_at(self, op: &'static str, path: &Path) -> SysResult<T>;
}

impl<T> Ctx<T> for nix::Result<T> {
    fn ctx(self, op: &'static str) -> SysResult<T> {
        self.map_err(|e| SysError::new(op, e))
    }
    fn ctx_at(self, op: &'static str, path: &Path) -> SysResult<T> {
        self.map_err(|e| SysError::at(op, path, e))
    }
}

impl<T> Ctx<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str) -> SysResult<T> {
        self.map_err(|e| SysError::new(op, io_errno(&e)))
    }
    fn ctx_at(self, op: &'static str, path: &Path) -> SysResult<T> {
        self.map_err(|e| SysError::at(op, path, io_errno(&e)))
    }
}

pub fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Take ownership of a raw fd returned by a successful syscall.
pub fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass only an fd just returned (>= 0) by a syscall that
    // created it, so it is open and owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// clone3(2) arguments (linux/sched.h `struct clone_args`, version 2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub const CLONE_INTO_CGROUP: u64 = 0x200000000;

/// Fork-like clone3: the child gets a copy of the address space (no CLONE_VM)
/// and returns 0; the parent gets the child's pid. `cgroup_fd` places the child
/// directly into a cgroup v2 directory (CLONE_INTO_CGROUP). Falls back to
/// clone(2) when clone3 is unavailable and no clone3-only feature is asked.
///
/// The caller must be single-threaded (capsa starts no threads), and the child
/// must end in execve or _exit without unwinding into the caller's frames.
pub fn clone3(flags: u64, cgroup_fd: Option<RawFd>) -> SysResult<libc::pid_t> {
    // With CLONE_PARENT the child inherits our exit signal (clone3 refuses
    // one): it is the caller's sibling, reported to the caller's parent.
    let exit_signal = if flags & libc::CLONE_PARENT as u64 != 0 {
        0
    } else {
        libc::SIGCHLD as u64
    };
    let mut args = CloneArgs {
        flags,
        exit_signal,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: args is a valid, fully initialised clone_args of the size we
    // pass; without CLONE_VM the child runs on a private copy of our stack, so
    // returning twice from this function is sound (as with fork).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret >= 0 {
        return Ok(ret as libc::pid_t);
    }
    let errno = Errno::last();
    // CLONE_NEWTIME (0x80) overlaps CSIGNAL in clone(2), so it needs clone3.
    if errno == Errno::ENOSYS && cgroup_fd.is_none() && flags & (libc::CLONE_NEWTIME as u64) == 0 {
        // SAFETY: as above: a fork-like clone with no stack and no CLONE_VM.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (flags | exit_signal) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if ret >= 0 {
            return Ok(ret as libc::pid_t);
        }
        return Err(SysError::new("clone", Errno::last()));
    }
    Err(SysError::new("clone3", errno))
}

/// Close every descriptor >= `first` except those marked in `keep`.
/// Used by the init just before exec; CLOEXEC fds would close anyway, this
/// also closes inherited non-CLOEXEC ones (containerd's shim leaks fd 3).
pub fn close_fds_from(first: RawFd) -> SysResult<()> {
    // SAFETY: close_range only closes descriptors; nothing in this process
    // uses fds >= first after this point except those re-opened later.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0u32,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    Err(SysError::new("close_range", Errno::last()))
}

/// Close every descriptor >= `first` but those in `keep`.
pub fn close_fds_except(first: RawFd, keep: &[RawFd]) -> SysResult<()> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&k| k >= first).collect();
    keep.sort_unstable();
    let mut from = first;
    for k in keep {
        if k > from {
            close_range(from as libc::c_uint, (k - 1) as libc::c_uint)?;
        }
        from = from.max(k + 1);
    }
    close_range(from as libc::c_uint, libc::c_uint::MAX)
}

fn close_range(first: libc::c_uint, last: libc::c_uint) -> SysResult<()> {
    // SAFETY: close_range only closes descriptors; the caller named the
    // ones it still uses in `keep`.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if ret == 0 {
        return Ok(());
    }
    Err(SysError::new("close_range", Errno::last()))
}

/// Mark every descriptor >= `first` close-on-exec without closing it yet.
pub fn cloexec_fds_from(first: RawFd) -> SysResult<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: only sets FD_CLOEXEC flags on descriptors; no memory is touched.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    Err(SysError::new("close_range", Errno::last()))
}

/// pidfd_open(2): a descriptor that becomes readable when the process exits.
pub fn pidfd_open(pid: libc::pid_t) -> SysResult<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    if ret >= 0 {
        return Ok(own(ret as RawFd));
    }
    Err(SysError::new("pidfd_open", Errno::last()))
}

/// pidfd_send_signal(2): signal exactly the process the pidfd refers to.
pub fn pidfd_send_signal(pidfd: &impl AsRawFd, sig: i32) -> SysResult<()> {
    // SAFETY: plain syscall; a null siginfo is allowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    Err(SysError::new("pidfd_send_signal", Errno::last()))
}

/// kill(2) by number: nix's Signal cannot name the real-time signals or 0.
pub fn kill(pid: libc::pid_t, sig: i32) -> SysResult<()> {
    // SAFETY: plain syscall on integers.
    if unsafe { libc::kill(pid, sig) } == 0 {
        return Ok(());
    }
    Err(SysError::new("kill", Errno::last()))
}

/// Immediately end the calling (child) process without running exit handlers
/// or unwinding into frames inherited from the parent.
pub fn child_exit(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// The `starttime` field (22) of /proc/PID/stat, in clock ticks since boot:
/// together with the pid it identifies one process across pid reuse.
pub fn proc_start_time(pid: libc::pid_t) -> Option<(u64, char)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: split after the last ')'.
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // after the state come fields 4.. ; starttime is field 22 => 19th after state
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// The `/etc/passwd` entry of `uid` as seen from the current root: (name,
/// home directory). capsa never uses NSS (it is linked statically).
pub fn passwd_entry(uid: u32) -> Option<(String, String)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    let uid = uid.to_string();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 5 && f[2] == uid).then(|| (f[0].to_string(), f[5].to_string()))
    })
}

/// execveat(2) of the file `fd` refers to (AT_EMPTY_PATH). Returns only on
/// failure, with the errno.
pub fn execveat_fd(fd: &impl AsRawFd, argv: &[&std::ffi::CStr], envp: &[CString]) -> Errno {
    let (a, e) = (ptr_array(argv), ptr_array(envp));
    // SAFETY: `a` and `e` are NULL-terminated arrays of pointers to
    // NUL-terminated strings that all outlive the call; the path is the
    // empty static string, as AT_EMPTY_PATH requires.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Errno::last()
}

/// The NULL-terminated array of pointers to `strs` that execve(2) and
/// execveat(2) take; valid for as long as `strs` is.
pub(crate) fn ptr_array<S: AsRef<std::ffi::CStr>>(strs: &[S]) -> Vec<*const libc::c_char> {
    let mut v: Vec<*const libc::c_char> = strs.iter().map(|s| s.as_ref().as_ptr()).collect();
    v.push(std::ptr::null());
    v
}

/// Make every fd in `from..to` that is not open a close-on-exec /dev/null,
/// so that no descriptor the runtime opens later can land in that range:
/// it is what --preserve-fds hands to the workload, and a lock, socket or
/// directory of ours there would leak into the container. The placeholders
/// are closed in the child (crate::inherit): a gap stays a gap for the
/// workload, as in runc. Stops at RLIMIT_NOFILE.
pub fn fill_fd_holes(from: RawFd, to: RawFd) -> SysResult<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        let max = RawFd::try_from(lim.rlim_cur).unwrap_or(RawFd::MAX);
        if max < to {
            return fill_fd_holes(from, max);
        }
    }
    let path = Path::new("/dev/null");
    for fd in from..to {
        // SAFETY: F_GETFD only reads the flags of an integer fd.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 || Errno::last() != Errno::EBADF {
            continue;
        }
        // The lowest free fd: `fd` itself, or a lower one outside the range
        // (stdio closed), which is then freed again.
        let null = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| SysError::at("open", path, e))?;
        if null.as_raw_fd() == fd {
            // Deliberately left open for the life of the command.
            std::mem::forget(null);
            continue;
        }
        // SAFETY: dup3 onto an fd number that is not open; the copy is
        // deliberately left open for the life of the command.
        if unsafe { libc::dup3(null.as_raw_fd(), fd, libc::O_CLOEXEC) } < 0 {
            return Err(SysError::new(
                "dup3 /dev/null into a --preserve-fds gap",
                Errno::last(),
            ));
        }
    }
    Ok(())
}
