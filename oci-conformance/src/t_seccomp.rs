//! config-linux.md#seccomp: actions and errno values, the default action, argument
//! filters, and the seccomp notify listener (container process state over a unix socket).

use crate::bundle::{Bundle, trunc};
use crate::harness::{Ctx, Verdict, ensure, eq, io};
use crate::sock::{accept_timeout, recv_fd};
use crate::table::{MUST, Test, Want::*, probe, refuse, t};
use serde_json::{Value, json};
use std::io::Read;
use std::os::unix::net::UnixListener;

/// What a static binary needs to start, print and exit (and what runtimes call between
/// loading the filter and exec): the allow list under a default ERRNO action.
const ALLOW: &[&str] = &[
    "execve",
    "brk",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "readlink",
    "readlinkat",
    "mmap",
    "munmap",
    "mprotect",
    "getrandom",
    "write",
    "exit",
    "exit_group",
    "sigaltstack",
    "rt_sigaction",
    "rt_sigprocmask",
    "poll",
    "fstat",
    "newfstatat",
    "statx",
    "close",
    "uname",
    "futex",
    "sched_getaffinity",
    "ioctl",
    "openat",
    "read",
    "lseek",
    "getcwd",
    "capget",
    "capset",
    "prctl",
    "setgroups",
    "setuid",
    "setgid",
    "setresuid",
    "setresgid",
    "getppid",
    "getpid",
    "fcntl",
    "getdents64",
    "clone",
    "clone3",
    "wait4",
    "dup3",
    "dup2",
    "fchown",
    "chdir",
    "nanosleep",
    "clock_nanosleep",
    "epoll_pwait",
    "select",
    "pselect6",
    "tgkill",
    "kill",
    "mremap",
    "madvise",
    "fstatfs",
    "statfs",
    "close_range",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "gettid",
    "sched_yield",
    "access",
    "faccessat",
    "faccessat2",
    "pipe2",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "rt_sigreturn",
    "sigreturn",
    "getpgrp",
    "getsid",
    "setsid",
    "umask",
    "fchdir",
    "chroot",
    "pivot_root",
    "mount",
    "umount2",
    "getgroups",
    "stat",
    "lstat",
    "open",
    "fchmod",
    "fsync",
    "getrlimit",
    "setrlimit",
    "unshare",
    "setns",
    "keyctl",
    "socket",
    "connect",
    "sendmsg",
    "recvmsg",
    "sendto",
    "recvfrom",
    "getsockopt",
    "setsockopt",
    "dup",
    "personality",
    "sched_setaffinity",
    "ioprio_set",
    "sched_setattr",
    "set_mempolicy",
    "setpriority",
    "getpriority",
    "seccomp",
    "pread64",
    "pwrite64",
    "readv",
    "writev",
    "openat2",
];

/// A filter allowing everything but mkdir/mkdirat, which get `action` (and `errnoRet`).
fn deny_mkdir(b: &mut Bundle, action: &str, ret: Option<u32>) {
    let mut rule = json!({"names": ["mkdir", "mkdirat"], "action": action});
    if let Some(r) = ret {
        rule["errnoRet"] = json!(r);
    }
    b.set(
        "linux.seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [rule]}),
    );
}

/// A filter with default action ERRNO (and `defaultErrnoRet` if given) over the allow list.
fn allow_list(b: &mut Bundle, ret: Option<u32>) {
    let mut s = json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ALLOW, "action": "SCMP_ACT_ALLOW"}]});
    if let Some(r) = ret {
        s["defaultErrnoRet"] = json!(r);
    }
    b.set("linux.seccomp", s);
}

/// The seccomp agent's side: what arrived on the listener socket of a container whose
/// mkdir is SCMP_ACT_NOTIFY, and whether the connection was closed after the message.
struct Agent {
    id: String,
    pid: i32,
    msg: Value,
    closed: bool,
}

fn agent(c: &mut Ctx) -> Result<Agent, Verdict> {
    let mut b = c.bundle_ops(&["mkdir:/tmp/oct-d"])?;
    let sock = c.dir.join("seccomp.sock");
    let l = io(UnixListener::bind(&sock), "bind the listener socket")?;
    // Rootless mode: the runtime connects as the user (connect needs write permission).
    c.env.give(&sock);
    deny_mkdir(&mut b, "SCMP_ACT_NOTIFY", None);
    b.set("linux.seccomp.listenerPath", json!(sock));
    b.set("linux.seccomp.listenerMetadata", json!("oct-meta"));
    let id = c.id();
    c.must_create(&b, &id)?;
    let pid = c.pid(&id)?;
    c.must_start(&id)?;
    let mut conn = accept_timeout(&l, 10)?;
    let (data, fd) = recv_fd(&conn)?;
    drop(fd); // closing the notify fd fails the pending syscall
    let msg: Value = serde_json::from_str(&data)
        .map_err(|e| Verdict::Fail(format!("message is not JSON ({e}): {}", trunc(&data, 200))))?;
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut rest = [0u8; 64];
    let closed = matches!(conn.read(&mut rest), Ok(0));
    c.wait_status(&id, "stopped", 10)?;
    Ok(Agent {
        id,
        pid,
        msg,
        closed,
    })
}

pub fn tests() -> Vec<Test> {
    vec![
        probe(
            "seccomp.errno",
            "config-linux.md#seccomp",
            MUST,
            "syscalls[].action SCMP_ACT_ERRNO with errnoRet: the matched syscall fails with the errno return code given.",
            &["mkdir:/tmp/oct-d"],
            |b| deny_mkdir(b, "SCMP_ACT_ERRNO", Some(42)),
            &[("mkdir./tmp/oct-d", Eq("err:42"))],
        ),
        probe(
            "seccomp.errno-default-eperm",
            "config-linux.md#seccomp",
            MUST,
            "syscalls[].errnoRet: \"The default is EPERM.\"",
            &["mkdir:/tmp/oct-d"],
            |b| deny_mkdir(b, "SCMP_ACT_ERRNO", None),
            &[("mkdir./tmp/oct-d", Eq("err:1"))],
        ),
        probe(
            "seccomp.default-action",
            "config-linux.md#seccomp",
            MUST,
            "defaultAction: the default action for syscalls no rule matches, with defaultErrnoRet as its errno (ERRNO 38 over an allow list).",
            &["mkdir:/tmp/oct-d", "exit:0"],
            |b| allow_list(b, Some(38)),
            &[("mkdir./tmp/oct-d", Eq("err:38"))],
        ),
        probe(
            "seccomp.default-errnoret-eperm",
            "config-linux.md#seccomp",
            MUST,
            "defaultErrnoRet: the errno return code to use; \"The default is EPERM.\"",
            &["mkdir:/tmp/oct-d", "exit:0"],
            |b| allow_list(b, None),
            &[("mkdir./tmp/oct-d", Eq("err:1"))],
        ),
        t(
            "seccomp.kill",
            "config-linux.md#seccomp",
            MUST,
            "syscalls[].action SCMP_ACT_KILL_PROCESS: the process is killed at the matched syscall (nothing after it runs).",
            |c| {
                let kv = c.run_ops(&["args", "mkdir:/tmp/oct-d", "uts"], |b| deny_mkdir(b, "SCMP_ACT_KILL_PROCESS", None))?;
                kv.get("args")?;
                ensure(
                    kv.opt("mkdir./tmp/oct-d").is_none() && kv.opt("hostname").is_none(),
                    "the process survived a SCMP_ACT_KILL_PROCESS syscall",
                )
            },
        ),
        probe(
            "seccomp.args",
            "config-linux.md#seccomp",
            MUST,
            "syscalls[].args: index, value and op (SCMP_CMP_EQ) restrict a rule to calls whose argument matches (getpriority(PRIO_PROCESS) denied, getpriority(PRIO_PGRP) allowed).",
            &["getprio:0", "getprio:1"],
            |b| {
                b.set(
                    "linux.seccomp",
                    json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                        "syscalls": [{"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 33,
                                      "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
                )
            },
            &[("getprio.0", Eq("err:33")), ("getprio.1", Prefix("ok"))],
        ),
        refuse(
            "seccomp.errnoret-unsupported-errors",
            "config-linux.md#seccomp",
            MUST,
            "errnoRet: \"When the action doesn't support an errno, the runtime MUST print and error and fail\" (errnoRet with SCMP_ACT_KILL_PROCESS).",
            |b| {
                b.set(
                    "linux.seccomp",
                    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS", "errnoRet": 5}]}),
                )
            },
        )
        .by_start(),
        t(
            "seccomp.notify",
            "config-linux.md#seccomp",
            MUST,
            "listenerPath: the runtime sends the container process state (ociVersion, fds with seccompFd, pid, metadata, state: REQUIRED ones present) as JSON, the fd with SCM_RIGHTS, over the AF_UNIX socket.",
            |c| {
                let a = agent(c)?;
                let v = &a.msg;
                ensure(v["ociVersion"].is_string(), format!("ociVersion missing: {v}"))?;
                ensure(
                    v["fds"].as_array().is_some_and(|f| f.first().is_some_and(|f| f == "seccompFd")),
                    format!("fds does not name seccompFd: {v}"),
                )?;
                eq("pid", v["pid"].as_i64(), Some(a.pid as i64))?;
                eq("metadata", v["metadata"].as_str(), Some("oct-meta"))?;
                eq("state.id", v["state"]["id"].as_str(), Some(a.id.as_str()))
            },
        ),
        t(
            "seccomp.notify-one-per-connection",
            "config-linux.md#seccomp",
            MUST,
            "listenerPath: the runtime MUST send exactly one container process state per connection; the connection MUST NOT be reused and it MUST be closed after sending.",
            |c| {
                let a = agent(c)?;
                ensure(a.closed, "the runtime kept the listener connection open after sending the state")
            },
        ),
        refuse(
            "seccomp.notify-listener-errors",
            "config-linux.md#seccomp",
            MUST,
            "listenerPath: \"If sending to this socket fails, the runtime MUST generate an error\" (no listener at that path).",
            |b| {
                deny_mkdir(b, "SCMP_ACT_NOTIFY", None);
                let p = b.dir.join("no-listener.sock").display().to_string();
                b.set("linux.seccomp.listenerPath", json!(p));
            },
        )
        .by_start(),
    ]
}
