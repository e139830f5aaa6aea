//! Namespaces as the workload sees them: new ones differ from the host's, unlisted ones
//! are the host's, `path` joins an existing one; hostname and domainname.

mod common;

use common::*;
use serde_json::json;
use std::collections::BTreeMap;

const ALL: [&str; 7] = ["cgroup", "ipc", "mnt", "net", "pid", "uts", "user"];

/// Run the container and return its ns links by /proc name.
fn ns_inside(c: &mut Ctx) -> BTreeMap<String, String> {
    c.sh("for n in cgroup ipc mnt net pid uts user; do echo $n $(readlink /proc/self/ns/$n); done");
    let o = c.run();
    o.ok();
    o.stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

fn check(inside: &BTreeMap<String, String>, new: &[&str]) {
    for n in ALL {
        let host = ns_link("self", n);
        let got = inside.get(n).map(String::as_str).unwrap_or("");
        assert!(!got.is_empty(), "no {n} link inside: {inside:?}");
        if new.contains(&n) {
            assert_ne!(got, host, "{n} should be a new namespace");
        } else {
            assert_eq!(got, host, "{n} is not listed, so it must be the host's");
        }
    }
}

#[test]
fn default_namespaces_are_new_and_others_are_the_hosts() {
    let mut c = Ctx::new("nsdefault");
    let inside = ns_inside(&mut c);
    check(&inside, &["ipc", "mnt", "net", "pid", "uts"]);
}

#[test]
fn cgroup_namespace_is_new_when_listed() {
    let mut c = Ctx::new("nscgroup");
    c.set_ns("cgroup", None);
    let inside = ns_inside(&mut c);
    check(&inside, &["cgroup", "ipc", "mnt", "net", "pid", "uts"]);
}

#[test]
fn unlisted_namespaces_are_the_hosts() {
    let mut c = Ctx::new("nsfew");
    c.remove_ns("network").remove_ns("ipc").remove_ns("uts");
    c.config.as_object_mut().map(|o| o.remove("hostname"));
    let inside = ns_inside(&mut c);
    check(&inside, &["mnt", "pid"]);
}

#[test]
fn user_namespace_with_mappings() {
    let mut c = Ctx::new("nsuser");
    c.set_ns("user", None);
    c.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    // cgroup v1 hierarchies cannot be bind-mounted from inside a user namespace.
    if let Some(m) = c.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/sys/fs/cgroup");
    }
    let inside = ns_inside(&mut c);
    check(&inside, &["ipc", "mnt", "net", "pid", "uts", "user"]);

    c.id = c.new_id("nsuser2");
    c.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u");
    let o = c.run();
    o.ok();
    let rows: Vec<Vec<&str>> = o
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{o}");
    assert_eq!(rows[0], ["0", "200000", "65536"], "uid_map: {o}");
    assert_eq!(rows[1], ["0", "200000", "65536"], "gid_map: {o}");
    assert_eq!(rows[2], ["0"], "{o}");
}

#[test]
fn pid_namespace_makes_workload_pid_1() {
    let mut c = Ctx::new("nspid1");
    c.sh("echo $$");
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout.trim(), "1", "{o}");
}

#[test]
fn join_network_and_uts_namespaces_by_path() {
    let Some(holder) = NsHolder::new(&["--net", "--uts"], "net") else {
        skip("cannot start `unshare --net --uts sleep`");
        return;
    };
    let pid = holder.pid().to_string();
    let mut c = Ctx::new("nsjoin");
    c.set_ns("network", Some(&format!("/proc/{pid}/ns/net")));
    c.set_ns("uts", Some(&format!("/proc/{pid}/ns/uts")));
    // Setting a hostname would change the holder's namespace: leave it alone.
    c.config.as_object_mut().map(|o| o.remove("hostname"));
    let inside = ns_inside(&mut c);
    assert_eq!(inside["net"], ns_link(&pid, "net"), "{inside:?}");
    assert_eq!(inside["uts"], ns_link(&pid, "uts"), "{inside:?}");
    assert_ne!(inside["net"], ns_link("self", "net"));
    assert_ne!(inside["ipc"], ns_link("self", "ipc"), "ipc is still new");
    c.assert_nothing_left(&c.id);
}

#[test]
fn join_by_path_to_wrong_namespace_type_fails() {
    let mut c = Ctx::new("nsjoinbad");
    // The path is a uts namespace, the entry says network.
    c.set_ns("network", Some("/proc/self/ns/uts"));
    let o = c.run();
    assert_ne!(o.code, Some(0), "{o}");
    c.assert_nothing_left(&c.id);
}

#[test]
fn hostname_and_domainname() {
    let _host = HostSetting::save("/proc/sys/kernel/hostname");
    let _domain = HostSetting::save("/proc/sys/kernel/domainname");
    let mut c = Ctx::new("nshost");
    c.config["hostname"] = json!("capsa-host");
    c.config["domainname"] = json!("capsa.example");
    c.sh("hostname; cat /proc/sys/kernel/domainname");
    let o = c.run();
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"capsa-host"), "{o}");
    // runc 1.1 ignores `domainname` (it prints "(none)"); runc 1.2 and crun set it.
    if is_capsa() {
        assert_eq!(lines.get(1), Some(&"capsa.example"), "{o}");
    } else if lines.get(1) != Some(&"capsa.example") {
        eprintln!("NOTE: {} did not set domainname: {o}", runtime().display());
    }
}

/// Whether the runtime's `features` lists namespace type `ty` (runc 1.1 has no time
/// namespace).
fn runtime_supports_ns(c: &Ctx, ty: &str) -> bool {
    c.features()["linux"]["namespaces"]
        .as_array()
        .is_some_and(|a| a.iter().any(|n| n == ty))
}

/// (clock, secs, nanosecs) rows of a /proc/PID/timens_offsets text.
fn offsets(text: &str) -> Vec<(String, i64, i64)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [clock @ ("monotonic" | "boottime"), s, ns] => {
                    Some((clock.to_string(), s.parse().ok()?, ns.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

fn host_uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn time_ns_with_offsets(c: &mut Ctx) {
    c.set_ns("time", None);
    c.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 1000000, "nanosecs": 250},
        "boottime": {"secs": 2000000, "nanosecs": 0}
    });
}

/// The offsets are in place before the workload enters the namespace: it sees them in
/// /proc/self/timens_offsets, and /proc/uptime counts from the shifted boot time.
#[test]
fn time_namespace_with_offsets() {
    let mut c = Ctx::new("nstime");
    if !runtime_supports_ns(&c, "time") {
        skip("the runtime does not list the time namespace");
        return;
    }
    time_ns_with_offsets(&mut c);
    c.sh(
        "readlink /proc/self/ns/time; cat /proc/self/timens_offsets; echo UPTIME; cat /proc/uptime",
    );
    let before = host_uptime();
    let o = c.run();
    let after = host_uptime();
    o.ok();
    assert_ne!(
        o.stdout.lines().next().unwrap_or(""),
        ns_link("self", "time"),
        "new time namespace: {o}"
    );
    let got = offsets(&o.stdout);
    assert!(got.contains(&("monotonic".into(), 1000000, 250)), "{o}");
    assert!(got.contains(&("boottime".into(), 2000000, 0)), "{o}");
    let up: f64 = o
        .stdout
        .split("UPTIME\n")
        .nth(1)
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(
        up >= before + 2000000.0 && up <= after + 2000000.0 + 1.0,
        "uptime {up} in the container, host {before}..{after}: {o}"
    );
}

/// A time namespace joined by path is the holder's, offsets included; offsets cannot be
/// given for a joined one (they are fixed once a process is inside).
#[test]
fn join_time_namespace_by_path() {
    let mut holder = Ctx::new("nstimeholder");
    if !runtime_supports_ns(&holder, "time") {
        skip("the runtime does not list the time namespace");
        return;
    }
    time_ns_with_offsets(&mut holder);
    let pid = holder.create_holder();
    let path = format!("/proc/{pid}/ns/time");

    let mut c = Ctx::new("nstimejoin");
    c.set_ns("time", Some(&path));
    c.sh("readlink /proc/self/ns/time; cat /proc/self/timens_offsets");
    let o = c.run();
    o.ok();
    assert_eq!(
        o.stdout.lines().next(),
        Some(ns_link(&pid, "time").as_str()),
        "{o}"
    );
    assert!(
        offsets(&o.stdout).contains(&("boottime".into(), 2000000, 0)),
        "{o}"
    );

    let mut c = Ctx::new("nstimejoinoff");
    c.set_ns("time", Some(&path));
    c.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 5, "nanosecs": 0}});
    c.args(&["true"]);
    let o = c.run();
    assert_ne!(o.code, Some(0), "offsets for a joined time namespace: {o}");
    if is_capsa() {
        o.fails_with("linux.timeOffsets");
    }
    c.assert_nothing_left(&c.id);
}

#[test]
fn time_offsets_without_a_time_namespace_fail() {
    let mut c = Ctx::new("nstimenons");
    if !runtime_supports_ns(&c, "time") {
        skip("the runtime does not list the time namespace");
        return;
    }
    c.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 5, "nanosecs": 0}});
    c.args(&["true"]);
    let o = c.run();
    assert_ne!(o.code, Some(0), "{o}");
    if is_capsa() {
        o.fails_with("linux.timeOffsets");
    }
    c.assert_nothing_left(&c.id);
}

#[test]
fn time_offsets_of_an_unknown_clock_are_refused_before_anything_is_made() {
    if skip_unless_capsa("capsa names the clock field") {
        return;
    }
    let mut c = Ctx::new("nstimeclock");
    if !runtime_supports_ns(&c, "time") {
        skip("the runtime does not list the time namespace");
        return;
    }
    c.set_ns("time", None);
    c.config["linux"]["timeOffsets"] = json!({"realtime": {"secs": 5, "nanosecs": 0}});
    c.args(&["true"]);
    c.create_refused("linux.timeOffsets.realtime: only monotonic and boottime can be offset");
}

/// The runtime's mount table below `dir` (mountinfo lines), as the test sees it.
fn mounts_below(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.to_str().expect("utf-8");
    read_lossy(std::path::Path::new("/proc/self/mountinfo"))
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|p| p.starts_with(dir)))
        .map(str::to_owned)
        .collect()
}

/// No `mount` namespace listed: the container runs in the runtime's mount namespace
/// (config-linux.md: unlisted namespaces are inherited), with its mounts made there,
/// in its rootfs (which it is chrooted into). After delete the runtime's mount table is
/// as it was before create. `none`: no namespaces at all; `no_linux`: not even a
/// `linux` section (config.md: OPTIONAL).
fn no_mount_namespace(tag: &str, none: bool, no_linux: bool) {
    // runc leaves its mounts in the runtime's namespace: not run there, as
    // that namespace is the host's.
    if skip_unless_capsa("runc leaves the container's mounts on the host") {
        return;
    }
    let mut c = Ctx::new(tag);
    c.remove_ns("mount");
    if none {
        c.config["linux"]["namespaces"] = json!([]);
        c.config.as_object_mut().map(|o| o.remove("hostname"));
    }
    for k in ["maskedPaths", "readonlyPaths"] {
        c.config["linux"].as_object_mut().map(|o| o.remove(k));
    }
    if no_linux {
        c.config.as_object_mut().map(|o| o.remove("linux"));
    }
    let before = mounts_below(c.tmp.path());
    c.sh("readlink /proc/self/ns/mnt; readlink /proc/self/ns/pid; \
          test -e /.capsa-test-rootfs && echo in-rootfs; test -d /proc/self/fd && echo proc");
    let out = c.create_capturing();
    let during = mounts_below(c.tmp.path());
    c.rt(&["start", &c.id]).ok();
    c.wait_status(&c.id, "stopped", std::time::Duration::from_secs(10));
    c.rt(&["delete", &c.id]).ok();
    let after = mounts_below(c.tmp.path());
    let seen = read_lossy(&out);
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(ns_link("self", "mnt").as_str()),
        "{seen}"
    );
    let pid_new = lines.get(1).copied() != Some(ns_link("self", "pid").as_str());
    assert_eq!(pid_new, !none, "{seen}");
    assert!(
        seen.contains("in-rootfs") && seen.contains("proc"),
        "{seen}"
    );
    assert!(
        during.iter().any(|l| l.contains(" - proc ")),
        "the container's /proc should be a mount in the runtime's namespace: {during:#?}"
    );
    assert_eq!(
        before, after,
        "mounts left in the runtime's mount namespace"
    );
}

#[test]
fn no_mount_namespace_runs_in_the_runtimes() {
    no_mount_namespace("nomntns", false, false);
}

#[test]
fn no_namespaces_at_all() {
    no_mount_namespace("nons", true, false);
}

#[test]
fn no_linux_section() {
    no_mount_namespace("nolinux", true, true);
}

/// A create that fails after the mounts were made in the runtime's mount namespace
/// (here a createRuntime hook fails) leaves none of them.
#[test]
fn no_mount_namespace_failed_create_leaves_no_mounts() {
    if skip_unless_capsa("runc leaves the container's mounts on the host") {
        return;
    }
    let mut c = Ctx::new("nomntfail");
    c.remove_ns("mount");
    for k in ["maskedPaths", "readonlyPaths"] {
        c.config["linux"].as_object_mut().map(|o| o.remove(k));
    }
    c.config["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    let before = mounts_below(c.tmp.path());
    c.create_refused("createRuntime");
    assert_eq!(before, mounts_below(c.tmp.path()));
}

/// maskedPaths / readonlyPaths without a mount namespace would change the runtime's own
/// /proc and /sys: refused, in runc's words.
#[test]
fn no_mount_namespace_with_masked_paths_is_refused() {
    let mut c = Ctx::new("nomntmask");
    c.remove_ns("mount");
    c.create_refused("unable to restrict sys entries without a private MNT namespace");
}

/// root.path "/" without a mount namespace: the container's mounts would be the host's
/// own (proc over /proc...), and so would what delete detaches. Refused. The runtime runs
/// in a private mount namespace of the test's, so that a regression stays there.
#[test]
fn no_mount_namespace_with_the_hosts_root_is_refused() {
    if skip_unless_capsa("runc mounts over the runtime's own /proc, /dev, /sys") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let mut c = Ctx::new("nomntroot");
    c.remove_ns("mount");
    for k in ["maskedPaths", "readonlyPaths"] {
        c.config["linux"].as_object_mut().map(|o| o.remove(k));
    }
    c.config["root"] = json!({"path": "/", "readonly": false});
    c.write_config();
    let b = c.bundle();
    let o = c.rt_with(
        &["create", "--bundle", b.to_str().expect("utf-8"), &c.id],
        |cmd| {
            // SAFETY: runs in the forked child before exec: unshare and mount with
            // constant, NUL-terminated arguments.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::unshare(libc::CLONE_NEWNS) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let flags = libc::MS_REC | libc::MS_PRIVATE;
                    let none = std::ptr::null();
                    if libc::mount(none, c"/".as_ptr(), none, flags, std::ptr::null()) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        },
    );
    o.fails_with("root.path");
    c.assert_nothing_left(&c.id);
}
