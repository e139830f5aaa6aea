//! The container's init, from clone to execve: the ordered list of steps that
//! turn a copy of `capsa create` into the workload. It never returns: it ends
//! in execve, or sends its error to the parent and _exits.

use std::convert::Infallible;
use std::ffi::{CStr, CString};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::Mode;

use super::sync::{Channel, Msg};
use crate::bundle::Bundle;
use crate::console::{self, ConsoleError};
use crate::namespaces::NamespaceError;
use crate::rootfs::{self, RootfsError, RootfsOptions};
use crate::security::{self, SecurityError, caps};
use crate::sys::{self, Ctx, SysError};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0}")]
    Sync(#[from] super::sync::SyncError),
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("{0}")]
    Namespace(#[from] NamespaceError),
    #[error("{0}")]
    Rootfs(#[from] RootfsError),
    #[error("{0}")]
    Console(#[from] ConsoleError),
    #[error("{0}")]
    Security(#[from] SecurityError),
    #[error("{field}: {source}")]
    Field { field: String, source: SysError },
    /// Executable look-up failures, in runc's words (engines match on them).
    #[error("exec: {0}")]
    Exec(String),
}

/// What the init needs from the parent, all of it inherited through memory.
pub struct InitArgs<'a> {
    pub bundle: &'a Bundle,
    pub chan: &'a Channel,
    /// O_PATH fd of the container's state dir (a separate open file, not the
    /// locked one), to open exec.fifo after the root switch.
    pub state_dir: RawFd,
    pub no_pivot: bool,
    pub new_keyring: bool,
    pub preserve_fds: i32,
    /// Wait for `Continue` first (fast path; the slow path's stage 1 waited).
    pub wait_continue: bool,
    /// Unshare the cgroup namespace here, after the parent placed us.
    pub unshare_cgroupns: bool,
    pub id: &'a str,
}

/// The init's entry point. `console` is the connected console socket (or
/// the `run` proxy's socketpair end). Never returns.
pub fn main(a: &InitArgs, console: Option<OwnedFd>) -> ! {
    let err = match steps(a, console) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let errno = match &err {
        InitError::Sys(s) => s.errno as i32,
        _ => 0,
    };
    let _ = a.chan.send(&Msg::Error {
        errno,
        text: err.to_string(),
    });
    sys::child_exit(1)
}

fn prctl(op: libc::c_int, arg: libc::c_ulong, what: &'static str) -> Result<(), SysError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(op, arg, 0, 0, 0) } != 0 {
        return Err(SysError::new(what, Errno::last()));
    }
    Ok(())
}

fn steps(a: &InitArgs, console: Option<OwnedFd>) -> Result<Infallible, InitError> {
    let b = a.bundle;
    let chan = a.chan;
    let process = b.process();
    // Die with the parent while we are still being set up.
    prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        "prctl(PR_SET_PDEATHSIG)",
    )?;
    // Not dumpable until exec: the container cannot ptrace us or open
    // /proc/1/{exe,mem,fd} of the runtime (CVE-2019-5736 class).
    prctl(libc::PR_SET_DUMPABLE, 0, "prctl(PR_SET_DUMPABLE)")?;
    // `capsa run` blocks signals for its signalfd; the workload must not inherit that.
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .ctx("sigprocmask")?;

    if a.wait_continue {
        chan.expect(Msg::Continue)?;
    }
    if b.new_ns.contains(CloneFlags::CLONE_NEWUSER) {
        // Become root of the new user namespace (its maps are written now).
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .ctx("setresgid(0) in the user namespace")?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .ctx("setresuid(0) in the user namespace")?;
    }
    if a.unshare_cgroupns {
        // After the parent moved us into our cgroup, so it becomes the root.
        unshare(CloneFlags::CLONE_NEWCGROUP).ctx("unshare(CLONE_NEWCGROUP)")?;
    }
    if a.new_keyring {
        join_session_keyring(a.id)?;
    }

    rootfs::setup(&RootfsOptions {
        spec: &b.spec,
        rootfs: &b.rootfs,
        no_pivot: a.no_pivot,
        userns: b.userns,
    })?;
    if let Some(sock) = console {
        console::setup_in_container(sock)?;
    }
    rootfs::finish(&b.spec)?;

    if let Some(h) = b.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h)
            .ctx("sethostname")
            .map_err(|source| InitError::Field {
                field: "hostname".into(),
                source,
            })?;
    }
    if let Some(d) = b.spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        set_domainname(d).map_err(|source| InitError::Field {
            field: "domainname".into(),
            source,
        })?;
    }
    for (key, val) in b.linux().sysctl().iter().flatten() {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, val)
            .ctx_at("write", &path)
            .map_err(|source| InitError::Field {
                field: format!("linux.sysctl.{key}"),
                source,
            })?;
    }
    security::set_oom_score_adj(process)?;
    security::set_rlimits(process)?;

    let cwd = process.cwd();
    // runc creates a missing cwd; do it as root, before the user switch.
    if std::fs::symlink_metadata(cwd).is_err() {
        let _ = std::fs::create_dir_all(cwd);
    }

    caps::apply_bounding(&b.caps).map_err(|source| InitError::Field {
        field: "process.capabilities.bounding".into(),
        source,
    })?;
    security::set_user(process)?;
    enter_cwd(cwd)?;
    let exe = lookup(&b.args[0], &b.env)?;
    security::set_no_new_privs(process)?;
    caps::apply(&b.caps).map_err(|source| InitError::Field {
        field: "process.capabilities".into(),
        source,
    })?;

    // Nothing but stdio and the --preserve-fds range may reach the workload
    // (containerd's shim leaks fd 3 into the runtime).
    let first_closed = 3 + a.preserve_fds;
    sys::cloexec_fds_from(first_closed)?;
    for fd in 3..first_closed {
        // SAFETY: F_SETFD on an integer fd touches only that fd's flags; a
        // closed fd just yields EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }

    prctl(libc::PR_SET_PDEATHSIG, 0, "prctl(PR_SET_PDEATHSIG)")?;
    chan.send(&Msg::Ready)?;

    // Block until `capsa start` opens the fifo for reading.
    let fifo = loop {
        // SAFETY: state_dir is open (owned by the parent's OwnedFd, inherited
        // by this copy of the process) for as long as we use it here.
        let dir = unsafe { std::os::fd::BorrowedFd::borrow_raw(a.state_dir) };
        match openat(
            dir,
            crate::state::EXEC_FIFO,
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => break fd,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(SysError::new("open exec.fifo", e).into()),
        }
    };
    let _ = nix::unistd::write(&fifo, b"0");
    drop(fifo);
    // SAFETY: state_dir is an fd we own in this process; nothing uses it after this.
    unsafe { libc::close(a.state_dir) };

    let err = nix::unistd::execve(&exe, &b.args, &b.env).unwrap_err();
    // Past `Ready` nobody reads the channel: tell the workload's stderr.
    eprintln!(
        "capsa: exec {}: {}",
        exe.to_string_lossy(),
        err.desc().to_lowercase()
    );
    sys::child_exit(if err == Errno::ENOENT { 127 } else { 126 })
}

fn set_domainname(d: &str) -> Result<(), SysError> {
    // SAFETY: the pointer and length describe the bytes of `d`, alive for the call.
    if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
        return Err(SysError::new("setdomainname", Errno::last()));
    }
    Ok(())
}

/// A new session keyring per container, so containers do not share the
/// host's keys (runc's default; --no-new-keyring turns it off).
fn join_session_keyring(id: &str) -> Result<(), SysError> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    let name = CString::new(format!("_ses.{id}"))
        .map_err(|_| SysError::new("keyring name", Errno::EINVAL))?;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING) reads a NUL-terminated name that
    // outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if r < 0 {
        let e = Errno::last();
        // Kernels without keys, or a keyring quota: not fatal, as in runc.
        if e != Errno::ENOSYS && e != Errno::EDQUOT && e != Errno::EPERM {
            return Err(SysError::new("keyctl(JOIN_SESSION_KEYRING)", e));
        }
    }
    Ok(())
}

/// chdir to process.cwd and make sure we really are under the container's
/// root afterwards: a cwd through a leaked fd (/proc/self/fd/N) would land
/// outside it (CVE-2024-21626 class), and getcwd then reports it unreachable.
fn enter_cwd(cwd: &Path) -> Result<(), InitError> {
    nix::unistd::chdir(cwd)
        .ctx_at("chdir", cwd)
        .map_err(|source| InitError::Field {
            field: "process.cwd".into(),
            source,
        })?;
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(InitError::Field {
            field: "process.cwd".into(),
            source: SysError::at("cwd is outside the container root", cwd, Errno::EPERM),
        }),
    }
}

/// Find the executable as runc does (Go's exec.LookPath with the container's
/// PATH), so that create fails with the texts engines map to 126/127.
fn lookup(arg0: &CStr, env: &[CString]) -> Result<CString, InitError> {
    let name = Path::new(std::ffi::OsStr::from_bytes(arg0.to_bytes()));
    let shown = name.display();
    if arg0.to_bytes().contains(&b'/') {
        return match std::fs::metadata(name) {
            Ok(m) if !m.is_dir() && m.permissions().mode() & 0o111 != 0 => Ok(arg0.to_owned()),
            Ok(_) => Err(InitError::Exec(format!("\"{shown}\": permission denied"))),
            Err(e) => Err(InitError::Exec(format!(
                "\"{shown}\": stat {shown}: {}",
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT))
                    .desc()
                    .to_lowercase()
            ))),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.to_bytes().strip_prefix(b"PATH="))
        .unwrap_or(b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut denied = false;
    for dir in path.split(|&c| c == b':') {
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let cand = Path::new(std::ffi::OsStr::from_bytes(dir)).join(name);
        if let Ok(m) = std::fs::metadata(&cand) {
            if !m.is_dir() && m.permissions().mode() & 0o111 != 0 {
                return CString::new(cand.as_os_str().as_bytes())
                    .map_err(|_| InitError::Exec(format!("\"{shown}\": invalid path")));
            }
            denied = true;
        }
    }
    if denied {
        return Err(InitError::Exec(format!("\"{shown}\": permission denied")));
    }
    Err(InitError::Exec(format!(
        "\"{shown}\": executable file not found in $PATH"
    )))
}
