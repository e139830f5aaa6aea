//! Which cgroup hierarchies this host mounts, read once from
//! /proc/self/mountinfo: every cgroup v1 mount (its super options name the
//! controllers, named hierarchies such as `name=systemd` included) and the
//! cgroup2 mount, if any.

use std::path::PathBuf;
use std::sync::OnceLock;

use super::CgroupError;
use crate::mountinfo::{self, MountInfo};

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted, e.g. /sys/fs/cgroup/memory.
    pub mount: PathBuf,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// cgroup v1: the controllers (and `name=` options) bound to it.
    V1 {
        controllers: Vec<String>,
        /// Mounted with `noprefix`: control files lack the `cpuset.` prefix.
        noprefix: bool,
    },
    /// The unified (cgroup2) hierarchy.
    V2,
}

impl Hierarchy {
    pub fn has_controller(&self, name: &str) -> bool {
        match &self.kind {
            Kind::V1 { controllers, .. } => controllers.iter().any(|c| c == name),
            Kind::V2 => false,
        }
    }
}

/// The hierarchies of the running host, detected on first use. A failed
/// read is not cached, so a later call retries.
pub fn host() -> Result<&'static [Hierarchy], CgroupError> {
    static HOST: OnceLock<Vec<Hierarchy>> = OnceLock::new();
    if let Some(h) = HOST.get() {
        return Ok(h);
    }
    let found = from_mounts(&mountinfo::read()?);
    if found.is_empty() {
        return Err(CgroupError::NoHierarchy);
    }
    Ok(HOST.get_or_init(|| found))
}

/// A pure cgroup v2 host: the unified hierarchy and nothing else.
pub fn pure_v2() -> Result<bool, CgroupError> {
    Ok(host()?.iter().all(|h| h.kind == Kind::V2))
}

/// Super options of a v1 mount that are not controller names.
const V1_NON_CONTROLLER_OPTS: &[&str] = &[
    "rw",
    "ro",
    "noprefix",
    "clone_children",
    "xattr",
    "cpuset_v2_mode",
    "favordynmods",
];

/// The cgroup hierarchies among `mounts`. The same hierarchy mounted twice
/// (same device) is listed once, at its first mount point; a second
/// cgroup2 mount is ignored likewise.
pub fn from_mounts(mounts: &[MountInfo]) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    let mut seen_dev: Vec<&str> = Vec::new();
    for m in mounts {
        let v2 = match m.fstype.as_str() {
            "cgroup" => false,
            "cgroup2" => true,
            _ => continue,
        };
        if seen_dev.contains(&m.dev.as_str()) || (v2 && out.iter().any(|h| h.kind == Kind::V2)) {
            continue;
        }
        seen_dev.push(&m.dev);
        let kind = if v2 {
            Kind::V2
        } else {
            let mut noprefix = false;
            let controllers = m
                .super_opts
                .split(',')
                .filter(|o| {
                    noprefix |= *o == "noprefix";
                    !V1_NON_CONTROLLER_OPTS.contains(o) && !o.starts_with("release_agent=")
                })
                .map(str::to_owned)
                .collect();
            Kind::V1 {
                controllers,
                noprefix,
            }
        };
        out.push(Hierarchy {
            mount: m.mount_point.clone(),
            kind,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
        from_mounts(&mountinfo::parse(text))
    }

    fn v1(mount: &str, ctrl: &[&str]) -> Hierarchy {
        Hierarchy {
            mount: mount.into(),
            kind: Kind::V1 {
                controllers: ctrl.iter().map(|s| s.to_string()).collect(),
                noprefix: false,
            },
        }
    }
    fn v2(mount: &str) -> Hierarchy {
        Hierarchy {
            mount: mount.into(),
            kind: Kind::V2,
        }
    }

    /// This development machine: v1 per controller (cpu and cpuacct apart),
    /// a named systemd hierarchy, and cgroup2 at /sys/fs/cgroup/unified.
    const HYBRID: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_host() {
        let h = parse_mountinfo(HYBRID);
        let want = vec![
            v1("/sys/fs/cgroup/cpu", &["cpu"]),
            v1("/sys/fs/cgroup/cpuacct", &["cpuacct"]),
            v1("/sys/fs/cgroup/cpuset", &["cpuset"]),
            v1("/sys/fs/cgroup/memory", &["memory"]),
            v1("/sys/fs/cgroup/devices", &["devices"]),
            v1("/sys/fs/cgroup/freezer", &["freezer"]),
            v1("/sys/fs/cgroup/blkio", &["blkio"]),
            v1("/sys/fs/cgroup/pids", &["pids"]),
            v1("/sys/fs/cgroup/systemd", &["name=systemd"]),
            v2("/sys/fs/cgroup/unified"),
        ];
        assert_eq!(h, want);
        assert!(h[2].has_controller("cpuset"));
    }

    #[test]
    fn pure_v2_host() {
        let text = "\
24 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
27 24 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
        assert_eq!(parse_mountinfo(text), vec![v2("/sys/fs/cgroup")]);
    }

    #[test]
    fn v1_comounted_named_and_duplicate_mounts() {
        // Optional fields (shared:N) before the separator; cpu,cpuacct
        // co-mounted and bind-mounted a second time (same device, skipped);
        // a named hierarchy without controllers; noprefix cpuset with a
        // release agent; a mount point with an escaped space.
        let text = "\
25 24 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:10 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
28 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:11 - cgroup cgroup rw,cpu,cpuacct
29 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw shared:12 master:3 - cgroup cgroup rw,net_cls,net_prio
30 25 0:28 / /sys/fs/cgroup/my\\040cpuset rw - cgroup cgroup rw,noprefix,cpuset,clone_children
31 1 0:26 / /mnt/again rw - cgroup cgroup rw,cpu,cpuacct
";
        let mut cpuset = v1("/sys/fs/cgroup/my cpuset", &["cpuset"]);
        cpuset.kind = Kind::V1 {
            controllers: vec!["cpuset".into()],
            noprefix: true,
        };
        assert_eq!(
            parse_mountinfo(text),
            vec![
                v1("/sys/fs/cgroup/systemd", &["name=systemd"]),
                v1("/sys/fs/cgroup/cpu,cpuacct", &["cpu", "cpuacct"]),
                v1("/sys/fs/cgroup/net_cls,net_prio", &["net_cls", "net_prio"]),
                cpuset,
            ]
        );
    }

    #[test]
    fn no_cgroup_mounts_and_garbage() {
        assert!(parse_mountinfo("").is_empty());
        assert!(parse_mountinfo("garbage line\n1 2 3\n").is_empty());
        assert!(parse_mountinfo("22 1 0:21 / /proc rw - proc proc rw\n").is_empty());
    }
}
