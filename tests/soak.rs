//! Soak (issue 11): `CAPSA_SOAK_CYCLES` (default 1,000) create/start/kill/delete cycles
//! of one reused id, then 3/10 as many foreground `run`s, with what capsa could leak
//! counted before and after: cgroup directories below the soak's own cgroup parent,
//! mounts below the test's directory (and the host's mount count, printed), processes
//! (rooted in the bundle, in the soak's cgroups, or children of this test), this
//! process's fds, state dirs, and MemAvailable. Nothing may grow.
//!
//! Speed: the optimised binary when it is at least as new as the sources (scripts/test.sh
//! builds it first), else the debug one; `CAPSA_TEST_RUNTIME` wins over both.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// The binary to soak: see the module text.
fn soak_binary() -> PathBuf {
    if std::env::var_os("CAPSA_TEST_RUNTIME").is_some_and(|v| !v.is_empty()) {
        return runtime();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let release = repo.join("target/x86_64-unknown-linux-gnu/release/capsa");
    let built = std::fs::metadata(&release).and_then(|m| m.modified());
    match (built, newest_source(repo)) {
        (Ok(b), Some(src)) if b >= src => release,
        _ => runtime(),
    }
}

/// The newest modification time below src/ (and of Cargo.lock).
fn newest_source(repo: &Path) -> Option<SystemTime> {
    let mut newest = std::fs::metadata(repo.join("Cargo.lock"))
        .ok()?
        .modified()
        .ok()?;
    let mut todo = vec![repo.join("src")];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).ok()?.flatten() {
            let m = e.metadata().ok()?;
            if m.is_dir() {
                todo.push(e.path());
            } else if let Ok(t) = m.modified() {
                newest = newest.max(t);
            }
        }
    }
    Some(newest)
}

/// Every directory of the soak's cgroup parent `rel` in every hierarchy, itself included.
fn cgroup_dirs_below(rel: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    let mut roots = vec![base.to_path_buf()];
    roots.extend(
        std::fs::read_dir(base)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir()),
    );
    for r in roots {
        let mut todo = vec![r.join(rel)];
        while let Some(d) = todo.pop() {
            if !d.is_dir() {
                continue;
            }
            out.push(d.clone());
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(e.path());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Pids in cgroup.procs of `dirs`.
fn pids_in(dirs: &[PathBuf]) -> Vec<u32> {
    let mut pids: Vec<u32> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Children of this process (a leaked runtime or init would be one while it lives).
fn children_of_me() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let ppid = stat[close + 1..].split_ascii_whitespace().nth(1);
        if ppid == Some(me.as_str()) {
            out.push(pid);
        }
    }
    out
}

fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_ascii_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, PartialEq)]
struct Counts {
    cgroup_dirs: usize,
    mounts_below_test: usize,
    processes: usize,
    fds: usize,
    state_dirs: usize,
}

struct Snapshot {
    counts: Counts,
    host_mounts: usize,
    mem_available_kib: u64,
}

fn snapshot(ctx: &Ctx, cg_rel: &str) -> Snapshot {
    let dirs = cgroup_dirs_below(cg_rel);
    let mut procs = procs_rooted_at(&ctx.rootfs());
    procs.extend(pids_in(&dirs));
    procs.extend(children_of_me());
    procs.sort_unstable();
    procs.dedup();
    Snapshot {
        counts: Counts {
            cgroup_dirs: dirs.len(),
            mounts_below_test: mounts_below(ctx.tmp.path()).len(),
            processes: procs.len(),
            fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
            state_dirs: std::fs::read_dir(ctx.root()).map_or(0, |d| d.count()),
        },
        host_mounts: std::fs::read_to_string("/proc/self/mountinfo")
            .map_or(0, |t| t.lines().count()),
        mem_available_kib: mem_available_kib(),
    }
}

fn rt(bin: &Path, ctx: &Ctx, args: &[&str]) -> Output {
    let root = ctx.root();
    let mut full = vec!["--root", root.to_str().expect("utf-8")];
    full.extend_from_slice(args);
    run_cmd(bin, &full, &ctx.tmp.path().join("out"), TIMEOUT, |_| {})
}

#[test]
fn soak_create_start_kill_delete_and_run() {
    let cycles: usize = std::env::var("CAPSA_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runs = cycles * 3 / 10;
    let bin = soak_binary();
    // One parent for all: capsa makes (and removes) both levels each cycle.
    let cg_rel = format!("capsa-soak-{}", std::process::id());
    // Whatever the runtime leaves of it goes when the test ends (after ctx's clean-up).
    let _cg_cleanup = RmdirOnDrop(cg_rel.clone());
    let mut ctx = Ctx::new("soak");
    ctx.config["linux"]["cgroupsPath"] = serde_json::json!(format!("/{cg_rel}/c"));
    ctx.args(&["sleep", "1000"]);
    ctx.write_config();
    let b = ctx.bundle().to_string_lossy().into_owned();
    let out = ctx.tmp.path().join("out");

    let before = snapshot(&ctx, &cg_rel);
    let start = Instant::now();
    for i in 0..cycles {
        rt(&bin, &ctx, &["create", "--bundle", &b, &ctx.id]).ok();
        rt(&bin, &ctx, &["start", &ctx.id]).ok();
        rt(&bin, &ctx, &["kill", &ctx.id, "KILL"]).ok();
        rt(&bin, &ctx, &["delete", "--force", &ctx.id]).ok();
        if i % 100 == 99 {
            // The per-command output files would otherwise pile up.
            clear_dir(&out);
        }
    }
    let cycle_time = start.elapsed();
    ctx.args(&["true"]);
    ctx.write_config();
    let start = Instant::now();
    for i in 0..runs {
        let o = rt(&bin, &ctx, &["run", "--bundle", &b, &ctx.id]);
        o.ok();
        if i % 100 == 99 {
            clear_dir(&out);
        }
    }
    let run_time = start.elapsed();
    clear_dir(&out);
    // A killed process leaves its cgroup a moment after delete returned on v1.
    std::thread::sleep(Duration::from_millis(200));
    let after = snapshot(&ctx, &cg_rel);

    let mem_drop_kib = before
        .mem_available_kib
        .saturating_sub(after.mem_available_kib);
    eprintln!(
        "soak {}: {cycles} cycles in {:.1} s ({:.1} ms each), {runs} runs in {:.1} s; \
         before {:?} host mounts {} MemAvailable {} KiB; after {:?} host mounts {} \
         MemAvailable {} KiB",
        bin.display(),
        cycle_time.as_secs_f64(),
        cycle_time.as_secs_f64() * 1000.0 / cycles.max(1) as f64,
        run_time.as_secs_f64(),
        before.counts,
        before.host_mounts,
        before.mem_available_kib,
        after.counts,
        after.host_mounts,
        after.mem_available_kib,
    );
    assert_eq!(before.counts, after.counts, "something grew over the soak");
    assert_eq!(after.counts.cgroup_dirs, 0, "the soak's cgroups remain");
    // Other work on the host moves MemAvailable; a leak per cycle of even a
    // fraction of a container (a process, a tmpfs) would show well above this.
    assert!(
        mem_drop_kib < 512 * 1024,
        "MemAvailable fell by {mem_drop_kib} KiB over the soak"
    );
}

fn clear_dir(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let _ = std::fs::remove_file(e.path());
    }
}

/// rmdir (only: it removes nothing but empty cgroups) every directory of the soak's
/// cgroup parent, deepest first, when dropped.
struct RmdirOnDrop(String);

impl Drop for RmdirOnDrop {
    fn drop(&mut self) {
        let mut dirs = cgroup_dirs_below(&self.0);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}
