//! `restore`: a container made again from a checkpoint, as runc makes it:
//! the state directory and the cgroup (with config.json's limits) first,
//! CRIU placed in that cgroup so that the tree it restores lands there, the
//! bundle's rootfs bound at a private mount point as CRIU's root, the bind
//! mounts mapped back to this bundle's sources, the caller's stdio handed in
//! for the pipes descriptors.json names. The restored init is our child
//! (rst_sibling): in the foreground we wait for it like `run`. Any failure
//! removes everything made (state dir, cgroup and whatever CRIU restored
//! into it, the root mount).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;

use super::external;
use super::proto::{Opts, ReqType};
use super::swrk::{Notify, Swrk};
use super::{CriuError, DESCRIPTORS, NETNS_LOCK, RestoreOptions, diagnose, make_dir, open_dir};
use crate::bundle::{Bundle, HookKind};
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::hooks;
use crate::runtime::Runtime;
use crate::state::{self, ContainerDir, State};

const LOG_LEVEL: i32 = 4;

/// Undoes what the restore made, in reverse order, unless disarmed.
#[derive(Default)]
struct Undo {
    dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        // Kills whatever CRIU restored into the cgroup before removing it.
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.destroy();
        }
        if let Some(d) = self.dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The rootfs bound at `<state dir>/criu-root` for CRIU, unmounted and
/// removed when dropped (success or not: the restored container has its
/// own mount namespace by then).
struct CriuRoot(PathBuf);

impl CriuRoot {
    fn bind(rootfs: &Path, at: PathBuf) -> std::result::Result<CriuRoot, CriuError> {
        make_dir(&at, 0o755)?;
        let root = CriuRoot(at);
        mount(
            Some(rootfs),
            &root.0,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| CriuError::Path {
            op: "bind mount the rootfs at",
            path: root.0.clone(),
            msg: e.desc().to_string(),
        })?;
        Ok(root)
    }
}

impl Drop for CriuRoot {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Restore notifications: the prestart and createRuntime hooks once CRIU
/// made the namespaces (as runc), the restored init's pid, the orphaned pty
/// master for --console-socket.
struct RestoreNotify<'a> {
    bundle: &'a Bundle,
    id: &'a str,
    console_socket: Option<&'a Path>,
    pid: Option<i32>,
}

impl Notify for RestoreNotify<'_> {
    fn notify(
        &mut self,
        script: &str,
        pid: i32,
        fd: Option<OwnedFd>,
    ) -> std::result::Result<(), CriuError> {
        match script {
            "setup-namespaces" => {
                let annotations = self.bundle.spec.annotations().clone().unwrap_or_default();
                let json =
                    hooks::state_json(self.id, "creating", pid, &self.bundle.dir, &annotations);
                for (kind, name) in [
                    (HookKind::Prestart, "prestart"),
                    (HookKind::CreateRuntime, "createRuntime"),
                ] {
                    hooks::run(name, self.bundle.hooks(kind), &json)
                        .map_err(|e| CriuError::Usage(e.to_string()))?;
                }
            }
            "post-restore" => self.pid = Some(pid),
            "orphan-pts-master" => {
                let (Some(sock), Some(master)) = (self.console_socket, fd) else {
                    return Ok(());
                };
                let s =
                    crate::console::connect(sock).map_err(|e| CriuError::Usage(e.to_string()))?;
                crate::console::send_master(&s, &master)
                    .map_err(|e| CriuError::Usage(e.to_string()))?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// CRIU's cg_root: each hierarchy's path of CRIU's own cgroup (the
/// container's), so the tree is restored there and not at the cgroup path
/// the dump recorded (another container's, after a restore under a new id);
/// the unified hierarchy's ("0::/path") as the default root.
fn cg_roots(pid: i32) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            Some((ctrls.to_string(), path.to_string()))
        })
        .collect()
}

/// Mount points missing from the rootfs (a restore from another bundle, or
/// from a fresh image snapshot as containerd's `ctr c restore` makes): CRIU
/// mounts over them but does not make them. As runc: a bind mount's as a
/// file or a directory after its source, any other filesystem's as a
/// directory; none for cgroup mounts, nor below a tmpfs mount (CRIU
/// restores a tmpfs with its content, mount points included). Only made
/// below real directories of the rootfs (no symlink is followed).
fn make_mountpoints(rootfs: &Path, spec: &oci_spec::runtime::Spec, binds: &[(String, PathBuf)]) {
    let mounts = spec.mounts().clone().unwrap_or_default();
    let tmpfs: Vec<String> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| {
            m.destination()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    for m in &mounts {
        let dest = m.destination().to_string_lossy().into_owned();
        if m.typ().as_deref() == Some("cgroup")
            || tmpfs.iter().any(|t| dest.starts_with(&format!("{t}/")))
        {
            continue;
        }
        let rel = dest.trim_start_matches('/');
        if rel.is_empty() {
            continue;
        }
        let target = rootfs.join(rel);
        if target.symlink_metadata().is_ok() {
            continue;
        }
        let mut cur = rootfs.to_path_buf();
        let safe = Path::new(rel)
            .parent()
            .map(|p| {
                p.components().all(|c| {
                    cur.push(c);
                    cur.symlink_metadata().map(|m| m.is_dir()).unwrap_or(true)
                })
            })
            .unwrap_or(true);
        if !safe {
            continue;
        }
        if let Some(parent) = target.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let bind_src = binds.iter().find(|(d, _)| *d == dest).map(|(_, s)| s);
        if bind_src.is_some_and(|s| !s.is_dir()) {
            let _ = std::fs::File::create(&target);
        } else {
            let _ = std::fs::create_dir(&target);
        }
    }
}

impl Runtime {
    /// `restore`: the container `id` from the images; in the foreground,
    /// wait for it and return its exit status (and delete it, as `run`).
    pub fn restore(&self, id: &str, opts: &RestoreOptions) -> Result<i32> {
        let c = &opts.common;
        c.check_supported()?;
        let criu = c.binary()?;
        state::validate_id(id)?;
        let bundle = Bundle::load(&opts.bundle)?;
        let terminal = bundle.process().terminal().unwrap_or(false);
        if terminal && opts.console_socket.is_none() {
            return Err(Error::Usage(
                "process.terminal: restoring a container with a terminal needs --console-socket"
                    .into(),
            ));
        }
        if !terminal && opts.console_socket.is_some() {
            return Err(Error::Usage(
                "process.terminal: cannot use console socket if the container has no terminal"
                    .into(),
            ));
        }
        let images = c.images();
        let desc_path = images.join(DESCRIPTORS);
        let descriptors: Vec<String> = std::fs::read(&desc_path)
            .map_err(|e| e.to_string())
            .and_then(|d| serde_json::from_slice(&d).map_err(|e| e.to_string()))
            .map_err(|msg| CriuError::Path {
                op: "read",
                path: desc_path.clone(),
                msg: format!("{msg} (not a checkpoint image directory?)"),
            })?;
        let images_fd = open_dir(&images)?;
        let work = c.work_path.as_deref().map(crate::runtime::absolute);
        let work_fd = match &work {
            Some(w) => {
                make_dir(w, 0o700)?;
                Some(open_dir(w)?)
            }
            None => None,
        };
        let ns_fds = external::restore_namespaces(&bundle.spec)?;
        let signals = if opts.detach {
            None
        } else {
            Some(crate::signals::Forwarder::new()?)
        };

        let dir = ContainerDir::create(&self.root, id)?;
        let mut undo = Undo {
            dir: Some(dir.path.clone()),
            cgroup: None,
        };
        let res = self.restore_in(
            &dir,
            &mut undo,
            id,
            &bundle,
            opts,
            &criu,
            &descriptors,
            (&images_fd, work_fd.as_ref(), &ns_fds),
            work.as_deref().unwrap_or(&images),
        );
        let pid = match res {
            Ok(pid) => pid,
            Err(e) => {
                drop(undo);
                if let Some(unusable) = diagnose(&criu) {
                    return Err(unusable.into());
                }
                return Err(e);
            }
        };
        undo.dir = None;
        undo.cgroup = None;
        if let Some(pf) = &opts.pid_file {
            state::write_pid_file(&crate::runtime::absolute(pf), pid)?;
        }
        let Some(signals) = signals else {
            return Ok(0);
        };
        drop(dir);
        let code = signals.wait_for(pid, None);
        let _ = self.delete(id, true);
        code
    }

    #[allow(clippy::too_many_arguments)]
    fn restore_in(
        &self,
        dir: &ContainerDir,
        undo: &mut Undo,
        id: &str,
        bundle: &Bundle,
        opts: &RestoreOptions,
        criu: &Path,
        descriptors: &[String],
        fds: (&OwnedFd, Option<&OwnedFd>, &[(&'static str, OwnedFd)]),
        log_dir: &Path,
    ) -> Result<i32> {
        let c = &opts.common;
        let (images_fd, work_fd, ns_fds) = fds;
        let mut cgroup = Cgroup::default();
        if !self.no_cgroups {
            let linux = bundle.linux();
            let path = linux
                .cgroups_path()
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned());
            dir.save_cgroup_plan(&Cgroup::planned(path.as_deref(), id)?)?;
            cgroup = Cgroup::create(path.as_deref(), id)?;
            undo.cgroup = Some(cgroup.clone());
            cgroup.apply_linux(linux)?;
        }
        let binds = external::bind_mounts(&bundle.spec, &bundle.dir);
        make_mountpoints(&bundle.rootfs, &bundle.spec, &binds);
        let root = CriuRoot::bind(&bundle.rootfs, dir.path.join("criu-root"))?;

        // inherit_fd names CRIU's own descriptors: extra[i] is its fd 4 + i.
        let mut extra: Vec<&OwnedFd> = Vec::new();
        let mut inherit = external::inherit_stdio(descriptors);
        for (key, fd) in ns_fds {
            inherit.push(((*key).to_string(), 4 + extra.len() as i32));
            extra.push(fd);
        }
        // Into the network namespace the dump left locked: CRIU must not
        // lock it a second time (see external::netns_id); its unlock at the
        // end removes the dump's lock.
        let mut empty_ns = c.empty_ns_mask()?;
        let locked = std::fs::read_to_string(c.images().join(NETNS_LOCK)).ok();
        if locked.is_some() && locked == external::netns_id(&bundle.spec) {
            empty_ns &= !(libc::CLONE_NEWNET as u32);
        }
        let mut o = Opts {
            // CRIU opens these through /proc/<our pid>/fd: our numbers.
            images_dir_fd: images_fd.as_raw_fd(),
            work_dir_fd: work_fd.map(|f| f.as_raw_fd()),
            log_level: LOG_LEVEL,
            log_file: "restore.log".into(),
            evasive_devices: true,
            rst_sibling: true,
            root: Some(root.0.to_string_lossy().into_owned()),
            manage_cgroups: true,
            notify_scripts: true,
            shell_job: c.shell_job,
            ext_unix_sk: c.ext_unix_sk,
            tcp_established: c.tcp_established,
            file_locks: c.file_locks,
            empty_ns: Some(empty_ns),
            orphan_pts_master: true,
            auto_dedup: c.auto_dedup,
            lazy_pages: c.lazy_pages,
            manage_cgroups_mode: c.cg_mode()?,
            ext_mnt: external::restore_mounts(&bundle.spec, &bundle.dir),
            inherit_fd: inherit,
            ..Opts::default()
        };
        let log = log_dir.join("restore.log").to_string_lossy().into_owned();
        let swrk = Swrk::start(criu, &extra, log)?;
        // CRIU in the container's cgroup before it gets the request: the
        // tree it restores is placed relative to its own cgroup.
        if !self.no_cgroups {
            cgroup.add_pid(swrk.pid(), false)?;
            o.cg_root = cg_roots(swrk.pid());
        }
        let mut n = RestoreNotify {
            bundle,
            id,
            console_socket: opts.console_socket.as_deref(),
            pid: None,
        };
        let resp = swrk.run(ReqType::Restore, Some(&o), &mut n)?;
        drop(root);
        let pid = n
            .pid
            .or(resp.restore_pid)
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                Error::Lifecycle("criu restored the container but reported no pid".into())
            })?;
        let (start_time, _) = crate::sys::proc_start_time(pid).ok_or_else(|| {
            Error::Lifecycle("the restored container's init exited at once".into())
        })?;
        if bundle.new_ns.contains(CloneFlags::CLONE_NEWPID) && !self.no_cgroups {
            cgroup.pidns = Some(crate::cgroups::NsId::pid_ns_of(pid)?);
        }
        let st = State {
            oci_version: bundle.spec.version().clone(),
            id: id.to_string(),
            pid,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: state::rfc3339_now(),
            owner: String::new(),
            annotations: bundle.spec.annotations().clone().unwrap_or_default(),
            init_start_time: start_time,
            cgroup: cgroup.clone(),
            started: true,
            poststart: Vec::new(),
            poststop: bundle.hooks(HookKind::Poststop).to_vec(),
            seccomp: bundle.linux().seccomp().clone(),
            host_mounts: None,
            own_spec: false,
        };
        undo.cgroup = Some(cgroup);
        dir.save(&st)?;
        Ok(pid)
    }
}
