//! SCMP_ACT_NOTIFY: the runtime connects to linux.seccomp.listenerPath and
//! sends the seccomp agent the listener fd (SCM_RIGHTS) together with the
//! container process state (runtime-spec config-linux.md, "The Container
//! Process State"), as one message on a stream unix socket, like runc.

use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use serde_json::{Value, json};

use super::{Listener, SeccompError};
use crate::sys::SysError;

/// What the agent learns about the container besides the fd.
pub struct AgentState<'a> {
    pub id: &'a str,
    /// The init's pid, as the runtime sees it.
    pub pid: i32,
    /// The process whose filter the fd belongs to: the init, or an exec'd
    /// process (runtime-spec's top-level `pid`).
    pub process_pid: i32,
    /// The container's status: "creating" for the init, "running" for exec.
    pub status: &'a str,
    pub bundle: &'a Path,
    pub annotations: Option<&'a HashMap<String, String>>,
}

/// The container process state JSON; `fds` names the SCM_RIGHTS fds in order.
pub fn state_json(l: &Listener, s: &AgentState) -> Value {
    let mut state = json!({
        "ociVersion": crate::state::OCI_VERSION,
        "id": s.id,
        "status": s.status,
        "pid": s.pid,
        "bundle": s.bundle,
    });
    if let Some(a) = s.annotations.filter(|a| !a.is_empty()) {
        state["annotations"] = json!(a);
    }
    let mut v = json!({
        "ociVersion": crate::state::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": s.process_pid,
        "state": state,
    });
    if !l.metadata.is_empty() {
        v["metadata"] = json!(l.metadata);
    }
    v
}

/// Connect to the agent and send it the listener fd and the state.
pub fn send_to_agent(l: &Listener, fd: BorrowedFd<'_>, s: &AgentState) -> Result<(), SeccompError> {
    let err = |op: &'static str, errno: Errno| SeccompError::Listener {
        path: l.path.clone(),
        source: SysError::new(op, errno),
    };
    let sock =
        UnixStream::connect(&l.path).map_err(|e| err("connect", crate::sys::io_errno(&e)))?;
    let body = serde_json::to_vec(&state_json(l, s)).map_err(|_| err("encode", Errno::EINVAL))?;
    let fds = [fd.as_raw_fd()];
    let mut sent = loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(&body)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => break n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(err("sendmsg", e)),
        }
    };
    // A stream socket may take a long state in several writes.
    while sent < body.len() {
        match nix::sys::socket::send(sock.as_raw_fd(), &body[sent..], MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(err("send", e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_json_matches_the_spec_shape() {
        let l = Listener {
            path: "/run/agent.sock".into(),
            metadata: "MKNOD=/dev/null".into(),
        };
        let ann = HashMap::from([("k".to_string(), "v".to_string())]);
        let v = state_json(
            &l,
            &AgentState {
                id: "c1",
                pid: 42,
                process_pid: 42,
                status: "creating",
                bundle: Path::new("/b"),
                annotations: Some(&ann),
            },
        );
        assert_eq!(v["fds"], json!(["seccompFd"]));
        assert_eq!(v["pid"], 42);
        assert_eq!(v["metadata"], "MKNOD=/dev/null");
        assert_eq!(v["state"]["status"], "creating");
        assert_eq!(v["state"]["id"], "c1");
        assert_eq!(v["state"]["pid"], 42);
        assert_eq!(v["state"]["bundle"], "/b");
        assert_eq!(v["state"]["annotations"]["k"], "v");
        let l2 = Listener {
            path: l.path.clone(),
            metadata: String::new(),
        };
        let v2 = state_json(
            &l2,
            &AgentState {
                id: "c1",
                pid: 1,
                process_pid: 7,
                status: "running",
                bundle: Path::new("/b"),
                annotations: None,
            },
        );
        assert!(v2.get("metadata").is_none());
        assert_eq!(
            (v2["pid"].as_i64(), v2["state"]["pid"].as_i64()),
            (Some(7), Some(1))
        );
        assert_eq!(v2["state"]["status"], "running");
        assert!(v2["state"].get("annotations").is_none());
    }
}
