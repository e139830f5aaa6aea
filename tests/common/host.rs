//! What the host shows and holds, for the tests' checks: mounts, cgroup directories,
//! processes, namespaces, capability names, /proc/PID/status fields, and host state a
//! test must restore.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cgroup_path_for;

/// Whether /proc/self/mountinfo lists a mount point at or below `dir`.
pub fn mounted_below(dir: &Path) -> bool {
    !mounts_below(dir).is_empty()
}

/// The mount points /proc/self/mountinfo lists at or below `dir`.
pub fn mounts_below(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| *mp == prefix || mp.starts_with(&format!("{prefix}/")))
        .map(str::to_owned)
        .collect()
}

/// Every existing cgroup directory for `id` under /sys/fs/cgroup/* (v1 hierarchies and
/// /sys/fs/cgroup/unified) and /sys/fs/cgroup itself (pure v2).
pub fn cgroup_dirs_for(id: &str) -> Vec<PathBuf> {
    let rel = cgroup_path_for(id);
    let rel = rel.trim_start_matches('/');
    let mut found = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    let mut hierarchies = vec![base.to_path_buf()];
    if let Ok(rd) = fs::read_dir(base) {
        hierarchies.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for h in hierarchies {
        let p = h.join(rel);
        if p.is_dir() {
            found.push(p);
        }
    }
    found
}

/// Host pids whose root directory is `rootfs` (same device and inode, which a bind mount
/// of it keeps).
pub fn procs_rooted_at(rootfs: &Path) -> Vec<u32> {
    let Ok(want) = fs::metadata(rootfs) else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(m) = fs::metadata(e.path().join("root"))
            && m.dev() == want.dev()
            && m.ino() == want.ino()
        {
            pids.push(pid);
        }
    }
    pids
}

/// OCI namespace type -> /proc/<pid>/ns entry name.
pub fn proc_ns_name(ty: &str) -> &str {
    match ty {
        "network" => "net",
        "mount" => "mnt",
        other => other,
    }
}

/// The namespace link text (`net:[4026531840]`) of `pid` (or "self") for `ns`.
pub fn ns_link(pid: &str, ns: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Capability names without CAP_, in linux/capability.h order (all of a 6.x kernel's).
pub const CAP_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The OCI name (CAP_...) of capability number `n`.
pub fn cap_name(n: u32) -> String {
    let short = CAP_NAMES
        .get(n as usize)
        .unwrap_or_else(|| panic!("unknown capability number {n}"));
    format!("CAP_{short}")
}

/// Capability numbers by OCI name (linux/capability.h order).
pub fn cap_number(name: &str) -> u32 {
    let short = name.trim_start_matches("CAP_");
    CAP_NAMES
        .iter()
        .position(|n| *n == short)
        .unwrap_or_else(|| panic!("unknown capability {name}")) as u32
}

/// The /proc/<pid>/status hex mask for a list of capability names.
pub fn cap_mask(names: &[&str]) -> u64 {
    names.iter().fold(0u64, |m, n| m | (1u64 << cap_number(n)))
}

/// The value of `Key:` in a /proc/<pid>/status text.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

/// A host process in new namespaces (`unshare <flags> sleep`), killed on drop.
pub struct NsHolder {
    child: Child,
}

impl NsHolder {
    /// `flags` such as `["--net", "--uts"]`; waits until the namespaces are in place.
    pub fn new(flags: &[&str], check_ns: &str) -> Option<NsHolder> {
        let child = Command::new("unshare")
            .args(flags)
            .args(["sleep", "1000"])
            .stdin(Stdio::null())
            .spawn()
            .ok()?;
        let holder = NsHolder { child };
        let mine = ns_link("self", check_ns);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            let theirs = ns_link(&holder.pid().to_string(), check_ns);
            // unshare execs sleep after unsharing; wait for both.
            let exe = fs::read_link(format!("/proc/{}/exe", holder.pid())).unwrap_or_default();
            if !theirs.is_empty() && theirs != mine && exe.to_string_lossy().contains("sleep") {
                return Some(holder);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NsHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parse /proc/self/mountinfo text into (mount point, fstype, per-mount options, super
/// options) tuples.
pub fn parse_mountinfo(text: &str) -> Vec<(String, String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((
                f.get(4)?.to_string(),
                f.get(sep + 1)?.to_string(),
                f.get(5)?.to_string(),
                f.get(sep + 3).unwrap_or(&"").to_string(),
            ))
        })
        .collect()
}

/// Restores a host /proc/sys file on drop if a test's container changed it (a runtime that
/// applies a setting in the host's namespace must not leave the host altered).
pub struct HostSetting {
    path: PathBuf,
    value: String,
}

impl HostSetting {
    pub fn save(path: &str) -> HostSetting {
        HostSetting {
            path: PathBuf::from(path),
            value: fs::read_to_string(path).unwrap_or_default(),
        }
    }

    pub fn changed(&self) -> bool {
        fs::read_to_string(&self.path).unwrap_or_default() != self.value
    }
}

impl Drop for HostSetting {
    fn drop(&mut self) {
        if self.changed() && !self.value.is_empty() {
            eprintln!("restoring host {}", self.path.display());
            let _ = fs::write(&self.path, self.value.trim_end());
        }
    }
}
