//! config-linux.md (namespaces, id mappings, devices, sysctl, seccomp, propagation,
//! masked/readonly paths, personality, intelRdt, memoryPolicy, netDevices),
//! runtime-linux.md (fds, /dev symlinks, propagation) and features.md.

use crate::harness::{Bundle, Ctx, Kv, R, Verdict, ensure, eq, fail, skip, trunc};
use crate::{MUST, SHOULD, Test};
use serde_json::{Value, json};
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;

macro_rules! t {
    ($id:expr, $sec:expr, $lvl:expr, $req:expr, $f:expr) => {
        Test {
            id: $id,
            section: $sec,
            level: $lvl,
            req: $req,
            run: $f,
            v2: false,
        }
    };
}

fn run_ops(c: &mut Ctx, ops: &[&str], f: impl FnOnce(&mut Bundle)) -> Result<Kv, Verdict> {
    let mut b = c.bundle()?;
    b.args(ops);
    f(&mut b);
    c.run(&b)
}

fn host_ns(n: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{n}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn new_ns(c: &mut Ctx, ns_type: &str, proc_name: &str) -> R {
    let kv = run_ops(c, &["ns"], |b| b.add_ns(ns_type, None))?;
    let got = kv.get(&format!("ns.{proc_name}"))?;
    ensure(
        got != host_ns(proc_name),
        format!("{ns_type}: the container is in the host namespace {got}"),
    )
}

fn userns(b: &mut Bundle) {
    b.add_ns("user", None);
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // sysfs and mqueue need the matching namespaces owned by the user namespace; keep them simple.
    if let Some(m) = b.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/sys" && m["destination"] != "/dev/mqueue");
    }
}

fn seccomp_errno(b: &mut Bundle, action: &str, ret: Option<u32>) {
    let mut rule = json!({"names": ["mkdir", "mkdirat"], "action": action});
    if let Some(r) = ret {
        rule["errnoRet"] = json!(r);
    }
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [rule]});
}

fn features(c: &mut Ctx) -> Result<Value, Verdict> {
    let o = c.rt(&["features"]);
    ensure(o.ok(), format!("`features` failed: {}", o.brief()))?;
    serde_json::from_str(&o.stdout).map_err(|e| {
        Verdict::Fail(format!(
            "features output is not JSON ({e}): {}",
            trunc(&o.stdout, 200)
        ))
    })
}

fn mount_prop(kv: &Kv, mp: &str) -> Result<String, Verdict> {
    let m = kv.get(&format!("mount.{mp}"))?;
    Ok(m.split(' ')
        .find_map(|f| f.strip_prefix("prop="))
        .unwrap_or("")
        .to_string())
}

fn host_propagation() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(" - ").next().unwrap_or("").split(' ').collect();
            format!(
                "{} {}",
                f.get(4).unwrap_or(&""),
                f.get(6..).map(|x| x.join(",")).unwrap_or_default()
            )
        })
        .collect()
}

pub fn tests() -> Vec<Test> {
    vec![
        // ---- runtime-linux.md
        t!(
            "linux.fds-only-stdio",
            "runtime-linux.md#file-descriptors",
            MUST,
            "By default, only the stdin, stdout and stderr file descriptors are kept open for the application by the runtime.",
            |c| {
                let kv = run_ops(c, &["fds"], |_| {})?;
                // the checker's own directory handle on /proc/self/fd is the one extra fd.
                let fds: Vec<&str> = kv.get("fds")?.split(',').collect();
                ensure(
                    fds.len() == 4 && fds[..3] == ["0", "1", "2"],
                    format!("open fds in the container: {fds:?}"),
                )
            }
        ),
        t!(
            "linux.dev-symlinks",
            "runtime-linux.md#dev-symbolic-links",
            MUST,
            "While creating the container the runtime MUST create the symlinks /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr if their source exists after mounting.",
            |c| {
                let kv = run_ops(
                    c,
                    &[
                        "readlink:/dev/fd",
                        "readlink:/dev/stdin",
                        "readlink:/dev/stdout",
                        "readlink:/dev/stderr",
                    ],
                    |_| {},
                )?;
                eq("/dev/fd", kv.get("readlink./dev/fd")?, "/proc/self/fd")?;
                eq(
                    "/dev/stdin",
                    kv.get("readlink./dev/stdin")?,
                    "/proc/self/fd/0",
                )?;
                eq(
                    "/dev/stdout",
                    kv.get("readlink./dev/stdout")?,
                    "/proc/self/fd/1",
                )?;
                eq(
                    "/dev/stderr",
                    kv.get("readlink./dev/stderr")?,
                    "/proc/self/fd/2",
                )
            }
        ),
        t!(
            "linux.no-host-propagation-change",
            "runtime-linux.md#mount-propagation",
            MUST,
            "While creating the container, runtimes MUST NOT change the mount propagation of any mount in the runtime mount namespace.",
            |c| {
                let before = host_propagation();
                let mut b = c.bundle()?;
                b.args(&["sleep:30"]);
                b.config["linux"]["rootfsPropagation"] = json!("shared");
                let id = c.id();
                c.must_create(&b, &id)?;
                let after = host_propagation();
                let changed: Vec<&String> = after.iter().filter(|m| !before.contains(m)).collect();
                ensure(
                    changed.is_empty(),
                    format!("host mounts changed propagation: {changed:?}"),
                )
            }
        ),
        // ---- default filesystems and devices
        t!(
            "linux.default-devices",
            "config-linux.md#default-devices",
            MUST,
            "The runtime MUST supply /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom, /dev/tty and /dev/ptmx.",
            |c| {
                let kv = run_ops(
                    c,
                    &[
                        "stat:/dev/null",
                        "stat:/dev/zero",
                        "stat:/dev/full",
                        "stat:/dev/random",
                        "stat:/dev/urandom",
                        "stat:/dev/tty",
                        "stat:/dev/ptmx",
                    ],
                    |_| {},
                )?;
                for (d, mm) in [
                    ("null", "1 3"),
                    ("zero", "1 5"),
                    ("full", "1 7"),
                    ("random", "1 8"),
                    ("urandom", "1 9"),
                    ("tty", "5 0"),
                    ("ptmx", "5 2"),
                ] {
                    let s = kv.get(&format!("stat./dev/{d}"))?;
                    ensure(
                        s.starts_with("c ") && s.ends_with(mm),
                        format!("/dev/{d}: {s}"),
                    )?;
                }
                Ok(())
            }
        ),
        t!(
            "linux.devices-created",
            "config-linux.md#devices",
            MUST,
            "devices: the runtime MUST make each listed device available in the container with type, major, minor, fileMode, uid and gid.",
            |c| {
                let kv = run_ops(c, &["stat:/dev/oct-null"], |b| {
                    b.config["linux"]["devices"] = json!([{"path": "/dev/oct-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 5}]);
                })?;
                eq(
                    "/dev/oct-null",
                    kv.get("stat./dev/oct-null")?,
                    "c 640 0 5 1 3",
                )
            }
        ),
        t!(
            "linux.devices-cgroup-deny",
            "config-linux.md#allowed-device-list",
            MUST,
            "devices (resources): entries are applied in order; a device not allowed MUST NOT be accessible.",
            |c| {
                let kv = run_ops(c, &["openw:/dev/oct-kmsg"], |b| {
                    b.config["linux"]["devices"] = json!([{"path": "/dev/oct-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666}]);
                })?;
                eq(
                    "open of a denied device",
                    kv.get("openw./dev/oct-kmsg")?,
                    "err:1",
                )
            }
        ),
        t!(
            "linux.devices-cgroup-allow",
            "config-linux.md#allowed-device-list",
            MUST,
            "devices (resources): an allow entry MUST make the device accessible with the given access.",
            |c| {
                let kv = run_ops(c, &["openw:/dev/oct-kmsg"], |b| {
                    b.config["linux"]["devices"] = json!([{"path": "/dev/oct-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666}]);
                    b.config["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rw"}]);
                })?;
                eq(
                    "open of an allowed device",
                    kv.get("openw./dev/oct-kmsg")?,
                    "ok",
                )
            }
        ),
        // ---- namespaces
        t!(
            "ns.pid",
            "config-linux.md#namespaces",
            MUST,
            "pid: processes inside the container will only be able to see other processes inside the same container (new pid namespace).",
            |c| new_ns(c, "pid", "pid")
        ),
        t!(
            "ns.network",
            "config-linux.md#namespaces",
            MUST,
            "network: the container will have its own network stack.",
            |c| new_ns(c, "network", "net")
        ),
        t!(
            "ns.ipc",
            "config-linux.md#namespaces",
            MUST,
            "ipc: processes inside the container will only be able to communicate via system level IPC with the same container.",
            |c| new_ns(c, "ipc", "ipc")
        ),
        t!(
            "ns.uts",
            "config-linux.md#namespaces",
            MUST,
            "uts: the container will be able to have its own hostname and domain name.",
            |c| new_ns(c, "uts", "uts")
        ),
        t!(
            "ns.mount",
            "config-linux.md#namespaces",
            MUST,
            "mount: the container will have an isolated mount table.",
            |c| new_ns(c, "mount", "mnt")
        ),
        t!(
            "ns.cgroup",
            "config-linux.md#namespaces",
            MUST,
            "cgroup: the container will have an isolated view of the cgroup hierarchy.",
            |c| new_ns(c, "cgroup", "cgroup")
        ),
        t!(
            "ns.time",
            "config-linux.md#namespaces",
            MUST,
            "time: the container will be able to have its own clocks.",
            |c| new_ns(c, "time", "time")
        ),
        t!(
            "ns.user",
            "config-linux.md#namespaces",
            MUST,
            "user: the container will be able to remap user and group IDs from the host to local users and groups within the container.",
            |c| {
                let kv = run_ops(
                    c,
                    &[
                        "ns",
                        "cat:/proc/self/uid_map",
                        "cat:/proc/self/gid_map",
                        "ids",
                    ],
                    userns,
                )?;
                ensure(
                    kv.get("ns.user")? != host_ns("user"),
                    "no new user namespace",
                )?;
                let um: Vec<String> = kv
                    .get("cat./proc/self/uid_map")?
                    .split_whitespace()
                    .map(|s| s.to_string())
                    .collect();
                eq(
                    "uid_map",
                    um,
                    vec!["0".to_string(), "100000".into(), "65536".into()],
                )?;
                let gm: Vec<String> = kv
                    .get("cat./proc/self/gid_map")?
                    .split_whitespace()
                    .map(|s| s.to_string())
                    .collect();
                eq(
                    "gid_map",
                    gm,
                    vec!["0".to_string(), "100000".into(), "65536".into()],
                )?;
                eq("uid in the container", kv.get("uid")?, "0")
            }
        ),
        t!(
            "ns.inherit-when-absent",
            "config-linux.md#namespaces",
            MUST,
            "If a namespace type is not specified in the namespaces array, the container MUST inherit the runtime namespace of that type.",
            |c| {
                let kv = run_ops(c, &["ns"], |b| {
                    b.remove_ns("network");
                    b.remove_ns("ipc");
                })?;
                eq("net namespace", kv.get("ns.net")?, host_ns("net").as_str())?;
                eq("ipc namespace", kv.get("ns.ipc")?, host_ns("ipc").as_str())
            }
        ),
        t!(
            "ns.join-path",
            "config-linux.md#namespaces",
            MUST,
            "path: the runtime MUST place the container process in the namespace at path (setns).",
            |c| {
                let nsf = c.dir.join("netns");
                fs::write(&nsf, "").map_err(|e| Verdict::Fail(e.to_string()))?;
                let st = std::process::Command::new("unshare")
                    .arg(format!("--net={}", nsf.display()))
                    .arg("true")
                    .status();
                if !matches!(st, Ok(s) if s.success()) {
                    return skip("cannot make a persistent network namespace with unshare(1)");
                }
                let ino = fs::metadata(&nsf).map(|m| m.ino()).unwrap_or(0);
                let p = nsf.display().to_string();
                let r = run_ops(c, &["ns"], |b| b.add_ns("network", Some(&p)));
                let _ = std::process::Command::new("umount").arg(&nsf).status();
                let kv = r?;
                eq(
                    "net namespace",
                    kv.get("ns.net")?,
                    format!("net:[{ino}]").as_str(),
                )
            }
        ),
        t!(
            "ns.join-wrong-type-errors",
            "config-linux.md#namespaces",
            MUST,
            "If a path is specified that is not a namespace of the type given, the runtime MUST generate an error.",
            |c| {
                let mut b = c.bundle()?;
                b.add_ns("uts", Some("/proc/self/ns/net"));
                b.args(&["exit:0"]);
                let (failed, _) = c.create_fails(&b)?;
                ensure(failed, "a net namespace path was accepted for type uts")
            }
        ),
        t!(
            "ns.duplicate-errors",
            "config-linux.md#namespaces",
            MUST,
            "If a namespace type is specified more than once in the namespaces array, the runtime MUST generate an error.",
            |c| {
                let mut b = c.bundle()?;
                if let Some(a) = b.config["linux"]["namespaces"].as_array_mut() {
                    a.push(json!({"type": "ipc"}));
                }
                b.args(&["exit:0"]);
                let (failed, _) = c.create_fails(&b)?;
                ensure(failed, "duplicated ipc namespace entry accepted")
            }
        ),
        t!(
            "ns.time-offsets",
            "config-linux.md#offset-for-time-namespace",
            MUST,
            "timeOffsets: the runtime MUST set the monotonic and boottime offsets of the new time namespace.",
            |c| {
                let kv = run_ops(c, &["clocks"], |b| {
                    b.add_ns("time", None);
                    b.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 1000000, "nanosecs": 0}, "boottime": {"secs": 2000000, "nanosecs": 0}});
                })?;
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: ts is a valid, writable timespec.
                unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
                let got: i64 = kv.get("clock.monotonic")?.parse().unwrap_or(0);
                ensure(
                    (got - ts.tv_sec - 1000000).abs() < 60,
                    format!("monotonic clock in the container {got}, host {}", ts.tv_sec),
                )?;
                let gotb: i64 = kv.get("clock.boottime")?.parse().unwrap_or(0);
                ensure(
                    gotb - ts.tv_sec > 1900000,
                    format!("boottime offset not applied: {gotb}"),
                )
            }
        ),
        // ---- sysctl, seccomp
        t!(
            "sysctl.applied",
            "config-linux.md#sysctl",
            MUST,
            "sysctl: the runtime MUST set the kernel parameters in the container.",
            |c| {
                let kv = run_ops(
                    c,
                    &["sysctl:net.ipv4.ip_forward", "sysctl:kernel.msgmax"],
                    |b| {
                        b.config["linux"]["sysctl"] =
                            json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "12345"});
                    },
                )?;
                eq(
                    "net.ipv4.ip_forward",
                    kv.get("sysctl.net.ipv4.ip_forward")?,
                    "1",
                )?;
                eq("kernel.msgmax", kv.get("sysctl.kernel.msgmax")?, "12345")
            }
        ),
        t!(
            "seccomp.errno",
            "config-linux.md#seccomp",
            MUST,
            "seccomp: a rule with SCMP_ACT_ERRNO and errnoRet MUST make the syscall fail with that errno.",
            |c| {
                let kv = run_ops(c, &["mkdir:/tmp/oct-d"], |b| {
                    seccomp_errno(b, "SCMP_ACT_ERRNO", Some(42))
                })?;
                eq("mkdir", kv.get("mkdir./tmp/oct-d")?, "err:42")
            }
        ),
        t!(
            "seccomp.errno-default-eperm",
            "config-linux.md#seccomp",
            MUST,
            "errnoRet: when unset, SCMP_ACT_ERRNO returns EPERM.",
            |c| {
                let kv = run_ops(c, &["mkdir:/tmp/oct-d"], |b| {
                    seccomp_errno(b, "SCMP_ACT_ERRNO", None)
                })?;
                eq("mkdir", kv.get("mkdir./tmp/oct-d")?, "err:1")
            }
        ),
        t!(
            "seccomp.default-action",
            "config-linux.md#seccomp",
            MUST,
            "defaultAction: the action for syscalls not matched by any rule (SCMP_ACT_ERRNO default, allowed list).",
            |c| {
                let mut b = c.bundle()?;
                b.args(&["mkdir:/tmp/oct-d", "exit:0"]);
                // Allow what a static binary needs to start, print and exit; everything else errno 38.
                let allow = [
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
                    "prctl",
                    "seccomp",
                    "exit",
                    "pread64",
                    "pwrite64",
                    "readv",
                    "writev",
                    "openat2",
                ];
                b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "architectures": ["SCMP_ARCH_X86_64"],
                   "syscalls": [{"names": allow.to_vec(), "action": "SCMP_ACT_ALLOW"}]});
                let kv = c.run(&b)?;
                eq(
                    "mkdir under defaultAction ERRNO(38)",
                    kv.get("mkdir./tmp/oct-d")?,
                    "err:38",
                )
            }
        ),
        t!(
            "seccomp.kill",
            "config-linux.md#seccomp",
            MUST,
            "SCMP_ACT_KILL: the process MUST be killed when it makes the syscall.",
            |c| {
                let kv = run_ops(c, &["args", "mkdir:/tmp/oct-d", "uts"], |b| {
                    seccomp_errno(b, "SCMP_ACT_KILL_PROCESS", None)
                })?;
                kv.get("args")?;
                ensure(
                    kv.opt("mkdir./tmp/oct-d").is_none() && kv.opt("hostname").is_none(),
                    "the process survived a SCMP_ACT_KILL_PROCESS syscall",
                )
            }
        ),
        t!(
            "seccomp.notify",
            "config-linux.md#seccomp",
            MUST,
            "SCMP_ACT_NOTIFY with listenerPath: the runtime MUST send the seccomp notify fd and the container process state over the unix socket.",
            |c| {
                let mut b = c.bundle()?;
                let sock = c.dir.join("seccomp.sock");
                let l = UnixListener::bind(&sock).map_err(|e| Verdict::Fail(e.to_string()))?;
                seccomp_errno(&mut b, "SCMP_ACT_NOTIFY", None);
                b.config["linux"]["seccomp"]["listenerPath"] = json!(sock);
                b.config["linux"]["seccomp"]["listenerMetadata"] = json!("oct-meta");
                b.args(&["mkdir:/tmp/oct-d"]);
                let id = c.id();
                let o = c.create(&b, &id)?;
                ensure(o.ok(), format!("create: {}", o.brief()))?;
                let s0 = c.start(&id);
                ensure(s0.ok(), format!("start: {}", s0.brief()))?;
                let conn = crate::t_config::accept_timeout(&l, 10)?;
                let (data, fd) = crate::t_config::recv_fd(conn.as_raw_fd())?;
                drop(fd); // closing the listener fd fails the pending syscall
                let v: Value = serde_json::from_str(&data).map_err(|e| {
                    Verdict::Fail(format!("message is not JSON ({e}): {}", trunc(&data, 200)))
                })?;
                ensure(
                    v["fds"]
                        .as_array()
                        .map(|a| a.iter().any(|f| f == "seccompFd"))
                        .unwrap_or(false),
                    format!("fds lacks seccompFd: {v}"),
                )?;
                eq("metadata", v["metadata"].as_str(), Some("oct-meta"))?;
                eq("state.id", v["state"]["id"].as_str(), Some(id.as_str()))?;
                c.wait_status(&id, "stopped", 10)
            }
        ),
        // ---- rootfs propagation, masked and readonly paths
        t!(
            "rootfs-propagation.private",
            "config-linux.md#rootfs-mount-propagation",
            MUST,
            "rootfsPropagation private: the container's root mount MUST be private (no shared or master tag).",
            |c| {
                let kv = run_ops(c, &["mountinfo"], |b| {
                    b.config["linux"]["rootfsPropagation"] = json!("private")
                })?;
                eq(
                    "propagation of /",
                    mount_prop(&kv, "/")?.as_str(),
                    "private",
                )
            }
        ),
        t!(
            "rootfs-propagation.shared",
            "config-linux.md#rootfs-mount-propagation",
            MUST,
            "rootfsPropagation shared: the container's root mount MUST be shared.",
            |c| {
                let kv = run_ops(c, &["mountinfo"], |b| {
                    b.config["linux"]["rootfsPropagation"] = json!("shared")
                })?;
                let p = mount_prop(&kv, "/")?;
                ensure(p.contains("shared:"), format!("propagation of / is {p}"))
            }
        ),
        t!(
            "masked-paths",
            "config-linux.md#masked-paths",
            MUST,
            "maskedPaths: the runtime MUST mask over the provided paths inside the container so that they cannot be read.",
            |c| {
                let kv = run_ops(
                    c,
                    &["cat:/proc/kcore", "ls:/proc/acpi", "cat:/proc/timer_list"],
                    |b| {
                        b.config["linux"]["maskedPaths"] = json!([
                            "/proc/kcore",
                            "/proc/acpi",
                            "/proc/timer_list",
                            "/oct-not-there"
                        ]);
                    },
                )?;
                eq("/proc/timer_list", kv.get("cat./proc/timer_list")?, "")?;
                let acpi = kv.get("ls./proc/acpi")?;
                ensure(
                    acpi.is_empty() || acpi.starts_with("err:"),
                    format!("/proc/acpi readable: {acpi}"),
                )
            }
        ),
        t!(
            "readonly-paths",
            "config-linux.md#readonly-paths",
            MUST,
            "readonlyPaths: the runtime MUST set the provided paths as readonly inside the container.",
            |c| {
                let kv = run_ops(
                    c,
                    &["openw:/proc/sys/kernel/hostname", "statfs:/proc/sys"],
                    |b| {
                        b.config["linux"]["readonlyPaths"] = json!(["/proc/sys", "/oct-not-there"]);
                    },
                )?;
                eq(
                    "write open of /proc/sys/kernel/hostname",
                    kv.get("openw./proc/sys/kernel/hostname")?,
                    "err:30",
                )
            }
        ),
        t!(
            "mount-label",
            "config-linux.md#mount-label",
            MUST,
            "mountLabel: the runtime MUST set the SELinux context of the mounts in the container.",
            |_c| {
                if fs::metadata("/sys/fs/selinux/enforce").is_err() {
                    return skip("no SELinux on this host");
                }
                fail("SELinux host: test not implemented")
            }
        ),
        t!(
            "personality.linux32",
            "config-linux.md#personality",
            MUST,
            "personality domain LINUX32: the runtime MUST set the execution domain (uname -m reports i686).",
            |c| {
                let kv = run_ops(c, &["uts", "personality"], |b| {
                    b.config["linux"]["personality"] = json!({"domain": "LINUX32"})
                })?;
                eq("machine", kv.get("machine")?, "i686")
            }
        ),
        t!(
            "intel-rdt.unavailable-errors",
            "config-linux.md#intelrdt",
            MUST,
            "intelRdt: the runtime MUST place the container in a resctrl group; if resctrl is not available it MUST generate an error (lifecycle step 2).",
            |c| {
                if fs::read_to_string("/proc/self/mountinfo")
                    .unwrap_or_default()
                    .contains(" resctrl ")
                {
                    return skip(
                        "resctrl is mounted on this host: the error path cannot be tested",
                    );
                }
                let mut b = c.bundle()?;
                b.config["linux"]["intelRdt"] =
                    json!({"closID": "oct", "l3CacheSchema": "L3:0=ff"});
                b.args(&["exit:0"]);
                let (failed, _) = c.create_fails(&b)?;
                ensure(failed, "intelRdt was accepted on a host without resctrl")
            }
        ),
        t!(
            "memory-policy",
            "config-linux.md#memory-policy",
            MUST,
            "memoryPolicy: the runtime MUST set the NUMA memory policy (mode, nodes) of the container process.",
            |c| {
                let kv = run_ops(c, &["mempolicy"], |b| {
                    b.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"})
                })?;
                eq("mempolicy (mode mask)", kv.get("mempolicy")?, "2 0x1")
            }
        ),
        t!(
            "net-devices",
            "config-linux.md#network-devices",
            MUST,
            "netDevices: the runtime MUST move the host device into the container network namespace, renamed to name.",
            |c| {
                let host = format!("oct{}", std::process::id() % 100000);
                let st = std::process::Command::new("ip")
                    .args([
                        "link",
                        "add",
                        &host,
                        "type",
                        "veth",
                        "peer",
                        "name",
                        &format!("{host}p"),
                    ])
                    .status();
                if !matches!(st, Ok(s) if s.success()) {
                    return skip("cannot create a veth pair on this host");
                }
                let r = run_ops(c, &["ls:/sys/class/net"], |b| {
                    b.config["linux"]["netDevices"] = json!({host.clone(): {"name": "octeth0"}});
                });
                let _ = std::process::Command::new("ip")
                    .args(["link", "del", &host])
                    .stderr(std::process::Stdio::null())
                    .status();
                let _ = std::process::Command::new("ip")
                    .args(["link", "del", &format!("{host}p")])
                    .stderr(std::process::Stdio::null())
                    .status();
                let kv = r?;
                ensure(
                    kv.get("ls./sys/class/net")?
                        .split(',')
                        .any(|d| d == "octeth0"),
                    format!(
                        "octeth0 not in the container: {}",
                        kv.get("ls./sys/class/net")?
                    ),
                )
            }
        ),
        // ---- features.md
        t!(
            "features.json",
            "features.md",
            MUST,
            "The features document MUST be JSON with ociVersionMin and ociVersionMax (REQUIRED).",
            |c| {
                let f = features(c)?;
                ensure(f["ociVersionMin"].is_string(), "ociVersionMin missing")?;
                ensure(f["ociVersionMax"].is_string(), "ociVersionMax missing")
            }
        ),
        t!(
            "features.hooks-listed-work",
            "features.md#hooks",
            SHOULD,
            "hooks: the list of recognized hook names; every listed hook runs (createRuntime checked).",
            |c| {
                let f = features(c)?;
                let hooks: Vec<String> = f["hooks"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|h| h.as_str().map(|s| s.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                ensure(
                    hooks.iter().any(|h| h == "createRuntime"),
                    format!("createRuntime not listed: {hooks:?}"),
                )
            }
        ),
        t!(
            "features.namespaces",
            "features.md#linux",
            MUST,
            "linux.namespaces: the list of recognized namespaces; each listed namespace MUST be usable.",
            |c| {
                let f = features(c)?;
                let ns: Vec<String> = f["linux"]["namespaces"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|h| h.as_str().map(|s| s.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                ensure(!ns.is_empty(), "linux.namespaces missing")?;
                for n in &ns {
                    if n == "user" {
                        continue;
                    }
                    let mut b = c.bundle()?;
                    b.add_ns(n, None);
                    b.args(&["exit:0"]);
                    c.run(&b).map_err(|e| match e {
                        Verdict::Fail(m) => {
                            Verdict::Fail(format!("listed namespace {n} unusable: {m}"))
                        }
                        v => v,
                    })?;
                }
                Ok(())
            }
        ),
        t!(
            "features.mount-options",
            "features.md#mount-options",
            SHOULD,
            "mountOptions: the list of recognized mount options; each SHOULD be an option string (ro, nosuid among them).",
            |c| {
                let f = features(c)?;
                let o: Vec<String> = f["mountOptions"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|h| h.as_str().map(|s| s.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                ensure(
                    o.iter().any(|x| x == "ro") && o.iter().any(|x| x == "nosuid"),
                    format!("mountOptions lacks ro/nosuid: {o:?}"),
                )
            }
        ),
    ]
}
