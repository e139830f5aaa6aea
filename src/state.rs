//! Container state on disk: one directory per container under `--root`,
//! locked with flock while a command works on it, with `state.json` written
//! atomically (write + rename) and the status derived from the kernel
//! (pid + start time), never trusted from the file.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, open};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::inherit::ParentOnly;
use crate::sys::{Ctx, SysError, proc_start_time};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// The cgroups `create` is about to make, written before it makes them.
pub const CGROUP_PLAN: &str = "cgroup.json";
/// A spec given in memory, kept for `exec` (named as in a bundle, so that
/// `Bundle::read_spec` reads it).
pub const SPEC_FILE: &str = "config.json";
/// runtime-spec version capsa implements and reports.
pub const OCI_VERSION: &str = "1.3.0";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container does not exist")]
    NotExist,
    #[error("container with given ID already exists")]
    Exists,
    #[error(
        "invalid container ID {0:?}: invalid character or name (only letters, digits, '_', '+', '-' and '.' are allowed; not . or ..)"
    )]
    InvalidId(String),
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("{path}: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    /// The lock is held through a descriptor of a process that is not a
    /// running capsa command (inherited from one that died).
    #[error(
        "{path}: locked by a process that is not a running capsa command (taken by pid {taker}); `delete --force` removes the container"
    )]
    StaleLock { path: PathBuf, taker: i32 },
}

/// The status of a container, as the runtime-spec names them (serialized
/// in lower case, as in the `state` JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created (capsa never reports it: a container being created
    /// has no state yet).
    Creating,
    /// Created, its init waiting for `start`.
    Created,
    /// Its workload runs.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// Its init has exited.
    Stopped,
}

impl Status {
    /// The name, as in the `state` JSON (`"running"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What capsa keeps about a container. The OCI fields are printed by
/// `state`; the rest is capsa's own bookkeeping for later commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// starttime of the init (/proc/PID/stat field 22): tells a reused pid apart.
    pub init_start_time: u64,
    #[serde(default)]
    pub cgroup: Cgroup,
    /// Set once `start` released the init (exec.fifo consumed).
    #[serde(default)]
    pub started: bool,
    /// Hooks run by later commands (`start`, `delete`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<oci_spec::runtime::Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<oci_spec::runtime::Hook>,
    /// linux.seccomp as created: `exec` loads it into its process too, and
    /// must not take it from a config.json edited after create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// Without a mount namespace of its own: the ids of the runtime's
    /// mounts at or below the rootfs before create; delete detaches the
    /// others (`rootfs::hostmounts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_mounts: Option<Vec<u32>>,
    /// Created from a spec given in memory (the library's
    /// `CreateOptions::spec`): its copy is SPEC_FILE in the state dir, not
    /// the bundle's config.json.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own_spec: bool,
}

/// runc's `state` output shape.
#[derive(Serialize)]
pub struct OciState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
}

/// Container ids as runc accepts them: `[A-Za-z0-9_+.-]+`, not "." or "..".
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId(id.to_string()))
    }
}

/// A container directory, held under an exclusive flock for as long as this
/// value lives (or, for `delete --force` only, not held when stale). The
/// lock fd is O_CLOEXEC, and parent-only: a child capsa clones closes its
/// copy first thing (crate::inherit), so that no process but a running
/// capsa command ever holds a container's lock.
pub struct ContainerDir {
    pub path: PathBuf,
    /// Before `_lock`: unregistered before the descriptor closes.
    _parent_only: Option<ParentOnly>,
    /// Held for its Drop, which unlocks.
    _lock: Option<Flock<OwnedFd>>,
}

impl ContainerDir {
    /// Make a new container directory (fails if the id is taken) and lock it.
    pub fn create(root: &Path, id: &str) -> Result<ContainerDir, StateError> {
        validate_id(id)?;
        match fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(root)
        {
            Ok(()) => {}
            Err(e) => return Err(SysError::io("mkdir", root, &e).into()),
        }
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists);
            }
            Err(e) => return Err(SysError::io("mkdir", &path, &e).into()),
        }
        Self::lock(path, true, false)
    }

    /// Lock an existing container directory. Waits while a running capsa
    /// command holds it; a lock held by anything else is `StaleLock`. A
    /// container still being created does not exist yet (as in runc): this
    /// does not wait for its `create`, which may be running a hook that
    /// called us.
    pub fn open(root: &Path, id: &str) -> Result<ContainerDir, StateError> {
        Self::open_dir(root, id, false, false)
    }

    /// `open`, waiting for a `create` in progress to finish (`delete`: a
    /// create that goes on after a forced delete said "done" would leave a
    /// container behind).
    pub fn open_waiting(root: &Path, id: &str) -> Result<ContainerDir, StateError> {
        Self::open_dir(root, id, true, false)
    }

    /// `open_waiting` for `delete --force`: a stale lock cannot be taken, so
    /// it goes on without it (nothing else may work on such a container).
    pub fn open_for_removal(root: &Path, id: &str) -> Result<ContainerDir, StateError> {
        Self::open_dir(root, id, true, true)
    }

    fn open_dir(
        root: &Path,
        id: &str,
        wait_for_create: bool,
        stale_ok: bool,
    ) -> Result<ContainerDir, StateError> {
        validate_id(id)?;
        let path = root.join(id);
        if !path.is_dir() {
            return Err(StateError::NotExist);
        }
        Self::lock(path, wait_for_create, stale_ok)
    }

    /// Lock again a directory this command locked and released
    /// (NotExist if it was removed meanwhile).
    pub fn relock(path: PathBuf) -> Result<ContainerDir, StateError> {
        if !path.is_dir() {
            return Err(StateError::NotExist);
        }
        Self::lock(path, true, false)
    }

    /// Lock `path`. Held by another command and without state.json (a
    /// create in progress): NotExist at once, unless `wait_for_create`.
    fn lock(
        path: PathBuf,
        wait_for_create: bool,
        stale_ok: bool,
    ) -> Result<ContainerDir, StateError> {
        let fd = match open(
            &path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Err(StateError::NotExist),
            Err(e) => return Err(SysError::at("open", &path, e).into()),
        };
        let fd = match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(Self::locked(path, Some(lock))),
            Err((fd, Errno::EWOULDBLOCK)) => {
                if !wait_for_create && !path.join(STATE_FILE).exists() {
                    return Err(StateError::NotExist);
                }
                fd
            }
            Err((fd, Errno::EINTR)) => fd,
            Err((_, e)) => return Err(SysError::at("flock", &path, e).into()),
        };
        match crate::state_lock::lock(fd, &path)? {
            crate::state_lock::Locked::Held(l) => Ok(Self::locked(path, Some(l))),
            crate::state_lock::Locked::Stale { .. } if stale_ok => Ok(Self::locked(path, None)),
            crate::state_lock::Locked::Stale { taker } => {
                Err(StateError::StaleLock { path, taker })
            }
        }
    }

    fn locked(path: PathBuf, lock: Option<Flock<OwnedFd>>) -> ContainerDir {
        ContainerDir {
            path,
            _parent_only: lock.as_ref().map(|l| ParentOnly::new(&l.as_fd())),
            _lock: lock,
        }
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn load(&self) -> Result<State, StateError> {
        load_from(&self.path)
    }

    /// Atomically replace state.json: a reader sees the old or the new file, never half.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let data = serde_json::to_vec(state).map_err(|e| StateError::Corrupt {
            path: self.path.join(STATE_FILE),
            msg: e.to_string(),
        })?;
        write_atomic(&self.path.join(STATE_FILE), &data, 0o600)?;
        Ok(())
    }

    /// Record the cgroups a create is about to make (see `CGROUP_PLAN`).
    pub fn save_cgroup_plan(&self, cg: &Cgroup) -> Result<(), StateError> {
        let path = self.path.join(CGROUP_PLAN);
        let data = serde_json::to_vec(cg).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        write_atomic(&path, &data, 0o600)?;
        Ok(())
    }

    /// The cgroups a create that never wrote state.json was making, if it
    /// got as far as recording them.
    pub fn load_cgroup_plan(&self) -> Result<Option<Cgroup>, StateError> {
        let path = self.path.join(CGROUP_PLAN);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SysError::io("read", &path, &e).into()),
        };
        serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path,
                msg: e.to_string(),
            })
    }

    /// Remove the directory and everything in it.
    pub fn remove(self) -> Result<(), StateError> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SysError::io("remove", &self.path, &e).into()),
        }
    }
}

/// The state of container `id` without taking its lock, for commands that
/// only read it (`state`, `list`): state.json is replaced atomically, so a
/// reader sees a whole file, and a hook or a process of the container that
/// asks while a command holds the lock (create, start running hooks) gets
/// an answer instead of waiting for that command, which waits for it.
pub fn read_unlocked(root: &Path, id: &str) -> Result<(PathBuf, State), StateError> {
    validate_id(id)?;
    let path = root.join(id);
    if !path.is_dir() {
        return Err(StateError::NotExist);
    }
    let st = load_from(&path)?;
    Ok((path, st))
}

fn load_from(dir: &Path) -> Result<State, StateError> {
    let file = dir.join(STATE_FILE);
    let data = match fs::read(&file) {
        Ok(d) => d,
        // A directory with no state.json is a create that has not finished
        // (or crashed): to every other command the container does not exist.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StateError::NotExist),
        Err(e) => return Err(SysError::io("read", &file, &e).into()),
    };
    serde_json::from_slice(&data).map_err(|e| StateError::Corrupt {
        path: file,
        msg: e.to_string(),
    })
}

/// Write `data` to `path` through a temporary file in the same directory and
/// rename(2), so readers never see a partial file. No fsync, as in runc and
/// crun: state describes processes, which do not outlive a crash of the
/// host (and --root is normally on tmpfs); on a disk-backed root the two
/// fsyncs of `run` cost milliseconds.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), SysError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
        .ctx_at("open", &tmp)?;
    let res = f.write_all(data).ctx_at("write", &tmp);
    drop(f);
    let res = res.and_then(|_| fs::rename(&tmp, path).ctx_at("rename", path));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

impl State {
    /// The status, asked of the kernel: is the init (same pid AND same start
    /// time) alive, and has it been released by `start`?
    pub fn status(&self, dir: &Path) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if crate::cgroups::is_frozen(&self.cgroup) {
            return Status::Paused;
        }
        if !self.started && dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        Status::Running
    }

    pub fn init_alive(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        match proc_start_time(self.pid) {
            Some((start, st)) => start == self.init_start_time && st != 'Z' && st != 'X',
            None => false,
        }
    }

    /// The directory whose config.json is the container's spec: the
    /// bundle, or (a spec given in memory) the state directory `dir`.
    pub fn spec_dir<'a>(&'a self, dir: &'a Path) -> &'a Path {
        if self.own_spec { dir } else { &self.bundle }
    }

    pub fn oci(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }
}

/// Now as RFC 3339 with nanoseconds in UTC (`2026-12-06T10:04:05.123456789Z`),
/// as runc prints a state's `created` and its log lines' `time`.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs(), now.subsec_nanos())
}

/// Format seconds since the epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn rfc3339(secs: u64, nanos: u32) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Every container id under `root` (directories), sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>, StateError> {
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SysError::io("readdir", root, &e).into()),
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| validate_id(id).is_ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// Write the --pid-file: digits only, no newline, atomically (engines read it
/// as soon as it appears).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), SysError> {
    write_atomic(path, pid.to_string().as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_444_200, 0), "2026-11-23T14:30:00.000000000Z");
    }

    #[test]
    fn ids() {
        assert!(validate_id("abc-DEF_1.2+x").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "a\0b", "ü"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
