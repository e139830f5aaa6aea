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
use super::{
    CheckpointOptions, CriuError, DESCRIPTORS, NETNS_LOCK, diagnose, make_dir, open_dir,
    page_server, status_fd,
};
use crate::bundle::Bundle;
use crate::cgroups::Controller;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::state::{ContainerDir, Status};

/// runc's CRIU log level (4: everything, for a log file nobody reads unless
/// something failed).
const LOG_LEVEL: i32 = 4;

/// Dump notifications: "status-ready" (a lazy dump's page server listens)
/// writes one \0 byte to --status-fd and closes it, as runc does with CRIU
/// 3.15+; the others need nothing from capsa (runc creates a marker file on
/// post-dump, which nothing reads). Each is answered with success.
struct DumpNotify {
    status: Option<OwnedFd>,
}

impl Notify for DumpNotify {
    fn notify(
        &mut self,
        script: &str,
        _: i32,
        _: Option<OwnedFd>,
    ) -> std::result::Result<(), CriuError> {
        if script == "status-ready"
            && let Some(fd) = self.status.take()
        {
            // The reader may be gone: its business, not the dump's (runc
            // only warns).
            let _ = nix::unistd::write(&fd, &[0u8]);
        }
        Ok(())
    }
}

/// --lazy-pages needs a CRIU and a kernel that can do it (userfaultfd,
/// non-cooperative): asked before the dump with a FEATURE_CHECK request, as
/// runc asks, so that a host without it gets one clear error and the
/// container is not touched.
fn check_lazy_pages(criu: &Path, log: String) -> std::result::Result<(), CriuError> {
    let resp = Swrk::start(criu, &[], log)?.run(
        ReqType::FeatureCheck,
        None,
        &mut DumpNotify { status: None },
    )?;
    if resp.lazy_pages == Some(true) {
        return Ok(());
    }
    Err(CriuError::Unusable {
        criu: criu.to_path_buf(),
        why: "--lazy-pages: CRIU's feature check says lazy pages are not supported here \
(they need userfaultfd with non-cooperative events; `criu check --feature uffd-noncoop`)"
            .into(),
    })
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
        let ps = opts.page_server.as_deref().map(page_server).transpose()?;
        // --status-fd counts only with --lazy-pages (runc ignores it otherwise).
        let status = match opts.status_fd.filter(|_| c.lazy_pages) {
            Some(fd) => Some(status_fd(fd)?),
            None => None,
        };
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
        if c.lazy_pages {
            // Before anything is made. CRIU logs a feature check to stderr.
            check_lazy_pages(&criu, "(stderr)".into())?;
        }
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
            o.page_server = ps;
            let log = log_dir.join(log_name).to_string_lossy().into_owned();
            let swrk = Swrk::start(&criu, &[], log)?;
            swrk.run(req, Some(&o), &mut DumpNotify { status })?;
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
