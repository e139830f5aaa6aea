//! What CRIU must be told about a container because it cannot see it from
//! inside: mounts whose source is outside the container (bind mounts, the
//! /dev/null over masked files, device nodes bound from the host),
//! namespaces joined by path, and the init's stdio (descriptors.json). The
//! keys are runc's, so images move between runc and capsa.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::CriuError;

/// The devices every container gets (runtime-spec's defaults): created by
/// mknod, or bound from the host in a user namespace.
const DEFAULT_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_ref()
            .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
}

/// (destination in the container, source on the host) of every bind mount;
/// a relative source is relative to the bundle (runtime-spec).
pub fn bind_mounts(spec: &Spec, bundle: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten().filter(|m| is_bind(m)) {
        let dest = m.destination().to_string_lossy().into_owned();
        let src = m.source().clone().unwrap_or_default();
        let src = if src.is_absolute() {
            src
        } else {
            bundle.join(src)
        };
        out.push((dest, src));
    }
    out
}

fn device_paths(spec: &Spec) -> Vec<String> {
    let mut out: Vec<String> = DEFAULT_DEVICES.iter().map(|s| s.to_string()).collect();
    let devs = spec.linux().as_ref().and_then(|l| l.devices().clone());
    for d in devs.iter().flatten() {
        let p = d.path().to_string_lossy().into_owned();
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn masked_paths(spec: &Spec) -> Vec<String> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
}

/// ext_mnt for a dump: each external mount named by its path in the
/// container; masked files by "/dev/null", the host file bound over them
/// (runc: a masked path that is a directory is a tmpfs CRIU dumps itself).
pub fn dump_mounts(spec: &Spec, bundle: &Path, init: i32) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = bind_mounts(spec, bundle)
        .into_iter()
        .map(|(d, _)| (d.clone(), d))
        .collect();
    for p in masked_paths(spec) {
        let inside = format!("/proc/{init}/root{p}");
        match std::fs::metadata(&inside) {
            Ok(m) if !m.is_dir() => out.push((p, "/dev/null".into())),
            _ => {}
        }
    }
    for p in device_paths(spec) {
        out.push((p.clone(), p));
    }
    out
}

/// ext_mnt for a restore: each name the dump gave, mapped to the host path
/// to mount there (bind sources of this bundle's config.json).
pub fn restore_mounts(spec: &Spec, bundle: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = bind_mounts(spec, bundle)
        .into_iter()
        .map(|(d, s)| (d, s.to_string_lossy().into_owned()))
        .collect();
    if !masked_paths(spec).is_empty() {
        out.push(("/dev/null".into(), "/dev/null".into()));
    }
    for p in device_paths(spec) {
        out.push((p.clone(), p));
    }
    out
}

/// The namespaces CRIU treats as external when joined by path (runc: the
/// network and pid namespaces), with CRIU's kind name and runc's key.
fn external_kinds() -> [(LinuxNamespaceType, &'static str, &'static str); 2] {
    [
        (LinuxNamespaceType::Network, "net", "extRootNetNS"),
        (LinuxNamespaceType::Pid, "pid", "extRootPidNS"),
    ]
}

fn joined(spec: &Spec, kind: LinuxNamespaceType) -> Option<PathBuf> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|n| n.typ() == kind)?
        .path()
        .clone()
}

/// `external` entries for a dump: "net[<inode>]:extRootNetNS" for a
/// joined network namespace, the same for pid.
pub fn dump_namespaces(spec: &Spec) -> Result<Vec<String>, CriuError> {
    let mut out = Vec::new();
    for (kind, name, key) in external_kinds() {
        let Some(path) = joined(spec, kind) else {
            continue;
        };
        let ino = std::fs::metadata(&path)
            .map_err(|e| CriuError::Path {
                op: "stat",
                path: path.clone(),
                msg: format!("{e} (linux.namespaces path)"),
            })?
            .ino();
        out.push(format!("{name}[{ino}]:{key}"));
    }
    Ok(out)
}

/// "<dev>:<inode>" of the network namespace joined by path, if any.
///
/// A dump leaves CRIU's network lock (iptables chain CRIU: drop all but its
/// own marked packets) in the container's network namespace, since CRIU
/// expects it to die with the container; one joined by path outlives it,
/// lock included. A restore told that namespace is empty (`empty_ns`, as
/// runc always says) locks it again, and its unlock, which removes one
/// lock, then fails (iptables-restore: CHAIN_DEL ... busy, exit 4): the
/// restored connections stay locked for good. The dump records the
/// namespace (NETNS_LOCK) so that a restore into that same namespace
/// leaves the lock to the one in place.
pub fn netns_id(spec: &Spec) -> Option<String> {
    let m = std::fs::metadata(joined(spec, LinuxNamespaceType::Network)?).ok()?;
    Some(format!("{}:{}", m.dev(), m.ino()))
}

/// For a restore: (key, open namespace) for each namespace joined by path;
/// CRIU gets the descriptor and an inherit_fd naming it.
pub fn restore_namespaces(spec: &Spec) -> Result<Vec<(&'static str, OwnedFd)>, CriuError> {
    let mut out = Vec::new();
    for (kind, _, key) in external_kinds() {
        let Some(path) = joined(spec, kind) else {
            continue;
        };
        let fd = nix::fcntl::open(
            &path,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| CriuError::Path {
            op: "open",
            path: path.clone(),
            msg: format!("{} (linux.namespaces path)", e.desc()),
        })?;
        out.push((key, fd));
    }
    Ok(out)
}

/// The init's fds 0-2 as /proc names them ("pipe:[123]", "/dev/null"...):
/// runc's descriptors.json, read back by restore to hand CRIU the caller's
/// pipes in their place.
pub fn descriptors(init: i32) -> Vec<String> {
    (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{init}/fd/{fd}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect()
}

/// inherit_fd entries for a restore: each pipe the init had as fd i is
/// CRIU's own fd i (our stdio, which CRIU inherits).
pub fn inherit_stdio(descriptors: &[String]) -> Vec<(String, i32)> {
    descriptors
        .iter()
        .enumerate()
        .filter(|(_, d)| d.contains("pipe:"))
        .map(|(i, d)| (d.clone(), i as i32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_only_are_inherited() {
        let d = vec![
            "/dev/null".to_string(),
            "pipe:[12]".to_string(),
            "pipe:[13]".to_string(),
        ];
        assert_eq!(
            inherit_stdio(&d),
            vec![("pipe:[12]".to_string(), 1), ("pipe:[13]".to_string(), 2)]
        );
    }

    #[test]
    fn netns_id_only_for_a_joined_network_namespace() {
        let spec = |ns: serde_json::Value| -> Spec {
            serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2", "root": {"path": "rootfs"},
                "linux": {"namespaces": [ns]}
            }))
            .expect("spec")
        };
        let m = std::fs::metadata("/proc/self/ns/net").expect("stat netns");
        let joined = spec(serde_json::json!({"type": "network", "path": "/proc/self/ns/net"}));
        assert_eq!(netns_id(&joined), Some(format!("{}:{}", m.dev(), m.ino())));
        assert_eq!(
            netns_id(&spec(serde_json::json!({"type": "network"}))),
            None
        );
        let gone = spec(serde_json::json!({"type": "network", "path": "/nonexistent/ns"}));
        assert_eq!(netns_id(&gone), None);
    }

    #[test]
    fn binds_and_devices() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/data", "source": "data", "options": ["rbind"]},
                {"destination": "/proc", "type": "proc", "source": "proc"}
            ],
            "linux": {"maskedPaths": ["/proc/kcore"],
                      "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}
        }))
        .expect("spec");
        let r = restore_mounts(&spec, Path::new("/b"));
        assert_eq!(r[0], ("/data".into(), "/b/data".into()));
        assert!(r.contains(&("/dev/null".into(), "/dev/null".into())));
        assert!(r.contains(&("/dev/fuse".into(), "/dev/fuse".into())));
        assert!(!r.iter().any(|(k, _)| k == "/proc"));
    }
}
