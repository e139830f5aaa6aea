//! Bad input: each case fails with a non-zero exit and a message that says what is wrong,
//! and leaves nothing behind (state dir, cgroup, process).

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// Write the config, `create`, and expect failure with nothing left behind.
#[track_caller]
fn create_fails(c: &Ctx) -> Output {
    c.write_config();
    let o = c.create_id(&c.id, &[]);
    assert!(o.code.is_some_and(|x| x != 0), "create should fail: {o}");
    c.assert_nothing_left(&c.id);
    o
}

#[test]
fn leftover_check_sees_a_live_container() {
    // The "nothing left" checks below are only worth something if they can see a live
    // container: state dir, cgroup (the test's cgroupsPath) and process.
    let mut c = Ctx::new("leftcheck");
    c.args(&["sleep", "1000"]);
    c.create();
    c.rt(&["start", &c.id]).ok();
    let left = c.leftovers(&c.id);
    assert!(left.iter().any(|l| l.starts_with("state dir")), "{left:?}");
    assert!(left.iter().any(|l| l.starts_with("cgroup")), "{left:?}");
    assert!(left.iter().any(|l| l.starts_with("process")), "{left:?}");
    c.rt(&["delete", "--force", &c.id]).ok();
    c.assert_nothing_left(&c.id);
}

#[test]
fn missing_bundle_dir() {
    let c = Ctx::new("nobundle");
    let missing = c.scratch("no-such-bundle");
    let o = c.rt(&[
        "create",
        "--bundle",
        missing.to_str().expect("utf-8"),
        &c.id,
    ]);
    o.fails_with_any(&["no such file or directory"]);
    c.assert_nothing_left(&c.id);
}

#[test]
fn missing_config_json() {
    let c = Ctx::new("noconfig");
    let b = c.bundle();
    let o = c.rt(&["create", "--bundle", b.to_str().expect("utf-8"), &c.id]);
    // runc: "JSON specification file config.json not found".
    o.fails_with("config.json");
    o.fails_with_any(&["not found", "no such file"]);
    c.assert_nothing_left(&c.id);
}

#[test]
fn malformed_json() {
    let c = Ctx::new("badjson");
    fs::write(c.bundle().join("config.json"), "{bad").expect("write");
    let o = c.create_id(&c.id, &[]);
    assert!(o.code.is_some_and(|x| x != 0), "{o}");
    assert!(!o.stderr.trim().is_empty(), "a message is expected: {o}");
    c.assert_nothing_left(&c.id);
}

#[test]
fn unknown_namespace_type_names_it() {
    let mut c = Ctx::new("badns");
    c.set_ns("bogusns", None);
    let o = create_fails(&c);
    // runc: `namespace {"bogusns" ""} does not exist`.
    o.fails_with("bogusns");
    o.fails_with_any(&["namespace"]);
}

#[test]
fn hostname_without_uts_namespace() {
    let mut c = Ctx::new("hostnouts");
    c.remove_ns("uts");
    let host = HostSetting::save("/proc/sys/kernel/hostname");
    let o = create_fails(&c);
    // runc: "unable to set hostname without a private UTS namespace".
    o.fails_with_any(&["hostname"]);
    assert!(!host.changed(), "host hostname changed");
}

#[test]
fn invalid_container_id() {
    let c = Ctx::new("badid");
    c.write_config();
    for bad in ["../escape", "a/b", ""] {
        let o = c.create_id(bad, &[]);
        assert!(o.code.is_some_and(|x| x != 0), "id {bad:?} accepted: {o}");
    }
    assert!(
        !c.tmp.path().join("escape").exists(),
        "state escaped --root"
    );
    let left: Vec<_> = fs::read_dir(c.root())
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "state left in --root: {left:?}");
}

#[test]
fn unknown_mount_type() {
    let mut c = Ctx::new("badmount");
    c.push_mount(json!({"destination": "/x", "type": "nosuchfs", "source": "none"}));
    let o = create_fails(&c);
    o.fails_with("/x");
}

#[test]
fn duplicate_container_id() {
    let mut c = Ctx::new("dupid");
    c.args(&["sleep", "1000"]);
    c.create();
    let pid = c.state(&c.id)["pid"].clone();
    let o = c.create_id(&c.id, &[]);
    // runc: "container with given ID already exists".
    o.fails_with("already exists");
    // The first container is untouched.
    let s = c.state(&c.id);
    assert_eq!(s["status"], "created", "{s}");
    assert_eq!(s["pid"], pid, "{s}");
}

#[test]
fn start_of_running_container() {
    let mut c = Ctx::new("startrunning");
    c.args(&["sleep", "1000"]);
    c.create();
    c.rt(&["start", &c.id]).ok();
    c.rt(&["start", &c.id])
        .fails_with("cannot start an already running container");
    assert_eq!(c.status(&c.id), "running");
}

#[test]
fn start_of_stopped_container() {
    let mut c = Ctx::new("startstopped");
    c.args(&["true"]);
    c.create();
    c.rt(&["start", &c.id]).ok();
    c.wait_status(&c.id, "stopped", std::time::Duration::from_secs(10));
    // runc: "cannot start a container that has stopped".
    c.rt(&["start", &c.id]).fails_with_any(&["stopped"]);
}

#[test]
fn kill_of_stopped_container() {
    let mut c = Ctx::new("killstopped");
    c.args(&["true"]);
    c.create();
    c.rt(&["start", &c.id]).ok();
    c.wait_status(&c.id, "stopped", std::time::Duration::from_secs(10));
    c.rt(&["kill", &c.id, "KILL"])
        .fails_with("container not running");
}

#[test]
fn commands_on_missing_container() {
    let c = Ctx::new("missing");
    for cmd in [
        vec!["state", c.id.as_str()],
        vec!["delete", c.id.as_str()],
        vec!["kill", c.id.as_str(), "KILL"],
        vec!["start", c.id.as_str()],
    ] {
        c.rt(&cmd).fails_with("container does not exist");
    }
    c.assert_nothing_left(&c.id);
}

#[test]
fn missing_executable_in_path() {
    let mut c = Ctx::new("noexe");
    c.args(&["no-such-command"]);
    let o = create_fails(&c);
    o.fails_with("no-such-command");
    o.fails_with_any(&[
        "executable file not found in $PATH",
        "no such file or directory",
    ]);
}

#[test]
fn missing_executable_absolute() {
    let mut c = Ctx::new("noexeabs");
    c.args(&["/no/such/binary"]);
    let o = create_fails(&c);
    o.fails_with("/no/such/binary");
    o.fails_with_any(&["no such file or directory"]);
}

#[test]
fn missing_executable_through_run() {
    let mut c = Ctx::new("noexerun");
    c.args(&["no-such-command"]);
    let o = c.run();
    o.fails_with_any(&[
        "executable file not found in $PATH",
        "no such file or directory",
    ]);
    c.assert_nothing_left(&c.id);
}

#[test]
fn non_executable_file() {
    let mut c = Ctx::new("noexec");
    c.args(&["/etc/passwd"]);
    let o = create_fails(&c);
    o.fails_with_any(&["permission denied"]);
}

#[test]
fn failing_create_with_json_log_leaves_nothing() {
    let mut c = Ctx::new("failjsonlog");
    c.args(&["no-such-command"]);
    c.write_config();
    let log = c.scratch("log.json");
    let b = c.bundle();
    let o = c.rt(&[
        "--log",
        log.to_str().expect("utf-8"),
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.to_str().expect("utf-8"),
        &c.id,
    ]);
    assert!(o.code.is_some_and(|x| x != 0), "{o}");
    let text = fs::read_to_string(&log).expect("log written");
    let last_error = text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error")
        .unwrap_or_else(|| panic!("no error line in {text:?}"));
    let msg = last_error["msg"].as_str().unwrap_or("");
    assert!(
        msg.contains("executable file not found in $PATH")
            || msg.contains("no such file or directory"),
        "engines map this msg to exit 127: {msg:?}"
    );
    c.assert_nothing_left(&c.id);
}

/// A host's bounding set may lack some capability (the test machine's lacks
/// CAP_SYS_RESOURCE; the test makes such a host for the runtime): asking for
/// one the runtime cannot grant fails before anything is made, naming the set
/// and the capability. Asking only to keep it in the
/// bounding set is harmless (nothing to drop), as in runc.
#[test]
fn capability_outside_the_bounding_set_is_refused() {
    // The runtime runs without the highest capability this kernel knows (a host whose
    // bounding set lacks it, made for this one command), and the config asks for it.
    let last: u32 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .expect("/proc/sys/kernel/cap_last_cap");
    let missing = last.min(cap_number("CAP_CHECKPOINT_RESTORE"));
    let name = cap_name(missing);
    let mut c = Ctx::new("capbnd");
    let set = json!([name.clone(), "CAP_KILL"]);
    c.config["process"]["capabilities"] = json!({
        "bounding": set, "effective": set, "permitted": set,
    });
    c.write_config();
    let b = c.bundle();
    let o = c.rt_with(
        &["create", "--bundle", b.to_str().expect("utf-8"), &c.id],
        |cmd| without_capability(cmd, missing),
    );
    assert!(o.code.is_some_and(|x| x != 0), "create should fail: {o}");
    c.assert_nothing_left(&c.id);
    if is_capsa() {
        o.fails_with("process.capabilities.effective");
        o.fails_with(&name);
    }

    // Only in the bounding set: the container runs.
    let mut c = Ctx::new("capbndok");
    c.config["process"]["capabilities"] = json!({
        "bounding": [name, "CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
    });
    c.args(&["true"]);
    c.write_config();
    let b = c.bundle();
    c.rt_with(
        &["run", "--bundle", b.to_str().expect("utf-8"), &c.id],
        |cmd| without_capability(cmd, missing),
    )
    .ok();
    c.assert_nothing_left(&c.id);
}

/// Where capsa refuses what runc refuses, it does so in runc's words (engines and
/// suites match them); the config.json field stays in front. Each needle is runc
/// 1.1's text for the same config.
#[test]
fn refusals_in_runcs_words() {
    use std::os::unix::fs::symlink;
    type Edit = fn(&mut Ctx);
    let cases: [(&str, Edit, &str); 13] = [
        (
            "symproc",
            |c| {
                fs::remove_dir(c.rootfs().join("proc")).expect("rmdir proc");
                symlink("tmp", c.rootfs().join("proc")).expect("symlink proc");
            },
            "must be mounted on ordinary directory",
        ),
        (
            "filesys",
            |c| {
                fs::remove_dir(c.rootfs().join("sys")).expect("rmdir sys");
                fs::write(c.rootfs().join("sys"), "").expect("file sys");
            },
            "must be mounted on ordinary directory",
        ),
        (
            "netsysctl",
            |c| {
                c.remove_ns("network");
                c.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "0"});
            },
            "not allowed in host network namespace",
        ),
        (
            "ipcsysctl",
            |c| {
                c.remove_ns("ipc");
                c.config["linux"]["sysctl"] = json!({"kernel.msgmax": "8192"});
            },
            "is not allowed in the hosts ipc namespace",
        ),
        (
            "usernomap",
            |c| {
                // Only one list (neither is crun's default map of our ids).
                c.set_ns("user", None);
                c.config["linux"]["gidMappings"] =
                    json!([{"containerID": 0, "hostID": 0, "size": 1}]);
            },
            "User namespaces enabled, but no uid mappings found.",
        ),
        (
            "noprocess",
            |c| {
                c.config.as_object_mut().map(|o| o.remove("process"));
            },
            "process property must not be empty",
        ),
        (
            "noroot",
            |c| {
                c.config.as_object_mut().map(|o| o.remove("root"));
            },
            "root must be specified",
        ),
        (
            "relcwd",
            |c| {
                c.config["process"]["cwd"] = json!("tmp");
            },
            "Cwd must be an absolute path",
        ),
        (
            "dupns",
            |c| {
                if let Some(l) = c.config["linux"]["namespaces"].as_array_mut() {
                    l.push(json!({"type": "pid"}));
                }
            },
            "duplicated ns",
        ),
        (
            "nocwd",
            |c| {
                c.config["process"].as_object_mut().map(|o| o.remove("cwd"));
            },
            "Cwd property must not be empty",
        ),
        (
            "emptycwd",
            |c| {
                c.config["process"]["cwd"] = json!("");
            },
            "Cwd property must not be empty",
        ),
        (
            "vmsysctl",
            |c| {
                c.config["linux"]["sysctl"] = json!({"vm.swappiness": "10"});
            },
            "is not in a separate kernel namespace",
        ),
        (
            "mountopt",
            |c| {
                c.push_mount(json!({"destination": "/mnt", "type": "tmpfs",
                    "source": "tmpfs", "options": ["capsa-bogus-option"]}));
            },
            "to rootfs at",
        ),
    ];
    for (tag, edit, needle) in cases {
        let mut c = Ctx::new(tag);
        edit(&mut c);
        create_fails(&c).fails_with(needle);
    }
}

/// An unknown capability is a warning (config.md: SHOULD NOT fail), in runc's words.
#[test]
fn unknown_capability_warning_in_runcs_words() {
    let mut c = Ctx::new("capwarn");
    if let Some(b) = c.config["process"]["capabilities"]["bounding"].as_array_mut() {
        b.push(json!("CAP_CAPSA_BOGUS"));
    }
    let o = c.run();
    o.ok();
    assert!(
        o.stderr
            .contains("ignoring unknown or unavailable capabilities: [CAP_CAPSA_BOGUS]"),
        "{o}"
    );
}

/// Issue 11 item 8: checks runc makes that capsa lacked. Each config fails at `create`
/// with nothing left; on capsa the message names the field (and uses runc's words where
/// runc has some). runc itself fails each of these too, except where noted.
#[test]
fn checks_runc_makes() {
    let own_netns = format!("/proc/{}/ns/net", std::process::id());
    type Edit = Box<dyn Fn(&mut Ctx)>;
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        (
            "envnoeq",
            Box::new(|c| push(&mut c.config["process"]["env"], json!("NOEQUALS"))),
            &["process.env[2]", "invalid environment variable"],
        ),
        (
            "envnoname",
            Box::new(|c| push(&mut c.config["process"]["env"], json!("=value"))),
            &["process.env[2]", "environment variable name can't be empty"],
        ),
        (
            "capnum",
            Box::new(|c| {
                push(
                    &mut c.config["process"]["capabilities"]["bounding"],
                    json!(5),
                )
            }),
            &["process.capabilities.bounding[3]"],
        ),
        (
            "devnullacc",
            Box::new(|c| {
                push(
                    &mut c.config["linux"]["resources"]["devices"],
                    json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": null}),
                )
            }),
            &[
                "linux.resources.devices[1].access",
                "device access at 1 field cannot be empty",
            ],
        ),
        (
            "devnoacc",
            Box::new(|c| {
                push(
                    &mut c.config["linux"]["resources"]["devices"],
                    json!({"allow": true, "type": "c", "major": 1, "minor": 3}),
                )
            }),
            &["linux.resources.devices[1].access", "cannot be empty"],
        ),
        (
            "sysctlhost",
            Box::new(|c| c.config["linux"]["sysctl"] = json!({"kernel.hostname": "x"})),
            &["linux.sysctl.kernel.hostname", "conflicts with the OCI"],
        ),
        (
            "sysctlhostnet",
            Box::new(move |c| {
                c.set_ns("network", Some(&own_netns));
                c.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
            }),
            &[
                "linux.sysctl.net.ipv4.ip_forward",
                "not allowed in host network namespace",
            ],
        ),
    ];
    for (tag, edit, needles) in cases {
        let mut c = Ctx::new(tag);
        edit(&mut c);
        let o = create_fails(&c);
        if is_capsa() {
            for n in needles {
                o.fails_with(n);
            }
        }
    }
    // An empty destination is no path at all; runc 1.1 warns, then mounts over the root
    // and fails obscurely.
    let mut c = Ctx::new("mntempty");
    c.push_mount(json!({"destination": "", "type": "tmpfs", "source": "tmpfs"}));
    let o = create_fails(&c);
    if is_capsa() {
        o.fails_with("mounts[7].destination: mount destination must not be empty");
    }
    // Found by tests/config_fuzz.rs: a tmpfs on /dev/null made a directory there and the
    // default device then failed without naming any field.
    // (runc lets the tmpfs hide the device.)
    if is_capsa() {
        let mut c = Ctx::new("mntdevnull");
        c.push_mount(json!({"destination": "/dev/null", "type": "tmpfs", "source": "tmpfs"}));
        create_fails(&c)
            .fails_with("mounts[7].destination: /dev/null is a device every container gets");
    }
}

/// A relative mount destination is taken relative to the container's /, with runc's
/// deprecation warning naming the field.
#[test]
fn relative_mount_destination_warns() {
    let mut c = Ctx::new("mntrel");
    c.push_mount(json!({"destination": "mnt", "type": "tmpfs", "source": "tmpfs"}));
    c.args(&["sh", "-c", "grep -q ' /mnt tmpfs ' /proc/mounts"]);
    let o = c.run();
    o.ok();
    if is_capsa() {
        assert!(
            o.stderr.contains("mounts[7].destination") && o.stderr.contains("deprecated"),
            "{o}"
        );
    }
    c.assert_nothing_left(&c.id);
}

/// `update --memory` below what the cgroup uses: cgroup v1 says EBUSY; the error names
/// linux.resources.memory.limit and both values (runc's "unable to set memory limit to N
/// (current usage: U, peak usage: P)").
#[test]
fn memory_limit_below_usage_names_the_values() {
    if !Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        skip("no cgroup v1 memory controller");
        return;
    }
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    if swaps.lines().count() > 1 {
        skip("swap is on: the kernel may swap the usage out instead of refusing");
        return;
    }
    let mut c = Ctx::new("memusage");
    // 32 MiB of tmpfs pages: without swap, nothing the kernel can reclaim.
    c.sh("dd if=/dev/zero of=/dev/shm/fill bs=1M count=32 2>/dev/null; echo ready; sleep 1000");
    let out = c.create_capturing();
    c.rt(&["start", &c.id]).ok();
    wait_for_text(&out, "ready\n", Duration::from_secs(10));
    let o = c.rt(&["update", "--memory", "8388608", &c.id]);
    o.fails_with("8388608");
    if is_capsa() {
        o.fails_with("linux.resources.memory.limit");
        o.fails_with("current usage: ");
    } else {
        o.fails_with("current usage: ");
    }
    assert_eq!(c.status(&c.id), "running");
    c.rt(&["delete", "--force", &c.id]).ok();
    c.assert_nothing_left(&c.id);
}

fn push(list: &mut serde_json::Value, v: serde_json::Value) {
    list.as_array_mut().expect("a JSON array").push(v);
}
