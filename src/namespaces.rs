//! Namespaces: clone flags for the types config.json names, joining by path,
//! and the user namespace's id maps (written by the parent).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::os::fd::{AsFd, OwnedFd};
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

/// The (uid_map, gid_map) texts of a new user namespace whose config gives
/// no mappings at all: container id 0 is the caller's `euid`/`egid`, size 1
/// (crun's default; a single map of one's own id needs no privilege).
pub fn own_id_maps(euid: u32, egid: u32) -> (String, String) {
    (format!("0 {euid} 1\n"), format!("0 {egid} 1\n"))
}

/// The text of /proc/PID/{uid,gid}_map for the given mappings.
pub fn id_map(maps: Option<&[LinuxIdMapping]>, field: &str) -> Result<String, (String, String)> {
    let maps = maps.unwrap_or(&[]);
    if maps.is_empty() {
        return Err((
            field.to_string(),
            // runc's words.
            if field.contains("gid") {
                "User namespaces enabled, but no gid mappings found.".into()
            } else {
                "User namespaces enabled, but no uid mappings found.".into()
            },
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
        // The kernel refuses (EINVAL) ranges that overlap, inside or out.
        let overlap = |a: u32, b: u32, n: u32| {
            let (a, b) = (u64::from(a), u64::from(b));
            a < b + u64::from(n) && b < a + u64::from(m.size())
        };
        if let Some(j) = maps[..i].iter().position(|o| {
            overlap(m.container_id(), o.container_id(), o.size())
                || overlap(m.host_id(), o.host_id(), o.size())
        }) {
            return Err((
                format!("{field}[{i}]"),
                format!("overlaps {field}[{j}]: the kernel takes no overlapping ranges"),
            ));
        }
        let _ = writeln!(out, "{} {} {}", m.container_id(), m.host_id(), m.size());
    }
    Ok(out)
}

/// The host id that `id` maps to in a /proc/PID/{uid,gid}_map text.
pub fn host_id(map: &str, id: u32) -> Option<u32> {
    let id = u64::from(id);
    map.lines().find_map(|l| {
        let mut f = l.split_whitespace().map(|x| x.parse::<u64>().ok());
        let (inside, outside, count) = (f.next()??, f.next()??, f.next()??);
        let off = id.checked_sub(inside).filter(|o| *o < count)?;
        u32::try_from(outside + off).ok()
    })
}

/// The host ids that `uid` and `gid` map to in the user namespace of `pid`
/// (its /proc/PID/{uid,gid}_map: a new, joined or no user namespace alike),
/// or None if either is unmapped.
pub fn host_ids_of(pid: i32, uid: u32, gid: u32) -> Result<Option<(u32, u32)>, SysError> {
    let host = |file: &str, id: u32| -> Result<Option<u32>, SysError> {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        let map = std::fs::read_to_string(&path).ctx_at("read", &path)?;
        Ok(host_id(&map, id))
    };
    Ok(host("uid_map", uid)?.zip(host("gid_map", gid)?))
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

/// A user namespace with the given maps, held only by the returned fd: a
/// child is cloned into a new user namespace, the maps are written, the
/// namespace is opened through /proc and the child exits. Used for the id
/// mapping of id-mapped mounts; costs one short-lived process.
pub fn userns_with_maps(uid_map: &str, gid_map: &str) -> Result<OwnedFd, SysError> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx("pipe2")?;
    let pid = crate::sys::clone3(libc::CLONE_NEWUSER as u64, None)?;
    if pid == 0 {
        // Wait until the parent closes its end (done, or died), then go.
        drop(w);
        let mut b = [0u8; 1];
        while nix::unistd::read(&r, &mut b) == Err(nix::errno::Errno::EINTR) {}
        crate::sys::child_exit(0)
    }
    drop(r);
    let res = (|| {
        write_id_maps(pid, uid_map, gid_map)?;
        let ns = PathBuf::from(format!("/proc/{pid}/ns/user"));
        open(&ns, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).ctx_at("open", &ns)
    })();
    drop(w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    res
}

/// Join the namespaces `joins` (in order: the user namespace first). Every
/// path is opened before the first setns: once in another user namespace we
/// may no longer open /proc/PID/ns of a non-dumpable process such as another
/// container's init.
pub fn join_all(joins: &[Join]) -> Result<(), NamespaceError> {
    let wrap = |j: &Join, source: SysError| NamespaceError::Join {
        index: j.index,
        kind: j.kind.to_string(),
        path: j.path.clone(),
        source,
    };
    let mut fds = Vec::with_capacity(joins.len());
    for j in joins {
        let fd = open(&j.path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .ctx_at("open", &j.path)
            .map_err(|e| wrap(j, e))?;
        fds.push(fd);
    }
    for (j, fd) in joins.iter().zip(&fds) {
        setns(fd.as_fd(), j.flag)
            .ctx_at("setns", &j.path)
            .map_err(|e| wrap(j, e))?;
    }
    Ok(())
}

/// sysctl.d(5) takes "/" as the separator too ("net/ipv4/conf/eth0.100/
/// rp_filter"): the dotted name of such a key swaps the two, as runc does
/// before its checks.
pub fn sysctl_dotted(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
        _ => key.to_owned(),
    }
}

/// The file below /proc/sys that sets `key` (dotted or slashed).
pub fn sysctl_file(key: &str) -> String {
    if sysctl_dotted(key) == key {
        key.replace('.', "/")
    } else {
        key.to_owned()
    }
}

/// A sysctl may only be set when the namespace it belongs to is private
/// (the runtime-spec leaves the check to the runtime; runc's rules).
pub fn check_sysctl(key: &str, ns: &HashSet<LinuxNamespaceType>) -> Result<(), String> {
    if key.is_empty()
        || key.contains('\0')
        || key.split(['.', '/']).any(|c| c == ".." || c.is_empty())
    {
        return Err(
            "invalid sysctl name: it contains an invalid path (empty, \"..\" or leading separator)"
                .into(),
        );
    }
    let dotted = sysctl_dotted(key);
    let key = dotted.as_str();
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
            Err(format!(
                "sysctl {key:?} is not allowed in the hosts ipc namespace"
            ))
        };
    }
    if key.starts_with("net.") {
        return if ns.contains(&LinuxNamespaceType::Network) {
            Ok(())
        } else {
            Err(format!(
                "sysctl {key:?} not allowed in host network namespace"
            ))
        };
    }
    if key == "kernel.hostname" && ns.contains(&LinuxNamespaceType::Uts) {
        return Err(
            "sysctl \"kernel.hostname\" is not allowed as it conflicts with the OCI \"hostname\" field"
                .into(),
        );
    }
    if key == "kernel.domainname" {
        return if ns.contains(&LinuxNamespaceType::Uts) {
            Ok(())
        } else {
            // runc 1.1's words for both.
            Err(format!(
                "sysctl {key:?} is not in a separate kernel namespace"
            ))
        };
    }
    Err(format!(
        "sysctl {key:?} is not in a separate kernel namespace"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids() {
        let map = "0 100000 1000\n1000 200000 10\n";
        assert_eq!(host_id(map, 0), Some(100000));
        assert_eq!(host_id(map, 999), Some(100999));
        assert_eq!(host_id(map, 1005), Some(200005));
        assert_eq!(host_id(map, 1010), None);
        assert_eq!(host_id("         0          0 4294967295\n", 7), Some(7));
        assert_eq!(host_id("", 0), None);
    }

    #[test]
    fn overlapping_id_ranges_are_refused() {
        let m = |c: u32, h: u32, n: u32| {
            serde_json::from_value::<LinuxIdMapping>(
                serde_json::json!({"containerID": c, "hostID": h, "size": n}),
            )
            .expect("mapping")
        };
        let ok = [m(0, 100000, 1000), m(1000, 200000, 10)];
        assert!(id_map(Some(&ok), "linux.gidMappings").is_ok());
        for bad in [
            [m(0, 100000, 1000), m(0, 100000, 1000)],
            [m(0, 100000, 1000), m(999, 300000, 1)],
            [m(0, 100000, 1000), m(5000, 100500, 1)],
        ] {
            let e = id_map(Some(&bad), "linux.gidMappings").err();
            assert_eq!(e.map(|e| e.0).as_deref(), Some("linux.gidMappings[1]"));
        }
    }

    #[test]
    fn sysctl_rules() {
        let mut ns = HashSet::new();
        assert!(check_sysctl("net.ipv4.ip_forward", &ns).is_err());
        ns.insert(LinuxNamespaceType::Network);
        assert!(check_sysctl("net.ipv4.ip_forward", &ns).is_ok());
        assert!(check_sysctl("kernel.shmmax", &ns).is_err());
        assert!(check_sysctl("vm.swappiness", &ns).is_err());
        assert!(check_sysctl("net/../../etc", &ns).is_err());
        // The "/" spelling, and its file.
        assert!(check_sysctl("net/ipv4/ip_forward", &ns).is_ok());
        assert_eq!(
            sysctl_file("net/ipv4/conf/eth0.100/rp_filter"),
            "net/ipv4/conf/eth0.100/rp_filter"
        );
        assert_eq!(sysctl_file("net.ipv4.ip_forward"), "net/ipv4/ip_forward");
        // kernel.hostname has its own field (runc's words).
        ns.insert(LinuxNamespaceType::Uts);
        let e = check_sysctl("kernel.hostname", &ns)
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("conflicts with the OCI \"hostname\" field"),
            "{e}"
        );
        assert!(check_sysctl("kernel.domainname", &ns).is_ok());
    }
}
