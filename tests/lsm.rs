//! LSM fields on a host without AppArmor or SELinux (this one): asking for a profile or a
//! label is an error at create (or exec), as with runc, never silently ignored; mountLabel is
//! ignored (a `context=` option would make the kernel refuse the tmpfs). On a host with the
//! LSM, these tests skip: they would need its policy.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;

fn apparmor_on() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|b| b.first() == Some(&b'Y'))
}

fn selinux_on() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

#[test]
fn apparmor_profile_without_apparmor_fails_create() {
    if apparmor_on() {
        return skip("AppArmor is enabled here");
    }
    let mut c = Ctx::new("aaprofile");
    c.config["process"]["apparmorProfile"] = json!("docker-default");
    c.write_config();
    let o = c.create_id(&c.id, &[]);
    o.fails_with_any(&["apparmor"]);
    if is_capsa() {
        o.fails_with("process.apparmorProfile");
        o.fails_with("AppArmor is not enabled");
    }
    c.assert_nothing_left(&c.id);
}

#[test]
fn selinux_label_without_selinux_fails_create() {
    if selinux_on() {
        return skip("SELinux is enabled here");
    }
    let mut c = Ctx::new("selabel");
    c.config["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0:c1,c2");
    // runc's words, which capsa keeps.
    c.create_refused(
        "selinux label is specified in config, but selinux is disabled or not supported",
    );
}

#[test]
fn mount_label_without_selinux_is_ignored() {
    if selinux_on() {
        return skip("SELinux is enabled here");
    }
    if skip_unless_capsa("runc 1.1.5 passes context= to tmpfs, which the kernel refuses") {
        return;
    }
    let mut c = Ctx::new("mountlabel");
    c.config["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0:c1,c2");
    c.push_mount(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs"}));
    c.sh("grep -c context= /proc/self/mountinfo; grep -c ' /scratch ' /proc/self/mountinfo");
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout.trim(), "0\n1", "{o}");
}

/// `exec --apparmor` and `--process-label` set the exec'd process's fields: on this host both
/// fail, as with runc, and leave the container as it was.
#[test]
fn exec_lsm_flags_without_the_lsm_fail() {
    let mut c = Ctx::new("execlsm");
    c.args(&["sleep", "1000"]);
    c.write_config();
    let b = c.bundle();
    c.rt(&["run", "-d", "--bundle", b.to_str().expect("utf-8"), &c.id])
        .ok();
    if !apparmor_on() {
        let o = c.rt(&["exec", "--apparmor", "docker-default", &c.id, "true"]);
        o.fails_with_any(&["apparmor"]);
        if is_capsa() {
            o.fails_with("process.apparmorProfile");
        }
    }
    if !selinux_on() {
        let o = c.rt(&[
            "exec",
            "--process-label",
            "system_u:system_r:container_t:s0",
            &c.id,
            "true",
        ]);
        o.fails_with("selinux is disabled");
    }
    assert_eq!(c.status(&c.id), "running");
    // Without the flags, exec works.
    c.rt(&["exec", &c.id, "true"]).ok();
}

#[test]
fn features_report_the_hosts_lsms() {
    if skip_unless_capsa("runc 1.1.5 has no `features`") {
        return;
    }
    let c = Ctx::new("lsmfeatures");
    let o = c.rt(&["features"]);
    o.ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(v["linux"]["apparmor"]["enabled"], json!(apparmor_on()));
    assert_eq!(v["linux"]["selinux"]["enabled"], json!(selinux_on()));
}
