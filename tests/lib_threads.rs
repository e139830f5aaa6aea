//! capsa as a library in a multi-threaded program (issue 14): threads that
//! allocate and free without pause while others create, start, exec into and
//! delete 300 containers through `capsa::Runtime`. Nothing may hang (a stall
//! fails the test, it never hangs it) and nothing may be left: state dirs,
//! cgroups, mounts, processes (our children included: the inits and exec'd
//! processes are ours, and we reap them), descriptors.
//!
//! Why it can hang without process/helper.rs: create and exec clone the
//! calling process and run allocating Rust in the child. All threads here
//! share one malloc arena (mallopt(M_ARENA_MAX, 1), as an engine with more
//! threads than glibc's 8-per-core arena limit shares them), so a clone made
//! while an allocator thread holds the arena lock yields a child whose first
//! malloc waits for ever.
//!
//! Its own harness (`harness = false`): `main` must call
//! `capsa::process::trampoline::run_if_asked()` first, as every program that
//! embeds capsa must (the helper and the trampoline are this executable).

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use capsa::{CreateOptions, ExecOptions, Runtime};
use serde_json::json;

const CONTAINERS: usize = 300;
const WORKERS: usize = 4;
const ALLOCATORS: usize = 8;
/// No container finished for this long: something hangs.
const STALL: Duration = Duration::from_secs(40);

fn main() -> ExitCode {
    capsa::run_if_asked();
    println!("\nrunning 1 test");
    if std::env::args().any(|a| a == "--list") {
        println!("threaded_create_exec_delete: test");
        return ExitCode::SUCCESS;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filters.is_empty()
        && !filters
            .iter()
            .any(|f| "threaded_create_exec_delete".contains(f.as_str()))
    {
        println!("\ntest result: ok. 0 passed; 0 failed; 0 filtered");
        return ExitCode::SUCCESS;
    }
    let t0 = Instant::now();
    common::set_current_test(Some("threaded_create_exec_delete"));
    let ok = threaded_create_exec_delete();
    println!(
        "test threaded_create_exec_delete ... {}\n\ntest result: {}. {} passed; {} failed; finished in {:.1?}",
        if ok { "ok" } else { "FAILED" },
        if ok { "ok" } else { "FAILED" },
        ok as u8,
        !ok as u8,
        t0.elapsed()
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A container id traceable to this test (and its cgroup, named after it).
fn id_for(n: usize) -> String {
    format!("capsa-test-libthr-{}-{n}", std::process::id())
}

fn threaded_create_exec_delete() -> bool {
    if !nix::unistd::geteuid().is_root() {
        common::skip("creates real containers: needs root");
        return true;
    }
    // One arena for every thread: see the module comment.
    // SAFETY: mallopt with integer arguments, before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let ctx = common::Ctx::new("libthr");
    let mut config = common::default_config();
    config["process"]["args"] = json!(["sleep", "60"]);
    // No cgroupsPath: each container's cgroup is named after its id.
    config["linux"]
        .as_object_mut()
        .expect("linux")
        .remove("cgroupsPath");
    std::fs::write(
        ctx.bundle().join("config.json"),
        serde_json::to_vec_pretty(&config).expect("json"),
    )
    .expect("write config.json");
    let rt = Runtime::new(ctx.root());
    let fds_before = open_fds();

    let stop = Arc::new(AtomicBool::new(false));
    let allocs = Arc::new(AtomicUsize::new(0));
    let allocators: Vec<_> = (0..ALLOCATORS)
        .map(|seed| {
            let (stop, allocs) = (stop.clone(), allocs.clone());
            std::thread::spawn(move || churn(seed, &stop, &allocs))
        })
        .collect();

    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let busy = Arc::new(Mutex::new(vec![None::<(usize, &'static str)>; WORKERS]));
    let (tx, rx) = mpsc::channel::<()>();
    let bundle = ctx.bundle();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (rt, next, errors, busy, tx, bundle) = (
                rt.clone(),
                next.clone(),
                errors.clone(),
                busy.clone(),
                tx.clone(),
                bundle.clone(),
            );
            std::thread::spawn(move || {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= CONTAINERS {
                        break;
                    }
                    let step = |s| {
                        if let Ok(mut b) = busy.lock() {
                            b[w] = Some((n, s));
                        }
                    };
                    let res = cycle(&rt, &bundle, &id_for(n), step);
                    if let (Err(e), Ok(mut v)) = (res, errors.lock()) {
                        v.push(format!("{}: {e}", id_for(n)));
                    }
                    let _ = tx.send(());
                }
                if let Ok(mut b) = busy.lock() {
                    b[w] = None;
                }
            })
        })
        .collect();
    drop(tx);

    let mut done = 0;
    while done < CONTAINERS {
        match rx.recv_timeout(STALL) {
            Ok(()) => done += 1,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let b = busy.lock().map(|b| b.clone()).unwrap_or_default();
                println!(
                    "STALLED: {done} of {CONTAINERS} containers done, none for {STALL:?} \
                     ({} allocations meanwhile); workers at (container, step): {b:?}",
                    allocs.load(Ordering::Relaxed)
                );
                // What our children (clones of this process) wait in.
                for pid in our_children() {
                    let read = |f: &str| {
                        std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default()
                    };
                    let stat = read("stat");
                    let state = stat.rsplit_once(')').map_or("", |(_, r)| r.trim());
                    println!(
                        "  child {pid}: state {}, wchan {}, syscall {}",
                        state.split(' ').next().unwrap_or("?"),
                        read("wchan"),
                        read("syscall").split(' ').next().unwrap_or("?")
                    );
                }
                // No new containers, no more allocation; then kill our
                // children until every worker is done: a worker whose clone
                // died goes on to make its next one, which (before its
                // parent-death signal is set) would outlive us.
                next.store(CONTAINERS, Ordering::SeqCst);
                stop.store(true, Ordering::SeqCst);
                let until = Instant::now() + Duration::from_secs(20);
                while !workers.iter().all(|w| w.is_finished()) && Instant::now() < until {
                    kill_our_children();
                    std::thread::sleep(Duration::from_millis(200));
                }
                kill_our_children();
                for n in 0..CONTAINERS {
                    // Not ctx.rt: a stuck worker may reap its child.
                    let _ = std::process::Command::new(common::runtime())
                        .arg("--root")
                        .arg(ctx.root())
                        .args(["delete", "--force", &id_for(n)])
                        .status();
                    remove_cgroups(&id_for(n));
                }
                return false;
            }
        }
    }
    for w in workers {
        let _ = w.join();
    }
    stop.store(true, Ordering::SeqCst);
    for a in allocators {
        let _ = a.join();
    }
    println!(
        "{done} containers created, started, exec'd into and deleted while {ALLOCATORS} threads \
         made {} allocations",
        allocs.load(Ordering::Relaxed)
    );

    let mut problems = errors.lock().map(|v| v.clone()).unwrap_or_default();
    problems.extend(errors_cross(&rt, &ctx.bundle(), &ctx.scratch("no-bundle")));
    let ids: Vec<String> = (0..=CONTAINERS).map(id_for).collect();
    if let Ok(rd) = std::fs::read_dir(ctx.root()) {
        for e in rd.flatten() {
            problems.push(format!("state dir left: {}", e.path().display()));
        }
    }
    for id in &ids {
        for d in cgroup_dirs(id) {
            problems.push(format!("cgroup left: {}", d.display()));
        }
    }
    for pid in common::procs_rooted_at(&ctx.rootfs()) {
        problems.push(format!("container process left: {pid}"));
    }
    for pid in our_children() {
        problems.push(format!("child of ours left (unreaped or running): {pid}"));
    }
    if common::mounted_below(ctx.tmp.path()) {
        problems.push(format!("mounts left below {}", ctx.tmp.path().display()));
    }
    let fds_after = open_fds();
    if fds_after.len() > fds_before.len() {
        problems.push(format!(
            "descriptors leaked into the caller: before {fds_before:?}, after {fds_after:?}"
        ));
    }
    for p in &problems {
        println!("{p}");
    }
    problems.is_empty()
}

/// Errors from the helper are the library's own: the variant an engine
/// matches, runc's text, and nothing left behind.
fn errors_cross(rt: &Runtime, bundle: &Path, missing: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let id = id_for(CONTAINERS);
    let opts = |b: &Path| CreateOptions::with_bundle(b);
    if let Err(e) = rt.create(&id, &opts(bundle)) {
        return vec![format!("create {id}: {e}")];
    }
    let pid = init_pid(rt, &id).unwrap_or(0);
    match rt.create(&id, &opts(bundle)) {
        Err(capsa::Error::AlreadyExists { .. }) => {}
        other => bad.push(format!("create of an existing id: {other:?}")),
    }
    if let Err(e) = rt.delete(&id, true) {
        bad.push(format!("delete {id}: {e}"));
    }
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    match rt.create(&id, &opts(missing)) {
        Err(e) if e.to_string().contains(&*missing.to_string_lossy()) => {}
        other => bad.push(format!("create from a missing bundle: {other:?}")),
    }
    match rt.exec(&id, &ExecOptions::default()) {
        Err(capsa::Error::NotFound { .. }) => {}
        other => bad.push(format!("exec into no container: {other:?}")),
    }
    bad
}

/// create, start, exec `true` (foreground: its status), delete, reap the init.
fn cycle(rt: &Runtime, bundle: &Path, id: &str, step: impl Fn(&'static str)) -> Result<(), String> {
    step("create");
    let opts = CreateOptions::with_bundle(bundle);
    rt.create(id, &opts).map_err(|e| format!("create: {e}"))?;
    let pid = init_pid(rt, id)?;
    let res = (|| {
        step("start");
        rt.start(id).map_err(|e| format!("start: {e}"))?;
        step("exec");
        let exec = ExecOptions::args(["true"]);
        match rt.exec(id, &exec) {
            Ok(0) => Ok(()),
            Ok(c) => Err(format!("exec: exit status {c}")),
            Err(e) => Err(format!("exec: {e}")),
        }
    })();
    step("delete");
    let del = rt.delete(id, true).map_err(|e| format!("delete: {e}"));
    // The init is our child (the library's, with or without its helper).
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    res.and(del)
}

fn init_pid(rt: &Runtime, id: &str) -> Result<i32, String> {
    let s = rt.state(id).map_err(|e| format!("state: {e}"))?;
    Ok(s.pid)
}

/// Allocate and free blocks past the tcache (which takes no lock), so that
/// the arena lock is taken all the time.
fn churn(seed: usize, stop: &AtomicBool, count: &AtomicUsize) {
    let mut x = seed as u64 * 2654435761 + 1;
    let mut keep: Vec<Vec<u8>> = Vec::with_capacity(64);
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..256 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let size = 2048 + (x % 60_000) as usize;
            let mut v = Vec::with_capacity(size);
            v.push(x as u8);
            if keep.len() < 64 {
                keep.push(v);
            } else {
                keep[(x % 64) as usize] = v;
            }
        }
        count.fetch_add(256, Ordering::Relaxed);
    }
}

/// The cgroup directories named after `id` (the default path, no cgroupsPath).
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![base.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(base) {
        dirs.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    dirs.into_iter()
        .map(|h| h.join(id))
        .filter(|p| p.is_dir())
        .collect()
}

fn remove_cgroups(id: &str) {
    for d in cgroup_dirs(id) {
        // rmdir only: an empty cgroup, nothing else.
        let _ = std::fs::remove_dir(d);
    }
}

/// Pids whose parent is this process.
fn our_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_owned));
        if ppid.as_deref() == Some(me.as_str()) {
            out.push(pid);
        }
    }
    out
}

/// After a stall: our children are stuck clones (or inits); kill and reap them.
fn kill_our_children() {
    for pid in our_children() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    }
}

fn open_fds() -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
