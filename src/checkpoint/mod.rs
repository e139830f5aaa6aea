//! `checkpoint` and `restore`: a running container saved to disk and brought
//! back by CRIU, driven over its RPC interface (`criu swrk`, as runc does).
//!
//! - proto.rs: the criu_req / criu_resp messages (protobuf, by hand)
//! - swrk.rs: one `criu swrk` session with notifications
//! - external.rs: what CRIU must be told about a container (bind mounts,
//!   masked files, devices, namespaces joined by path, descriptors.json)
//! - dump.rs: `checkpoint` (and `--pre-dump`)
//! - restore.rs: `restore`

mod dump;
mod external;
mod proto;
mod restore;
mod swrk;

use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// The file in the image directory listing the init's fds 0-2 (runc's name).
pub const DESCRIPTORS: &str = "descriptors.json";

/// The file in the image directory saying that the dump left CRIU's network
/// lock in a network namespace joined by path ("<dev>:<inode>" of it): see
/// external::netns_id.
pub const NETNS_LOCK: &str = "capsa-netns-lock";

/// What `features` says of checkpoint/restore (an annotation: the
/// runtime-spec schema has no field for it).
pub const FEATURES: &str = "criu (swrk RPC): checkpoint [--pre-dump --parent-path --leave-running \
--tcp-established --ext-unix-sk --shell-job --file-locks --manage-cgroups-mode --empty-ns \
--auto-dedup --work-path --page-server --lazy-pages --status-fd], restore [--detach --pid-file \
--console-socket --no-pivot --bundle --tcp-established --ext-unix-sk --shell-job --file-locks \
--manage-cgroups-mode --empty-ns --auto-dedup --work-path --lazy-pages]; needs a criu binary \
whose `criu check` passes (--lazy-pages: and userfaultfd)";

#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    #[error(
        "checkpoint/restore needs CRIU: no criu binary found ({0}); install it (Debian: apt-get install criu) or name it with --criu"
    )]
    Missing(String),
    #[error(
        "checkpoint/restore needs a CRIU that works on this kernel: `{criu} check` fails: {why}"
    )]
    Unusable { criu: PathBuf, why: String },
    #[error("starting {path}: {msg}")]
    Spawn { path: PathBuf, msg: String },
    #[error("criu {op}: {detail}\nlog file: {log}")]
    Failed {
        op: &'static str,
        detail: String,
        log: String,
    },
    #[error("{0}: {1}")]
    Sys(&'static str, Errno),
    #[error("{op} {path}: {msg}")]
    Path {
        op: &'static str,
        path: PathBuf,
        msg: String,
    },
    #[error("{0}")]
    Usage(String),
}

impl From<CriuError> for crate::error::Error {
    fn from(e: CriuError) -> crate::error::Error {
        match e {
            CriuError::Usage(m) => crate::error::Error::Usage(m),
            e => crate::error::Error::Lifecycle(e.to_string()),
        }
    }
}

/// Options shared by checkpoint and restore, as runc's flags name them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CriuOptions {
    /// `--criu`: the CRIU binary (default `criu`, looked up in `PATH`).
    pub criu: Option<PathBuf>,
    /// `--image-path` (default: ./checkpoint, as runc).
    pub image_path: Option<PathBuf>,
    /// `--work-path` (default: the image directory, CRIU's default).
    pub work_path: Option<PathBuf>,
    /// `--tcp-established`: checkpoint/restore established TCP connections.
    pub tcp_established: bool,
    /// `--ext-unix-sk`: allow external unix sockets.
    pub ext_unix_sk: bool,
    /// `--shell-job`: allow a shell job (a terminal from outside).
    pub shell_job: bool,
    /// `--file-locks`: checkpoint/restore file locks.
    pub file_locks: bool,
    /// `--manage-cgroups-mode`: ignore, soft, full, strict.
    pub manage_cgroups_mode: Option<String>,
    /// `--empty-ns`: namespace names (runc accepts "network").
    pub empty_ns: Vec<String>,
    /// `--auto-dedup`: deduplicate images against the parent's.
    pub auto_dedup: bool,
    /// --lazy-pages: the dump serves the memory pages from its own page
    /// server (on --page-server's port) and ends once a restore with
    /// --lazy-pages (through `criu lazy-pages`) has fetched them all.
    pub lazy_pages: bool,
}

/// `checkpoint`'s own flags.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CheckpointOptions {
    /// The options shared with restore.
    pub common: CriuOptions,
    /// `--parent-path`: the previous (pre-)dump, relative to the image path.
    pub parent_path: Option<PathBuf>,
    /// `--leave-running`: keep the container running after the dump.
    pub leave_running: bool,
    /// `--pre-dump`: a memory pre-dump only (the container keeps running).
    pub pre_dump: bool,
    /// --page-server ADDRESS:PORT: the pages go to a `criu page-server`
    /// there, the other images to the image path (as runc).
    pub page_server: Option<String>,
    /// --status-fd: with --lazy-pages, a descriptor (of the caller) that gets
    /// one \0 byte when the dump's page server is ready, then is closed.
    pub status_fd: Option<i32>,
}

/// `restore`'s own flags.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// The options shared with checkpoint.
    pub common: CriuOptions,
    /// The bundle directory, whose config.json is the container's.
    pub bundle: PathBuf,
    /// `--detach`: return once restored instead of waiting for the init.
    pub detach: bool,
    /// `--pid-file`: write the restored init's pid here.
    pub pid_file: Option<PathBuf>,
    /// `--console-socket`: where the pty master goes.
    pub console_socket: Option<PathBuf>,
    /// `--no-pivot`: MS_MOVE and chroot instead of pivot_root.
    pub no_pivot: bool,
}

impl CriuOptions {
    /// The criu binary: --criu, else `criu` in PATH.
    fn binary(&self) -> Result<PathBuf, CriuError> {
        let name = self.criu.clone().unwrap_or_else(|| PathBuf::from("criu"));
        if name.components().count() > 1 {
            return if is_executable(&name) {
                Ok(name)
            } else {
                Err(CriuError::Missing(format!(
                    "{} is not an executable file",
                    name.display()
                )))
            };
        }
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        std::env::split_paths(&path)
            .map(|d| d.join(&name))
            .find(|p| is_executable(p))
            .ok_or_else(|| CriuError::Missing(format!("{} is not in PATH", name.display())))
    }

    /// The image directory, absolute: --image-path, else ./checkpoint (runc).
    fn images(&self) -> PathBuf {
        crate::runtime::absolute(
            self.image_path
                .as_deref()
                .unwrap_or(Path::new("checkpoint")),
        )
    }

    /// --manage-cgroups-mode as criu_cg_mode.
    fn cg_mode(&self) -> Result<Option<u32>, CriuError> {
        Ok(match self.manage_cgroups_mode.as_deref() {
            None | Some("") => None,
            Some("ignore") => Some(0),
            Some("soft") => Some(3),
            Some("full") => Some(4),
            Some("strict") => Some(5),
            Some(m) => {
                return Err(CriuError::Usage(format!(
                    "--manage-cgroups-mode: invalid value {m:?} (ignore, soft, full or strict)"
                )));
            }
        })
    }

    /// CRIU's empty_ns mask: the network namespace always (as runc: the
    /// runtime does not manage network devices, so CRIU neither dumps nor
    /// restores their configuration), and any --empty-ns.
    fn empty_ns_mask(&self) -> Result<u32, CriuError> {
        let mut mask = libc::CLONE_NEWNET as u32;
        for ns in &self.empty_ns {
            mask |= match ns.as_str() {
                "network" => libc::CLONE_NEWNET,
                "ipc" => libc::CLONE_NEWIPC,
                "uts" => libc::CLONE_NEWUTS,
                "pid" => libc::CLONE_NEWPID,
                "mount" => libc::CLONE_NEWNS,
                "user" => libc::CLONE_NEWUSER,
                "cgroup" => libc::CLONE_NEWCGROUP,
                other => {
                    return Err(CriuError::Usage(format!(
                        "--empty-ns: namespace {other:?} is not supported"
                    )));
                }
            } as u32;
        }
        Ok(mask)
    }

    /// Refuse bad flag values, before anything is made.
    fn check_supported(&self) -> Result<(), CriuError> {
        self.cg_mode()?;
        self.empty_ns_mask()?;
        Ok(())
    }
}

/// --page-server ADDRESS:PORT (runc's net.SplitHostPort: an IPv6 address
/// in brackets) as (address, port).
fn page_server(arg: &str) -> Result<(String, i32), CriuError> {
    let bad = || {
        CriuError::Usage(format!(
            "--page-server {arg:?}: use --page-server ADDRESS:PORT to name the page server"
        ))
    };
    let (host, port) = arg.rsplit_once(':').ok_or_else(bad)?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']').ok_or_else(bad)?,
        None if host.contains(':') => return Err(bad()),
        None => host,
    };
    let port: u16 = port.parse().map_err(|_| {
        CriuError::Usage(format!(
            "--page-server {arg:?}: invalid port number {port:?}"
        ))
    })?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), i32::from(port)))
}

/// --status-fd: an open descriptor of ours that can be written (runc's
/// check), or a usage error naming it.
fn status_fd(fd: i32) -> Result<std::os::fd::OwnedFd, CriuError> {
    use std::os::fd::FromRawFd;
    let bad = |why: String| CriuError::Usage(format!("invalid --status-fd argument {fd}: {why}"));
    if fd < 0 {
        return Err(bad("not a descriptor".into()));
    }
    // SAFETY: F_GETFL only reads the flags of a descriptor number; a closed one gives EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(bad(Errno::last().desc().to_string()));
    }
    if flags & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(bad("not writable".into()));
    }
    // The descriptor was the caller's to give: we own it from here (closed
    // after the ready byte, or when checkpoint ends). fcntl proved it open.
    // SAFETY: fd is open and nothing else in this process uses it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// After a failed operation: is CRIU usable on this host at all? `criu
/// check` answers in tens of milliseconds when it fails (its kernel feature
/// probe is what fails), so it runs only after a failure, never on the
/// success path. Some(error) if it fails.
fn diagnose(criu: &Path) -> Option<CriuError> {
    let out = std::process::Command::new(criu)
        .arg("check")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if out.status.success() {
        return None;
    }
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let why: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Error") || l.contains("fail"))
        .take(3)
        .collect();
    let why = if why.is_empty() {
        format!("exit status {}", out.status)
    } else {
        why.join("; ")
    };
    Some(CriuError::Unusable {
        criu: criu.to_path_buf(),
        why,
    })
}

/// Open a directory for CRIU (images, work dir): a descriptor it inherits.
fn open_dir(path: &Path) -> Result<std::os::fd::OwnedFd, CriuError> {
    nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| CriuError::Path {
        op: "open",
        path: path.to_path_buf(),
        msg: e.desc().to_string(),
    })
}

/// mkdir -p with `mode` for the levels made; whether the last level was made.
fn make_dir(path: &Path, mode: u32) -> Result<bool, CriuError> {
    use std::os::unix::fs::DirBuilderExt;
    if path.is_dir() {
        return Ok(false);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| CriuError::Path {
            op: "mkdir",
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    Ok(true)
}
