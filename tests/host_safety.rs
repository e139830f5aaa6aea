//! Never harm the host: a host process in a cgroup of its own, beside the
//! containers' cgroups (all under a parent cgroup this test makes, unique to
//! it), and container configs that try to reach it: `unified` keys of the
//! cgroup core, a cgroupsPath equal to, above or below its cgroup, an id
//! that names its parent, and a process moved into a container's cgroup by
//! someone else. The host process must survive every create, `kill --all`
//! and `delete --force`, and stay where it was. Runs on v1, hybrid and (VM
//! lane) v2 hosts.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The root of every mounted cgroup hierarchy (each directory with a
/// cgroup.procs: /sys/fs/cgroup on pure v2, /sys/fs/cgroup/* otherwise),
/// each once.
fn hierarchy_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.procs").exists() {
        return vec![base.to_path_buf()];
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    for e in fs::read_dir(base).expect("read /sys/fs/cgroup").flatten() {
        let p = e.path();
        if !p.join("cgroup.procs").exists() {
            continue;
        }
        let real = fs::canonicalize(&p).unwrap_or(p);
        if !roots.contains(&real) {
            roots.push(real);
        }
    }
    roots
}

/// A process the test started, standing for the host's, in
/// `<root>/<parent>/host` of every hierarchy. Drop kills it (by its own
/// handle) and rmdirs everything below `<parent>`.
struct HostProcess {
    parent: String,
    roots: Vec<PathBuf>,
    child: Child,
}

impl HostProcess {
    fn new(tag: &str) -> HostProcess {
        let parent = format!("capsa-test-harm-{}", unique_id(tag));
        let roots = hierarchy_roots();
        let child = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let hp = HostProcess {
            parent,
            roots,
            child,
        };
        for root in &hp.roots {
            let top = root.join(&hp.parent);
            for dir in [top.clone(), top.join("host")] {
                fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                // A new v1 cpuset takes no task before it has cpus and mems.
                if root.join("cgroup.controllers").exists() {
                    continue;
                }
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    if let Ok(v) = fs::read(dir.parent().expect("parent").join(f)) {
                        fs::write(dir.join(f), v).expect("copy cpuset");
                    }
                }
            }
        }
        hp.place_in("host");
        hp
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The cgroupsPath of `rel` below the test parent.
    fn path(&self, rel: &str) -> String {
        if rel.is_empty() {
            format!("/{}", self.parent)
        } else {
            format!("/{}/{rel}", self.parent)
        }
    }

    /// Move the process into `<parent>/<rel>` in every hierarchy.
    fn place_in(&self, rel: &str) {
        for root in &self.roots {
            let procs = root.join(&self.parent).join(rel).join("cgroup.procs");
            fs::write(&procs, self.pid().to_string())
                .unwrap_or_else(|e| panic!("write {}: {e}", procs.display()));
        }
    }

    /// Alive, not a zombie, and still in `<parent>/<rel>` everywhere.
    #[track_caller]
    fn assert_unharmed_in(&mut self, rel: &str, after: &str) {
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "host process {} was killed by {after}",
            self.pid()
        );
        let pid = self.pid().to_string();
        for root in &self.roots {
            let procs = root.join(&self.parent).join(rel).join("cgroup.procs");
            let text = fs::read_to_string(&procs).unwrap_or_default();
            assert!(
                text.lines().any(|l| l == pid),
                "host process {pid} was moved out of {} by {after}",
                procs.display()
            );
        }
    }

    #[track_caller]
    fn assert_unharmed(&mut self, after: &str) {
        self.assert_unharmed_in("host", after);
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for root in &self.roots {
            // rmdir only, deepest first: it removes empty cgroups below the
            // test's own parent and can touch nothing else.
            let mut dirs = vec![root.join(&self.parent)];
            let mut i = 0;
            while i < dirs.len() {
                if let Ok(rd) = fs::read_dir(&dirs[i]) {
                    let subs: Vec<PathBuf> = rd
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect();
                    dirs.extend(subs);
                }
                i += 1;
            }
            for d in dirs.iter().rev() {
                let _ = fs::remove_dir(d);
            }
        }
    }
}

/// Try container `id` with the current config: create, start, `kill --all`,
/// `delete --force`, whatever create said. Returns create's output.
fn attempt(c: &Ctx, id: &str) -> Output {
    c.write_config();
    let o = c.create_id(id, &[]);
    if o.success() {
        let _ = c.rt(&["start", id]);
    }
    let _ = c.rt(&["kill", "--all", id, "KILL"]);
    let _ = c.rt(&["delete", "--force", id]);
    o
}

#[test]
fn unified_core_files_cannot_reach_a_host_process() {
    let mut host = HostProcess::new("unified");
    let mut c = Ctx::new("harmunified");
    c.args(&["sleep", "1000"]);
    let pid = host.pid().to_string();
    for key in ["cgroup.procs", "cgroup.threads"] {
        let id = c.new_id("harmunified");
        c.config["linux"]["cgroupsPath"] = json!(host.path(&id));
        c.config["linux"]["resources"]["unified"] = json!({ key: pid });
        let o = attempt(&c, &id);
        host.assert_unharmed(&format!("a container with unified.{key}"));
        assert!(!o.success(), "create with unified {key} succeeded");
        if is_capsa()
            && host
                .roots
                .iter()
                .any(|r| r.join("cgroup.controllers").exists())
        {
            o.fails_with("cgroup core");
        }
        c.assert_nothing_left(&id);
    }
}

/// `update` takes the same `unified` map and must refuse it alike.
#[test]
fn update_with_unified_core_files_cannot_reach_a_host_process() {
    let mut host = HostProcess::new("update");
    let mut c = Ctx::new("harmupdate");
    c.args(&["sleep", "1000"]);
    c.config["linux"]["cgroupsPath"] = json!(host.path("ctr"));
    c.create();
    c.rt(&["start", &c.id]).ok();
    let res = c.scratch("resources.json");
    let pid = host.pid().to_string();
    fs::write(&res, json!({"unified": {"cgroup.procs": pid}}).to_string()).expect("write");
    let o = c.rt(&["update", "--resources", res.to_str().expect("utf-8"), &c.id]);
    let _ = c.rt(&["kill", "--all", &c.id, "KILL"]);
    let _ = c.rt(&["delete", "--force", &c.id]);
    host.assert_unharmed("update with unified.cgroup.procs");
    assert!(
        !o.success(),
        "update with unified cgroup.procs succeeded: {o}"
    );
}

#[test]
fn cgroups_path_at_above_or_below_a_host_cgroup_is_refused() {
    let mut host = HostProcess::new("paths");
    let mut c = Ctx::new("harmpath");
    c.args(&["sleep", "1000"]);
    for (rel, needle) in [
        ("host", "not empty"),
        ("", "not empty"),
        ("host/inner", "holds"),
    ] {
        let id = c.new_id("harmpath");
        c.config["linux"]["cgroupsPath"] = json!(host.path(rel));
        let o = attempt(&c, &id);
        host.assert_unharmed(&format!("a container with cgroupsPath {}", host.path(rel)));
        if is_capsa() {
            o.fails_with(needle);
        }
    }
}

#[test]
fn id_naming_a_host_cgroup_is_refused() {
    if skip_unless_capsa("capsa's default cgroup is /<id> at each hierarchy's root") {
        return;
    }
    let mut host = HostProcess::new("id");
    let mut c = Ctx::new("harmid");
    c.args(&["sleep", "1000"]);
    // No cgroupsPath: the default, /<id>, is the host process's parent.
    c.config["linux"]
        .as_object_mut()
        .expect("linux")
        .remove("cgroupsPath");
    let id = host.parent.clone();
    c.track(&id);
    let o = attempt(&c, &id);
    host.assert_unharmed(&format!("a container with id {id}"));
    o.fails_with("not empty");
    assert!(
        host.roots.iter().all(|r| r.join(&id).join("host").is_dir()),
        "the host cgroup was removed"
    );
}

#[test]
fn second_container_in_the_same_cgroup_is_refused() {
    let host = HostProcess::new("shared");
    let mut c = Ctx::new("harmshared");
    c.args(&["sleep", "1000"]);
    c.config["linux"]["cgroupsPath"] = json!(host.path("shared"));
    c.create();
    c.rt(&["start", &c.id]).ok();
    let first = c.state(&c.id)["pid"].as_i64().expect("pid");
    let other = c.new_id("harmshared");
    let o = attempt(&c, &other);
    assert!(
        !o.success(),
        "second create into a populated cgroup succeeded"
    );
    if is_capsa() {
        o.fails_with("not empty");
    }
    assert_eq!(
        c.status(&c.id),
        "running",
        "the first container (init {first}) was harmed by the second"
    );
    c.rt(&["delete", "--force", &c.id]).ok();
}

/// A process someone else moved into a container's cgroup (a container
/// with a pid namespace of its own) is not the container's: neither
/// `kill --all` nor `delete --force` signals it, running or stopped.
#[test]
fn foreign_process_in_a_containers_cgroup_survives() {
    if skip_unless_capsa("runc signals every process in the cgroup") {
        return;
    }
    let mut host = HostProcess::new("foreign");
    for workload in ["sleep 1000", "true"] {
        let mut c = Ctx::new("harmforeign");
        c.sh(workload);
        let rel = c.id.clone();
        c.config["linux"]["cgroupsPath"] = json!(host.path(&rel));
        c.create();
        c.rt(&["start", &c.id]).ok();
        if workload == "true" {
            c.wait_status(&c.id, "stopped", Duration::from_secs(10));
        }
        host.place_in(&rel);
        c.rt(&["kill", "--all", &c.id, "KILL"]).ok();
        host.assert_unharmed_in(&rel, &format!("kill --all ({workload})"));
        c.rt(&["delete", "--force", &c.id]).ok();
        host.assert_unharmed_in(&rel, &format!("delete --force ({workload})"));
        host.place_in("host");
        host.assert_unharmed("moving back");
    }
}
