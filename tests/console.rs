//! Terminal tests. Root only (they mount devpts instances and run containers).
//!
//! `setup_*` and `proxy_*` exercise the console module directly in forked
//! children (a private mount namespace with a fresh devpts, chrooted like a
//! container init after its root switch). The `container_*` tests run the
//! real binary on a busybox bundle with process.terminal = true.

#[path = "common/skip.rs"]
mod skip;
#[path = "console/support.rs"]
mod support;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use support::*;

macro_rules! require_root {
    () => {
        if !is_root() {
            skip::skip("needs root");
            return;
        }
    };
}

#[test]
fn setup_in_container_sends_master_and_wires_slave() {
    require_root!();
    let tmp = TempDir::new("setup");
    let root = make_fake_root(tmp.path(), true);
    let rx = Receiver::bind(tmp.path().join("console.sock"));
    let sock = capsa::__private::console::connect(&rx.path).expect("connect");

    let child = fork_child(move || {
        if let Err(e) = enter_fake_container_root(&root) {
            write_fd(2, &format!("{e}\n"));
            return 2;
        }
        if let Err(e) = capsa::__private::console::setup_in_container(sock) {
            write_fd(2, &format!("setup_in_container: {e}\n"));
            return 3;
        }
        write_fd(1, &self_checks());
        // Hand the terminal to a non-root user, as before the uid switch.
        let owner = capsa::__private::console::fix_stdio_owner(4242, true).is_ok()
            && nix::sys::stat::fstat(std::io::stdin().as_fd()).map(|s| s.st_uid) == Ok(4242);
        write_fd(1, &format!("owner={}\n", owner as u8));
        write_fd(1, "READY\n");
        let mut line = [0u8; 64];
        let n = nix::unistd::read(std::io::stdin().as_fd(), &mut line).unwrap_or(0);
        write_fd(
            1,
            &format!("GOT {}\n", String::from_utf8_lossy(&line[..n]).trim_end()),
        );
        0
    });

    let (name, master) = rx.accept_master();
    assert_eq!(name, b"/dev/ptmx", "data bytes must be runc's");
    let until = Instant::now() + TIMEOUT;
    let first = read_until(&master, "READY", until);
    nix::unistd::write(&master, b"ping\n").expect("write master");
    let (rest, hung_up) = read_until_hangup(&master, until);
    let code = wait_exit(child);
    let all = first + &rest;
    assert_eq!(code, 0, "child failed; output: {all:?}");
    assert!(
        hung_up,
        "no hang-up after the slave holders exited: {all:?}"
    );
    assert!(
        all.contains("CHECKS stdio=1 console=1 leader=1 ctty=1 leaked=0\r\n"),
        "{all:?}"
    );
    assert!(all.contains("owner=1\r\n"), "{all:?}");
    // Echo from the pty line discipline, then the child's answer (ONLCR).
    assert!(all.contains("GOT ping\r\n"), "{all:?}");
}

#[test]
fn setup_creates_missing_console_and_rejects_symlink() {
    require_root!();
    for (case, want) in [("missing", 0), ("symlink", 4)] {
        let tmp = TempDir::new(case);
        let root = make_fake_root(tmp.path(), false);
        if case == "symlink" {
            std::os::unix::fs::symlink("/etc/passwd", root.join("dev/console")).expect("symlink");
        }
        let (parent, child_end) = capsa::__private::console::socketpair().expect("socketpair");
        let child = fork_child(move || {
            if enter_fake_container_root(&root).is_err() {
                return 2;
            }
            match capsa::__private::console::setup_in_container(child_end) {
                Ok(()) => {
                    let ok = nix::sys::stat::stat("/dev/console")
                        .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFCHR);
                    if ok == Ok(true) { 0 } else { 3 }
                }
                Err(e) => {
                    let msg = e.to_string();
                    if msg == "/dev/console is a symlink: refusing to mount the console over it" {
                        4
                    } else {
                        5
                    }
                }
            }
        });
        let code = wait_exit(child);
        assert_eq!(code, want, "case {case}");
        if case == "missing" {
            let master = capsa::__private::console::recv_master(&parent).expect("master");
            assert!(nix::unistd::isatty(&master).unwrap_or(false));
        } else {
            // The init failed before sending: the receiver gets a clear EOF.
            let e = capsa::__private::console::recv_master(&parent)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("closed it without sending a terminal"), "{e}");
        }
    }
}

/// The proxy with a non-tty stdin: input reaches the pty, output comes back,
/// EOF on stdin does not stop output, and the proxy exits 0 on hang-up.
#[test]
fn proxy_copies_both_ways_until_hangup() {
    require_root!();
    let (in_r, in_w) = nix::unistd::pipe().expect("pipe");
    let (out_r, out_w) = nix::unistd::pipe().expect("pipe");
    let fds = [
        in_r.as_raw_fd(),
        in_w.as_raw_fd(),
        out_r.as_raw_fd(),
        out_w.as_raw_fd(),
    ];
    let runner = fork_child(move || {
        // The "run" process: stdio = pipes, a host pty whose slave a
        // grandchild (the "container") holds.
        // SAFETY: these are the test's pipe fds, inherited through fork and
        // used by nobody else in this child.
        let [i_r, i_w, o_r, o_w] =
            fds.map(|fd| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        if nix::unistd::dup2_stdin(&i_r).is_err() || nix::unistd::dup2_stdout(&o_w).is_err() {
            return 2;
        }
        drop((i_r, i_w, o_r, o_w));
        let Ok(master) =
            nix::pty::posix_openpt(nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY)
        else {
            return 3;
        };
        if nix::pty::unlockpt(&master).is_err() {
            return 3;
        }
        let Ok(name) = nix::pty::ptsname_r(&master) else {
            return 3;
        };
        let master: OwnedFd = master.into();
        let master_raw = master.as_raw_fd();
        let container = fork_child(move || {
            // SAFETY: alarm only arms a timer; if the test fails and nobody
            // feeds us, SIGALRM ends this process instead of leaking it.
            unsafe { libc::alarm(30) };
            // The container must not hold the master (else no hang-up).
            let _ = nix::unistd::close(master_raw);
            let Ok(slave) = nix::fcntl::open(
                name.as_str(),
                nix::fcntl::OFlag::O_RDWR,
                nix::sys::stat::Mode::empty(),
            ) else {
                return 4;
            };
            let _ = nix::unistd::dup2_stdin(&slave);
            let _ = nix::unistd::dup2_stdout(&slave);
            drop(slave);
            write_fd(1, "hello from the container\n");
            let mut line = [0u8; 64];
            let n = nix::unistd::read(std::io::stdin().as_fd(), &mut line).unwrap_or(0);
            // Output after the proxy's stdin hit EOF must still arrive.
            std::thread::sleep(Duration::from_millis(200));
            write_fd(
                1,
                &format!("got {}\n", String::from_utf8_lossy(&line[..n]).trim_end()),
            );
            0
        });
        let proxy = match capsa::__private::console::spawn_proxy(master) {
            Ok(pid) => Pid::from_raw(pid),
            Err(_) => return 5,
        };
        let c = waitpid(container, None);
        let p = waitpid(proxy, None);
        match (c, p) {
            (Ok(WaitStatus::Exited(_, 0)), Ok(WaitStatus::Exited(_, 0))) => 0,
            (Ok(WaitStatus::Exited(_, 0)), _) => 6,
            _ => 7,
        }
    });
    drop(in_r);
    drop(out_w);
    nix::unistd::write(&in_w, b"abc\n").expect("write stdin");
    drop(in_w); // EOF for the proxy's stdin
    let until = Instant::now() + TIMEOUT;
    let (out, eof) = read_until_hangup(&out_r, until);
    let code = wait_exit(runner);
    assert!(eof, "proxy never closed its stdout: {out:?}");
    assert_eq!(code, 0, "output: {out:?}");
    // The greeting may predate the proxy (this "container" is already
    // running when spawn_proxy is called), so it may carry a \r.
    assert!(out.contains("hello from the container"), "{out:?}");
    // Once the proxy exists the pty's \n -> \r\n mapping is off (as with
    // runc): the container's bytes arrive unchanged.
    assert!(out.contains("got abc\n"), "{out:?}");
}

/// The proxy with a terminal on stdin, like `capsa run` typed at a shell:
/// the user's terminal goes raw while it runs and is restored after, the
/// container's pty gets the window size at start and again on SIGWINCH.
#[test]
fn proxy_on_a_terminal_raw_mode_and_window_size() {
    require_root!();
    use nix::sys::termios::{LocalFlags, tcgetattr};
    let (outer, outer_name) = host_pty();
    let outer_slave = nix::fcntl::open(
        outer_name.as_str(),
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .expect("open outer slave");
    set_winsize(outer_slave.as_raw_fd(), 30, 100);
    let canonical = |fd: &OwnedFd| {
        tcgetattr(fd)
            .map(|t| t.local_flags.contains(LocalFlags::ICANON))
            .ok()
    };
    assert_eq!(canonical(&outer_slave), Some(true));

    let outer_raw = outer.as_raw_fd();
    let runner = fork_child(move || {
        // A session on the outer terminal, as a shell gives its job: resizing
        // it then sends SIGWINCH to our process group.
        let _ = nix::unistd::close(outer_raw);
        if nix::unistd::setsid().is_err() {
            return 2;
        }
        let Ok(t) = nix::fcntl::open(
            outer_name.as_str(),
            nix::fcntl::OFlag::O_RDWR,
            nix::sys::stat::Mode::empty(),
        ) else {
            return 2;
        };
        if nix::unistd::dup2_stdin(&t).is_err() || nix::unistd::dup2_stdout(&t).is_err() {
            return 2;
        }
        drop(t);
        let (master, inner_name) = host_pty();
        let master_raw = master.as_raw_fd();
        let container = fork_child(move || {
            // SAFETY: alarm only arms a timer; if the test fails and nobody
            // feeds us, SIGALRM ends this process instead of leaking it.
            unsafe { libc::alarm(30) };
            let _ = nix::unistd::close(master_raw);
            let _ = nix::unistd::setsid();
            let Ok(s) = nix::fcntl::open(
                inner_name.as_str(),
                nix::fcntl::OFlag::O_RDWR,
                nix::sys::stat::Mode::empty(),
            ) else {
                return 4;
            };
            let _ = nix::unistd::dup2_stdin(&s);
            let _ = nix::unistd::dup2_stdout(&s);
            drop(s);
            let mut line = [0u8; 64];
            for _ in 0..2 {
                let _ = nix::unistd::read(std::io::stdin().as_fd(), &mut line);
                let (r, c) = winsize(0).unwrap_or((0, 0));
                write_fd(1, &format!("SIZE {r}x{c}\n"));
            }
            0
        });
        let Ok(proxy) = capsa::__private::console::spawn_proxy(master) else {
            return 5;
        };
        let c = waitpid(container, None);
        let p = waitpid(Pid::from_raw(proxy), None);
        match (c, p) {
            (Ok(WaitStatus::Exited(_, 0)), Ok(WaitStatus::Exited(_, 0))) => 0,
            _ => 6,
        }
    });
    let until = Instant::now() + TIMEOUT;
    nix::unistd::write(&outer, b"go\r").expect("write");
    let first = read_until(&outer, "SIZE 30x100", until);
    assert_eq!(
        canonical(&outer_slave),
        Some(false),
        "terminal not raw while proxying"
    );
    set_winsize(outer_slave.as_raw_fd(), 40, 120);
    nix::unistd::write(&outer, b"next\r").expect("write");
    let second = read_until(&outer, "SIZE 40x120", until);
    let code = wait_exit(runner);
    assert_eq!(code, 0, "output: {first:?} {second:?}");
    assert_eq!(
        canonical(&outer_slave),
        Some(true),
        "terminal mode not restored"
    );
}

// ---------------------------------------------------------------------------
// End to end: the real binary on a busybox bundle with process.terminal.

#[test]
fn container_console_socket_create_start() {
    require_root!();
    let tmp = TempDir::new("e2e-sock");
    let bundle = busybox_bundle(tmp.path(), &["sh", "-c", TTY_REPORT]);
    let root = tmp.path().join("state");
    let rx = Receiver::bind(tmp.path().join("console.sock"));
    let ct = Container {
        root: &root,
        id: "console-sock".into(),
    };

    let create = capsa(&root)
        .args(["create", "--bundle"])
        .arg(&bundle)
        .arg("--console-socket")
        .arg(&rx.path)
        .arg(&ct.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn capsa create");
    let out = wait_deadline(create, &ct, "capsa create");
    assert!(
        out.status.success(),
        "create: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (name, master) = rx.accept_master();
    assert_eq!(name, b"/dev/ptmx");
    assert!(
        nix::unistd::isatty(&master).unwrap_or(false),
        "received fd is not a terminal"
    );
    // We own the master now: size the terminal as a shim would.
    set_winsize(master.as_raw_fd(), 25, 90);

    let out = capsa(&root)
        .args(["start", &ct.id])
        .output()
        .expect("capsa start");
    assert!(
        out.status.success(),
        "start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (text, hung_up) = read_until_hangup(&master, Instant::now() + TIMEOUT);
    assert!(hung_up, "no hang-up after the container exited: {text:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("/dev/pts/") && l[9..].parse::<u32>().is_ok()),
        "{text:?}"
    );
    for want in ["stdin-is-tty", "25 90", "console-is-pty", "end-of-report"] {
        assert!(lines.contains(&want), "missing {want:?} in {text:?}");
    }
}

#[test]
fn container_run_foreground_proxies_without_a_tty() {
    require_root!();
    let tmp = TempDir::new("e2e-run");
    let script = format!("{TTY_REPORT}; read line; echo \"got:$line\"; exit 7");
    let bundle = busybox_bundle(tmp.path(), &["sh", "-c", &script]);
    let root = tmp.path().join("state");
    let ct = Container {
        root: &root,
        id: "console-run".into(),
    };
    let mut child = capsa(&root)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&ct.id)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn capsa run");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"hello-through-the-proxy\n")
            .expect("write stdin");
        // Dropping stdin: EOF must not stop the output copy.
    }
    let out = wait_deadline(child, &ct, "capsa run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "stdout {text:?} stderr {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Byte for byte, as with runc: no \r added by the pty (ONLCR off), so
    // output piped from `run` compares equal to what the container printed.
    assert!(!text.contains('\r'), "{text:?}");
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(lines.iter().any(|l| l.starts_with("/dev/pts/")), "{text:?}");
    for want in [
        "stdin-is-tty",
        "console-is-pty",
        "end-of-report",
        "got:hello-through-the-proxy",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in {text:?}");
    }
    assert!(!root.join(&ct.id).exists(), "run left its state dir behind");
}

#[test]
fn container_console_socket_missing_is_a_clear_error() {
    require_root!();
    let tmp = TempDir::new("e2e-missing");
    let bundle = busybox_bundle(tmp.path(), &["sh", "-c", "echo should-not-run"]);
    let root = tmp.path().join("state");
    let missing = tmp.path().join("no-such-dir/console.sock");
    let ct = Container {
        root: &root,
        id: "console-missing".into(),
    };
    let out = capsa(&root)
        .args(["create", "--bundle"])
        .arg(&bundle)
        .arg("--console-socket")
        .arg(&missing)
        .arg(&ct.id)
        .output()
        .expect("capsa create");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "create succeeded without a console socket"
    );
    assert!(
        err.contains(&*missing.to_string_lossy()),
        "error does not name the path: {err:?}"
    );
    assert!(err.contains("no such file or directory"), "{err:?}");
    assert_no_state(&root);
}

/// `exec --tty`: with --console-socket --detach the receiver gets a fresh
/// pty that is the process's terminal but not /dev/console (that belongs to
/// the init); in the foreground `capsa exec -t` proxies it.
#[test]
fn container_exec_with_a_terminal() {
    require_root!();
    let tmp = TempDir::new("e2e-exec");
    let bundle = busybox_bundle(tmp.path(), &["sleep", "60"]);
    let root = tmp.path().join("state");
    let ct = Container {
        root: &root,
        id: "console-exec".into(),
    };
    run_detached_without_terminal(&bundle, &ct, &tmp.path().join("run-d.err"));

    let report = "tty; test -t 0 && echo stdin-is-tty; \
        [ \"$(stat -L -c %t:%T /proc/self/fd/0)\" = \"$(stat -c %t:%T /dev/console)\" ] || echo console-is-not-this-pty; \
        echo end-of-report";
    let rx = Receiver::bind(tmp.path().join("exec.sock"));
    let exec = capsa(&root)
        .args(["exec", "--tty", "--detach", "--console-socket"])
        .arg(&rx.path)
        .args([&ct.id, "sh", "-c", report])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn capsa exec");
    let out = wait_deadline(exec, &ct, "capsa exec --detach");
    assert!(
        out.status.success(),
        "exec: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (name, master) = rx.accept_master();
    assert_eq!(name, b"/dev/ptmx");
    let (text, hung_up) = read_until_hangup(&master, Instant::now() + TIMEOUT);
    assert!(hung_up, "{text:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("/dev/pts/")), "{text:?}");
    for want in ["stdin-is-tty", "console-is-not-this-pty", "end-of-report"] {
        assert!(lines.contains(&want), "missing {want:?} in {text:?}");
    }

    let exec = capsa(&root)
        .args([
            "exec",
            "-t",
            &ct.id,
            "sh",
            "-c",
            "tty; test -t 1 && echo stdout-is-tty; exit 5",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn capsa exec -t");
    let out = wait_deadline(exec, &ct, "capsa exec -t");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(5),
        "stdout {text:?} stderr {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    // As with runc: the pty's \n -> \r\n mapping is off before the
    // process runs, so what it prints arrives byte for byte.
    assert!(
        text.contains("stdout-is-tty\n") && !text.contains('\r') && text.starts_with("/dev/pts/"),
        "{text:?}"
    );
}
