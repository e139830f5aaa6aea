//! `exec --cgroup` (run in a sub-cgroup of the container's, runc's syntax)
//! and `--pidfd-socket` on create and exec (a pidfd of the new process sent
//! over a unix socket, as runc 1.2 does).

mod common;

use std::fs;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use common::*;

/// A running container whose init sleeps.
fn running(tag: &str) -> Ctx {
    let mut ctx = Ctx::new(tag);
    ctx.args(&["sleep", "1000"]);
    ctx.create();
    ctx.rt(&["start", &ctx.id]).ok();
    ctx
}

/// `mkdir sub` in each of the container's cgroup directories.
fn make_sub(ctx: &Ctx, sub: &str) {
    for dir in cgroup_dirs_for(&ctx.id) {
        fs::create_dir(dir.join(sub))
            .unwrap_or_else(|e| panic!("mkdir {}/{sub}: {e}", dir.display()));
        // A v1 cpuset cgroup takes tasks only once its cpus and mems are set
        // (v2 has cgroup.controllers and no such rule).
        if dir.join("cgroup.controllers").exists() {
            continue;
        }
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(v) = fs::read_to_string(dir.join(f)) {
                fs::write(dir.join(sub).join(f), v.trim()).expect("init cpuset");
            }
        }
    }
}

/// /proc/self/cgroup lines of an exec'd process: (controllers, path).
fn exec_cgroups(ctx: &Ctx, extra: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["exec"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&ctx.id, "cat", "/proc/self/cgroup"]);
    let o = ctx.rt(&args);
    o.ok();
    o.stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let _ = f.next()?;
            Some((f.next()?.to_owned(), f.next()?.to_owned()))
        })
        .collect()
}

#[test]
fn exec_cgroup_runs_in_the_sub_cgroup() {
    let ctx = running("execcg");
    make_sub(&ctx, "sub");
    let base = cgroup_path_for(&ctx.id);
    // Without --cgroup: the container's own cgroup.
    for (ctrl, path) in exec_cgroups(&ctx, &[]) {
        if ctrl.is_empty() || !ctrl.starts_with("name=") {
            assert_eq!(path, base, "{ctrl}");
        }
    }
    let lines = exec_cgroups(&ctx, &["--cgroup", "sub"]);
    assert!(!lines.is_empty());
    for (ctrl, path) in lines {
        if ctrl.starts_with("name=") {
            continue;
        }
        assert_eq!(path, format!("{base}/sub"), "{ctrl}");
    }
    // A process in the sub-cgroup is still the container's: ps lists it,
    // delete kills it and removes the sub-cgroup with the container's.
    ctx.rt(&[
        "exec", "--detach", "--cgroup", "sub", &ctx.id, "sleep", "1000",
    ])
    .ok();
    let ps = ctx.rt(&["ps", "--format", "json", &ctx.id]);
    let pids: Vec<i32> = serde_json::from_str(ps.stdout.trim()).unwrap_or_default();
    assert_eq!(pids.len(), 2, "{ps}");
    ctx.rt(&["delete", "--force", &ctx.id]).ok();
    ctx.assert_nothing_left(&ctx.id);
}

#[test]
fn exec_cgroup_root_is_the_containers_own_cgroup() {
    // runc takes "/" (and "", "memory:/") as the container's cgroup itself.
    let ctx = running("execcgroot");
    let base = cgroup_path_for(&ctx.id);
    let mut forms = vec![vec!["--cgroup", "/"], vec!["--cgroup", ""]];
    if Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        forms.push(vec!["--cgroup", "memory:/"]);
    }
    for form in forms {
        let lines = exec_cgroups(&ctx, &form);
        assert!(!lines.is_empty(), "{form:?}");
        for (ctrl, path) in lines {
            if !ctrl.starts_with("name=") {
                assert_eq!(path, base, "{form:?} {ctrl}");
            }
        }
    }
}

#[test]
fn exec_cgroup_with_controller_prefix() {
    if !Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        // Pure cgroup v2: no controller hierarchies to name.
        if is_capsa() {
            let ctx = running("execcgv2");
            make_sub(&ctx, "sub");
            let o = ctx.rt(&["exec", "--cgroup", "memory:sub", &ctx.id, "true"]);
            o.fails_with("needs cgroup v1");
        }
        return;
    }
    let ctx = running("execcgv1");
    make_sub(&ctx, "sub");
    let base = cgroup_path_for(&ctx.id);
    for (ctrl, path) in exec_cgroups(&ctx, &["--cgroup", "memory,pids:sub"]) {
        let split: Vec<&str> = ctrl.split(',').collect();
        if split.contains(&"memory") || split.contains(&"pids") {
            assert_eq!(path, format!("{base}/sub"), "{ctrl}");
        } else if ctrl == "cpu" || ctrl == "freezer" || ctrl == "devices" {
            assert_eq!(path, base, "{ctrl}");
        }
    }
}

#[test]
fn exec_cgroup_refuses_a_missing_sub_cgroup_and_bad_syntax() {
    let ctx = running("execcgbad");
    // runc's words, which its own tests match: " adding pid ", "o such file or directory",
    // "bad sub cgroup path", "unknown controller ".
    let o = ctx.rt(&["exec", "--cgroup", "nope", &ctx.id, "true"]);
    o.fails_with(" adding pid ");
    o.fails_with("o such file or directory");
    let o = ctx.rt(&["exec", "--cgroup", "a", "--cgroup", "b", &ctx.id, "true"]);
    o.fails_with_any(&["invalid --cgroup"]);
    let o = ctx.rt(&["exec", "--cgroup", "../../escape", &ctx.id, "true"]);
    // runc 1.1 said "... is not a sub cgroup path"; 1.2+ "bad sub cgroup path".
    o.fails_with(if is_capsa() {
        "bad sub cgroup path"
    } else {
        "sub cgroup path"
    });
    if Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        let o = ctx.rt(&["exec", "--cgroup", "whaaat:/", &ctx.id, "true"]);
        o.fails_with("unknown controller ");
    }
    // Only the init is left in the container.
    let pids = ctx.rt(&["ps", "--format", "json", &ctx.id]);
    let pids: Vec<i32> = serde_json::from_str(pids.stdout.trim()).unwrap_or_default();
    assert_eq!(pids.len(), 1, "{pids:?}");
}

/// Accept one connection on `listener` and receive the fd it carries.
fn recv_fd(listener: &UnixListener) -> OwnedFd {
    recv_fd_on(listener).0
}

/// The fd and the connection it came on.
fn recv_fd_on(listener: &UnixListener) -> (OwnedFd, std::os::unix::net::UnixStream) {
    listener.set_nonblocking(true).expect("nonblocking");
    let start = std::time::Instant::now();
    let (conn, _) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(_) if start.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("no connection on the pidfd socket: {e}"),
        }
    };
    conn.set_nonblocking(false).expect("blocking");
    let mut buf = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )
    .expect("recvmsg");
    for c in msg.cmsgs().expect("cmsgs") {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just installed this fd in our table for us.
            return (unsafe { OwnedFd::from_raw_fd(fd) }, conn);
        }
    }
    panic!("no fd received on the pidfd socket");
}

/// The pid a pidfd refers to (its fdinfo "Pid:" line).
fn pidfd_pid(fd: &OwnedFd) -> i32 {
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).expect("fdinfo");
    status_field(&info, "Pid")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a pidfd: {info}"))
}

#[test]
fn pidfd_socket_on_create_sends_the_init() {
    if skip_unless_capsa("runc 1.1 has no --pidfd-socket") {
        return;
    }
    let mut ctx = Ctx::new("pidfdcreate");
    ctx.args(&["sleep", "1000"]);
    ctx.write_config();
    let sock = ctx.scratch("pidfd.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    ctx.create_id(&ctx.id, &["--pidfd-socket", sock.to_str().expect("utf-8")])
        .ok();
    let (fd, mut conn) = recv_fd_on(&listener);
    let pid = ctx.state(&ctx.id)["pid"].as_i64().expect("pid") as i32;
    assert_eq!(pidfd_pid(&fd), pid);
    // The connection ends with create: the waiting init does not keep it.
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut b = [0u8; 1];
    let n = std::io::Read::read(&mut conn, &mut b);
    assert!(
        matches!(n, Ok(0)),
        "the pidfd socket connection is still open after create: {n:?}"
    );
}

#[test]
fn pidfd_socket_on_exec_sends_the_process() {
    if skip_unless_capsa("runc 1.1 has no --pidfd-socket") {
        return;
    }
    let ctx = running("pidfdexec");
    let sock = ctx.scratch("pidfd.sock");
    let pid_file = ctx.scratch("exec.pid");
    let listener = UnixListener::bind(&sock).expect("bind");
    ctx.rt(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().expect("utf-8"),
        "--pidfd-socket",
        sock.to_str().expect("utf-8"),
        &ctx.id,
        "sleep",
        "999",
    ])
    .ok();
    let fd = recv_fd(&listener);
    let pid: i32 = fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(pidfd_pid(&fd), pid);
    // The pidfd is usable: it kills exactly that process.
    // SAFETY: pidfd_send_signal with a valid pidfd and null siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            0,
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "pidfd_send_signal: {}",
        std::io::Error::last_os_error()
    );
    let mut tries = 0;
    while Path::new(&format!("/proc/{pid}")).exists()
        && fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
    {
        tries += 1;
        assert!(
            tries < 500,
            "the exec'd process survived SIGKILL through its pidfd"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn pidfd_socket_that_cannot_be_reached_fails_early() {
    if skip_unless_capsa("runc 1.1 has no --pidfd-socket") {
        return;
    }
    let mut ctx = Ctx::new("pidfdbad");
    ctx.args(&["sleep", "1000"]);
    ctx.write_config();
    let missing = ctx.scratch("no-such.sock");
    let o = ctx.create_id(
        &ctx.id,
        &["--pidfd-socket", missing.to_str().expect("utf-8")],
    );
    o.fails_with_any(&["pidfd", "no such file"]);
    ctx.assert_nothing_left(&ctx.id);
}
