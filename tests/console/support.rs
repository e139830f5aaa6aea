//! Helpers for tests/console.rs and tests/console_size.rs: temp dirs, a runc-`recvtty`-like receiver,
//! pty reading with deadlines, forked children, a fake container root, and
//! the busybox bundle / binary helpers for the end-to-end tests.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

pub const TIMEOUT: Duration = Duration::from_secs(20);

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A refused `create` left no container state under `root`.
#[track_caller]
pub fn assert_no_state(root: &Path) {
    let left: Vec<_> = std::fs::read_dir(root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "state left under --root: {left:?}");
}

/// A fresh directory under the target dir's tmp, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("capsa-console-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Our own `recvtty`: listen on a path, accept one connection and take the
/// fd runc-style (data bytes = a name, one SCM_RIGHTS fd).
pub struct Receiver {
    listener: UnixListener,
    pub path: PathBuf,
}

impl Receiver {
    pub fn bind(path: PathBuf) -> Receiver {
        let listener = UnixListener::bind(&path).expect("bind console socket");
        Receiver { listener, path }
    }

    pub fn accept_master(&self) -> (Vec<u8>, OwnedFd) {
        let mut p = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
        let n =
            poll(&mut p, PollTimeout::try_from(TIMEOUT).expect("timeout")).expect("poll listener");
        assert_eq!(
            n,
            1,
            "nobody connected to {} within {TIMEOUT:?}",
            self.path.display()
        );
        let (conn, _) = self.listener.accept().expect("accept");
        let mut name = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<UnixAddr>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .expect("recvmsg");
        let bytes = msg.bytes;
        let mut fds = Vec::new();
        for c in msg.cmsgs().expect("cmsgs") {
            if let ControlMessageOwned::ScmRights(got) = c {
                fds.extend(got);
            }
        }
        assert_eq!(fds.len(), 1, "expected exactly one fd, got {fds:?}");
        // SAFETY: the kernel just installed this fd for us; nothing else owns it.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) };
        (name[..bytes].to_vec(), fd)
    }
}

/// Read `fd` until EOF/EIO (the pty hang-up) or the deadline; returns what
/// was read and whether it ended by hang-up.
pub fn read_until_hangup(fd: &OwnedFd, until: Instant) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&out).into_owned(), false);
        }
        let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut p,
            PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) | Err(Errno::EIO) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Read until `needle` shows up (or panic at the deadline).
pub fn read_until(fd: &OwnedFd, needle: &str, until: Instant) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains(needle) {
        let left = until.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out waiting for {needle:?}; got {:?}",
            String::from_utf8_lossy(&out)
        );
        let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        if poll(
            &mut p,
            PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
        )
        .unwrap_or(0)
            == 0
        {
            continue;
        }
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) | Err(Errno::EIO) => panic!(
                "hang-up before {needle:?}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Fork; the child runs `f` and `_exit`s with its result. The child only
/// makes syscalls and allocates (glibc's fork leaves malloc usable).
pub fn fork_child(f: impl FnOnce() -> i32) -> Pid {
    // SAFETY: the child never returns into the test harness: it runs `f`,
    // which does not touch locks other threads may hold (no printing, no
    // test-harness state), and ends in _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: _exit ends the child without running the parent's
            // exit handlers or unwinding into harness frames.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    }
}

pub fn wait_exit(pid: Pid) -> i32 {
    match waitpid(pid, None).expect("waitpid") {
        WaitStatus::Exited(_, code) => code,
        other => panic!("child {pid} ended abnormally: {other:?}"),
    }
}

pub fn write_fd(fd: RawFd, s: &str) {
    // SAFETY: fd is one of our stdio numbers, open for the call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let _ = nix::unistd::write(fd, s.as_bytes());
}

/// In a child: private mount ns, `root` with a new devpts at dev/pts,
/// dev/ptmx -> pts/ptmx and an empty dev/console (when `console_file`), then
/// chroot into it, as the init is after its root switch.
pub fn enter_fake_container_root(root: &Path) -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("make / private: {e}"))?;
    mount(
        Some("devpts"),
        &root.join("dev/pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|e| format!("mount devpts: {e}"))?;
    mount(
        Some("proc"),
        &root.join("proc"),
        Some("proc"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("mount proc: {e}"))?;
    nix::unistd::chroot(root).map_err(|e| format!("chroot: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir: {e}"))?;
    Ok(())
}

pub fn make_fake_root(dir: &Path, console_file: bool) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("dev/pts")).expect("mkdir dev/pts");
    std::fs::create_dir_all(root.join("proc")).expect("mkdir proc");
    std::os::unix::fs::symlink("pts/ptmx", root.join("dev/ptmx")).expect("symlink ptmx");
    if console_file {
        std::fs::write(root.join("dev/console"), b"").expect("create dev/console");
    }
    root
}

/// What the fake init checks about itself after `setup_in_container`, as
/// one line: each check is name=0/1.
pub fn self_checks() -> String {
    use nix::sys::stat::{fstat, stat};
    let mut r = Vec::new();
    let tty0 = fstat(std::io::stdin().as_fd()).ok();
    let all_same = (0..=2).all(|fd| {
        // SAFETY: 0..=2 are open (the pty slave) for the call.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        fstat(b).ok().map(|s| s.st_rdev) == tty0.map(|s| s.st_rdev)
            && nix::unistd::isatty(b).unwrap_or(false)
    });
    r.push(format!("stdio={}", all_same as u8));
    let console = stat("/dev/console").ok().map(|s| s.st_rdev);
    r.push(format!(
        "console={}",
        (console.is_some() && console == tty0.map(|s| s.st_rdev)) as u8
    ));
    let me = nix::unistd::getpid();
    r.push(format!(
        "leader={}",
        (nix::unistd::getsid(None).ok() == Some(me)) as u8
    ));
    let fg = nix::unistd::tcgetpgrp(std::io::stdin().as_fd()).ok();
    r.push(format!(
        "ctty={}",
        (fg == Some(nix::unistd::getpgrp())) as u8
    ));
    // No fd other than 0, 1, 2 may point into this container's devpts
    // (master closed, slave only on stdio). Fds inherited from the test
    // harness live on other devices and do not count.
    let pts_dev = stat("/dev/pts").map(|s| s.st_dev).ok();
    let leaked = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
                .filter(|&fd| fd > 2)
                .filter(|&fd| {
                    // SAFETY: fd is listed as open in /proc/self/fd; a stale
                    // number (read_dir's own fd) only makes fstat fail.
                    let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                    fstat(b).ok().map(|s| s.st_dev) == pts_dev
                })
                .count()
        })
        .unwrap_or(usize::MAX);
    r.push(format!("leaked={leaked}"));
    format!("CHECKS {}\n", r.join(" "))
}

pub fn winsize(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the live local.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some((ws.ws_row, ws.ws_col))
}

pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one initialised winsize from the live local.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0, "TIOCSWINSZ");
}

/// A host pty pair: (master, slave path).
pub fn host_pty() -> (OwnedFd, String) {
    use nix::fcntl::OFlag;
    let m =
        nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).expect("openpt");
    nix::pty::unlockpt(&m).expect("unlockpt");
    let name = nix::pty::ptsname_r(&m).expect("ptsname");
    (m.into(), name)
}

pub const CAPSA: &str = env!("CARGO_BIN_EXE_capsa");

/// A busybox bundle (static /bin/busybox + applet symlinks) whose config is
/// `capsa spec`'s (terminal: true) with `args` as the process.
pub fn busybox_bundle(dir: &Path, args: &[&str]) -> PathBuf {
    let bundle = dir.join("bundle");
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin).expect("mkdir rootfs/bin");
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("copy /bin/busybox (busybox-static)");
    for applet in [
        "sh", "tty", "stty", "stat", "test", "[", "echo", "cat", "read", "sleep", "ls",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet symlink");
    }
    let out = std::process::Command::new(CAPSA)
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .output()
        .expect("run capsa spec");
    assert!(
        out.status.success(),
        "capsa spec: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read config.json"))
            .expect("parse config.json");
    assert_eq!(config["process"]["terminal"], serde_json::Value::Bool(true));
    config["process"]["args"] = serde_json::json!(args);
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("encode"))
        .expect("write config.json");
    bundle
}

/// `capsa run --detach` of `bundle` as `ct`, its init without a terminal (so
/// no console socket is needed). The detached init keeps its stdio: a pipe
/// would stay open until it exits, so its stderr goes to `errlog`.
pub fn run_detached_without_terminal(bundle: &Path, ct: &Container<'_>, errlog: &Path) {
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parse");
    config["process"]["terminal"] = serde_json::Value::Bool(false);
    std::fs::write(&path, serde_json::to_vec(&config).expect("encode")).expect("write");
    let status = capsa(ct.root)
        .args(["run", "--detach", "--bundle"])
        .arg(bundle)
        .arg(&ct.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(errlog).expect("create log"))
        .status()
        .expect("capsa run -d");
    assert!(
        status.success(),
        "run -d: {}",
        std::fs::read_to_string(errlog).unwrap_or_default()
    );
}

/// Runs `capsa delete --force` for the container on every exit path.
pub struct Container<'a> {
    pub root: &'a Path,
    pub id: String,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new(CAPSA)
            .arg("--root")
            .arg(self.root)
            .args(["delete", "--force", &self.id])
            .output();
    }
}

pub fn capsa(root: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(CAPSA);
    c.arg("--root").arg(root);
    c
}

/// Wait for `child` with a deadline. On overrun kill it and the container
/// (the tty proxy outlives `capsa run` by design and holds its stdout until
/// the container is gone), then fail.
pub fn wait_deadline(
    mut child: std::process::Child,
    ct: &Container<'_>,
    what: &str,
) -> std::process::Output {
    let until = Instant::now() + TIMEOUT;
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return child.wait_with_output().expect("collect output"),
            None if Instant::now() > until => {
                let _ = child.kill();
                let _ = capsa(ct.root).args(["delete", "--force", &ct.id]).output();
                let out = child.wait_with_output().expect("collect output");
                panic!(
                    "{what} did not finish in {TIMEOUT:?}; stdout {:?} stderr {:?}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A shell script printing what the container sees of its terminal.
pub const TTY_REPORT: &str = "tty; test -t 0 && echo stdin-is-tty; stty size; \
    [ \"$(stat -L -c %t:%T /proc/self/fd/0)\" = \"$(stat -c %t:%T /dev/console)\" ] && echo console-is-pty; \
    echo end-of-report";
