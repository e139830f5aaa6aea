//! The public [`Runtime`]: a state root and its settings, and the runtime
//! verbs, each a thin call into the internal `runtime` module whose errors
//! become the public [`Error`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::container::{Container, ContainerState, Process};
use super::{Error, Result};
use crate::checkpoint::{CheckpointOptions, RestoreOptions};
use crate::runtime::{CreateOptions, Events, ExecOptions, UpdateFlags};

/// Which cgroup manager gives new containers their cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CgroupManager {
    /// capsa makes the cgroup directories itself (runc's default,
    /// `--cgroup-manager cgroupfs`).
    #[default]
    Cgroupfs,
    /// A systemd transient unit per container, on the system D-Bus
    /// (`--systemd-cgroup`); `linux.cgroupsPath` is `slice:prefix:name`.
    Systemd,
    /// No cgroup of its own for new containers (`--cgroup-manager
    /// disabled`): no limits, pause, stats or events.
    Disabled,
}

/// A container runtime: a state root (one directory per container, shared
/// with the `capsa` command run with the same `--root`) and how new
/// containers get their cgroups.
///
/// Cheap to clone; every method may be called from any thread, and
/// concurrently with other runtimes and `capsa` commands on the same root:
/// each container has its own lock, and state is written atomically.
///
/// ```no_run
/// # fn main() -> capsa::Result<()> {
/// use capsa::{CgroupManager, CreateOptions, Runtime};
/// let rt = Runtime::new("/run/my-engine").with_cgroup_manager(CgroupManager::Cgroupfs);
/// let c = rt.create("web", &CreateOptions::with_bundle("/srv/bundles/web"))?;
/// c.start()?;
/// println!("{}: {:?}", c.id(), c.state()?.status);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Runtime {
    inner: crate::runtime::Runtime,
}

impl Runtime {
    /// A runtime keeping its containers' state under `root` (created if
    /// missing; [`default_root`](crate::default_root) gives runc's choice),
    /// with the cgroupfs manager and not rootless.
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime {
            inner: crate::runtime::Runtime::new(root),
        }
    }

    /// Use `manager` for the cgroups of containers created from now on
    /// (existing ones keep the manager their state records).
    pub fn with_cgroup_manager(mut self, manager: CgroupManager) -> Runtime {
        self.inner.no_cgroups = manager == CgroupManager::Disabled;
        self.inner.systemd = manager == CgroupManager::Systemd;
        self
    }

    /// runc's `--rootless` cgroup rules: a cgroup the user may not make is
    /// no error unless the configuration needs one (limits, an explicit
    /// `linux.cgroupsPath`). What an unprivileged caller's configuration may
    /// ask for follows its effective uid whatever this says.
    /// [`detect_rootless`](crate::detect_rootless) is runc's default.
    pub fn with_rootless(mut self, rootless: bool) -> Runtime {
        self.inner.rootless = rootless;
        self
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The cgroup manager for new containers.
    pub fn cgroup_manager(&self) -> CgroupManager {
        if self.inner.no_cgroups {
            CgroupManager::Disabled
        } else if self.inner.systemd {
            CgroupManager::Systemd
        } else {
            CgroupManager::Cgroupfs
        }
    }

    /// Whether runc's rootless cgroup rules apply.
    pub fn is_rootless(&self) -> bool {
        self.inner.rootless
    }

    /// Create container `id` (runtime-spec `create`): validate the
    /// configuration, make its namespaces, cgroup, mounts and root
    /// filesystem, run the `prestart`/`createRuntime`/`createContainer`
    /// hooks, and leave its init waiting for [`start`](Self::start).
    ///
    /// On error nothing is left behind (no state, cgroup, mount or
    /// process). The configuration's errors are [`Error::InvalidConfig`]
    /// naming the field; an id in use is [`Error::AlreadyExists`].
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<Container> {
        let created = self.inner.create(id, opts).map_err(|e| err(e, id))?;
        let crate::runtime::Created {
            dir, state, stdio, ..
        } = created;
        // The lock goes with the directory handle: others may now work on
        // the container.
        drop(dir);
        Ok(Container::new(self.clone(), id, state.pid, stdio))
    }

    /// A handle on existing container `id` (with a pidfd of its init if it
    /// is alive). Its exit status is only known if this process created it
    /// (see [`Container`]).
    pub fn container(&self, id: &str) -> Result<Container> {
        let (dir, st) =
            crate::state::read_unlocked(self.root(), id).map_err(|e| err(e.into(), id))?;
        let pid = if st.status(&dir) == crate::state::Status::Stopped {
            0
        } else {
            st.pid
        };
        let c = Container::new(self.clone(), id, pid, [None, None, None]);
        // The pid could have been reused between the two looks: a pidfd
        // opened before the init is seen alive names the init.
        if pid != 0 && !st.init_alive() {
            return Ok(Container::new(self.clone(), id, 0, [None, None, None]));
        }
        Ok(c)
    }

    /// Start created container `id`: its init execs the workload
    /// (runtime-spec `start`), then the `poststart` hooks run.
    pub fn start(&self, id: &str) -> Result<()> {
        self.inner.start(id).map_err(|e| err(e, id))
    }

    /// runc's `run`: create and start. With `detach`, return 0 once it
    /// runs. Otherwise, as the `capsa run` command does: forward every
    /// signal this process receives to the init, wait for it, delete the
    /// container (unless `keep`) and return its exit status as a shell
    /// reports it. The foreground form blocks all signals in the calling
    /// thread and reaps any child of this process: it is meant for a
    /// single-threaded program; an engine uses [`create`](Self::create),
    /// [`Container::start`] and [`Container::wait`].
    pub fn run(&self, id: &str, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
        self.inner
            .run(id, opts, detach, keep)
            .map_err(|e| err(e, id))
    }

    /// runc's `exec`: run a process in running container `id`. Without
    /// [`ExecOptions::detach`], as `capsa exec` does: forward signals to
    /// it, wait for it and return its exit status as a shell reports it
    /// (the same single-threaded caveat as [`run`](Self::run)); with it,
    /// return 0 once it runs. A program wanting a handle uses
    /// [`exec_process`](Self::exec_process).
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32> {
        self.inner.exec(id, opts).map_err(|e| err(e, id))
    }

    /// Start a process in running container `id` and return a handle on
    /// it (its pid, pidfd and stdio pipes) without waiting for it:
    /// [`Process::wait`] gives its exit status. `opts.detach` is ignored.
    /// Safe to call from any thread.
    pub fn exec_process(&self, id: &str, opts: &ExecOptions) -> Result<Process> {
        let s = self
            .inner
            .exec_start(id, opts, false)
            .map_err(|e| err(e, id))?;
        Ok(Process::new(s.pid, s.stdio))
    }

    /// Send `signal` (a number; [`parse_signal`](crate::parse_signal)
    /// takes names) to the init of container `id`, or with `all` to every
    /// process of it. Signal 0 only checks that it runs.
    /// [`Error::NotRunning`] if it has stopped (not with `all`).
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        self.inner.kill(id, signal, all).map_err(|e| err(e, id))
    }

    /// Delete container `id`: remove its cgroup, state and whatever else
    /// create made, and run its `poststop` hooks. It must be stopped (or
    /// created: its init is killed); `force` kills a running one first and
    /// succeeds when there is no such container. Any `capsa` or engine
    /// command may do this concurrently: exactly one succeeds.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        self.inner.delete(id, force).map_err(|e| err(e, id))
    }

    /// Freeze every process of container `id` (its cgroup's freezer).
    pub fn pause(&self, id: &str) -> Result<()> {
        self.inner.pause(id).map_err(|e| err(e, id))
    }

    /// Thaw paused container `id`.
    pub fn resume(&self, id: &str) -> Result<()> {
        self.inner.resume(id).map_err(|e| err(e, id))
    }

    /// Change the resource limits of running container `id`, as runc's
    /// `update`: from `resources` (a runtime-spec `LinuxResources` JSON
    /// file, or `-` for standard input), or from `flags` (not both).
    pub fn update(&self, id: &str, resources: Option<&Path>, flags: &UpdateFlags) -> Result<()> {
        self.inner
            .update(id, resources, flags)
            .map_err(|e| err(e, id))
    }

    /// The state of container `id`, without taking its lock (it answers
    /// at once while another command works on the container).
    pub fn state(&self, id: &str) -> Result<ContainerState> {
        let (dir, st) =
            crate::state::read_unlocked(self.root(), id).map_err(|e| err(e.into(), id))?;
        Ok(ContainerState::of(&st, st.status(&dir)))
    }

    /// Every container under the root. One whose state cannot be read is
    /// left out, with a warning on standard error (as runc does).
    pub fn list(&self) -> Result<Vec<ContainerState>> {
        let list = self.inner.list().map_err(Error::from)?;
        Ok(list
            .iter()
            .map(|(st, status)| ContainerState::of(st, *status))
            .collect())
    }

    /// Host pids of every process of container `id`.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        self.inner.pids(id).map_err(|e| err(e, id))
    }

    /// runc's `ps` output for container `id`: the pids as a JSON array
    /// (`null` when none), or `ps` run with `ps_args` (default `-ef`) and
    /// filtered to the container's processes.
    pub fn ps(&self, id: &str, json: bool, ps_args: &[String]) -> Result<String> {
        self.inner.ps(id, json, ps_args).map_err(|e| err(e, id))
    }

    /// The events of container `id`: a stats event every `interval` and
    /// an OOM event for each OOM kill in it, until its init exits; with
    /// `stats_only`, one stats event. An iterator whose `next` blocks until
    /// the next event.
    ///
    /// ```no_run
    /// # fn main() -> capsa::Result<()> {
    /// let rt = capsa::Runtime::new("/run/my-engine");
    /// for event in rt.events("web", false, std::time::Duration::from_secs(5))? {
    ///     println!("{}", event?.to_json());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn events(&self, id: &str, stats_only: bool, interval: Duration) -> Result<Events> {
        self.inner
            .events(id, stats_only, interval)
            .map_err(|e| err(e, id))
    }

    /// Checkpoint container `id` with CRIU (runc's `checkpoint`).
    pub fn checkpoint(&self, id: &str, opts: &CheckpointOptions) -> Result<()> {
        self.inner.checkpoint(id, opts).map_err(|e| err(e, id))
    }

    /// Restore container `id` from a CRIU image (runc's `restore`); in
    /// the foreground, wait for it and return its exit status.
    pub fn restore(&self, id: &str, opts: &RestoreOptions) -> Result<i32> {
        self.inner.restore(id, opts).map_err(|e| err(e, id))
    }
}

/// An internal error, classified, for container `id`.
fn err(e: crate::error::Error, id: &str) -> Error {
    Error::from_internal(e, id)
}
