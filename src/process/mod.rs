//! Parent side of starting a container's init: one clone (two when a
//! namespace must be joined by path), the sync protocol of `sync.rs`, and a
//! guard that kills whatever was started if anything fails.

pub mod attrs;
pub mod exec;
pub mod finalize;
pub mod helper;
mod idle;
pub mod init;
pub mod sync;
pub mod trampoline;

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::bundle::{Bundle, HookKind};
use crate::cgroups::{Cgroup, CgroupError};
use crate::hooks;
use crate::namespaces;
use crate::rootfs;
use crate::security::seccomp::Filter;
use crate::security::seccomp::notify::{AgentState, send_to_agent};
use crate::sys::{self, Ctx, SysError};
use init::InitArgs;
use sync::{Channel, Msg, SyncError};
use trampoline::Trampoline;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("{0}")]
    Cgroup(#[from] CgroupError),
    #[error("{0}")]
    Sync(#[from] SyncError),
    /// The init reported a failed step: its text is the user's error.
    #[error("{0}")]
    Init(String),
    #[error("{0}")]
    Seccomp(#[from] crate::security::seccomp::SeccompError),
    #[error("{0}")]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error("{0}")]
    Console(#[from] crate::console::ConsoleError),
    #[error("{0}")]
    Netdev(#[from] crate::netdev::NetdevError),
    #[error("{0}")]
    Helper(#[from] helper::HelperError),
}

impl From<helper::HelperError> for crate::error::Error {
    fn from(e: helper::HelperError) -> crate::error::Error {
        ProcessError::Helper(e).into()
    }
}

/// The container's id maps into its new user namespace; a refusal the
/// checks in bundle.rs did not foresee still names the fields.
fn write_maps(pid: i32, b: &crate::bundle::Bundle) -> Result<(), ProcessError> {
    if !nix::unistd::geteuid().is_root() {
        // Not root: only our own ids directly, the rest through the
        // setuid helpers (rootless.rs).
        return crate::rootless::write_maps(pid, &b.uid_map, &b.gid_map)
            .map_err(|e| ProcessError::Init(e.to_string()));
    }
    namespaces::write_id_maps(pid, &b.uid_map, &b.gid_map)
        .map_err(|e| ProcessError::Init(format!("linux.uidMappings/linux.gidMappings: {e}")))
}

/// Kills and reaps the processes it holds when dropped, unless disarmed:
/// a failed create leaves no process behind.
#[derive(Default)]
pub struct ChildGuard {
    pids: Vec<i32>,
}

impl ChildGuard {
    pub fn push(&mut self, pid: i32) {
        self.pids.push(pid);
        // A helper's children are its caller's (CLONE_PARENT): it must know.
        helper::report_child(pid);
    }
    pub fn disarm(&mut self) {
        self.pids.clear();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        for &pid in self.pids.iter().rev() {
            // In a helper the process is the caller's child (it reaps it):
            // wait for its death by pidfd, so that what is undone next (the
            // cgroup) is free of it.
            let pidfd = helper::serving()
                .then(|| sys::pidfd_open(pid).ok())
                .flatten();
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            match pidfd {
                Some(fd) => {
                    use std::os::fd::AsFd;
                    let mut fds = [nix::poll::PollFd::new(
                        fd.as_fd(),
                        nix::poll::PollFlags::POLLIN,
                    )];
                    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16));
                }
                None => {
                    let _ = waitpid(Pid::from_raw(pid), None);
                }
            }
        }
    }
}

/// Everything `spawn` needs besides the bundle.
pub struct SpawnOpts<'a> {
    pub bundle: &'a Bundle,
    pub cgroup: &'a Cgroup,
    /// O_PATH fd of the state dir, for the init to open exec.fifo.
    pub state_dir: &'a OwnedFd,
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    pub new_keyring: bool,
    pub preserve_fds: i32,
    pub id: &'a str,
    /// The init's stdio, if not ours (a library caller's choice).
    pub stdio: crate::api::ChildStdio,
    /// `run`: `start` follows at once (the init keeps its memory).
    pub start_now: bool,
}

/// An init that is ready, and still dies with us until `detach`.
pub struct Spawned {
    pub pid: i32,
    chan: Channel,
}

impl Spawned {
    /// Once the state names the init: let it clear its parent-death
    /// signal, and wait until it has, so that it outlives us.
    pub fn detach(self) -> Result<(), ProcessError> {
        self.chan.send(&Msg::Recorded)?;
        match self.chan.recv()? {
            Msg::Detached => Ok(()),
            Msg::Error { text, .. } => Err(ProcessError::Init(text)),
            m => Err(SyncError::Unexpected(m).into()),
        }
    }
}

/// Start the init and wait until it is ready (about to block on
/// exec.fifo, once detached). Its pid is also in `guard` until the caller
/// disarms it.
pub fn spawn(o: SpawnOpts, guard: &mut ChildGuard) -> Result<Spawned, ProcessError> {
    let b = o.bundle;
    let trampoline = Trampoline::prepare()?;
    // Id-mapped mounts need the host's privileges: made here, attached by
    // the init (empty, and no syscall, without such mounts).
    let idmapped = rootfs::prepare_idmapped(&b.spec, &b.dir, container_userns(b))?;
    let (parent, child) = sync::pair()?;
    let slow = !b.join.is_empty() || b.linux().time_offsets().is_some();
    // The cgroup namespace is always unshared by the init once it sits in
    // its cgroup, so that its cgroups become its root on every hierarchy.
    let cgroupns = b.new_ns.contains(CloneFlags::CLONE_NEWCGROUP);
    let mut args = InitArgs {
        bundle: b,
        chan: &child,
        state_dir: o.state_dir.as_raw_fd(),
        no_pivot: o.no_pivot,
        new_keyring: o.new_keyring,
        preserve_fds: o.preserve_fds,
        wait_continue: !slow,
        maps_by_user: !slow
            && b.new_ns.contains(CloneFlags::CLONE_NEWUSER)
            && !nix::unistd::geteuid().is_root(),
        unshare_cgroupns: cgroupns,
        joinable_while_waiting: !nix::unistd::geteuid().is_root()
            && trampoline.shields_host_binary(),
        start_now: o.start_now,
        id: o.id,
        trampoline: &trampoline,
        idmapped: &idmapped,
    };
    let flags = if slow {
        0
    } else {
        (b.new_ns - CloneFlags::CLONE_NEWCGROUP).bits() as u64
    };

    // Root of a new user namespace must be able to reopen the stdio pipes
    // the init inherits (a terminal replaces them).
    if b.new_ns.contains(CloneFlags::CLONE_NEWUSER)
        && !b.process().terminal().unwrap_or(false)
        && let (Some(u), Some(g)) = (
            namespaces::host_id(&b.uid_map, 0),
            namespaces::host_id(&b.gid_map, 0),
        )
    {
        crate::console::give_stdio_pipes(&o.stdio, u, g)?;
    }
    if !nix::unistd::geteuid().is_root() {
        crate::security::set_own_oom_score_adj(b.process())
            .map_err(|e| ProcessError::Init(e.to_string()))?;
    }
    let (pid, in_unified) = clone_into(o.cgroup, flags)?;
    if pid == 0 {
        drop(parent);
        // First thing: drop what the child must not inherit.
        // SAFETY: a fresh clone; it ends in execve or _exit.
        unsafe {
            o.stdio.install();
            crate::inherit::scrub_child(o.preserve_fds)
        };
        if slow {
            stage1(&mut args, o.console)
        }
        init::main(&args, o.console)
    }
    drop(child);
    drop(o.console);
    guard.push(pid);

    o.cgroup.place(pid, in_unified, b.linux())?;
    // Fast path: the init is already in its user namespace; its maps must
    // be there before it goes on (it becomes root of the namespace first).
    if !slow && b.new_ns.contains(CloneFlags::CLONE_NEWUSER) {
        write_maps(pid, b)?;
    }
    parent.send(&Msg::Continue)?;
    let (init_pid, mut held) = if slow {
        let (init_pid, held) = recv_init_pid(&parent, || write_maps(pid, b))?;
        guard.push(init_pid);
        // Stage 1 has exited (or is about to): reap it.
        let _ = waitpid(Pid::from_raw(pid), None);
        (init_pid, held)
    } else {
        (pid, None)
    };
    // linux.netDevices: into the init's network namespace before any hook.
    crate::netdev::move_all(&b.net_devices, init_pid)?;
    loop {
        let (msg, fd) = next_msg(&parent, &mut held).map_err(|e| init_died(e, b))?;
        match msg {
            Msg::Ready => {
                return Ok(Spawned {
                    pid: init_pid,
                    chan: parent,
                });
            }
            Msg::SeccompFd => {
                let fd = fd.ok_or(SyncError::Unexpected(Msg::SeccompFd))?;
                let annotations = b.spec.annotations().as_ref();
                let agent = AgentState {
                    id: o.id,
                    pid: init_pid,
                    process_pid: init_pid,
                    status: "creating",
                    bundle: &b.dir,
                    annotations,
                };
                seccomp_agent(b.seccomp.as_ref(), &agent, fd)?;
                parent.send(&Msg::SeccompDone)?;
            }
            Msg::HooksRequest => {
                // prestart and createRuntime: runtime namespace, before the
                // init switches root (runtime-spec config.md).
                let state = hooks::state_json(
                    o.id,
                    "creating",
                    init_pid,
                    &b.dir,
                    &b.spec.annotations().clone().unwrap_or_default(),
                );
                for (kind, name) in [
                    (HookKind::Prestart, "prestart"),
                    (HookKind::CreateRuntime, "createRuntime"),
                ] {
                    // In the bundle, as runc (which chdirs there) runs them.
                    hooks::run_in(&b.dir, name, b.hooks(kind), &state)
                        .map_err(|e| ProcessError::Init(e.to_string()))?;
                }
                parent.send(&Msg::HooksDone)?;
            }
            Msg::Error { text, .. } => return Err(ProcessError::Init(text)),
            m => return Err(SyncError::Unexpected(m).into()),
        }
    }
}

/// The init went silent. With linux.seccomp set, the likeliest cause is
/// the filter: loaded last, it can deny the very calls that would report
/// the failure (write) or run the workload (execve).
fn init_died(e: SyncError, b: &crate::bundle::Bundle) -> ProcessError {
    match e {
        SyncError::Eof if b.seccomp.is_some() => ProcessError::Init(
            "linux.seccomp: the container init exited before it was ready (a filter that \
             denies what the init still does after loading it, such as write or execve, \
             ends it without a word)"
                .into(),
        ),
        e => e.into(),
    }
}

/// A message that arrived before its turn, with its fd.
type Held = Option<(Msg, Option<OwnedFd>)>;

/// Wait for stage 1's `InitPid`, answering its `MapRequest` with
/// `write_maps` (create with a new user namespace). The process stage 1
/// cloned shares the channel and does not wait for `InitPid` to be read:
/// its first message (it waits for the answer to any but the last) can
/// come first, and is held and returned, to be handled next.
fn recv_init_pid(
    chan: &Channel,
    mut write_maps: impl FnMut() -> Result<(), ProcessError>,
) -> Result<(i32, Held), ProcessError> {
    let mut held = None;
    loop {
        match chan.recv_fd()? {
            (Msg::InitPid(p), _) => return Ok((p, held)),
            (Msg::MapRequest, _) => {
                write_maps()?;
                chan.send(&Msg::MapDone)?;
            }
            (Msg::Error { text, .. }, _) => return Err(ProcessError::Init(text)),
            (m @ (Msg::Ready | Msg::SeccompFd | Msg::HooksRequest), fd) if held.is_none() => {
                held = Some((m, fd));
            }
            (m, _) => return Err(SyncError::Unexpected(m).into()),
        }
    }
}

/// The held message if there is one, else the next from `chan`.
fn next_msg(chan: &Channel, held: &mut Held) -> Result<(Msg, Option<OwnedFd>), SyncError> {
    match held.take() {
        Some(m) => Ok(m),
        None => chan.recv_fd(),
    }
}

/// clone3 with `flags`, born in the unified leaf of `cgroup` when it has
/// one (CLONE_INTO_CGROUP); returns the pid (0 in the child) and whether
/// the child is in that leaf already. The kernel can refuse
/// CLONE_INTO_CGROUP (old kernel, unusable cgroup): then a plain clone3,
/// and the caller places the child by writing cgroup.procs (`add_pid`).
fn clone_into(cgroup: &Cgroup, flags: u64) -> Result<(i32, bool), SysError> {
    let cg_fd = cgroup.clone_into_fd();
    // A helper clones for its caller (process/helper.rs).
    let flags = flags | helper::clone_flags();
    match sys::clone3(flags, cg_fd.as_ref().map(|f| f.as_raw_fd())) {
        Ok(pid) => Ok((pid, cg_fd.is_some())),
        Err(e) if cg_fd.is_some() && e.errno != Errno::ENOMEM => {
            Ok((sys::clone3(flags, None)?, false))
        }
        Err(e) => Err(e),
    }
}

/// Where id-mapped mounts without mappings of their own take them from.
fn container_userns(b: &Bundle) -> rootfs::ContainerUserns<'_> {
    if b.new_ns.contains(CloneFlags::CLONE_NEWUSER) {
        return rootfs::ContainerUserns::New {
            uid_map: &b.uid_map,
            gid_map: &b.gid_map,
        };
    }
    match b.join.iter().find(|j| j.flag == CloneFlags::CLONE_NEWUSER) {
        Some(j) => rootfs::ContainerUserns::Join(&j.path),
        None => rootfs::ContainerUserns::None,
    }
}

/// SCMP_ACT_NOTIFY: give a listener fd (of the init, or of an exec'd
/// process) and the container state to the agent at
/// linux.seccomp.listenerPath. Our copy of the fd closes on return: from
/// then on only the agent holds it.
pub(crate) fn seccomp_agent(
    filter: Option<&Filter>,
    state: &AgentState,
    fd: OwnedFd,
) -> Result<(), ProcessError> {
    use std::os::fd::AsFd;
    let Some(l) = filter.and_then(|f| f.listener.as_ref()) else {
        return Err(SyncError::Unexpected(Msg::SeccompFd).into());
    };
    send_to_agent(l, fd.as_fd(), state)?;
    Ok(())
}

/// Slow path, stage 1 (a plain child): join namespaces by path, make the
/// new ones, and clone the init into them. Never returns.
fn stage1(args: &mut InitArgs, console: Option<OwnedFd>) -> ! {
    let chan = args.chan;
    let res = (|| -> Result<i32, ProcessError> {
        let b = args.bundle;
        // SAFETY: prctl with integer arguments only.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        // Inherited by the init, which may be cloned into a joined pid
        // namespace where other processes can see it at once.
        crate::security::set_non_dumpable()?;
        chan.expect(Msg::Continue)?;
        namespaces::join_all(&b.join).map_err(|e| ProcessError::Init(e.to_string()))?;
        if b.new_ns.contains(CloneFlags::CLONE_NEWUSER) {
            // A parent that is not root may open our /proc/PID/uid_map only
            // while we are dumpable (as in runc's nsexec): for that moment.
            let maps_by_user = !nix::unistd::geteuid().is_root();
            unshare(CloneFlags::CLONE_NEWUSER).ctx("unshare(CLONE_NEWUSER)")?;
            if maps_by_user {
                // SAFETY: prctl with integer arguments only.
                unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
            }
            chan.send(&Msg::MapRequest)?;
            chan.expect(Msg::MapDone)?;
            crate::security::set_non_dumpable()?;
        }
        let rest = b.new_ns - CloneFlags::CLONE_NEWUSER - CloneFlags::CLONE_NEWCGROUP;
        unshare(rest).ctx("unshare")?;
        if let Some(offsets) = b.linux().time_offsets() {
            write_time_offsets(offsets)?;
        }
        let pid = sys::clone3(libc::CLONE_PARENT as u64, None)?;
        if pid == 0 {
            args.wait_continue = false;
            init::main(args, console)
        }
        Ok(pid)
    })();
    match res {
        Ok(pid) => {
            let _ = chan.send(&Msg::InitPid(pid));
            sys::child_exit(0)
        }
        Err(e) => {
            let _ = chan.send(&Msg::Error {
                errno: 0,
                text: e.to_string(),
            });
            sys::child_exit(1)
        }
    }
}

/// linux.timeOffsets (clock names checked by the bundle), written before
/// any process enters the time namespace.
fn write_time_offsets(
    offsets: &std::collections::HashMap<String, oci_spec::runtime::LinuxTimeOffset>,
) -> Result<(), ProcessError> {
    let mut text = String::new();
    for (clock, off) in offsets {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    // Through a verified procfs: a joined mount namespace may have
    // anything at /proc.
    crate::procfs::ProcRoot::open()?.write("self/timens_offsets", text.as_bytes())?;
    Ok(())
}
