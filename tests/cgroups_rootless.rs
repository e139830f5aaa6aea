//! Rootless on a pure cgroup v2 host (the VM lane): a delegated subtree (a cgroup the
//! user owns, as systemd's Delegate=yes gives a user session) is used as the parent of
//! the container's cgroup, and its limits land there; without one, runc's rules (no
//! cgroup, or an error naming what needed one).
//!   CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$PWD/scripts/vm-run.sh $PWD" \
//!     cargo test --test cgroups_rootless
//! The user is a bare uid (the VM's /etc is the host's, read-only): capsa needs no
//! passwd entry, and a single mapping of its own ids needs no newuidmap.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

const UID: u32 = 4242;
const GID: u32 = 4242;
const CG: &str = "/sys/fs/cgroup";

fn pure_v2() -> bool {
    Path::new(CG).join("cgroup.controllers").exists()
        && std::fs::read_to_string("/proc/self/cgroup").is_ok_and(|c| c.lines().count() == 1)
}

/// A delegated subtree `<CG>/capsa-rl-<tag>-<pid>` with memory and pids enabled for its
/// children, owned (with its delegatable files) by the test uid, and a `session` leaf
/// below it where the user's commands run. Removed on drop.
struct Delegated {
    dir: PathBuf,
}

impl Delegated {
    fn new(tag: &str) -> Delegated {
        let dir = Path::new(CG).join(format!("capsa-rl-{tag}-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("mkdir delegated cgroup");
        std::fs::write(dir.join("cgroup.subtree_control"), "+memory +pids")
            .expect("enable memory and pids");
        for f in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
        ] {
            chown(dir.join(f), Some(UID), Some(GID)).expect("chown");
        }
        std::fs::create_dir(dir.join("session")).expect("mkdir session");
        chown(dir.join("session"), Some(UID), Some(GID)).expect("chown session");
        chown(dir.join("session/cgroup.procs"), Some(UID), Some(GID)).expect("chown");
        Delegated { dir }
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // rmdir only, deepest first: removes empty cgroups, touches nothing else.
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A rootless test context for the bare uid: config, state root and XDG dir it owns.
fn ctx(tag: &str) -> Ctx {
    let mut c = Ctx::new(tag);
    for p in [c.tmp.path().to_path_buf(), c.bundle()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    for d in [c.root(), c.scratch("xdg")] {
        std::fs::create_dir_all(&d).expect("mkdir");
        chown(&d, Some(UID), Some(GID)).expect("chown");
    }
    make_rootless(&mut c.config, UID, GID);
    c
}

/// The runtime as the test uid, started from the cgroup `cgroup` (a root shell moves
/// itself there, then drops to the uid with setpriv).
fn rt_in(c: &Ctx, cgroup: Option<&Path>, args: &[&str]) -> Output {
    let root = c.root();
    let mut script = String::new();
    if let Some(cg) = cgroup {
        script.push_str(&format!("echo $$ > {}/cgroup.procs && ", cg.display()));
    }
    script.push_str(&format!(
        "exec setpriv --reuid {UID} --regid {GID} --clear-groups env XDG_RUNTIME_DIR={} \"$0\" --root {} \"$@\"",
        c.scratch("xdg").display(),
        root.display()
    ));
    let rt = runtime();
    let mut full = vec!["-c", script.as_str(), rt.to_str().expect("utf-8")];
    full.extend_from_slice(args);
    run_cmd(
        Path::new("/bin/sh"),
        &full,
        &c.tmp.path().join("out"),
        TIMEOUT,
        |_| {},
    )
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn delegated_subtree_holds_the_container_and_its_limits() {
    if !pure_v2() {
        skip("needs a pure cgroup v2 host (the VM lane)");
        return;
    }
    let deleg = Delegated::new("deleg");
    let session = deleg.dir.join("session");
    let mut c = ctx("rl-v2");
    c.args(&["sleep", "1000"]);
    c.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 32}});
    c.write_config();
    let b = c.bundle();
    let id = c.id.clone();
    rt_in(
        &c,
        Some(&session),
        &["create", "--bundle", b.to_str().unwrap(), &id],
    )
    .ok();
    // runc's rule: next to the caller's own cgroup, in the subtree it owns.
    let leaf = deleg.dir.join(&id);
    assert!(leaf.is_dir(), "no cgroup at {}", leaf.display());
    assert_eq!(read(&leaf.join("memory.max")), "67108864");
    assert_eq!(read(&leaf.join("pids.max")), "32");
    let st = c.state(&id);
    let pid = st["pid"].as_i64().expect("pid").to_string();
    assert!(read(&leaf.join("cgroup.procs")).lines().any(|l| l == pid));
    // Before start: exec joins the waiting init (its process lands in the container's
    // cgroup), and the created container pauses and resumes as runc's does.
    let o = rt_in(
        &c,
        Some(&session),
        &["exec", &id, "cat", "/proc/self/cgroup"],
    );
    let want = format!(
        "0::/{}/{id}",
        deleg.dir.file_name().unwrap().to_string_lossy()
    );
    assert_eq!(o.ok().stdout.trim(), want, "{o}");
    rt_in(&c, Some(&session), &["pause", &id]).ok();
    assert_eq!(c.status(&id), "paused");
    rt_in(&c, Some(&session), &["resume", &id]).ok();
    assert_eq!(c.status(&id), "created");
    rt_in(&c, Some(&session), &["start", &id]).ok();
    // With a cgroup, pause works for the user too.
    rt_in(&c, Some(&session), &["pause", &id]).ok();
    assert_eq!(c.status(&id), "paused");
    rt_in(&c, Some(&session), &["resume", &id]).ok();
    let o = rt_in(&c, Some(&session), &["ps", "--format", "json", &id]);
    assert!(o.ok().stdout.contains(&pid), "{o}");
    rt_in(&c, Some(&session), &["delete", "--force", &id]).ok();
    assert!(!leaf.exists(), "{} left behind", leaf.display());
    c.assert_nothing_left(&id);
}

#[test]
fn without_delegation_runcs_rules() {
    if !pure_v2() {
        skip("needs a pure cgroup v2 host (the VM lane)");
        return;
    }
    // The user runs where the test does: a cgroup it does not own.
    let mut c = ctx("rl-v2none");
    c.config["linux"]["resources"] = json!({"pids": {"limit": 32}});
    c.write_config();
    let b = c.bundle();
    let id = c.id.clone();
    let o = rt_in(&c, None, &["create", "--bundle", b.to_str().unwrap(), &id]);
    o.fails_with_any(&[
        "linux.resources.pids",
        "cannot set pids limit",
        "permission denied",
    ]);
    c.assert_nothing_left(&id);
    // No limits: runs without a cgroup of its own.
    c.config["linux"]["resources"] = json!({});
    c.args(&["true"]);
    c.write_config();
    rt_in(&c, None, &["run", "--bundle", b.to_str().unwrap(), &id]).ok();
    c.assert_nothing_left(&id);
}
