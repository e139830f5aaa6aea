//! Rootless: the runtime run by an unprivileged user (`capsa-rootless`, made by the
//! harness, with subordinate id ranges), on this host's cgroup v1 with no delegation: no
//! cgroup of its own. Lifecycle, every verb, id maps (own id directly, subordinate ranges
//! through newuidmap/newgidmap), what a user namespace forbids done the way that works,
//! and escape checks: nothing the user could not do without the runtime becomes possible.
//! Every test runs against runc too (CAPSA_TEST_RUNTIME=/usr/sbin/runc); where the two
//! differ the test says so.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::{PermissionsExt, chown};
use std::time::Duration;

fn pid_of(r: &Rootless) -> i64 {
    let o = r.rt(&["state", &r.ctx.id]);
    o.ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("state json");
    v["pid"].as_i64().expect("pid")
}

fn status_of(r: &Rootless) -> String {
    let o = r.rt(&["state", &r.ctx.id]);
    o.ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("state json");
    v["status"].as_str().unwrap_or("").to_owned()
}

fn wait_stopped(r: &Rootless) {
    let start = std::time::Instant::now();
    while status_of(r) != "stopped" {
        assert!(start.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The host uid line (real, effective, saved, fs) of `pid`.
fn host_uids(pid: i64) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or("")
        .to_owned()
}

#[test]
fn lifecycle_and_every_verb_as_the_user() {
    let Some(mut r) = Rootless::new("rl-life") else {
        return;
    };
    r.ctx.args(&["sleep", "1000"]);
    r.create().ok();
    let id = r.ctx.id.clone();
    assert_eq!(status_of(&r), "created");
    // State is the user's, under its root.
    let meta = std::fs::metadata(r.ctx.root().join(&id)).expect("state dir");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), r.user.uid);
    r.rt(&["start", &id]).ok();
    assert_eq!(status_of(&r), "running");
    let pid = pid_of(&r);
    // The init is the user on the host, root inside.
    let uids = host_uids(pid);
    assert!(
        uids.split_whitespace()
            .skip(1)
            .all(|u| u == r.user.uid.to_string()),
        "{uids}"
    );
    let o = r.rt(&["exec", &id, "id", "-u"]);
    assert_eq!(o.ok().stdout.trim(), "0");
    let o = r.rt(&["list", "-q"]);
    assert!(o.ok().stdout.lines().any(|l| l == id), "{o}");
    if is_capsa() {
        // runc 1.1 cannot list a rootless container's processes without a cgroup
        // ("unable to get all container pids"); capsa finds them by pid namespace.
        r.rt(&["exec", "-d", &id, "sleep", "1000"]).ok();
        let o = r.rt(&["ps", "--format", "json", &id]);
        let pids: Vec<i64> = serde_json::from_str(o.ok().stdout.trim()).expect("ps json");
        assert!(pids.contains(&pid) && pids.len() == 2, "{o}");
        // No cgroup, no freezer: refused clearly (runc: "cgroups not configured").
        r.rt(&["pause", &id]).fails_with("no cgroup of its own");
        r.rt(&["update", "--pids-limit", "10", &id])
            .fails_with("no cgroup of its own");
        r.rt(&["events", "--stats", &id])
            .fails_with("no cgroup of its own");
        // kill --all reaches the exec'd process too.
        r.rt(&["kill", "--all", &id, "KILL"]).ok();
    } else {
        r.rt(&["kill", &id, "KILL"]).ok();
    }
    wait_stopped(&r);
    r.rt(&["delete", &id]).ok();
    r.ctx.assert_nothing_left(&id);
}

#[test]
fn delete_force_of_a_running_container() {
    let Some(mut r) = Rootless::new("rl-delf") else {
        return;
    };
    r.ctx.args(&["sleep", "1000"]);
    r.create().ok();
    r.rt(&["start", &r.ctx.id]).ok();
    r.rt(&["delete", "--force", &r.ctx.id]).ok();
    r.ctx.assert_nothing_left(&r.ctx.id);
}

#[test]
fn default_root_is_under_xdg_runtime_dir() {
    let Some(mut r) = Rootless::new("rl-xdg") else {
        return;
    };
    r.ctx.args(&["sleep", "1000"]);
    r.ctx.write_config();
    let b = r.ctx.bundle();
    let id = r.ctx.id.clone();
    let xdg = r.xdg();
    let o = r.rt_default_root(
        &["create", "--bundle", b.to_str().unwrap(), &id],
        Some(&xdg),
    );
    o.ok();
    let name = if is_capsa() { "capsa" } else { "runc" };
    let root = xdg.join(name);
    assert!(root.join(&id).is_dir(), "no state under {}", root.display());
    // runc's mode for it: 0700 and sticky (XDG asks for that).
    let mode = std::fs::metadata(&root).expect("root").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1700);
    r.rt_default_root(&["delete", "--force", &id], Some(&xdg))
        .ok();
    assert!(!root.join(&id).exists());
    // Without XDG_RUNTIME_DIR: capsa says what to set; runc falls back to /run/runc,
    // which the user cannot make.
    let o = r.rt_default_root(&["create", "--bundle", b.to_str().unwrap(), &id], None);
    o.fails_with_any(&["XDG_RUNTIME_DIR is not set", "permission denied"]);
    r.ctx.assert_nothing_left(&id);
}

#[test]
fn config_without_a_user_namespace_is_refused() {
    let Some(mut r) = Rootless::new("rl-nous") else {
        return;
    };
    let l = &mut r.ctx.config["linux"];
    if let Some(o) = l.as_object_mut() {
        o.remove("uidMappings");
        o.remove("gidMappings");
    }
    r.ctx.remove_ns("user");
    // runc's words, both runtimes.
    r.create_refused(&["rootless container requires user namespaces"]);
}

/// The successful run's stdout, a line each, runs of blanks made one space
/// (/proc/PID/uid_map pads its columns).
fn spaced_lines(o: &Output) -> Vec<String> {
    o.stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn own_id_mapping_is_written_directly() {
    let Some(mut r) = Rootless::new("rl-single") else {
        return;
    };
    r.ctx
        .sh("cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups");
    let o = r.run();
    let out = spaced_lines(o.ok());
    assert_eq!(
        out,
        [
            format!("0 {} 1", r.user.uid),
            format!("0 {} 1", r.user.gid),
            // The kernel's condition for an unprivileged gid_map writer.
            "deny".to_owned()
        ],
        "{o}"
    );
}

/// A user namespace with neither mapping list: the user's own ids become
/// container root, written directly as above (crun's default; runc refuses).
#[test]
fn no_mappings_map_the_users_own_ids() {
    if skip_unless_capsa("runc refuses a user namespace without mappings") {
        return;
    }
    let Some(mut r) = Rootless::new("rl-nomap") else {
        return;
    };
    if let Some(o) = r.ctx.config["linux"].as_object_mut() {
        o.remove("uidMappings");
        o.remove("gidMappings");
    }
    r.ctx
        .sh("cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -u");
    let o = r.run();
    let out = spaced_lines(o.ok());
    assert_eq!(
        out,
        [
            format!("0 {} 1", r.user.uid),
            format!("0 {} 1", r.user.gid),
            "deny".to_owned(),
            "0".to_owned()
        ],
        "{o}"
    );
}

#[test]
fn subordinate_ranges_go_through_newuidmap() {
    let Some(mut r) = Rootless::new("rl-multi") else {
        return;
    };
    r.multi_range();
    // runc 1.1 refuses any additionalGids when rootless ("cannot set any additional
    // groups in a rootless container"); capsa sets them when newgidmap left setgroups
    // allowed, as crun does.
    let groups = if is_capsa() { "1000 1001" } else { "1000" };
    r.ctx.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    if is_capsa() {
        r.ctx.config["process"]["user"]["additionalGids"] = json!([1001]);
    }
    r.ctx
        .sh("id -u; id -G; cat /proc/self/setgroups; sleep 1000");
    let out = r.ctx.scratch("out.txt");
    r.ctx.write_config();
    let b = r.ctx.bundle();
    let (uid, gid, xdg) = (r.user.uid, r.user.gid, r.xdg());
    let f = std::fs::File::create(&out).expect("out file");
    let o = r.ctx.rt_with(
        &["create", "--bundle", b.to_str().unwrap(), &r.ctx.id],
        |cmd| {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid).env("XDG_RUNTIME_DIR", &xdg).stdout(f);
        },
    );
    o.ok();
    r.rt(&["start", &r.ctx.id]).ok();
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .count()
        < 3
    {
        assert!(start.elapsed() < Duration::from_secs(10), "no output");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], groups);
    // newgidmap leaves setgroups allowed: the container set its groups.
    assert_eq!(lines[2], "allow");
    // On the host, container uid 1000 is the user's subordinate uid 999 + start.
    let want = (r.user.subuid.0 + 999).to_string();
    let uids = host_uids(pid_of(&r));
    assert!(
        uids.split_whitespace().skip(1).all(|u| u == want),
        "{uids}, want {want}"
    );
    r.rt(&["delete", "--force", &r.ctx.id]).ok();
    r.ctx.assert_nothing_left(&r.ctx.id);
}

#[test]
fn range_not_allowed_is_the_helpers_error() {
    let Some(mut r) = Rootless::new("rl-badrange") else {
        return;
    };
    r.multi_range();
    let outside = r.user.subuid.0 + r.user.subuid.1 + 100000;
    r.ctx.config["linux"]["uidMappings"][1]["hostID"] = json!(outside);
    // newuidmap's own words ("uid range [1-65537) -> [..) not allowed"), both runtimes;
    // capsa names the field and the command too.
    let o = r.create_refused(&["not allowed"]);
    if is_capsa() {
        o.fails_with("linux.uidMappings: ");
        o.fails_with("newuidmap");
    }
}

#[test]
fn devices_are_host_nodes_and_sys_is_bound_without_netns() {
    let Some(mut r) = Rootless::new("rl-dev") else {
        return;
    };
    // A plain sysfs mount, which a user namespace without its own network namespace may
    // not make: capsa binds the host's /sys instead (runc 1.1.5 fails with EPERM).
    r.ctx.config["mounts"][5] = json!({"destination": "/sys", "type": "sysfs",
        "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]});
    r.ctx.sh(
        "echo x > /dev/null && head -c 4 /dev/zero | wc -c && grep -E ' /sys | /dev/null ' /proc/self/mountinfo",
    );
    let o = r.run();
    if !is_capsa() {
        o.fails_with("operation not permitted");
        return;
    }
    let out = &o.ok().stdout;
    assert!(out.lines().next() == Some("4"), "{o}");
    // /dev/null is the host's node, bound (mknod is not allowed in a user namespace).
    assert!(
        out.lines()
            .any(|l| l.contains(" /dev/null ") && l.contains("devtmpfs")),
        "{o}"
    );
    // /sys is the host's sysfs, read-only as asked.
    assert!(
        out.lines()
            .any(|l| l.contains(" /sys ") && l.contains("sysfs") && l.contains(" ro,")),
        "{o}"
    );
}

#[test]
fn rlimit_above_the_users_hard_limit_is_refused() {
    let Some(mut r) = Rootless::new("rl-rlimit") else {
        return;
    };
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: cur is a valid rlimit for the call.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) };
    if cur.rlim_max == libc::RLIM_INFINITY {
        skip("RLIMIT_NOFILE hard limit is unlimited");
        return;
    }
    r.ctx.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "hard": cur.rlim_max + 1, "soft": 1024}]);
    // capsa refuses before anything starts, naming the entry; runc's init fails with
    // "error setting rlimit type 7: operation not permitted".
    r.create_refused(&["process.rlimits[0]", "error setting rlimit"]);
}

#[test]
fn limits_without_a_cgroup_are_refused_device_rules_ignored() {
    let Some(mut r) = Rootless::new("rl-res") else {
        return;
    };
    r.ctx.config["linux"]["resources"] = json!({"pids": {"limit": 10}});
    // runc 1.1: "cannot set pids limit: container could not join or create cgroup".
    r.create_refused(&["linux.resources.pids", "cannot set pids limit"]);
    // Device rules need no cgroup of their own: ignored, as runc does.
    r.ctx.config["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    r.run().ok();
    // Ignored, yet still checked: an invalid rule is refused as it is for root (before,
    // capsa dropped the rules unread and ran the container).
    r.ctx.config["linux"]["resources"] =
        json!({"devices": [{"allow": true, "type": "p", "access": "rwm"}]});
    r.create_refused(&["devices[0].type", "invalid", "unknown"]);
    // An explicit cgroupsPath the user cannot make: an error (runc: permission denied).
    r.ctx.config["linux"]["resources"] = json!({});
    r.ctx.config["linux"]["cgroupsPath"] = json!(cgroup_path_for(&r.ctx.id));
    let o = r.create_refused(&["permission denied"]);
    if is_capsa() {
        o.fails_with("linux.cgroupsPath");
    }
}

/// A host file only root may read, with a known content.
fn secret(r: &Rootless) -> std::path::PathBuf {
    let p = r.ctx.scratch("secret");
    std::fs::write(&p, "TOP-SECRET\n").expect("write secret");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

#[test]
fn setuid_root_binary_in_the_rootfs_gives_no_host_root() {
    let Some(mut r) = Rootless::new("rl-suid") else {
        return;
    };
    r.multi_range();
    // busybox runs the applet its first argument names when it is called "busybox".
    std::fs::create_dir_all(r.ctx.rootfs().join("suid")).expect("mkdir");
    let suid = r.ctx.rootfs().join("suid/busybox");
    std::fs::copy("/bin/busybox", &suid).expect("copy busybox");
    chown(&suid, Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    let secret = secret(&r);
    // The rootfs is root's here: the user's container root cannot make mount points.
    std::fs::write(r.ctx.rootfs().join("secret"), "").expect("mount point");
    r.ctx
        .push_mount(json!({"destination": "/secret", "type": "bind",
        "source": secret, "options": ["bind"]}));
    r.ctx.config["process"]["noNewPrivileges"] = json!(false);
    r.ctx.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    r.ctx
        .sh("/suid/busybox id -u; /suid/busybox cat /secret; echo rc=$?");
    let o = r.run();
    let out = &o.ok().stdout;
    // Host root owns the binary and maps to no container id: no uid change at all.
    assert!(out.lines().next() == Some("1000"), "{o}");
    assert!(!out.contains("TOP-SECRET") && out.contains("rc=1"), "{o}");
    // Container root (the user on the host) cannot read it either.
    r.ctx.config["process"]["user"] = json!({"uid": 0, "gid": 0});
    r.ctx.sh("cat /secret; echo rc=$?");
    let o = r.run();
    assert!(
        !o.stdout.contains("TOP-SECRET") && o.ok().stdout.contains("rc=1"),
        "{o}"
    );
}

#[test]
fn host_file_the_user_cannot_write_stays_unwritable() {
    let Some(mut r) = Rootless::new("rl-bindw") else {
        return;
    };
    let target = r.ctx.scratch("hostfile");
    std::fs::write(&target, "original\n").expect("write");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::write(r.ctx.rootfs().join("hostfile"), "").expect("mount point");
    r.ctx
        .push_mount(json!({"destination": "/hostfile", "type": "bind",
        "source": target, "options": ["bind", "rw"]}));
    r.ctx
        .sh("echo changed > /hostfile; echo rc=$?; chmod 666 /hostfile; echo chmod=$?");
    let o = r.run();
    let out = &o.ok().stdout;
    assert!(out.contains("rc=1") && out.contains("chmod=1"), "{o}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap_or_default(),
        "original\n"
    );
}

#[test]
fn writes_to_proc_sys_and_sys_are_refused() {
    let Some(mut r) = Rootless::new("rl-procsys") else {
        return;
    };
    // Take away the config's own protections: the kernel must refuse on its own.
    r.ctx.config["linux"]["readonlyPaths"] = json!([]);
    r.ctx.config["mounts"][5]["options"] = json!(["rbind", "nosuid", "noexec", "nodev"]);
    // Each write puts back the value already there: harmless if it were allowed.
    r.ctx.sh(
        "v=$(cat /proc/sys/vm/overcommit_ratio) && [ -n \"$v\" ] || echo missing; \
         echo $v > /proc/sys/vm/overcommit_ratio; echo proc=$?; \
         v=$(cat /sys/kernel/mm/ksm/sleep_millisecs) && [ -n \"$v\" ] || echo missing; \
         echo $v > /sys/kernel/mm/ksm/sleep_millisecs; echo sys=$?",
    );
    let o = r.run();
    let out = &o.ok().stdout;
    // Both files were readable (the writes were refused, not aimed at nothing).
    assert!(!out.contains("missing"), "{o}");
    assert!(out.contains("proc=1") && out.contains("sys=1"), "{o}");
}

#[test]
fn no_device_access_the_user_lacks() {
    let Some(mut r) = Rootless::new("rl-blk") else {
        return;
    };
    let Some(disk) = ["/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda"]
        .into_iter()
        .find(|d| std::path::Path::new(d).exists())
    else {
        skip("no block device to try");
        return;
    };
    // As a bind mount and as a linux.devices entry (bound in a user namespace). The
    // rootfs is root's here: the mount point is made for the container.
    std::fs::write(r.ctx.rootfs().join("disk"), "").expect("mount point");
    r.ctx
        .push_mount(json!({"destination": "/disk", "type": "bind",
        "source": disk, "options": ["bind"]}));
    // In a user namespace a device node is bound from the same path on the host.
    r.ctx.config["linux"]["devices"] = json!([{"path": disk, "type": "b",
        "major": 0, "minor": 0}]);
    let (maj, min) = {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(disk).expect("stat disk").rdev();
        (libc::major(rdev), libc::minor(rdev))
    };
    r.ctx.config["linux"]["devices"][0]["major"] = json!(maj);
    r.ctx.config["linux"]["devices"][0]["minor"] = json!(min);
    r.ctx.sh(&format!(
        "head -c 512 /disk > /dev/null; echo a=$?; head -c 512 {disk} > /dev/null; echo b=$?"
    ));
    // The device is there (bound from the host), and the user still may not read it.
    let o = r.run();
    assert!(
        o.ok().stdout.contains("a=1") && o.stdout.contains("b=1"),
        "{o}"
    );
}

#[test]
fn another_users_containers_are_out_of_reach() {
    let Some(r) = Rootless::new("rl-other") else {
        return;
    };
    // Root's container, in a root it owns (as /run/capsa is).
    let mut root_ctx = Ctx::new("rl-rootctr");
    root_ctx.args(&["sleep", "1000"]);
    root_ctx.create();
    let root_dir = root_ctx.root();
    std::fs::set_permissions(&root_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let rd = root_dir.to_str().unwrap().to_owned();
    let id = root_ctx.id.clone();
    for args in [
        vec!["--root", &rd, "kill", &id, "KILL"],
        vec!["--root", &rd, "delete", "--force", &id],
        vec!["--root", &rd, "exec", &id, "true"],
    ] {
        let o = r.rt_default_root(&args, Some(&r.xdg()));
        assert!(!o.success() || args.contains(&"delete"), "{o}");
    }
    // Still there, still waiting for its start.
    assert_eq!(root_ctx.status(&id), "created");
}

/// A read-only, nosuid tmpfs mounted by root at `dir` (unmounted on drop).
struct RoMount(std::path::PathBuf);

impl RoMount {
    fn new(dir: std::path::PathBuf) -> RoMount {
        std::fs::create_dir_all(&dir).expect("mkdir");
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,nosuid,mode=755", "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount");
        assert!(st.success(), "mount tmpfs: {st}");
        RoMount(dir)
    }
}

impl Drop for RoMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn locked_flags_of_a_bind_source_are_kept_or_refused() {
    let Some(mut r) = Rootless::new("rl-locked") else {
        return;
    };
    // Outside the test's directory, whose leftover check counts mounts.
    let holder = TempDir::new("rl-rosrc");
    let src = RoMount::new(holder.path().join("src"));
    std::fs::create_dir_all(r.ctx.rootfs().join("mnt")).expect("mkdir");
    // Asking for other flags keeps the locked ones (a remount that dropped ro or
    // nosuid would fail with EPERM).
    r.ctx
        .push_mount(json!({"destination": "/mnt", "type": "bind",
        "source": &src.0, "options": ["bind", "nodev"]}));
    r.ctx.sh("grep ' /mnt ' /proc/self/mountinfo");
    let o = r.run();
    if !is_capsa() {
        // runc 1.1.5 remounts without the locked flags: EPERM (later runc keeps them).
        o.fails_with("operation not permitted");
        return;
    }
    let line = o.ok().stdout.clone();
    assert!(
        line.contains(" ro,") && line.contains("nosuid") && line.contains("nodev"),
        "{o}"
    );
    // Asking to clear a locked flag ("rw" of a read-only source): an error naming
    // the entry, not a read-only mount that silently differs (runc 1.1.5: EPERM).
    let n = r.ctx.config["mounts"].as_array().map_or(0, Vec::len) - 1;
    r.ctx.config["mounts"][n]["options"] = json!(["bind", "rw"]);
    let o = r.create_refused(&["locks these flags"]);
    o.fails_with(&format!(
        "mounts[{n}].options: rw (the source is read-only)"
    ));
    drop(src);
}

#[test]
fn oom_score_adj_only_within_what_the_user_may_set() {
    let Some(mut r) = Rootless::new("rl-oom") else {
        return;
    };
    // Written by root (CAP_SYS_RESOURCE), 0 also becomes this process's (and its
    // children's) floor for unprivileged writers.
    std::fs::write("/proc/self/oom_score_adj", "0").expect("oom_score_adj");
    r.ctx.config["process"]["oomScoreAdj"] = json!(500);
    r.ctx.args(&["cat", "/proc/self/oom_score_adj"]);
    let o = r.run();
    assert_eq!(o.ok().stdout.trim(), "500");
    r.ctx.config["process"]["oomScoreAdj"] = json!(-500);
    let o = r.create_refused(&["oom_score_adj"]);
    if is_capsa() {
        o.fails_with("process.oomScoreAdj");
    }
}

#[test]
fn rootless_true_as_root_means_rootless_cgroups_only() {
    // runc's meaning: --rootless sets the cgroup rules only; what a config must have
    // follows the caller's euid. As root a config without a user namespace runs.
    let mut c = Ctx::new("rl-astrue");
    c.args(&["true"]);
    c.write_config();
    let b = c.bundle();
    let b = b.to_str().expect("utf-8").to_owned();
    let id = c.id.clone();
    c.rt(&["--rootless=true", "run", "--bundle", &b, &id]).ok();
    c.assert_nothing_left(&id);
    // Not a value runc knows: a usage error (capsa checks it on every command; runc
    // only where it reads it, so `state` ignores it there).
    if is_capsa() {
        let o = c.rt(&["--rootless=yes", "state", &id]);
        o.fails_with("--rootless: invalid value");
    }
}

/// A user cannot id-map a host file system's mount (the kernel wants CAP_SYS_ADMIN in the
/// user namespace that mounted it, the host's, whoever owns the source): refused before
/// anything is made, naming the entry. runc 1.2 refuses them for rootless containers too
/// ("id-mapped mounts are not supported for rootless containers").
#[test]
fn idmapped_mounts_are_refused_clearly() {
    if skip_unless_capsa("runc 1.1.5 has no id-mapped mounts") {
        return;
    }
    let Some(mut r) = Rootless::new("rl-idmap") else {
        return;
    };
    std::fs::create_dir_all(r.ctx.rootfs().join("mnt")).expect("mkdir");
    let (uid, gid) = (r.user.uid, r.user.gid);
    r.ctx
        .push_mount(json!({"destination": "/mnt", "type": "bind",
        "source": r.ctx.scratch("out"), "options": ["bind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": uid, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": gid, "size": 1}]}));
    let n = r.ctx.config["mounts"].as_array().map_or(0, Vec::len) - 1;
    let o = r.create_refused(&["need a runtime running as root"]);
    o.fails_with(&format!("mounts[{n}]"));
}

/// CVE-2019-5736 against a runtime binary the user owns (a build in their home): no
/// read-only mount can be made without privileges, and the container's root is that user,
/// who may write the file. capsa execs the workload from a sealed memfd copy instead.
///
/// Seen failing: with `Trampoline::unprivileged` using the binary itself for every binary,
/// the attacker printed `GOT-FD WROTE` and the user's copy ended in "PWNED".
#[test]
fn cve_2019_5736_against_a_binary_the_user_owns() {
    let Some(mut r) = Rootless::new("rl-cve5736") else {
        return;
    };
    let copy = r.ctx.scratch("runtime-copy");
    std::fs::copy(runtime(), &copy).expect("copy the runtime");
    chown(&copy, Some(r.user.uid), Some(r.user.gid)).expect("chown");
    let before = std::fs::read(&copy).expect("read");
    let rootfs = r.ctx.rootfs();
    let marker = format!("--log=/tmp/fifo-{}", r.ctx.id);
    let exec = |p: &std::path::Path, text: &str| {
        std::fs::write(p, text).expect("write");
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    exec(
        &rootfs.join("bin/evil"),
        &format!("#!/proc/self/exe {marker}\n"),
    );
    let fifo = rootfs.join(format!("tmp/fifo-{}", r.ctx.id));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).expect("mkfifo");
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let fifo_in = format!("/tmp/fifo-{}", r.ctx.id);
    exec(
        &rootfs.join("bin/attack"),
        &attacker_script(&marker, &fifo_in, "/tmp/result"),
    );
    r.ctx.config["root"]["readonly"] = json!(false);
    r.ctx.args(&["/bin/attack"]);
    r.ctx.write_config();
    let b = r.ctx.bundle();
    let (uid, gid, xdg, root) = (r.user.uid, r.user.gid, r.xdg(), r.ctx.root());
    let as_user = |args: &[&str]| {
        let mut full = vec!["--root", root.to_str().expect("utf-8")];
        full.extend_from_slice(args);
        let xdg = xdg.clone();
        run_cmd(
            &copy,
            &full,
            &r.ctx.tmp.path().join("out"),
            TIMEOUT,
            move |c| {
                use std::os::unix::process::CommandExt;
                c.uid(uid).gid(gid).env("XDG_RUNTIME_DIR", xdg);
            },
        )
    };
    as_user(&["run", "-d", "--bundle", b.to_str().unwrap(), &r.ctx.id]).ok();
    let _ = as_user(&["exec", "-d", &r.ctx.id, "/bin/evil"]);
    let result_file = rootfs.join("tmp/result");
    let start = std::time::Instant::now();
    let mut result = String::new();
    while start.elapsed() < Duration::from_secs(25) {
        result = std::fs::read_to_string(&result_file).unwrap_or_default();
        if result.contains("DONE") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = as_user(&["delete", "--force", &r.ctx.id]);
    assert!(
        result.contains("DONE"),
        "attacker did not finish: {result:?}"
    );
    assert!(
        !result.contains("WROTE"),
        "the container wrote the runtime's binary: {result}"
    );
    assert!(
        std::fs::read(&copy).expect("read") == before,
        "binary changed: {result}"
    );
    if is_capsa() {
        // The attack really ran: the container got an fd on what the kernel executed.
        assert!(result.contains("GOT-FD"), "{result}");
    }
}

/// The same no-cgroup rules for root with `--cgroup-manager disabled` (podman's flag):
/// ps and `kill --all` find the container's processes by its pid namespace. Before
/// nocgroup.rs, ps listed nothing and `kill --all` signalled nobody, both with exit 0.
#[test]
fn container_without_a_cgroup_as_root() {
    if skip_unless_capsa("--cgroup-manager is crun's and capsa's flag, not runc's") {
        return;
    }
    let mut c = Ctx::new("nocg-root");
    c.args(&["sleep", "1000"]);
    c.write_config();
    let b = c.bundle();
    let id = c.id.clone();
    let off = ["--cgroup-manager", "disabled"];
    let with = |args: &[&str]| {
        let mut a = off.to_vec();
        a.extend_from_slice(args);
        c.rt(&a)
    };
    with(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]).ok();
    with(&["exec", "-d", &id, "sleep", "1000"]).ok();
    let o = with(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_str(o.ok().stdout.trim()).expect("ps json");
    assert_eq!(pids.len(), 2, "{o}");
    with(&["kill", "--all", &id, "KILL"]).ok();
    let start = std::time::Instant::now();
    while pids.iter().any(|p| {
        std::path::Path::new(&format!("/proc/{p}/stat")).exists()
            && !std::fs::read_to_string(format!("/proc/{p}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still alive: {pids:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    with(&["delete", "--force", &id]).ok();
    c.assert_nothing_left(&id);
}

/// Many creates at once, as the user: the init must stay dumpable until the
/// parent has written all of its maps (uid_map, setgroups, gid_map). It once
/// decided that from its own euid, which reads 0 as soon as uid_map is
/// written, and ~1 create in 100 under load then failed writing setgroups or
/// gid_map with EACCES.
#[test]
fn concurrent_creates_never_race_the_id_maps() {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let Some(mut r) = Rootless::new(&format!("rl-race{t}")) else {
                    return Vec::new();
                };
                r.ctx.args(&["true"]);
                let mut failures = Vec::new();
                for _ in 0..100 {
                    let o = r.run();
                    if o.code != Some(0) {
                        failures.push(o.to_string());
                        let _ = r.rt(&["delete", "--force", &r.ctx.id]);
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = threads
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 800 runs failed: {failures:#?}",
        failures.len()
    );
}

/// Root of a user namespace (as under rootless podman) may id-map a mount of a file
/// system that namespace mounted (a tmpfs here), and the container sees it; a host
/// directory the kernel refuses, and the error says why, naming the entry. Seen failing
/// before: the bare "mount_setattr(MOUNT_ATTR_IDMAP) ...: operation not permitted".
#[test]
fn idmapped_mounts_from_inside_a_user_namespace() {
    if skip_unless_capsa("runc 1.1.5 has no id-mapped mounts") {
        return;
    }
    let Some(mut r) = Rootless::new("rl-idmapns") else {
        return;
    };
    let src = r.ctx.scratch("idmap-src");
    std::fs::create_dir_all(&src).expect("mkdir");
    chown(&src, Some(r.user.uid), Some(r.user.gid)).expect("chown");
    std::fs::create_dir_all(r.ctx.rootfs().join("mnt")).expect("mkdir");
    // Ids of the namespace `unshare --map-root-user` makes: only its root.
    let one = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
    r.ctx.config["linux"]["uidMappings"] = one.clone();
    r.ctx.config["linux"]["gidMappings"] = one.clone();
    r.ctx
        .push_mount(json!({"destination": "/mnt", "type": "bind",
        "source": src, "options": ["bind", "idmap"],
        "uidMappings": one.clone(), "gidMappings": one}));
    r.ctx.args(&["ls", "/mnt"]);
    r.ctx.write_config();
    let n = r.ctx.config["mounts"].as_array().map_or(0, Vec::len) - 1;
    let (uid, gid, xdg) = (r.user.uid, r.user.gid, r.xdg());
    let in_userns = |id: &str, tmpfs: bool| {
        let mount = if tmpfs {
            format!(
                "mount -t tmpfs none {0} && touch {0}/on-tmpfs && ",
                src.display()
            )
        } else {
            String::new()
        };
        let script = format!(
            "{mount}exec {} --root {} run --bundle {} {id}",
            runtime().display(),
            r.ctx.root().display(),
            r.ctx.bundle().display()
        );
        let xdg = xdg.clone();
        run_cmd(
            std::path::Path::new("/usr/bin/unshare"),
            &["--user", "--map-root-user", "--mount", "sh", "-c", &script],
            &r.ctx.tmp.path().join("out"),
            TIMEOUT,
            move |c| {
                use std::os::unix::process::CommandExt;
                c.uid(uid).gid(gid).env("XDG_RUNTIME_DIR", xdg);
            },
        )
    };
    let id = r.ctx.new_id("hostdir");
    let o = in_userns(&id, false);
    o.fails_with(&format!("mounts[{n}]"));
    o.fails_with("only a filesystem mounted inside that user namespace can be id-mapped");
    r.ctx.assert_nothing_left(&id);
    let id = r.ctx.new_id("tmpfs");
    let o = in_userns(&id, true);
    if o.stderr
        .contains("does its filesystem support id-mapped mounts")
    {
        r.ctx.assert_nothing_left(&id);
        skip("this kernel cannot id-map a tmpfs (Linux 6.3 can)");
        return;
    }
    assert_eq!(o.ok().stdout.trim(), "on-tmpfs", "{o}");
    r.rt(&["delete", "--force", &id]).ok();
    r.ctx.assert_nothing_left(&id);
}
