//! The systemd cgroup driver on a host that does not run systemd (the development and CI
//! hosts; issue 12): `--systemd-cgroup` (and podman's `--cgroup-manager systemd`) fails
//! with one clear line that names systemd, and creates nothing. The driver itself is
//! tested against a real systemd in the systemd VM lane (tests/systemd_cgroup.rs).

mod common;
use common::*;

use std::path::Path;

/// systemd is PID 1 (its runtime dir) or a system bus is there to reach one.
fn systemd_here() -> bool {
    Path::new("/run/systemd/system").is_dir() || Path::new("/run/dbus/system_bus_socket").exists()
}

/// Cgroup directories under /sys/fs/cgroup (any hierarchy, a few levels) named after `id`.
fn cgroups_naming(id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(Path::new("/sys/fs/cgroup").to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().contains(id) {
                out.push(e.path().display().to_string());
            }
            if depth < 4 {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    out
}

#[test]
fn systemd_driver_without_systemd_fails_clearly_and_leaves_nothing() {
    if systemd_here() {
        skip("this host runs systemd: the test is for hosts without it");
        return;
    }
    let mut c = Ctx::new("nosd");
    c.args(&["true"]);
    let mut flags: Vec<Vec<&str>> = vec![vec!["--systemd-cgroup"]];
    if is_capsa() {
        // podman's spelling; runc has no such flag
        flags.push(vec!["--cgroup-manager", "systemd"]);
    }
    for flag in flags {
        for verb in ["create", "run"] {
            let id = c.new_id("nosd");
            c.config["linux"]["cgroupsPath"] =
                serde_json::json!(format!("system.slice:capsa:{id}"));
            c.write_config();
            let b = c.bundle();
            let mut args = flag.clone();
            args.extend_from_slice(&[verb, "--bundle", b.to_str().expect("utf-8"), &id]);
            let o = c.rt(&args);
            o.fails_with_any(&["systemd"]);
            let lines: Vec<&str> = o.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            assert_eq!(lines.len(), 1, "one line of error: {o}");
            c.assert_nothing_left(&id);
            let dirs = cgroups_naming(&id);
            assert!(dirs.is_empty(), "{flag:?} {verb}: cgroups left {dirs:?}");
        }
    }
}
