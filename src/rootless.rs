//! Rootless mode, with runc's rules: when it applies (`--rootless
//! auto|true|false`, which like runc's decides the cgroup rules), where the
//! state lives when the caller is not root (`$XDG_RUNTIME_DIR/capsa`), and
//! what the config of a caller that is not root must have (a user
//! namespace with id maps). What rootless changes elsewhere: the id maps
//! are written directly or through newuidmap/newgidmap (namespaces.rs), a
//! cgroup is made only where the user may (runtime/create.rs), rlimits are
//! checked against the caller's own (`check_rlimits`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// The system-wide state root (root, not in a user namespace).
pub const SYSTEM_ROOT: &str = "/run/capsa";

#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error(
        "rootless: XDG_RUNTIME_DIR is not set: capsa keeps a non-root user's container state in $XDG_RUNTIME_DIR/capsa; set XDG_RUNTIME_DIR to a directory you own (such as /run/user/{uid}) or pass --root"
    )]
    NoXdg { uid: u32 },
    #[error(
        "rootless: XDG_RUNTIME_DIR={dir:?} cannot hold capsa's state ({why}); set XDG_RUNTIME_DIR to a directory you own (such as /run/user/{uid}) or pass --root"
    )]
    BadXdg { dir: PathBuf, why: String, uid: u32 },
    /// Limits asked for, and no cgroup the user may make (runc 1.1: "cannot
    /// set X limit: container could not join or create cgroup").
    #[error(
        "config.json: linux.resources.{field}: a rootless container's limits need a cgroup it may write, and there is none ({why}); remove the limits, or give the user a delegated cgroup v2 subtree"
    )]
    NoCgroupForLimits { field: String, why: String },
    /// An explicit linux.cgroupsPath the user may not make.
    #[error(
        "config.json: linux.cgroupsPath: a rootless container cannot use this cgroup ({why}); leave linux.cgroupsPath out to run without a cgroup of its own"
    )]
    CgroupPath { why: String },
}

/// runc's auto-detection: rootless when not root, or root of a user
/// namespace other than the initial one (`unshare -r`).
pub fn detect() -> bool {
    !nix::unistd::geteuid().is_root() || in_user_namespace()
}

/// Whether this process runs in a user namespace other than the initial
/// one (whose uid_map is the whole 32-bit range mapped onto itself).
pub fn in_user_namespace() -> bool {
    // Read once per command (the default root and the cgroup rules both ask).
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            let f: Vec<&str> = map.split_whitespace().collect();
            f != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    })
}

/// The caller's uid on the host: its euid, or in a user namespace (root
/// of podman's, say) the id that euid maps to outside it, which is who
/// the session bus and the user's systemd see (SO_PEERCRED).
pub fn host_uid() -> u32 {
    let euid = nix::unistd::geteuid().as_raw();
    if !in_user_namespace() {
        return euid;
    }
    std::fs::read_to_string("/proc/self/uid_map")
        .ok()
        .and_then(|m| outside_id(&m, euid))
        .unwrap_or(euid)
}

/// Where `id` of a user namespace maps to outside it, by its uid_map text.
fn outside_id(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [inside, outside, count] = f[..] else {
            return None;
        };
        let id = u64::from(id);
        (inside <= id && id < inside + count)
            .then(|| u32::try_from(outside + (id - inside)).ok())
            .flatten()
    })
}

/// runc's shouldHonorXDGRuntimeDir: a non-root user, or root of a user
/// namespace whose USER is not root (a rootless engine's helper).
fn honour_xdg() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return true;
    }
    std::env::var("USER").map_or(true, |u| u != "root") && in_user_namespace()
}

/// The state root when --root is not given: /run/capsa for root, else
/// `$XDG_RUNTIME_DIR/capsa` (made mode 0700 and sticky, as XDG asks for
/// files there and runc does). A non-root caller without a usable
/// XDG_RUNTIME_DIR gets an error instead of a root it cannot write.
pub fn default_root() -> Result<PathBuf, RootlessError> {
    if !honour_xdg() {
        return Ok(PathBuf::from(SYSTEM_ROOT));
    }
    let uid = nix::unistd::geteuid().as_raw();
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty());
    let Some(xdg) = xdg.map(PathBuf::from) else {
        if nix::unistd::geteuid().is_root() {
            return Ok(PathBuf::from(SYSTEM_ROOT));
        }
        return Err(RootlessError::NoXdg { uid });
    };
    let bad = |why: String| RootlessError::BadXdg {
        dir: xdg.clone(),
        why,
        uid,
    };
    if !xdg.is_absolute() {
        return Err(bad("not an absolute path".into()));
    }
    match std::fs::metadata(&xdg) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(bad("not a directory".into())),
        Err(e) => return Err(bad(errtext(&e))),
    }
    let root = xdg.join("capsa");
    make_root(&root).map_err(|e| bad(format!("{}: {}", root.display(), errtext(&e))))?;
    Ok(root)
}

/// An I/O error's text without Rust's "(os error N)".
fn errtext(e: &std::io::Error) -> String {
    crate::sys::io_errno(e).desc().to_lowercase()
}

fn make_root(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o1700))
}

/// What a rootless container's config must have (runc's
/// rootlessEUIDCheck, and its words): a user namespace, new or joined,
/// and for a new one both id lists or neither (see bundle.rs). Pure.
pub fn check_spec(spec: &Spec) -> Result<(), (String, String)> {
    let linux = spec.linux().as_ref();
    let ns = linux.and_then(|l| l.namespaces().as_ref());
    let user = ns
        .into_iter()
        .flatten()
        .find(|n| n.typ() == LinuxNamespaceType::User);
    let Some(user) = user else {
        return Err((
            "linux.namespaces".into(),
            "rootless container requires user namespaces (add {\"type\": \"user\"} with linux.uidMappings and linux.gidMappings; `capsa spec --rootless` writes such a config)".into(),
        ));
    };
    if user.path().is_some() {
        return Ok(());
    }
    let empty = |m: Option<&Vec<_>>| m.is_none_or(|m| m.is_empty());
    let (no_uids, no_gids) = (
        empty(linux.and_then(|l| l.uid_mappings().as_ref())),
        empty(linux.and_then(|l| l.gid_mappings().as_ref())),
    );
    if no_uids && no_gids {
        // Neither list: our own ids become root of the namespace (bundle.rs,
        // crun's default), a map we may write without the helpers.
        return Ok(());
    }
    if no_uids {
        return Err((
            "linux.uidMappings".into(),
            "rootless containers requires at least one UID mapping".into(),
        ));
    }
    if no_gids {
        return Err((
            "linux.gidMappings".into(),
            "rootless containers requires at least one GID mapping".into(),
        ));
    }
    Ok(())
}

/// Writing a user namespace's id maps as a user who is not root.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error(
        "{field}: {helper}: not installed (Debian package uidmap); a non-root user needs it for any mapping other than a single one of its own id ({found})"
    )]
    NoHelper {
        field: &'static str,
        helper: &'static str,
        found: String,
    },
    #[error("{field}: {cmd}: {msg}")]
    Helper {
        field: &'static str,
        cmd: String,
        msg: String,
    },
    #[error("{field}: writing {path}: {source}")]
    Write {
        field: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Whether `map` (a /proc/PID/uid_map text) is the one mapping an
/// unprivileged process may write itself: one line, of size 1, onto `own`.
fn single_own(map: &str, own: u32) -> bool {
    let mut lines = map.lines();
    let first: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let own = own.to_string();
    lines.next().is_none() && first.len() == 3 && first[1] == own && first[2] == "1"
}

/// Write the id maps of the new user namespace of `pid` as a caller that
/// is not root: a single mapping of the caller's own id directly (for the
/// gids, after denying setgroups, which the kernel requires of an
/// unprivileged writer), anything else through the setuid helpers
/// newuidmap/newgidmap, which allow the caller's ranges in /etc/subuid and
/// /etc/subgid (runc and crun do the same). setgroups stays allowed when
/// newgidmap writes the gids: the container may then set its groups.
pub fn write_maps(pid: i32, uid_map: &str, gid_map: &str) -> Result<(), MapError> {
    let write = |field, file: &str, text: &str| {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, text).map_err(|source| MapError::Write {
            field,
            path,
            source,
        })
    };
    if single_own(uid_map, nix::unistd::geteuid().as_raw()) {
        write("linux.uidMappings", "uid_map", uid_map)?;
    } else {
        helper("linux.uidMappings", "newuidmap", pid, uid_map)?;
    }
    if single_own(gid_map, nix::unistd::getegid().as_raw()) {
        write("linux.gidMappings", "setgroups", "deny")?;
        write("linux.gidMappings", "gid_map", gid_map)?;
    } else {
        helper("linux.gidMappings", "newgidmap", pid, gid_map)?;
    }
    Ok(())
}

/// Where a helper binary is: the first of $PATH's directories (engines may
/// call us with no PATH at all) and the usual system ones that has it.
fn find_helper(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs: Vec<&str> = path
        .split(':')
        .filter(|d| d.starts_with('/'))
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"])
        .collect();
    dirs.iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("looked in {}", dirs.join(":")))
}

/// Run `newuidmap PID inside outside count...` (or newgidmap); its own
/// words on failure ("uid range [0-65536) -> [..) not allowed").
fn helper(field: &'static str, name: &'static str, pid: i32, map: &str) -> Result<(), MapError> {
    let exe = find_helper(name).map_err(|found| MapError::NoHelper {
        field,
        helper: name,
        found,
    })?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg(pid.to_string())
        .args(map.split_whitespace())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    let text = format!(
        "{} {pid} {}",
        exe.display(),
        map.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    let out = cmd.output().map_err(|e| MapError::Helper {
        field,
        cmd: text.clone(),
        msg: e.to_string().to_lowercase(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    Err(MapError::Helper {
        field,
        cmd: text,
        msg: if stderr.is_empty() {
            format!("failed ({})", out.status)
        } else {
            format!("{stderr} ({})", out.status)
        },
    })
}

/// A rootless container may lower its rlimits but not raise a hard limit
/// above the caller's (that needs CAP_SYS_RESOURCE on the host): refused
/// here, naming the entry, instead of an EPERM from the init. Pure apart
/// from reading the caller's own limits.
pub fn check_rlimits(process: &oci_spec::runtime::Process) -> Result<(), (String, String)> {
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        let res = crate::security::rlimit_resource(r.typ());
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: cur is a valid rlimit struct for the duration of the call.
        if unsafe { libc::getrlimit(res, &mut cur) } != 0 {
            continue;
        }
        if cur.rlim_max != libc::RLIM_INFINITY && r.hard() > cur.rlim_max {
            return Err((
                format!("process.rlimits[{i}]"),
                format!(
                    "{} hard limit {} is above this user's hard limit {}: a rootless container cannot raise it",
                    r.typ(),
                    r.hard(),
                    cur.rlim_max
                ),
            ));
        }
    }
    Ok(())
}

/// The first linux.resources field that needs a cgroup controller (device
/// rules do not: a rootless container gets no device cgroup, as in runc,
/// and can reach no device its user could not). Pure.
pub fn resource_needing_cgroup(linux: &oci_spec::runtime::Linux) -> Option<String> {
    let r = linux.resources().as_ref()?;
    let v = serde_json::to_value(r).ok()?;
    let obj = v.as_object()?;
    obj.iter()
        .filter(|(k, _)| k.as_str() != "devices")
        .find(|(_, v)| match v {
            serde_json::Value::Null => false,
            serde_json::Value::Array(a) => !a.is_empty(),
            serde_json::Value::Object(o) => o.values().any(|v| !v.is_null()),
            _ => true,
        })
        .map(|(k, _)| k.clone())
}

/// A rootless container's cgroupsPath when it gives none or a relative
/// one: below the parent of the caller's own cgroup on a pure cgroup v2
/// host (runc's rule: a user session's delegated subtree, such as systemd's
/// user@UID.service, holds the caller in a leaf of it), else as given.
pub fn cgroups_path(given: Option<&str>, id: &str, own_unified: Option<&str>) -> Option<String> {
    let rel = match given {
        Some(p) if p.starts_with('/') => return Some(p.to_owned()),
        Some(p) => p,
        None => id,
    };
    let own = own_unified?;
    let parent = Path::new(own).parent().unwrap_or(Path::new("/"));
    Some(parent.join(rel).to_string_lossy().into_owned())
}

/// This process's cgroup on the unified hierarchy ("0::/path" in
/// /proc/self/cgroup), on a pure v2 host only.
pub fn own_unified_cgroup() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut lines = text.lines();
    let first = lines.next()?;
    if lines.next().is_some() {
        return None; // v1 hierarchies too: not a pure v2 host
    }
    first.strip_prefix("0::").map(str::to_owned)
}

/// Whether a cgroup error is the kernel saying the user may not make or
/// use the cgroup (no delegation), rather than anything else.
pub fn is_permission(e: &crate::cgroups::CgroupError) -> bool {
    use nix::errno::Errno;
    matches!(e, crate::cgroups::CgroupError::Sys(s)
        if matches!(s.errno, Errno::EACCES | Errno::EPERM | Errno::EROFS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_own_mapping() {
        assert!(single_own("0 1000 1\n", 1000));
        assert!(!single_own("0 1000 1\n", 999));
        assert!(!single_own("0 1000 2\n", 1000));
        assert!(!single_own("0 1000 1\n1 100000 65536\n", 1000));
        assert!(!single_own("", 1000));
    }

    #[test]
    fn ids_outside_the_namespace() {
        let map = "         0       1000          1\n         1     300000      65536\n";
        assert_eq!(outside_id(map, 0), Some(1000));
        assert_eq!(outside_id(map, 1), Some(300000));
        assert_eq!(outside_id(map, 65536), Some(365535));
        assert_eq!(outside_id(map, 65537), None);
        assert_eq!(outside_id("", 0), None);
    }

    #[test]
    fn rootless_cgroups_path() {
        let own = Some("/user.slice/user@1000.service/app.slice/term.scope");
        assert_eq!(
            cgroups_path(None, "c1", own).as_deref(),
            Some("/user.slice/user@1000.service/app.slice/c1")
        );
        assert_eq!(
            cgroups_path(Some("x/y"), "c1", own).as_deref(),
            Some("/user.slice/user@1000.service/app.slice/x/y")
        );
        assert_eq!(
            cgroups_path(Some("/abs"), "c1", own).as_deref(),
            Some("/abs")
        );
        assert_eq!(cgroups_path(None, "c1", Some("/")).as_deref(), Some("/c1"));
        assert_eq!(cgroups_path(None, "c1", None), None);
    }

    #[test]
    fn resources_that_need_a_cgroup() {
        let linux = |r: serde_json::Value| -> oci_spec::runtime::Linux {
            serde_json::from_value(serde_json::json!({ "resources": r })).expect("linux")
        };
        let devices = serde_json::json!({"devices": [{"allow": false, "access": "rwm"}]});
        assert_eq!(resource_needing_cgroup(&linux(devices)), None);
        assert_eq!(resource_needing_cgroup(&linux(serde_json::json!({}))), None);
        let pids = serde_json::json!({"pids": {"limit": 10}});
        assert_eq!(
            resource_needing_cgroup(&linux(pids)).as_deref(),
            Some("pids")
        );
    }
}
