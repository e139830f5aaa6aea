//! What the systemd VM lane's test files share: whether this is a systemd boot, and
//! systemd's and the kernel's view of units and cgroups.

#![allow(dead_code)] // each test file uses a different part

use crate::common::skip;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// systemd is PID 1 with its runtime dir, and the system bus is up.
pub fn under_systemd() -> bool {
    Path::new("/run/systemd/system").is_dir() && Path::new("/run/dbus/system_bus_socket").exists()
}

/// Skip (counted) unless under systemd; true when skipping.
pub fn skip_without_systemd() -> bool {
    if under_systemd() {
        return false;
    }
    skip("not booted with systemd and a system bus (runs in the systemd VM lane)");
    true
}

pub fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// `systemctl show UNIT -p P...` as a map (a repeated property keeps its last value).
pub fn show(unit: &str, props: &[&str]) -> HashMap<String, String> {
    let mut cmd = Command::new("systemctl");
    cmd.args(["show", unit]);
    for p in props {
        cmd.args(["-p", p]);
    }
    let out = cmd.output().expect("run systemctl show");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub fn prop(unit: &str, name: &str) -> String {
    show(unit, &[name]).remove(name).unwrap_or_default()
}

/// Every unit systemd knows (loaded, any state) whose name contains `needle`.
pub fn units_naming(needle: &str) -> Vec<String> {
    let out = Command::new("systemctl")
        .args([
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--no-pager",
        ])
        .output()
        .expect("run systemctl list-units");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|u| u.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Cgroup directories anywhere under /sys/fs/cgroup whose name contains `needle`.
pub fn cgroup_dirs_naming(needle: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, needle: &str, depth: u32, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy().contains(needle) {
                out.push(p.clone());
            }
            if depth > 0 {
                walk(&p, needle, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), needle, 6, &mut out);
    out
}

/// Nothing of container `id` left in systemd or the cgroup trees.
#[track_caller]
pub fn assert_no_unit_no_cgroup(id: &str) {
    let units = units_naming(id);
    assert!(units.is_empty(), "units left for {id}: {units:?}");
    let dirs = cgroup_dirs_naming(id);
    assert!(dirs.is_empty(), "cgroups left for {id}: {dirs:?}");
}

/// The unified (v2) cgroup path of `pid` ("0::" line), or systemd's named hierarchy on
/// a legacy layout.
pub fn proc_cgroup(pid: u32) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
    let line = |pre: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(pre))
            .map(str::to_owned)
    };
    line("0::")
        .filter(|p| p != "/")
        .or_else(|| line("1:name=systemd:"))
        .unwrap_or_default()
}

/// The directory of cgroup `rel` (a ControlGroup value) for `controller` ("" = unified
/// on v2; on v1 the controller's hierarchy).
pub fn cg_dir(controller: &str, rel: &str) -> PathBuf {
    let base = if v2() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup").join(controller)
    };
    base.join(rel.trim_start_matches('/'))
}

#[track_caller]
pub fn read_cg(controller: &str, rel: &str, file: &str) -> String {
    let p = cg_dir(controller, rel).join(file);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_owned()
}

/// Poll `f` until it holds, or panic with `what` after 10 s.
#[track_caller]
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
