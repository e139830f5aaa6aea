//! No way out, part 1: the runtime's own process and descriptors. Each test is a malicious
//! bundle or a hostile process in the container, and fails if the container reaches the host:
//! the runtime binary (CVE-2019-5736 class), a process that is still the runtime (the init in
//! `created`, an exec'd process, a startContainer hook's parent), descriptors the runtime or
//! its caller held (leaked fds, CVE-2024-21626).
//!
//! Each test says in its doc comment how it was seen to fail against a deliberately weakened
//! capsa (the defence removed).

mod common;

use common::*;
use serde_json::{Value, json};
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `mkfifo`, as root, for the test's own rootfs.
fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o666))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

fn write_exec(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod +x");
}

/// The runtime binary copied into the test's temp dir: an attack that succeeds overwrites the
/// copy, never the binary other tests use.
fn runtime_copy(c: &Ctx) -> PathBuf {
    let copy = c.scratch("runtime-copy");
    fs::copy(runtime(), &copy).expect("copy the runtime binary");
    copy
}

/// Run `bin --root <root> args` (the copy instead of the runtime under test).
fn rt_bin(c: &Ctx, bin: &Path, args: &[&str]) -> Output {
    let root = c.root();
    let mut full: Vec<&str> = vec!["--root", root.to_str().expect("utf-8")];
    full.extend_from_slice(args);
    run_cmd(bin, &full, &c.tmp.path().join("out"), TIMEOUT, |_| {})
}

/// Poll until `path` contains `text` (or `limit`); return what it holds.
fn wait_text(path: &Path, text: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let got = read_lossy(path);
        if got.contains(text) || start.elapsed() > limit {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sha(path: &Path) -> Vec<u8> {
    fs::read(path).expect("read binary")
}

/// Check the outcome of a CVE-2019-5736 attempt.
#[track_caller]
fn assert_binary_intact(before: &[u8], copy: &Path, result: &str) {
    assert!(
        !result.contains("WROTE"),
        "the container wrote to the runtime's binary: {result}"
    );
    assert!(
        sha(copy) == before,
        "the runtime binary on the host changed: {result}"
    );
    if is_capsa() {
        // The attack really ran: the kernel executed the runtime's binary inside the
        // container and the container got an fd on it; only its read-only mount stopped the
        // write. (A runtime that made /proc/self/exe something else passes too.)
        assert!(result.contains("GOT-FD"), "{result}");
    }
}

/// The malicious image of the CVE-2019-5736 tests: /bin/evil is `#!/proc/self/exe
/// --log=/tmp/fifo-ID` (the FIFO blocks the runtime's binary where the attacker can see it),
/// /bin/attack the attacker. Returns the runtime copy and its content before the attack.
fn cve_5736_image(c: &mut Ctx) -> (PathBuf, Vec<u8>) {
    let copy = runtime_copy(c);
    let rootfs = c.rootfs();
    let marker = format!("--log=/tmp/fifo-{}", c.id);
    write_exec(
        &rootfs.join("bin/evil"),
        &format!("#!/proc/self/exe {marker}\n"),
    );
    mkfifo(&rootfs.join(format!("tmp/fifo-{}", c.id)));
    write_exec(
        &rootfs.join("bin/attack"),
        &attacker_script(&marker, &format!("/tmp/fifo-{}", c.id), "/tmp/result"),
    );
    c.config["root"]["readonly"] = json!(false);
    let before = sha(&copy);
    (copy, before)
}

/// Wait for the attacker's verdict and check it.
#[track_caller]
fn cve_5736_outcome(c: &Ctx, copy: &Path, before: &[u8]) {
    let result = wait_text(
        &c.rootfs().join("tmp/result"),
        "DONE",
        Duration::from_secs(25),
    );
    assert!(
        result.contains("DONE"),
        "attacker did not finish: {result:?}"
    );
    assert_binary_intact(before, copy, &result);
}

/// CVE-2019-5736, as published: the image makes a program the runtime will exec into a script
/// whose interpreter is `/proc/self/exe`. Run by `exec`, the kernel starts the *runtime's*
/// binary as a container process; the container grabs /proc/PID/exe and, once the runtime is
/// gone, writes through it. Here the script passes `--log=<fifo>` so that the runtime's
/// binary blocks on opening the FIFO: the window is deterministic. The attacker is the
/// container's init; the attack runs against a copy of the runtime.
///
/// Seen failing: capsa before the trampoline (process/trampoline.rs) printed `GOT-FD WROTE`
/// and the copy ended in "PWNED".
#[test]
fn cve_2019_5736_exec_of_a_proc_self_exe_script() {
    let mut c = Ctx::new("cve5736exec");
    let (copy, before) = cve_5736_image(&mut c);
    c.args(&["/bin/attack"]);
    c.write_config();
    let b = c.bundle();
    let b = b.to_str().expect("utf-8");
    rt_bin(&c, &copy, &["run", "-d", "--bundle", b, &c.id]).ok();
    // Detached: once the script is running, no runtime process of ours holds the binary busy.
    let _ = rt_bin(&c, &copy, &["exec", "-d", &c.id, "/bin/evil"]);
    cve_5736_outcome(&c, &copy, &before);
}

/// The same attack through the container's init: process.args is the `#!/proc/self/exe`
/// script, so the init's own last execve runs the runtime's binary; the attacker comes in
/// through `exec`. The host pid namespace keeps the attacker alive after the init exits.
///
/// Seen failing: capsa before the trampoline: `WROTE`, copy changed.
#[test]
fn cve_2019_5736_init_exec_of_a_proc_self_exe_script() {
    let mut c = Ctx::new("cve5736init");
    let (copy, before) = cve_5736_image(&mut c);
    c.remove_ns("pid");
    c.args(&["/bin/evil"]);
    c.write_config();
    let b = c.bundle();
    let b = b.to_str().expect("utf-8");
    rt_bin(&c, &copy, &["create", "--bundle", b, &c.id]).ok();
    let _ = rt_bin(&c, &copy, &["exec", "-d", &c.id, "/bin/attack"]);
    let _ = rt_bin(&c, &copy, &["start", &c.id]);
    cve_5736_outcome(&c, &copy, &before);
    // The attacker runs in the host pid namespace: stop it with the container's cgroup.
    let _ = c.rt(&["kill", "--all", &c.id, "KILL"]);
}

/// The same attack through `exec`, under a seccomp profile that allows execve but denies
/// execveat, with noNewPrivileges false (issue 10, item 7). The runtime's exec of its
/// read-only copy by fd is execveat: it must not exec the workload from its own binary
/// when that is refused.
///
/// Seen failing: capsa that loaded the filter before the trampoline's exec and, refused,
/// exec'd the workload directly: `GOT-FD WROTE`, copy changed.
#[test]
fn cve_2019_5736_with_execveat_denied_by_seccomp() {
    let mut c = Ctx::new("cve5736seccomp");
    let (copy, before) = cve_5736_image(&mut c);
    c.args(&["/bin/attack"]);
    c.config["process"]["noNewPrivileges"] = json!(false);
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}]
    });
    c.write_config();
    let b = c.bundle();
    let b = b.to_str().expect("utf-8");
    rt_bin(&c, &copy, &["run", "-d", "--bundle", b, &c.id]).ok();
    let _ = rt_bin(&c, &copy, &["exec", "-d", &c.id, "/bin/evil"]);
    cve_5736_outcome(&c, &copy, &before);
}

/// What a probe in the container can get of process `pid`: each line is `<what> OK` or
/// `<what> DENIED`. (Root may list /proc/PID/fd of a non-dumpable process, its directory
/// being root's; following the entries is what must fail.)
fn probe_script(pid: &str) -> String {
    format!(
        "for f in exe cwd root; do readlink /proc/{pid}/$f >/dev/null 2>&1 && echo \"$f OK\" || echo \"$f DENIED\"; done; \
         (cat /proc/{pid}/exe >/dev/null) 2>/dev/null && echo 'read-exe OK' || echo 'read-exe DENIED'; \
         r=DENIED; for n in $(ls /proc/{pid}/fd 2>/dev/null); do readlink /proc/{pid}/fd/$n >/dev/null 2>&1 && r=OK; done; echo \"fd $r\"; \
         (dd if=/proc/{pid}/mem bs=1 count=0 >/dev/null) 2>/dev/null && echo 'mem OK' || echo 'mem DENIED'; \
         (cat /proc/{pid}/environ >/dev/null) 2>/dev/null && echo 'environ OK' || echo 'environ DENIED'"
    )
}

#[track_caller]
fn assert_all_denied(out: &str) {
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.ends_with("OK") || l.ends_with("DENIED"))
        .collect();
    assert_eq!(lines.len(), 7, "probe did not run: {out}");
    let open: Vec<&&str> = lines.iter().filter(|l| l.ends_with(" OK")).collect();
    assert!(
        open.is_empty(),
        "the runtime's process is reachable: {open:?}\n{out}"
    );
}

/// A user-namespaced container whose processes hold every capability the host grants,
/// CAP_SYS_PTRACE included, in their namespace.
fn userns_all_caps(c: &mut Ctx) {
    c.set_ns("user", None);
    c.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    if let Some(m) = c.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/sys/fs/cgroup");
    }
    // Every capability this host lets the runtime grant (its bounding set).
    let bnd = fs::read_to_string("/proc/self/status").expect("status");
    let bnd = status_field(&bnd, "CapBnd")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .expect("CapBnd");
    let all: Vec<Value> = ALL_CAPS
        .iter()
        .filter(|n| bnd & (1u64 << cap_number(n)) != 0)
        .map(|n| json!(n))
        .collect();
    for set in ["bounding", "effective", "permitted"] {
        c.config["process"]["capabilities"][set] = json!(all);
    }
    c.config["process"]["noNewPrivileges"] = json!(false);
}

const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The init waits in `created` as a copy of the runtime (its exe is the runtime's binary, its
/// fds the runtime's: the state dir, the sync socket). A process started with `exec` into that
/// container cannot read the init's exe, cwd, root, fds, memory or environment: neither with
/// the default configuration (root, default capabilities, as many as the init), nor as root of
/// a user namespace with every capability there, CAP_SYS_PTRACE included.
///
/// Seen failing: with `set_non_dumpable()` a no-op, every probe of the default configuration
/// said OK (same uid, the same capabilities as the init). The user-namespace case held even
/// then on this host: the init's uid change resets dumpability to fs.suid_dumpable, 0 here;
/// `set_non_dumpable` keeps it closed where that sysctl is 1.
#[test]
fn created_init_is_opaque_to_exec() {
    if skip_unless_capsa(
        "runc 1.1.5's init is dumpable until exec; its guard is a sealed copy as /proc/self/exe",
    ) {
        return;
    }
    for userns in [false, true] {
        let mut c = Ctx::new("opaqueinit");
        if userns {
            userns_all_caps(&mut c);
        }
        c.args(&["sleep", "1000"]);
        c.create();
        let o = c.rt(&["exec", &c.id, "sh", "-c", &probe_script("1")]);
        o.ok();
        assert_all_denied(&o.stdout);
        // The init is still the runtime's: nothing was started.
        assert_eq!(c.status(&c.id), "created");
    }
}

/// An exec'd process is the runtime until its execve too. The image turns /etc/passwd into a
/// FIFO, so the exec'd process (which looks up HOME there when the config sets none) blocks in
/// the runtime's code, deterministically; the container's init (root, the same capabilities)
/// probes it, then writes the FIFO to let it go.
///
/// Seen failing: with `set_non_dumpable()` removed from exec's stage 1 and process
/// (process/exec.rs), every probe said OK.
#[test]
fn exec_process_is_opaque_until_execve() {
    if skip_unless_capsa(
        "runc 1.1.5's init is dumpable until exec; its guard is a sealed copy as /proc/self/exe",
    ) {
        return;
    }
    let mut c = Ctx::new("opaqueexec");
    // The FIFO goes on a tmpfs, not into the test's image.
    c.push_mount(json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs"}));
    c.config["root"]["readonly"] = json!(false);
    c.config["process"]["env"] = json!(["PATH=/bin"]);
    let script = format!(
        "mkfifo /etc/passwd; touch /tmp/ready; i=0; pid=; \
         while [ -z \"$pid\" ] && [ $i -lt 200 ]; do \
           for p in /proc/[0-9]*; do n=${{p#/proc/}}; [ $n = 1 ] && continue; [ $n = $$ ] && continue; \
             case \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" in *exec*marker-{id}*) pid=$n;; esac; done; \
           i=$((i+1)); sleep 0.05; done; \
         {{ echo pid=$pid; {probe}; }} > /tmp/probe.out 2>&1; \
         echo 'root:x:0:0::/root:/bin/sh' > /etc/passwd; exec sleep 1000",
        id = c.id,
        probe = probe_script("$pid")
    );
    c.sh(&script);
    c.write_config();
    let b = c.bundle();
    c.rt(&["run", "-d", "--bundle", b.to_str().expect("utf-8"), &c.id])
        .ok();
    wait_for_file(&c.rootfs().join("tmp/ready"), Duration::from_secs(10));
    let marker = format!("marker-{}", c.id);
    let o = c.rt(&["exec", &c.id, "echo", &marker]);
    let out = wait_text(
        &c.rootfs().join("tmp/probe.out"),
        "environ",
        Duration::from_secs(10),
    );
    assert!(
        !out.starts_with("pid=\n"),
        "the exec'd process was not found: {out}\n{o}"
    );
    assert_all_denied(&out);
    o.ok();
    assert_eq!(o.stdout.trim(), marker, "{o}");
}

/// A startContainer hook runs in the container while its parent, the init, is still the
/// runtime; the hook's path resolves in the image, which controls it. It cannot reach its
/// parent.
///
/// Seen failing: with `set_non_dumpable()` removed from the init, every probe said OK.
#[test]
fn start_container_hook_cannot_reach_the_init() {
    if skip_unless_capsa(
        "runc 1.1.5's init is dumpable until exec; its guard is a sealed copy as /proc/self/exe",
    ) {
        return;
    }
    let mut c = Ctx::new("hookview");
    c.config["root"]["readonly"] = json!(false);
    write_exec(
        &c.rootfs().join("bin/probe-hook"),
        &format!(
            "#!/bin/sh\n{{ {}; }} > /tmp/hook.out 2>&1\n",
            probe_script("$PPID")
        ),
    );
    c.config["hooks"] = json!({"startContainer": [{"path": "/bin/probe-hook"}]});
    c.args(&["true"]);
    let o = c.run();
    o.ok();
    assert_all_denied(&read_lossy(&c.rootfs().join("tmp/hook.out")));
}

/// Open `path` (a file or a directory) without close-on-exec at fd `target` in the runtime.
fn pass_open(cmd: &mut std::process::Command, f: &fs::File, target: i32) {
    pass_fd_as(cmd, f.as_raw_fd(), target);
}

/// Descriptors other than stdio (and --preserve-fds) never reach the container, from `create`
/// or from `exec`: here the caller leaks a host directory, a file and a socket as fds 3-5, as
/// containerd's shim leaks its fd 3. The workload lists its own fds (`test -e` is a shell
/// builtin: no descriptor of its own gets in the way).
///
/// Seen failing: with `close_inherited_fds` a no-op, fds 3-5 showed up in both.
#[test]
fn only_stdio_and_preserved_fds_reach_the_container() {
    let mut c = Ctx::new("leakfds");
    let dir = fs::File::open(c.tmp.path()).expect("open host dir");
    let file = fs::File::open(c.bundle().join("rootfs/bin/busybox")).expect("open file");
    let (sock, _peer) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let sock = fs::File::from(std::os::fd::OwnedFd::from(sock));
    let list =
        "for n in $(seq 3 64); do [ -e /proc/$$/fd/$n ] && echo leaked $n; done; echo listed";
    c.sh(list);
    c.write_config();
    let b = c.bundle();
    let b = b.to_str().expect("utf-8");
    let leak = |cmd: &mut std::process::Command| {
        pass_open(cmd, &dir, 3);
        pass_open(cmd, &file, 4);
        pass_open(cmd, &sock, 5);
    };
    let o = c.rt_with(&["run", "--bundle", b, &c.id], leak);
    o.ok();
    assert_eq!(o.stdout.trim(), "listed", "create leaked fds: {o}");

    // --preserve-fds 2: exactly 3 and 4.
    let id2 = c.new_id("leakfds2");
    let o = c.rt_with(&["run", "--preserve-fds", "2", "--bundle", b, &id2], leak);
    o.ok();
    assert_eq!(o.stdout.trim(), "leaked 3\nleaked 4\nlisted", "{o}");

    // exec, with and without --preserve-fds.
    let id3 = c.new_id("leakfds3");
    c.args(&["sleep", "1000"]);
    c.write_config();
    c.rt(&["run", "-d", "--bundle", b, &id3]).ok();
    let o = c.rt_with(&["exec", &id3, "sh", "-c", list], leak);
    o.ok();
    assert_eq!(o.stdout.trim(), "listed", "exec leaked fds: {o}");
    let o = c.rt_with(
        &["exec", "--preserve-fds", "1", &id3, "sh", "-c", list],
        leak,
    );
    o.ok();
    assert_eq!(o.stdout.trim(), "leaked 3\nlisted", "{o}");
}

/// Markers of host directories the cwd could land in: the caller's leaked directory (a unique
/// file), the state directory (exec.fifo, state.json).
fn escaped(out: &str, marker: &str) -> bool {
    out.contains(marker) || out.contains("exec.fifo") || out.contains("state.json")
}

/// CVE-2024-21626: `process.cwd` = /proc/self/fd/N, for every N the init could hold open (the
/// runtime's own fds and a host directory leaked by the caller as fd 3), must fail or leave
/// the workload inside its root. The workload lists its cwd and `..`.
///
/// Seen failing: without the getcwd check in `finalize::enter_cwd`, cwd /proc/self/fd/3 put
/// the workload in the leaked host directory (the marker was listed) and some N in the state
/// directory.
#[test]
fn cwd_through_proc_self_fd_stays_inside() {
    let mut c = Ctx::new("cwdfd");
    let marker = format!("host-marker-{}", c.id);
    fs::write(c.tmp.path().join(&marker), "").expect("marker");
    let dir = fs::File::open(c.tmp.path()).expect("open host dir");
    c.sh("ls -a . .. 2>&1; echo listed");
    let b = c.bundle();
    let b = b.to_str().expect("utf-8");
    for n in 3..=16 {
        let id = c.new_id(&format!("cwdfd{n}"));
        c.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        c.write_config();
        let o = c.rt_with(&["run", "--bundle", b, &id], |cmd| pass_open(cmd, &dir, 3));
        assert!(!escaped(&o.stdout, &marker), "cwd fd {n} escaped: {o}");
        if !o.success() {
            o.fails_with_any(&["cwd", "not a directory", "no such file"]);
        }
        c.assert_nothing_left(&id);
    }
}

/// CVE-2024-21626 through `exec --cwd`: the same, for a process joining a running container,
/// with the caller leaking a host directory as fd 3.
///
/// Seen failing: without the getcwd check, `exec --cwd /proc/self/fd/3` listed the marker.
#[test]
fn exec_cwd_through_proc_self_fd_stays_inside() {
    let mut c = Ctx::new("execcwdfd");
    let marker = format!("host-marker-{}", c.id);
    fs::write(c.tmp.path().join(&marker), "").expect("marker");
    let dir = fs::File::open(c.tmp.path()).expect("open host dir");
    c.args(&["sleep", "1000"]);
    c.write_config();
    let b = c.bundle();
    c.rt(&["run", "-d", "--bundle", b.to_str().expect("utf-8"), &c.id])
        .ok();
    for n in 3..=16 {
        let cwd = format!("/proc/self/fd/{n}");
        let o = c.rt_with(
            &[
                "exec",
                "--cwd",
                &cwd,
                &c.id,
                "sh",
                "-c",
                "ls -a . ..; echo listed",
            ],
            |cmd| pass_open(cmd, &dir, 3),
        );
        assert!(
            !escaped(&o.stdout, &marker),
            "exec --cwd fd {n} escaped: {o}"
        );
    }
    assert_eq!(c.status(&c.id), "running");
}

/// --preserve-fds N with gaps (fds the caller left closed): none of the runtime's own
/// descriptors (its lock on the state dir, sync socket, directories) may fill a gap and reach
/// the workload as a "preserved" fd. The workload prints what fds 3-10 point to; only the
/// passed file, /dev/null or nothing is acceptable.
///
/// Seen failing: with `fill_fd_holes` a no-op, `run`'s signalfd showed up as fd 4.
#[test]
fn preserve_fds_gaps_take_nothing_of_the_runtime() {
    if skip_unless_capsa("runc 1.1.5 leaks its /sys/fs/cgroup directory fd into such a gap") {
        return;
    }
    let mut c = Ctx::new("preservegap");
    let f = c.scratch("preserved");
    fs::write(&f, "").expect("file");
    let file = fs::File::open(&f).expect("open");
    let show = "for n in 3 4 5 6 7 8 9 10; do [ -e /proc/$$/fd/$n ] && echo \"$n $(readlink /proc/$$/fd/$n)\"; done; echo listed";
    c.sh(show);
    c.write_config();
    let b = c.bundle();
    let b = b.to_str().expect("utf-8");
    let check = |o: &Output| {
        o.ok();
        for line in o.stdout.lines().filter(|l| *l != "listed") {
            let (n, target) = line.split_once(' ').unwrap_or((line, ""));
            let fine = match n {
                "3" => target.ends_with("/preserved"),
                "4" | "5" => target == "/dev/null",
                _ => false,
            };
            assert!(fine, "fd {n} -> {target} reached the workload: {o}");
        }
    };
    let o = c.rt_with(
        &["run", "--preserve-fds", "3", "--bundle", b, &c.id],
        |cmd| pass_open(cmd, &file, 3),
    );
    check(&o);
    let id = c.new_id("preservegap2");
    c.args(&["sleep", "1000"]);
    c.write_config();
    c.rt(&["run", "-d", "--bundle", b, &id]).ok();
    let o = c.rt_with(
        &["exec", "--preserve-fds", "3", &id, "sh", "-c", show],
        |cmd| pass_open(cmd, &file, 3),
    );
    check(&o);
}
