//! `capsa features`: runtime-spec features.md, listing only what capsa
//! really implements today (engines turn features on from this).

use serde_json::{Value, json};

use crate::state::OCI_VERSION;

pub fn features() -> Value {
    let caps: Vec<String> = {
        let mut v: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    };
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": crate::rootfs::mount_options(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": true, "rdma": false},
            "seccomp": crate::security::seccomp::features(),
            "apparmor": {"enabled": crate::security::lsm::apparmor_enabled()},
            "selinux": {"enabled": crate::security::lsm::selinux_enabled()},
            "intelRdt": {"enabled": false, "schemata": false, "monitoring": false},
            "memoryPolicy": {
                "modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                          "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
            },
            "netDevices": {"enabled": true},
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": {
            "io.github.capsa.version": env!("CARGO_PKG_VERSION"),
            "io.github.capsa.checkpoint": crate::checkpoint::FEATURES
        }
    })
}
