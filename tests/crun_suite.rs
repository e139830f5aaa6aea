//! Behaviour crun's own test suite (tests/test_*.py, which drive any
//! runtime named by OCI_RUNTIME) relies on, where capsa differed: its
//! harness's `--config` flag, `exec --cap` on a process without
//! capabilities, a missing cwd on a read-only root, the words its error
//! checks look for, and a user namespace given no id mappings.

mod common;

use std::fs;

use common::*;
use serde_json::json;

/// The hex mask of one /proc/self/status field (CapBnd, CapEff...).
fn status_mask(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// crun's harness runs `run --config config.json ID` and `create --config
/// config/config.json ID` from the bundle: the file is relative to the
/// bundle, and a file other than config.json is the container's spec for
/// `exec` too.
#[test]
fn config_flag_names_the_spec_file() {
    if skip_unless_capsa("--config is crun's flag; runc has none") {
        return;
    }
    let mut c = Ctx::new("cfgflag");
    let b = c.bundle();
    let b = b.to_str().expect("utf-8");

    // The bundle's own config.json, named explicitly.
    c.args(&["echo", "from-config-json"]);
    c.write_config();
    let o = c.rt(&["run", "--config", "config.json", "--bundle", b, &c.id]);
    o.ok();
    assert_eq!(o.stdout.trim(), "from-config-json", "{o}");

    // Another file, with no config.json in the bundle at all.
    fs::remove_file(c.bundle().join("config.json")).expect("rm config.json");
    let mut alt = c.config.clone();
    alt["process"]["args"] = json!(["sleep", "1000"]);
    alt["process"]["env"] = json!(["PATH=/bin:/usr/bin", "WHICH=alternate"]);
    fs::create_dir_all(c.bundle().join("config")).expect("mkdir config");
    fs::write(c.bundle().join("config/config.json"), alt.to_string()).expect("write alt");
    let id = c.new_id("cfgalt");
    c.rt(&["create", "-f", "config/config.json", "--bundle", b, &id])
        .ok();
    c.rt(&["start", &id]).ok();
    // exec takes its defaults (env) from that file's process.
    let o = c.rt(&["exec", &id, "sh", "-c", "echo $WHICH"]);
    o.ok();
    assert_eq!(o.stdout.trim(), "alternate", "{o}");
    c.rt(&["delete", "-f", &id]).ok();
    c.assert_nothing_left(&id);

    // A missing file is an error naming it, and leaves nothing behind.
    let id = c.new_id("cfgmissing");
    let o = c.rt(&["create", "--config", "nope.json", "--bundle", b, &id]);
    o.fails_with("nope.json");
    c.assert_nothing_left(&id);
}

/// `exec --cap CAP_KILL` for a container whose process has no
/// capabilities: the new process has CAP_KILL in its bounding, effective
/// and permitted sets and nothing else (crun's test_exec
/// exec-add-capability; runc 1.1.5 crashes here).
#[test]
fn exec_cap_adds_to_an_empty_process() {
    if skip_unless_capsa("runc 1.1.5 crashes on exec --cap without process.capabilities") {
        return;
    }
    let mut c = Ctx::new("execcap");
    if let Some(p) = c.config["process"].as_object_mut() {
        p.remove("capabilities");
    }
    c.args(&["sleep", "1000"]);
    c.create();
    c.rt(&["start", &c.id]).ok();
    let o = c.rt(&[
        "exec",
        "--cap",
        "CAP_KILL",
        &c.id,
        "cat",
        "/proc/self/status",
    ]);
    o.ok();
    let kill = 1u64 << 5;
    for (field, want) in [
        ("CapBnd", kill),
        ("CapEff", kill),
        ("CapPrm", kill),
        ("CapInh", 0),
        ("CapAmb", 0),
    ] {
        assert_eq!(status_mask(&o.stdout, field), Some(want), "{field}: {o}");
    }
}

/// A cwd missing from a read-only root is created before the root turns
/// read-only (runc and crun do; crun's test_cwd cwd-not-exist).
#[test]
fn missing_cwd_is_created_on_a_readonly_root() {
    let mut c = Ctx::new("cwdro");
    c.require_isolated_root();
    c.config["root"]["readonly"] = json!(true);
    c.config["process"]["cwd"] = json!("/capsa-made/cwd");
    c.args(&["pwd"]);
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout.trim(), "/capsa-made/cwd", "{o}");
    assert!(c.rootfs().join("capsa-made/cwd").is_dir());
}

/// The words crun's tests look for in three refusals: an id with a bad
/// character ("invalid character", "container ID"), a sysctl name that is
/// not a plain path below /proc/sys ("contains an invalid path"), and a
/// terminal with --detach but no console socket ("use --console-socket").
#[test]
fn refusals_say_what_crun_tests_look_for() {
    if skip_unless_capsa("crun's wording, not runc's") {
        return;
    }
    let mut c = Ctx::new("crunwords");
    c.write_config();
    let b = c.bundle();
    let b = b.to_str().expect("utf-8");
    for bad in ["this/is/invalid", "foo bar", ".", ".."] {
        let o = c.rt(&["run", "--bundle", b, bad]);
        o.fails_with("invalid character");
        o.fails_with("container ID");
    }
    for key in [
        "net/../kernel/sysrq",
        "/net/ipv4/ip_forward",
        ".net.ipv4.ip_forward",
    ] {
        let mut s = Ctx::new("crunsysctl");
        s.config["linux"]["sysctl"] = json!({ key: "1" });
        s.create_refused("contains an invalid path");
    }
    c.config["process"]["terminal"] = json!(true);
    c.args(&["true"]);
    c.write_config();
    let o = c.rt(&["run", "--detach", "--bundle", b, &c.id]);
    o.fails_with("use --console-socket");
    c.assert_nothing_left(&c.id);
}

/// A new user namespace with neither uidMappings nor gidMappings (both
/// optional in the spec): container root is the caller's own ids, size 1,
/// as crun does (the userns halves of crun's test_mounts and
/// test_namespaces); runc refuses. Root inside owns what it makes on a
/// tmpfs.
#[test]
fn userns_without_mappings_maps_our_own_ids() {
    if skip_unless_capsa("runc refuses a user namespace without mappings") {
        return;
    }
    let mut c = Ctx::new("usernomap");
    c.set_ns("user", None);
    let linux = c.config["linux"].as_object_mut().expect("linux");
    linux.remove("uidMappings");
    linux.remove("gidMappings");
    // gid 5 is not mapped: devpts would refuse gid=5 (EINVAL).
    for m in c.config["mounts"].as_array_mut().expect("mounts") {
        if m["type"] == "devpts" {
            m["options"]
                .as_array_mut()
                .expect("options")
                .retain(|o| o != "gid=5");
        }
    }
    c.push_mount(
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=755"]}),
    );
    c.sh(
        "cat /proc/self/uid_map /proc/self/gid_map; echo hi > /scratch/f \
          && stat -c '%u:%g' /scratch/f && cat /scratch/f",
    );
    let o = c.run();
    o.ok();
    let (uid, gid) = effective_ids();
    let words: Vec<&str> = o.stdout.split_whitespace().collect();
    assert_eq!(words, ["0", &uid, "1", "0", &gid, "1", "0:0", "hi"], "{o}");

    // One list without the other stays refused, naming the missing one.
    let mut c = Ctx::new("useronemap");
    c.set_ns("user", None);
    let linux = c.config["linux"].as_object_mut().expect("linux");
    linux.remove("uidMappings");
    linux.insert(
        "gidMappings".into(),
        json!([{"containerID": 0, "hostID": 0, "size": 1}]),
    );
    c.create_refused("linux.uidMappings");
}

/// Our effective uid and gid, as text (the second field of /proc's Uid:/Gid:).
fn effective_ids() -> (String, String) {
    let status = fs::read_to_string("/proc/self/status").expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().nth(1))
            .expect("id field")
            .to_string()
    };
    (field("Uid:"), field("Gid:"))
}
