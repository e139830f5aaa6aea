//! `exec`: run another process in a running container, from a runtime-spec
//! Process JSON (`--process`, as engines pass it) or from runc's flags.

use std::path::PathBuf;

use oci_spec::runtime::{Capability, Process};

use super::Runtime;
use crate::api::Stdio;
use crate::bundle::{BundleError, ProcessPlan};
use crate::cgroups::SubCgroups;
use crate::console;
use crate::error::{Error, Result};
use crate::process::attrs::Role;
use crate::process::exec::{self, ExecSpawn};
use crate::process::{ChildGuard, ProcessError, helper};
use crate::security::seccomp::Filter;
use crate::state::{self, ContainerDir, Status};

/// How to run a process in a running container: runc's `exec` flags, plus
/// the stdio streams a library caller chooses.
///
/// Either [`process`](Self::process) (a runtime-spec Process JSON file, as
/// engines pass it) or [`args`](Self::args) (the container's own process
/// with the other fields applied, as runc's flags do):
///
/// ```
/// let mut opts = capsa::ExecOptions::args(["/bin/echo", "hello"]);
/// opts.env.push("GREETING=hi".into());
/// opts.stdout = capsa::Stdio::Piped;
/// assert_eq!(opts.args.len(), 2);
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ExecOptions {
    /// A runtime-spec Process JSON file ("-" = standard input). The other
    /// process fields below are then ignored.
    pub process: Option<PathBuf>,
    /// Command and arguments (when no `process`): the container's
    /// `process` with these args and the fields below applied.
    pub args: Vec<String>,
    /// Allocate a terminal (`--tty`); needs `console_socket` unless a
    /// foreground `capsa exec` proxies it.
    pub tty: bool,
    /// Send the pty master to this unix socket (`--console-socket`).
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container (`--cwd`).
    pub cwd: Option<PathBuf>,
    /// `KEY=VALUE` pairs added to (or replacing in) the environment (`--env`).
    pub env: Vec<String>,
    /// `uid[:gid]` to run as (`--user`).
    pub user: Option<String>,
    /// Supplementary groups (`--additional-gids`).
    pub additional_gids: Vec<u32>,
    /// Capabilities to add, by name (`--cap`, e.g. `CAP_NET_ADMIN`).
    pub caps: Vec<String>,
    /// Set no_new_privs (`--no-new-privs`).
    pub no_new_privs: bool,
    /// Do not wait for the process (`--detach`): [`Runtime::exec`](crate::Runtime::exec)
    /// returns 0 once it runs.
    pub detach: bool,
    /// Write the process's pid to this file (`--pid-file`).
    pub pid_file: Option<PathBuf>,
    /// Pass the caller's fds 3..3+N to the process (`--preserve-fds`).
    pub preserve_fds: u32,
    /// Exec even in a paused container (`--ignore-paused`); the process
    /// stays frozen until the container is resumed.
    pub ignore_paused: bool,
    /// `process.apparmorProfile` (`--apparmor`).
    pub apparmor: Option<String>,
    /// `process.selinuxLabel` (`--process-label`).
    pub process_label: Option<String>,
    /// Sub-cgroup(s) of the container's to run in (`--cgroup`, runc's
    /// syntax: `SUB` or `CONTROLLER[,CONTROLLER]:SUB`).
    pub cgroup: Vec<String>,
    /// Send a pidfd of the process to this unix socket (`--pidfd-socket`).
    pub pidfd_socket: Option<PathBuf>,
    /// The process's standard input. Ignored with `tty`.
    pub stdin: Stdio,
    /// The process's standard output. Ignored with `tty`.
    pub stdout: Stdio,
    /// The process's standard error. Ignored with `tty`.
    pub stderr: Stdio,
}

impl ExecOptions {
    /// Options to run `args` with the container's process settings.
    pub fn args<I, S>(args: I) -> ExecOptions
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExecOptions {
            args: args.into_iter().map(Into::into).collect(),
            ..ExecOptions::default()
        }
    }
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

/// A --process file without `user` runs as uid 0, gid 0, as with runc
/// (Go's zero value); the library's Process type requires the field.
fn default_user(data: Vec<u8>) -> Vec<u8> {
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_slice(&data) else {
        return data;
    };
    if obj.contains_key("user") {
        return data;
    }
    obj.insert("user".into(), serde_json::json!({"uid": 0, "gid": 0}));
    serde_json::to_vec(&obj).unwrap_or(data)
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
        let data = default_user(data);
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
        // Without process.capabilities the process has none: start from
        // empty sets (oci-spec's Default is runc's spec template set).
        let mut c = p.capabilities().clone().unwrap_or_else(no_capabilities);
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

/// Every capability set present and empty.
fn no_capabilities() -> oci_spec::runtime::LinuxCapabilities {
    let none = || Some(oci_spec::runtime::Capabilities::new());
    let mut c = oci_spec::runtime::LinuxCapabilities::default();
    c.set_bounding(none());
    c.set_effective(none());
    c.set_permitted(none());
    c.set_inheritable(none());
    c.set_ambient(none());
    c
}

/// A process `exec_start` started: its pid, and what waits for it.
pub struct Started {
    pub pid: i32,
    /// A foreground exec's signal forwarding (and its waiting).
    pub signals: Option<crate::signals::Forwarder>,
    /// The tty proxy's pid (a foreground exec with a terminal).
    pub proxy: Option<i32>,
    /// The caller's ends of the pipes asked for (stdin, stdout, stderr).
    pub stdio: [Option<std::fs::File>; 3],
}

/// What `exec_spawn` gives: the pid, the pty master's socket end, the
/// caller's pipe ends (stdin, stdout, stderr).
pub(crate) type Spawned = (
    i32,
    Option<std::os::fd::OwnedFd>,
    [Option<std::fs::File>; 3],
);

impl Runtime {
    /// `exec`; returns the process's exit status (0 with --detach).
    pub fn exec(&self, id: &str, o: &ExecOptions) -> Result<i32> {
        let s = self.exec_start(id, o, !o.detach)?;
        match s.signals {
            Some(sig) => sig.wait_for(s.pid, s.proxy),
            None => Ok(0),
        }
    }

    /// Start the process; in the `foreground`, with signal forwarding
    /// set up (before the clone) for the caller to wait with.
    pub fn exec_start(&self, id: &str, o: &ExecOptions, foreground: bool) -> Result<Started> {
        // Blocked before the clone, so that none is lost (signals.rs).
        let signals = if foreground {
            Some(crate::signals::Forwarder::new()?)
        } else {
            None
        };
        // From a multi-threaded caller, the clone is made by a
        // single-threaded helper (process/helper.rs).
        let (pid, console, stdio) = if helper::needed()? {
            helper::exec(self, id, o, !foreground)?
        } else {
            self.exec_spawn(id, o, !foreground)?
        };
        let proxy = match console {
            Some(sock) => Some(console::spawn_proxy(console::recv_master(&sock)?)?),
            None => None,
        };
        Ok(Started {
            pid,
            signals,
            proxy,
            stdio,
        })
    }

    /// `exec` up to a running process: its pid, with a terminal and no
    /// --console-socket our end of the pair the pty master comes through,
    /// and the caller's ends of the pipes asked for. `detached`: nobody
    /// will proxy a terminal (it needs --console-socket).
    pub(crate) fn exec_spawn(&self, id: &str, o: &ExecOptions, detached: bool) -> Result<Spawned> {
        let dir = ContainerDir::open(&self.root, id)?;
        let st = dir.load()?;
        crate::fault::point("exec.locked");
        let status = st.status(&dir.path);
        match status {
            Status::Stopped => {
                return Err(Error::NotRunning(
                    "cannot exec in a stopped container".into(),
                ));
            }
            Status::Paused if !o.ignore_paused => {
                return Err(Error::WrongState(
                    "cannot exec in a paused container (use --ignore-paused to override)".into(),
                ));
            }
            _ => {}
        }
        let base = crate::bundle::Bundle::read_spec(st.spec_dir(&dir.path))?;
        let base_process = base.process().clone().unwrap_or_default();
        let process = build_process(&base_process, o)?;
        let plan = ProcessPlan::new(&process, "process", base.linux().as_ref(), Role::Exec)?;
        let terminal = process.terminal().unwrap_or(false);
        super::create::check_console_flags(terminal, o.console_socket.as_deref(), detached)?;
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
        let mut stdio = crate::api::stdio::resolve([&o.stdin, &o.stdout, &o.stderr])?;
        let mut guard = ChildGuard::default();
        let spawned = exec::spawn(
            ExecSpawn {
                init_pid: st.pid,
                container: &st,
                process: &process,
                plan: &plan,
                seccomp: seccomp.as_ref(),
                cgroup: &cgroup,
                console: console.child,
                own_console: o.console_socket.is_none(),
                preserve_fds: i32::try_from(o.preserve_fds)
                    .map_err(|_| usage("--preserve-fds: too large"))?,
                // Others may work on the container while the process starts
                // and runs (a paused container must be resumable).
                lock: Some(dir),
                stdio: stdio.child,
            },
            &mut guard,
        );
        let pid = match spawned {
            Err(ProcessError::Sys(e))
                if status == Status::Created
                    && e.errno == nix::errno::Errno::EACCES
                    && !nix::unistd::geteuid().is_root() =>
            {
                return Err(Error::WrongState(format!(
                    "cannot exec in created container {id} before `start`: {e} (a rootless \
                     container's waiting init can be joined only when the runtime's binary is \
                     not the user's to write, else the container could rewrite it through \
                     /proc/1/exe, and the container mounts /proc)"
                )));
            }
            r => r?,
        };
        // The process holds its copies.
        stdio.held.clear();
        crate::fault::point("exec.spawned");
        if let Some(sock) = &pidfd_socket {
            sock.send(pid)?;
        }
        guard.disarm();
        if let Some(pf) = &o.pid_file {
            state::write_pid_file(&super::absolute(pf), pid)?;
        }
        Ok((
            pid,
            console.parent,
            [stdio.stdin, stdio.stdout, stdio.stderr],
        ))
    }
}
