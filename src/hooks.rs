//! OCI hooks: each runs as a child with the container's state JSON on its
//! stdin, its own args (args[0] is argv[0]) and env, and an optional
//! timeout in seconds. Which process runs which hook, and when, is decided
//! by the callers (see runtime-spec config.md "POSIX-platform Hooks"):
//! prestart + createRuntime by the parent, createContainer and
//! startContainer by the init, poststart by `start`, poststop by `delete`.
//!
//! A hook without `env` inherits an environment, as in runc: a hook in the
//! runtime namespace the runtime's, createContainer and startContainer the
//! container process's (`Inherit`).

use std::ffi::{CString, OsStr};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use oci_spec::runtime::Hook;

use crate::process::finalize::Deferred;
use crate::process::trampoline::{ARGV0, Report, Trampoline};
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("error running {kind} hook #{index} ({path}): {msg}")]
    Failed {
        kind: &'static str,
        index: usize,
        path: String,
        msg: String,
    },
}

/// What a hook inherits: the environment when its config has no `env`,
/// and its working directory.
#[derive(Debug, Clone, Copy)]
pub enum Inherit<'a> {
    /// The runtime's environment, hooks in the runtime namespace; `cwd`
    /// if given (create's hooks run in the bundle, as runc chdirs there),
    /// else the runtime's.
    Runtime { cwd: Option<&'a std::path::Path> },
    /// The container process's `process.env`: hooks the init runs.
    Process(&'a [CString]),
}

/// The trampoline hooks are spawned through, and what it applies before
/// exec'ing them (the workload's capabilities and seccomp filter).
#[derive(Clone, Copy)]
pub struct Via<'a> {
    pub trampoline: &'a Trampoline,
    pub deferred: &'a Deferred,
}

/// Run `hooks` in order, stopping at the first failure.
pub fn run(kind: &'static str, hooks: &[Hook], state_json: &[u8]) -> Result<(), HookError> {
    run_via(
        None,
        Inherit::Runtime { cwd: None },
        kind,
        hooks,
        state_json,
    )
}

/// `run` with `dir` as the hooks' working directory.
pub fn run_in(
    dir: &std::path::Path,
    kind: &'static str,
    hooks: &[Hook],
    state_json: &[u8],
) -> Result<(), HookError> {
    run_via(
        None,
        Inherit::Runtime { cwd: Some(dir) },
        kind,
        hooks,
        state_json,
    )
}

/// `run`, each hook spawned through the trampoline when given: for hooks
/// whose path resolves in the container (startContainer), which must not
/// be able to run capsa's own binary (see process/trampoline.rs).
pub fn run_via(
    via: Option<Via>,
    env: Inherit,
    kind: &'static str,
    hooks: &[Hook],
    state_json: &[u8],
) -> Result<(), HookError> {
    // Lazy: the hooks after the first failure are not run.
    match failures(via, env, kind, hooks, state_json).next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Each hook, run in order as the iterator is advanced, yielding its
/// failure if it fails.
fn failures<'a>(
    via: Option<Via<'a>>,
    env: Inherit<'a>,
    kind: &'static str,
    hooks: &'a [Hook],
    state_json: &'a [u8],
) -> impl Iterator<Item = HookError> + 'a {
    hooks.iter().enumerate().filter_map(move |(index, h)| {
        let msg = run_one(via, env, h, state_json).err()?;
        Some(HookError::Failed {
            kind,
            index,
            path: h.path().display().to_string(),
            msg,
        })
    })
}

/// poststop hooks with the "stopped" state, every one whatever the others
/// do: each failure is a warning on stderr, never an error (runtime-spec
/// runtime.md, lifecycle step 13).
pub fn run_poststop(
    hooks: &[Hook],
    id: &str,
    bundle: &std::path::Path,
    annotations: &std::collections::HashMap<String, String>,
) {
    if hooks.is_empty() {
        return;
    }
    let json = state_json(id, "stopped", 0, bundle, annotations);
    for e in failures(
        None,
        Inherit::Runtime { cwd: None },
        "poststop",
        hooks,
        &json,
    ) {
        eprintln!("capsa: warning: {e}");
    }
}

/// The hook's whole environment: its own `env` if it has one (even
/// empty), else what `inherit` says.
fn environment(h: &Hook, inherit: Inherit) -> Vec<CString> {
    match (h.env(), inherit) {
        (Some(list), _) => list
            .iter()
            .filter_map(|kv| CString::new(kv.as_bytes()).ok())
            .collect(),
        (None, Inherit::Process(list)) => list.to_vec(),
        (None, Inherit::Runtime { .. }) => std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).ok()
            })
            .collect(),
    }
}

fn command(via: Option<Via>, inherit: Inherit, h: &Hook) -> Command {
    let args = h.args().as_deref().unwrap_or(&[]);
    let env = environment(h, inherit);
    let mut cmd = match via {
        None => {
            let mut cmd = Command::new(h.path());
            if let Some((first, rest)) = args.split_first() {
                cmd.arg0(first);
                cmd.args(rest);
            }
            cmd
        }
        Some(Via { trampoline, .. }) => Command::new(trampoline.proc_path()),
    };
    cmd.env_clear();
    for kv in &env {
        let kv = kv.as_bytes();
        if let Some(eq) = kv.iter().position(|&c| c == b'=') {
            cmd.env(
                OsStr::from_bytes(&kv[..eq]),
                OsStr::from_bytes(&kv[eq + 1..]),
            );
        }
    }
    if let Inherit::Runtime { cwd: Some(dir) } = inherit {
        cmd.current_dir(dir);
    }
    // Only stdio crosses into a hook: not the caller's other fds (an
    // engine's pipe would stay open for as long as the hook runs), not the
    // workload's --preserve-fds, not anything of ours (crate::inherit).
    // Registered first: the trampoline step below execs.
    // SAFETY: the closure runs in the forked child before execve and makes
    // one close_range call, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(crate::inherit::cloexec_all_but_stdio);
    }
    let Some(Via {
        trampoline: t,
        deferred,
    }) = via
    else {
        return cmd;
    };
    let path = CString::new(h.path().as_os_str().as_bytes()).unwrap_or_default();
    let argv: Vec<CString> = if args.is_empty() {
        vec![path.clone()]
    } else {
        args.iter()
            .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
            .collect()
    };
    let process = oci_spec::runtime::Process::default();
    let targs = Trampoline::args(Report::Stderr, &path, &process, deferred, &argv);
    cmd.arg0(OsStr::from_bytes(ARGV0.to_bytes()));
    for a in &targs {
        cmd.arg(OsStr::from_bytes(a.as_bytes()));
    }
    // By its fd first, so that a container without /proc still spawns its
    // hooks through the trampoline (the path above is the fallback).
    let mut full: Vec<CString> = vec![ARGV0.to_owned()];
    full.extend(targs);
    let fd = t.raw_fd();
    let filter = deferred.filter.as_ref().map(|f| f.as_raw_fd());
    // SAFETY: runs in the forked child before its exec. The init that
    // spawns hooks through the trampoline is single-threaded, so the
    // allocation in execveat_fd (its pointer arrays) cannot meet a lock
    // held by another thread; fd is the trampoline's, open in the child.
    unsafe {
        cmd.pre_exec(move || {
            // The trampoline reads the filter from this fd after its exec:
            // it must survive the close-on-exec step above.
            if let Some(f) = filter {
                // SAFETY: fcntl(F_SETFD) on a descriptor open in the child.
                libc::fcntl(f, libc::F_SETFD, 0);
            }
            let refs: Vec<&std::ffi::CStr> = full.iter().map(CString::as_c_str).collect();
            // SAFETY: fd stays open in the child until its exec.
            let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
            let _ = sys::execveat_fd(&fd, &refs, &env);
            Ok(())
        });
    }
    cmd
}

fn run_one(via: Option<Via>, env: Inherit, h: &Hook, state_json: &[u8]) -> Result<(), String> {
    let mut cmd = command(via, env, h);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        // Neither its fd nor /proc reach the trampoline: spawn directly,
        // unless it has steps to apply (the hook would skip them).
        Err(e)
            if via.is_some_and(|v| v.deferred.is_empty())
                && e.kind() == std::io::ErrorKind::NotFound =>
        {
            return run_one(None, env, h, state_json);
        }
        r => r.map_err(|e| e.to_string().to_lowercase())?,
    };
    if let Some(mut stdin) = child.stdin.take() {
        // The whole state fits in the pipe, so that the write cannot block
        // on a hook that does not read it (its timeout runs after). Large
        // annotations can pass the 64 KiB default.
        if state_json.len() > 65536 {
            use std::os::fd::AsRawFd;
            let size = libc::c_int::try_from(state_json.len()).unwrap_or(libc::c_int::MAX);
            // SAFETY: fcntl on a pipe fd we own, integer argument only.
            unsafe { libc::fcntl(stdin.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
        }
        // A hook that does not read its stdin is not an error (EPIPE).
        let _ = stdin.write_all(state_json);
    }
    if let Some(secs) = h.timeout() {
        if secs <= 0 {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timeout must be positive, got {secs}"));
        }
        let pidfd = sys::pidfd_open(child.id() as i32).map_err(|e| e.to_string())?;
        let deadline = std::time::Instant::now()
            + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX / 2));
        // A signal (EINTR) is not the timeout: poll again for what is left.
        let ready = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.unwrap_or(0),
            }
        };
        if ready == 0 {
            let _ = child.kill();
            let _ = child.wait();
            // runc's words.
            return Err(format!("hook ran past specified timeout of {secs}.0s"));
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{}, stdout: {}, stderr: {}",
        status_text(out.status),
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    ))
}

/// How a hook ended, in runc's words (Go's: "exit status 1",
/// "signal: killed").
fn status_text(st: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => {
            // SAFETY: strsignal returns a pointer to a static or
            // thread-local NUL-terminated string, read at once.
            let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(sig)) };
            format!("signal: {}", name.to_string_lossy().to_lowercase())
        }
        _ => st.to_string(),
    }
}

/// The state JSON hooks receive (runtime.md "State").
pub fn state_json(
    id: &str,
    status: &str,
    pid: i32,
    bundle: &std::path::Path,
    annotations: &std::collections::HashMap<String, String>,
) -> Vec<u8> {
    let mut v = serde_json::json!({
        "ociVersion": crate::state::OCI_VERSION,
        "id": id,
        "status": status,
        "bundle": bundle,
    });
    if pid > 0 {
        v["pid"] = pid.into();
    }
    if !annotations.is_empty() {
        v["annotations"] = serde_json::json!(annotations);
    }
    serde_json::to_vec(&v).unwrap_or_default()
}
