//! `capsa spec`: the default config.json, runc's shape (a busybox-friendly
//! `sh` with a terminal, the usual mounts, masked and read-only paths).

use serde_json::{Value, json};

use crate::state::OCI_VERSION;

const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The default spec; `rootless` maps the caller's uid/gid to root in a user
/// namespace and drops what an unprivileged user cannot set up. It has a
/// cgroup namespace only on a pure cgroup v2 host, as runc's does.
pub fn default_spec(rootless: bool, uid: u32, gid: u32) -> Value {
    let mut spec = json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
                "ambient": DEFAULT_CAPS
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "capsa",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if rootless {
        let linux = &mut spec["linux"];
        linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        linux["namespaces"] = json!([
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
            {"type": "mount"}, {"type": "cgroup"}, {"type": "user"}
        ]);
        if let Some(o) = linux.as_object_mut() {
            o.remove("resources");
        }
        // runc's ToRootless: an unprivileged user can neither mount sysfs
        // without a net namespace nor pick gid=5 (unmapped) for devpts:
        // bind the host's /sys instead, and drop the gid. (Indexing a JSON
        // object mutably would add the key: only look at existing ones.)
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            for m in mounts.iter_mut() {
                if m["type"] == "sysfs" {
                    *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
                }
                let devpts = m["type"] == "devpts";
                if let (true, Some(opts)) =
                    (devpts, m.get_mut("options").and_then(|o| o.as_array_mut()))
                {
                    opts.retain(|o| o != "gid=5");
                }
            }
        }
    }
    // As runc's template: a cgroup namespace only on a pure cgroup v2 host.
    // On v1 or hybrid an exec'd process would see the unified hierarchy at
    // "/" instead of the container's path.
    if !crate::cgroups::hierarchy::pure_v2().unwrap_or(false)
        && let Some(ns) = spec["linux"]["namespaces"].as_array_mut()
    {
        ns.retain(|n| n["type"] != "cgroup");
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_and_validates() {
        for rootless in [false, true] {
            let v = default_spec(rootless, 1000, 1000);
            let spec: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();
            assert_eq!(
                spec.process().as_ref().unwrap().args().as_ref().unwrap()[0],
                "sh"
            );
        }
    }

    /// runc's `spec --rootless` (runc 1.1.5, as root with uid/gid 0),
    /// against ours: the same but for what capsa deliberately differs in
    /// for both kinds of spec (ociVersion, hostname, a cgroup namespace).
    #[test]
    fn rootless_spec_is_runcs() {
        let mut ours = default_spec(true, 1000, 1001);
        ours["ociVersion"] = json!("1.0.2-dev");
        ours["hostname"] = json!("runc");
        if let Some(ns) = ours["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "cgroup");
        }
        let mut runc = default_spec(false, 0, 0);
        runc["ociVersion"] = json!("1.0.2-dev");
        runc["hostname"] = json!("runc");
        let l = &mut runc["linux"];
        l["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        l["gidMappings"] = json!([{"containerID": 0, "hostID": 1001, "size": 1}]);
        l["namespaces"] = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                                 {"type": "mount"}, {"type": "user"}]);
        if let Some(o) = l.as_object_mut() {
            o.remove("resources");
        }
        runc["mounts"][2]["options"] = json!([
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620"
        ]);
        runc["mounts"][5] = json!({"destination": "/sys", "type": "none", "source": "/sys",
                                   "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        assert_eq!(ours, runc);
    }
}
