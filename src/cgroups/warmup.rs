//! Hiding the grace period of the first cgroup.procs write.
//!
//! Placing a process by writing cgroup.procs (every v1 hierarchy; v2 only
//! where CLONE_INTO_CGROUP cannot be used) takes the kernel's global
//! cgroup_threadgroup_rwsem for writing. The first writer after a quiet
//! spell waits for an RCU grace period (8-16 ms on the benchmark host: most
//! of a `create`); writers within about one grace period after it do not.
//! A helper process that makes a no-op migration (itself, into the cgroup
//! it is in) as `create` begins starts that grace period while the parent
//! parses config.json and makes the container's cgroup, so the parent's own
//! write waits only for what is left of it. runc and crun pay it in full.

use std::ffi::CString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::hierarchy::{self, Kind};
use crate::sys;

/// The helper while it runs; reaped on drop.
pub struct Warmup(Option<libc::pid_t>);

impl Warmup {
    /// Start the helper, if this host has a v1 hierarchy (where every
    /// container placement writes cgroup.procs). Best effort: anything that
    /// fails only means no head start.
    pub fn start() -> Warmup {
        let Some(path) =
            own_procs_file().and_then(|p| CString::new(p.into_os_string().into_vec()).ok())
        else {
            return Warmup(None);
        };
        match sys::clone3(0, None) {
            Ok(0) => {
                // SAFETY: the child of a single-threaded process makes raw
                // syscalls on a C string built before the clone, and _exits.
                unsafe {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd >= 0 {
                        // "0": the writing process itself.
                        libc::write(fd, b"0".as_ptr().cast(), 1);
                    }
                    libc::_exit(0)
                }
            }
            Ok(pid) => Warmup(Some(pid)),
            Err(_) => Warmup(None),
        }
    }
}

impl Drop for Warmup {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = waitpid(Pid::from_raw(pid), None);
        }
    }
}

/// cgroup.procs of our own cgroup in the first v1 hierarchy, from
/// /proc/self/cgroup ("ID:controllers:/path").
fn own_procs_file() -> Option<PathBuf> {
    let h = hierarchy::host().ok()?.iter().find_map(|h| match &h.kind {
        Kind::V1 { controllers, .. } => Some((h, controllers.first()?)),
        Kind::V2 => None,
    })?;
    let (h, controller) = h;
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        list.split(',').any(|c| c == controller).then_some(path)
    })?;
    Some(
        h.mount
            .join(path.trim_start_matches('/'))
            .join("cgroup.procs"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_procs_file_exists_where_there_is_a_v1_hierarchy() {
        let has_v1 =
            hierarchy::host().is_ok_and(|hs| hs.iter().any(|h| matches!(h.kind, Kind::V1 { .. })));
        match own_procs_file() {
            Some(p) => assert!(p.exists(), "{}", p.display()),
            None => assert!(!has_v1, "a v1 hierarchy but no cgroup.procs of ours"),
        }
    }

    #[test]
    fn the_helper_is_reaped() {
        let w = Warmup::start();
        let pid = w.0;
        drop(w);
        if let Some(pid) = pid {
            assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        }
    }
}
