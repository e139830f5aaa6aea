//! `exec`: run another process in a running container, from a runtime-spec
//! Process JSON (`--process`, as engines pass it) or from runc's flags.

use std::path::PathBuf;

use oci_spec::runtime::{Capability, Process};

use super::Runtime;
use crate::bundle::{BundleError, ProcessPlan};
use crate::cgroups::SubCgroups;
use crate::console;
use crate::error::{Error, Result};
use crate::process::attrs::Role;
use crate::process::exec::{self, ExecSpawn};
use crate::process::{ChildGuard, helper};
use crate::security::seccomp::Filter;
use crate::state::{self, ContainerDir, Status};

/// runc's `exec` flags.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// A runtime-spec Process JSON file ("-" = stdin).
    pub process: Option<PathBuf>,
    /// Command and arguments (when no --process).
    pub args: Vec<String>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    /// "uid[:gid]".
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    /// --apparmor: process.apparmorProfile.
    pub apparmor: Option<String>,
    /// --process-label: process.selinuxLabel.
    pub process_label: Option<String>,
    /// `--cgroup`: sub-cgroup(s) of the container's to run in (runc's syntax).
    pub cgroup: Vec<String>,
    /// Send a pidfd of the process to this unix socket.
    pub pidfd_socket: Option<PathBuf>,
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

/// The process to run: --process as given, or the container's process with
/// the flags applied (runc's rules).
fn build_process(base: &Process, o: &ExecOptions) -> Result<Process> {
    if let Some(path) = &o.process {
        let data = if path.as_os_str() == "-" {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
                .map_err(|e| usage(format!("reading process JSON from stdin: {e}")))?;
            v
        } else {
            std::fs::read(path).map_err(|e| usage(format!("{}: {e}", path.display())))?
        };
        crate::limits::check_nul(&data)
            .map_err(|(field, msg)| BundleError::Invalid { field, msg })?;
        let p: Process = crate::spec_compat::from_slice(&data).map_err(|e| {
            Error::Bundle(BundleError::Parse {
                path: path.clone(),
                msg: format!("{}: {}", e.path(), e.inner()),
            })
        })?;
        return Ok(p);
    }
    if o.args.is_empty() {
        return Err(usage(
            "exec: no command given (pass one, or --process FILE)",
        ));
    }
    let mut p = base.clone();
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for e in &o.env {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|old| old.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    let mut user = p.user().clone();
    if let Some(u) = &o.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        user.set_uid(
            uid.parse()
                .map_err(|_| usage(format!("--user: invalid uid {uid:?}")))?,
        );
        user.set_gid(match gid {
            Some(g) => g
                .parse()
                .map_err(|_| usage(format!("--user: invalid gid {g:?}")))?,
            None => 0,
        });
    }
    if !o.additional_gids.is_empty() {
        user.set_additional_gids(Some(o.additional_gids.clone()));
    }
    p.set_user(user);
    if !o.caps.is_empty() {
        let mut c = p.capabilities().clone().unwrap_or_default();
        for name in &o.caps {
            // As an unknown name in config.json or --process: a warning.
            let Ok(cap) =
                serde_json::from_value::<Capability>(serde_json::Value::from(name.as_str()))
            else {
                eprintln!(
                    "capsa: warning: --cap: ignoring unknown or unavailable capabilities: [{name}]"
                );
                continue;
            };
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            let (b, e, pm) = (add(c.bounding()), add(c.effective()), add(c.permitted()));
            c.set_bounding(b);
            c.set_effective(e);
            c.set_permitted(pm);
        }
        p.set_capabilities(Some(c));
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &o.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &o.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    Ok(p)
}

impl Runtime {
    /// `exec`; returns the process's exit status (0 with --detach).
    pub fn exec(&self, id: &str, o: &ExecOptions) -> Result<i32> {
        // Blocked before the clone, so that none is lost (signals.rs).
        let signals = if o.detach {
            None
        } else {
            Some(crate::signals::Forwarder::new()?)
        };
        // From a multi-threaded caller, the clone is made by a
        // single-threaded helper (process/helper.rs).
        let (pid, console) = if helper::needed()? {
            helper::exec(self, id, o)?
        } else {
            self.exec_spawn(id, o)?
        };
        let proxy = match console {
            Some(sock) => Some(console::spawn_proxy(console::recv_master(&sock)?)?),
            None => None,
        };
        match signals {
            Some(s) => s.wait_for(pid, proxy),
            None => Ok(0),
        }
    }

    /// `exec` up to a running process: its pid and, with a terminal and no
    /// --console-socket, our end of the pair the pty master comes through.
    pub(crate) fn exec_spawn(
        &self,
        id: &str,
        o: &ExecOptions,
    ) -> Result<(i32, Option<std::os::fd::OwnedFd>)> {
        let dir = ContainerDir::open(&self.root, id)?;
        let st = dir.load()?;
        crate::fault::point("exec.locked");
        match st.status(&dir.path) {
            Status::Stopped => {
                return Err(Error::Lifecycle(
                    "cannot exec in a stopped container".into(),
                ));
            }
            Status::Paused if !o.ignore_paused => {
                return Err(Error::Lifecycle(
                    "cannot exec in a paused container (use --ignore-paused to override)".into(),
                ));
            }
            _ => {}
        }
        let base = crate::bundle::Bundle::read_spec(&st.bundle)?;
        let base_process = base.process().clone().unwrap_or_default();
        let process = build_process(&base_process, o)?;
        let plan = ProcessPlan::new(&process, "process", base.linux().as_ref(), Role::Exec)?;
        let terminal = process.terminal().unwrap_or(false);
        super::create::check_console_flags(terminal, o.console_socket.as_deref(), o.detach)?;
        let cgroup = st.cgroup.sub(&SubCgroups::parse(&o.cgroup)?)?;
        let pidfd_socket = super::pidfd::connect(o.pidfd_socket.as_deref())?;
        let console = super::create::console_ends(o.console_socket.as_deref(), terminal)?;
        let seccomp = st
            .seccomp
            .as_ref()
            .map(Filter::from_spec)
            .transpose()
            .map_err(|e| BundleError::Invalid {
                field: e.field,
                msg: e.msg,
            })?;
        let mut guard = ChildGuard::default();
        let pid = exec::spawn(
            ExecSpawn {
                init_pid: st.pid,
                container: &st,
                process: &process,
                plan: &plan,
                seccomp: seccomp.as_ref(),
                cgroup: &cgroup,
                console: console.child,
                preserve_fds: i32::try_from(o.preserve_fds)
                    .map_err(|_| usage("--preserve-fds: too large"))?,
                // Others may work on the container while the process starts
                // and runs (a paused container must be resumable).
                lock: Some(dir),
            },
            &mut guard,
        )?;
        crate::fault::point("exec.spawned");
        if let Some(sock) = &pidfd_socket {
            sock.send(pid)?;
        }
        guard.disarm();
        if let Some(pf) = &o.pid_file {
            state::write_pid_file(&super::absolute(pf), pid)?;
        }
        Ok((pid, console.parent))
    }
}
