//! Memory pages that do not go to the image directory: `checkpoint
//! --page-server ADDRESS:PORT` sends them to a `criu page-server`, and
//! `--lazy-pages` (with `--status-fd`) keeps them in the dumping CRIU, which
//! serves them to a restore with `--lazy-pages` through `criu lazy-pages`
//! (userfaultfd): runc's semantics and its checkpoint.bats flow. Part of the
//! kernel-6.1 VM boot of tests/checkpoint.rs; the flag checks run anywhere.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::{
    assert_consecutive, checkpoint, count_lines, gone, restore, running_counter, wait_count_above,
};

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Wait for `child` to exit within `limit`; its exit status (killed and
/// reaped on timeout, then a panic naming `what`).
#[track_caller]
fn wait_child(child: &mut Child, what: &str, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process that is not our child (a daemonized criu): gone or a zombie.
fn wait_pid_gone(pid: i32, what: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next());
        if stat.is_empty() || state == Some(Some('Z')) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{what} (pid {pid}) still runs after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Run the `criu` binary with `args`; its output, checked for success.
#[track_caller]
fn criu_ok(dir: &Path, args: &[&str]) -> Output {
    let o = run_cmd(
        Path::new("criu"),
        args,
        dir,
        Duration::from_secs(120),
        |_| {},
    );
    assert!(o.success(), "criu {args:?}: {o}");
    o
}

fn page_images(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("pages-"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `--page-server`: the pages land in the page server's directory and not
/// in the image path; with the other images copied next to them, a restore
/// from there brings the counter back where it was.
#[test]
fn page_server_receives_the_pages_and_the_restore_uses_them() {
    let Some((ctx, id, _p)) = running_counter("ckpt-ps", 3) else {
        return;
    };
    let pages = ctx.scratch("ps-pages");
    let images = ctx.scratch("images");
    fs::create_dir_all(&pages).unwrap();
    let port = free_port().to_string();
    let pidfile = ctx.scratch("ps.pid");
    // -d: criu returns once the page server listens (and it serves one dump).
    criu_ok(
        &ctx.scratch("out"),
        &[
            "page-server",
            "--images-dir",
            pages.to_str().unwrap(),
            "--address",
            "127.0.0.1",
            "--port",
            &port,
            "-d",
            "--pidfile",
            pidfile.to_str().unwrap(),
            "-o",
            "page-server.log",
        ],
    );
    let ps_pid: i32 = read_lossy(&pidfile)
        .trim()
        .parse()
        .expect("page server pid");
    let (ok, log) = checkpoint(
        &ctx,
        &id,
        &images,
        &["--page-server", &format!("127.0.0.1:{port}")],
    );
    if !ok {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(ps_pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        panic!("checkpoint --page-server: {log}");
    }
    wait_pid_gone(ps_pid, "criu page-server", Duration::from_secs(60));
    assert!(
        gone(&ctx, &id),
        "the container still exists after checkpoint"
    );
    assert!(images.join("inventory.img").exists(), "no CRIU images");
    assert_eq!(
        page_images(&images),
        Vec::<String>::new(),
        "pages were written to the image path, not sent to the page server"
    );
    assert!(
        !page_images(&pages).is_empty(),
        "the page server got no pages: {:?}",
        fs::read_dir(&pages).map(|r| r.count())
    );
    // The migration's last step: everything in one directory.
    for e in fs::read_dir(&images).unwrap().flatten() {
        let to = pages.join(e.file_name());
        if e.file_type().unwrap().is_file() && !to.exists() {
            fs::copy(e.path(), &to).unwrap();
        }
    }
    let before = count_lines(&ctx).len();
    let (ok, log, _p2) = restore(&ctx, &id, &pages, &[]);
    assert!(ok, "restore from the page server's directory: {log}");
    assert_eq!(ctx.status(&id), "running");
    assert_consecutive(&wait_count_above(&ctx, before + 3));
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_nothing_left(&id);
}

/// The runtime under test with `args` (after --root/--log), `fd` given to it
/// as descriptor 9, stdio null: the checkpoint that runs while the restore
/// fetches its pages.
fn spawn_rt_with_fd9(ctx: &Ctx, args: &[&str], fd: &OwnedFd) -> (Child, std::path::PathBuf) {
    let log = ctx.scratch(&format!("rt-{}.log", unique_id("lazy")));
    let root = ctx.root();
    let mut cmd = Command::new(runtime());
    cmd.arg("--root")
        .arg(&root)
        .arg("--log")
        .arg(&log)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let raw = fd.as_raw_fd();
    // SAFETY: only dup2 (async-signal-safe) between fork and exec, on a
    // descriptor open in the parent; dup2 clears FD_CLOEXEC on fd 9.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    (cmd.spawn().expect("spawn the runtime"), log)
}

/// Read one byte from `r` within `limit`; None on EOF or timeout.
fn read_byte(r: &OwnedFd, limit: Duration) -> Option<u8> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let start = Instant::now();
    loop {
        let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(r), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(n) if n > 0 => break,
            _ if start.elapsed() > limit => return None,
            _ => {}
        }
    }
    let mut b = [0u8; 1];
    match nix::unistd::read(r, &mut b) {
        Ok(1) => Some(b[0]),
        _ => None,
    }
}

/// `--lazy-pages`: the checkpoint writes \0 to --status-fd when its page
/// server is ready, `criu lazy-pages` and `restore --lazy-pages` bring the
/// container back under a new id with its memory fetched on demand, and the
/// checkpoint ends (the old container deleted) once every page went over.
/// Where the kernel lacks userfaultfd's non-cooperative events, the
/// checkpoint must fail with one clear error and leave the container
/// running (then a counted skip).
#[test]
fn lazy_pages_migration_through_criu_lazy_pages() {
    let Some((mut ctx, id, _p)) = running_counter("ckpt-lazy", 3) else {
        return;
    };
    let images = ctx.scratch("images");
    let port = free_port().to_string();
    let ps = format!("127.0.0.1:{port}");
    let uffd = Command::new("criu")
        .args(["check", "--feature", "uffd-noncoop"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !uffd {
        if is_capsa() {
            let (ok, log) = checkpoint(&ctx, &id, &images, &["--lazy-pages", "--page-server", &ps]);
            assert!(!ok, "a lazy checkpoint without uffd succeeded: {log}");
            assert!(log.contains("lazy pages are not supported"), "{log}");
            assert_eq!(ctx.status(&id), "running");
            assert!(!images.exists(), "an image directory was left");
        }
        skip(
            "`criu check --feature uffd-noncoop` fails: this kernel has no non-cooperative userfaultfd",
        );
        return;
    }
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let img = images.to_str().unwrap().to_string();
    let (mut dump, dump_log) = spawn_rt_with_fd9(
        &ctx,
        &[
            "checkpoint",
            "--image-path",
            &img,
            "--lazy-pages",
            "--page-server",
            &ps,
            "--status-fd",
            "9",
            &id,
        ],
        &w,
    );
    // Our write end stays open until the byte came (as in runc's
    // checkpoint.bats): the reader waits for the byte, not for EOF.
    let ready = read_byte(&r, Duration::from_secs(240));
    drop(w);
    if ready != Some(0) {
        let exited = dump.try_wait().ok().flatten();
        let _ = dump.kill();
        let _ = dump.wait();
        let criu_log = read_lossy(&images.join("dump.log"));
        let tail: Vec<&str> = criu_log.lines().rev().take(30).collect();
        panic!(
            "no \\0 on --status-fd (got {ready:?}; checkpoint exited: {exited:?}): {}\n\
             dump.log, newest first:\n{}",
            read_lossy(&dump_log),
            tail.join("\n")
        );
    }
    assert!(images.join("inventory.img").exists(), "no inventory.img");
    let mut lazy = Command::new("criu")
        .args([
            "lazy-pages",
            "--page-server",
            "--address",
            "127.0.0.1",
            "--port",
            &port,
            "-D",
            &img,
            "-o",
            "lazy-pages.log",
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn criu lazy-pages");
    // The restore connects to the daemon's socket in the images directory:
    // wait until it is there (a restore started first fails with ENOENT).
    let sock = images.join("lazy-pages.socket");
    let start = Instant::now();
    while !sock.exists() {
        if let Ok(Some(st)) = lazy.try_wait() {
            let _ = dump.kill();
            let _ = dump.wait();
            panic!(
                "criu lazy-pages exited ({st}) before making its socket: {}",
                read_lossy(&images.join("lazy-pages.log"))
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "criu lazy-pages made no socket in 120 s: {}",
            read_lossy(&images.join("lazy-pages.log"))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The dumped container still exists until its last page went over: the
    // restore takes a new id (and cgroup), as in runc's test.
    let new = ctx.new_id("ckpt-lazy2");
    ctx.config["linux"]["cgroupsPath"] = serde_json::json!(cgroup_path_for(&new));
    ctx.write_config();
    let before = count_lines(&ctx).len();
    let (ok, log, _p2) = restore(&ctx, &new, &images, &["--lazy-pages"]);
    if !ok {
        let _ = lazy.kill();
        let _ = dump.kill();
        let _ = (lazy.wait(), dump.wait());
        panic!("restore --lazy-pages: {log}");
    }
    let st = wait_child(&mut dump, "the lazy checkpoint", Duration::from_secs(180));
    assert!(
        st.success(),
        "lazy checkpoint: {st}: {}",
        read_lossy(&dump_log)
    );
    let st = wait_child(&mut lazy, "criu lazy-pages", Duration::from_secs(60));
    assert!(st.success(), "criu lazy-pages: {st}");
    assert!(gone(&ctx, &id), "the dumped container still exists");
    assert_eq!(ctx.status(&new), "running");
    assert_consecutive(&wait_count_above(&ctx, before + 3));
    ctx.rt(&["delete", "--force", &new]).ok();
    ctx.assert_nothing_left(&new);
    ctx.assert_nothing_left(&id);
}

/// Bad --page-server and --status-fd values are usage errors naming the
/// flag, before CRIU is looked for (so on any host): the container runs on
/// and no image directory is made.
#[test]
fn bad_page_server_or_status_fd_is_a_usage_error_that_changes_nothing() {
    if skip_unless_capsa("capsa's error texts and its no-change promise") {
        return;
    }
    let mut ctx = Ctx::new("ckpt-psargs");
    ctx.args(&["sleep", "1000"]);
    let id = ctx.id.clone();
    ctx.write_config();
    let b = ctx.bundle();
    ctx.rt(&["run", "-d", "--bundle", b.to_str().unwrap(), &id])
        .ok();
    let pid = ctx.state(&id)["pid"].clone();
    let images = ctx.scratch("images");
    let img = images.to_str().unwrap();
    for (flags, want) in [
        (&["--page-server", "nohost"][..], "ADDRESS:PORT"),
        (&["--page-server", ":27"][..], "ADDRESS:PORT"),
        (&["--page-server", "::1:27"][..], "ADDRESS:PORT"),
        (
            &["--page-server", "127.0.0.1:http"][..],
            "invalid port number",
        ),
        (&["--page-server", "[::1]:70000"][..], "invalid port number"),
        // Descriptor 77 is not open in the runtime.
        (
            &[
                "--lazy-pages",
                "--page-server",
                "127.0.0.1:27",
                "--status-fd",
                "77",
            ][..],
            "invalid --status-fd argument 77",
        ),
    ] {
        let mut args = vec!["checkpoint", "--image-path", img];
        args.extend_from_slice(flags);
        args.push(&id);
        let o = ctx.rt(&args);
        o.fails_with(want);
        assert_eq!(o.stderr.trim().lines().count(), 1, "{o}");
        let st = ctx.state(&id);
        assert_eq!(st["status"], "running", "after {flags:?}: {st}");
        assert_eq!(st["pid"], pid);
        assert!(!images.exists(), "{flags:?} left an image directory");
    }
    // Read-only status fd: stdin from /dev/null.
    let o = ctx.rt_with(
        &[
            "checkpoint",
            "--image-path",
            img,
            "--lazy-pages",
            "--status-fd",
            "0",
            &id,
        ],
        |c| {
            c.stdin(Stdio::null());
        },
    );
    o.fails_with("invalid --status-fd argument 0: not writable");
    assert_eq!(ctx.status(&id), "running");
    assert!(!images.exists());
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_nothing_left(&id);
}
