//! OCI hooks: each runs as a child with the container's state JSON on its
//! stdin, its own args (args[0] is argv[0]) and env, and an optional
//! timeout in seconds. Which process runs which hook, and when, is decided
//! by the callers (see runtime-spec config.md "POSIX-platform Hooks"):
//! prestart + createRuntime by the parent, createContainer and
//! startContainer by the init, poststart by `start`, poststop by `delete`.

use std::ffi::{CString, OsStr};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
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

/// The trampoline hooks are spawned through, and what it applies before
/// exec'ing them (the workload's capabilities and seccomp filter).
#[derive(Clone, Copy)]
pub struct Via<'a> {
    pub trampoline: &'a Trampoline,
    pub deferred: &'a Deferred,
}

/// Run `hooks` in order, stopping at the first failure.
pub fn run(kind: &'static str, hooks: &[Hook], state_json: &[u8]) -> Result<(), HookError> {
    run_via(None, kind, hooks, state_json)
}

/// `run`, each hook spawned through the trampoline when given: for hooks
/// whose path resolves in the container (startContainer), which must not
/// be able to run capsa's own binary (see process/trampoline.rs).
pub fn run_via(
    via: Option<Via>,
    kind: &'static str,
    hooks: &[Hook],
    state_json: &[u8],
) -> Result<(), HookError> {
    // Lazy: the hooks after the first failure are not run.
    match failures(via, kind, hooks, state_json).next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Each hook, run in order as the iterator is advanced, yielding its
/// failure if it fails.
fn failures<'a>(
    via: Option<Via<'a>>,
    kind: &'static str,
    hooks: &'a [Hook],
    state_json: &'a [u8],
) -> impl Iterator<Item = HookError> + 'a {
    hooks.iter().enumerate().filter_map(move |(index, h)| {
        let msg = run_one(via, h, state_json).err()?;
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
    for e in failures(None, "poststop", hooks, &json) {
        eprintln!("capsa: warning: {e}");
    }
}

fn command(via: Option<Via>, h: &Hook) -> Command {
    let args = h.args().as_deref().unwrap_or(&[]);
    let Some(Via {
        trampoline: t,
        deferred,
    }) = via
    else {
        let mut cmd = Command::new(h.path());
        if let Some((first, rest)) = args.split_first() {
            cmd.arg0(first);
            cmd.args(rest);
        }
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
    let mut cmd = Command::new(t.proc_path());
    cmd.arg0(OsStr::from_bytes(ARGV0.to_bytes()));
    for a in &targs {
        cmd.arg(OsStr::from_bytes(a.as_bytes()));
    }
    // By its fd first, so that a container without /proc still spawns its
    // hooks through the trampoline (the path above is the fallback).
    let mut full: Vec<CString> = vec![ARGV0.to_owned()];
    full.extend(targs);
    let env: Vec<CString> = h
        .env()
        .iter()
        .flatten()
        .filter_map(|kv| CString::new(kv.as_bytes()).ok())
        .collect();
    let fd = t.raw_fd();
    // SAFETY: runs in the forked child before its exec. The init that
    // spawns hooks through the trampoline is single-threaded, so the
    // allocation in execveat_fd (its pointer arrays) cannot meet a lock
    // held by another thread; fd is the trampoline's, open in the child.
    unsafe {
        cmd.pre_exec(move || {
            let refs: Vec<&std::ffi::CStr> = full.iter().map(CString::as_c_str).collect();
            // SAFETY: fd stays open in the child until its exec.
            let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
            let _ = sys::execveat_fd(&fd, &refs, &env);
            Ok(())
        });
    }
    cmd
}

fn run_one(via: Option<Via>, h: &Hook, state_json: &[u8]) -> Result<(), String> {
    let mut cmd = command(via, h);
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
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
            return run_one(None, h, state_json);
        }
        r => r.map_err(|e| e.to_string().to_lowercase())?,
    };
    if let Some(mut stdin) = child.stdin.take() {
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
        let ms = secs.saturating_mul(1000).min(i64::from(i32::MAX)) as i32;
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        let ready = poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        )
        .unwrap_or(0);
        if ready == 0 {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {secs}s"));
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{}, stdout: {}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    ))
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
