//! No way out, part 2: paths. A malicious image (symlinks, a fake /dev/null, a redirected
//! /dev/console, symlinks into /proc) or a process racing the runtime must not make it mount,
//! create or write anything outside the container's root, nor defeat maskedPaths. Each test
//! fails if the container reaches the host, and says how it was seen to fail against a
//! weakened capsa.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Host paths a test must never see created; removed (if a broken runtime made them) on drop.
struct HostPaths(Vec<PathBuf>);

impl HostPaths {
    fn new(paths: &[PathBuf]) -> HostPaths {
        for p in paths {
            assert!(!p.exists(), "{} exists before the test", p.display());
        }
        HostPaths(paths.to_vec())
    }

    #[track_caller]
    fn assert_untouched(&self) {
        let made: Vec<&PathBuf> = self.0.iter().filter(|p| p.exists()).collect();
        assert!(made.is_empty(), "the runtime created host paths: {made:?}");
    }
}

impl Drop for HostPaths {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// Mounts, devices, maskedPaths, readonlyPaths and tmpcopyup whose destinations go through
/// symlinks in the image: `evil -> /` (absolute), `dst -> ../../../../tmp/...` (climbing above
/// the root), `inter -> evil/tmp` (a symlink in an intermediate component). Everything must
/// land inside the root: the workload sees each mount at the in-root resolution, the masked
/// file reads empty, the read-only one refuses writes, the copy-up brought the image's file
/// and not the host directory's; on the host nothing is created.
///
/// Seen failing: with rootfs/paths.rs resolving like a naive runtime (relative to the rootfs
/// fd, without RESOLVE_IN_ROOT), the runtime created these paths on the host.
#[test]
fn symlinked_destinations_resolve_inside_the_root() {
    let mut c = Ctx::new("symdest");
    c.require_isolated_root();
    let tag = format!("capsa-host-{}", c.id);
    let host = |s: &str| PathBuf::from(format!("/tmp/{tag}-{s}"));
    // `dst` points at an existing host directory (a runtime that follows it would create
    // `sub` there); the others do not exist on the host (one that follows would create them).
    let host_dst = host("dst");
    let _dst = HostPaths::new(std::slice::from_ref(&host_dst));
    fs::create_dir(&host_dst).expect("host dst dir");
    let guard = HostPaths::new(&[host("A"), host_dst.join("sub"), host("inter"), host("dev")]);
    // Host files the runtime must not touch either.
    let host_mask = host("mask");
    let host_copy = host("copy");
    let _more = HostPaths::new(&[host_mask.clone(), host_copy.clone()]);
    fs::write(&host_mask, "HOST").expect("host mask file");
    fs::create_dir(&host_copy).expect("host copy dir");
    fs::write(host_copy.join("SECRET"), "host secret").expect("host secret");

    let rootfs = c.rootfs();
    symlink("/", rootfs.join("evil")).expect("evil");
    symlink(format!("../../../../tmp/{tag}-dst"), rootfs.join("dst")).expect("dst");
    symlink("evil/tmp", rootfs.join("inter")).expect("inter");
    symlink(format!("/tmp/{tag}-copy"), rootfs.join("dst2")).expect("dst2");
    fs::write(rootfs.join(format!("tmp/{tag}-mask")), "IMAGE").expect("image mask");
    fs::write(rootfs.join(format!("tmp/{tag}-ro")), "IMAGE").expect("image ro");
    fs::create_dir(rootfs.join(format!("tmp/{tag}-copy"))).expect("image copy dir");
    fs::write(rootfs.join(format!("tmp/{tag}-copy/inner")), "image").expect("image inner");
    let src = c.scratch("bindsrc");
    fs::create_dir(&src).expect("bind source");
    fs::write(src.join("bound"), "").expect("bound");

    c.config["root"]["readonly"] = json!(false);
    c.push_mount(
        json!({"destination": format!("/evil/tmp/{tag}-A"), "type": "tmpfs", "source": "tmpfs"}),
    );
    c.push_mount(
        json!({"destination": "/dst/sub", "type": "bind", "source": src, "options": ["rbind"]}),
    );
    c.push_mount(
        json!({"destination": format!("/inter/{tag}-inter"), "type": "tmpfs", "source": "tmpfs"}),
    );
    c.push_mount(json!({"destination": "/dst2", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}));
    c.config["linux"]["devices"] =
        json!([{"path": format!("/evil/tmp/{tag}-dev"), "type": "c", "major": 1, "minor": 3}]);
    c.config["linux"]["maskedPaths"] = json!([format!("/evil/tmp/{tag}-mask")]);
    c.config["linux"]["readonlyPaths"] = json!([format!("/inter/{tag}-ro")]);
    let t = format!("/tmp/{tag}");
    c.sh_writes(&format!(
        "m=$(cut -d' ' -f5 /proc/self/mountinfo); \
         for p in {t}-A {t}-dst/sub {t}-inter {t}-copy; do echo \"$m\" | grep -qx \"$p\" && echo \"mount $p\"; done; \
         [ -e {t}-dst/sub/bound ] && echo bound; \
         [ -e {t}-copy/inner ] && echo inner; [ -e {t}-copy/SECRET ] && echo SECRET; \
         echo \"mask=[$(cat {t}-mask)]\"; \
         (echo x > {t}-ro) 2>/dev/null && echo ro-writable || echo ro-refused; \
         [ -c {t}-dev ] && echo dev"
    ));
    let o = c.run();
    guard.assert_untouched();
    o.ok();
    let want = format!(
        "mount {t}-A\nmount {t}-dst/sub\nmount {t}-inter\nmount {t}-copy\nbound\ninner\nmask=[]\nro-refused\ndev"
    );
    assert_eq!(o.stdout.trim(), want, "{o}");
    assert_eq!(fs::read_to_string(&host_mask).unwrap_or_default(), "HOST");
    assert!(host_copy.join("SECRET").exists());
    c.assert_nothing_left(&c.id);
}

/// A symlink loop on the way to a mount destination: a clear error, non-zero exit, nothing
/// left behind.
#[test]
fn symlink_loop_in_a_destination_fails_cleanly() {
    let mut c = Ctx::new("symloop");
    symlink("loop2", c.rootfs().join("loop1")).expect("loop1");
    symlink("loop1", c.rootfs().join("loop2")).expect("loop2");
    c.push_mount(json!({"destination": "/loop1/x", "type": "tmpfs", "source": "tmpfs"}));
    c.write_config();
    let o = c.create_id(&c.id, &[]);
    o.fails_with_any(&["too many levels of symbolic links", "loop"]);
    if is_capsa() {
        o.fails_with("mounts[7]");
    }
    c.assert_nothing_left(&c.id);
}

/// CVE-2021-30465 / CVE-2024-45310: a process on the host (or in another container sharing the image's
/// directory) swaps a path component between a directory and a symlink to a host path while
/// the runtime resolves and mounts. A thread exchanges `race` (a directory) and `spare` (a
/// symlink to the host directory /tmp/capsa-race-*) atomically (renameat2 RENAME_EXCHANGE),
/// in a loop, across 15 creates with a tmpfs at /race/sub. /tmp/capsa-race-*/sub must never
/// appear on the host. Not strictly
/// deterministic, but a runtime that resolves paths on the host loses many of these races.
///
/// Seen failing: with rootfs/paths.rs resolving like a naive runtime (relative to the rootfs
/// fd, without RESOLVE_IN_ROOT), /tmp/capsa-race-*/sub was created on the host.
#[test]
fn racing_symlink_swap_cannot_redirect_a_mount() {
    if skip_unless_capsa(
        "runc 1.1.5 predates the CVE-2024-45310 fix: it sometimes creates sub on the host",
    ) {
        return;
    }
    let mut c = Ctx::new("symrace");
    c.require_isolated_root();
    // An existing host directory: a runtime that follows the symlink creates `sub` in it.
    let target = PathBuf::from(format!("/tmp/capsa-race-{}", c.id));
    let _target = HostPaths::new(std::slice::from_ref(&target));
    fs::create_dir(&target).expect("host target dir");
    let guard = HostPaths::new(&[target.join("sub")]);
    let rootfs = c.rootfs();
    fs::create_dir(rootfs.join("race")).expect("race dir");
    symlink(&target, rootfs.join("spare")).expect("spare link");
    c.push_mount(json!({"destination": "/race/sub", "type": "tmpfs", "source": "tmpfs"}));
    c.args(&["true"]);
    c.write_config();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let rootfs = rootfs.clone();
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &rootfs.join("race"),
                    nix::fcntl::AT_FDCWD,
                    &rootfs.join("spare"),
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                );
                swaps += 1;
            }
            swaps
        })
    };
    for i in 0..15 {
        let id = c.new_id(&format!("symrace{i}"));
        let _ = c.create_id(&id, &[]);
        let _ = c.rt(&["delete", "--force", &id]);
        guard.assert_untouched();
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    assert!(swaps > 100, "the swapper barely ran ({swaps} swaps)");
    guard.assert_untouched();
}

/// Run config `c` without the runtime's own /dev: the image's /dev (and /dev/null) is used.
fn image_dev(c: &mut Ctx) {
    if let Some(m) = c.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/dev");
    }
}

/// Accept one console-socket connection and keep what it sends, in the background.
fn console_listener(path: &Path) -> std::thread::JoinHandle<()> {
    let l = std::os::unix::net::UnixListener::bind(path).expect("bind console socket");
    l.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(20) {
            if let Ok((s, _)) = l.accept() {
                std::thread::sleep(std::time::Duration::from_secs(2));
                drop(s);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    })
}

/// CVE-2025-31133: an image whose /dev/null is not the null device (a regular file, or a
/// symlink to a procfs file such as /proc/sys/kernel/core_pattern) must not turn maskedPaths
/// into bind mounts of that file. Either create fails with a clear error, or the masked path
/// reads empty.
///
/// Seen failing: with the check in `masked::dev_null` removed, the masked file read
/// "IMAGE-NULL" (the regular file) and the host's core_pattern (the symlink).
#[test]
fn a_fake_dev_null_cannot_defeat_masked_paths() {
    if skip_unless_capsa("runc 1.1.5 predates the CVE-2025-31133 fix and binds the fake file") {
        return;
    }
    for variant in ["file", "symlink"] {
        let mut c = Ctx::new("fakenull");
        image_dev(&mut c);
        let null = c.rootfs().join("dev/null");
        match variant {
            "file" => fs::write(&null, "IMAGE-NULL").expect("fake null"),
            _ => symlink("/proc/sys/kernel/core_pattern", &null).expect("null link"),
        }
        // A masked file of the image's own (the kernel files of the default list may not
        // exist on this kernel, /proc/kcore for one).
        fs::write(c.rootfs().join("etc/secret"), "IMAGE-SECRET").expect("secret");
        c.config["linux"]["maskedPaths"] = json!(["/etc/secret"]);
        c.sh("echo \"secret=[$(head -c 64 /etc/secret)]\"");
        let o = c.run();
        if o.success() {
            assert_eq!(
                o.stdout.trim(),
                "secret=[]",
                "{variant}: masking bypassed: {o}"
            );
        } else {
            o.fails_with("/dev/null");
            o.fails_with("maskedPaths");
        }
        c.assert_nothing_left(&c.id);
    }
}

/// CVE-2025-52565: the console's bind mount onto /dev/console must not follow an image's
/// symlink (here to /proc/sys/kernel/core_pattern): create fails with a clear error, or the
/// pty is mounted on the container's own /dev/console and core_pattern is untouched. (The
/// source side of that CVE, /dev/pts/N swapped for a symlink during the runtime's setup,
/// needs no test: capsa never opens the slave by path when the kernel has TIOCGPTPEER.)
///
/// Seen failing: with `console_target` resolving as before (lstat of the last component only,
/// then a path mount), a `dev -> ...` symlink on the way was followed.
#[test]
fn console_cannot_be_redirected() {
    if skip_unless_capsa(
        "runc 1.1.5 predates the CVE-2025-52565 fix: it mounts the pty over the target",
    ) {
        return;
    }
    let mut c = Ctx::new("consolelink");
    image_dev(&mut c);
    symlink(
        "/proc/sys/kernel/core_pattern",
        c.rootfs().join("dev/console"),
    )
    .expect("console link");
    c.config["process"]["terminal"] = json!(true);
    c.config["root"]["readonly"] = json!(false);
    c.sh_writes("grep -c core_pattern /proc/self/mountinfo > /tmp/console.out");
    c.write_config();
    let sock = c.scratch("console.sock");
    let listener = console_listener(&sock);
    let core = HostSetting::save("/proc/sys/kernel/core_pattern");
    let o = c.create_id(&c.id, &["--console-socket", sock.to_str().expect("utf-8")]);
    if o.success() {
        let o = c.rt(&["start", &c.id]);
        o.ok();
        c.wait_status(&c.id, "stopped", std::time::Duration::from_secs(10));
        let out = read_lossy(&c.rootfs().join("tmp/console.out"));
        assert_eq!(out.trim(), "0", "the console was mounted over core_pattern");
    } else {
        o.fails_with("/dev/console");
        o.fails_with("symlink");
        c.assert_nothing_left(&c.id);
    }
    assert!(!core.changed(), "the host's core_pattern changed");
    let _ = listener.join();
}

/// CVE-2025-52881: the runtime's writes to /proc files (here a sysctl and oomScoreAdj) go to
/// the kernel, not to a file the configuration bind-mounted where the image's symlinks make
/// the destination land inside /proc (`evilproc -> /proc/sys/net/ipv4`, `evilself ->
/// /proc/self`). Either such a mount is refused (capsa, as runc, checks the resolved
/// destination), or the host files stay as they were.
///
/// Seen failing: with the resolved-destination check removed and the sysctl and oomScoreAdj
/// written through "/proc/..." paths (the code before procfs.rs), the host files read "1" and
/// "123".
#[test]
fn proc_writes_cannot_be_redirected_by_a_mount() {
    let mut c = Ctx::new("procredirect");
    c.require_isolated_root();
    let fwd = c.scratch("ip_forward");
    let oom = c.scratch("oom_score_adj");
    fs::write(&fwd, "0\n").expect("decoy");
    fs::write(&oom, "0\n").expect("decoy");
    symlink("/proc/sys/net/ipv4", c.rootfs().join("evilproc")).expect("evilproc");
    symlink("/proc/self", c.rootfs().join("evilself")).expect("evilself");
    c.push_mount(json!({"destination": "/evilproc/ip_forward", "type": "bind", "source": fwd, "options": ["bind"]}));
    c.push_mount(json!({"destination": "/evilself/oom_score_adj", "type": "bind", "source": oom, "options": ["bind"]}));
    c.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    c.config["process"]["oomScoreAdj"] = json!(123);
    c.sh("cat /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj");
    let o = c.run();
    if !o.success() && is_capsa() {
        o.fails_with("mounts[7]");
        o.fails_with("/proc");
    }
    assert_eq!(
        fs::read_to_string(&fwd).unwrap_or_default(),
        "0\n",
        "sysctl redirected"
    );
    assert_eq!(
        fs::read_to_string(&oom).unwrap_or_default(),
        "0\n",
        "oomScoreAdj redirected"
    );
    c.assert_nothing_left(&c.id);
}
