//! The lifecycle verbs: create, start, run, state, kill, delete, list. Each
//! takes the container's lock, derives its status from the kernel, and
//! follows runc's rules (and error texts) for what is allowed in which state.

mod create;
mod exec;

pub use create::Created;
pub use events::{Event, EventKind, Events};
pub use exec::ExecOptions;
mod events;
mod nocgroup;
mod pause;
mod pidfd;
mod ps;
mod update;

pub use events::parse_interval;
pub use update::UpdateFlags;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;

use crate::api::Stdio;
use crate::console;
use crate::error::{Error, Result};
use crate::hooks;
use crate::state::{self, ContainerDir, State, StateError, Status};
use crate::sys::{self, Ctx, SysError};

/// How to create a container: runc's `create` flags, plus what only a
/// library caller can give (a spec in memory, the stdio streams).
///
/// Build it with `CreateOptions::default()` (or [`with_bundle`](Self::with_bundle), [`with_spec`](Self::with_spec))
/// and set the fields that matter:
///
/// ```
/// let mut opts = capsa::CreateOptions::with_bundle("/var/lib/engine/c1");
/// opts.stdout = capsa::Stdio::Piped;
/// opts.stderr = capsa::Stdio::Null;
/// assert!(opts.spec.is_none());
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct CreateOptions {
    /// The bundle directory (runc's `--bundle`). Without [`spec`](Self::spec)
    /// its `config.json` is the container's configuration. With `spec` it
    /// need not hold a config.json: it is only the directory that `state`
    /// reports and that hooks receive in their state JSON (their `bundle`);
    /// left empty, it is the parent directory of the rootfs. Relative paths
    /// are taken from the current directory.
    pub bundle: PathBuf,
    /// The container's configuration, given in memory: no config.json is
    /// read or written in the bundle. capsa keeps a copy in its own state
    /// directory (under the runtime's root), which `exec` reads for the
    /// container's process defaults and which `delete` removes. Errors
    /// name its fields as for config.json (`config.json: process.args: ...`).
    pub spec: Option<oci_spec::runtime::Spec>,
    /// The config file in place of the bundle's `config.json` (crun's
    /// `--config`); relative to [`bundle`](Self::bundle) if relative. A file
    /// other than the bundle's config.json is read once and kept like a
    /// [`spec`](Self::spec) given in memory. Ignored with `spec`.
    pub config: Option<PathBuf>,
    /// The root filesystem, in place of the spec's `root.path` (which may
    /// then be absent); relative to [`bundle`](Self::bundle) if relative.
    /// The spec's `root.readonly` still applies (a spec without `root`:
    /// read-only, oci-spec's `Root::default()`).
    pub rootfs: Option<PathBuf>,
    /// The init's standard input. Ignored with `process.terminal`.
    pub stdin: Stdio,
    /// The init's standard output. Ignored with `process.terminal`.
    pub stdout: Stdio,
    /// The init's standard error. Ignored with `process.terminal`.
    pub stderr: Stdio,
    /// Write the init's pid (in the runtime's pid namespace) to this file.
    pub pid_file: Option<PathBuf>,
    /// With `process.terminal`: send the pty master to this unix socket
    /// (runc's `--console-socket`, its wire format).
    pub console_socket: Option<PathBuf>,
    /// Use `MS_MOVE` and `chroot` instead of `pivot_root` (`--no-pivot`;
    /// for a rootfs on a ramfs).
    pub no_pivot: bool,
    /// Do not give the container a session keyring of its own
    /// (`--no-new-keyring`).
    pub no_new_keyring: bool,
    /// Pass the caller's fds 3..3+N to the init (`--preserve-fds`). They
    /// are the calling process's, so this is for single-threaded callers
    /// such as the `capsa` command; see [`reserve_preserved_fds`](crate::reserve_preserved_fds).
    pub preserve_fds: u32,
    /// Socket activation (runc's LISTEN_FDS): fds 3..3+N go to the
    /// container before the `preserve_fds` ones, with LISTEN_FDS=N and
    /// LISTEN_PID=1 added to its environment.
    pub listen_fds: u32,
    /// Send a pidfd of the init to this unix socket (runc 1.2's
    /// `--pidfd-socket`).
    pub pidfd_socket: Option<PathBuf>,
}

impl CreateOptions {
    /// Options for a bundle directory holding config.json, everything else
    /// as runc's defaults.
    pub fn with_bundle(dir: impl Into<PathBuf>) -> CreateOptions {
        CreateOptions {
            bundle: dir.into(),
            ..CreateOptions::default()
        }
    }

    /// Options for a spec in memory and its root filesystem (see
    /// [`spec`](Self::spec) and [`rootfs`](Self::rootfs)).
    pub fn with_spec(spec: oci_spec::runtime::Spec, rootfs: impl Into<PathBuf>) -> CreateOptions {
        CreateOptions {
            spec: Some(spec),
            rootfs: Some(rootfs.into()),
            ..CreateOptions::default()
        }
    }

    /// The bundle, validated: config.json's, or the spec given in memory
    /// (with its JSON, which create keeps in the state directory).
    pub(crate) fn load_bundle(&self) -> Result<(crate::bundle::Bundle, Option<Vec<u8>>)> {
        use crate::bundle::{Bundle, BundleError};
        let mut spec = match (&self.spec, &self.config) {
            (Some(spec), _) => spec.clone(),
            (None, Some(cfg))
                if !same_file(&self.bundle.join(cfg), &self.bundle.join(state::SPEC_FILE)) =>
            {
                Bundle::read_spec_file(&self.bundle.join(cfg))?
            }
            (None, _) => return Ok((Bundle::load(&self.bundle)?, None)),
        };
        if let Some(rootfs) = &self.rootfs {
            let mut root = spec.root().clone().unwrap_or_default();
            root.set_path(rootfs.clone());
            spec.set_root(Some(root));
        }
        let dir = if self.bundle.as_os_str().is_empty() {
            let rootfs = spec
                .root()
                .as_ref()
                .map(|r| absolute(r.path()))
                .unwrap_or_default();
            rootfs.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            self.bundle.clone()
        };
        let dir = std::fs::canonicalize(&dir).map_err(|e| BundleError::Bundle {
            path: dir.clone(),
            msg: e.to_string().to_lowercase(),
        })?;
        let json = serde_json::to_vec(&spec).map_err(|e| BundleError::Invalid {
            field: ".".into(),
            msg: e.to_string(),
        })?;
        crate::limits::check_nul(&json)
            .map_err(|(field, msg)| BundleError::Invalid { field, msg })?;
        Ok((Bundle::from_spec(dir, spec)?, Some(json)))
    }
}

/// Whether `a` and `b` name one file (false if either is missing: the
/// caller then reads `a` and reports its error).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A runtime instance: where its state lives.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub root: PathBuf,
    /// `--cgroup-manager disabled`: create no cgroup for new containers.
    pub no_cgroups: bool,
    /// Rootless cgroups (`--rootless`, runc's meaning: a cgroup the user
    /// may not make is no error unless something needed it; rootless.rs).
    /// What an unprivileged caller's config must be follows its euid.
    pub rootless: bool,
    /// `--systemd-cgroup`: new containers get a systemd unit (their cgroup
    /// is systemd's); existing ones use whatever their state records.
    pub systemd: bool,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime {
            root: root.into(),
            no_cgroups: false,
            rootless: false,
            systemd: false,
        }
    }

    /// `create`: set the container up and leave its init waiting for `start`.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<Created> {
        self.create_inner(id, opts, false, false)
    }

    /// `start`: release a created container's init into its workload.
    pub fn start(&self, id: &str) -> Result<()> {
        let dir = ContainerDir::open(&self.root, id)?;
        let mut st = dir.load()?;
        crate::fault::point("start.locked");
        match st.status(&dir.path) {
            Status::Created => {}
            Status::Stopped => {
                return Err(Error::WrongState(
                    "cannot start a container that has stopped".into(),
                ));
            }
            _ => {
                return Err(Error::WrongState(
                    "cannot start an already running container".into(),
                ));
            }
        }
        start_released(dir, &mut st)
    }

    /// `run`: create + start; in the foreground, forward signals to the
    /// init, wait for it, and return its exit status. The container is
    /// deleted once it stopped, or if it could not be started, unless
    /// `keep` (runc's --keep): then it stays, stopped, for `delete`.
    pub fn run(&self, id: &str, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
        let delete_unless_kept = |r: Result<i32>| {
            if !keep {
                let _ = self.delete(id, true);
            }
            r
        };
        if detach {
            drop(self.create_inner(id, opts, false, true)?);
            return match self.start(id) {
                Ok(()) => Ok(0),
                Err(e) => delete_unless_kept(Err(e)),
            };
        }
        let signals = crate::signals::Forwarder::new()?;
        let created = self.create_inner(id, opts, true, true)?;
        let Created {
            dir,
            mut state,
            console,
            ..
        } = created;
        let proxy = match console {
            Some(sock) => {
                let master = console::recv_master(&sock)?;
                Some(console::spawn_proxy(master)?)
            }
            None => None,
        };
        // Others (kill, state) may now work on the container while it runs.
        match start_released_why(dir, &mut state) {
            Ok(()) => {}
            // The init printed why on its stderr, which is ours here (or
            // the pty we copy): runc's run then reports nothing more and
            // exits 255. Reap the init and let the proxy copy the text.
            Err((_, Reported::ByInit)) => {
                let _ = signals.wait_for(state.pid, proxy);
                return delete_unless_kept(Ok(255));
            }
            Err((e, Reported::No)) => return delete_unless_kept(Err(e)),
        }
        let code = signals.wait_for(state.pid, proxy);
        delete_unless_kept(code)
    }

    /// `kill`: send `sig` to the init, or, with `all`, to every process of
    /// the container in its cgroup (cgroups::Members). `sig` is a number
    /// (see signals::parse): 0 only checks that the container is running.
    /// `--all` works on a stopped container too, as in runc: in a shared
    /// pid namespace (a Kubernetes pod) the init's children outlive it, and
    /// the engine's shim relies on reaching them. Without the lock (signals
    /// change no state, and the init is named by pidfd and start time): an
    /// engine must be able to kill a container whose `start` waits on it (a
    /// stuck startContainer hook or execve), as with runc.
    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<()> {
        let (dir, st) = state::read_unlocked(&self.root, id)?;
        if all && st.cgroup.dirs.is_empty() {
            return nocgroup::signal_all(&st, sig);
        }
        // Without a pid namespace of its own, the init's death takes no
        // other process with it: SIGKILL goes to everything in the cgroup,
        // even once the init is gone (runc >= 1.2 does the same, so that
        // nothing is left behind).
        let shared_pidns = st.cgroup.pidns.is_none() && !st.cgroup.dirs.is_empty();
        if all || (sig == libc::SIGKILL && shared_pidns) {
            let members = members(&st);
            st.cgroup.signal_members(&members, sig)?;
            return Ok(());
        }
        if st.status(&dir) == Status::Stopped {
            return Err(Error::NotRunning("container not running".into()));
        }
        signal_init(&st, sig)
    }

    /// `delete`: remove a stopped (or, with `force`, any) container.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let opened = if force {
            ContainerDir::open_for_removal(&self.root, id)
        } else {
            ContainerDir::open_waiting(&self.root, id)
        };
        let dir = match opened {
            Ok(d) => d,
            Err(StateError::NotExist) if force => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let st = match dir.load() {
            Ok(st) => st,
            // A directory without state: a create that died half way. Its
            // init died with it; the cgroups it recorded before making
            // them are removed (with anything still inside).
            Err(StateError::NotExist) if force => {
                if let Some(cg) = dir.load_cgroup_plan()? {
                    cg.destroy()?;
                }
                return Ok(dir.remove()?);
            }
            // state.json is written by rename, so it is only unreadable after
            // a host crash (or a hand edit, or a bug). Written before this
            // boot, whatever it named died with the host: --force removes
            // it. Otherwise its init and cgroups may be running, and
            // nothing else says where they are (a default cgroup path
            // derived from the id may be another container's, or the
            // host's): refuse, and keep the state for someone to repair.
            Err(e @ StateError::Corrupt { .. }) if force => {
                if written_before_boot(&dir.path.join(state::STATE_FILE)) {
                    eprintln!(
                        "capsa: warning: {e}: written before the host booted; removing the container's state directory"
                    );
                    return Ok(dir.remove()?);
                }
                return Err(Error::Lifecycle(format!(
                    "{e}: cannot tell which processes and cgroups are the container's, so nothing was deleted; repair the file, or stop the container's processes and remove {} by hand",
                    dir.path.display()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        match st.status(&dir.path) {
            Status::Stopped => {}
            Status::Created => kill_and_wait(&st)?,
            s if force => {
                let _ = s;
                kill_and_wait(&st)?
            }
            s => {
                return Err(Error::WrongState(format!(
                    "cannot delete container {id} that is not stopped: {}",
                    s.as_str()
                )));
            }
        }
        // Before anything that can fail: a retried delete undoes them again
        // (nothing to do by then).
        if let Some(before) = &st.host_mounts {
            crate::rootfs::hostmounts::undo(&st.rootfs, before);
        }
        crate::fault::point("delete.killed");
        st.cgroup.destroy_members(&members(&st))?;
        crate::fault::point("delete.cgroup");
        dir.remove()?;
        hooks::run_poststop(&st.poststop, id, &st.bundle, &st.annotations);
        Ok(())
    }

    /// Every container under the root with its derived status.
    pub fn list(&self) -> Result<Vec<(State, Status)>> {
        let mut out = Vec::new();
        // Without the locks: a command at work on one container (or a
        // stale lock) must not hold up the listing of the whole root.
        for id in state::list_ids(&self.root)? {
            match state::read_unlocked(&self.root, &id) {
                Ok((dir, st)) => {
                    let status = st.status(&dir);
                    out.push((st, status));
                }
                // Being created: no state yet.
                Err(StateError::NotExist) => {}
                // Not listable, but not to be forgotten either (runc
                // prints the same and goes on).
                Err(e) => eprintln!("capsa: warning: load container {id}: {e}"),
            }
        }
        Ok(out)
    }
}

/// Was `file` last written before the host booted (its mtime earlier than
/// /proc/stat's btime)? False if either cannot be read.
fn written_before_boot(file: &Path) -> bool {
    let Ok(mtime) = std::fs::metadata(file).and_then(|m| m.modified()) else {
        return false;
    };
    let Some(btime) = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())
    }) else {
        return false;
    };
    mtime < std::time::UNIX_EPOCH + std::time::Duration::from_secs(btime)
}

pub(crate) fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Release a created container's init (exec.fifo), record it as started
/// and run the poststart hooks. When the init reports a failure after its
/// release, or a poststart hook fails, the container is destroyed.
///
/// The lock is released before the poststart hooks run (and taken again
/// if one fails): a hook may call the runtime on the container (exec,
/// kill, ps), which would otherwise wait for us while we wait for it.
fn start_released(dir: ContainerDir, st: &mut State) -> Result<()> {
    start_released_why(dir, st).map_err(|(e, _)| e)
}

/// Whether the init itself told its stderr why it did not start.
enum Reported {
    ByInit,
    No,
}

/// [`start_released`], saying who reported a failure.
fn start_released_why(
    dir: ContainerDir,
    st: &mut State,
) -> std::result::Result<(), (Error, Reported)> {
    let (dir, failed, why) = match release(&dir, st) {
        Err(Start::Other(e)) => return Err((e, Reported::No)),
        Err(Start::Failed(msg)) => (dir, Error::Lifecycle(msg), Reported::ByInit),
        Ok(()) => {
            crate::fault::point("start.released");
            st.started = true;
            dir.save(st).map_err(|e| (Error::from(e), Reported::No))?;
            if st.poststart.is_empty() {
                return Ok(());
            }
            let path = dir.path.clone();
            drop(dir);
            match run_poststart(st) {
                Ok(()) => return Ok(()),
                // Deleted meanwhile: nothing left to destroy.
                Err(e) => match ContainerDir::relock(path) {
                    Ok(dir) => (dir, e, Reported::No),
                    Err(_) => return Err((e, Reported::No)),
                },
            }
        }
    };
    // The failure is the error; a failed clean-up is added to it.
    match destroy_after_failed_start(&dir, st) {
        Ok(()) => Err((failed, why)),
        Err(e) => Err((
            Error::Lifecycle(format!("{failed}; destroying the container: {e}")),
            Reported::No,
        )),
    }
}

/// poststart hooks, in the runtime namespace after the workload started.
/// A failure is the command's error, and the caller destroys the container:
/// runtime-spec 1.3 (runtime.md lifecycle step 9, "generate an error, stop
/// the container, and continue the lifecycle at step 12") and runc agree;
/// only the 1.0.2-1.2 text said "log a warning".
fn run_poststart(st: &State) -> Result<()> {
    if st.poststart.is_empty() {
        return Ok(());
    }
    let json = hooks::state_json(&st.id, "running", st.pid, &st.bundle, &st.annotations);
    hooks::run("poststart", &st.poststart, &json).map_err(|e| Error::Lifecycle(e.to_string()))
}

/// After a failed startContainer or poststart hook (or a failed execve),
/// lifecycle steps 12-13 (runtime.md): stop the container, destroy what
/// create made (its cgroup), run the poststop hooks. The state directory
/// stays, recording a stopped container with nothing left to undo, so that
/// `delete`, which engines call next, succeeds and runs nothing twice.
fn destroy_after_failed_start(dir: &ContainerDir, st: &mut State) -> Result<()> {
    kill_and_wait(st)?;
    st.cgroup.destroy_members(&members(st))?;
    st.cgroup = crate::cgroups::Cgroup::default();
    let poststop = std::mem::take(&mut st.poststop);
    dir.save(st)?;
    hooks::run_poststop(&poststop, &st.id, &st.bundle, &st.annotations);
    Ok(())
}

/// Why `release` failed.
enum Start {
    /// The init, once released, reported a failure (a startContainer hook,
    /// or execve): the container is stopping.
    Failed(String),
    /// Anything else: the container is as it was.
    Other(Error),
}

impl From<SysError> for Start {
    fn from(e: SysError) -> Start {
        Start::Other(e.into())
    }
}

/// Open exec.fifo for reading: the init, blocked opening it for writing,
/// writes one byte and execs. Its pidfd tells us if it died instead.
fn release(dir: &ContainerDir, st: &State) -> std::result::Result<(), Start> {
    let path = dir.fifo_path();
    // The pidfd first: once the fifo is open the init may exec a workload
    // that exits (and is reaped by the engine's shim) before we look.
    let pidfd = match sys::pidfd_open(st.pid) {
        Ok(fd) => fd,
        Err(e) if e.errno == Errno::ESRCH => {
            return Err(Start::Other(Error::Lifecycle(
                "container init exited before it could be started".into(),
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let fifo = open(
        &path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx_at("open", &path)?;
    loop {
        let mut fds = [
            PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(SysError::at("poll", &path, e).into()),
        }
        let fifo_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let died = fds[1].revents().is_some_and(|r| !r.is_empty());
        if fifo_ready {
            let mut b = [0u8; 1];
            match nix::unistd::read(&fifo, &mut b) {
                Ok(1) => {
                    wait_exec(&fifo, &path)?;
                    break;
                }
                Ok(_) => {}
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(SysError::at("read", &path, e).into()),
            }
        }
        if died || fifo_ready {
            return Err(Start::Other(Error::Lifecycle(
                "container init exited before it could be started".into(),
            )));
        }
    }
    std::fs::remove_file(&path).ctx_at("remove", &path)?;
    Ok(())
}

/// After the release byte, the init keeps the fifo open until its execve
/// closes it: end-of-file is success; text before it is the init's error
/// (a failed startContainer hook, or execve itself).
fn wait_exec(fifo: &OwnedFd, path: &Path) -> std::result::Result<(), Start> {
    let mut msg = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(SysError::at("poll", path, e).into()),
        }
        match nix::unistd::read(fifo, &mut buf) {
            Ok(0) => break,
            Ok(n) => msg.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(SysError::at("read", path, e).into()),
        }
    }
    if msg.is_empty() {
        return Ok(());
    }
    Err(Start::Failed(String::from_utf8_lossy(&msg).into_owned()))
}

/// Signal exactly the container's init: a pidfd, checked against the
/// recorded start time, so a reused pid is never signalled.
fn signal_init(st: &State, sig: i32) -> Result<()> {
    let pidfd = match sys::pidfd_open(st.pid) {
        Ok(fd) => fd,
        Err(e) if e.errno == Errno::ESRCH => {
            return Err(Error::NotRunning("container not running".into()));
        }
        Err(e) => return Err(e.into()),
    };
    if !st.init_alive() {
        return Err(Error::NotRunning("container not running".into()));
    }
    sys::pidfd_send_signal(&pidfd, sig)?;
    Ok(())
}

/// The container's processes in its cgroup (see cgroups::Members).
fn members(st: &State) -> crate::cgroups::Members {
    st.cgroup.members(st.pid, || st.init_alive())
}

/// SIGKILL the init (and anything else in its cgroup) and wait until it is gone.
fn kill_and_wait(st: &State) -> Result<()> {
    let pidfd = match sys::pidfd_open(st.pid) {
        Ok(fd) => fd,
        Err(e) if e.errno == Errno::ESRCH => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !st.init_alive() {
        return Ok(());
    }
    sys::pidfd_send_signal(&pidfd, libc::SIGKILL)?;
    // A frozen (paused) init cannot die until it is thawed.
    let _ = crate::cgroups::freezer::thaw(&st.cgroup);
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    // A SIGKILLed process is gone within milliseconds; don't hang forever on
    // one stuck in the kernel (D state): the cgroup clean-up reports it.
    let _ = poll(&mut fds, PollTimeout::from(10_000u16));
    let _ = pidfd.as_raw_fd();
    Ok(())
}
