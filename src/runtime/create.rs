//! `create`, as named steps: validate, make the state dir, the cgroup, the
//! exec.fifo and the console ends, spawn the init, record its state. Each
//! step that makes something on the host hands back a guard that removes it
//! if a later step fails; the guards drop in reverse order (processes, then
//! the cgroup, then the state dir), so a failed create leaves nothing.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::mkfifo;

use super::{CreateOptions, Runtime, absolute};
use crate::bundle::{Bundle, HookKind};
use crate::cgroups::Cgroup;
use crate::cgroups::systemd::Systemd;
use crate::console;
use crate::error::{Error, Result};
use crate::fault;
use crate::hooks;
use crate::process::{self, ChildGuard, SpawnOpts, helper};
use crate::state::{self, ContainerDir, State};
use crate::sys::{self, Ctx};

/// A container that `create` left waiting on its exec.fifo.
pub struct Created {
    pub dir: ContainerDir,
    pub state: State,
    /// `run` in the foreground with a terminal: our end of the console pair.
    pub console: Option<OwnedFd>,
    /// The caller's ends of the pipes asked for (stdin, stdout, stderr).
    pub stdio: [Option<std::fs::File>; 3],
}

/// Removes the container's state directory when dropped, unless disarmed.
struct DirGuard(Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs the poststop hooks when dropped, unless disarmed: a failed create is
/// a container destroyed at lifecycle step 12, and step 13 (poststop)
/// follows (runtime-spec runtime.md; runc does the same once its container
/// exists). Made before the other guards, so it drops after them.
struct PoststopGuard<'a>(Option<(&'a Bundle, &'a str)>);

impl Drop for PoststopGuard<'_> {
    fn drop(&mut self) {
        if let Some((b, id)) = self.0.take() {
            let annotations = b.spec.annotations().clone().unwrap_or_default();
            hooks::run_poststop(b.hooks(HookKind::Poststop), id, &b.dir, &annotations);
        }
    }
}

/// Detaches the mounts a container without a mount namespace made in the
/// runtime's, when dropped, unless disarmed (`rootfs::hostmounts`).
struct HostMountsGuard<'a>(Option<(&'a std::path::Path, &'a [u32])>);

impl Drop for HostMountsGuard<'_> {
    fn drop(&mut self) {
        if let Some((rootfs, before)) = self.0.take() {
            crate::rootfs::hostmounts::undo(rootfs, before);
        }
    }
}

/// Destroys the container's cgroup when dropped, unless disarmed.
struct CgroupGuard(Option<Cgroup>);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(cg) = self.0.take() {
            let _ = cg.destroy();
        }
    }
}

/// The init's console: the end it gets, and (foreground `run` with a
/// terminal and no --console-socket) the end we keep to receive the master.
pub(super) struct ConsoleEnds {
    pub child: Option<OwnedFd>,
    pub parent: Option<OwnedFd>,
}

impl Runtime {
    /// `foreground`: a `run` that stays (console, signals); `start_now`:
    /// any `run` (the init is started as soon as it waits).
    pub(crate) fn create_inner(
        &self,
        id: &str,
        opts: &CreateOptions,
        foreground: bool,
        start_now: bool,
    ) -> Result<Created> {
        state::validate_id(id)?;
        // From a multi-threaded caller, the clone is made by a
        // single-threaded helper (process/helper.rs).
        if helper::needed()? {
            return self.create_by_helper(id, opts, foreground);
        }
        // Parse and validate everything before making anything.
        let (mut bundle, spec_json) = opts.load_bundle()?;
        // runc's two meanings: the rules of an unprivileged caller follow
        // its euid; --rootless (self.rootless) decides the cgroup rules.
        if !nix::unistd::geteuid().is_root() {
            check_rootless(&bundle)?;
        }
        let terminal = bundle.process().terminal().unwrap_or(false);
        check_console_flags(terminal, opts.console_socket.as_deref(), !foreground)?;
        // Socket activation (runc): the LISTEN_FDS fds come first, then
        // --preserve-fds; the workload learns how many from its environment.
        let preserve_fds = opts
            .preserve_fds
            .checked_add(opts.listen_fds)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| Error::Usage("--preserve-fds: too large".into()))?;
        if opts.listen_fds > 0 {
            for var in [
                format!("LISTEN_FDS={}", opts.listen_fds),
                "LISTEN_PID=1".into(),
            ] {
                let var = std::ffi::CString::new(var)
                    .map_err(|_| Error::Usage("LISTEN_FDS: not a number".into()))?;
                bundle.plan.env.push(var);
            }
        }

        let pidfd_socket = super::pidfd::connect(opts.pidfd_socket.as_deref())?;
        // The systemd driver on a host without systemd, a bad
        // slice:prefix:name, a property systemd cannot take: refused
        // before anything exists.
        let systemd = if self.systemd && !self.no_cgroups {
            let v2 = crate::cgroups::hierarchy::pure_v2()?;
            Some(
                Systemd::plan(&bundle.spec, id, v2, self.rootless)
                    .map_err(crate::cgroups::CgroupError::from)?,
            )
        } else {
            None
        };

        let dir = ContainerDir::create(&self.root, id)?;
        let mut poststop_guard = PoststopGuard(Some((&bundle, id)));
        let mut dir_guard = DirGuard(Some(dir.path.clone()));
        fault::point("create.dir");
        if let Some(json) = &spec_json {
            state::write_atomic(&dir.path.join(state::SPEC_FILE), json, 0o600)?;
        }
        let (mut cgroup, mut cgroup_guard) = self.make_cgroup(&bundle, &dir, id, systemd)?;
        fault::point("create.cgroup");
        let state_dir = make_fifo(&dir)?;
        let console = console_ends(opts.console_socket.as_deref(), terminal)?;
        let host_mounts = if bundle.mount_ns {
            None
        } else {
            Some(crate::rootfs::hostmounts::snapshot(&bundle.rootfs)?)
        };
        let mut mounts_guard =
            HostMountsGuard(host_mounts.as_deref().map(|m| (bundle.rootfs.as_path(), m)));

        let mut stdio = crate::api::stdio::resolve([&opts.stdin, &opts.stdout, &opts.stderr])?;
        let mut children = ChildGuard::default();
        let spawned = process::spawn(
            SpawnOpts {
                bundle: &bundle,
                cgroup: &cgroup,
                state_dir: &state_dir,
                console: console.child,
                no_pivot: opts.no_pivot,
                new_keyring: !opts.no_new_keyring,
                preserve_fds,
                id,
                stdio: stdio.child,
                start_now,
            },
            &mut children,
        )?;
        // The init holds its copies.
        stdio.held.clear();
        let pid = spawned.pid;
        fault::point("create.spawned");
        // A pid namespace of its own (not joined) says which processes in
        // its cgroup are the container's, for kill --all and delete.
        if bundle.new_ns.contains(CloneFlags::CLONE_NEWPID) && !cgroup.dirs.is_empty() {
            cgroup.pidns = match crate::cgroups::NsId::pid_ns_of(pid) {
                Ok(ns) => Some(ns),
                // Rootless: the waiting init is not dumpable, and its memory
                // belongs to the host's user namespace, where we have no
                // CAP_SYS_PTRACE. Its cgroup is one the user made for it
                // alone: all that is in it is the container's.
                Err(e) if self.rootless && e.errno == nix::errno::Errno::EACCES => None,
                Err(e) => return Err(e.into()),
            };
        }
        let cgroupns = bundle.new_ns.contains(CloneFlags::CLONE_NEWCGROUP);
        cgroup.delegate(&bundle.spec, cgroupns, pid)?;
        if let Some(sock) = &pidfd_socket {
            sock.send(pid)?;
        }
        let mut state = created_state(id, &bundle, pid, cgroup)?;
        state.host_mounts = host_mounts.clone();
        state.own_spec = spec_json.is_some();
        dir.save(&state)?;
        fault::point("create.saved");
        // Only now may the init outlive us: until here our death kills it
        // (parent-death signal), so a killed create leaves no init behind.
        spawned.detach()?;
        fault::point("create.done");
        if let Some(pf) = &opts.pid_file {
            state::write_pid_file(&absolute(pf), pid)?;
        }
        children.disarm();
        cgroup_guard.0 = None;
        dir_guard.0 = None;
        mounts_guard.0 = None;
        poststop_guard.0 = None;
        Ok(Created {
            dir,
            state,
            console: console.parent,
            stdio: [stdio.stdin, stdio.stdout, stdio.stderr],
        })
    }

    /// `create_inner` through a helper, which leaves the container as we
    /// would (its init our child), then takes the lock again.
    fn create_by_helper(
        &self,
        id: &str,
        opts: &CreateOptions,
        foreground: bool,
    ) -> Result<Created> {
        let (_, console, stdio) = helper::create(self, id, opts, foreground)?;
        let dir = ContainerDir::open(&self.root, id)?;
        let state = dir.load()?;
        Ok(Created {
            dir,
            state,
            console,
            stdio,
        })
    }

    /// The container's cgroup with linux.resources applied (none with
    /// `--cgroup-manager disabled`), guarded from the moment it exists.
    /// The directories it will make are written to the state dir first
    /// (`CGROUP_PLAN`): a create killed half way leaves no state.json, and
    /// `delete --force` then removes what this record names.
    fn make_cgroup(
        &self,
        bundle: &Bundle,
        dir: &ContainerDir,
        id: &str,
        systemd: Option<Systemd>,
    ) -> Result<(Cgroup, CgroupGuard)> {
        if self.no_cgroups {
            return Ok((Cgroup::default(), CgroupGuard(None)));
        }
        let linux = bundle.linux();
        let mut cgroups_path = linux
            .cgroups_path()
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned());
        if let Some(sd) = systemd {
            // The unit and its properties were checked before the state
            // dir was made; the unit starts once the init exists
            // (Cgroup::place), and the resources are written then.
            let plan = Cgroup::planned_systemd(&sd)?;
            dir.save_cgroup_plan(&plan)?;
            let cg = Cgroup::create_systemd(sd)?;
            let guard = CgroupGuard(Some(cg.clone()));
            return Ok((cg, guard));
        }
        if self.rootless {
            let own = crate::rootless::own_unified_cgroup();
            cgroups_path =
                crate::rootless::cgroups_path(cgroups_path.as_deref(), id, own.as_deref())
                    .or(cgroups_path);
        }
        let plan = Cgroup::planned(cgroups_path.as_deref(), id)?;
        dir.save_cgroup_plan(&plan)?;
        let cg = match Cgroup::create(cgroups_path.as_deref(), id) {
            Ok(cg) => cg,
            Err(e) if self.rootless && crate::rootless::is_permission(&e) => {
                return self.rootless_without_cgroup(bundle, dir, e);
            }
            Err(e) => return Err(e.into()),
        };
        let guard = CgroupGuard(Some(cg.clone()));
        if self.rootless
            && linux
                .resources()
                .as_ref()
                .is_some_and(|r| r.devices().is_some())
        {
            // No device cgroup for a rootless container (runc skips it too:
            // v2's BPF filter needs host privileges); its user reaches only
            // the devices it could reach anyway.
            let mut l = linux.clone();
            if let Some(r) = l.resources_mut() {
                r.set_devices(None);
            }
            cg.apply_linux(&l)?;
        } else {
            cg.apply_linux(linux)?;
        }
        Ok((cg, guard))
    }

    /// runc's rootless rules when the user may not make the container's
    /// cgroup (no delegated subtree; any cgroup v1 host): with no
    /// linux.cgroupsPath and no resources that need one, the container runs
    /// in the caller's cgroup without one of its own; otherwise an error
    /// naming what needed it.
    fn rootless_without_cgroup(
        &self,
        bundle: &Bundle,
        dir: &ContainerDir,
        e: crate::cgroups::CgroupError,
    ) -> Result<(Cgroup, CgroupGuard)> {
        let linux = bundle.linux();
        use crate::rootless::RootlessError;
        if let Some(field) = crate::rootless::resource_needing_cgroup(linux) {
            let why = e.to_string();
            return Err(RootlessError::NoCgroupForLimits { field, why }.into());
        }
        if linux.cgroups_path().is_some() {
            return Err(RootlessError::CgroupPath { why: e.to_string() }.into());
        }
        dir.save_cgroup_plan(&Cgroup::default())?;
        Ok((Cgroup::default(), CgroupGuard(None)))
    }
}

/// What a rootless container must be (rootless.rs), refused before
/// anything is made.
fn check_rootless(bundle: &Bundle) -> Result<()> {
    let invalid = |(field, msg)| crate::bundle::BundleError::Invalid { field, msg };
    crate::rootless::check_spec(&bundle.spec).map_err(invalid)?;
    crate::rootless::check_rlimits(bundle.process()).map_err(invalid)?;
    // Device rules are not applied rootless (no device cgroup), but an
    // invalid one is still an error, as for root: checked here, pure.
    let devices = bundle
        .linux()
        .resources()
        .as_ref()
        .and_then(|r| r.devices().as_ref());
    if let Some(d) = devices {
        crate::cgroups::devices::rules(d)?;
    }
    Ok(())
}

/// runc's rules for process.terminal and --console-socket (create, run,
/// exec): a terminal needs somewhere to go, a socket needs a terminal.
pub(super) fn check_console_flags(
    terminal: bool,
    console_socket: Option<&Path>,
    detach: bool,
) -> Result<()> {
    if terminal && console_socket.is_none() && detach {
        return Err(Error::Usage(
            "process.terminal: cannot allocate tty if capsa will detach without setting console socket (use --console-socket)"
                .into(),
        ));
    }
    if !terminal && console_socket.is_some() {
        return Err(Error::Usage(
            "process.terminal: cannot use console socket if capsa will not detach or allocate tty"
                .into(),
        ));
    }
    Ok(())
}

/// exec.fifo in the state dir (removed with it), and an O_PATH fd of the
/// dir through which the init opens the fifo.
fn make_fifo(dir: &ContainerDir) -> Result<OwnedFd> {
    let fifo = dir.fifo_path();
    mkfifo(&fifo, Mode::from_bits_truncate(0o622)).ctx_at("mkfifo", &fifo)?;
    // mkfifo honours the umask; the init may run as any user.
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        &fifo,
        Mode::from_bits_truncate(0o622),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .ctx_at("chmod", &fifo)?;
    let state_dir = open(
        &dir.path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx_at("open", &dir.path)?;
    Ok(state_dir)
}

/// The console ends, if process.terminal: to the --console-socket, or a
/// pair whose parent end receives the pty master.
pub(super) fn console_ends(console_socket: Option<&Path>, terminal: bool) -> Result<ConsoleEnds> {
    let (child, parent) = match (console_socket, terminal) {
        (Some(path), true) => (Some(console::connect(path)?), None),
        (None, true) => {
            let (p, c) = console::socketpair()?;
            (Some(c), Some(p))
        }
        _ => (None, None),
    };
    Ok(ConsoleEnds { child, parent })
}

/// The state.json of a container whose init `pid` waits on exec.fifo.
fn created_state(id: &str, bundle: &Bundle, pid: i32, cgroup: Cgroup) -> Result<State> {
    let (start_time, _) = sys::proc_start_time(pid)
        .ok_or_else(|| Error::Lifecycle("the container init exited before it was ready".into()))?;
    Ok(State {
        oci_version: bundle.spec.version().clone(),
        id: id.to_string(),
        pid,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: state::rfc3339_now(),
        owner: String::new(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        init_start_time: start_time,
        cgroup,
        started: false,
        poststart: bundle.hooks(HookKind::Poststart).to_vec(),
        poststop: bundle.hooks(HookKind::Poststop).to_vec(),
        seccomp: bundle.linux().seccomp().clone(),
        host_mounts: None,
        own_spec: false,
    })
}
