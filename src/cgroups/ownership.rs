//! Cgroup ownership (config-linux.md "Cgroup ownership"): on a pure cgroup
//! v2 host, a container with a new cgroup namespace and a read-write
//! cgroup mount at /sys/fs/cgroup gets its cgroup delegated: the directory
//! and the files the kernel lists as delegatable go to the host ids that
//! process.user maps to, so its processes can manage their own subtree
//! (systemd in a user-namespaced container needs this). Never on v1 or
//! hybrid hosts, where the spec says delegation is not secure; nothing
//! else changes owner (other files would let it raise its own limits).
//! crun and runc >= 1.2 do the same.

use std::path::Path;

use oci_spec::runtime::Spec;

use super::hierarchy::{self, Kind};
use super::{Cgroup, CgroupError};
use crate::rootfs::clean_container_path;
use crate::sys::Ctx;

/// The kernel's list of delegatable files (cgroups(7)).
const DELEGATE_LIST: &str = "/sys/kernel/cgroup/delegate";
/// The spec's fallback when the kernel has no such list.
const DELEGATE_FALLBACK: [&str; 3] = ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"];

/// Whether the spec asks for delegation: a new cgroup namespace
/// (`new_cgroupns`) and a mount whose source is "cgroup", destination
/// /sys/fs/cgroup and options without "ro". Pure: no host access.
pub fn wanted(spec: &Spec, new_cgroupns: bool) -> bool {
    new_cgroupns
        && spec.mounts().iter().flatten().any(|m| {
            m.source().as_deref() == Some(Path::new("cgroup"))
                && clean_container_path(m.destination()) == Path::new("/sys/fs/cgroup")
                && !m.options().iter().flatten().any(|o| o == "ro")
        })
}

impl Cgroup {
    /// Delegate the unified leaf to the host ids that process.user maps to
    /// in the user namespace of `init_pid` (its /proc uid_map and gid_map:
    /// a new, joined or no user namespace alike), if the spec asks for it
    /// (see `wanted`) and the host is pure v2. An unmapped user or a root
    /// owner changes nothing.
    pub fn delegate(
        &self,
        spec: &Spec,
        new_cgroupns: bool,
        init_pid: i32,
    ) -> Result<(), CgroupError> {
        let Some(dir) = self.unified.as_ref() else {
            return Ok(());
        };
        if !wanted(spec, new_cgroupns) {
            return Ok(());
        }
        if hierarchy::host()?.iter().any(|h| h.kind != Kind::V2) {
            return Ok(());
        }
        let user = spec.process().as_ref().map(|p| p.user().clone());
        let (uid, gid) = user.map_or((0, 0), |u| (u.uid(), u.gid()));
        let Some((huid, hgid)) = crate::namespaces::host_ids_of(init_pid, uid, gid)? else {
            return Ok(());
        };
        if (huid, hgid) == (0, 0) {
            return Ok(());
        }
        let list = std::fs::read_to_string(DELEGATE_LIST).ok();
        let files: Vec<&str> = match &list {
            Some(l) => l.lines().map(str::trim).filter(|f| !f.is_empty()).collect(),
            None => DELEGATE_FALLBACK.to_vec(),
        };
        let chown = |path: &Path| {
            std::os::unix::fs::lchown(path, Some(huid), Some(hgid)).ctx_at("chown", path)
        };
        chown(dir)?;
        for f in files {
            // Not every listed file exists in every cgroup (a controller
            // that is not enabled): the spec says not to fail then.
            match chown(&dir.join(f)) {
                Err(e) if e.errno == nix::errno::Errno::ENOENT => {}
                r => r?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mounts: serde_json::Value) -> Spec {
        let mut v = serde_json::json!({"ociVersion": "1.3.0", "mounts": mounts});
        v["process"] = serde_json::json!({"cwd": "/", "user": {"uid": 0, "gid": 0}});
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn wanted_only_with_a_rw_cgroup_mount_and_a_new_cgroupns() {
        let rw = spec(serde_json::json!([
            {"destination": "/sys/fs/cgroup/", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "rw"]}
        ]));
        assert!(wanted(&rw, true));
        assert!(!wanted(&rw, false));
        let ro = spec(serde_json::json!([
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "ro"]}
        ]));
        assert!(!wanted(&ro, true));
        let elsewhere = spec(serde_json::json!([
            {"destination": "/cg", "type": "cgroup", "source": "cgroup"},
            {"destination": "/sys/fs/cgroup", "type": "bind", "source": "/sys/fs/cgroup"}
        ]));
        assert!(!wanted(&elsewhere, true));
    }
}
