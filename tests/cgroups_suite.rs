//! What runc's integration tests (cgroups.bats, update.bats) expect of a
//! runtime on a pure cgroup v2 host (the VM lane); the v1/hybrid half is
//! tests/runc_suite_cgroups.rs.

mod common;
use common::*;

use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};

fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn read(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_owned()
}

/// A started `sleep` container and its cgroup directory.
fn started(c: &mut Ctx) -> PathBuf {
    c.args(&["sleep", "1000"]);
    c.create();
    c.rt(&["start", &c.id]).ok();
    let rel = c.config["linux"]["cgroupsPath"].as_str().expect("path")[1..].to_owned();
    Path::new("/sys/fs/cgroup").join(rel)
}

#[test]
fn update_cpu_idle_flag_v2() {
    if !v2() {
        skip("not a pure cgroup v2 host (v1: tests/runc_suite_cgroups.rs)");
        return;
    }
    let mut c = Ctx::new("v2idle");
    let dir = started(&mut c);
    if !dir.join("cpu.idle").exists() {
        skip("no cpu.idle in this kernel");
        return;
    }
    for v in ["1", "0", "1"] {
        c.rt(&["update", "--cpu-idle", v, &c.id]).ok();
        assert_eq!(read(&dir.join("cpu.idle")), v);
    }
    for v in ["-1", "2"] {
        let o = c.rt(&["update", "--cpu-idle", v, &c.id]);
        assert!(!o.success(), "--cpu-idle {v} accepted: {o}");
        assert_eq!(read(&dir.join("cpu.idle")), "1");
    }
    c.rt(&["update", "--cpu-period", "10000", &c.id]).ok();
    assert_eq!(
        read(&dir.join("cpu.idle")),
        "1",
        "other updates keep cpu.idle"
    );
}

#[test]
fn check_before_update_v2_in_runcs_words() {
    if !v2() {
        skip("not a pure cgroup v2 host (v1: tests/runc_suite_cgroups.rs)");
        return;
    }
    let mut c = Ctx::new("v2check");
    let dir = started(&mut c);
    let res = c.scratch("r.json");
    let r = res.to_str().expect("utf-8").to_owned();
    fs::write(
        &res,
        json!({"memory": {"limit": 1024, "checkBeforeUpdate": true}}).to_string(),
    )
    .expect("write");
    c.rt(&["update", "-r", &r, &c.id])
        .fails_with("rejecting memory limit");
    if dir.join("memory.swap.max").exists() {
        fs::write(
            &res,
            json!({"memory": {"limit": 1024, "swap": 2048, "checkBeforeUpdate": true}}).to_string(),
        )
        .expect("write");
        c.rt(&["update", "-r", &r, &c.id])
            .fails_with("rejecting memory+swap limit");
    }
    assert_eq!(c.status(&c.id), "running");
}

#[test]
fn paused_exec_and_frozen_cgroup_v2() {
    if !v2() {
        skip("not a pure cgroup v2 host (v1: tests/runc_suite_cgroups.rs)");
        return;
    }
    let mut c = Ctx::new("v2paused");
    started(&mut c);
    c.rt(&["pause", &c.id]).ok();
    let o = c.rt(&["exec", &c.id, "true"]);
    assert_eq!(o.code, Some(255), "{o}");
    o.fails_with("cannot exec in a paused container");
    c.rt(&["resume", &c.id]).ok();

    let mut d = Ctx::new("v2frozen");
    let rel = d.config["linux"]["cgroupsPath"].as_str().expect("path")[1..].to_owned();
    let dir = Path::new("/sys/fs/cgroup").join(rel);
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join("cgroup.freeze"), "1").expect("freeze");
    d.args(&["true"]);
    d.write_config();
    let o = d.create_id(&d.id, &[]);
    let _ = fs::write(dir.join("cgroup.freeze"), "0");
    let _ = fs::remove_dir(&dir);
    o.fails_with("container's cgroup unexpectedly frozen");
}

#[test]
fn spec_has_a_cgroup_namespace_on_v2() {
    if !v2() {
        skip("not a pure cgroup v2 host (v1: tests/runc_suite_cgroups.rs)");
        return;
    }
    let c = Ctx::new("v2spec");
    let dir = c.scratch("specdir");
    fs::create_dir_all(&dir).expect("mkdir");
    c.rt(&["spec", "--bundle", dir.to_str().expect("utf-8")])
        .ok();
    let text = fs::read_to_string(dir.join("config.json")).expect("read");
    assert!(text.contains("\"cgroup\""), "no cgroup namespace: {text}");
}
