//! The container's filesystem view, built inside the init's new mount
//! namespace: propagation, `mounts`, devices and /dev links, pivot_root (or
//! MS_MOVE + chroot with --no-pivot), then masked/readonly paths and a
//! read-only root.
//!
//! INTERFACE OWNED BY THE ROOTFS WORK: `setup`, `switch_root` and `finish`
//! are called by `process::init` in this order: setup -> (create-time
//! hooks) -> switch_root -> (console) -> finish.
//!
//! Every container path is resolved inside the rootfs (see `paths`), and
//! every mount targets the resolved fd, never a path string a symlink
//! could redirect.

mod cgroupfs;
mod copyup;
mod devices;
pub mod hostmounts;
mod idmap;
mod masked;
mod mounts;
pub(crate) mod newmount;
mod options;
mod paths;
mod pivot;
#[cfg(test)]
pub(crate) mod tests;

use std::path::Path;

use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

use crate::sys::{Ctx, SysError};
use mounts::MountCtx;
pub(crate) use options::clean_container_path;
use options::{parse_mount_options, root_propagation};
use paths::RootDir;

pub use idmap::{ContainerUserns, IdmappedTrees, prepare as prepare_idmapped};
pub use options::known_options as mount_options;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("{field}: {msg}")]
    Config { field: String, msg: String },
    /// A syscall failed while applying one config.json entry.
    #[error("{field}: {source}")]
    At {
        field: String,
        #[source]
        source: SysError,
    },
}

impl RootfsError {
    /// The `map_err` for a syscall failure while applying the config.json
    /// entry `field`.
    pub(crate) fn at(field: &str) -> impl Fn(SysError) -> RootfsError + Copy + '_ {
        move |source| RootfsError::At {
            field: field.to_string(),
            source,
        }
    }
}

/// What the rootfs steps need besides the spec.
pub struct RootfsOptions<'a> {
    pub spec: &'a Spec,
    /// Absolute, canonical host path of the container's root filesystem.
    pub rootfs: &'a Path,
    /// --no-pivot: MS_MOVE the rootfs onto / and chroot instead of pivot_root.
    pub no_pivot: bool,
    /// The init has a mount namespace other than the runtime's (new or
    /// joined). Without one, "/" and its propagation are the host's: they
    /// are left alone, and the root switch is a chroot.
    pub mount_ns: bool,
    /// The init is in a user namespace (new or joined): devices are
    /// bind-mounted from the host instead of mknod'ed.
    pub userns: bool,
    /// linux.mountLabel if SELinux can use it (`security::lsm::mount_label`).
    pub mount_label: Option<&'a str>,
    /// Id-mapped bind mounts the parent made (`prepare_idmapped`).
    pub idmapped: &'a IdmappedTrees,
}

/// runc creates device nodes unless /dev itself is bind-mounted.
fn dev_is_bind_mounted(mounts: &[Mount]) -> bool {
    mounts.iter().any(|m| {
        let typ = m.typ().as_deref();
        clean_container_path(m.destination()) == Path::new("/dev")
            && parse_mount_options(typ, m.options().as_deref().unwrap_or(&[])).is_bind()
    })
}

/// Everything about the rootfs part of the spec that can be refused
/// without touching the system, for the parent to call before it forks
/// (`setup` checks the same things again, so calling this is optional).
/// `userns`: the container has a user namespace (new or joined).
pub fn validate(spec: &Spec, userns: bool) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    let prop_value = linux.and_then(|l| l.rootfs_propagation().as_deref());
    if root_propagation(prop_value).is_none() {
        return Err(RootfsError::Config {
            field: "linux.rootfsPropagation".into(),
            msg: format!("unknown value {:?}", prop_value.unwrap_or_default()),
        });
    }
    devices::node_list(linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]))?;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let dest = m.destination();
        if dest.as_os_str().is_empty() {
            // Cleaned, "" would be "/": a mount over the whole root.
            return Err(RootfsError::Config {
                field: format!("mounts[{i}].destination"),
                msg: "mount destination must not be empty".into(),
            });
        }
        if !dest.is_absolute() {
            // runc's warning: accepted, taken relative to the container's /.
            eprintln!(
                "capsa: warning: mounts[{i}].destination: relative destination path {:?} is deprecated, using it as relative to /",
                dest.display()
            );
        }
        // A file can be bound over a device node; anything else makes a
        // directory where the device goes, and the device then fails.
        let clean = clean_container_path(dest);
        let bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        if !bind && devices::is_default_device(&clean) {
            return Err(RootfsError::Config {
                field: format!("mounts[{i}].destination"),
                msg: format!(
                    "{} is a device every container gets; only a bind mount may go over it",
                    clean.display()
                ),
            });
        }
        mounts::check_entry(m, i, userns)?;
    }
    Ok(())
}

/// A read-only /dev mount was mounted read-write for the device nodes;
/// make it read-only now (the last /dev entry decides).
fn dev_readonly(root: &RootDir, mounts: &[Mount]) -> Result<(), RootfsError> {
    let last = mounts
        .iter()
        .enumerate()
        .rev()
        .find(|(_, m)| clean_container_path(m.destination()) == Path::new("/dev"));
    let Some((i, m)) = last else {
        return Ok(());
    };
    let o = parse_mount_options(m.typ().as_deref(), m.options().as_deref().unwrap_or(&[]));
    if !o.flags.contains(MsFlags::MS_RDONLY) {
        return Ok(());
    }
    let dev = Path::new("/dev");
    let remount = || {
        let fd = root.open_path(dev)?;
        let flags = (o.flags - (MsFlags::MS_BIND | MsFlags::MS_REC)) | MsFlags::MS_REMOUNT;
        mounts::mount_at(None, &fd, dev, None, flags, "")
    };
    remount().map_err(|e| RootfsError::At {
        field: format!("mounts[{i}]"),
        source: e,
    })
}

/// Everything up to the root switch: propagation, `mounts`, devices. The
/// create-time hooks run after this, with the container's mounts in place
/// and the host's tree still reachable (runtime-spec runtime.md, lifecycle;
/// runc's order). Relative bind sources are taken relative to the current
/// directory, which should be the bundle.
pub fn setup(opts: &RootfsOptions) -> Result<(), RootfsError> {
    let spec = opts.spec;
    let linux = spec.linux().as_ref();
    let propagation = propagation_of(linux)?;
    let cgroupns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup));
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    let devices = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
    let nodes = devices::node_list(devices)?;

    // 1. Propagation of "/", rootfs as its own mount point.
    if opts.mount_ns {
        pivot::prepare_root(opts.rootfs, propagation)?;
    } else {
        pivot::bind_rootfs(opts.rootfs)?;
    }

    // 2. `mounts`, in order, each resolved inside the rootfs. The fd is
    // taken after the self-bind so that it refers to the new mount.
    let root = RootDir::open(opts.rootfs)?;
    // Every mount below targets "/proc/self/fd/N": make sure that is the
    // kernel's procfs, not something a joined mount namespace put there.
    root.check_proc_fd()?;
    let setup_dev = !dev_is_bind_mounted(mounts);
    let ctx = MountCtx {
        root: &root,
        userns: opts.userns,
        cgroupns,
        defer_dev_ro: setup_dev,
        mount_label: opts.mount_label,
        idmapped: opts.idmapped,
    };
    for (i, m) in mounts.iter().enumerate() {
        mounts::mount_entry(&ctx, m, i)?;
    }

    // 3. /dev contents, unless /dev is the host's.
    if !dev_is_bind_mounted(mounts) {
        devices::create_nodes(&root, &nodes, opts.userns)?;
        devices::create_links(&root)?;
    }
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal {
        // Mount target for the console's pty slave.
        let console = Path::new("/dev/console");
        root.create_file(console, 0o666)
            .map_err(|e| RootfsError::At {
                field: "process.terminal".into(),
                source: e,
            })?;
    }
    Ok(())
}

/// linux.rootfsPropagation as mount flags (default: rslave).
fn propagation_of(linux: Option<&oci_spec::runtime::Linux>) -> Result<MsFlags, RootfsError> {
    let value = linux.and_then(|l| l.rootfs_propagation().as_deref());
    root_propagation(value).ok_or_else(|| RootfsError::Config {
        field: "linux.rootfsPropagation".into(),
        msg: format!("unknown value {:?}", value.unwrap_or_default()),
    })
}

/// Step 4, after `setup`: switch root. On return the process's root and
/// cwd are the container's "/".
pub fn switch_root(opts: &RootfsOptions) -> Result<(), RootfsError> {
    let spec = opts.spec;
    let linux = spec.linux().as_ref();
    let propagation = propagation_of(linux)?;
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    let setup_dev = !dev_is_bind_mounted(mounts);
    if setup_dev {
        // After the hooks, which may add device nodes (runc's order too).
        dev_readonly(&RootDir::open(opts.rootfs)?, mounts)?;
    }
    if !opts.mount_ns {
        pivot::chroot_root(opts.rootfs)?;
    } else if opts.no_pivot {
        pivot::move_root(opts.rootfs)?;
    } else {
        pivot::pivot(opts.rootfs)?;
    }
    if setup_dev {
        devices::reopen_dev_null()?;
    }
    // As runc: an explicit rootfsPropagation is applied again to the new
    // "/" (the one set before the switch applied to the host's tree).
    let explicit = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .is_some_and(|v| !v.is_empty());
    if explicit {
        let none: Option<&str> = None;
        nix::mount::mount(none, "/", none, propagation, none)
            .ctx_at("mount propagation", Path::new("/"))?;
    }
    Ok(())
}

/// After the console is in place: root.readonly, maskedPaths, readonlyPaths
/// (runc's order). Must run after `setup`, with "/" the container's root.
pub fn finish(spec: &Spec) -> Result<(), RootfsError> {
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        masked::readonly_root().map_err(|e| RootfsError::At {
            field: "root.readonly".into(),
            source: e,
        })?;
    }
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(());
    };
    let root = RootDir::open(Path::new("/"))?;
    if let Some(paths) = linux.readonly_paths() {
        masked::readonly_paths(&root, paths)?;
    }
    if let Some(paths) = linux.masked_paths() {
        masked::mask_paths(&root, paths)?;
    }
    Ok(())
}
