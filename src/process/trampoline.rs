//! The workload's execve goes through a read-only copy of capsa's own
//! executable (the CVE-2019-5736 defence).
//!
//! Until its last execve, a container's init (or an exec'd process) is a
//! copy of capsa: its /proc/self/exe is capsa's binary on the host. If the
//! workload is a script whose interpreter is /proc/self/exe (or a symlink to
//! it, or a binfmt_misc interpreter the image provides), the kernel runs
//! capsa's binary as a container process. That process is dumpable, so the
//! container opens its /proc/PID/exe, waits for it to exit and reopens the
//! fd for writing: the host's capsa is overwritten, and the next `capsa`
//! that root runs on the host is the container's code. Non-dumpability does
//! not help (the exec resets it), and checking the file before execve races
//! with a container that rewrites it.
//!
//! The defence, runc's without its copy of the binary: before cloning, the
//! parent makes a read-only, nosuid, nodev detached bind mount of its own
//! executable (open_tree + mount_setattr: nothing is copied, nothing on the
//! host changes), and the process's last step is to execve *that* with
//! [`ARGV0`] ("trampoline mode"), which then execs the workload. From then
//! on /proc/self/exe is capsa on a read-only mount that no path reaches:
//! running it from the container is harmless, reopening it for writing
//! fails with EROFS.
//!
//! The trampoline runs with the workload's user, rlimits and fds already in
//! place. It resets what Rust's runtime changed (SIGPIPE ignored, which
//! execve would keep), applies the LSM exec labels (they act at the next
//! execve, so here and not before the trampoline's own), then what the
//! init deferred to it (finalize::Deferred): the capabilities, when the
//! filter is loaded without no_new_privs (that needs CAP_SYS_ADMIN), and
//! the seccomp filter, last: after it only the workload's execve runs, so
//! a profile need allow no more than the workload needs (issue 10). Its
//! own exec happens before any filter (but a SCMP_ACT_NOTIFY one, loaded by
//! the init): by fd, else by /proc path; if both fail the workload is not
//! exec'd directly (fail closed). It reports a failed execve where the init would
//! have: exec.fifo for `start`, the sync socket for `exec`.
//!
//! A program that embeds capsa's library must call [`run_if_asked`] first
//! thing in `main`: the trampoline is its own executable, and so is the
//! helper that creates and execs for a multi-threaded caller (helper.rs).

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::Process;

use super::finalize::Deferred;
use super::sync::{Channel, Msg};
use crate::rootfs::newmount::{
    MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, clone_tree, set_attr,
};
use crate::security::caps::{self, CapSets};
use crate::security::lsm;
use crate::security::seccomp::{Filter, SeccompError};
use crate::sys::{self, SysError, SysResult};

/// argv[0] that puts the capsa binary in trampoline mode.
pub const ARGV0: &CStr = c"capsa:[exec]";

/// Where a failed execve of the workload is reported.
#[derive(Debug, Clone, Copy)]
pub enum Report {
    /// exec.fifo, read by `capsa start`: the error text.
    Fifo(RawFd),
    /// The sync socket, read by `capsa exec`: a `Msg::Error`.
    Chan(RawFd),
    /// Nobody listens (hooks): stderr and the exit status only.
    Stderr,
}

impl Report {
    fn encode(self) -> (&'static CStr, CString) {
        let (kind, fd) = match self {
            Report::Fifo(fd) => (c"fifo", fd),
            Report::Chan(fd) => (c"chan", fd),
            Report::Stderr => (c"none", -1),
        };
        (kind, CString::new(fd.to_string()).unwrap_or_default())
    }

    fn decode(kind: &OsStr, fd: &OsStr) -> Option<Report> {
        let fd: RawFd = fd.to_str()?.parse().ok()?;
        match kind.as_bytes() {
            b"fifo" if fd >= 0 => Some(Report::Fifo(fd)),
            b"chan" if fd >= 0 => Some(Report::Chan(fd)),
            b"none" => Some(Report::Stderr),
            _ => None,
        }
    }

    fn fd(self) -> Option<RawFd> {
        match self {
            Report::Fifo(fd) | Report::Chan(fd) => Some(fd),
            Report::Stderr => None,
        }
    }

    /// Tell whoever waits that the workload could not be started.
    pub fn failed(self, errno: Errno, text: &str) {
        match self {
            Report::Fifo(fd) => {
                // SAFETY: fd is the process's open exec.fifo, owned by it
                // and still open; the borrow ends with this call.
                let f = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                let _ = nix::unistd::write(f, text.as_bytes());
                // Past `Ready` nobody reads the channel: the workload's
                // stderr gets it too, bare, as runc's init prints it (a
                // foreground `run` reports it only there).
                eprintln!("{text}");
            }
            Report::Chan(fd) => {
                let chan = Channel(sys::own(fd));
                let _ = chan.send(&Msg::Error {
                    errno: errno as i32,
                    text: text.to_string(),
                });
                std::mem::forget(chan);
            }
            Report::Stderr => eprintln!("capsa: {text}"),
        }
    }
}

/// Why the workload did not start.
#[derive(Debug)]
pub enum ExecFailure {
    /// execve itself.
    Exec(Errno),
    /// An LSM label could not be set (the field, and the write that failed).
    Lsm(&'static str, SysError),
    /// A step left to the trampoline (capabilities, the seccomp filter)
    /// failed: the field, and the call.
    Deferred(&'static str, SysError),
    /// The trampoline itself could not be exec'd, neither by its fd
    /// (execveat) nor by its /proc path (execve): the workload is not
    /// started directly instead, /proc/self/exe would be the host's capsa
    /// (CVE-2019-5736). `filtered`: the seccomp profile was loaded already.
    Trampoline {
        execveat: Errno,
        execve: Errno,
        path: String,
        filtered: bool,
    },
}

impl ExecFailure {
    /// The message, in runc's words for execve errors.
    pub fn message(&self, exe: &CStr) -> String {
        match self {
            ExecFailure::Exec(e) => format!(
                "exec {}: {}",
                exe.to_string_lossy(),
                e.desc().to_lowercase()
            ),
            ExecFailure::Lsm(field, e) | ExecFailure::Deferred(field, e) => format!("{field}: {e}"),
            ExecFailure::Trampoline {
                execveat,
                execve,
                path,
                filtered,
            } => {
                let why = format!(
                    "(execveat: {}; execve {path}: {})",
                    execveat.desc().to_lowercase(),
                    execve.desc().to_lowercase()
                );
                let tail = "the workload is not exec'd from the runtime's own binary instead \
                            (CVE-2019-5736)";
                if *filtered {
                    format!(
                        "linux.seccomp: the runtime cannot exec its read-only copy under this \
                         profile {why}: allow execveat (or execve, with /proc mounted); {tail}"
                    )
                } else {
                    format!("exec of the runtime's read-only copy failed {why}; {tail}")
                }
            }
        }
    }

    pub fn errno(&self) -> Errno {
        match self {
            ExecFailure::Exec(e) => *e,
            ExecFailure::Lsm(_, e) | ExecFailure::Deferred(_, e) => e.errno,
            ExecFailure::Trampoline { execveat, .. } => *execveat,
        }
    }

    /// 127 for a missing file (as shells and runc), else 126.
    pub fn exit_code(&self) -> i32 {
        if matches!(self, ExecFailure::Exec(Errno::ENOENT)) {
            127
        } else {
            126
        }
    }
}

/// A read-only detached bind mount of capsa's own executable.
#[derive(Debug)]
pub struct Trampoline {
    fd: OwnedFd,
    /// A sealed copy of a binary the caller may write (see `unprivileged`).
    copy: bool,
}

impl Trampoline {
    /// Parent side, before cloning (the child inherits the close-on-exec
    /// fd). Needs CAP_SYS_ADMIN, which `capsa create`/`exec` have as root.
    pub fn prepare() -> SysResult<Trampoline> {
        let exe = Path::new("/proc/self/exe");
        match Self::prepare_from(exe) {
            // Not privileged for mounts (rootless): see `unprivileged`.
            Err(e) if e.errno == Errno::EPERM => Self::unprivileged(exe),
            r => r,
        }
    }

    /// Without CAP_SYS_ADMIN no read-only mount can be made. A binary that
    /// root owns and nobody else may write is safe as it is: no id in the
    /// container's user namespace maps to root, so even its root cannot
    /// override the permissions. Any other binary (a user's own build) is
    /// exec'd from a sealed memfd copy, which nothing can write (runc's
    /// rootless defence).
    fn unprivileged(exe: &Path) -> SysResult<Trampoline> {
        let file = std::fs::File::open(exe).map_err(|e| SysError::io("open", exe, &e))?;
        let st = nix::sys::stat::fstat(&file).map_err(|e| SysError::at("stat", exe, e))?;
        // SAFETY: exe is a NUL-free static path made into a C string here.
        let writable = unsafe {
            libc::faccessat(
                libc::AT_FDCWD,
                c"/proc/self/exe".as_ptr(),
                libc::W_OK,
                libc::AT_EACCESS,
            )
        } == 0;
        if st.st_uid == 0 && st.st_mode & 0o022 == 0 && !writable {
            return Ok(Trampoline {
                fd: file.into(),
                copy: false,
            });
        }
        Ok(Trampoline {
            fd: sealed_copy(file, exe)?,
            copy: true,
        })
    }

    fn prepare_from(exe: &Path) -> SysResult<Trampoline> {
        let fd = nix::fcntl::open(exe, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| SysError::at("open", exe, e))?;
        let tree = clone_tree(&fd, false, exe)?;
        set_attr(
            &tree,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            0,
            false,
            exe,
        )?;
        Ok(Trampoline {
            fd: tree,
            copy: false,
        })
    }

    /// The running binary (what /proc/PID/exe of a process still running
    /// capsa's code names) is one the caller cannot write: a read-only
    /// mount or root's file; not when a sealed copy stands in for it.
    pub fn shields_host_binary(&self) -> bool {
        !self.copy
    }

    /// Its fd, for a child that execs it with execveat.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The path a child process can exec it by ("/proc/self/fd/N"), for
    /// spawning hooks through it.
    pub fn proc_path(&self) -> String {
        format!("/proc/self/fd/{}", self.fd.as_raw_fd())
    }

    /// The arguments after argv[0] that make the trampoline exec `exe`
    /// with `argv`, reporting to `report`, with `process`'s LSM labels,
    /// after applying `deferred`.
    pub fn args(
        report: Report,
        exe: &CStr,
        process: &Process,
        deferred: &Deferred,
        argv: &[CString],
    ) -> Vec<CString> {
        let (kind, fd) = report.encode();
        let text =
            |v: &Option<String>| CString::new(v.clone().unwrap_or_default()).unwrap_or_default();
        let filter = deferred.filter.as_ref().map_or(-1, |f| f.as_raw_fd());
        let caps = deferred.caps.map_or_else(String::new, |c| {
            format!(
                "{:x}:{:x}:{:x}:{:x}:{:x}",
                c.bounding, c.effective, c.permitted, c.inheritable, c.ambient
            )
        });
        let mut out = vec![
            kind.to_owned(),
            fd,
            exe.to_owned(),
            text(process.apparmor_profile()),
            text(process.selinux_label()),
            CString::new(filter.to_string()).unwrap_or_default(),
            CString::new(caps).unwrap_or_default(),
        ];
        out.extend(argv.iter().cloned());
        out
    }
}

/// A memfd holding a copy of `file`, sealed against any change.
fn sealed_copy(mut file: std::fs::File, exe: &Path) -> SysResult<OwnedFd> {
    // SAFETY: a static NUL-terminated name and integer flags.
    let fd = unsafe {
        libc::memfd_create(
            c"capsa".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(SysError::new("memfd_create", Errno::last()));
    }
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    let mut copy = unsafe { std::fs::File::from_raw_fd(fd) };
    std::io::copy(&mut file, &mut copy).map_err(|e| SysError::io("copy", exe, &e))?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on a descriptor we own, with an integer argument.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(SysError::new("fcntl(F_ADD_SEALS)", Errno::last()));
    }
    Ok(copy.into())
}

/// The last step of an init or an exec'd process: run the workload through
/// the trampoline, by its fd (execveat) or else its /proc path (execve: a
/// profile loaded already may allow only that). Directly only when the
/// kernel refuses the trampoline's file to the workload's user (EACCES)
/// with no filter loaded and nothing deferred: /proc/self/exe, the same
/// file, is refused alike. Anything else fails closed. Returns only on
/// failure.
pub fn exec_workload(
    t: &Trampoline,
    report: Report,
    process: &Process,
    exe: &CStr,
    argv: &[CString],
    env: &[CString],
    deferred: &Deferred,
) -> ExecFailure {
    let filtered = deferred.loaded;
    // The report fd must outlive this execve (and only this one: the
    // trampoline makes it close-on-exec again).
    if let Some(fd) = report.fd() {
        set_cloexec(fd, false);
    }
    let mut full: Vec<&CStr> = vec![ARGV0];
    let args = Trampoline::args(report, exe, process, deferred, argv);
    full.extend(args.iter().map(CString::as_c_str));
    let at = sys::execveat_fd(&t.fd, &full, env);
    let path = t.proc_path();
    let by_path = match CString::new(path.clone()) {
        Ok(p) => execve(&p, &full, Env::Given(env)),
        Err(_) => Errno::EINVAL,
    };
    if let Some(fd) = report.fd() {
        set_cloexec(fd, true);
    }
    if at != Errno::EACCES || filtered || !deferred.is_empty() {
        return ExecFailure::Trampoline {
            execveat: at,
            execve: by_path,
            path,
            filtered,
        };
    }
    let profile = process.apparmor_profile().as_deref();
    let label = process.selinux_label().as_deref();
    if let Err((field, e)) = lsm::apply_labels(profile, label) {
        return ExecFailure::Lsm(field, e);
    }
    default_sigpipe();
    ExecFailure::Exec(execve(exe, argv, Env::Given(env)))
}

fn set_cloexec(fd: RawFd, on: bool) {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: F_SETFD on an integer fd touches only that fd's flags.
    unsafe { libc::fcntl(fd, libc::F_SETFD, flags) };
}

/// Rust's runtime ignores SIGPIPE at start-up; an ignored signal stays
/// ignored across execve, and workloads expect the default.
fn default_sigpipe() {
    // SAFETY: resetting one signal's disposition to SIG_DFL; no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// The environment to execve with.
enum Env<'a> {
    /// Exactly the one this process was started with (`environ`).
    Inherited,
    Given(&'a [CString]),
}

fn execve<S: AsRef<CStr>>(path: &CStr, argv: &[S], env: Env) -> Errno {
    let a = sys::ptr_array(argv);
    let given;
    unsafe extern "C" {
        static environ: *const *const libc::c_char;
    }
    let envp = match env {
        // SAFETY: reading the process's environ pointer, which nothing in
        // this single-threaded process changes (capsa never sets variables).
        Env::Inherited => unsafe { environ },
        Env::Given(e) => {
            given = sys::ptr_array(e);
            given.as_ptr()
        }
    };
    // SAFETY: `a` is a NULL-terminated array of NUL-terminated strings that
    // outlive the call, and so is `envp` (ours, or the process's environ).
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), envp) };
    Errno::last()
}

/// Trampoline mode: if argv[0] is [`ARGV0`], exec the workload and never
/// return; helper mode (argv[0] `helper::HELPER_ARGV0`): serve one create or
/// exec for a multi-threaded caller and exit; otherwise return at once, having
/// noted that this program can serve as a helper. Call first thing in `main`.
pub fn run_if_asked() {
    super::helper::mark_entry_called();
    let mut args = std::env::args_os();
    let argv0 = args.next();
    if argv0.as_deref() == Some(OsStr::from_bytes(super::helper::HELPER_ARGV0.to_bytes())) {
        super::helper::serve(args.next())
    }
    if argv0.as_deref()
        == Some(OsStr::from_bytes(
            crate::console::proxy::PROXY_ARGV0.to_bytes(),
        ))
    {
        crate::console::proxy::serve(args.next())
    }
    if argv0.as_deref() != Some(OsStr::from_bytes(ARGV0.to_bytes())) {
        return;
    }
    // Nothing of this process should be reachable from the container while
    // it runs capsa's code (it is already running the workload's creds).
    let _ = crate::security::set_non_dumpable();
    let rest: Vec<OsString> = args.collect();
    trampoline_main(&rest)
}

fn trampoline_main(a: &[OsString]) -> ! {
    let parsed = (|| {
        let report = Report::decode(a.first()?, a.get(1)?)?;
        let exe = CString::new(a.get(2)?.as_bytes()).ok()?;
        let opt = |s: &OsString| (!s.is_empty()).then(|| s.to_string_lossy().into_owned());
        let profile = opt(a.get(3)?);
        let label = opt(a.get(4)?);
        let filter: RawFd = a.get(5)?.to_str()?.parse().ok()?;
        let caps = match a.get(6)?.to_str()? {
            "" => None,
            c => {
                let m: Vec<u64> = c
                    .split(':')
                    .map(|h| u64::from_str_radix(h, 16).ok())
                    .collect::<Option<_>>()?;
                let [bounding, effective, permitted, inheritable, ambient] = m[..] else {
                    return None;
                };
                Some(CapSets {
                    bounding,
                    effective,
                    permitted,
                    inheritable,
                    ambient,
                })
            }
        };
        let argv: Option<Vec<CString>> = a[7..]
            .iter()
            .map(|s| CString::new(s.as_bytes()).ok())
            .collect();
        Some((report, exe, profile, label, (filter, caps), argv?))
    })();
    let Some((report, exe, profile, label, deferred, argv)) = parsed else {
        eprintln!("capsa: trampoline mode: malformed arguments");
        sys::child_exit(126)
    };
    if let Some(fd) = report.fd() {
        set_cloexec(fd, true);
    }
    default_sigpipe();
    let failure = match lsm::apply_labels(profile.as_deref(), label.as_deref()) {
        Err((field, e)) => ExecFailure::Lsm(field, e),
        Ok(()) => match apply_deferred(deferred.0, deferred.1) {
            Err(f) => f,
            // Past the filter: nothing but this execve (and, should it
            // fail, the report and _exit).
            Ok(()) => ExecFailure::Exec(execve(&exe, &argv, Env::Inherited)),
        },
    };
    report.failed(failure.errno(), &failure.message(&exe));
    sys::child_exit(failure.exit_code())
}

/// The init's deferred steps (finalize::Deferred), after the trampoline's
/// own start-up: the configured capabilities (CAP_SYS_ADMIN kept in
/// effective and permitted for the load without no_new_privs: execve
/// computes the workload's sets without them), then the seccomp filter.
/// After it, only the execve.
fn apply_deferred(filter: RawFd, caps: Option<CapSets>) -> Result<(), ExecFailure> {
    let filter = if filter >= 0 {
        let fd = sys::own(filter);
        let f = Filter::from_memfd(&fd).map_err(|e| ExecFailure::Deferred("linux.seccomp", e))?;
        Some(f)
    } else {
        None
    };
    if let Some(mut c) = caps {
        // SAFETY: prctl with integer arguments only.
        let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) } == 1;
        if filter.is_some() && !nnp {
            c.effective |= caps::SYS_ADMIN;
            c.permitted |= caps::SYS_ADMIN;
        }
        caps::apply_bounding(&c)
            .map_err(|e| ExecFailure::Deferred("process.capabilities.bounding", e))?;
        caps::apply(&c).map_err(|e| ExecFailure::Deferred("process.capabilities", e))?;
    }
    if let Some(f) = filter {
        f.load().map_err(|e| match e {
            SeccompError::Load(e) | SeccompError::Listener { source: e, .. } => {
                ExecFailure::Deferred("linux.seccomp: loading the filter", e)
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_roundtrip() {
        for r in [Report::Fifo(7), Report::Chan(12), Report::Stderr] {
            let (kind, fd) = r.encode();
            let back = Report::decode(
                OsStr::from_bytes(kind.to_bytes()),
                OsStr::from_bytes(fd.to_bytes()),
            )
            .expect("decodes");
            assert_eq!(format!("{back:?}"), format!("{r:?}"));
        }
        assert!(Report::decode(OsStr::new("fifo"), OsStr::new("-1")).is_none());
        assert!(Report::decode(OsStr::new("x"), OsStr::new("3")).is_none());
    }

    #[test]
    fn trampoline_mount_is_read_only() {
        // As root: a detached read-only bind of a file (a copy of one, as
        // the running test binary itself is busy, ETXTBSY, not EROFS).
        let dir = std::env::temp_dir().join(format!("capsa-tramp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("exe");
        std::fs::write(&file, b"#!/bin/true\n").expect("write");
        let t = Trampoline::prepare_from(&file).expect("prepare");
        let p = t.proc_path();
        let e = std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .expect_err("writable");
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{p}: {e}");
        // ... yet the very same file, still writable by its own path.
        use std::os::unix::fs::MetadataExt;
        let a = std::fs::metadata(&p).expect("stat trampoline");
        let b = std::fs::metadata(&file).expect("stat file");
        assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
        assert!(std::fs::OpenOptions::new().append(true).open(&file).is_ok());
        drop(t);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
