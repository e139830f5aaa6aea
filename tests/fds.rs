//! What crosses from the runtime into the processes it starts: only stdio,
//! the --preserve-fds the caller really opened, and the runtime's own
//! descriptors that the process needs. Not the caller's other fds (an
//! engine waiting for end-of-file on a pipe it passed would wait), not the
//! gaps of the --preserve-fds range, not the container's lock (a process
//! holding it blocks every later command).

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A pipe (read end, write end), both close-on-exec in this process.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array on success.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Whether the read end sees end-of-file (every write end closed) within `limit`.
fn eof_within(read: &OwnedFd, limit: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: read.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = limit.as_millis() as libc::c_int;
    // SAFETY: poll on one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    if n <= 0 {
        return false;
    }
    let mut b = [0u8; 1];
    // SAFETY: read into a one-byte buffer we own.
    let got = unsafe { libc::read(read.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
    got == 0
}

/// The fd numbers >= 3 a workload shell sees open (its own included none:
/// it tests /proc/$$/fd/N for each N), one per line.
const PROBE: &str = "for i in 3 4 5 6 7 8 9; do [ -e /proc/$$/fd/$i ] && echo fd$i; done; true";

#[test]
fn created_init_does_not_hold_the_callers_other_fds() {
    // An engine passes a pipe it then waits on for end-of-file; without
    // --preserve-fds it is not the workload's, and the waiting init must
    // not keep it open until `start` (runc's does not).
    let mut ctx = Ctx::new("fdcreated");
    ctx.args(&["sleep", "1000"]);
    ctx.write_config();
    let (read, write) = pipe();
    let b = ctx.bundle();
    let o = ctx.rt_with(
        &["create", "--bundle", b.to_str().expect("utf-8"), &ctx.id],
        |cmd| pass_fd_as(cmd, write.as_raw_fd(), 5),
    );
    o.ok();
    drop(write);
    assert!(
        eof_within(&read, Duration::from_secs(5)),
        "the created container still holds the caller's fd 5"
    );
    // Nor the read end, or any other copy of the pipe.
    let ino = std::fs::metadata(format!("/proc/self/fd/{}", read.as_raw_fd()))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("stat the pipe");
    let pid = ctx.state(&ctx.id)["pid"].as_i64().expect("pid");
    let links: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the init's fds")
        .filter_map(|e| {
            Some(
                std::fs::read_link(e.ok()?.path())
                    .ok()?
                    .display()
                    .to_string(),
            )
        })
        .collect();
    assert!(!links.contains(&format!("pipe:[{ino}]")), "{links:?}");
}

#[test]
fn preserve_fds_gaps_stay_closed() {
    // --preserve-fds 3 with fds 3 and 5 open and 4 not: the workload gets
    // 3 and 5, and 4 stays closed (not a /dev/null, not a runtime fd).
    if skip_unless_capsa("runc 1.1 puts its own fds (/sys/fs/cgroup) into the gaps") {
        return;
    }
    let mut ctx = Ctx::new("fdgap");
    ctx.sh(PROBE);
    ctx.write_config();
    let three = std::fs::File::create(ctx.scratch("three")).expect("file");
    let five = std::fs::File::create(ctx.scratch("five")).expect("file");
    let b = ctx.bundle();
    let o = ctx.rt_with(
        &[
            "run",
            "--preserve-fds",
            "3",
            "--bundle",
            b.to_str().expect("utf-8"),
            &ctx.id,
        ],
        |cmd| {
            pass_fd_as(cmd, three.as_raw_fd(), 3);
            pass_fd_as(cmd, five.as_raw_fd(), 5);
        },
    );
    o.ok();
    assert_eq!(
        o.stdout.split_whitespace().collect::<Vec<_>>(),
        ["fd3", "fd5"],
        "{o}"
    );

    // The same for exec.
    let mut ctx = Ctx::new("fdgapexec");
    ctx.args(&["sleep", "1000"]);
    ctx.create();
    ctx.rt(&["start", &ctx.id]).ok();
    let o = ctx.rt_with(
        &["exec", "--preserve-fds", "2", &ctx.id, "sh", "-c", PROBE],
        |cmd| pass_fd_as(cmd, three.as_raw_fd(), 3),
    );
    o.ok();
    assert_eq!(
        o.stdout.split_whitespace().collect::<Vec<_>>(),
        ["fd3"],
        "{o}"
    );
}

#[test]
fn hooks_get_only_stdio() {
    // Neither the caller's other fds nor the workload's --preserve-fds
    // reach a hook, whichever command runs it.
    let mut ctx = Ctx::new("fdhooks");
    ctx.args(&["sleep", "1000"]);
    let out = ctx.scratch("hooks");
    std::fs::create_dir_all(&out).expect("mkdir");
    let hook = |kind: &str| {
        serde_json::json!([{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("exec > {}/{kind}; {PROBE}", out.display())],
        }])
    };
    for kind in ["prestart", "createRuntime", "poststart", "poststop"] {
        ctx.config["hooks"][kind] = hook(kind);
    }
    ctx.write_config();
    let extra = std::fs::File::create(ctx.scratch("extra")).expect("file");
    let with_extra = |cmd: &mut Command| {
        pass_fd_as(cmd, extra.as_raw_fd(), 3);
        pass_fd_as(cmd, extra.as_raw_fd(), 6);
    };
    let b = ctx.bundle();
    let b = b.to_str().expect("utf-8");
    ctx.rt_with(
        &["create", "--preserve-fds", "1", "--bundle", b, &ctx.id],
        with_extra,
    )
    .ok();
    ctx.rt_with(&["start", &ctx.id], with_extra).ok();
    ctx.rt_with(&["delete", "--force", &ctx.id], with_extra)
        .ok();
    for kind in ["prestart", "createRuntime", "poststart", "poststop"] {
        let got = read_lossy(&out.join(kind));
        if kind == "poststop" && !is_capsa() {
            // runc 1.1 leaks the caller's fds into poststop hooks.
            continue;
        }
        assert_eq!(got.trim(), "", "{kind} hook had fds open: {got}");
    }
}

/// Spawn the runtime in the background (stdout/stderr to files in the test's dir).
fn spawn_rt(ctx: &Ctx, args: &[&str]) -> Child {
    let root = ctx.root();
    let out = std::fs::File::create(ctx.scratch(&format!("bg-{}.out", unique_id("o"))))
        .expect("out file");
    Command::new(runtime())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn runtime")
}

fn wait_child(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `resume` with a short limit: a deadlock fails the test instead of hanging it.
fn resume_within(ctx: &Ctx, limit: Duration) -> Output {
    let root = ctx.root();
    run_cmd(
        &runtime(),
        &["--root", root.to_str().expect("utf-8"), "resume", &ctx.id],
        &ctx.scratch(""),
        limit,
        |_| {},
    )
}

fn paused(tag: &str) -> Ctx {
    let mut ctx = Ctx::new(tag);
    ctx.args(&["sleep", "1000"]);
    ctx.create();
    ctx.rt(&["start", &ctx.id]).ok();
    ctx.rt(&["pause", &ctx.id]).ok();
    assert_eq!(ctx.status(&ctx.id), "paused");
    ctx
}

#[test]
fn exec_ignore_paused_waits_for_resume_without_holding_the_lock() {
    // The exec'd process joins the frozen cgroup and waits there; `resume`
    // must still get through (runc: the exec completes after the resume).
    let ctx = paused("fdpausedexec");
    let mut exec = spawn_rt(
        &ctx,
        &["exec", "--ignore-paused", &ctx.id, "sh", "-c", "echo ran"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        resume_within(&ctx, Duration::from_secs(10))
    }));
    let status = wait_child(&mut exec, Duration::from_secs(20));
    if status.is_none() {
        let _ = exec.kill();
        let _ = exec.wait();
    }
    let r =
        r.unwrap_or_else(|_| panic!("resume blocked while exec waited in the paused container"));
    r.ok();
    let status = status.expect("exec did not finish after resume");
    assert!(status.success(), "exec: {status}");
    assert_eq!(ctx.status(&ctx.id), "running");
}

#[test]
fn a_killed_exec_leaves_no_lock_behind() {
    // `exec` SIGKILLed while its process waits in the frozen cgroup: that
    // process must not keep the container's lock (it would until resumed,
    // and resume needs the lock).
    let ctx = paused("fdkilledexec");
    let mut exec = spawn_rt(
        &ctx,
        &["exec", "--ignore-paused", &ctx.id, "sh", "-c", "echo ran"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let _ = exec.kill();
    let _ = exec.wait();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        resume_within(&ctx, Duration::from_secs(10))
    }));
    let r = r.unwrap_or_else(|_| {
        panic!("resume blocked: a process of the killed exec holds the container's lock")
    });
    r.ok();
    assert_eq!(ctx.status(&ctx.id), "running");
}
