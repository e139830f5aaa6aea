//! The last steps before execve, shared by a container's init and by
//! `exec`: rlimits, bounding set, user, cwd, executable look-up,
//! no_new_privs, capabilities, and closing every descriptor the workload
//! must not inherit.

use std::ffi::{CStr, CString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::Process;

use super::init::InitError;
use crate::bundle::ProcessPlan;
use crate::security::{self, CapSets, caps};
use crate::sys::{self, SysError};

/// What `prepare` leaves to the trampoline, which applies it after its own
/// start-up, right before the workload's execve (process/trampoline.rs).
#[derive(Debug, Default)]
pub struct Deferred {
    /// linux.seccomp, compiled, in a memfd (not close-on-exec).
    pub filter: Option<OwnedFd>,
    /// process.capabilities (unless a filter was loaded here): the init
    /// hands every capability over (caps::hand_over) and the trampoline
    /// sets these.
    pub caps: Option<CapSets>,
    /// The filter was loaded here already (SCMP_ACT_NOTIFY): the
    /// trampoline's own exec is filtered.
    pub loaded: bool,
}

impl Deferred {
    pub fn is_empty(&self) -> bool {
        self.filter.is_none() && self.caps.is_none()
    }
}

/// The executable to execve, and what the trampoline still has to apply.
pub struct Prepared {
    pub exe: CString,
    pub deferred: Deferred,
}

/// Apply `process` to the calling process and return the executable to
/// execve. Order matters: rlimits, the process attributes (scheduler, I/O
/// priority...) and the bounding set need privileges the user switch drops;
/// capabilities are set last, after no_new_privs.
///
/// The seccomp filter and the capabilities are applied by the trampoline
/// (see Deferred); the filter after everything the
/// runtime does itself (closing fds, the exec.fifo wait, startContainer
/// hooks, the trampoline's own start-up): a profile need allow nothing
/// but what the workload needs and its execve (runc and crun run such
/// profiles). Only a profile with SCMP_ACT_NOTIFY is loaded here, in
/// runc's order, as its listener must reach the agent through the parent,
/// which waits for it only until `Ready`.
pub fn prepare(
    process: &Process,
    plan: &ProcessPlan,
    preserve_fds: i32,
    seccomp: Option<Seccomp>,
) -> Result<Prepared, InitError> {
    let nnp = process.no_new_privileges().unwrap_or(false);
    let (load_here, defer) = match seccomp {
        Some(s) if s.filter.listener.is_some() => (Some(s), None),
        Some(s) => (None, Some(s.filter)),
        None => (None, None),
    };
    // The trampoline sets the capabilities (but under a filter loaded
    // here): its execve of the workload then runs with the configured
    // effective set, as runc's does (a non-root user's CAP_DAC_OVERRIDE
    // reaches a 0700 directory), and without no_new_privs it can load the
    // filter with CAP_SYS_ADMIN kept just for that.
    let defer_caps = load_here.is_none();
    security::set_rlimits(process)?;
    plan.attrs.apply()?;
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
    // while we still have it, before the bounding set, the user switch and
    // the caps (runc's order); with no_new_privs, as late as possible.
    if let Some(s) = &load_here
        && !nnp
    {
        s.load()?;
    }
    // Deferred caps keep the whole bounding set for the trampoline, which
    // drops it (it needs CAP_SETPCAP, which it gets across the execve).
    if !defer_caps {
        caps::apply_bounding(&plan.caps).map_err(|source| InitError::Field {
            field: "process.capabilities.bounding".into(),
            source,
        })?;
    }
    // Before the switch, while we may still chown: the user must be able
    // to reopen its stdio (see console::owner for what may change owner).
    crate::console::fix_stdio_owner(process.user().uid(), process.terminal().unwrap_or(false))?;
    // As root first, as runc does: a cwd only root may search (/root for a
    // non-root user) still works; again as the user if root was refused (a
    // root-squashed volume the user owns).
    let entered = enter_cwd(process.cwd(), true)?;
    security::set_user(process)?;
    if !entered {
        enter_cwd(process.cwd(), false)?;
    }
    // Look the executable up with the configured effective set, as runc.
    caps::set_effective(plan.caps.effective).map_err(|source| InitError::Field {
        field: "process.capabilities.effective".into(),
        source,
    })?;
    let exe = lookup(&plan.args[0], &plan.env)?;
    security::set_no_new_privs(process)?;
    let caps_result = if defer_caps {
        caps::hand_over()
    } else {
        caps::apply(&plan.caps)
    };
    caps_result.map_err(|source| InitError::Field {
        field: "process.capabilities".into(),
        source,
    })?;
    close_inherited_fds(preserve_fds)?;
    // After the close-on-exec sweep: the trampoline must inherit it.
    let filter = defer.map(|f| f.to_memfd()).transpose()?;
    if let Some(s) = &load_here
        && nnp
    {
        s.load()?;
    }
    Ok(Prepared {
        exe,
        deferred: Deferred {
            filter,
            caps: defer_caps.then_some(plan.caps),
            loaded: load_here.is_some(),
        },
    })
}

/// linux.seccomp to load, and the channel to the parent for its listener fd.
pub struct Seccomp<'a> {
    pub filter: &'a crate::security::seccomp::Filter,
    pub chan: &'a super::sync::Channel,
}

impl Seccomp<'_> {
    /// Load the filter; with SCMP_ACT_NOTIFY, pass the listener fd to the
    /// parent (which hands it to the agent) and wait until it has.
    fn load(&self) -> Result<(), InitError> {
        use super::sync::Msg;
        if let Some(fd) = self.filter.load()? {
            self.chan
                .send_fd(&Msg::SeccompFd, std::os::fd::AsFd::as_fd(&fd))?;
            self.chan.expect(Msg::SeccompDone)?;
        }
        Ok(())
    }
}

/// Nothing but stdio and the --preserve-fds range may reach the workload
/// (containerd's shim leaks fd 3 into the runtime; a leaked host directory
/// fd is how CVE-2024-21626 escaped). In the range, the caller's fds came
/// through execve without FD_CLOEXEC and stay so; anything of ours that
/// landed in a gap after crate::inherit closed the placeholder has it, and
/// the gap is closed again for the workload.
pub fn close_inherited_fds(preserve_fds: i32) -> Result<(), SysError> {
    sys::cloexec_fds_from(3 + preserve_fds)
}

/// chdir to process.cwd and make sure we really are under the container's
/// root afterwards: a cwd through a leaked fd (/proc/self/fd/N) would land
/// outside it (CVE-2024-21626 class), and getcwd then reports it unreachable.
/// Ok(false) when `may_retry` and the chdir was refused by permissions.
pub fn enter_cwd(cwd: &Path, may_retry: bool) -> Result<bool, InitError> {
    match nix::unistd::chdir(cwd) {
        Ok(()) => {}
        Err(Errno::EACCES | Errno::EPERM) if may_retry => return Ok(false),
        Err(e) => {
            return Err(InitError::Field {
                field: "process.cwd".into(),
                source: SysError::at("chdir", cwd, e),
            });
        }
    }
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(true),
        _ => Err(InitError::Field {
            field: "process.cwd".into(),
            source: SysError::at("cwd is outside the container root", cwd, Errno::EPERM),
        }),
    }
}

/// Find the executable as runc does (Go's exec.LookPath with the container's
/// PATH), so that create fails with the texts engines map to 126/127.
pub fn lookup(arg0: &CStr, env: &[CString]) -> Result<CString, InitError> {
    let name = Path::new(std::ffi::OsStr::from_bytes(arg0.to_bytes()));
    let shown = name.display();
    if arg0.to_bytes().contains(&b'/') {
        return match std::fs::metadata(name) {
            Ok(m) if !m.is_dir() && m.permissions().mode() & 0o111 != 0 => Ok(arg0.to_owned()),
            Ok(_) => Err(InitError::Exec(format!("\"{shown}\": permission denied"))),
            Err(e) => Err(InitError::Exec(format!(
                "\"{shown}\": stat {shown}: {}",
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT))
                    .desc()
                    .to_lowercase()
            ))),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.to_bytes().strip_prefix(b"PATH="))
        .unwrap_or(b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut denied = false;
    for dir in path.split(|&c| c == b':') {
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let cand = Path::new(std::ffi::OsStr::from_bytes(dir)).join(name);
        if let Ok(m) = std::fs::metadata(&cand) {
            if !m.is_dir() && m.permissions().mode() & 0o111 != 0 {
                return CString::new(cand.as_os_str().as_bytes())
                    .map_err(|_| InitError::Exec(format!("\"{shown}\": invalid path")));
            }
            denied = true;
        }
    }
    if denied {
        return Err(InitError::Exec(format!("\"{shown}\": permission denied")));
    }
    Err(InitError::Exec(format!(
        "\"{shown}\": executable file not found in $PATH"
    )))
}

/// The environment to exec with: runc adds HOME from the container's
/// /etc/passwd (or "/") when the config does not set it, or sets it empty
/// (an empty HOME is replaced where it stands).
pub fn env_with_home(process: &Process, env: &[CString]) -> Vec<CString> {
    let mut out = env.to_vec();
    let at = env.iter().position(|e| e.to_bytes().starts_with(b"HOME="));
    if at.is_some_and(|i| env[i].to_bytes() != b"HOME=") {
        return out;
    }
    let home = sys::passwd_entry(process.user().uid())
        .map(|(_, home)| home)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string());
    if let Ok(c) = CString::new(format!("HOME={home}")) {
        match at {
            Some(i) => out[i] = c,
            None => out.push(c),
        }
    }
    out
}
