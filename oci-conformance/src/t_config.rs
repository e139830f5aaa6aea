//! config.md: root, mounts, process, hostname/domainname, annotations.

use crate::harness::{Ctx, Kv, R, Verdict, ensure, eq, fail, trunc};
use crate::{MUST, SHOULD, Test};
use serde_json::json;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

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

/// Receive one message with an SCM_RIGHTS fd on a connected unix socket.
pub fn recv_fd(sock: i32) -> Result<(String, OwnedFd), Verdict> {
    let mut data = [0u8; 4096];
    let mut cbuf = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain old data; zeroed is valid and we point it at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: msg points at buffers that outlive the call.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return fail(format!("recvmsg: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: msg was filled by recvmsg; CMSG_* walk only inside msg_control.
    let fd = unsafe {
        let cm = libc::CMSG_FIRSTHDR(&msg);
        if cm.is_null()
            || (*cm).cmsg_level != libc::SOL_SOCKET
            || (*cm).cmsg_type != libc::SCM_RIGHTS
        {
            return fail("the message carried no SCM_RIGHTS file descriptor");
        }
        std::ptr::read_unaligned(libc::CMSG_DATA(cm) as *const i32)
    };
    // SAFETY: the kernel just installed fd in our table; we own it now.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((
        String::from_utf8_lossy(&data[..n as usize]).into_owned(),
        owned,
    ))
}

/// Wait for a connection on `l` for up to `secs`.
pub fn accept_timeout(
    l: &UnixListener,
    secs: u64,
) -> Result<std::os::unix::net::UnixStream, Verdict> {
    l.set_nonblocking(true)
        .map_err(|e| Verdict::Fail(e.to_string()))?;
    let t0 = Instant::now();
    loop {
        match l.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                return Ok(s);
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && t0.elapsed() < Duration::from_secs(secs) =>
            {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return fail(format!("no connection on the socket: {e}")),
        }
    }
}

pub fn console_test(c: &mut Ctx, json_check: bool) -> R {
    let mut b = c.bundle()?;
    b.args(&["tty", "exit:0"]);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 31, "width": 101});
    b.write()?;
    let sock = c.dir.join("console.sock");
    let l = UnixListener::bind(&sock).map_err(|e| Verdict::Fail(format!("bind: {e}")))?;
    let id = c.id();
    let mut cmd = std::process::Command::new(&c.env.rt);
    cmd.arg("--root")
        .arg(&c.env.root)
        .args(["create", "--bundle", b.path(), "--console-socket"])
        .arg(&sock)
        .arg(&id);
    cmd.stdin(std::process::Stdio::null());
    cmd.stdout(fs::File::create(b.dir.join("stdout")).map_err(|e| Verdict::Fail(e.to_string()))?);
    cmd.stderr(fs::File::create(b.dir.join("stderr")).map_err(|e| Verdict::Fail(e.to_string()))?);
    let mut ch = cmd.spawn().map_err(|e| Verdict::Fail(e.to_string()))?;
    let conn = match accept_timeout(&l, 15) {
        Ok(s) => s,
        Err(e) => {
            let _ = ch.kill();
            let _ = ch.wait();
            return Err(e);
        }
    };
    let (data, master) = recv_fd(conn.as_raw_fd())?;
    let st = ch.wait().map_err(|e| Verdict::Fail(e.to_string()))?;
    ensure(
        st.success(),
        format!("create failed: {}", trunc(&b.stderr(), 300)),
    )?;
    if json_check {
        let v: serde_json::Value = serde_json::from_str(&data)
            .map_err(|e| Verdict::Fail(format!("request data is not JSON ({e}): {data:?}")))?;
        eq("type", v["type"].as_str(), Some("terminal"))?;
        return eq("container", v["container"].as_str(), Some(id.as_str()));
    }
    ensure(c.start(&id).ok(), "start failed")?;
    let mut f = fs::File::from(master);
    let mut out = Vec::new();
    let t0 = Instant::now();
    // Read until EIO (all slave ends closed) or a 10 s limit.
    let mut buf = [0u8; 4096];
    while t0.elapsed() < Duration::from_secs(10) {
        use std::io::Read;
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&out).contains("winsize=") {
            break;
        }
    }
    let kv = Kv::parse(&String::from_utf8_lossy(&out).replace('\r', ""));
    for fd in 0..3 {
        eq(&format!("isatty({fd})"), kv.get(&format!("tty.{fd}"))?, "1")?;
    }
    eq("consoleSize (rows cols)", kv.get("winsize")?, "31 101")
}

fn run_ops(
    c: &mut Ctx,
    ops: &[&str],
    f: impl FnOnce(&mut crate::harness::Bundle),
) -> Result<Kv, Verdict> {
    let mut b = c.bundle()?;
    b.args(ops);
    f(&mut b);
    c.run(&b)
}

fn caps_mask(names: &[&str]) -> u64 {
    let mut m = 0u64;
    for n in names {
        let bit = match *n {
            "CAP_CHOWN" => 0,
            "CAP_KILL" => 5,
            "CAP_NET_BIND_SERVICE" => 10,
            "CAP_NET_RAW" => 13,
            "CAP_SYS_CHROOT" => 18,
            "CAP_SYS_ADMIN" => 21,
            "CAP_MKNOD" => 27,
            "CAP_AUDIT_WRITE" => 29,
            _ => continue,
        };
        m |= 1 << bit;
    }
    m
}

fn cap_field(kv: &Kv, f: &str) -> Result<u64, Verdict> {
    let v = kv.get(&format!("status.{f}"))?;
    u64::from_str_radix(v, 16).map_err(|e| Verdict::Fail(format!("{f}={v}: {e}")))
}

pub fn tests() -> Vec<Test> {
    vec![
        t!(
            "config.oci-version-1.3",
            "config.md#specification-version",
            MUST,
            "ociVersion: the version of the runtime-spec the bundle complies with; a 1.3 runtime MUST accept a bundle declaring 1.3.0.",
            |c| {
                let mut b = c.bundle()?;
                b.config["ociVersion"] = json!("1.3.0");
                b.args(&["exit:0"]);
                c.run(&b).map(|_| ())
            }
        ),
        t!(
            "root.path-relative",
            "config.md#root",
            MUST,
            "root.path: a relative path is relative to the bundle; the runtime MUST use it as the container's root filesystem.",
            |c| {
                let kv = run_ops(c, &["stat:/checker", "ls:/"], |_| {})?;
                ensure(
                    kv.get("ls./")?.contains("checker"),
                    "the container root is not the bundle's rootfs",
                )
            }
        ),
        t!(
            "root.path-absolute",
            "config.md#root",
            MUST,
            "root.path MAY be an absolute path; the runtime MUST use that path as the container's root.",
            |c| {
                let mut b = c.bundle()?;
                let abs = b.rootfs().display().to_string();
                b.config["root"]["path"] = json!(abs);
                b.args(&["ls:/"]);
                let kv = c.run(&b)?;
                ensure(
                    kv.get("ls./")?.contains("checker"),
                    "absolute root.path not used",
                )
            }
        ),
        t!(
            "root.readonly",
            "config.md#root",
            MUST,
            "root.readonly: if true then the root filesystem MUST be read-only inside the container.",
            |c| {
                let kv = run_ops(c, &["write:/oct-file", "statfs:/"], |b| {
                    b.config["root"]["readonly"] = json!(true)
                })?;
                eq("write to /", kv.get("write./oct-file")?, "err:30")
            }
        ),
        t!(
            "root.readwrite",
            "config.md#root",
            MUST,
            "root.readonly false (default): the root filesystem is writable.",
            |c| {
                let kv = run_ops(c, &["write:/oct-file"], |_| {})?;
                eq("write to /", kv.get("write./oct-file")?, "ok")
            }
        ),
        t!(
            "mounts.tmpfs-options",
            "config.md#mounts",
            MUST,
            "The runtime MUST mount entries in mounts, with type, source and options as given (tmpfs with mode and size).",
            |c| {
                let kv = run_ops(c, &["mountinfo", "stat:/mnt/t"], |b| {
                    b.add_mount(json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=0710", "size=1m"]}))
                })?;
                let m = kv.get("mount./mnt/t")?;
                ensure(m.starts_with("tmpfs "), format!("/mnt/t is not tmpfs: {m}"))?;
                ensure(
                    m.contains("nosuid") && m.contains("nodev"),
                    format!("options not applied: {m}"),
                )?;
                ensure(m.contains("size=1024k"), format!("size not applied: {m}"))?;
                ensure(
                    kv.get("stat./mnt/t")?.starts_with("d 710 "),
                    format!("mode not applied: {}", kv.get("stat./mnt/t")?),
                )
            }
        ),
        t!(
            "mounts.order",
            "config.md#mounts",
            MUST,
            "The runtime MUST mount entries in the listed order.",
            |c| {
                let kv = run_ops(c, &["mountinfo", "stat:/mnt/a/b"], |b| {
                    b.add_mount(json!({"destination": "/mnt/a", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}));
                    b.add_mount(json!({"destination": "/mnt/a/b", "type": "tmpfs", "source": "tmpfs", "options": ["mode=700"]}));
                })?;
                kv.get("mount./mnt/a/b")?;
                ensure(
                    kv.get("stat./mnt/a/b")?.starts_with("d 700"),
                    "the later mount is not on top of the earlier one",
                )
            }
        ),
        t!(
            "mounts.bind-ro",
            "config.md#mounts",
            MUST,
            "Bind mounts with option ro MUST be read-only in the container; the source is visible at destination.",
            |c| {
                let mut b = c.bundle()?;
                let src = c.dir.join("bindsrc");
                fs::create_dir_all(&src).map_err(|e| Verdict::Fail(e.to_string()))?;
                fs::write(src.join("hello"), "hi").map_err(|e| Verdict::Fail(e.to_string()))?;
                b.add_mount(json!({"destination": "/mnt/ro", "type": "bind", "source": src, "options": ["rbind", "ro"]}));
                b.args(&["cat:/mnt/ro/hello", "write:/mnt/ro/new"]);
                let kv = c.run(&b)?;
                eq("bind source content", kv.get("cat./mnt/ro/hello")?, "hi")?;
                eq("write in a ro bind", kv.get("write./mnt/ro/new")?, "err:30")
            }
        ),
        t!(
            "mounts.destination-created",
            "config.md#mounts",
            MUST,
            "destination: destination of mount point: path inside container; a missing destination directory is created by the runtime.",
            |c| {
                let kv = run_ops(c, &["stat:/oct/deep/dir"], |b| {
                    b.add_mount(
                        json!({"destination": "/oct/deep/dir", "type": "tmpfs", "source": "tmpfs"}),
                    )
                })?;
                ensure(
                    kv.get("stat./oct/deep/dir")?.starts_with("d "),
                    "missing mount destination not created",
                )
            }
        ),
        t!(
            "mounts.bind-file",
            "config.md#mounts",
            MUST,
            "A bind mount of a regular file MUST appear as that file at destination.",
            |c| {
                let mut b = c.bundle()?;
                let src = c.dir.join("file-src");
                fs::write(&src, "file-content").map_err(|e| Verdict::Fail(e.to_string()))?;
                b.add_mount(json!({"destination": "/etc/oct-file", "type": "bind", "source": src, "options": ["bind"]}));
                b.args(&["cat:/etc/oct-file"]);
                let kv = c.run(&b)?;
                eq("bound file", kv.get("cat./etc/oct-file")?, "file-content")
            }
        ),
        t!(
            "process.args",
            "config.md#process",
            MUST,
            "args: same semantics as IEEE Std 1003.1 execvp's argv; args[0] is resolved in the container.",
            |c| {
                let mut b = c.bundle()?;
                b.config["process"]["args"] =
                    json!(["/bin/sh", "-c", "echo args=$0-$1", "zero", "one"]);
                let kv = c.run(&b)?;
                eq("argv", kv.get("args")?, "zero-one")
            }
        ),
        t!(
            "process.args-path-lookup",
            "config.md#process",
            MUST,
            "args[0] without a slash is looked up in the PATH of process.env (execvp semantics).",
            |c| {
                let mut b = c.bundle()?;
                b.config["process"]["args"] = json!(["sh", "-c", "echo found=yes"]);
                let kv = c.run(&b)?;
                eq("found", kv.get("found")?, "yes")
            }
        ),
        t!(
            "process.env",
            "config.md#process",
            MUST,
            "env: same semantics as IEEE Std 1003.1 environ; the process gets exactly these variables.",
            |c| {
                let kv = run_ops(c, &["env"], |b| {
                    b.config["process"]["env"] = json!(["PATH=/bin", "OCT_A=1", "OCT_B=with space"])
                })?;
                eq("OCT_A", kv.get("env.OCT_A")?, "1")?;
                eq("OCT_B", kv.get("env.OCT_B")?, "with space")?;
                let n = kv.0.keys().filter(|k| k.starts_with("env.")).count();
                // HOME may be added by a runtime for POSIX (not forbidden); nothing else.
                ensure(
                    n <= 4,
                    format!("unexpected extra environment: {}", trunc(&kv.1, 300)),
                )
            }
        ),
        t!(
            "process.cwd",
            "config.md#process",
            MUST,
            "cwd: the working directory that will be set for the executable; MUST be an absolute path.",
            |c| {
                let kv = run_ops(c, &["cwd"], |b| b.config["process"]["cwd"] = json!("/tmp"))?;
                eq("cwd", kv.get("cwd")?, "/tmp")
            }
        ),
        t!(
            "process.terminal-false",
            "config.md#process",
            MUST,
            "terminal false: the process is not attached to a terminal (stdio are the runtime's).",
            |c| {
                let kv = run_ops(c, &["tty"], |_| {})?;
                eq("isatty(1)", kv.get("tty.1")?, "0")
            }
        ),
        t!(
            "process.user-ids",
            "config.md#posix-platform-user",
            MUST,
            "uid, gid and additionalGids: the process MUST run with these user and group ids.",
            |c| {
                let kv = run_ops(c, &["ids"], |b| {
                    b.config["process"]["user"] =
                        json!({"uid": 1234, "gid": 2345, "additionalGids": [5, 3456]})
                })?;
                eq("uid", kv.get("uid")?, "1234")?;
                eq("euid", kv.get("euid")?, "1234")?;
                eq("gid", kv.get("gid")?, "2345")?;
                let mut g: Vec<&str> = kv
                    .get("groups")?
                    .split(',')
                    .filter(|s| !s.is_empty() && *s != "2345")
                    .collect();
                g.sort();
                eq("additional groups", g, vec!["3456", "5"])
            }
        ),
        t!(
            "process.user-umask",
            "config.md#posix-platform-user",
            MUST,
            "umask: the umask of the user; if unspecified the runtime leaves it (1.3: process.user.umask).",
            |c| {
                let kv = run_ops(c, &["umask"], |b| {
                    b.config["process"]["user"]["umask"] = json!(0o27)
                })?;
                eq("umask", kv.get("umask")?, "0027")
            }
        ),
        t!(
            "process.rlimits",
            "config.md#posix-process",
            MUST,
            "rlimits: the runtime MUST apply each entry's soft and hard values with setrlimit.",
            |c| {
                let kv = run_ops(
                    c,
                    &[
                        "rlimit:RLIMIT_NOFILE",
                        "rlimit:RLIMIT_CORE",
                        "rlimit:RLIMIT_NPROC",
                    ],
                    |b| {
                        b.config["process"]["rlimits"] = json!([
                       {"type": "RLIMIT_NOFILE", "soft": 513, "hard": 1025},
                       {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
                       {"type": "RLIMIT_NPROC", "soft": 333, "hard": 444}]);
                    },
                )?;
                eq("NOFILE", kv.get("rlimit.RLIMIT_NOFILE")?, "513 1025")?;
                eq("CORE", kv.get("rlimit.RLIMIT_CORE")?, "4096 8192")?;
                eq("NPROC", kv.get("rlimit.RLIMIT_NPROC")?, "333 444")
            }
        ),
        t!(
            "process.rlimits-duplicate-errors",
            "config.md#posix-process",
            MUST,
            "If rlimits contains duplicated entries with same type, the runtime MUST generate an error.",
            |c| {
                let mut b = c.bundle()?;
                b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100}, {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200}]);
                b.args(&["exit:0"]);
                let (failed, _) = c.create_fails(&b)?;
                ensure(failed, "duplicated RLIMIT_NOFILE accepted")
            }
        ),
        t!(
            "process.rlimits-invalid-errors",
            "config.md#posix-process",
            MUST,
            "type: a resource the runtime cannot map to a kernel limit (unknown RLIMIT_ name) MUST generate an error.",
            |c| {
                let mut b = c.bundle()?;
                b.config["process"]["rlimits"] =
                    json!([{"type": "RLIMIT_OCT_BOGUS", "soft": 1, "hard": 1}]);
                b.args(&["exit:0"]);
                let (failed, _) = c.create_fails(&b)?;
                ensure(failed, "an unknown rlimit type was accepted")
            }
        ),
        t!(
            "process.capabilities",
            "config.md#linux-process",
            MUST,
            "capabilities: effective, bounding, permitted, inheritable and ambient sets MUST be those configured.",
            |c| {
                let e = ["CAP_CHOWN", "CAP_KILL"];
                let bd = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_MKNOD"];
                let i = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"];
                let kv = run_ops(c, &["status"], |b| {
                    b.config["process"]["noNewPrivileges"] = json!(false);
                    b.config["process"]["capabilities"] = json!({"effective": e, "bounding": bd, "permitted": i, "inheritable": i, "ambient": ["CAP_KILL"]});
                })?;
                eq("CapBnd", cap_field(&kv, "CapBnd")?, caps_mask(&bd))?;
                eq("CapInh", cap_field(&kv, "CapInh")?, caps_mask(&i))?;
                eq(
                    "CapAmb",
                    cap_field(&kv, "CapAmb")?,
                    caps_mask(&["CAP_KILL"]),
                )?;
                // exec adds ambient to permitted/effective; what was configured must be there.
                ensure(
                    cap_field(&kv, "CapPrm")? & caps_mask(&i) == caps_mask(&i),
                    "CapPrm lacks configured permitted capabilities",
                )?;
                ensure(
                    cap_field(&kv, "CapEff")? & caps_mask(&e) == caps_mask(&e),
                    "CapEff lacks configured effective capabilities",
                )
            }
        ),
        t!(
            "process.capabilities-nonroot",
            "config.md#linux-process",
            MUST,
            "ambient: the ambient capabilities MUST be kept for a non-root process (they survive the uid change and execve).",
            |c| {
                let kv = run_ops(c, &["status"], |b| {
                    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
                    let s = ["CAP_NET_BIND_SERVICE", "CAP_KILL"];
                    b.config["process"]["capabilities"] = json!({"effective": s, "bounding": s, "permitted": s, "inheritable": s, "ambient": s});
                })?;
                eq(
                    "CapAmb",
                    cap_field(&kv, "CapAmb")?,
                    caps_mask(&["CAP_NET_BIND_SERVICE", "CAP_KILL"]),
                )?;
                eq(
                    "CapEff",
                    cap_field(&kv, "CapEff")?,
                    caps_mask(&["CAP_NET_BIND_SERVICE", "CAP_KILL"]),
                )
            }
        ),
        t!(
            "process.capabilities-unknown-no-fail",
            "config.md#linux-process",
            SHOULD,
            "Runtimes SHOULD NOT fail if the container configuration requests capabilities that cannot be granted (unknown name: log a warning).",
            |c| {
                let mut b = c.bundle()?;
                let s = ["CAP_KILL", "CAP_OCT_NOT_A_CAP"];
                b.config["process"]["capabilities"] =
                    json!({"effective": s, "bounding": s, "permitted": s});
                b.args(&["exit:0"]);
                c.run(&b).map(|_| ())
            }
        ),
        t!(
            "process.no-new-privileges",
            "config.md#linux-process",
            MUST,
            "noNewPrivileges true MUST prevent the process from gaining privileges (PR_SET_NO_NEW_PRIVS is set).",
            |c| {
                let kv = run_ops(c, &["status"], |_| {})?;
                eq("NoNewPrivs", kv.get("status.NoNewPrivs")?, "1")
            }
        ),
        t!(
            "process.no-new-privileges-false",
            "config.md#linux-process",
            MUST,
            "noNewPrivileges false: the flag is not set.",
            |c| {
                let kv = run_ops(c, &["status"], |b| {
                    b.config["process"]["noNewPrivileges"] = json!(false)
                })?;
                eq("NoNewPrivs", kv.get("status.NoNewPrivs")?, "0")
            }
        ),
        t!(
            "process.oom-score-adj",
            "config.md#linux-process",
            MUST,
            "oomScoreAdj adjusts the oom-killer score in [pid]/oom_score_adj for the process.",
            |c| {
                let kv = run_ops(c, &["cat:/proc/self/oom_score_adj"], |b| {
                    b.config["process"]["oomScoreAdj"] = json!(123)
                })?;
                eq(
                    "oom_score_adj",
                    kv.get("cat./proc/self/oom_score_adj")?,
                    "123",
                )
            }
        ),
        t!(
            "process.io-priority",
            "config.md#linux-process",
            MUST,
            "ioPriority: the runtime MUST set the process I/O class and priority (ioprio_set).",
            |c| {
                let kv = run_ops(c, &["ioprio"], |b| {
                    b.config["process"]["ioPriority"] =
                        json!({"class": "IOPRIO_CLASS_BE", "priority": 6})
                })?;
                eq(
                    "ioprio (class<<13|prio)",
                    kv.get("ioprio")?,
                    &format!("{}", (2 << 13) | 6),
                )
            }
        ),
        t!(
            "process.scheduler",
            "config.md#linux-process",
            MUST,
            "scheduler: the runtime MUST set the scheduling policy and nice value (sched_setattr).",
            |c| {
                let kv = run_ops(c, &["sched"], |b| {
                    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5})
                })?;
                eq("policy nice", kv.get("sched")?, "3 5")
            }
        ),
        t!(
            "process.exec-cpu-affinity",
            "config.md#linux-process",
            MUST,
            "execCPUAffinity \"is not applicable to the container's init process\": the runtime accepts it and the init keeps its usual affinity.",
            |c| {
                // The driver's own affinity: what an init that ignores the
                // setting gets (unpinned caller, no cpuset in the config).
                let own = crate::harness::own_affinity_mask();
                if own.count_ones() < 2 {
                    return crate::harness::skip("fewer than two CPUs: cannot tell");
                }
                let kv = run_ops(c, &["affinity"], |b| {
                    b.config["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "0"})
                })?;
                eq("affinity", kv.get("affinity")?, &format!("{own:#x}"))
            }
        ),
        t!(
            "process.apparmor-profile",
            "config.md#linux-process",
            MUST,
            "apparmorProfile: the runtime MUST apply the named AppArmor profile.",
            |_c| {
                if fs::metadata("/sys/kernel/security/apparmor").is_err()
                    && fs::metadata("/sys/module/apparmor").is_err()
                {
                    return crate::harness::skip("no AppArmor on this host");
                }
                fail("AppArmor host: test not implemented")
            }
        ),
        t!(
            "process.selinux-label",
            "config.md#linux-process",
            MUST,
            "selinuxLabel: the runtime MUST set the SELinux label of the process.",
            |_c| {
                if fs::metadata("/sys/fs/selinux/enforce").is_err() {
                    return crate::harness::skip("no SELinux on this host");
                }
                fail("SELinux host: test not implemented")
            }
        ),
        t!(
            "hostname.set",
            "config.md#hostname",
            MUST,
            "hostname: the container's hostname as seen by processes running inside the container.",
            |c| {
                let kv = run_ops(c, &["uts"], |b| b.config["hostname"] = json!("oct-host"))?;
                eq("hostname", kv.get("hostname")?, "oct-host")
            }
        ),
        t!(
            "domainname.set",
            "config.md#domainname",
            MUST,
            "domainname: the container's domainname as seen by processes running inside the container.",
            |c| {
                let kv = run_ops(c, &["uts"], |b| {
                    b.config["domainname"] = json!("oct.example")
                })?;
                eq("domainname", kv.get("domainname")?, "oct.example")
            }
        ),
    ]
}
