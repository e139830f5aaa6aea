//! Root propagation, the rootfs bind mount, and the switch of "/".

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir, pivot_root};

use crate::mountinfo::{self, MountInfo};
use crate::sys::{Ctx, SysError, SysResult};

const NONE: Option<&str> = None;

/// The mount that `path` lives on: the longest mount point above it.
fn parent_mount<'m>(mounts: &'m [MountInfo], path: &Path) -> Option<&'m MountInfo> {
    // Later entries shadow earlier ones at the same mount point.
    mounts
        .iter()
        .rev()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())
}

/// Step 1: stop the container's mounts from reaching the host (rslave by
/// default), make the rootfs its own mount point, and make the mount it
/// sits on private, as pivot_root(2) refuses a shared parent.
/// "unbindable" is private here: the rootfs could not be bind-mounted onto
/// itself under an unbindable tree (EINVAL); `setup` makes the new "/"
/// unbindable after the switch.
pub fn prepare_root(rootfs: &Path, propagation: MsFlags) -> SysResult<()> {
    let before = if propagation.contains(MsFlags::MS_UNBINDABLE) {
        (propagation - MsFlags::MS_UNBINDABLE) | MsFlags::MS_PRIVATE
    } else {
        propagation
    };
    mount(NONE, "/", NONE, before, NONE).ctx_at("mount propagation", Path::new("/"))?;
    let mounts = mountinfo::read()?;
    if let Some(parent) = parent_mount(&mounts, rootfs)
        && parent.optional.split(' ').any(|f| f.starts_with("shared:"))
    {
        mount(NONE, &parent.mount_point, NONE, MsFlags::MS_PRIVATE, NONE)
            .ctx_at("make rootfs parent private", &parent.mount_point)?;
    }
    bind_rootfs(rootfs)
}

/// The rootfs bound onto itself, a mount of its own (for pivot_root, and
/// for root.readonly). Without a mount namespace this is all of step 1:
/// the runtime's propagation is not ours to change.
pub fn bind_rootfs(rootfs: &Path) -> SysResult<()> {
    mount(
        Some(rootfs),
        rootfs,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .ctx_at("bind rootfs", rootfs)
}

fn open_dir(path: &Path) -> SysResult<std::os::fd::OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx_at("open", path)
}

/// pivot_root(".", ".") from inside the rootfs stacks the old root on top
/// of the new one; detaching it leaves only the container's tree. No
/// put_old directory is needed, so nothing is left in the image.
pub fn pivot(rootfs: &Path) -> SysResult<()> {
    let old = open_dir(Path::new("/"))?;
    let new = open_dir(rootfs)?;
    fchdir(&new).ctx_at("fchdir", rootfs)?;
    pivot_root(".", ".").ctx_at("pivot_root", rootfs)?;
    fchdir(&old).ctx_at("fchdir", Path::new("/"))?;
    // The old root may still be shared with the host (rootfsPropagation
    // "shared"): make it a slave first so the detach does not propagate.
    mount(NONE, ".", NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE)
        .ctx_at("make old root rslave", Path::new("/"))?;
    umount2(".", MntFlags::MNT_DETACH).ctx_at("detach old root", Path::new("/"))?;
    chdir("/").ctx_at("chdir", Path::new("/"))
}

/// No mount namespace of its own: the container is in the runtime's, whose
/// root must stay as it is. chroot only, as runc does.
pub fn chroot_root(rootfs: &Path) -> SysResult<()> {
    chdir(rootfs).ctx_at("chdir", rootfs)?;
    chroot(".").ctx_at("chroot", rootfs)?;
    chdir("/").ctx_at("chdir", Path::new("/"))
}

/// Mount points to hide before MS_MOVE: everything that is neither the
/// rootfs, inside it, nor one of its ancestors; outermost first and without
/// those already covered by an outer one.
pub fn mounts_to_hide(mounts: &[MountInfo], rootfs: &Path) -> Vec<PathBuf> {
    let mut points: Vec<&Path> = mounts
        .iter()
        .map(|m| m.mount_point.as_path())
        .filter(|p| !p.starts_with(rootfs) && !rootfs.starts_with(p))
        .collect();
    points.sort_by_key(|p| p.components().count());
    let mut out: Vec<PathBuf> = Vec::new();
    for p in points {
        if !out.iter().any(|o| p.starts_with(o)) {
            out.push(p.to_path_buf());
        }
    }
    out
}

/// --no-pivot: hide the host's other mounts (as runc: detach, or cover
/// with a tmpfs when the kernel keeps them locked), MS_MOVE the rootfs
/// onto "/" and chroot into it.
pub fn move_root(rootfs: &Path) -> SysResult<()> {
    for p in mounts_to_hide(&mountinfo::read()?, rootfs) {
        match umount2(&p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(Errno::EINVAL) | Err(Errno::EPERM) => {
                mount(Some("tmpfs"), &p, Some("tmpfs"), MsFlags::empty(), NONE)
                    .ctx_at("cover", &p)?;
            }
            Err(e) => return Err(SysError::at("umount", p, e)),
        }
    }
    chdir(rootfs).ctx_at("chdir", rootfs)?;
    mount(Some(rootfs), "/", NONE, MsFlags::MS_MOVE, NONE).ctx_at("move rootfs to /", rootfs)?;
    chroot(".").ctx_at("chroot", rootfs)?;
    chdir("/").ctx_at("chdir", Path::new("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 254:0 / / rw shared:1 - ext4 /dev/vda rw
23 22 0:5 / /proc rw shared:2 - proc proc rw
24 22 0:6 / /sys rw shared:3 - sysfs sysfs rw
25 24 0:7 / /sys/fs/cgroup rw shared:4 - tmpfs tmpfs rw
26 22 0:8 / /tmp rw shared:5 - tmpfs tmpfs rw
27 26 254:0 /b/rootfs /tmp/b/rootfs rw - ext4 /dev/vda rw
28 27 0:9 / /tmp/b/rootfs/proc rw - proc proc rw
29 26 0:10 / /tmp/other rw - tmpfs tmpfs rw
";

    #[test]
    fn parent_of_rootfs() {
        let m = mountinfo::parse(INFO);
        let p = parent_mount(&m, Path::new("/tmp/b/rootfs")).unwrap();
        assert_eq!(p.mount_point, PathBuf::from("/tmp/b/rootfs"));
        let p = parent_mount(&m, Path::new("/tmp/c/rootfs")).unwrap();
        assert_eq!(p.mount_point, PathBuf::from("/tmp"));
        assert!(p.optional.contains("shared:5"));
        let p = parent_mount(&m, Path::new("/srv/rootfs")).unwrap();
        assert_eq!(p.mount_point, PathBuf::from("/"));
    }

    #[test]
    fn hide_list() {
        let m = mountinfo::parse(INFO);
        assert_eq!(
            mounts_to_hide(&m, Path::new("/tmp/b/rootfs")),
            vec![
                PathBuf::from("/proc"),
                PathBuf::from("/sys"),
                PathBuf::from("/tmp/other")
            ]
        );
    }
}
