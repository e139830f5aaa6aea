//! The last steps before execve, shared by a container's init and by
//! `exec`: rlimits, bounding set, user, cwd, executable look-up,
//! no_new_privs, capabilities, and closing every descriptor the workload
//! must not inherit.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::Process;

use super::init::InitError;
use crate::bundle::ProcessPlan;
use crate::security::{self, caps};
use crate::sys::{self, Ctx, SysError};

/// Apply `process` to the calling process and return the executable to
/// execve. Order matters: rlimits, the process attributes (scheduler, I/O
/// priority...) and the bounding set need privileges the user switch drops;
/// capabilities are set last, after no_new_privs.
pub fn prepare(
    process: &Process,
    plan: &ProcessPlan,
    preserve_fds: i32,
    seccomp: Option<Seccomp>,
) -> Result<CString, InitError> {
    security::set_rlimits(process)?;
    plan.attrs.apply()?;
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
    // while we still have it, before the bounding set, the user switch and
    // the caps (runc's order); with no_new_privs, as late as possible.
    let nnp = process.no_new_privileges().unwrap_or(false);
    if let Some(s) = &seccomp
        && !nnp
    {
        s.load()?;
    }
    caps::apply_bounding(&plan.caps).map_err(|source| InitError::Field {
        field: "process.capabilities.bounding".into(),
        source,
    })?;
    // Before the switch, while we may still chown: the user must be able
    // to reopen its stdio (see console::owner for what may change owner).
    crate::console::fix_stdio_owner(process.user().uid(), process.terminal().unwrap_or(false))?;
    security::set_user(process)?;
    enter_cwd(process.cwd())?;
    let exe = lookup(&plan.args[0], &plan.env)?;
    security::set_no_new_privs(process)?;
    caps::apply(&plan.caps).map_err(|source| InitError::Field {
        field: "process.capabilities".into(),
        source,
    })?;
    close_inherited_fds(preserve_fds)?;
    if let Some(s) = &seccomp
        && nnp
    {
        s.load()?;
    }
    Ok(exe)
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
pub fn enter_cwd(cwd: &Path) -> Result<(), InitError> {
    nix::unistd::chdir(cwd)
        .ctx_at("chdir", cwd)
        .map_err(|source| InitError::Field {
            field: "process.cwd".into(),
            source,
        })?;
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
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
/// /etc/passwd (or "/") when the config does not set it.
pub fn env_with_home(process: &Process, env: &[CString]) -> Vec<CString> {
    let mut out = env.to_vec();
    if env.iter().any(|e| e.to_bytes().starts_with(b"HOME=")) {
        return out;
    }
    let home = sys::passwd_entry(process.user().uid())
        .map(|(_, home)| home)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string());
    if let Ok(c) = CString::new(format!("HOME={home}")) {
        out.push(c);
    }
    out
}
