//! A container without a cgroup of its own (rootless, no delegated
//! cgroup; `--cgroup-manager disabled`): which processes are its, for
//! `ps` and `kill --all`, and the refusal to pause it.
//!
//! With no cgroup, the kernel still says what is the container's when it
//! has a pid namespace other than ours: its init and every process of that
//! namespace (or one nested in it). Without one, only the init can be named
//! (runc, in the same case, can name none).

use crate::error::{Error, Result};
use crate::state::State;
use crate::sys;

/// The host pids of the container's processes (the init first), by their
/// pid namespace; just the init when it shares ours or is not running.
pub(super) fn pids(st: &State) -> Vec<i32> {
    if !st.init_alive() {
        return Vec::new();
    }
    let ns_of = |pid: i32| {
        std::fs::metadata(format!("/proc/{pid}/ns/pid"))
            .ok()
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            })
    };
    let mut out = vec![st.pid];
    let (Some(theirs), Some(ours)) = (ns_of(st.pid), ns_of(std::process::id() as i32)) else {
        // A waiting init is not dumpable: its namespace cannot be read yet,
        // and nothing else has run in it.
        return out;
    };
    if theirs == ours {
        return out;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid != st.pid && ns_of(pid) == Some(theirs) {
            out.push(pid);
        }
    }
    out
}

/// `kill --all` without a cgroup: signal each process of `pids`, through a
/// pidfd opened before its pid namespace is checked again (a pid recycled
/// meanwhile is not in that namespace, or the signal fails with ESRCH).
pub(super) fn signal_all(st: &State, sig: i32) -> Result<()> {
    let mut fds = Vec::new();
    for pid in pids(st) {
        match sys::pidfd_open(pid) {
            Ok(fd) => fds.push((pid, fd)),
            Err(e) if e.errno == nix::errno::Errno::ESRCH => {}
            Err(e) => return Err(e.into()),
        }
    }
    let now = pids(st);
    for (pid, fd) in &fds {
        if !now.contains(pid) {
            continue;
        }
        match sys::pidfd_send_signal(fd, sig) {
            Ok(()) => {}
            Err(e) if e.errno == nix::errno::Errno::ESRCH => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// pause/resume need a freezer and update needs limits, which only a
/// cgroup has.
pub(super) fn refuse_without_cgroup(st: &State, verb: &str) -> Result<()> {
    if st.cgroup.dirs.is_empty() {
        return Err(Error::Lifecycle(format!(
            "cannot {verb} container {}: it has no cgroup of its own (a rootless container on a host without a delegated cgroup, or --cgroup-manager disabled)",
            st.id
        )));
    }
    Ok(())
}
