//! Reading a bundle: config.json is parsed once (errors name the JSON path of
//! the bad field) and validated completely in the parent, before any fork, so
//! the init only carries out a plan it cannot refuse for a reason we could
//! have known earlier.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::console::{ConsoleError, ConsoleSize};
use crate::process::attrs::{AttrsError, ProcAttrs, Role};
use crate::security::CapSets;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {path}: {msg}")]
    Bundle { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("config.json: {field}: {msg}")]
    Invalid { field: String, msg: String },
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> BundleError {
    BundleError::Invalid {
        field: field.into(),
        msg: msg.into(),
    }
}

/// The hook kinds of runtime-spec config.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

/// A namespace to join by path.
#[derive(Debug, Clone)]
pub struct Join {
    pub kind: LinuxNamespaceType,
    pub flag: CloneFlags,
    pub path: PathBuf,
    /// Index in linux.namespaces, for error messages.
    pub index: usize,
}

/// Everything derived from config.json that the parent and the init need.
#[derive(Debug)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    /// Absolute, canonical path of the root filesystem.
    pub rootfs: PathBuf,
    pub spec: Spec,
    /// Namespaces to create.
    pub new_ns: CloneFlags,
    /// Namespaces to join, the user namespace first.
    pub join: Vec<Join>,
    /// The init ends up in a user namespace other than the host's.
    pub userns: bool,
    /// The init ends up in a mount namespace other than the runtime's.
    pub mount_ns: bool,
    pub uid_map: String,
    pub gid_map: String,
    /// The workload process, prepared for the init.
    pub plan: ProcessPlan,
    /// linux.seccomp, compiled to BPF (None: no filter).
    pub seccomp: Option<crate::security::seccomp::Filter>,
    /// linux.netDevices, checked: moved in once the init exists.
    pub net_devices: Vec<crate::netdev::NetDevice>,
}

/// A process to start in a container (config.json's `process`, or an
/// `exec`'s), checked and converted before any fork.
#[derive(Debug, Clone)]
pub struct ProcessPlan {
    /// process.args and process.env as C strings (checked for NUL here).
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub caps: CapSets,
    /// personality, memory policy, I/O priority, scheduler, CPU affinity.
    pub attrs: ProcAttrs,
    /// process.consoleSize, for the pty of a process with a terminal.
    pub console_size: Option<ConsoleSize>,
}

impl ProcessPlan {
    /// Validate `process` (field names under `prefix`, e.g. "process"), with
    /// the container's `linux` section for the attributes it holds.
    pub fn new(
        process: &oci_spec::runtime::Process,
        prefix: &str,
        linux: Option<&oci_spec::runtime::Linux>,
        role: Role,
    ) -> Result<ProcessPlan, BundleError> {
        let args = process
            .args()
            .as_ref()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| invalid(format!("{prefix}.args"), "args must not be empty"))?;
        let args = to_cstrings(args, &format!("{prefix}.args"))?;
        let env_list = process.env().as_deref().unwrap_or(&[]);
        check_env(env_list, prefix)?;
        let env = to_cstrings(&dedup_env(env_list), &format!("{prefix}.env"))?;
        if process.cwd().as_os_str().is_empty() {
            return Err(invalid(
                format!("{prefix}.cwd"),
                "Cwd property must not be empty",
            ));
        }
        if !process.cwd().is_absolute() {
            return Err(invalid(
                format!("{prefix}.cwd"),
                "Cwd must be an absolute path",
            ));
        }
        for (i, r) in process.rlimits().iter().flatten().enumerate() {
            if r.soft() > r.hard() {
                return Err(invalid(
                    format!("{prefix}.rlimits[{i}]"),
                    format!("soft limit {} is above hard limit {}", r.soft(), r.hard()),
                ));
            }
        }
        let caps = CapSets::from_spec(process.capabilities().as_ref())
            .map_err(|msg| invalid(format!("{prefix}.capabilities"), msg))?;
        crate::security::lsm::check(process, prefix).map_err(|(f, m)| invalid(f, m))?;
        crate::limits::check_process(process, prefix).map_err(|(f, m)| invalid(f, m))?;
        // A user namespace (new or joined) starts with every capability in
        // its own bounding set: only a container without one is limited to
        // the runtime's.
        let own_userns = linux.is_some_and(|l| {
            l.namespaces()
                .iter()
                .flatten()
                .any(|n| n.typ() == LinuxNamespaceType::User)
        });
        if !own_userns {
            caps.check_grantable().map_err(|(set, cap)| {
                invalid(
                    format!("{prefix}.capabilities.{set}"),
                    format!(
                        "{cap} is not in the runtime's bounding set: this host does not grant it"
                    ),
                )
            })?;
        }
        let attrs = ProcAttrs::new(process, linux, role).map_err(|e| match e {
            AttrsError::Invalid { field, msg } => invalid(field, msg),
            e => invalid(prefix, e.to_string()),
        })?;
        let console_size = match process.console_size() {
            Some(b) => Some(
                ConsoleSize::new(b.height(), b.width()).map_err(|e| match e {
                    ConsoleError::Size { field, value } => invalid(
                        format!("{prefix}.consoleSize.{field}"),
                        format!("{value} is out of range (0 to 65535)"),
                    ),
                    e => invalid(format!("{prefix}.consoleSize"), e.to_string()),
                })?,
            ),
            None => None,
        };
        Ok(ProcessPlan {
            args,
            env,
            caps,
            attrs,
            console_size,
        })
    }
}

impl Bundle {
    /// Load and validate `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let dir = fs::canonicalize(dir).map_err(|e| BundleError::Bundle {
            path: dir.to_path_buf(),
            msg: e.to_string().to_lowercase(),
        })?;
        let spec = Self::read_spec(&dir)?;
        Self::from_spec(dir, spec)
    }

    /// Parse `dir/config.json` (no validation).
    pub fn read_spec(dir: &Path) -> Result<Spec, BundleError> {
        Self::read_spec_file(&dir.join("config.json"))
    }

    /// Parse the config file at `cfg` (no validation).
    pub fn read_spec_file(cfg: &Path) -> Result<Spec, BundleError> {
        let cfg = cfg.to_path_buf();
        let data = fs::read(&cfg).map_err(|e| BundleError::Parse {
            path: cfg.clone(),
            msg: e.to_string().to_lowercase(),
        })?;
        crate::limits::check_nul(&data).map_err(|(f, m)| invalid(f, m))?;
        let mut spec: Spec = crate::spec_compat::from_slice(&data).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            // The one required field runc names in its own words.
            if field == "process" && inner.to_string().starts_with("missing field `cwd`") {
                return invalid("process.cwd", "Cwd property must not be empty");
            }
            // runc's words for a bad linux.memoryPolicy, which its suite
            // matches ("invalid memory policy mode" / "... flag").
            if let Some(what) = memory_policy_part(&field, &inner.to_string()) {
                return invalid(field, format!("invalid memory policy {what}: {inner}"));
            }
            BundleError::Parse {
                path: cfg.clone(),
                msg: if field == "." {
                    inner.to_string()
                } else {
                    format!("{field}: {inner}")
                },
            }
        })?;
        if let Some(r) = spec
            .linux_mut()
            .as_mut()
            .and_then(|l| l.resources_mut().as_mut())
        {
            crate::spec_compat::drop_absent_pids_limit(r, &data, "/linux/resources/pids");
        }
        Ok(spec)
    }

    /// Validate a parsed spec for a bundle at `dir` (absolute).
    pub fn from_spec(dir: PathBuf, mut spec: Spec) -> Result<Bundle, BundleError> {
        // `linux` is optional (config.md): without it every namespace is
        // the runtime's and nothing Linux-specific is asked for. Not
        // oci-spec's `Linux::default()`, which lists namespaces and paths.
        if spec.linux().is_none() {
            let empty = serde_json::from_str("{}").map_err(|e| invalid("linux", e.to_string()))?;
            spec.set_linux(Some(empty));
        }
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| invalid("root", "root must be specified"))?;
        // Required by the spec; "" would make the bundle itself the root.
        if root.path().as_os_str().is_empty() {
            return Err(invalid("root.path", "root.path must be set"));
        }
        let rootfs_cfg = if root.path().is_absolute() {
            root.path().clone()
        } else {
            dir.join(root.path())
        };
        let rootfs = fs::canonicalize(&rootfs_cfg).map_err(|e| {
            invalid(
                "root.path",
                format!("{}: {}", rootfs_cfg.display(), e.to_string().to_lowercase()),
            )
        })?;
        if !rootfs.is_dir() {
            return Err(invalid(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ));
        }

        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| invalid("process", "process property must not be empty"))?;
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| invalid("linux", "linux must be set"))?; // set above
        let plan = ProcessPlan::new(process, "process", Some(linux), Role::Init)?;
        crate::limits::check_spec(&spec).map_err(|(f, m)| invalid(f, m))?;

        let mut new_ns = CloneFlags::empty();
        let mut join = Vec::new();
        let mut seen = HashSet::new();
        for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
            let kind = ns.typ();
            if !seen.insert(kind) {
                return Err(invalid(
                    format!("linux.namespaces[{i}].type"),
                    format!("duplicated ns \"{kind}\""),
                ));
            }
            let flag = crate::namespaces::flag(kind);
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    if !p.is_absolute() {
                        return Err(invalid(
                            format!("linux.namespaces[{i}].path"),
                            format!("{} is not an absolute path", p.display()),
                        ));
                    }
                    join.push(Join {
                        kind,
                        flag,
                        path: p.clone(),
                        index: i,
                    });
                }
                _ => new_ns |= flag,
            }
        }
        // The user namespace is joined first: the others may belong to it.
        join.sort_by_key(|j| j.kind != LinuxNamespaceType::User);
        let has = |k: LinuxNamespaceType| seen.contains(&k);
        // Without a mount namespace the container is in the runtime's
        // (inherited, config-linux.md): what would change the host's own
        // mounts is refused, the rest is done there and undone at delete.
        let mount_ns = has(LinuxNamespaceType::Mount);
        if !mount_ns {
            let listed = |p: &Option<Vec<String>>| p.as_ref().is_some_and(|v| !v.is_empty());
            if listed(linux.masked_paths()) || listed(linux.readonly_paths()) {
                // runc's words.
                return Err(invalid(
                    "linux.maskedPaths",
                    "unable to restrict sys entries without a private MNT namespace",
                ));
            }
            // Its mounts would be the host's own, and so would everything
            // delete detaches.
            if rootfs == Path::new("/") {
                return Err(invalid(
                    "root.path",
                    "the runtime's own \"/\" as the rootfs needs a mount namespace",
                ));
            }
            if linux
                .rootfs_propagation()
                .as_ref()
                .is_some_and(|p| !p.is_empty())
            {
                return Err(invalid(
                    "linux.rootfsPropagation",
                    "needs a mount namespace (it would change the propagation of the runtime's \"/\")",
                ));
            }
        }
        if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
            && !has(LinuxNamespaceType::Uts)
        {
            return Err(invalid(
                "hostname",
                "unable to set hostname without a private UTS namespace",
            ));
        }
        if spec.domainname().as_deref().is_some_and(|h| !h.is_empty())
            && !has(LinuxNamespaceType::Uts)
        {
            return Err(invalid(
                "domainname",
                "unable to set domainname without a private UTS namespace",
            ));
        }
        if linux.time_offsets().is_some()
            && !new_ns.contains(crate::namespaces::flag(LinuxNamespaceType::Time))
        {
            return Err(invalid(
                "linux.timeOffsets",
                "time offsets need a new time namespace",
            ));
        }
        // The clocks /proc/PID/timens_offsets takes.
        for clock in linux.time_offsets().iter().flat_map(|o| o.keys()) {
            if !matches!(clock.as_str(), "monotonic" | "boottime") {
                return Err(invalid(
                    format!("linux.timeOffsets.{clock}"),
                    "only monotonic and boottime can be offset",
                ));
            }
        }

        let userns = has(LinuxNamespaceType::User);
        let new_userns = new_ns.contains(CloneFlags::CLONE_NEWUSER);
        let given = |m: &Option<Vec<_>>| m.as_ref().is_some_and(|m| !m.is_empty());
        let (uid_map, gid_map) =
            if new_userns && !given(linux.uid_mappings()) && !given(linux.gid_mappings()) {
                // Neither list: crun's default, the caller's own ids as root of
                // the namespace (the spec makes both lists optional; runc
                // refuses). One list without the other stays refused below.
                crate::namespaces::own_id_maps(
                    nix::unistd::geteuid().as_raw(),
                    nix::unistd::getegid().as_raw(),
                )
            } else if new_userns {
                let uid =
                    crate::namespaces::id_map(linux.uid_mappings().as_deref(), "linux.uidMappings")
                        .map_err(|(f, m)| invalid(f, m))?;
                let gid =
                    crate::namespaces::id_map(linux.gid_mappings().as_deref(), "linux.gidMappings")
                        .map_err(|(f, m)| invalid(f, m))?;
                // The init sets the container up as root of the namespace (runc
                // refuses this too).
                for (map, field) in [(&uid, "linux.uidMappings"), (&gid, "linux.gidMappings")] {
                    if crate::namespaces::host_id(map, 0).is_none() {
                        return Err(invalid(field, "no mapping for container id 0 (root)"));
                    }
                }
                (uid, gid)
            } else {
                let has_maps = given(linux.uid_mappings()) || given(linux.gid_mappings());
                if has_maps && !userns {
                    return Err(invalid(
                        "linux.uidMappings",
                        "id mappings need a user namespace in linux.namespaces",
                    ));
                }
                (String::new(), String::new())
            };

        crate::rootfs::validate(&spec, userns).map_err(|e| match e {
            crate::rootfs::RootfsError::Config { field, msg } => invalid(field, msg),
            other => invalid("mounts", other.to_string()),
        })?;

        let host_netns = join
            .iter()
            .find(|j| j.kind == LinuxNamespaceType::Network)
            .is_some_and(|j| same_file(&j.path, Path::new("/proc/self/ns/net")));
        for key in linux.sysctl().iter().flat_map(|s| s.keys()) {
            crate::namespaces::check_sysctl(key, &seen)
                .map_err(|m| invalid(format!("linux.sysctl.{key}"), m))?;
            // Joining the runtime's own network namespace is no private one.
            if host_netns && crate::namespaces::sysctl_dotted(key).starts_with("net.") {
                return Err(invalid(
                    format!("linux.sysctl.{key}"),
                    format!("sysctl {key:?} not allowed in host network namespace"),
                ));
            }
        }

        let seccomp = linux
            .seccomp()
            .as_ref()
            .map(crate::security::seccomp::Filter::from_spec)
            .transpose()
            .map_err(|e| invalid(e.field, e.msg))?;

        let netns = match join.iter().find(|j| j.kind == LinuxNamespaceType::Network) {
            Some(j) => crate::netdev::Netns::Join(&j.path),
            None if has(LinuxNamespaceType::Network) => crate::netdev::Netns::New,
            None => crate::netdev::Netns::None,
        };
        let net_devices = crate::netdev::plan(linux.net_devices().as_ref(), netns)
            .map_err(|(f, m)| invalid(f, m))?;
        if let Some(rdt) = linux.intel_rdt() {
            return Err(invalid("linux.intelRdt", crate::intelrdt::refusal(rdt)));
        }

        let bundle = Bundle {
            seccomp,
            net_devices,
            dir,
            rootfs,
            new_ns,
            join,
            userns,
            mount_ns,
            uid_map,
            gid_map,
            plan,
            spec,
        };
        for (kind, name) in [
            (HookKind::Prestart, "prestart"),
            (HookKind::CreateRuntime, "createRuntime"),
            (HookKind::CreateContainer, "createContainer"),
            (HookKind::StartContainer, "startContainer"),
            (HookKind::Poststart, "poststart"),
            (HookKind::Poststop, "poststop"),
        ] {
            for (i, h) in bundle.hooks(kind).iter().enumerate() {
                if !h.path().is_absolute() {
                    return Err(invalid(
                        format!("hooks.{name}[{i}].path"),
                        format!("{} is not an absolute path", h.path().display()),
                    ));
                }
                if h.timeout().is_some_and(|t| t <= 0) {
                    return Err(invalid(
                        format!("hooks.{name}[{i}].timeout"),
                        "timeout must be greater than zero",
                    ));
                }
            }
        }
        Ok(bundle)
    }

    /// The `process` section (validated present).
    pub fn process(&self) -> &oci_spec::runtime::Process {
        // Validated in from_spec: process is Some.
        self.spec
            .process()
            .as_ref()
            .expect("validated: process is set")
    }

    /// The hooks of one kind (empty if none). prestart is deprecated but
    /// still honoured, as runc does.
    #[allow(deprecated)]
    pub fn hooks(&self, kind: HookKind) -> &[oci_spec::runtime::Hook] {
        let Some(h) = self.spec.hooks().as_ref() else {
            return &[];
        };
        let v = match kind {
            HookKind::Prestart => h.prestart(),
            HookKind::CreateRuntime => h.create_runtime(),
            HookKind::CreateContainer => h.create_container(),
            HookKind::StartContainer => h.start_container(),
            HookKind::Poststart => h.poststart(),
            HookKind::Poststop => h.poststop(),
        };
        v.as_deref().unwrap_or(&[])
    }

    /// Whether the init must stop before its root switch for hooks.
    pub fn init_needs_hooks(&self) -> bool {
        [
            HookKind::Prestart,
            HookKind::CreateRuntime,
            HookKind::CreateContainer,
            HookKind::StartContainer,
        ]
        .iter()
        .any(|k| !self.hooks(*k).is_empty())
    }

    /// The `linux` section (validated present).
    pub fn linux(&self) -> &oci_spec::runtime::Linux {
        self.spec.linux().as_ref().expect("validated: linux is set")
    }
}

/// Whether two paths name the same file (false if either is unreadable:
/// the join itself reports a bad path).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Each entry is NAME=VALUE with a non-empty name (runc refuses the
/// others in its init, with these words; here they fail before any fork).
fn check_env(env: &[String], prefix: &str) -> Result<(), BundleError> {
    for (i, e) in env.iter().enumerate() {
        match e.split_once('=') {
            None => {
                return Err(invalid(
                    format!("{prefix}.env[{i}]"),
                    format!("invalid environment variable: {e:?} (no '=')"),
                ));
            }
            Some(("", _)) => {
                return Err(invalid(
                    format!("{prefix}.env[{i}]"),
                    format!("environment variable name can't be empty: {e:?}"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Which part of linux.memoryPolicy a parse error at `field` is about.
fn memory_policy_part(field: &str, err: &str) -> Option<&'static str> {
    let rest = field.strip_prefix("linux.memoryPolicy")?;
    if rest.starts_with(".flags") {
        Some("flag")
    } else if rest == ".mode" || (rest.is_empty() && err.starts_with("missing field `mode`")) {
        Some("mode")
    } else {
        None
    }
}

/// One entry per name, the last one given winning, at the place of its last
/// occurrence (runc >= 1.2, like Go's os/exec): a process never sees a name
/// twice, whatever getenv it uses. Entries are already checked to have '='.
fn dedup_env(env: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(env.len());
    let mut out: Vec<String> = env
        .iter()
        .rev()
        .filter(|e| seen.insert(e.split_once('=').map_or(e.as_str(), |(k, _)| k)))
        .cloned()
        .collect();
    out.reverse();
    out
}

fn to_cstrings(items: &[String], field: &str) -> Result<Vec<CString>, BundleError> {
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            CString::new(s.as_bytes())
                .map_err(|_| invalid(format!("{field}[{i}]"), "contains a NUL byte"))
        })
        .collect()
}
