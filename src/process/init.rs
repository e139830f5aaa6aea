//! The container's init, from clone to execve: the ordered list of steps that
//! turn a copy of `capsa create` into the workload. It never returns: it ends
//! in execve, or sends its error to the parent and _exits.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::unistd::getpid;

use super::finalize;
use super::sync::{Channel, Msg};
use super::trampoline::{self, Report, Trampoline};
use crate::bundle::{Bundle, HookKind};
use crate::console::{self, ConsoleError};
use crate::hooks::{self, HookError};
use crate::namespaces::NamespaceError;
use crate::procfs::ProcRoot;
use crate::rootfs::{self, RootfsError, RootfsOptions};
use crate::security::{self, SecurityError};
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
    #[error("{0}")]
    Seccomp(#[from] crate::security::seccomp::SeccompError),
    #[error("{0}")]
    Hook(#[from] HookError),
    #[error("{0}")]
    Attrs(#[from] super::attrs::AttrsError),
    #[error("{field}: {source}")]
    Field { field: String, source: SysError },
    /// Executable look-up failures, in runc's words (engines match on them).
    #[error("process.args[0]: exec: {0}")]
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
    /// The parent is not root and writes our id maps after the clone (fast
    /// path, new user namespace): stay dumpable until they are written.
    /// Decided before the clone: our own euid reads 0 as soon as the parent
    /// has written uid_map, before it writes setgroups and gid_map.
    pub maps_by_user: bool,
    /// Unshare the cgroup namespace here, after the parent placed us.
    pub unshare_cgroupns: bool,
    /// The parent is not root and the binary we run is not the user's to
    /// write: wait for `start` dumpable, so that the user's `exec` can
    /// join us (idle::wait_for_start_joinable).
    pub joinable_while_waiting: bool,
    /// `run` starts us as soon as we wait: keep the memory a long wait
    /// would give back (idle.rs).
    pub start_now: bool,
    pub id: &'a str,
    /// The read-only capsa the workload is exec'd through (CVE-2019-5736).
    pub trampoline: &'a Trampoline,
    /// Id-mapped mounts the parent made; the init attaches them.
    pub idmapped: &'a rootfs::IdmappedTrees,
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
    // /proc/1/{exe,mem,fd} of the runtime (CVE-2019-5736 class). Rootless
    // fast path: a parent that is not root may open our /proc/PID/uid_map
    // only while we are dumpable; we wait for it (nothing else runs in our
    // new namespaces yet) and turn non-dumpable once the maps are written.
    if !a.maps_by_user {
        security::set_non_dumpable()?;
    }
    // `capsa run` blocks signals for its signalfd; the workload must not inherit that.
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .ctx("sigprocmask")?;
    // A session of its own, as runc's init makes one (nsexec): the workload
    // shares no session with the caller, and CRIU can dump the container (a
    // session leader outside its pid namespace needs --shell-job).
    if nix::unistd::getsid(None).ok() != Some(nix::unistd::getpid()) {
        nix::unistd::setsid().ctx("setsid")?;
    }

    if a.wait_continue {
        chan.expect(Msg::Continue)?;
    }
    if b.userns {
        // Become root of the user namespace, new (its maps are written now)
        // or joined, so that what the init creates is owned by that root.
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .ctx("setresgid(0) in the user namespace")?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .ctx("setresuid(0) in the user namespace")?;
        security::set_non_dumpable()?;
    }
    if a.unshare_cgroupns {
        // After the parent moved us into our cgroup, so it becomes the root.
        unshare(CloneFlags::CLONE_NEWCGROUP).ctx("unshare(CLONE_NEWCGROUP)")?;
    }
    if a.new_keyring {
        join_session_keyring(a.id)?;
    }

    // Relative bind-mount sources are relative to the bundle (runc chdirs
    // there too).
    nix::unistd::chdir(&b.dir).ctx_at("chdir", &b.dir)?;
    let rootfs_opts = RootfsOptions {
        spec: &b.spec,
        rootfs: &b.rootfs,
        no_pivot: a.no_pivot,
        mount_ns: b.mount_ns,
        userns: b.userns,
        mount_label: security::lsm::mount_label(b.linux().mount_label().as_deref()),
        idmapped: a.idmapped,
    };
    rootfs::setup(&rootfs_opts)?;
    // The create-time hooks, once the container's mounts and devices are
    // in place and before the root switch (runtime.md lifecycle, runc's
    // order): device hooks bind-mount into the rootfs then, under a "/"
    // that no longer propagates to the host.
    if b.init_needs_hooks() {
        create_hooks(a)?;
    }
    rootfs::switch_root(&rootfs_opts)?;
    // runc creates a missing cwd: as root, before the user switch, and
    // before root.readonly and readonlyPaths could forbid it. A failure
    // is the chdir's to report, naming process.cwd.
    let cwd = process.cwd();
    if std::fs::symlink_metadata(cwd).is_err() {
        let _ = std::fs::create_dir_all(cwd);
    }
    if let Some(sock) = console {
        let opts = console::TerminalOptions {
            size: b.plan.console_size,
            mount_console: true,
            // The init waits for `start`, by which time a proxy of ours
            // has turned the mapping off (spawn_proxy).
            clear_onlcr: false,
        };
        console::setup_terminal(sock, &opts)?;
    }
    // Writes to /proc files go through a procfs the container cannot have
    // covered (CVE-2025-52881 class), never through a "/proc/..." path.
    let needs_proc = b.linux().sysctl().as_ref().is_some_and(|s| !s.is_empty())
        || process.oom_score_adj().is_some();
    let proc = if needs_proc {
        Some(ProcRoot::open()?)
    } else {
        None
    };
    // sysctls before readonlyPaths make /proc/sys read-only.
    if let Some(proc) = &proc {
        for (key, val) in b.linux().sysctl().iter().flatten() {
            let rel = format!("sys/{}", crate::namespaces::sysctl_file(key));
            proc.write(&rel, val.as_bytes())
                .map_err(|source| InitError::Field {
                    field: format!("linux.sysctl.{key}"),
                    source,
                })?;
        }
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
    if let Some(proc) = &proc {
        security::set_oom_score_adj(process, proc)?;
    }
    drop(proc);
    let seccomp = b
        .seccomp
        .as_ref()
        .map(|filter| finalize::Seccomp { filter, chan });
    let finalize::Prepared { exe, deferred } =
        finalize::prepare(process, &b.plan, a.preserve_fds, seccomp)?;
    // Loaded here only with SCMP_ACT_NOTIFY (see finalize::prepare).
    let loaded = b.seccomp.as_ref().filter(|f| f.listener.is_some());

    chan.send(&Msg::Ready)?;
    // Outlive the parent only once its state.json names us (sync.rs).
    chan.expect(Msg::Recorded)?;
    prctl(libc::PR_SET_PDEATHSIG, 0, "prctl(PR_SET_PDEATHSIG)")?;
    let joinable = if a.joinable_while_waiting {
        let mut keep: Vec<RawFd> = (0..3 + a.preserve_fds.max(0)).collect();
        keep.push(a.trampoline.raw_fd());
        keep.extend(deferred.filter.as_ref().map(AsRawFd::as_raw_fd));
        super::idle::Joinable::prepare(a.state_dir, chan.0.as_raw_fd(), &keep)?
    } else {
        None
    };
    chan.send(&Msg::Detached)?;

    // Block until `capsa start` opens the fifo for reading; the state dir
    // is closed after that (it named the fifo).
    let fifo = if let Some(j) = joinable {
        j.wait(loaded, !a.start_now)?
    } else {
        let fifo = super::idle::wait_for_start(a.state_dir, loaded, !a.start_now)?;
        // SAFETY: state_dir is an fd we own in this process; nothing uses it after this.
        unsafe { libc::close(a.state_dir) };
        fifo
    };
    // The fifo stays open (close-on-exec): `start` reads until end-of-file,
    // which comes with a successful execve; anything written before that is
    // an error it reports.
    let _ = nix::unistd::write(&fifo, b"0");
    let env = finalize::env_with_home(process, &b.plan.env);
    if !b.hooks(HookKind::StartContainer).is_empty() {
        let annotations = b.spec.annotations().clone().unwrap_or_default();
        let state = hooks::state_json(a.id, "created", getpid().as_raw(), &b.dir, &annotations);
        // Their paths resolve in the container: spawned through the
        // trampoline, so an image cannot make them run capsa's binary; it
        // gives them the workload's capabilities and filter too. Without
        // `env` of their own they get the workload's (runc's).
        let start_hooks = b.hooks(HookKind::StartContainer);
        let via = hooks::Via {
            trampoline: a.trampoline,
            deferred: &deferred,
        };
        let hook_env = hooks::Inherit::Process(&env);
        if let Err(e) = hooks::run_via(Some(via), hook_env, "startContainer", start_hooks, &state) {
            let _ = nix::unistd::write(&fifo, e.to_string().as_bytes());
            sys::child_exit(1)
        }
    }
    let report = Report::Fifo(fifo.as_raw_fd());
    let failure = trampoline::exec_workload(
        a.trampoline,
        report,
        process,
        &exe,
        &b.plan.args,
        &env,
        &deferred,
    );
    report.failed(failure.errno(), &failure.message(&exe));
    sys::child_exit(failure.exit_code())
}

/// prestart and createRuntime (by the parent, in the runtime namespace),
/// then createContainer here, in the container's namespaces with the
/// rootfs as cwd (runc's). The init's hooks get the pid as the container
/// sees it (runtime.md "State"; runc uses getpid too) and, without `env`
/// of their own, the process's environment.
fn create_hooks(a: &InitArgs) -> Result<(), InitError> {
    let b = a.bundle;
    a.chan.send(&Msg::HooksRequest)?;
    a.chan.expect(Msg::HooksDone)?;
    let hooks = b.hooks(HookKind::CreateContainer);
    if hooks.is_empty() {
        return Ok(());
    }
    nix::unistd::chdir(&b.rootfs).ctx_at("chdir", &b.rootfs)?;
    let annotations = b.spec.annotations().clone().unwrap_or_default();
    let state = hooks::state_json(a.id, "creating", getpid().as_raw(), &b.dir, &annotations);
    let env = hooks::Inherit::Process(&b.plan.env);
    hooks::run_via(None, env, "createContainer", hooks, &state)?;
    Ok(())
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
