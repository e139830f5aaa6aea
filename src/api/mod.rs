//! The public API: what the crate root re-exports. Everything here is a
//! thin layer over the internal modules, which keep their own errors and
//! types; this is where those become the documented, stable surface.

mod container;
mod error;
mod runtime;
pub(crate) mod stdio;

use std::path::PathBuf;

pub use container::{Container, ContainerState, ExitStatus, Process};
pub use error::{Error, Result};
pub use runtime::{CgroupManager, Runtime};
pub(crate) use stdio::ChildStdio;
pub use stdio::Stdio;

/// The state root of a runtime run by root outside a user namespace
/// (`/run/capsa`, as runc's is `/run/runc`).
pub const SYSTEM_ROOT: &str = crate::rootless::SYSTEM_ROOT;

/// Must be called first thing in `main` by every program that embeds capsa.
///
/// Every container workload is exec'd through a sealed, read-only copy of
/// the running executable (the CVE-2019-5736 defence: the container's
/// process can never write to the host binary through /proc/self/exe).
/// That copy runs `main` again, in the container; this call recognises that
/// case, finishes the exec of the workload, and never returns. In every
/// other case it returns at once, having done nothing. Code that runs
/// before it runs inside every container too, so call it before anything
/// else.
///
/// ```no_run
/// // First statement of `main`:
/// capsa::run_if_asked();
/// // ... the engine ...
/// ```
pub fn run_if_asked() {
    crate::process::trampoline::run_if_asked()
}

/// Parse a signal as runc's `kill` takes it: a number, or a name with or
/// without `SIG`, in any case (`TERM`, `SIGKILL`, `9`), and the real-time
/// signals as `RTMIN+n` / `RTMAX-n`.
///
/// ```
/// assert_eq!(capsa::parse_signal("KILL").unwrap(), 9);
/// assert_eq!(capsa::parse_signal("sigterm").unwrap(), 15);
/// assert_eq!(capsa::parse_signal("10").unwrap(), 10);
/// assert!(capsa::parse_signal("SIGNOPE").is_err());
/// ```
pub fn parse_signal(s: &str) -> Result<i32> {
    crate::signals::parse(s).map_err(Error::invalid_argument)
}

/// The default container configuration (what `capsa spec` writes): a
/// busybox-style `sh` with runc's default mounts, namespaces, masked
/// paths and capabilities. With `rootless`, runc's rootless variant: a user
/// namespace mapping `uid` and `gid` to root, no network namespace, and no
/// cgroup limits. As runc's, it has a cgroup namespace only on a pure
/// cgroup v2 host.
///
/// As JSON, in runc's field order; [`default_spec`] is the same as a
/// [`Spec`](oci_spec::runtime::Spec).
///
/// ```
/// let v = capsa::default_spec_json(false, 0, 0);
/// assert_eq!(v["process"]["args"][0], "sh");
/// assert_eq!(v["root"]["path"], "rootfs");
/// ```
pub fn default_spec_json(rootless: bool, uid: u32, gid: u32) -> serde_json::Value {
    crate::spec::default_spec(rootless, uid, gid)
}

/// [`default_spec_json`] as an [`oci_spec::runtime::Spec`], to change in
/// code and pass as [`CreateOptions::spec`](crate::CreateOptions::spec).
///
/// ```
/// let mut spec = capsa::default_spec(false, 0, 0).unwrap();
/// let mut process = spec.process().clone().unwrap();
/// process.set_args(Some(vec!["/bin/echo".into(), "hi".into()]));
/// process.set_terminal(Some(false));
/// spec.set_process(Some(process));
/// assert_eq!(spec.root().as_ref().unwrap().path().to_str(), Some("rootfs"));
/// ```
pub fn default_spec(rootless: bool, uid: u32, gid: u32) -> Result<oci_spec::runtime::Spec> {
    let v = default_spec_json(rootless, uid, gid);
    serde_json::from_value(v).map_err(|e| Error::Failed {
        message: format!("the default spec: {e}"),
    })
}

/// What this build of capsa supports, as runc's `features` JSON (hooks,
/// mount options, namespaces, capabilities, cgroup and seccomp support).
pub fn features() -> serde_json::Value {
    crate::features::features()
}

/// The state root a runtime uses when none is given, as runc chooses it:
/// [`SYSTEM_ROOT`] for root, `$XDG_RUNTIME_DIR/capsa` (made if missing,
/// mode 0700) for a non-root user or root in a user namespace whose `USER`
/// is not root. An error names what is wrong with `XDG_RUNTIME_DIR`.
pub fn default_root() -> Result<PathBuf> {
    crate::rootless::default_root().map_err(|e| Error::from(crate::error::Error::from(e)))
}

/// runc's rootless auto-detection: true when this process is not root, or
/// is root of a user namespace other than the host's (`unshare -r`). Pass
/// it to [`Runtime::with_rootless`] to behave as `capsa` does without
/// `--rootless`.
pub fn detect_rootless() -> bool {
    crate::rootless::detect()
}

/// Make every fd in 3..3+`n` that is not open a close-on-exec /dev/null,
/// for a caller that passes [`CreateOptions::preserve_fds`] (or
/// [`ExecOptions::preserve_fds`]) = `n`: no descriptor capsa opens later
/// can then land in the range that goes to the container, and the gaps
/// stay closed for the workload, as with runc. Call it before opening
/// anything else (the `capsa` command does it first thing). Stops at
/// `RLIMIT_NOFILE`.
///
/// [`CreateOptions::preserve_fds`]: crate::CreateOptions::preserve_fds
/// [`ExecOptions::preserve_fds`]: crate::ExecOptions::preserve_fds
pub fn reserve_preserved_fds(n: u32) -> Result<()> {
    let end = 3i32.saturating_add(i32::try_from(n).unwrap_or(i32::MAX));
    crate::sys::fill_fd_holes(3, end).map_err(|e| Error::Failed {
        message: format!("--preserve-fds: {e}"),
    })
}

/// Parse a Go duration as runc's `events --interval` takes it (`5s`,
/// `100ms`, `1m30s`, `1.5s`; units h, m, s, ms, us, µs, ns); it must be
/// positive.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(capsa::parse_duration("1m30s").unwrap(), Duration::from_secs(90));
/// assert!(capsa::parse_duration("0s").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<std::time::Duration> {
    crate::runtime::parse_interval(s).map_err(Error::invalid_argument)
}
