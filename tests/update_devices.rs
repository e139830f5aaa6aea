//! `update` of device rules on a running container (cgroup v1: devices.deny and
//! devices.allow, one line per write) must never show the workload a device it is
//! allowed before and after as denied in between. Writing "a" to devices.deny and then
//! the allow list again leaves a window where /dev/null is EPERM; capsa freezes the
//! container around such an update (runc reaches the same with a minimal diff of the
//! rules). v2's BPF program is replaced at once, so it is run on v1 only: the host lane;
//! the systemd lane's hybrid boot checks the same with the systemd driver.

mod common;
use common::*;

use std::time::Duration;

/// The default devices' rules plus the deny-all that starts them: what an engine sends.
pub fn device_rules() -> serde_json::Value {
    let mut rules = vec![serde_json::json!({"allow": false, "access": "rwm"})];
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        rules.push(serde_json::json!(
            {"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"}
        ));
    }
    serde_json::json!({ "devices": rules })
}

/// The workload: open /dev/null as fast as the shell can, and say so on stdout at
/// every failure.
/// (`true`, not `:`: a failed redirection of a special built-in ends the shell.)
pub const OPEN_LOOP: &str = "while true; do if ! true </dev/null; then echo denied; fi; done";

/// Before the fix, 30 updates showed a denial in 2 of 6 runs on a 2-CPU host.
const UPDATES: usize = 120;

#[test]
fn device_update_never_denies_an_allowed_device() {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        skip("a pure cgroup v2 host: device rules are one BPF program, replaced at once");
        return;
    }
    let mut ctx = Ctx::new("upddev");
    ctx.args(&["sh", "-c", OPEN_LOOP]);
    ctx.config["linux"]["cgroupsPath"] = serde_json::json!(cgroup_path_for(&ctx.id));
    let id = ctx.id.clone();
    let out = ctx.create_capturing();
    ctx.rt(&["start", &id]).ok();
    let res = ctx.scratch("resources.json");
    std::fs::write(&res, device_rules().to_string()).expect("write resources");
    let res = res.to_string_lossy().into_owned();
    // Let the loop run first: a failure must come from an update.
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..UPDATES {
        ctx.rt(&["update", "-r", &res, &id]).ok();
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(ctx.status(&id), "running");
    let denied = std::fs::read_to_string(&out).expect("workload output");
    ctx.rt(&["delete", "--force", &id]).ok();
    assert_eq!(
        denied.lines().count(),
        0,
        "the workload was denied /dev/null during {UPDATES} updates that allow it"
    );
    ctx.assert_nothing_left(&id);
}
