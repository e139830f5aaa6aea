//! `checkpoint`: CRIU dumps the container's process tree into the image
//! directory. Without --leave-running (or with --pre-dump) CRIU kills the
//! tree once the dump is complete, and the container is then deleted as
//! runc deletes it (cgroup, state directory, poststop hooks), so that its id
//! is free for the restore. A failed dump changes nothing: CRIU resumes the
//! tree and the container stays as it was (runc 1.1 destroys it even then).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use super::external;
use super::proto::{Opts, ReqType};
use super::swrk::{Notify, Swrk};
use super::{CheckpointOptions, CriuError, DESCRIPTORS, NETNS_LOCK, diagnose, make_dir, open_dir};
use crate::bundle::Bundle;
use crate::cgroups::Controller;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::state::{ContainerDir, Status};

/// runc's CRIU log level (4: everything, for a log file nobody reads unless
/// something failed).
const LOG_LEVEL: i32 = 4;

/// Dump notifications: nothing to do for capsa (runc creates a marker file
/// on post-dump, which nothing reads); each is answered with success.
struct DumpNotify;

impl Notify for DumpNotify {
    fn notify(
        &mut self,
        _: &str,
        _: i32,
        _: Option<OwnedFd>,
    ) -> std::result::Result<(), CriuError> {
        Ok(())
    }
}

/// --parent-path, checked as runc checks it: relative to the image
/// directory, naming a directory there.
fn parent_path(
    images: &Path,
    parent: Option<&Path>,
) -> std::result::Result<Option<String>, CriuError> {
    let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(None);
    };
    if p.is_absolute() {
        return Err(CriuError::Usage("--parent-path must be relative".into()));
    }
    let real = images.join(p);
    if !real.is_dir() {
        return Err(CriuError::Usage(format!(
            "invalid --parent-path: {}: not a directory",
            real.display()
        )));
    }
    if p.components()
        .any(|c| matches!(c, Component::Prefix(_) | Component::RootDir))
    {
        return Err(CriuError::Usage("--parent-path must be relative".into()));
    }
    Ok(Some(p.to_string_lossy().into_owned()))
}

impl Runtime {
    /// `checkpoint`: dump a running (or paused) container with CRIU.
    pub fn checkpoint(&self, id: &str, opts: &CheckpointOptions) -> Result<()> {
        let c = &opts.common;
        c.check_supported()?;
        let criu = c.binary()?;
        let dir = ContainerDir::open(&self.root, id)?;
        let st = dir.load()?;
        match st.status(&dir.path) {
            Status::Running | Status::Paused => {}
            s => {
                return Err(Error::WrongState(format!(
                    "container cannot be checkpointed in {} state",
                    s.as_str()
                )));
            }
        }
        let spec = Bundle::read_spec(st.spec_dir(&dir.path))?;
        let images = c.images();
        let made_images = make_dir(&images, 0o700)?;
        // Checked once the image directory exists (runc's order): the
        // parent is named relative to it.
        let parent = parent_path(&images, opts.parent_path.as_deref());
        // From here a failure removes an image directory this call made
        // when nothing worth keeping is in it (CRIU could not start).
        let res = (|| -> std::result::Result<(), Error> {
            let parent = parent?;
            let images_fd = open_dir(&images)?;
            let work = c.work_path.as_deref().map(crate::runtime::absolute);
            let work_fd = match &work {
                Some(w) => {
                    make_dir(w, 0o700)?;
                    Some(open_dir(w)?)
                }
                None => None,
            };
            let log_dir: PathBuf = work.clone().unwrap_or_else(|| images.clone());
            let log_name = if opts.pre_dump {
                "pre-dump.log"
            } else {
                "dump.log"
            };
            let mut o = Opts {
                // CRIU opens these through /proc/<our pid>/fd: our numbers.
                images_dir_fd: images_fd.as_raw_fd(),
                work_dir_fd: work_fd.as_ref().map(|f| f.as_raw_fd()),
                pid: Some(st.pid),
                log_level: LOG_LEVEL,
                log_file: log_name.into(),
                root: Some(st.rootfs.to_string_lossy().into_owned()),
                manage_cgroups: true,
                notify_scripts: true,
                shell_job: c.shell_job,
                leave_running: opts.leave_running,
                tcp_established: c.tcp_established,
                ext_unix_sk: c.ext_unix_sk,
                file_locks: c.file_locks,
                empty_ns: Some(c.empty_ns_mask()?),
                orphan_pts_master: true,
                auto_dedup: c.auto_dedup,
                lazy_pages: c.lazy_pages,
                manage_cgroups_mode: c.cg_mode()?,
                external: external::dump_namespaces(&spec)?,
                ..Opts::default()
            };
            // CRIU freezes the tree through the cgroup freezer (else ptrace).
            if let Ok(leaf) = st.cgroup.locate(Controller::Freezer) {
                o.freeze_cgroup = Some(leaf.dir().to_string_lossy().into_owned());
            }
            if let Some(p) = parent {
                o.parent_img = Some(p);
                o.track_mem = true;
            }
            let req = if opts.pre_dump {
                ReqType::PreDump
            } else {
                o.ext_mnt = external::dump_mounts(&spec, &st.bundle, st.pid);
                let fds = serde_json::to_vec(&external::descriptors(st.pid))
                    .map_err(|e| Error::Lifecycle(format!("encoding {DESCRIPTORS}: {e}")))?;
                crate::state::write_atomic(&images.join(DESCRIPTORS), &fds, 0o600)?;
                // The lock this dump leaves in a network namespace joined by
                // path (see external::netns_id); --leave-running removes it.
                let lock = images.join(NETNS_LOCK);
                match external::netns_id(&spec).filter(|_| !opts.leave_running) {
                    Some(ns) => crate::state::write_atomic(&lock, ns.as_bytes(), 0o600)?,
                    None => match std::fs::remove_file(&lock) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(CriuError::Path {
                                op: "remove",
                                path: lock,
                                msg: e.to_string(),
                            }
                            .into());
                        }
                        _ => {}
                    },
                }
                ReqType::Dump
            };
            let log = log_dir.join(log_name).to_string_lossy().into_owned();
            let swrk = Swrk::start(&criu, &[], log)?;
            swrk.run(req, Some(&o), &mut DumpNotify)?;
            Ok(())
        })();
        if let Err(e) = res {
            // A failed dump leaves the container as it was; say plainly when
            // the reason is that CRIU cannot work on this host at all.
            if let Some(unusable) = diagnose(&criu) {
                if made_images {
                    let _ = std::fs::remove_dir_all(&images);
                }
                return Err(unusable.into());
            }
            if made_images && matches!(e, Error::Usage(_)) {
                let _ = std::fs::remove_dir_all(&images);
            }
            return Err(e);
        }
        if opts.leave_running || opts.pre_dump {
            return Ok(());
        }
        // CRIU killed the tree after the dump: the container is destroyed
        // as runc destroys it, freeing its id for the restore.
        drop(dir);
        self.delete(id, true)
    }
}
