//! A container without a mount namespace of its own is in the runtime's
//! (config-linux.md: namespaces not listed are inherited), so the mounts
//! its rootfs setup makes are the host's. Recorded before create, they are
//! undone at delete (or when create fails): the host's mount table is as
//! it was. runc leaves them.

use std::path::Path;

use nix::mount::{MntFlags, umount2};

use crate::mountinfo::{self, MountInfo};
use crate::sys::SysResult;

fn at_or_below<'m>(
    mounts: &'m [MountInfo],
    rootfs: &'m Path,
) -> impl DoubleEndedIterator<Item = &'m MountInfo> + 'm {
    mounts
        .iter()
        .filter(move |m| m.mount_point.starts_with(rootfs))
}

/// The ids of the mounts at or below `rootfs` now: those are not ours.
pub fn snapshot(rootfs: &Path) -> SysResult<Vec<u32>> {
    Ok(at_or_below(&mountinfo::read()?, rootfs)
        .map(|m| m.id)
        .collect())
}

/// Detach every mount at or below `rootfs` that is not in `before`,
/// innermost first (a detached parent takes its children along; the
/// errors that leaves for them are expected).
pub fn undo(rootfs: &Path, before: &[u32]) {
    let Ok(mounts) = mountinfo::read() else {
        return;
    };
    for m in at_or_below(&mounts, rootfs).rev() {
        if !before.contains(&m.id) {
            let _ = umount2(&m.mount_point, MntFlags::MNT_DETACH);
        }
    }
}
