//! Namespaces: clone flags for the types config.json names, joining by path,
//! and the user namespace's id maps (written by the parent).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, setns};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType};

use crate::bundle::Join;
use crate::sys::{Ctx, SysError};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("linux.namespaces[{index}]: joining {kind} namespace {path}: {source}")]
    Join {
        index: usize,
        kind: String,
        path: PathBuf,
        source: SysError,
    },
    #[error("{0}")]
    Sys(#[from] SysError),
}

/// The clone/unshare flag of a namespace type.
pub fn flag(kind: LinuxNamespaceType) -> CloneFlags {
    match kind {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The text of /proc/PID/{uid,gid}_map for the given mappings.
pub fn id_map(maps: Option<&[LinuxIdMapping]>, field: &str) -> Result<String, (String, String)> {
    let maps = maps.unwrap_or(&[]);
    if maps.is_empty() {
        return Err((
            field.to_string(),
            "a new user namespace needs at least one mapping".into(),
        ));
    }
    // The kernel takes at most 340 lines (5.x+); runc refuses more too.
    if maps.len() > 340 {
        return Err((
            field.to_string(),
            format!("{} mappings; at most 340 are allowed", maps.len()),
        ));
    }
    let mut out = String::with_capacity(maps.len() * 24);
    for (i, m) in maps.iter().enumerate() {
        if m.size() == 0 {
            return Err((
                format!("{field}[{i}].size"),
                "size must be at least 1".into(),
            ));
        }
        let end_c = u64::from(m.container_id()) + u64::from(m.size());
        let end_h = u64::from(m.host_id()) + u64::from(m.size());
        if end_c > u64::from(u32::MAX) || end_h > u64::from(u32::MAX) {
            return Err((format!("{field}[{i}]"), "range overflows 32-bit ids".into()));
        }
        let _ = writeln!(out, "{} {} {}", m.container_id(), m.host_id(), m.size());
    }
    Ok(out)
}

/// Write the id maps of the user namespace of `pid` (parent side, while the
/// child waits). setgroups is denied only when there is no gid mapping for
/// a privileged writer to rely on (we are root: leave it allowed).
pub fn write_id_maps(pid: i32, uid_map: &str, gid_map: &str) -> Result<(), SysError> {
    let uid = PathBuf::from(format!("/proc/{pid}/uid_map"));
    std::fs::write(&uid, uid_map).ctx_at("write", &uid)?;
    let gid = PathBuf::from(format!("/proc/{pid}/gid_map"));
    std::fs::write(&gid, gid_map).ctx_at("write", &gid)?;
    Ok(())
}

/// Join one namespace by path.
pub fn join(j: &Join) -> Result<(), NamespaceError> {
    let wrap = |source: SysError| NamespaceError::Join {
        index: j.index,
        kind: j.kind.to_string(),
        path: j.path.clone(),
        source,
    };
    let fd = open(&j.path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx_at("open", &j.path)
        .map_err(wrap)?;
    setns(fd.as_fd(), j.flag)
        .ctx_at("setns", &j.path)
        .map_err(wrap)?;
    Ok(())
}

/// A sysctl may only be set when the namespace it belongs to is private
/// (the runtime-spec leaves the check to the runtime; runc's rules).
pub fn check_sysctl(key: &str, ns: &HashSet<LinuxNamespaceType>) -> Result<(), String> {
    if key.is_empty()
        || key.contains('\0')
        || key.split(['.', '/']).any(|c| c == ".." || c.is_empty())
    {
        return Err("invalid sysctl name".into());
    }
    let ipc = matches!(
        key,
        "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
            | "kernel.shmall"
            | "kernel.shmmax"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
    ) || key.starts_with("fs.mqueue.");
    if ipc {
        return if ns.contains(&LinuxNamespaceType::Ipc) {
            Ok(())
        } else {
            Err("sysctl needs a private IPC namespace".into())
        };
    }
    if key.starts_with("net.") {
        return if ns.contains(&LinuxNamespaceType::Network) {
            Ok(())
        } else {
            Err("sysctl needs a private network namespace".into())
        };
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        return if ns.contains(&LinuxNamespaceType::Uts) {
            Ok(())
        } else {
            Err("sysctl needs a private UTS namespace".into())
        };
    }
    Err("sysctl is not in a separate kernel namespace".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_rules() {
        let mut ns = HashSet::new();
        assert!(check_sysctl("net.ipv4.ip_forward", &ns).is_err());
        ns.insert(LinuxNamespaceType::Network);
        assert!(check_sysctl("net.ipv4.ip_forward", &ns).is_ok());
        assert!(check_sysctl("kernel.shmmax", &ns).is_err());
        assert!(check_sysctl("vm.swappiness", &ns).is_err());
        assert!(check_sysctl("net/../../etc", &ns).is_err());
    }
}
