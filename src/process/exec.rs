//! Parent side of `exec`: a stage-1 child joins every namespace of the
//! container's init (the user namespace first, the mount namespace last) and
//! clones the new process as our sibling, so that it really is inside the
//! pid and time namespaces; the process then runs the same pre-exec steps as
//! an init (finalize.rs) and execs.
//!
//! | step | parent (`capsa exec`)         | stage 1                | process                  |
//! |------|-------------------------------|------------------------|--------------------------|
//! | 1    | clone3([cgroup fd])           | waits for `Continue`   |                          |
//! | 2    | cgroup add_pid; `Continue` -> | setns x N; clone3      |                          |
//! | 3    | <- `InitPid`, reap stage 1    | _exit                  | console, finalize        |
//! | 4    | <- `Ready` (before or after 3)|                        | execve                   |
//! | 5    | EOF = exec succeeded          |                        | (or `Error`, _exit)      |

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::sched::{CloneFlags, setns};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::finalize;
use super::init::InitError;
use super::sync::{Channel, Msg, SyncError};
use super::trampoline::{self, Report, Trampoline};
use super::{ChildGuard, ProcessError};
use crate::bundle::ProcessPlan;
use crate::cgroups::Cgroup;
use crate::console;
use crate::security::seccomp::Filter;
use crate::security::seccomp::notify::AgentState;
use crate::state::{ContainerDir, State};
use crate::sys::{self, Ctx, SysError};

/// Namespaces in the order they are joined: user first (it owns the
/// others), mount last (joining it changes how paths resolve).
const NAMESPACES: [(&str, CloneFlags); 8] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("time", CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Open the namespaces of `pid` that differ from ours.
fn namespaces_of(pid: i32) -> Result<Vec<(File, CloneFlags)>, SysError> {
    let mut out = Vec::with_capacity(NAMESPACES.len());
    for (name, flag) in NAMESPACES {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let f = match File::open(&theirs) {
            Ok(f) => f,
            // A kernel without that namespace type.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SysError::io("open", theirs, &e)),
        };
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
        let theirs_meta = f.metadata().ctx_at("stat", std::path::Path::new(&theirs))?;
        if ours.is_ok_and(|m| m.ino() == theirs_meta.ino() && m.dev() == theirs_meta.dev()) {
            continue;
        }
        out.push((f, flag));
    }
    Ok(out)
}

pub struct ExecSpawn<'a> {
    pub init_pid: i32,
    /// The container, as `create` recorded it (for the seccomp agent).
    pub container: &'a State,
    pub process: &'a Process,
    pub plan: &'a ProcessPlan,
    pub cgroup: &'a Cgroup,
    /// The container's linux.seccomp, loaded into the process as into the
    /// init (runc does the same).
    pub seccomp: Option<&'a Filter>,
    pub console: Option<OwnedFd>,
    /// `console` leads to our own proxy (exec -t without --console-socket).
    pub own_console: bool,
    pub preserve_fds: i32,
    /// The container's lock, released once the process is in the
    /// container's cgroup: from then on `delete` finds and kills it, and
    /// what follows can wait on the container (a paused one freezes the
    /// process until `resume`, which needs the lock).
    pub lock: Option<ContainerDir>,
    /// The process's stdio, if not ours (a library caller's choice).
    pub stdio: crate::api::ChildStdio,
}

/// Start the process and return its pid once execve succeeded.
pub fn spawn(o: ExecSpawn, guard: &mut ChildGuard) -> Result<i32, ProcessError> {
    let ns = namespaces_of(o.init_pid)?;
    let trampoline = Trampoline::prepare()?;
    if ns.iter().any(|(_, f)| *f == CloneFlags::CLONE_NEWUSER)
        && !o.process.terminal().unwrap_or(false)
    {
        give_stdio_to_root(o.init_pid, &o.stdio)?;
    }
    let (parent, child) = super::sync::pair()?;
    let (stage, in_unified) = super::clone_into(o.cgroup, 0)?;
    if stage == 0 {
        drop(parent);
        // First thing: drop what the child must not inherit.
        // SAFETY: a fresh clone; it ends in execve or _exit.
        unsafe {
            o.stdio.install();
            crate::inherit::scrub_child(o.preserve_fds)
        };
        stage1(&child, &ns, &o, &trampoline)
    }
    drop(child);
    drop(o.console);
    drop(ns);
    guard.push(stage);
    o.cgroup.join(stage, in_unified)?;
    o.plan
        .attrs
        .apply_initial_cpus(stage)
        .map_err(|e| ProcessError::Init(e.to_string()))?;
    drop(o.lock);
    parent.send(&Msg::Continue)?;
    // Stage 1 never asks for id maps here: the user namespace is joined.
    let (pid, mut held) = super::recv_init_pid(&parent, || {
        Err(SyncError::Unexpected(Msg::MapRequest).into())
    })?;
    guard.push(pid);
    let _ = waitpid(Pid::from_raw(stage), None);
    loop {
        let (msg, fd) = super::next_msg(&parent, &mut held)?;
        match msg {
            Msg::Ready => break,
            Msg::SeccompFd => {
                let fd = fd.ok_or(SyncError::Unexpected(Msg::SeccompFd))?;
                let c = o.container;
                let agent = AgentState {
                    id: &c.id,
                    pid: c.pid,
                    process_pid: pid,
                    status: "running",
                    bundle: &c.bundle,
                    annotations: Some(&c.annotations),
                };
                super::seccomp_agent(o.seccomp, &agent, fd)?;
                parent.send(&Msg::SeccompDone)?;
            }
            Msg::Error { text, .. } => return Err(ProcessError::Init(text)),
            m => return Err(SyncError::Unexpected(m).into()),
        }
    }
    // The channel is close-on-exec: end-of-file means execve succeeded.
    match parent.recv() {
        Err(SyncError::Eof) => Ok(pid),
        Ok(Msg::Error { text, .. }) => Err(ProcessError::Init(text)),
        Ok(m) => Err(SyncError::Unexpected(m).into()),
        Err(e) => Err(e.into()),
    }
}

/// The container's root must be able to reopen the stdio pipes the
/// process inherits, as for the init (console::owner).
fn give_stdio_to_root(init_pid: i32, stdio: &crate::api::ChildStdio) -> Result<(), ProcessError> {
    if let Some((u, g)) = crate::namespaces::host_ids_of(init_pid, 0, 0)? {
        console::give_stdio_pipes(stdio, u, g)?;
    }
    Ok(())
}

fn stage1(chan: &Channel, ns: &[(File, CloneFlags)], o: &ExecSpawn, t: &Trampoline) -> ! {
    let res = (|| -> Result<i32, ProcessError> {
        // Before entering anything: the process cloned below inherits it
        // and is visible in the container from its first instruction.
        crate::security::set_non_dumpable()?;
        chan.expect(Msg::Continue)?;
        for (f, flag) in ns {
            setns(f.as_fd(), *flag).ctx("setns")?;
        }
        let pid = sys::clone3(libc::CLONE_PARENT as u64, None)?;
        if pid == 0 {
            run_process(chan, o, t)
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

fn run_process(chan: &Channel, o: &ExecSpawn, t: &Trampoline) -> ! {
    let res = (|| -> Result<finalize::Prepared, InitError> {
        // Not dumpable until exec (CVE-2019-5736 class; again, as joining
        // the user namespace changed our credentials), and the signal mask
        // of a foreground `capsa exec` must not leak into the workload.
        crate::security::set_non_dumpable()?;
        nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&nix::sys::signal::SigSet::empty()),
            None,
        )
        .ctx("sigprocmask")?;
        if let Some(sock) = &o.console {
            let sock = sock.try_clone().ctx("dup console socket")?;
            let opts = console::TerminalOptions {
                size: o.plan.console_size,
                mount_console: false,
                clear_onlcr: o.own_console,
            };
            console::setup_terminal(sock, &opts)?;
        }
        let seccomp = o.seccomp.map(|filter| finalize::Seccomp { filter, chan });
        finalize::prepare(o.process, o.plan, o.preserve_fds, seccomp)
    })();
    let finalize::Prepared { exe, deferred } = match res {
        Ok(p) => p,
        Err(e) => {
            let _ = chan.send(&Msg::Error {
                errno: 0,
                text: e.to_string(),
            });
            sys::child_exit(1)
        }
    };
    let _ = chan.send(&Msg::Ready);
    let env = finalize::env_with_home(o.process, &o.plan.env);
    let report = Report::Chan(chan.0.as_raw_fd());
    let failure =
        trampoline::exec_workload(t, report, o.process, &exe, &o.plan.args, &env, &deferred);
    report.failed(failure.errno(), &failure.message(&exe));
    sys::child_exit(failure.exit_code())
}
