//! User namespaces end to end: the container's root mapped to an unprivileged host uid
//! (several ranges), what the workload sees (maps, caps, mounts, devices), what lands on
//! the host, joining a user namespace by path, and who owns the stdio afterwards (the
//! container's pipes yes, the host's /dev/null never).

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;

/// Host ids of the container's root and of container uid 1000 (second uid range).
const ROOT_HOST: u32 = 100000;
const U1000_HOST: u32 = 300000;

/// Change the owner of everything under `dir` (symlinks themselves, not their targets).
fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).expect("lchown");
    if fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        for e in fs::read_dir(dir).expect("read_dir") {
            chown_tree(&e.expect("dir entry").path(), uid, gid);
        }
    }
}

/// A user namespace whose root is host uid 100000, with a second uid range (container
/// 1000.. on host 300000..) and one gid range; the rootfs belongs to the mapped root.
fn mapped(c: &mut Ctx) {
    c.set_ns("user", None);
    c.config["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": ROOT_HOST, "size": 1000},
        {"containerID": 1000, "hostID": U1000_HOST, "size": 1000}
    ]);
    c.config["linux"]["gidMappings"] =
        json!([{"containerID": 0, "hostID": ROOT_HOST, "size": 65536}]);
    // runc cannot mount cgroup v1 hierarchies from inside a user namespace.
    if let Some(m) = c.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/sys/fs/cgroup");
    }
    chown_tree(&c.rootfs(), ROOT_HOST, ROOT_HOST);
}

#[test]
fn root_mapped_to_an_unprivileged_host_uid_end_to_end() {
    let mut c = Ctx::new("usernsfull");
    mapped(&mut c);
    c.config["root"]["readonly"] = json!(false);
    // Every capability the runtime knows.
    let caps = str_list(&c.features()["linux"]["capabilities"]);
    assert!(caps.len() > 30, "features lists the capabilities: {caps:?}");
    c.config["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps
    });
    c.sh_writes(
        "echo MAPS; cat /proc/self/uid_map /proc/self/gid_map; echo END; \
         id -u; grep -E '^Cap(Eff|Bnd)' /proc/self/status; \
         touch /tmp/by-root && touch /tmp/by-1000 && chown 1000:7 /tmp/by-1000 && \
         mkdir /tmp/m && mount -t tmpfs inner /tmp/m && echo MOUNTED; \
         echo MOUNTINFO; cat /proc/self/mountinfo",
    );
    let o = c.run();
    o.ok();
    let out = &o.stdout;

    let maps: Vec<Vec<&str>> = out
        .split("MAPS\n")
        .nth(1)
        .and_then(|s| s.split("END").next())
        .unwrap_or("")
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        maps,
        [
            vec!["0", "100000", "1000"],
            vec!["1000", "300000", "1000"],
            vec!["0", "100000", "65536"]
        ],
        "{o}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"0"), "root inside: {o}");
    let names: Vec<&str> = caps.iter().map(String::as_str).collect();
    let want = format!("{:016x}", cap_mask(&names));
    for key in ["CapEff", "CapBnd"] {
        let got = status_field(out, key).unwrap_or("");
        assert_eq!(got, want, "{key} full in the user namespace: {o}");
    }
    assert!(
        out.contains("MOUNTED"),
        "CAP_SYS_ADMIN over its own mounts: {o}"
    );

    // What the container made is owned by the mapped host ids.
    let tmp = c.rootfs().join("tmp");
    let by_root = fs::metadata(tmp.join("by-root")).expect("by-root on the host");
    assert_eq!((by_root.uid(), by_root.gid()), (ROOT_HOST, ROOT_HOST));
    let by_1000 = fs::metadata(tmp.join("by-1000")).expect("by-1000 on the host");
    assert_eq!((by_1000.uid(), by_1000.gid()), (U1000_HOST, ROOT_HOST + 7));

    // proc, sysfs, tmpfs, devpts and mqueue are mounted; the devices are binds of the
    // host's nodes (mknod is not allowed in a user namespace).
    let info = out.split("MOUNTINFO\n").nth(1).unwrap_or("");
    let ms = parse_mountinfo(info);
    let fstype = |mp: &str| {
        ms.iter()
            .rev()
            .find(|m| m.0 == mp)
            .map(|m| m.1.clone())
            .unwrap_or_default()
    };
    for (mp, ty) in [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
    ] {
        assert_eq!(fstype(mp), ty, "{mp}: {info}");
    }
    for dev in [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
    ] {
        assert!(
            ms.iter().any(|m| m.0 == dev),
            "{dev} is not a bind mount of the host's node: {info}"
        );
    }
    c.assert_nothing_left(&c.id);
}

/// sysfs can only be mounted by the owner of the network namespace: without a network
/// namespace of its own, a user-namespaced container gets the host's /sys bound (runc).
#[test]
fn sysfs_without_a_network_namespace_falls_back_to_a_bind() {
    if skip_unless_capsa("runc 1.1 lacks this fallback (runc 1.2 has it)") {
        return;
    }
    let mut c = Ctx::new("usernssys");
    mapped(&mut c);
    c.remove_ns("network");
    c.sh("ls /sys/class/net/lo >/dev/null && grep ' /sys ' /proc/self/mountinfo");
    let o = c.run();
    o.ok();
    assert!(o.stdout.contains(" - sysfs "), "{o}");
}

/// A second container joins the first one's user namespace by path, then its network
/// and UTS namespaces (owned by that user namespace), and makes the rest new.
#[test]
fn join_user_namespace_by_path_then_namespaces_it_owns() {
    let mut holder = Ctx::new("usernsholder");
    mapped(&mut holder);
    let pid = holder.create_holder();

    let mut c = Ctx::new("usernsjoin");
    c.set_ns("user", Some(&format!("/proc/{pid}/ns/user")));
    c.set_ns("network", Some(&format!("/proc/{pid}/ns/net")));
    c.set_ns("uts", Some(&format!("/proc/{pid}/ns/uts")));
    // runc 1.1 wants the mappings of a joined user namespace spelled out too.
    c.config["linux"]["uidMappings"] = holder.config["linux"]["uidMappings"].clone();
    c.config["linux"]["gidMappings"] = holder.config["linux"]["gidMappings"].clone();
    c.config.as_object_mut().map(|o| o.remove("hostname"));
    if let Some(m) = c.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/sys/fs/cgroup");
    }
    chown_tree(&c.rootfs(), ROOT_HOST, ROOT_HOST);
    c.sh(
        "for n in user net uts ipc mnt; do echo $n $(readlink /proc/self/ns/$n); done; \
         id -u; cat /proc/self/uid_map",
    );
    let o = c.run();
    o.ok();
    let link = |n: &str| {
        o.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{n} ")))
            .unwrap_or("")
            .to_string()
    };
    for n in ["user", "net", "uts"] {
        assert_eq!(link(n), ns_link(&pid, n), "{n} joined: {o}");
    }
    for n in ["ipc", "mnt"] {
        assert_ne!(link(n), ns_link(&pid, n), "{n} new: {o}");
    }
    assert!(
        o.stdout.lines().any(|l| l == "0"),
        "root of the joined namespace: {o}"
    );
    assert!(o.stdout.contains("100000"), "the holder's map: {o}");
    let _ = holder.rt(&["delete", "--force", &holder.id]);
    c.assert_nothing_left(&c.id);
}

/// Run `c` with the given stdin/stdout/stderr; returns the runtime's output.
fn run_with_stdio(c: &Ctx, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Output {
    c.write_config();
    let b = c.bundle();
    c.rt_with(
        &["run", "--bundle", b.to_str().expect("utf-8"), &c.id],
        move |cmd| {
            cmd.stdin(stdin).stdout(stdout).stderr(stderr);
        },
    )
}

fn read_pipe(r: OwnedFd) -> String {
    let mut s = String::new();
    let _ = std::io::Read::read_to_string(&mut fs::File::from(r), &mut s);
    s
}

/// The mapped root, and a mapped non-root user, can reopen their stdout pipe
/// (/proc/self/fd/1, which is what /dev/stdout points at).
#[test]
fn stdio_pipes_are_usable_by_the_mapped_users() {
    for uid in [0, 1000] {
        let mut c = Ctx::new("usernspipe");
        mapped(&mut c);
        c.config["process"]["user"] = json!({"uid": uid, "gid": 0});
        c.sh("echo reopened-$(id -u) > /proc/self/fd/1");
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let o = run_with_stdio(&c, Stdio::null(), Stdio::from(w), Stdio::null());
        let got = read_pipe(r);
        assert!(o.success(), "{o}");
        assert_eq!(got.trim(), format!("reopened-{uid}"), "{o}");
    }
}

/// The same for a process `exec`'d into the container.
#[test]
fn exec_stdio_pipes_are_usable_by_the_mapped_users() {
    let mut c = Ctx::new("usernsexec");
    mapped(&mut c);
    c.args(&["sleep", "1000"]);
    c.create();
    for user in ["0:0", "1000:0"] {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let o = c.rt_with(
            &[
                "exec",
                "--user",
                user,
                &c.id,
                "sh",
                "-c",
                "echo reopened-$(id -u) > /proc/self/fd/1",
            ],
            move |cmd| {
                cmd.stdin(Stdio::null()).stdout(Stdio::from(w));
            },
        );
        let got = read_pipe(r);
        assert!(o.success(), "{o}");
        let uid = user.split(':').next().unwrap_or("");
        assert_eq!(got.trim(), format!("reopened-{uid}"), "{o}");
    }
}

/// Stdio on the host's /dev/null (and a host file) must never change owner: only the
/// container's own pipes and terminal are handed over. A previous capsa chowned the
/// host's /dev/null to the container's root.
#[test]
fn host_dev_null_and_files_keep_their_owner() {
    let before = fs::metadata("/dev/null").expect("stat /dev/null");
    assert_eq!(
        (before.uid(), before.gid()),
        (0, 0),
        "host /dev/null already changed"
    );
    for (userns, uid) in [(true, 0), (true, 1000), (false, 1000)] {
        let mut c = Ctx::new("usernsnull");
        if userns {
            mapped(&mut c);
        }
        c.config["process"]["user"] = json!({"uid": uid, "gid": uid});
        c.args(&["true"]);
        let o = run_with_stdio(&c, Stdio::null(), Stdio::null(), Stdio::null());
        assert!(o.success(), "userns {userns} uid {uid}: {o}");
        let after = fs::metadata("/dev/null").expect("stat /dev/null");
        assert_eq!(
            (after.uid(), after.gid(), after.mode()),
            (before.uid(), before.gid(), before.mode()),
            "host /dev/null changed (userns {userns}, uid {uid})"
        );
    }
    // runc hands a host file given as stdio to the container user; capsa does not.
    if skip_unless_capsa("host files given as stdio keep their owner") {
        return;
    }
    let mut c = Ctx::new("usernsfile");
    mapped(&mut c);
    c.config["process"]["user"] = json!({"uid": 1000, "gid": 0});
    c.sh("echo x");
    let log = c.scratch("host.log");
    let f = fs::File::create(&log).expect("create host.log");
    let o = run_with_stdio(&c, Stdio::null(), Stdio::from(f), Stdio::null());
    assert!(o.success(), "{o}");
    let m = fs::metadata(&log).expect("stat host.log");
    assert_eq!((m.uid(), m.gid()), (0, 0), "host file chowned");
    assert_eq!(read_lossy(&log).trim(), "x");
}

/// A user namespace given one mapping list needs the other too (neither is
/// crun's default map of our own ids, crun_suite.rs), and mappings need a
/// user namespace.
#[test]
fn mapping_errors_name_the_field() {
    let mut c = Ctx::new("usernsnomap");
    c.set_ns("user", None);
    c.config["linux"]["uidMappings"] = json!([]);
    c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
    c.args(&["true"]);
    let o = c.run();
    assert!(!o.success(), "{o}");
    if is_capsa() {
        o.fails_with("linux.uidMappings");
    }
    c.assert_nothing_left(&c.id);

    // Root must be mapped: the init sets the container up as root.
    let mut c = Ctx::new("usernsnoroot");
    c.set_ns("user", None);
    c.config["linux"]["uidMappings"] = json!([{"containerID": 1, "hostID": 100001, "size": 10}]);
    c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 10}]);
    c.args(&["true"]);
    let o = c.run();
    assert!(!o.success(), "{o}");
    if is_capsa() {
        o.fails_with("linux.uidMappings: no mapping for container id 0");
    }
    c.assert_nothing_left(&c.id);

    // runc 1.1 ignores mappings without a user namespace; capsa refuses them.
    if skip_unless_capsa("mappings without a user namespace are refused") {
        return;
    }
    let mut c = Ctx::new("usernsmaponly");
    c.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1, "size": 1}]);
    c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1, "size": 1}]);
    c.args(&["true"]);
    let o = c.run();
    o.fails_with("linux.uidMappings");
    c.assert_nothing_left(&c.id);
}
