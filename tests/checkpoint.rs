//! `checkpoint` / `restore` with CRIU, through the binary, on real busybox
//! containers. CRIU 3.17 (Debian 12) works on Debian 12's kernel 6.1, not on
//! 6.18: scripts/test.sh runs this file in the VM lane booted with
//! VM_KERNEL_PKG=linux-image-6.1.0-57-amd64; on a host where `criu check`
//! fails the CRIU cases skip, and the "no usable CRIU" cases run.
//!   VM_KERNEL_PKG=linux-image-6.1.0-57-amd64 \
//!   CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$PWD/scripts/vm-run.sh $PWD" \
//!     cargo test --test checkpoint
//! Against runc: CAPSA_TEST_RUNTIME=/usr/sbin/runc (same cases; the
//! "nothing changes on failure" checks are capsa's promise, runc 1.1
//! destroys the container after a failed dump).

mod common;
mod engines;
// podman's and containerd's checkpoint/restore, in the same VM boot.
mod checkpoint_engines;
// --page-server and --lazy-pages.
mod checkpoint_pages;

use std::fs;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Why CRIU cannot run here, or None if `criu check` passes. Asked once per
/// test binary: under the VM lane's emulation (TCG) it takes ~10 s.
fn criu_unusable() -> Option<String> {
    static ANSWER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ANSWER.get_or_init(ask_criu_check).clone()
}

fn ask_criu_check() -> Option<String> {
    match std::process::Command::new("criu").arg("check").output() {
        Err(e) => Some(format!("no criu binary ({e})")),
        Ok(o) if !o.status.success() => Some(format!(
            "`criu check` fails on this kernel: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .unwrap_or("")
        )),
        Ok(_) => None,
    }
}

/// Skip unless CRIU works here.
fn need_criu() -> bool {
    if let Some(why) = criu_unusable() {
        skip(&format!("{why} (the VM lane runs these on kernel 6.1)"));
        return false;
    }
    true
}

/// The pipes a detached container got as its stdio: kept open for as long
/// as the test runs (CRIU dumps the container's ends as "pipe:[ino]").
struct Stdio3 {
    _in: Option<ChildStdin>,
    _out: Option<ChildStdout>,
    _err: Option<ChildStderr>,
}

/// Run the runtime with `args`, its stdio three pipes (which a detached
/// container inherits); errors go to a --log file. Returns (success, log).
fn rt_piped(ctx: &Ctx, args: &[&str]) -> (bool, String, Stdio3) {
    let (st, log, p) = rt_piped_status(ctx, args);
    (st.success(), log, p)
}

fn rt_piped_status(ctx: &Ctx, args: &[&str]) -> (std::process::ExitStatus, String, Stdio3) {
    let log = ctx.scratch(&format!("rt-{}.log", unique_id("log")));
    let root = ctx.root();
    let mut full = vec![
        "--root".to_string(),
        root.display().to_string(),
        "--log".into(),
        log.display().to_string(),
    ];
    full.extend(args.iter().map(|s| s.to_string()));
    let mut child: Child = std::process::Command::new(runtime())
        .args(&full)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn runtime");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out: {full:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let pipes = Stdio3 {
        _in: child.stdin.take(),
        _out: child.stdout.take(),
        _err: child.stderr.take(),
    };
    (status, read_lossy(&log), pipes)
}

/// A writable directory of the test bound at /out (the rootfs is read-only):
/// also an external mount CRIU must be told about.
fn out_dir(ctx: &mut Ctx) -> std::path::PathBuf {
    let dir = ctx.scratch("outdir");
    fs::create_dir_all(&dir).unwrap();
    let src = dir.to_str().unwrap().to_string();
    ctx.push_mount(json!({"destination": "/out", "type": "bind", "source": src,
        "options": ["rbind", "rw"]}));
    dir
}

/// A counter in the container: one number a line in /out/count, every 50 ms.
fn counter(ctx: &mut Ctx) {
    out_dir(ctx);
    ctx.sh_writes("i=0; while true; do i=$((i+1)); echo $i >> /out/count; sleep 0.05; done");
}

fn count_lines(ctx: &Ctx) -> Vec<u64> {
    read_lossy(&ctx.scratch("outdir/count"))
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Wait until the counter has written more than `n` numbers.
#[track_caller]
fn wait_count_above(ctx: &Ctx, n: usize) -> Vec<u64> {
    let start = Instant::now();
    loop {
        let v = count_lines(ctx);
        if v.len() > n {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the counter stopped at {} lines",
            v.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The counter went on from where it was: 1, 2, 3... with no restart.
#[track_caller]
fn assert_consecutive(v: &[u64]) {
    for (i, n) in v.iter().enumerate() {
        assert_eq!(*n, i as u64 + 1, "the counter restarted or skipped: {v:?}");
    }
}

fn start_detached(ctx: &Ctx, id: &str) -> Stdio3 {
    ctx.write_config();
    let b = ctx.bundle();
    let (ok, log, pipes) = rt_piped(ctx, &["run", "-d", "--bundle", b.to_str().unwrap(), id]);
    assert!(ok, "run -d {id}: {log}");
    pipes
}

/// A usable CRIU (else a counted skip and None), then the counter
/// container of a fresh `Ctx` started detached and past `n` numbers: the
/// context, its id and the pipes it writes to.
fn running_counter(tag: &str, n: usize) -> Option<(Ctx, String, Stdio3)> {
    if !need_criu() {
        return None;
    }
    let mut ctx = Ctx::new(tag);
    counter(&mut ctx);
    let id = ctx.id.clone();
    let pipes = start_detached(&ctx, &id);
    wait_count_above(&ctx, n);
    Some((ctx, id, pipes))
}

fn checkpoint(ctx: &Ctx, id: &str, images: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["checkpoint", "--image-path", images.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(id);
    let (ok, log, _) = rt_piped(ctx, &args);
    (ok, log)
}

fn restore(ctx: &Ctx, id: &str, images: &Path, extra: &[&str]) -> (bool, String, Stdio3) {
    let b = ctx.bundle();
    let pidfile = ctx.scratch(&format!("{id}.pid"));
    let mut args = vec![
        "restore",
        "-d",
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        b.to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(id);
    rt_piped(ctx, &args)
}

fn gone(ctx: &Ctx, id: &str) -> bool {
    !ctx.rt(&["state", id]).success()
}

#[test]
fn counter_keeps_counting_across_checkpoint_and_restore() {
    let Some((ctx, id, _p)) = running_counter("ckpt-counter", 5) else {
        return;
    };
    let images = ctx.scratch("images");
    let (ok, log) = checkpoint(&ctx, &id, &images, &[]);
    assert!(ok, "checkpoint: {log}");
    // As runc: a dumped container is destroyed, its id free for the restore.
    assert!(
        gone(&ctx, &id),
        "the container still exists after checkpoint"
    );
    assert!(images.join("inventory.img").exists(), "no CRIU images");
    let desc: Vec<String> =
        serde_json::from_slice(&fs::read(images.join("descriptors.json")).expect("descriptors"))
            .expect("descriptors.json is a JSON list");
    assert_eq!(desc.len(), 3, "{desc:?}");
    assert!(desc.iter().all(|d| d.starts_with("pipe:[")), "{desc:?}");
    std::thread::sleep(Duration::from_millis(300));
    let before = count_lines(&ctx);
    assert_eq!(
        before,
        count_lines(&ctx),
        "still counting after the checkpoint"
    );

    let (ok, log, _p2) = restore(&ctx, &id, &images, &[]);
    assert!(ok, "restore: {log}");
    let st = ctx.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_i64().expect("pid");
    let pidfile = read_lossy(&ctx.scratch(&format!("{id}.pid")));
    assert_eq!(
        pidfile.trim(),
        pid.to_string(),
        "pid file and state disagree"
    );
    let after = wait_count_above(&ctx, before.len() + 5);
    assert_consecutive(&after);
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_nothing_left(&id);
}

#[test]
fn restored_container_keeps_limits_hostname_mounts_and_seccomp() {
    if !need_criu() {
        return;
    }
    let mut ctx = Ctx::new("ckpt-attrs");
    let data = ctx.scratch("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("f"), "from-the-host").unwrap();
    ctx.push_mount(json!({"destination": "/data", "type": "bind",
        "source": data.to_str().unwrap(), "options": ["rbind", "ro"]}));
    ctx.config["hostname"] = json!("ckpt-host");
    ctx.config["linux"]["resources"] =
        json!({"memory": {"limit": 268435456}, "pids": {"limit": 77}});
    ctx.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]});
    let out = out_dir(&mut ctx);
    ctx.sh_writes(
        "while true; do echo \"$(hostname) $(cat /data/f) $(grep Seccomp: /proc/self/status | tr -d '\\t')\" >> /out/report; sleep 0.1; done",
    );
    let id = ctx.id.clone();
    let _p = start_detached(&ctx, &id);
    let report = out.join("report");
    wait_for_text(&report, "Seccomp", Duration::from_secs(10));
    let images = ctx.scratch("images");
    let (ok, log) = checkpoint(&ctx, &id, &images, &[]);
    assert!(ok, "checkpoint: {log}");
    fs::write(&report, "").unwrap();
    let (ok, log, _p2) = restore(&ctx, &id, &images, &[]);
    assert!(ok, "restore: {log}");
    let line = wait_for_text(&report, "Seccomp", Duration::from_secs(10));
    let line = line.lines().next().unwrap_or("");
    assert_eq!(line, "ckpt-host from-the-host Seccomp:2", "after restore");
    let pid = ctx.state(&id)["pid"].as_i64().expect("pid");
    // The limits of config.json on the container's (new) cgroup, with the
    // restored init in it.
    let cg = Path::new("/sys/fs/cgroup").join(cgroup_path_for(&id).trim_start_matches('/'));
    if cg.join("memory.max").exists() {
        assert_eq!(read_lossy(&cg.join("memory.max")).trim(), "268435456");
        assert_eq!(read_lossy(&cg.join("pids.max")).trim(), "77");
        let procs = read_lossy(&cg.join("cgroup.procs"));
        assert!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "init {pid} not in {}: {procs}",
            cg.display()
        );
    }
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_nothing_left(&id);
}

#[test]
fn leave_running_and_pre_dump_then_dump() {
    let Some((ctx, id, _p)) = running_counter("ckpt-predump", 3) else {
        return;
    };
    let base = ctx.scratch("imgs");
    let (ok, log) = checkpoint(&ctx, &id, &base.join("lr"), &["--leave-running"]);
    assert!(ok, "checkpoint --leave-running: {log}");
    assert_eq!(ctx.status(&id), "running");
    assert!(base.join("lr/inventory.img").exists());
    let n = count_lines(&ctx).len();
    wait_count_above(&ctx, n + 3);

    let (ok, log) = checkpoint(&ctx, &id, &base.join("pre"), &["--pre-dump"]);
    assert!(ok, "checkpoint --pre-dump: {log}");
    assert_eq!(ctx.status(&id), "running", "pre-dump stopped the container");
    let n = count_lines(&ctx).len();
    wait_count_above(&ctx, n + 3);
    let (ok, log) = checkpoint(&ctx, &id, &base.join("final"), &["--parent-path", "../pre"]);
    assert!(ok, "checkpoint --parent-path: {log}");
    assert!(gone(&ctx, &id));
    // The final dump refers to the pre-dump's pages.
    assert!(
        base.join("final/parent").exists(),
        "no parent link in the final dump"
    );
    let before = count_lines(&ctx).len();
    let (ok, log, _p2) = restore(&ctx, &id, &base.join("final"), &[]);
    assert!(ok, "restore after pre-dump: {log}");
    let after = wait_count_above(&ctx, before + 3);
    assert_consecutive(&after);
    ctx.rt(&["delete", "--force", &id]).ok();
}

#[test]
fn restore_under_a_new_id() {
    let Some((mut ctx, id, _p)) = running_counter("ckpt-newid", 3) else {
        return;
    };
    let images = ctx.scratch("images");
    let (ok, log) = checkpoint(&ctx, &id, &images, &[]);
    assert!(ok, "checkpoint: {log}");
    let new = ctx.new_id("ckpt-newid2");
    ctx.config["linux"]["cgroupsPath"] = json!(cgroup_path_for(&new));
    ctx.write_config();
    let before = count_lines(&ctx).len();
    let (ok, log, _p2) = restore(&ctx, &new, &images, &[]);
    assert!(ok, "restore as {new}: {log}");
    assert_eq!(ctx.status(&new), "running");
    assert!(gone(&ctx, &id));
    assert_consecutive(&wait_count_above(&ctx, before + 3));
    ctx.rt(&["delete", "--force", &new]).ok();
    ctx.assert_nothing_left(&new);
    ctx.assert_nothing_left(&id);
}

#[test]
fn failed_restore_leaves_nothing_behind() {
    let Some((ctx, id, _p)) = running_counter("ckpt-badrst", 3) else {
        return;
    };
    let images = ctx.scratch("images");
    let (ok, log) = checkpoint(&ctx, &id, &images, &[]);
    assert!(ok, "checkpoint: {log}");
    // The bundle's bind source is gone: CRIU fails half way through the
    // restore (after the state dir and the cgroup were made).
    fs::rename(ctx.scratch("outdir"), ctx.scratch("outdir.moved")).unwrap();
    let (ok, log, _p2) = restore(&ctx, &id, &images, &[]);
    assert!(!ok, "restore from damaged images succeeded: {log}");
    std::thread::sleep(Duration::from_millis(200));
    ctx.assert_nothing_left(&id);
    let count = ctx.scratch("outdir.moved/count");
    let n = read_lossy(&count).len();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        n,
        read_lossy(&count).len(),
        "something restored is counting"
    );
}

#[test]
fn failed_checkpoint_leaves_the_container_running() {
    if !need_criu() || skip_unless_capsa("runc 1.1 destroys the container after a failed dump") {
        return;
    }
    let mut ctx = Ctx::new("ckpt-baddump");
    counter(&mut ctx);
    let id = ctx.id.clone();
    // stdout to a file on a mount the container does not have: CRIU cannot dump it.
    ctx.write_config();
    let b = ctx.bundle();
    let out = fs::File::create(ctx.scratch("outside")).unwrap();
    ctx.rt_with(&["run", "-d", "--bundle", b.to_str().unwrap(), &id], |c| {
        c.stdout(out);
    })
    .ok();
    wait_count_above(&ctx, 3);
    let pid = ctx.state(&id)["pid"].clone();
    let images = ctx.scratch("images");
    let (ok, log) = checkpoint(&ctx, &id, &images, &[]);
    assert!(!ok, "the dump succeeded: {log}");
    assert!(log.contains("criu"), "{log}");
    let st = ctx.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"], pid);
    let n = count_lines(&ctx).len();
    wait_count_above(&ctx, n + 3);
}

/// The "no usable CRIU" error, on any host: a missing binary, and a criu
/// whose `check` fails (a stand-in script; on this host's kernel 6.18 the
/// real one does too). Nothing changes: the container runs on, no image
/// directory is left.
#[test]
fn no_usable_criu_is_one_clear_error_and_changes_nothing() {
    if skip_unless_capsa("capsa's error texts and its no-change promise") {
        return;
    }
    let mut ctx = Ctx::new("ckpt-nocriu");
    ctx.args(&["sleep", "1000"]);
    let id = ctx.id.clone();
    ctx.write_config();
    let b = ctx.bundle();
    ctx.rt(&["run", "-d", "--bundle", b.to_str().unwrap(), &id])
        .ok();
    let pid = ctx.state(&id)["pid"].clone();
    let images = ctx.scratch("images");
    let img = images.to_str().unwrap();

    let o = ctx.rt(&[
        "--criu",
        "/nonexistent/criu",
        "checkpoint",
        "--image-path",
        img,
        &id,
    ]);
    o.fails_with("checkpoint/restore needs CRIU: no criu binary found");
    let fake = ctx.scratch("criu");
    fs::write(
        &fake,
        "#!/bin/sh\necho 'Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let fake_s = fake.to_str().unwrap();
    let o = ctx.rt(&["--criu", fake_s, "checkpoint", "--image-path", img, &id]);
    o.fails_with("`")
        .fails_with("check` fails: Error (criu/vdso.c:613)");
    let st = ctx.state(&id);
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"], pid);
    assert!(!images.exists(), "an image directory was left");
    // With the real criu where it does not work (this host's kernel).
    if criu_unusable().is_some_and(|w| w.contains("check")) {
        ctx.rt(&["checkpoint", "--image-path", img, &id])
            .fails_with("needs a CRIU that works on this kernel");
        assert_eq!(ctx.state(&id)["status"], "running");
        assert!(!images.exists(), "an image directory was left");
    }
    // restore: refused before anything is made.
    fs::create_dir_all(&images).unwrap();
    fs::write(images.join("descriptors.json"), "[]").unwrap();
    let new = ctx.new_id("ckpt-nocriu2");
    ctx.rt(&[
        "--criu",
        fake_s,
        "restore",
        "-d",
        "--image-path",
        img,
        "--bundle",
        b.to_str().unwrap(),
        &new,
    ])
    .fails_with("check` fails");
    // (the first container still runs in the same rootfs: processes are its)
    let left: Vec<String> = ctx
        .leftovers(&new)
        .into_iter()
        .filter(|l| !l.starts_with("process"))
        .collect();
    assert!(
        left.is_empty(),
        "left behind by the failed restore: {left:?}"
    );
    assert_eq!(ctx.state(&id)["status"], "running");
    ctx.rt(&["delete", "--force", &id]).ok();
}

/// The prestart and createRuntime hooks run again on restore (as runc runs
/// them: when CRIU has made the namespaces), with the restored init's pid;
/// a foreground restore waits for the init and exits with its status, and
/// the container is gone afterwards.
#[test]
fn restore_runs_hooks_and_a_foreground_restore_returns_the_exit_status() {
    if !need_criu() {
        return;
    }
    let mut ctx = Ctx::new("ckpt-fg");
    out_dir(&mut ctx);
    let hooks_log = ctx.scratch("hooks.log");
    let hook = |name: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("printf '{name} ' >> {p}; cat >> {p}; echo >> {p}", p = hooks_log.display())]})
    };
    ctx.config["hooks"] =
        json!({"prestart": [hook("prestart")], "createRuntime": [hook("createRuntime")]});
    // Counts to 160 (8 s: the checkpoint must come before the end, also in
    // a loaded TCG guest, where 2 s once was not enough), then exits 7.
    ctx.sh_writes(
        "i=0; while [ $i -lt 160 ]; do i=$((i+1)); echo $i >> /out/count; sleep 0.05; done; exit 7",
    );
    let id = ctx.id.clone();
    let _p = start_detached(&ctx, &id);
    wait_count_above(&ctx, 3);
    let images = ctx.scratch("images");
    let (ok, log) = checkpoint(&ctx, &id, &images, &[]);
    assert!(ok, "checkpoint: {log}");
    let created = read_lossy(&hooks_log);
    assert_eq!(created.lines().count(), 2, "{created}");
    let b = ctx.bundle();
    let (st, log, _p2) = rt_piped_status(
        &ctx,
        &[
            "restore",
            "--image-path",
            images.to_str().unwrap(),
            "--bundle",
            b.to_str().unwrap(),
            &id,
        ],
    );
    assert_eq!(st.code(), Some(7), "foreground restore: {log}");
    assert_consecutive(&count_lines(&ctx));
    assert_eq!(count_lines(&ctx).len(), 160);
    assert!(
        gone(&ctx, &id),
        "the container is left after a foreground restore"
    );
    let all = read_lossy(&hooks_log);
    let restored: Vec<&str> = all.lines().skip(2).collect();
    assert_eq!(restored.len(), 2, "hooks on restore: {all}");
    assert!(
        restored[0].starts_with("prestart ") && restored[1].starts_with("createRuntime "),
        "{all}"
    );
    for l in &restored {
        let v: serde_json::Value =
            serde_json::from_str(l.split_once(' ').unwrap().1).expect("hook state JSON");
        assert_eq!(v["id"], id.as_str());
        assert!(v["pid"].as_i64().unwrap_or(0) > 0, "{v}");
    }
    ctx.assert_nothing_left(&id);
}

/// Accept one connection on `path` and receive the pty master sent on it
/// (runc's console-socket protocol: one message with SCM_RIGHTS).
fn console_receiver(path: &Path) -> std::thread::JoinHandle<Option<std::os::fd::OwnedFd>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let l = std::os::unix::net::UnixListener::bind(path).expect("bind console socket");
    std::thread::spawn(move || {
        let (conn, _) = l.accept().ok()?;
        let mut buf = [0u8; 256];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::empty(),
        )
        .ok()?;
        for c in msg.cmsgs().ok()? {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: the kernel just gave us this descriptor.
                return fds.first().map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
        None
    })
}

fn write_master(master: &std::os::fd::OwnedFd, s: &str) {
    nix::unistd::write(master, s.as_bytes()).expect("write to the pty master");
}

/// A container with a terminal (--console-socket): checkpointed, restored
/// with a new console socket, which gets the restored pty's master; the
/// shell reading the terminal goes on reading from it.
#[test]
fn terminal_container_restored_with_a_console_socket() {
    if !need_criu() {
        return;
    }
    let mut ctx = Ctx::new("ckpt-tty");
    let out = out_dir(&mut ctx);
    ctx.config["process"]["terminal"] = json!(true);
    ctx.sh_writes("while read l; do echo \"got $l\" >> /out/tty; done");
    ctx.write_config();
    let id = ctx.id.clone();
    let sock = ctx.scratch("console1.sock");
    let rx = console_receiver(&sock);
    let b = ctx.bundle();
    let (ok, log, _p) = rt_piped(
        &ctx,
        &[
            "run",
            "-d",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            b.to_str().unwrap(),
            &id,
        ],
    );
    assert!(ok, "run -d with a terminal: {log}");
    let master = rx
        .join()
        .expect("receiver")
        .expect("no pty master received");
    write_master(&master, "one\n");
    wait_for_text(&out.join("tty"), "got one", Duration::from_secs(20));
    let images = ctx.scratch("images");
    let (ok, log) = checkpoint(&ctx, &id, &images, &[]);
    assert!(ok, "checkpoint with a terminal: {log}");
    drop(master);
    let sock2 = ctx.scratch("console2.sock");
    let rx2 = console_receiver(&sock2);
    let (ok, log, _p2) = restore(
        &ctx,
        &id,
        &images,
        &["--console-socket", sock2.to_str().unwrap()],
    );
    assert!(ok, "restore with a console socket: {log}");
    let master2 = rx2
        .join()
        .expect("receiver")
        .expect("no restored pty master received");
    write_master(&master2, "two\n");
    wait_for_text(&out.join("tty"), "got two", Duration::from_secs(20));
    ctx.rt(&["delete", "--force", &id]).ok();
}

/// A network namespace made by the test (`ip netns`), removed on drop.
struct NetNs(String);

impl NetNs {
    fn new(tag: &str) -> Option<NetNs> {
        let name = format!("{tag}-{}", std::process::id());
        let ok = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        let ns = NetNs(name);
        std::process::Command::new("ip")
            .args(["-n", &ns.0, "link", "set", "lo", "up"])
            .status()
            .ok()?;
        Some(ns)
    }
    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// An established TCP connection survives checkpoint and restore with
/// --tcp-established: the listener runs in a network namespace the test
/// made (joined by path: an external namespace for CRIU), the client stays
/// outside the container and keeps its end open throughout.
#[test]
fn established_tcp_connection_survives_with_tcp_established() {
    if !need_criu() {
        return;
    }
    let Some(ns) = NetNs::new("ckpt-tcp") else {
        skip("`ip netns add` failed");
        return;
    };
    let mut ctx = Ctx::new("ckpt-tcp");
    let out = out_dir(&mut ctx);
    ctx.set_ns("network", Some(&ns.path()));
    ctx.sh_writes("nc -l -p 8080 >> /out/tcp; echo closed >> /out/tcp");
    let id = ctx.id.clone();
    let _p = start_detached(&ctx, &id);
    // The client, in the same namespace, outside the container.
    let start = Instant::now();
    let mut client = loop {
        let mut c = std::process::Command::new("ip")
            .args(["netns", "exec", &ns.0, "busybox", "nc", "127.0.0.1", "8080"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn nc client");
        std::thread::sleep(Duration::from_millis(300));
        if c.try_wait().expect("wait").is_none() {
            break c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the listener never came up"
        );
    };
    let mut tx = client.stdin.take().expect("client stdin");
    use std::io::Write;
    tx.write_all(b"one\n").unwrap();
    wait_for_text(&out.join("tcp"), "one", Duration::from_secs(20));
    let images = ctx.scratch("images");
    let (ok, log) = checkpoint(&ctx, &id, &images, &["--tcp-established"]);
    assert!(ok, "checkpoint --tcp-established: {log}");
    let (ok, log, _p2) = restore(&ctx, &id, &images, &["--tcp-established"]);
    assert!(ok, "restore --tcp-established: {log}");
    // The dump leaves CRIU's lock (iptables chain CRIU) in this namespace,
    // which outlives the container. A restore that says the namespace is
    // empty (runc 1.1 always does) makes CRIU lock it a second time; the
    // unlock then cannot delete the chain and the connection stays locked.
    // capsa does not ask for that second lock.
    let rlog = read_lossy(&images.join("restore.log"));
    if let Some(err) = rlog
        .lines()
        .find(|l| l.contains("CHAIN_DEL failed (Device or resource busy): chain CRIU"))
    {
        let _ = client.kill();
        let _ = client.wait();
        ctx.rt(&["delete", "--force", &id]).ok();
        assert!(
            !is_capsa(),
            "capsa's restore locked the network namespace twice: {err}\n{rlog}"
        );
        skip(&format!(
            "{} locks the joined network namespace again on restore, so CRIU's unlock fails \
             ({}) and the connection stays locked",
            runtime().display(),
            err.trim()
        ));
        return;
    }
    tx.write_all(b"two\n").unwrap();
    let start = Instant::now();
    while !read_lossy(&out.join("tcp")).contains("two") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "\"two\" never arrived: {:?}\n{rlog}",
            read_lossy(&out.join("tcp"))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = read_lossy(&out.join("tcp"));
    assert!(!got.contains("closed"), "the connection was closed: {got}");
    drop(tx);
    let _ = client.kill();
    let _ = client.wait();
    ctx.rt(&["delete", "--force", &id]).ok();
}
