//! containerd 1.6's checkpoint/restore through ctr, with the runtime under
//! test as the runc shim's BinaryName (`ctr run --runc-binary`) and with
//! runc, side by side, on one private daemon (tests/engines/containerd.rs):
//! `ctr c checkpoint --task` (the shim pauses the task, dumps it with
//! --leave-running and resumes it), the container removed, then `ctr c
//! restore --live` (the shim's `restore`) from the checkpoint image. The
//! counter appends "RUN N" lines to a bind-mounted host file; RUN is random
//! per start of the shell, so a container started afresh shows a new RUN
//! and N from 1, and a restored one goes on from the N it had at the
//! checkpoint (below what it reached before it was killed).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{self, read_lossy};
use crate::engines::containerd::{Containerd, IMAGE};
use crate::engines::{self, s};

const COUNTER: &str =
    "r=$RANDOM$RANDOM; i=0; while true; do i=$((i+1)); echo $r $i >> /out/c; sleep 0.1; done";

/// The counter's lines (run, n).
fn lines(file: &Path) -> Vec<(String, u64)> {
    read_lossy(file)
        .lines()
        .filter_map(|l| {
            let (r, n) = l.split_once(' ')?;
            Some((r.to_owned(), n.trim().parse().ok()?))
        })
        .collect()
}

/// Wait until the counter file has more than `n` lines; its lines.
fn lines_above(file: &Path, n: usize) -> Result<Vec<(String, u64)>, String> {
    let start = Instant::now();
    loop {
        let v = lines(file);
        if v.len() > n {
            return Ok(v);
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("the counter stays at {} lines (<= {n})", v.len()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn must(c: &Containerd, what: &str, args: &[&str]) -> Result<(), String> {
    let o = c.ctr(args);
    if o.success() {
        Ok(())
    } else {
        Err(format!("{what}: {o}"))
    }
}

/// One runtime's case: checkpoint a running counter, remove the container,
/// restore it from the checkpoint image; it counts on from the checkpoint.
fn checkpoint_restore(c: &Containerd, tag: &str, rt: &str) -> Result<(), String> {
    let t0 = Instant::now();
    let mut steps: Vec<String> = Vec::new();
    let mut step = |what: &str| steps.push(format!("{what} {:.0?}", t0.elapsed()));
    let id = format!("count-{tag}");
    let reference = format!("capsa.test/ckpt-{tag}:1");
    let out = c.scratch.mkdir(&format!("out-{tag}"));
    let file = out.join("c");
    let root: PathBuf = c.scratch.mkdir(&format!("rt-root-{tag}"));
    let mount = format!("type=bind,src={},dst=/out,options=rbind:rw", s(&out));
    let cgroup = format!("{}/{id}", c.scratch.cgroup_parent);
    let fifo = s(&c.scratch.mkdir("fifo"));
    let root_s = s(&root);
    must(
        c,
        "ctr run -d",
        &[
            "run",
            "-d",
            "--runc-binary",
            rt,
            "--runc-root",
            &root_s,
            "--fifo-dir",
            &fifo,
            "--cgroup",
            &cgroup,
            "--mount",
            &mount,
            IMAGE,
            &id,
            "sh",
            "-c",
            COUNTER,
        ],
    )?;
    step("run");
    let v = lines_above(&file, 10)?;
    let (run, before) = v.last().cloned().unwrap_or_default();
    must(
        c,
        "ctr c checkpoint --task",
        &["containers", "checkpoint", "--task", &id, &reference],
    )?;
    step("checkpoint");
    // The checkpoint left the task running (the shim resumes it).
    let n = lines(&file).len();
    lines_above(&file, n + 3).map_err(|e| format!("after checkpoint: {e}"))?;
    must(c, "ctr t delete -f", &["tasks", "delete", "-f", &id])?;
    must(c, "ctr c rm", &["containers", "rm", &id])?;
    step("removed");
    let killed = lines(&file);
    let (_, last) = killed.last().cloned().unwrap_or_default();
    must(
        c,
        "ctr c restore --live",
        &["containers", "restore", "--live", &id, &reference],
    )?;
    step("restore");
    let after = lines_above(&file, killed.len() + 5)?;
    let new = &after[killed.len()..];
    if let Some((r, n)) = new.iter().find(|(r, _)| *r != run) {
        return Err(format!(
            "the restored container counts in a new run {r} from {n} (was {run}): started afresh, not restored"
        ));
    }
    let first = new[0].1;
    if first <= before || first > last + 1 {
        return Err(format!(
            "the restored counter starts at {first}: not where the checkpoint left it \
             (read {before} before the checkpoint, {last} when the container was killed)"
        ));
    }
    for w in new.windows(2) {
        if w[1].1 != w[0].1 + 1 {
            return Err(format!("the restored counter skips: {new:?}"));
        }
    }
    // The runtime given as BinaryName made the restored container.
    let o = c.scratch.run(
        Path::new(rt),
        &["--root", &s(&root.join("default")), "state", &id],
        |_| {},
    );
    if !o.success() {
        return Err(format!("{rt} does not know the restored container: {o}"));
    }
    must(c, "ctr t delete -f", &["tasks", "delete", "-f", &id])?;
    must(c, "ctr c rm", &["containers", "rm", &id])?;
    step("removed");
    eprintln!(
        "containerd/{tag}: {before} before the checkpoint, {last} at the kill, restored at {first} \
         (after {})",
        steps.join(", ")
    );
    Ok(())
}

/// After a failed case: what the engine and the runtime say, the
/// container's cgroup state; then the task is killed (the daemon's
/// tear-down must not wait on it).
fn diagnose(c: &Containerd, tag: &str, rt: &str) -> String {
    let id = format!("count-{tag}");
    let root = c.scratch.path(&format!("rt-root-{tag}/default"));
    let mut d = String::new();
    d.push_str(&format!("{}\n", c.ctr(&["tasks", "ls"])));
    let o = c
        .scratch
        .run(Path::new(rt), &["--root", &s(&root), "state", &id], |_| {});
    d.push_str(&format!("{o}\n"));
    let cg = format!("{}/{id}", c.scratch.cgroup_parent);
    for f in ["cgroup.freeze", "cgroup.events", "cgroup.procs"] {
        if let Some(p) = engines::host_cgroup_file(&cg, f, f) {
            d.push_str(&format!("{}: {}\n", p.display(), read_lossy(&p).trim()));
        }
    }
    let tail: Vec<String> = lines(&c.scratch.path(&format!("out-{tag}/c")))
        .iter()
        .rev()
        .take(5)
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    d.push_str(&format!("counter tail (newest first): {tail:?}\n"));
    d.push_str(&c.daemon.tail(20));
    if let Some(p) = engines::host_cgroup_file(&cg, "cgroup.freeze", "cgroup.freeze") {
        let _ = std::fs::write(p, "0");
    }
    let _ = c.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]);
    d
}

#[test]
fn containerd_checkpoint_and_restore_on_capsa_and_runc() {
    if !crate::need_criu() {
        return;
    }
    for prog in ["containerd", "ctr", "containerd-shim-runc-v2"] {
        if engines::which(prog).is_none() {
            common::skip(&format!(
                "`{prog}` is not installed (apt-get install containerd)"
            ));
            return;
        }
    }
    let t0 = Instant::now();
    let c = Containerd::launch("ckpt-containerd", &["default"], false)
        .unwrap_or_else(|e| panic!("containerd set-up: {e}"));
    eprintln!("containerd started in {:.0?}", t0.elapsed());
    let capsa = s(&engines::runtime_copy(&c.scratch));
    let mut table = Vec::new();
    for (tag, rt) in [("capsa", capsa.as_str()), ("runc", "/usr/sbin/runc")] {
        let res = checkpoint_restore(&c, tag, rt);
        if let Err(e) = &res {
            eprintln!("containerd/{tag}: FAILED: {e}\n{}", diagnose(&c, tag, rt));
        }
        table.push((tag, res));
    }
    let mut report = String::new();
    for (tag, res) in &table {
        let verdict = match res {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("FAILED: {e}"),
        };
        report.push_str(&format!(
            "  ctr c checkpoint --task + ctr c restore --live on {tag}: {verdict}\n"
        ));
    }
    eprintln!("{report}  ({:.0?} in all)", t0.elapsed());
    assert!(table.iter().all(|(_, r)| r.is_ok()), "\n{report}");
}
