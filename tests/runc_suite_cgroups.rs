//! What runc's own integration tests (cgroups.bats, update.bats) expect of a
//! runtime's cgroup handling, on the host's cgroup v1 / hybrid hierarchies:
//! `update`'s --cpu-idle and --cpu-burst, v1's quota and period changed
//! together under a parent's limit, runc's words in the errors scripts match
//! on, exec's exit status, and `spec` on a host that is not pure cgroup v2.
//! (The pure v2 half is tests/cgroups_suite.rs, in the VM lane.)

mod common;
use common::*;

use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};

/// The v1 mount of `controller`, or None (pure v2 host, or not mounted).
fn v1_mount(controller: &str) -> Option<PathBuf> {
    let p = Path::new("/sys/fs/cgroup").join(controller);
    (p.join("cgroup.procs").exists() && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists())
        .then_some(p)
}

fn read(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_owned()
}

/// A started `sleep` container.
fn started(c: &mut Ctx) {
    c.args(&["sleep", "1000"]);
    c.create();
    c.rt(&["start", &c.id]).ok();
}

/// A cgroup this test made in every v1 hierarchy (a parent of the container's),
/// removed at the end, innermost first.
struct Made(Vec<PathBuf>);

impl Drop for Made {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

#[test]
fn update_cpu_idle_and_cpu_burst_flags() {
    let Some(cpu) = v1_mount("cpu") else {
        skip("no cgroup v1 cpu hierarchy (pure v2: tests/cgroups_suite.rs)");
        return;
    };
    if !cpu.join("cpu.idle").exists() || !cpu.join("cpu.cfs_burst_us").exists() {
        skip("this kernel's v1 cpu controller has no cpu.idle or cpu.cfs_burst_us");
        return;
    }
    let mut c = Ctx::new("sidle");
    started(&mut c);
    let dir = cpu.join(&c.config["linux"]["cgroupsPath"].as_str().expect("path")[1..]);
    for v in ["1", "0", "1"] {
        c.rt(&["update", "--cpu-idle", v, &c.id]).ok();
        assert_eq!(read(&dir.join("cpu.idle")), v);
    }
    // The kernel takes only 0 and 1: a refused value leaves the old one.
    for v in ["-1", "2"] {
        let o = c.rt(&["update", "--cpu-idle", v, &c.id]);
        assert!(!o.success(), "--cpu-idle {v} accepted: {o}");
        assert_eq!(read(&dir.join("cpu.idle")), "1");
    }
    c.rt(&[
        "update",
        "--cpu-period",
        "900000",
        "--cpu-burst",
        "500000",
        &c.id,
    ])
    .ok();
    assert_eq!(read(&dir.join("cpu.cfs_burst_us")), "500000");
    assert_eq!(read(&dir.join("cpu.cfs_period_us")), "900000");
    c.rt(&["update", "--cpu-burst", "0", &c.id]).ok();
    assert_eq!(read(&dir.join("cpu.cfs_burst_us")), "0");
    assert_eq!(
        read(&dir.join("cpu.idle")),
        "1",
        "other updates keep cpu.idle"
    );
}

/// The kernel checks quota/period against the parent's ratio after each write:
/// (500000/1000000 -> 3000/10000) must write the quota first, the way back the period.
#[test]
fn update_quota_and_period_together_under_a_parent_limit() {
    let Some(cpu) = v1_mount("cpu") else {
        skip("no cgroup v1 cpu hierarchy (pure v2 writes cpu.max at once)");
        return;
    };
    // Made before the Ctx: dropped after it, once the container is gone.
    let parent = format!("capsa-test-{}", unique_id("spodparent"));
    let mut made = Made(Vec::new());
    for m in fs::read_dir("/sys/fs/cgroup")
        .expect("ls /sys/fs/cgroup")
        .flatten()
    {
        if m.path().join("cgroup.procs").exists() {
            made.0.push(m.path().join(&parent));
        }
    }
    fs::create_dir(cpu.join(&parent)).expect("mkdir parent");
    fs::write(cpu.join(&parent).join("cpu.cfs_quota_us"), "50000").expect("parent quota");
    let mut c = Ctx::new("spod");
    c.config["linux"]["cgroupsPath"] = json!(format!("/{parent}/ctr"));
    c.config["linux"]["resources"]["cpu"] = json!({"quota": 500000, "period": 1000000});
    started(&mut c);
    let dir = cpu.join(&parent).join("ctr");
    let o = c.rt(&["update", "--cpu-quota", "600000", &c.id]);
    assert!(!o.success(), "60% under a 50% parent accepted: {o}");
    c.rt(&[
        "update",
        "--cpu-period",
        "10000",
        "--cpu-quota",
        "3000",
        &c.id,
    ])
    .ok();
    assert_eq!(read(&dir.join("cpu.cfs_quota_us")), "3000");
    assert_eq!(read(&dir.join("cpu.cfs_period_us")), "10000");
    c.rt(&[
        "update",
        "--cpu-period",
        "1000000",
        "--cpu-quota",
        "400000",
        &c.id,
    ])
    .ok();
    assert_eq!(read(&dir.join("cpu.cfs_quota_us")), "400000");
    assert_eq!(read(&dir.join("cpu.cfs_period_us")), "1000000");
}

#[test]
fn frozen_cgroup_is_refused_in_runcs_words() {
    let Some(freezer) = v1_mount("freezer") else {
        skip("no cgroup v1 freezer hierarchy (pure v2: tests/cgroups_placement.rs)");
        return;
    };
    let mut c = Ctx::new("sfrozen");
    let rel = c.config["linux"]["cgroupsPath"].as_str().expect("path")[1..].to_owned();
    let dir = freezer.join(&rel);
    let made = Made(vec![dir.clone()]);
    // (Nothing of c's can be inside: its create is refused.)
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join("freezer.state"), "FROZEN").expect("freeze");
    c.args(&["true"]);
    c.write_config();
    let o = c.create_id(&c.id, &[]);
    fs::write(dir.join("freezer.state"), "THAWED").expect("thaw");
    o.fails_with("container's cgroup unexpectedly frozen");
    // The frozen cgroup was the test's: what else is there, capsa left.
    drop(made);
    c.assert_nothing_left(&c.id);
}

#[test]
fn exec_that_cannot_run_exits_255() {
    if v1_mount("freezer").is_none() {
        skip("no cgroup v1 freezer hierarchy");
        return;
    }
    let mut c = Ctx::new("sexec255");
    started(&mut c);
    c.rt(&["pause", &c.id]).ok();
    let o = c.rt(&["exec", &c.id, "true"]);
    assert_eq!(o.code, Some(255), "{o}");
    o.fails_with("cannot exec in a paused container");
    c.rt(&["resume", &c.id]).ok();
    let o = c.rt(&["exec", "no-such-container-here", "true"]);
    assert_eq!(o.code, Some(255), "{o}");
    // The process's own status is passed through.
    let o = c.rt(&["exec", &c.id, "sh", "-c", "exit 3"]);
    assert_eq!(o.code, Some(3), "{o}");
}

/// runc's `spec` adds a cgroup namespace only on a pure v2 host: on a hybrid one an
/// exec'd process in it would see the unified hierarchy at "/", not where the host
/// shows the container (cgroups.bats: "cgroup v1+hybrid joins correct cgroup").
#[test]
fn spec_has_a_cgroup_namespace_only_on_pure_v2() {
    let c = Ctx::new("sspec");
    let dir = c.scratch("specdir");
    fs::create_dir_all(&dir).expect("mkdir");
    c.rt(&["spec", "--bundle", dir.to_str().expect("utf-8")])
        .ok();
    let v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("config.json")).expect("read"))
            .expect("json");
    let has = v["linux"]["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .any(|n| n["type"] == "cgroup");
    let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert_eq!(has, pure_v2, "cgroup namespace in the default spec");
}

#[test]
fn unified_keys_off_pure_v2_are_an_invalid_configuration() {
    if v1_mount("pids").is_none() {
        skip("a pure cgroup v2 host takes unified keys");
        return;
    }
    let mut c = Ctx::new("sunified");
    c.args(&["true"]);
    c.config["linux"]["resources"]["pids"] = json!({"limit": 100});
    c.config["linux"]["resources"]["unified"] = json!({"memory.min": "131072"});
    c.create_refused("invalid configuration");
    c.assert_nothing_left(&c.id);
}

/// runc takes a deny rule with letters besides r, w and m (its update.bats writes
/// "rwa"); an allow rule stays exact.
#[test]
fn deny_rule_with_extra_access_letters_denies_what_it_names() {
    if v1_mount("devices").is_none() {
        skip("no cgroup v1 devices hierarchy (v2: the same code builds the BPF rules)");
        return;
    }
    let mut c = Ctx::new("sdevacc");
    c.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa"}
    ]);
    c.config["linux"]["devices"] = json!([
        {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}
    ]);
    c.sh("head -c 1 /dev/kmsg >/dev/null 2>&1 && echo READ; echo done");
    c.write_config();
    let b = c.bundle();
    let o = c.rt(&["run", "--bundle", b.to_str().expect("utf-8"), &c.id]);
    o.ok();
    assert_eq!(o.stdout.trim(), "done", "{o}");
    let mut d = Ctx::new("sdevacc2");
    d.args(&["true"]);
    d.config["linux"]["resources"]["devices"] = json!([
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwa"}
    ]);
    d.create_refused("devices[0].access");
}

#[test]
fn check_before_update_is_refused_in_runcs_words() {
    let Some(mem) = v1_mount("memory") else {
        skip("no cgroup v1 memory hierarchy (pure v2: tests/cgroups_suite.rs)");
        return;
    };
    let mut c = Ctx::new("scheck");
    started(&mut c);
    let res = c.scratch("r.json");
    fs::write(
        &res,
        json!({"memory": {"limit": 1024, "checkBeforeUpdate": true}}).to_string(),
    )
    .expect("write");
    let r = res.to_str().expect("utf-8");
    c.rt(&["update", "-r", r, &c.id])
        .fails_with("rejecting memory limit");
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        fs::write(
            &res,
            json!({"memory": {"limit": 1024, "swap": 2048, "checkBeforeUpdate": true}}).to_string(),
        )
        .expect("write");
        c.rt(&["update", "-r", r, &c.id])
            .fails_with("rejecting memory+swap limit");
    }
    assert_eq!(c.status(&c.id), "running");
}
