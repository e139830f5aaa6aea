//! Placing the container in its cgroup(s) on v1, v2 and hybrid hosts,
//! applying linux.resources (resources.rs, devices.rs), freezing
//! (freezer.rs), statistics and OOM events (stats.rs), and removing the
//! cgroups again.
//!
//! Why not the cgroups-rs crate: it models a host as either v1 or v2 (a
//! hybrid host's unified hierarchy, where hugetlb may live, is invisible to
//! it), creates every hierarchy's directory through its own Hierarchy
//! objects (no record of which levels we made, so "remove only what capsa
//! created" could not be kept), and applies resources with its own
//! conversions rather than runc's. What capsa needs is writing known files
//! in known directories, with runc's conversions and errors that name the
//! config field: a thin layer of our own is smaller than adapting it.
//!
//! Where the container goes: `linux.cgroupsPath` names one path that is
//! used in every mounted hierarchy, below that hierarchy's mount root:
//! - absolute ("/a/b") and relative ("a/b") paths both mean
//!   `<mount>/a/b`. runc resolves a relative path against its own cgroup;
//!   we don't, so the result does not depend on where the caller happens to
//!   run (a systemd unit, a shell in a user slice).
//! - absent: `<mount>/<id>`. runc uses `<own cgroup>/<id>`; using the root
//!   means capsa never nests inside a cgroup it did not create (on v2 a
//!   process-holding parent would refuse children anyway).
//!
//! On a hybrid host the container is placed in every v1 hierarchy and in
//! the unified one. Only directories capsa made are ever removed.
//!
//! What is the container's (never signal, freeze or remove anyone else's):
//! - create refuses a leaf that already holds processes in it or below it
//!   (runc 1.2; 1.1 only warns), or is frozen, and refuses to put the leaf
//!   inside an existing cgroup that holds processes of its own (another
//!   container's: its kill, pause and delete would reach ours, and ours
//!   its). An existing empty leaf is reused, as runc does. So a
//!   cgroupsPath equal to, above or below a running container's, or an id
//!   that names a host cgroup, is an error, not a takeover.
//! - in that cgroup, the processes that are the container's (kill.rs):
//!   all of them if it shares a pid namespace, else those of its own pid
//!   namespace. kill --all and delete signal only those, and a directory
//!   left holding someone else's processes is left to them.

mod bpf;
pub mod devices;
pub mod freezer;
pub mod hierarchy;
mod kill;
mod ownership;
pub mod resources;
pub mod stats;
mod sub;
pub mod systemd;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use crate::sys::{self, Ctx, SysError};
use hierarchy::{Hierarchy, Kind};

pub use freezer::is_frozen;
pub use kill::{Members, NsId};
pub use sub::SubCgroups;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{0}")]
    Sys(#[from] SysError),
    /// Boxed: a D-Bus error is large, and every Result carries the room.
    #[error("{0}")]
    Systemd(Box<systemd::SystemdError>),
    #[error("linux.cgroupsPath: {0}")]
    Path(String),
    /// `exec --cgroup`: a bad argument or a missing sub-cgroup.
    #[error("{0}")]
    Sub(String),
    #[error("container id {0:?} cannot name a cgroup directory")]
    Id(String),
    #[error("no cgroup filesystem is mounted (/proc/self/mountinfo lists no cgroup or cgroup2)")]
    NoHierarchy,
    #[error("cannot initialise cpuset of {dir}: {parent} has an empty {file}")]
    CpusetEmpty {
        dir: PathBuf,
        parent: PathBuf,
        file: &'static str,
    },
    /// The container's cgroup (or one below it) already holds processes:
    /// they would be limited, frozen and killed with the container. runc
    /// 1.1 warns that this will be refused, 1.2 refuses.
    #[error(
        "container's cgroup is not empty: {n} process(es) found in {dir} or below it (another container's, or the host's); a container needs a cgroup of its own (linux.cgroupsPath, or /<id> without it)"
    )]
    NotEmpty { dir: PathBuf, n: usize },
    /// runc's words first ("container's cgroup unexpectedly frozen"):
    /// scripts written against runc match on them.
    #[error(
        "container's cgroup unexpectedly frozen: {dir} (linux.cgroupsPath, or /<id> without it)"
    )]
    Frozen { dir: PathBuf },
    /// A level above the container's cgroup holds processes directly
    /// (another container's cgroup): its owner would signal and freeze the
    /// new container with its own.
    #[error(
        "linux.cgroupsPath: {dir} holds {n} process(es) of its own (another container's cgroup?); a container's cgroup cannot be placed inside it"
    )]
    InsidePopulated { dir: PathBuf, n: usize },
    #[error("cgroup {dir} still holds processes {pids:?} after SIGKILL")]
    Busy { dir: PathBuf, pids: Vec<i32> },
    /// A linux.resources field this host's cgroups cannot apply, or a value
    /// no cgroup version accepts. `field` is the path below linux.resources.
    #[error("linux.resources.{field}: {msg}")]
    Resource { field: String, msg: String },
    /// Writing a resource's control file failed.
    #[error("linux.resources.{field}: writing {value:?} to {path}: {reason}")]
    Write {
        field: String,
        path: PathBuf,
        value: String,
        reason: String,
    },
    /// Freezing did not take effect in time.
    #[error("freezing {dir}: still {state} after {secs} s")]
    Freeze {
        dir: PathBuf,
        state: String,
        secs: u64,
    },
}

impl CgroupError {
    /// The config.json field this error is about, if it is one of the
    /// container's configuration (the public error's InvalidConfig).
    pub(crate) fn config_field(&self) -> Option<String> {
        match self {
            CgroupError::Path(_) | CgroupError::InsidePopulated { .. } => {
                Some("linux.cgroupsPath".into())
            }
            CgroupError::Resource { field, .. } => Some(format!("linux.resources.{field}")),
            _ => None,
        }
    }
}

impl From<systemd::SystemdError> for CgroupError {
    fn from(e: systemd::SystemdError) -> CgroupError {
        CgroupError::Systemd(Box::new(e))
    }
}

/// A controller, by its cgroup v1 name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Cpu,
    Cpuacct,
    Cpuset,
    Pids,
    Blkio,
    Hugetlb,
    NetCls,
    NetPrio,
    Rdma,
    Devices,
    Freezer,
}

impl Controller {
    pub fn v1_name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Pids => "pids",
            Controller::Blkio => "blkio",
            Controller::Hugetlb => "hugetlb",
            Controller::NetCls => "net_cls",
            Controller::NetPrio => "net_prio",
            Controller::Rdma => "rdma",
            Controller::Devices => "devices",
            Controller::Freezer => "freezer",
        }
    }

    /// The v2 counterpart: Some(name) for a controller listed in
    /// cgroup.controllers, Some("") for what v2 has in its core (freezing,
    /// BPF device filters, cpu.stat), None where v2 has nothing.
    pub fn v2_name(self) -> Option<&'static str> {
        match self {
            Controller::Memory => Some("memory"),
            Controller::Cpu => Some("cpu"),
            Controller::Cpuacct => Some(""),
            Controller::Cpuset => Some("cpuset"),
            Controller::Pids => Some("pids"),
            Controller::Blkio => Some("io"),
            Controller::Hugetlb => Some("hugetlb"),
            Controller::NetCls | Controller::NetPrio => None,
            Controller::Rdma => Some("rdma"),
            Controller::Devices | Controller::Freezer => Some(""),
        }
    }
}

/// Where a controller of this container is managed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    /// The container's directory in the v1 hierarchy with the controller;
    /// `noprefix`: its files lack the controller prefix (cpuset only).
    V1 { dir: PathBuf, noprefix: bool },
    /// The container's unified directory, which has the controller.
    V2(PathBuf),
}

impl Leaf {
    pub fn dir(&self) -> &Path {
        match self {
            Leaf::V1 { dir, .. } | Leaf::V2(dir) => dir,
        }
    }
    pub fn is_v2(&self) -> bool {
        matches!(self, Leaf::V2(_))
    }
}

/// The cgroup directories of one container; stored in its state so that
/// `kill --all` / `delete` find them without re-deriving anything.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cgroup {
    /// The container's leaf directory in every hierarchy it was placed in
    /// (the unified leaf included).
    pub dirs: Vec<PathBuf>,
    /// Every directory capsa itself created, parents before children; only
    /// these are removed on delete.
    pub created: Vec<PathBuf>,
    /// The leaf directory on the unified (cgroup2) hierarchy, if any; also
    /// listed in `dirs`.
    pub unified: Option<PathBuf>,
    /// The pid namespace the container made for itself, if it did: then
    /// only processes in it are the container's (kill.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidns: Option<NsId>,
    /// The systemd driver's unit, if the container has one: it is stopped
    /// on delete (systemd removes the cgroups it made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::Systemd>,
}

/// How long rmdir is retried on EBUSY (a v1 cgroup can stay busy briefly
/// after its last task exited).
const RMDIR_WAIT: Duration = Duration::from_millis(500);

impl Cgroup {
    /// Create (or reuse) the container's cgroup at `cgroups_path`
    /// (linux.cgroupsPath; None = default for `id`) in every hierarchy.
    /// On failure, whatever this call created is removed again.
    pub fn create(cgroups_path: Option<&str>, id: &str) -> Result<Cgroup, CgroupError> {
        let rel = relative_path(cgroups_path, id)?;
        Cgroup::create_at(rel, None)
    }

    /// The systemd driver's cgroup for unit `sd`: in the hierarchies
    /// systemd manages, the unit's directory (systemd makes it when the
    /// unit starts); in the others, made here as for cgroupfs.
    pub fn create_systemd(sd: systemd::Systemd) -> Result<Cgroup, CgroupError> {
        let rel = sd.cgroup_rel()?;
        Cgroup::create_at(&rel, Some(sd))
    }

    fn create_at(rel: &str, sd: Option<systemd::Systemd>) -> Result<Cgroup, CgroupError> {
        let hierarchies = hierarchy::host()?;
        let mut cg = Cgroup {
            dirs: Vec::with_capacity(hierarchies.len()),
            created: Vec::new(),
            unified: None,
            pidns: None,
            systemd: sd,
        };
        for h in hierarchies {
            if cg.systemd.is_some() && systemd::manages(h) {
                let leaf = h.mount.join(rel);
                if h.kind == Kind::V2 {
                    cg.unified = Some(leaf.clone());
                }
                cg.dirs.push(leaf);
                continue;
            }
            match make_dirs(h, rel, &mut cg.created) {
                Ok(leaf) => {
                    if h.kind == Kind::V2 {
                        cg.unified = Some(leaf.clone());
                    }
                    cg.dirs.push(leaf);
                }
                Err(e) => {
                    // Nothing was placed yet, so the dirs are empty; a
                    // removal error would only hide the real one.
                    let _ = cg.remove_created();
                    return Err(e);
                }
            }
        }
        Ok(cg)
    }

    /// What `create` with the same arguments would make: the leaves, and
    /// as `created` the levels that do not exist yet. `create` writes this
    /// down first, so that after a kill half way `delete --force` still
    /// knows which directories were made for the container (a level that
    /// already existed is never listed, so never removed).
    pub fn planned(cgroups_path: Option<&str>, id: &str) -> Result<Cgroup, CgroupError> {
        let rel = relative_path(cgroups_path, id)?;
        Cgroup::planned_at(rel, None)
    }

    /// `planned` for the systemd driver: also records the unit, so that
    /// it is stopped even if create dies right after starting it.
    pub fn planned_systemd(sd: &systemd::Systemd) -> Result<Cgroup, CgroupError> {
        let rel = sd.cgroup_rel()?;
        Cgroup::planned_at(&rel, Some(sd.clone()))
    }

    fn planned_at(rel: &str, sd: Option<systemd::Systemd>) -> Result<Cgroup, CgroupError> {
        let mut cg = Cgroup {
            systemd: sd,
            ..Cgroup::default()
        };
        for h in hierarchy::host()? {
            let mut dir = h.mount.clone();
            // systemd makes and removes its own hierarchies' directories.
            let ours = cg.systemd.is_none() || !systemd::manages(h);
            for component in rel.split('/') {
                dir.push(component);
                if ours && std::fs::symlink_metadata(&dir).is_err() {
                    cg.created.push(dir.clone());
                }
            }
            if h.kind == Kind::V2 {
                cg.unified = Some(dir.clone());
            }
            cg.dirs.push(dir);
        }
        Ok(cg)
    }

    /// A descriptor of the unified leaf for clone3(CLONE_INTO_CGROUP), on
    /// pure v2 and hybrid hosts; None on v1 hosts or if it cannot be opened
    /// (then the caller places the child with `add_pid(pid, false)`).
    /// O_PATH suffices: the kernel takes the cgroup from the fd's dentry
    /// (fdget_raw in cgroup_css_set_fork) and checks write access to the
    /// target's cgroup.procs with the caller's credentials.
    pub fn clone_into_fd(&self) -> Option<OwnedFd> {
        // systemd's unit (and its cgroup) needs the init's pid first.
        if self.systemd.is_some() {
            return None;
        }
        let dir = self.unified.as_ref()?;
        nix::fcntl::open(
            dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
    }

    /// Move `pid` into the leaf of every hierarchy. `in_unified`: the process
    /// was already placed in the unified leaf by CLONE_INTO_CGROUP.
    pub fn add_pid(&self, pid: i32, in_unified: bool) -> Result<(), CgroupError> {
        let text = pid.to_string();
        for dir in &self.dirs {
            if in_unified && self.unified.as_ref() == Some(dir) {
                continue;
            }
            write_file(&dir.join("cgroup.procs"), text.as_bytes())?;
        }
        Ok(())
    }

    /// Put the new init `pid` in its cgroup(s). cgroupfs: `add_pid`. The
    /// systemd driver: start the unit with it (systemd places it in the
    /// hierarchies it manages), place it in the others, then write
    /// linux.resources to the files (what systemd modeled, again, and what
    /// it does not model), as runc does.
    pub fn place(
        &self,
        pid: i32,
        in_unified: bool,
        linux: &oci_spec::runtime::Linux,
    ) -> Result<(), CgroupError> {
        let Some(sd) = &self.systemd else {
            return self.add_pid(pid, in_unified);
        };
        crate::fault::point("create.unit");
        sd.start(pid)?;
        crate::fault::point("create.unit-started");
        if sd.is_slice() {
            // systemd takes no PIDs= for a slice: capsa moves the init into
            // the slice's cgroup itself, in every hierarchy.
            self.make_slice_dirs()?;
            self.add_pid(pid, false)?;
            self.check_placed(sd, pid)?;
        } else {
            self.check_placed(sd, pid)?;
            self.add_pid(pid, true)?;
        }
        if sd.v2
            && let Some(r) = linux.resources()
        {
            self.enable_unmanaged(r)?;
        }
        if sd.user.is_some()
            && linux
                .resources()
                .as_ref()
                .is_some_and(|r| r.devices().is_some())
        {
            // No device cgroup rootless (systemd/mod.rs), as for cgroupfs.
            let mut l = linux.clone();
            if let Some(r) = l.resources_mut() {
                r.set_devices(None);
            }
            return self.apply_linux(&l);
        }
        self.apply_linux(linux)
    }

    /// `exec`: put the new process `pid` in the container's cgroup(s) as
    /// `add_pid` does. A rootless caller outside the user's delegated
    /// subtree may not move it into a unit of the user's systemd (the
    /// kernel asks for write access to the common ancestor): the unit's
    /// manager is asked to, as systemd-run --scope does.
    pub fn join(&self, pid: i32, in_unified: bool) -> Result<(), CgroupError> {
        match self.add_pid(pid, in_unified) {
            Err(CgroupError::Sys(e)) if matches!(e.errno, Errno::EACCES | Errno::EPERM) => {
                match self.systemd.as_ref().filter(|sd| sd.user.is_some()) {
                    Some(sd) => Ok(sd.attach(pid)?),
                    None => Err(CgroupError::Sys(e)),
                }
            }
            r => r,
        }
    }

    /// A slice unit's cgroup exists in the hierarchies systemd realized
    /// for it (those its properties need); in the other ones systemd
    /// manages (a slice has no Delegate=) capsa makes it, as for a scope in
    /// the hierarchies systemd leaves alone. Stopping the slice trims its
    /// cgroup in every hierarchy systemd supports, these included.
    fn make_slice_dirs(&self) -> Result<(), CgroupError> {
        let Some(sd) = &self.systemd else {
            return Ok(());
        };
        let rel = sd.cgroup_rel()?;
        for h in hierarchy::host()? {
            if systemd::manages(h) && !h.mount.join(&rel).is_dir() {
                make_dirs(h, &rel, &mut Vec::new())?;
            }
        }
        Ok(())
    }

    /// The systemd driver on cgroup v2: systemd never enables the
    /// controllers it does not know (hugetlb, rdma, misc) in its slices'
    /// cgroup.subtree_control, so a limit on one could not be written. As
    /// runc does, enable it from the root down to the unit's parent; unlike
    /// runc, only the controllers these resources need, and only where the
    /// level has it and lacks it: the least change to cgroups capsa did not
    /// create (systemd leaves controllers it does not know alone). A
    /// controller the host lacks is left to `locate`'s error.
    pub(crate) fn enable_unmanaged(
        &self,
        r: &oci_spec::runtime::LinuxResources,
    ) -> Result<(), CgroupError> {
        let Some(leaf) = &self.unified else {
            return Ok(());
        };
        let mut need: Vec<&str> = Vec::new();
        if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
            need.push("hugetlb");
        }
        if r.rdma().as_ref().is_some_and(|h| !h.is_empty()) {
            need.push("rdma");
        }
        for k in r.unified().iter().flat_map(|u| u.keys()) {
            if let Some((c @ ("hugetlb" | "rdma" | "misc"), _)) = k.split_once('.')
                && !need.contains(&c)
            {
                need.push(c);
            }
        }
        if need.is_empty() {
            return Ok(());
        }
        let Some(root) = hierarchy::host()?
            .iter()
            .find(|h| h.kind == Kind::V2)
            .map(|h| h.mount.clone())
        else {
            return Ok(());
        };
        let Ok(rel) = leaf.strip_prefix(&root) else {
            return Ok(());
        };
        let mut dir = root.clone();
        let mut levels = vec![dir.clone()];
        let parts: Vec<_> = rel.components().collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            dir.push(part);
            levels.push(dir.clone());
        }
        for level in levels {
            let read = |f: &str| {
                let path = level.join(f);
                std::fs::read_to_string(&path).ctx_at("read", &path)
            };
            let (have, on) = (read("cgroup.controllers")?, read("cgroup.subtree_control")?);
            for c in &need {
                let listed = |t: &str| t.split_ascii_whitespace().any(|w| w == *c);
                if listed(&have) && !listed(&on) {
                    write_file(
                        &level.join("cgroup.subtree_control"),
                        format!("+{c}").as_bytes(),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// systemd put `pid` where capsa expects the unit's cgroup (the path
    /// every other verb uses); a systemd whose root is elsewhere (in a
    /// container) would not.
    fn check_placed(&self, sd: &systemd::Systemd, pid: i32) -> Result<(), CgroupError> {
        let want = format!("/{}", sd.cgroup_rel()?);
        let path = format!("/proc/{pid}/cgroup");
        let text = std::fs::read_to_string(&path).ctx_at("read", Path::new(&path))?;
        // The unified line ("0::/...") if any, else name=systemd's.
        let got = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .or_else(|| {
                text.lines()
                    .find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p))
            })
            .unwrap_or("")
            .to_owned();
        if got != want {
            return Err(systemd::SystemdError::Placement {
                unit: sd.unit.clone(),
                pid,
                got,
                want,
            }
            .into());
        }
        Ok(())
    }

    /// Host pids of every process in the container's cgroup and the
    /// sub-cgroups below it (`exec --cgroup`, or a workload that manages its
    /// own cgroups): the union over all leaves, so a process that left one hierarchy (possible with a
    /// writable cgroupfs inside the container) is still found. Leaves that
    /// no longer exist contribute nothing.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = Vec::new();
        for dir in self.dirs.iter().flat_map(|d| subtree(d)) {
            let path = dir.join("cgroup.procs");
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(SysError::at("read", path, sys::io_errno(&e)).into()),
            };
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Where `c` is managed: the v1 hierarchy that has it (a hybrid host
    /// mounts most controllers there), else the unified leaf if the
    /// controller reaches it. `Err` says what is missing, for the caller to
    /// wrap with the field it needed the controller for.
    pub fn locate(&self, c: Controller) -> Result<Leaf, String> {
        let hosts = hierarchy::host().map_err(|e| e.to_string())?;
        for h in hosts {
            let Kind::V1 { noprefix, .. } = &h.kind else {
                continue;
            };
            if !h.has_controller(c.v1_name()) {
                continue;
            }
            return match self.dirs.iter().find(|d| d.starts_with(&h.mount)) {
                Some(dir) => Ok(Leaf::V1 {
                    dir: dir.clone(),
                    noprefix: *noprefix,
                }),
                None => Err(format!(
                    "the container has no cgroup in the {} hierarchy at {} (mounted after it was created?)",
                    c.v1_name(),
                    h.mount.display()
                )),
            };
        }
        let Some(unified) = &self.unified else {
            return Err(format!(
                "no cgroup hierarchy on this host has the {} controller",
                c.v1_name()
            ));
        };
        let Some(v2) = c.v2_name() else {
            return Err(format!(
                "cgroup v2 has no {} controller, and no cgroup v1 hierarchy with it is mounted",
                c.v1_name()
            ));
        };
        if v2.is_empty() {
            return Ok(Leaf::V2(unified.clone()));
        }
        let file = unified.join("cgroup.controllers");
        let have =
            std::fs::read_to_string(&file).map_err(|e| format!("read {}: {e}", file.display()))?;
        if have.split_ascii_whitespace().any(|w| w == v2) {
            return Ok(Leaf::V2(unified.clone()));
        }
        let parent = unified.parent().unwrap_or(unified);
        Err(format!(
            "the {v2} controller is not available in {} (not in its cgroup.controllers; {} does not enable it in cgroup.subtree_control)",
            unified.display(),
            parent.display()
        ))
    }

    /// `locate` for a limit that is about to be written. On v2 a controller
    /// missing from the leaf may only be late: another create that is
    /// making the same new parent (mkdir gave us EEXIST) enables it in the
    /// parent's cgroup.subtree_control a moment after its mkdir. So a miss
    /// is looked at again for a short while before it is an error; a
    /// controller that is there costs nothing more.
    pub fn locate_for_limits(&self, c: Controller) -> Result<Leaf, String> {
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            match self.locate(c) {
                Err(_) if Instant::now() < deadline && self.late_in_v2(c) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                other => return other,
            }
        }
    }

    /// Whether `c` would come from the unified leaf (no v1 hierarchy has
    /// it, v2 names it): only then can it appear there later.
    fn late_in_v2(&self, c: Controller) -> bool {
        let in_v1 = hierarchy::host().is_ok_and(|hs| {
            hs.iter()
                .any(|h| matches!(h.kind, Kind::V1 { .. }) && h.has_controller(c.v1_name()))
        });
        !in_v1 && self.unified.is_some() && c.v2_name().is_some_and(|n| !n.is_empty())
    }

    /// Kill every process inside, then remove the directories capsa
    /// created, deepest first. Succeeds if they are already gone. For a
    /// cgroup whose every process is the container's (a create that
    /// failed, or a container sharing a pid namespace).
    pub fn destroy(&self) -> Result<(), CgroupError> {
        self.destroy_members(&Members::All)
    }

    /// Kill the container's processes (`m`), then remove the directories
    /// capsa created, deepest first; a directory still holding processes
    /// that are not the container's is left to them.
    pub fn destroy_members(&self, m: &Members) -> Result<(), CgroupError> {
        self.kill_members(m)?;
        if let Some(sd) = &self.systemd {
            sd.stop()?;
        }
        self.remove_created()
    }

    /// rmdir the created directories, deepest first, in every hierarchy.
    /// ENOENT is success. A created parent that is busy holds a cgroup
    /// someone else made meanwhile: it is left alone. Errors on leaves do
    /// not stop the other hierarchies; the first one is returned.
    fn remove_created(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for dir in self.created.iter().rev() {
            let leaf = self.dirs.contains(dir);
            if leaf {
                // The common case first: a leaf without sub-cgroups goes
                // with one rmdir (one with sub-cgroups fails it), without
                // reading the directory of each hierarchy.
                match std::fs::remove_dir(dir) {
                    Ok(()) => continue,
                    Err(e) if sys::io_errno(&e) == Errno::ENOENT => continue,
                    Err(_) => {}
                }
                // Sub-cgroups below the leaf belong to the container too
                // (runc removes them as well); deepest first.
                for sub in subtree(dir).iter().skip(1).rev() {
                    if let Err(e) = rmdir_retry(sub, true) {
                        first_err.get_or_insert(e);
                    }
                }
            }
            if let Err(e) = rmdir_retry(dir, leaf) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), |e| Err(e.into()))
    }
}

/// `dir` and every directory below it, parents before children (a missing
/// or unreadable directory contributes only itself).
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = std::fs::read_dir(&out[i]) {
            let subs: Vec<PathBuf> = rd
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            out.extend(subs);
        }
        i += 1;
    }
    out
}

/// Is a v1 freezer.state FROZEN or FREEZING (paused)?
fn freezer_state_is_frozen(state: &Path) -> bool {
    std::fs::read(state).is_ok_and(|s| s.trim_ascii() != b"THAWED")
}

/// Ask the v1 freezer to freeze and wait (bounded) until it has; true if
/// the freeze was requested, so the caller thaws again.
fn freeze(state: &Path) -> bool {
    if write_file(state, b"FROZEN").is_err() {
        return false;
    }
    let deadline = Instant::now() + Duration::from_millis(200);
    while Instant::now() < deadline {
        match std::fs::read(state) {
            Ok(s) if s.trim_ascii() == b"FROZEN" => break,
            Ok(_) => std::thread::sleep(Duration::from_millis(1)),
            Err(_) => break,
        }
    }
    true
}

fn rmdir_retry(dir: &Path, leaf: bool) -> Result<(), SysError> {
    let deadline = Instant::now() + RMDIR_WAIT;
    loop {
        let errno = match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) => sys::io_errno(&e),
        };
        match errno {
            Errno::ENOENT => return Ok(()),
            Errno::EBUSY | Errno::ENOTEMPTY if !leaf => return Ok(()),
            Errno::EBUSY if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            // Still holding processes after the container's own were
            // killed: they are someone else's (kill.rs), and so is the
            // directory now; it is left to them.
            Errno::EBUSY | Errno::ENOTEMPTY
                if subtree(dir).iter().any(|d| !procs_in(d).is_empty()) =>
            {
                return Ok(());
            }
            _ => return Err(SysError::at("rmdir", dir, errno)),
        }
    }
}

/// mkdir -p of `rel` below the hierarchy's mount, recording each directory
/// this call made; returns the leaf. On v1 cpuset, each new level gets the
/// parent's cpus and mems, without which it could not take tasks.
fn make_dirs(h: &Hierarchy, rel: &str, created: &mut Vec<PathBuf>) -> Result<PathBuf, CgroupError> {
    let cpuset_files = match &h.kind {
        Kind::V1 { noprefix, .. } if h.has_controller("cpuset") => Some(if *noprefix {
            ["cpus", "mems"]
        } else {
            ["cpuset.cpus", "cpuset.mems"]
        }),
        _ => None,
    };
    let mut dir = h.mount.clone();
    let mut components = rel.split('/').peekable();
    while let Some(component) = components.next() {
        dir.push(component);
        let last = components.peek().is_none();
        match nix::unistd::mkdir(&dir, Mode::from_bits_truncate(0o755)) {
            Ok(()) => {
                created.push(dir.clone());
                if let Some(files) = cpuset_files {
                    copy_cpuset(&dir, files)?;
                }
                if h.kind == Kind::V2 && components.peek().is_some() {
                    delegate_controllers(&dir)?;
                }
            }
            Err(Errno::EEXIST) if last => {
                check_reusable_leaf(&dir)?;
                if let Some(files) = cpuset_files {
                    copy_cpuset(&dir, files)?;
                }
            }
            Err(Errno::EEXIST) => {
                let n = procs_in(&dir).len();
                if n > 0 {
                    return Err(CgroupError::InsidePopulated { dir, n });
                }
                // A level another create has just made may not have its
                // cpus and mems yet: fill them as that create is about to.
                if let Some(files) = cpuset_files {
                    copy_cpuset(&dir, files)?;
                }
            }
            Err(e) => return Err(SysError::at("mkdir", &dir, e).into()),
        }
    }
    Ok(dir)
}

/// An existing leaf may be reused only if nothing is in it or below it
/// and it is not frozen (runc's checks; runc 1.1 only warns about a
/// populated one, 1.2 refuses it). Every hierarchy is checked, not only one.
fn check_reusable_leaf(dir: &Path) -> Result<(), CgroupError> {
    let n: usize = subtree(dir).iter().map(|d| procs_in(d).len()).sum();
    if n > 0 {
        return Err(CgroupError::NotEmpty {
            dir: dir.to_owned(),
            n,
        });
    }
    let frozen = match std::fs::read(dir.join("cgroup.freeze")) {
        Ok(v2) => v2.trim_ascii() == b"1",
        Err(_) => freezer_state_is_frozen(&dir.join("freezer.state")),
    };
    if frozen {
        return Err(CgroupError::Frozen {
            dir: dir.to_owned(),
        });
    }
    Ok(())
}

/// The pids listed in `dir`'s cgroup.procs (none if it cannot be read: a
/// threaded v2 cgroup, or a directory removed meanwhile).
fn procs_in(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// On v2, a controller reaches a child only if its parent lists it in
/// cgroup.subtree_control. For an intermediate level capsa made, pass on
/// everything it received, so the leaf can take the limits that its
/// nearest pre-existing ancestor allows. Pre-existing levels are not ours
/// to change.
fn delegate_controllers(dir: &Path) -> Result<(), CgroupError> {
    let from = dir.join("cgroup.controllers");
    let available = std::fs::read_to_string(&from).ctx_at("read", &from)?;
    let mut enable = String::with_capacity(available.len() * 2);
    for c in available.split_ascii_whitespace() {
        enable.push('+');
        enable.push_str(c);
        enable.push(' ');
    }
    if !enable.is_empty() {
        write_file(
            &dir.join("cgroup.subtree_control"),
            enable.trim_end().as_bytes(),
        )?;
    }
    Ok(())
}

/// Give `dir` its parent's cpus and mems where its own are empty (a new v1
/// cpuset cgroup starts empty and cannot take a task). A value already set
/// is kept: it may be an existing cgroup's own choice. runc fills empty
/// levels the same way, which also makes two creates that race to make one
/// parent agree: whichever writes second writes the same value.
fn copy_cpuset(dir: &Path, files: [&'static str; 2]) -> Result<(), CgroupError> {
    let parent = dir.parent().unwrap_or(dir);
    for file in files {
        let own = dir.join(file);
        if !std::fs::read(&own)
            .ctx_at("read", &own)?
            .trim_ascii()
            .is_empty()
        {
            continue;
        }
        let from = parent.join(file);
        let value = std::fs::read(&from).ctx_at("read", &from)?;
        if value.trim_ascii().is_empty() {
            return Err(CgroupError::CpusetEmpty {
                dir: dir.to_owned(),
                parent: parent.to_owned(),
                file,
            });
        }
        write_file(&dir.join(file), &value)?;
    }
    Ok(())
}

/// Write a cgroup control file in one write(2), without creating it.
pub(crate) fn write_file(path: &Path, data: &[u8]) -> Result<(), SysError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .ctx_at("write", path)
}

/// The cgroup path below each hierarchy's mount, without a leading '/':
/// `cgroups_path` if given, else the id. Rejects what could escape the
/// hierarchy or name its root.
pub fn relative_path<'a>(
    cgroups_path: Option<&'a str>,
    id: &'a str,
) -> Result<&'a str, CgroupError> {
    let Some(path) = cgroups_path else {
        if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\0']) {
            return Err(CgroupError::Id(id.to_owned()));
        }
        return Ok(id);
    };
    let bad = |why: &str| Err(CgroupError::Path(format!("{path:?} {why}")));
    if path.contains('\0') {
        return bad("contains a NUL byte");
    }
    if path.contains(':') {
        return bad(
            "looks like the systemd form slice:prefix:name, which needs the systemd cgroup driver; give a cgroupfs path such as /a/b",
        );
    }
    let rel = path.strip_prefix('/').unwrap_or(path);
    if rel.is_empty() {
        return bad("names the root cgroup; the container needs a cgroup of its own");
    }
    for component in rel.split('/') {
        match component {
            "" => return bad("has an empty component (\"//\" or a trailing \"/\")"),
            "." | ".." => return bad("has a \".\" or \"..\" component"),
            _ => {}
        }
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_forms() {
        let ok = [
            (Some("/a/b"), "id", "a/b"),
            (Some("a/b"), "id", "a/b"),
            (Some("/x"), "id", "x"),
            (Some("..a/b.c/..."), "id", "..a/b.c/..."),
            (None, "my-ctr", "my-ctr"),
        ];
        for (path, id, want) in ok {
            assert_eq!(relative_path(path, id).ok(), Some(want), "{path:?} {id}");
        }
    }

    #[test]
    fn cgroups_path_rejected() {
        let bad = [
            ("", "root cgroup"),
            ("/", "root cgroup"),
            ("/a/../b", "\"..\""),
            ("..", "\"..\""),
            ("/a/./b", "\".\""),
            ("/a//b", "empty component"),
            ("/a/b/", "empty component"),
            ("//a", "empty component"),
            ("/a\0b", "NUL"),
            ("system.slice:capsa:ctr", "systemd"),
        ];
        for (path, want) in bad {
            let msg = relative_path(Some(path), "id")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(msg.starts_with("linux.cgroupsPath: "), "{path:?}: {msg}");
            assert!(msg.contains(want), "{path:?}: {msg}");
        }
    }

    #[test]
    fn bad_ids_rejected() {
        for id in ["", ".", "..", "a/b", "a\0"] {
            assert!(
                matches!(relative_path(None, id), Err(CgroupError::Id(_))),
                "{id:?}"
            );
        }
    }

    #[test]
    fn state_round_trip() {
        let cg = Cgroup {
            dirs: vec![
                "/sys/fs/cgroup/cpu/x".into(),
                "/sys/fs/cgroup/unified/x".into(),
            ],
            created: vec!["/sys/fs/cgroup/cpu/x".into()],
            unified: Some("/sys/fs/cgroup/unified/x".into()),
            pidns: Some(NsId {
                dev: 4,
                ino: 4026531836,
            }),
            systemd: None,
        };
        let json = serde_json::to_string(&cg).unwrap_or_default();
        let back: Cgroup = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back.dirs, cg.dirs);
        assert_eq!(back.created, cg.created);
        assert_eq!(back.unified, cg.unified);
        assert_eq!(back.pidns, cg.pidns);
        assert!(back.systemd.is_none());
        // The systemd driver's unit is recorded; the start properties are not.
        let sd = systemd::Systemd {
            unit: "runc-c1.scope".into(),
            slice: "system.slice".into(),
            bus: "unix:path=/run/dbus/system_bus_socket".into(),
            v2: true,
            user: None,
            base: String::new(),
            start: vec![("Delegate".into(), systemd::wire::Value::Bool(true))],
        };
        let with = Cgroup {
            systemd: Some(sd),
            ..cg.clone()
        };
        let json = serde_json::to_string(&with).unwrap_or_default();
        assert!(json.contains(r#""unit":"runc-c1.scope""#), "{json}");
        assert!(!json.contains("Delegate"), "{json}");
        let back: Cgroup = serde_json::from_str(&json).unwrap_or_default();
        let back = back.systemd.unwrap_or_default();
        assert_eq!(back.unit, "runc-c1.scope");
        assert_eq!(
            back.cgroup_rel().ok().as_deref(),
            Some("system.slice/runc-c1.scope")
        );
        assert!(back.start.is_empty());
        assert!(
            !json.contains("\"user\"") && !json.contains("\"base\""),
            "{json}"
        );
        // A rootless unit is the user manager's: below its cgroup, and
        // reached as the user.
        let user = systemd::Systemd {
            user: Some(1000),
            base: "/user.slice/user-1000.slice/user@1000.service".into(),
            slice: "user.slice".into(),
            ..back
        };
        let json = serde_json::to_string(&user).unwrap_or_default();
        let back: systemd::Systemd = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back.user, Some(1000));
        assert_eq!(
            back.cgroup_rel().ok().as_deref(),
            Some("user.slice/user-1000.slice/user@1000.service/user.slice/runc-c1.scope")
        );
        // A state written before pidns was recorded reads as None.
        let old: Cgroup =
            serde_json::from_str(r#"{"dirs":[],"created":[],"unified":null}"#).unwrap_or_default();
        assert_eq!(old.pidns, None);
    }
}
