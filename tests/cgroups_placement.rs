//! Real cgroup placement through the library API, as root. Runs on the
//! hybrid development hosts and, through the VM lane, on pure cgroup v2:
//!   CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$PWD/scripts/vm-run.sh $PWD" \
//!     cargo test --test cgroups_placement
//! Every cgroup lives under a unique top-level `capsa-test-<pid>-<n>` dir
//! and is removed again, also when an assertion fails.

#[path = "common/skip.rs"]
mod skip;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use capsa::__private::Cgroup;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

#[derive(Debug, Clone, Copy, PartialEq)]
enum HostKind {
    V1,
    Hybrid,
    V2,
}

fn host_kind() -> HostKind {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        HostKind::V2
    } else if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        HostKind::Hybrid
    } else {
        HostKind::V1
    }
}

/// A test-only top-level cgroup name, unique per process and call.
fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "capsa-test-{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Kills the test's processes and destroys its cgroups on every exit path.
#[derive(Default)]
struct Cleanup {
    cgroups: Vec<Cgroup>,
    children: Vec<Child>,
    pids: Vec<i32>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for &p in &self.pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(p), None);
        }
        for cg in self.cgroups.iter().rev() {
            if let Err(e) = cg.destroy() {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// (hierarchy id, controllers, path) for each line of /proc/PID/cgroup.
fn proc_cgroup(pid: i32) -> Vec<(u32, String, String)> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
    text.lines()
        .map(|l| {
            let mut f = l.splitn(3, ':');
            let id = f.next().and_then(|s| s.parse().ok()).expect("hierarchy id");
            let ctrl = f.next().expect("controllers").to_owned();
            let path = f.next().expect("path").to_owned();
            (id, ctrl, path)
        })
        .collect()
}

/// Assert where `pid` sits: in `path` on the unified hierarchy if
/// `unified`, and in `path` on every v1 hierarchy if `v1`.
fn assert_placed(pid: i32, path: &str, unified: bool, v1: bool) {
    let kind = host_kind();
    let lines = proc_cgroup(pid);
    assert!(!lines.is_empty());
    for (id, ctrl, at) in &lines {
        let is_unified = *id == 0;
        if is_unified && kind == HostKind::V1 {
            continue; // no cgroup2 mounted: nothing placed there
        }
        let want = if is_unified { unified } else { v1 };
        assert_eq!(
            at == path,
            want,
            "pid {pid} in {id}:{ctrl}:{at}, expected {path}: {want} ({kind:?} host)"
        );
    }
}

fn dirs_expected() -> usize {
    // Every hierarchy listed in /proc/self/cgroup is mounted on the test hosts.
    let n = proc_cgroup(std::process::id() as i32).len();
    if host_kind() == HostKind::V1 {
        n - 1
    } else {
        n
    }
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep")
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn place_list_kill_remove_nested() {
    let mut guard = Cleanup::default();
    let top = unique("nested");
    let path = format!("/{top}/mid/leaf");
    let child = sleeper();
    let pid = child.id() as i32;
    guard.children.push(child);

    let cg = Cgroup::create(Some(&path), "unused-id").expect("create");
    guard.cgroups.push(cg.clone());
    let n = dirs_expected();
    assert_eq!(cg.dirs.len(), n, "one leaf per hierarchy: {:?}", cg.dirs);
    assert_eq!(
        cg.created.len(),
        3 * n,
        "top, mid and leaf in each: {:?}",
        cg.created
    );
    assert_eq!(cg.unified.is_some(), host_kind() != HostKind::V1);
    for d in &cg.dirs {
        assert!(
            d.ends_with(path.trim_start_matches('/')) && d.is_dir(),
            "{}",
            d.display()
        );
    }
    for w in cg.created.chunks(3) {
        assert!(
            w[0].ends_with(&top) && w[1].ends_with("mid") && w[2].ends_with("leaf"),
            "parents first: {w:?}"
        );
    }

    // v2: the levels capsa made pass on every controller the root enables.
    if let Some(leaf) = &cg.unified {
        let words = |p: &Path| {
            let mut v: Vec<String> = std::fs::read_to_string(p)
                .expect("read controllers")
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            v.sort();
            v
        };
        let mount = leaf.ancestors().nth(3).expect("mount");
        let root_enabled = words(&mount.join("cgroup.subtree_control"));
        assert_eq!(words(&leaf.join("cgroup.controllers")), root_enabled);
        if host_kind() == HostKind::V2 {
            assert!(
                root_enabled.iter().any(|c| c == "memory"),
                "VM lane enables memory: {root_enabled:?}"
            );
        }
    }

    // Before placement the child is elsewhere.
    assert_placed(pid, &path, false, false);
    cg.add_pid(pid, false).expect("add_pid");
    assert_placed(pid, &path, true, true);
    assert_eq!(cg.pids().expect("pids"), vec![pid]);

    cg.destroy().expect("destroy");
    let status = guard.children[0].wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    for d in &cg.created {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    // Everything gone already: still success.
    cg.destroy().expect("second destroy");
    assert_eq!(cg.pids().expect("pids after destroy"), Vec::<i32>::new());
}

#[test]
fn default_path_is_id_at_the_root() {
    let mut guard = Cleanup::default();
    let id = unique("default");
    let cg = Cgroup::create(None, &id).expect("create");
    guard.cgroups.push(cg.clone());
    assert_eq!(cg.dirs.len(), dirs_expected());
    for d in &cg.dirs {
        assert!(d.is_dir());
        let mount = d.parent().expect("parent");
        assert!(
            mount.join("cgroup.procs").exists() && mount.starts_with("/sys/fs/cgroup"),
            "{} not at a root",
            d.display()
        );
    }
    assert_eq!(cg.created, cg.dirs);
    cg.destroy().expect("destroy");
    assert!(cg.dirs.iter().all(|d| !d.exists()));
}

#[test]
fn several_processes_all_killed() {
    let mut guard = Cleanup::default();
    let path = format!("/{}", unique("multi"));
    let cg = Cgroup::create(Some(&path), "x").expect("create");
    guard.cgroups.push(cg.clone());
    // The shell forks only after it is placed (it waits for a line).
    let mut child = Command::new("sh")
        .args(["-c", "read go; sleep 30 & sleep 30 & wait"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take().expect("stdin");
    guard.children.push(child);
    cg.add_pid(pid, false).expect("add_pid");
    std::io::Write::write_all(&mut stdin, b"go\n").expect("release sh");
    // The shell's children are born inside.
    wait_until("three processes", || {
        cg.pids().map(|p| p.len() == 3).unwrap_or(false)
    });
    let pids = cg.pids().expect("pids");
    for p in &pids {
        assert_placed(*p, &path, true, true);
    }
    cg.destroy().expect("destroy");
    for p in pids {
        // Gone, or a zombie waiting for its parent (or init) to reap it.
        let state = capsa::__private::proc_start_time(p).map(|(_, s)| s);
        assert!(matches!(state, None | Some('Z')), "{p} survived: {state:?}");
    }
    assert!(cg.created.iter().all(|d| !d.exists()));
}

#[test]
fn pidfd_kill_path_without_unified() {
    // The same cgroup seen without its unified leaf: destroy must kill
    // through the per-pid path that v1 hosts (and kernels without
    // cgroup.kill) use.
    if host_kind() == HostKind::V2 {
        skip::skip("a pure cgroup v2 host has no v1 leaves");
        return;
    }
    let mut guard = Cleanup::default();
    let path = format!("/{}", unique("pidfd"));
    let cg = Cgroup::create(Some(&path), "x").expect("create");
    guard.cgroups.push(cg.clone());
    let child = sleeper();
    let pid = child.id() as i32;
    guard.children.push(child);
    cg.add_pid(pid, false).expect("add_pid");
    let v1_only = Cgroup {
        dirs: cg
            .dirs
            .iter()
            .filter(|d| Some(*d) != cg.unified.as_ref())
            .cloned()
            .collect(),
        created: Vec::new(),
        unified: None,
        pidns: None,
        systemd: None,
    };
    assert_eq!(v1_only.pids().expect("pids"), vec![pid]);
    v1_only.destroy().expect("destroy v1 view");
    let status = guard.children[0].wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    // The freezer (used to stop forks during the kill) is thawed again.
    for d in &cg.dirs {
        if let Ok(state) = std::fs::read_to_string(d.join("freezer.state")) {
            assert_eq!(state.trim(), "THAWED", "{}", d.display());
        }
    }
    // Nothing created by that view, so nothing removed.
    assert!(cg.dirs.iter().all(|d| d.is_dir()));
    cg.destroy().expect("destroy");
    assert!(cg.created.iter().all(|d| !d.exists()));
}

#[test]
fn reuse_and_shared_parent_are_not_removed() {
    let mut guard = Cleanup::default();
    let top = unique("shared");
    let a = Cgroup::create(Some(&format!("/{top}/a")), "x").expect("create a");
    guard.cgroups.push(a.clone());
    // Same leaf again (runc allows it): nothing new is created.
    let again = Cgroup::create(Some(&format!("{top}/a")), "x").expect("create a again");
    assert_eq!(again.dirs, a.dirs);
    assert!(again.created.is_empty());
    again.destroy().expect("destroy reused");
    assert!(
        a.dirs.iter().all(|d| d.is_dir()),
        "reused leaf must survive"
    );

    // A sibling under a's parent; a created the parent, c did not.
    let c = Cgroup::create(Some(&format!("/{top}/c")), "x").expect("create c");
    guard.cgroups.push(c.clone());
    assert_eq!(c.created, c.dirs);
    a.destroy().expect("destroy a");
    assert!(a.dirs.iter().all(|d| !d.exists()));
    let tops: Vec<_> = c
        .dirs
        .iter()
        .map(|d| d.parent().expect("parent").to_owned())
        .collect();
    assert!(
        tops.iter().all(|t| t.is_dir()),
        "parent holding c must stay"
    );
    c.destroy().expect("destroy c");
    assert!(c.dirs.iter().all(|d| !d.exists()));
    // c did not create the parent, so it stays: the test made it, it cleans it.
    for t in tops {
        assert!(t.is_dir());
        std::fs::remove_dir(&t).expect("rmdir test parent");
    }
}

/// A fork-like clone3(2) (no CLONE_VM) born in the cgroup v2 directory
/// `fd` (CLONE_INTO_CGROUP). The child may only make async-signal-safe
/// calls (the harness is multi-threaded).
fn clone_into_cgroup(fd: std::os::fd::RawFd) -> std::io::Result<libc::pid_t> {
    /// struct clone_args (linux/sched.h), up to `cgroup`.
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: fd as u64,
        ..Default::default()
    };
    // SAFETY: a valid, fully initialised clone_args of the size passed;
    // without CLONE_VM the child runs on a copy of our stack, like fork.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ret as libc::pid_t)
}

#[test]
fn clone_into_cgroup_places_child_at_birth() {
    let kind = host_kind();
    let mut guard = Cleanup::default();
    let path = format!("/{}", unique("clone3"));
    let cg = Cgroup::create(Some(&path), "x").expect("create");
    guard.cgroups.push(cg.clone());
    let Some(fd) = cg.clone_into_fd() else {
        assert_eq!(kind, HostKind::V1, "unified leaf exists but no fd");
        return;
    };
    assert_ne!(kind, HostKind::V1);
    let pid = clone_into_cgroup(fd.as_raw_fd()).expect("clone3 CLONE_INTO_CGROUP");
    if pid == 0 {
        // Child: wait for the SIGKILL of destroy; never return into the harness.
        loop {
            nix::unistd::pause();
        }
    }
    guard.pids.push(pid);
    // Born in the unified leaf, and (hybrid) nowhere else yet.
    assert_placed(pid, &path, true, false);
    cg.add_pid(pid, true).expect("add_pid in_unified");
    assert_placed(pid, &path, true, true);
    assert_eq!(cg.pids().expect("pids"), vec![pid]);
    cg.destroy().expect("destroy");
    let st = waitpid(Pid::from_raw(pid), None).expect("waitpid");
    guard.pids.clear();
    assert_eq!(
        st,
        WaitStatus::Signaled(Pid::from_raw(pid), Signal::SIGKILL, false)
    );
    assert!(cg.created.iter().all(|d| !d.exists()));
}

#[test]
fn host_cgroups_untouched_on_bad_path() {
    // Rejected before any mkdir: nothing named like this may appear.
    let name = unique("bad");
    let err = Cgroup::create(Some(&format!("/{name}/../x")), "x").expect_err("must reject ..");
    assert!(err.to_string().starts_with("linux.cgroupsPath:"), "{err}");
    assert!(!Path::new("/sys/fs/cgroup").join(&name).exists());
    assert!(!Path::new("/sys/fs/cgroup/memory").join(&name).exists());
}

#[test]
fn populated_leaf_or_parent_is_refused() {
    // Another container's cgroup (here: a process of the test's) is never
    // shared: not the same leaf, not a path above it, not one inside it.
    let mut guard = Cleanup::default();
    let top = unique("populated");
    let a = Cgroup::create(Some(&format!("/{top}/a")), "x").expect("create a");
    guard.cgroups.push(a.clone());
    let child = sleeper();
    let pid = child.id() as i32;
    guard.children.push(child);
    a.add_pid(pid, false).expect("add_pid");
    for (path, want) in [
        (format!("/{top}/a"), "is not empty"),
        (format!("/{top}"), "is not empty"),
        (format!("/{top}/a/b"), "holds 1 process"),
    ] {
        let err = Cgroup::create(Some(&path), "x").expect_err(&path);
        assert!(err.to_string().contains(want), "{path}: {err}");
    }
    assert!(
        a.dirs.iter().all(|d| !d.join("b").exists()),
        "a refused create left a directory inside a"
    );
    assert_eq!(a.pids().expect("pids"), vec![pid]);
    assert_placed(pid, &format!("/{top}/a"), true, true);
}

#[test]
fn frozen_leaf_is_refused() {
    // runc: "container's cgroup unexpectedly frozen". A new init placed
    // there would never run.
    let mut guard = Cleanup::default();
    let path = format!("/{}", unique("frozen"));
    let cg = Cgroup::create(Some(&path), "x").expect("create");
    guard.cgroups.push(cg.clone());
    capsa::__private::freezer::freeze(&cg).expect("freeze");
    let err = Cgroup::create(Some(&path), "x").expect_err("frozen leaf reused");
    assert!(err.to_string().contains("unexpectedly frozen"), "{err}");
    capsa::__private::freezer::thaw(&cg).expect("thaw");
    Cgroup::create(Some(&path), "x").expect("thawed leaf is reusable");
}
