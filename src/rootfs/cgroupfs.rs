//! `cgroup`/`cgroup2` entries of `mounts`. On a pure cgroup v2 host this is
//! one cgroup2 mount. On v1/hybrid hosts (as runc) a tmpfs at the
//! destination, then one directory per v1 hierarchy the host has: with a
//! cgroup namespace a fresh `cgroup` mount of that hierarchy, without one a
//! bind mount of the container's own cgroup directory in it.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};
use oci_spec::runtime::Mount;

use super::RootfsError;
use super::mounts::{MountCtx, bind_mount, mount_at, remount_bind};
use super::options::MountOptions;
use crate::mountinfo::{self, MountInfo};
use crate::sys::{Ctx, SysError};

/// A v1 hierarchy as the container sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Directory name under the destination ("cpu,cpuacct", "systemd").
    pub name: String,
    /// Host mount point of the hierarchy.
    pub mount_point: PathBuf,
    /// Data for a fresh mount: the controllers, or "name=systemd".
    pub data: String,
    /// The container's cgroup directory on the host (for the bind case).
    pub own_dir: PathBuf,
}

/// Match the host's v1 mounts with the lines of /proc/self/cgroup
/// ("ID:controllers:path"). A hierarchy whose controllers appear in no line
/// is skipped.
pub fn v1_hierarchies(mounts: &[MountInfo], proc_cgroup: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
        let opts: Vec<&str> = m.super_opts.split(',').collect();
        let line = proc_cgroup.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            (!ctrls.is_empty() && ctrls.split(',').all(|c| opts.contains(&c)))
                .then_some((ctrls, path))
        });
        let Some((ctrls, path)) = line else { continue };
        let Some(name) = m.mount_point.file_name() else {
            continue;
        };
        // The same hierarchy mounted twice: the first mount serves.
        if out.iter().any(|h| h.data == ctrls) {
            continue;
        }
        let rel = Path::new(path)
            .strip_prefix(&m.root)
            .unwrap_or(Path::new(""));
        out.push(Hierarchy {
            name: name.to_string_lossy().into_owned(),
            mount_point: m.mount_point.clone(),
            data: ctrls.to_string(),
            own_dir: m.mount_point.join(rel),
        });
    }
    out
}

pub fn mount_cgroup(
    ctx: &MountCtx,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
    field: &str,
) -> Result<(), RootfsError> {
    let at = RootfsError::at(field);
    let v2 = statfs("/sys/fs/cgroup")
        .ctx_at("statfs", Path::new("/sys/fs/cgroup"))
        .map_err(at)?
        .filesystem_type()
        == CGROUP2_SUPER_MAGIC;
    if v2 {
        return mount_v2(ctx, m, dest, opts, field);
    }
    let mountinfo = mountinfo::read().map_err(at)?;
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ctx_at("read", Path::new("/proc/self/cgroup"))
        .map_err(at)?;
    let hierarchies = v1_hierarchies(&mountinfo, &proc_cgroup);

    // The tmpfs that holds the hierarchies; read-only at the end if asked,
    // so that the container cannot add entries to it.
    let target = ctx.root.mkdir_all(dest).map_err(at)?;
    let base = opts.flags
        & !(MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    let tmpfs = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_at(
        Some(Path::new("tmpfs")),
        &target,
        dest,
        Some("tmpfs"),
        tmpfs | base,
        "mode=755",
    )
    .map_err(at)?;

    for h in &hierarchies {
        let sub = dest.join(&h.name);
        if ctx.cgroupns {
            let fd = ctx.root.mkdir_all(&sub).map_err(at)?;
            mount_at(
                Some(Path::new("cgroup")),
                &fd,
                &sub,
                Some("cgroup"),
                opts.flags,
                &h.data,
            )
            .map_err(at)?;
        } else {
            let bind = MountOptions {
                flags: opts.flags | MsFlags::MS_BIND,
                ..Default::default()
            };
            bind_mount(ctx, &h.own_dir, &sub, &bind, field)?;
        }
        // "cpu,cpuacct" is also reachable as "cpu" and "cpuacct".
        if h.name.contains(',') {
            let dir = ctx.root.mkdir_all(dest).map_err(at)?;
            for alias in h.name.split(',') {
                match nix::unistd::symlinkat(h.name.as_str(), dir.as_fd(), alias) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(at(SysError::at("symlink", dest.join(alias), e))),
                }
            }
        }
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        remount_bind(ctx, dest, tmpfs | base | MsFlags::MS_RDONLY).map_err(at)?;
    }
    Ok(())
}

/// cgroup2 at the destination; in a user namespace without a cgroup
/// namespace the kernel refuses that, and (as runc) the container's own
/// cgroup directory is bind-mounted instead.
fn mount_v2(
    ctx: &MountCtx,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
    field: &str,
) -> Result<(), RootfsError> {
    let at = RootfsError::at(field);
    let target = ctx.root.mkdir_all(dest).map_err(at)?;
    let source = m
        .source()
        .clone()
        .unwrap_or_else(|| PathBuf::from("cgroup2"));
    match mount_at(
        Some(&source),
        &target,
        dest,
        Some("cgroup2"),
        opts.flags,
        &opts.data,
    ) {
        Err(e) if matches!(e.errno, Errno::EPERM | Errno::EBUSY) => {
            let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup")
                .ctx_at("read", Path::new("/proc/self/cgroup"))
                .map_err(at)?;
            let own = proc_cgroup
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .ok_or_else(|| at(e.clone()))?;
            let src = Path::new("/sys/fs/cgroup").join(own.trim_start_matches('/'));
            let bind = MountOptions {
                flags: opts.flags | MsFlags::MS_BIND | MsFlags::MS_REC,
                ..Default::default()
            };
            bind_mount(ctx, &src, dest, &bind, field)
        }
        r => r.map_err(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 /sub /mnt/with\\040space rw - cgroup cgroup rw,pids
";
    const PROC_CGROUP: &str = "\
9:name=systemd:/user.slice/c1
4:memory:/c1
2:cpu,cpuacct:/c1
8:pids:/sub/c1
0::/c1
";

    #[test]
    fn hierarchies_match_proc_cgroup() {
        let hs = v1_hierarchies(&mountinfo::parse(HYBRID), PROC_CGROUP);
        let got: Vec<(&str, &str, &Path)> = hs
            .iter()
            .map(|h| (h.name.as_str(), h.data.as_str(), h.own_dir.as_path()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "cpu,cpuacct",
                    "cpu,cpuacct",
                    Path::new("/sys/fs/cgroup/cpu,cpuacct/c1")
                ),
                ("memory", "memory", Path::new("/sys/fs/cgroup/memory/c1")),
                (
                    "systemd",
                    "name=systemd",
                    Path::new("/sys/fs/cgroup/systemd/user.slice/c1")
                ),
                // mount root /sub: the path is relative to it
                ("with space", "pids", Path::new("/mnt/with space/c1")),
            ]
        );
    }
}
