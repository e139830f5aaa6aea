//! Commands that do not need a running workload: spec, features, --version, the JSON log
//! format, and capsa's own promises (honest features, refusing what it does not do).

mod common;

use common::*;
use serde_json::{Value, json};
use std::fs;

fn ns_types(cfg: &Value) -> Vec<String> {
    cfg["linux"]["namespaces"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["type"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn spec_writes_runc_default_config() {
    let c = Ctx::new("spec");
    let dir = c.scratch("specdir");
    fs::create_dir_all(&dir).expect("mkdir");
    c.rt(&["spec", "--bundle", dir.to_str().expect("utf-8")])
        .ok();
    let text = fs::read_to_string(dir.join("config.json")).expect("config.json written");
    let cfg: Value = serde_json::from_str(&text).expect("config.json is JSON");
    assert!(
        cfg["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{cfg}"
    );
    assert_eq!(cfg["process"]["args"], json!(["sh"]));
    assert_eq!(cfg["process"]["terminal"], json!(true));
    assert_eq!(cfg["root"], json!({"path": "rootfs", "readonly": true}));
    // runc writes "runc", crun "crun": any name will do.
    assert!(
        cfg["hostname"].as_str().is_some_and(|h| !h.is_empty()),
        "{cfg}"
    );
    // runc 1.1 lists these five; newer runtimes may add "cgroup".
    let mut ns = ns_types(&cfg);
    ns.retain(|n| n != "cgroup");
    ns.sort();
    assert_eq!(ns, ["ipc", "mount", "network", "pid", "uts"]);
    assert!(
        cfg["linux"]["maskedPaths"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    assert!(
        cfg["linux"]["readonlyPaths"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    let dests: Vec<&str> = cfg["mounts"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["destination"].as_str()).collect())
        .unwrap_or_default();
    for d in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ] {
        assert!(dests.contains(&d), "no {d} mount in {dests:?}");
    }
}

#[test]
fn spec_output_runs_after_small_edits() {
    // The generated config must be usable as is by the same runtime.
    let mut c = Ctx::new("specrun");
    let b = c.bundle();
    c.rt(&["spec", "--bundle", b.to_str().expect("utf-8")]).ok();
    let text = fs::read_to_string(b.join("config.json")).expect("written");
    c.config = serde_json::from_str(&text).expect("json");
    c.config["process"]["terminal"] = json!(false);
    c.config["linux"]["cgroupsPath"] = json!(cgroup_path_for(&c.id));
    let want = format!("{}\n", c.config["hostname"].as_str().unwrap_or(""));
    c.args(&["hostname"]);
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout, want, "{o}");
}

#[test]
fn spec_rootless() {
    let c = Ctx::new("specrootless");
    let dir = c.scratch("specdir");
    fs::create_dir_all(&dir).expect("mkdir");
    c.rt(&[
        "spec",
        "--rootless",
        "--bundle",
        dir.to_str().expect("utf-8"),
    ])
    .ok();
    let cfg: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("config.json")).expect("written"))
            .expect("json");
    let ns = ns_types(&cfg);
    assert!(ns.iter().any(|n| n == "user"), "{ns:?}");
    assert!(
        !ns.iter().any(|n| n == "network"),
        "rootless has no netns: {ns:?}"
    );
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = u64::from(unsafe { libc::geteuid() });
    for key in ["uidMappings", "gidMappings"] {
        let m = &cfg["linux"][key][0];
        assert_eq!(m["containerID"], json!(0), "{key}: {cfg}");
        assert_eq!(m["size"], json!(1), "{key}: {cfg}");
        if key == "uidMappings" {
            assert_eq!(m["hostID"], json!(euid), "{cfg}");
        }
    }
    assert!(
        cfg["linux"]["resources"].is_null(),
        "rootless drops resources: {cfg}"
    );
}

#[test]
fn spec_refuses_to_overwrite() {
    let c = Ctx::new("specexists");
    let dir = c.scratch("specdir");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("config.json"), "precious").expect("write");
    let o = c.rt(&["spec", "--bundle", dir.to_str().expect("utf-8")]);
    // runc: `File config.json exists. Remove it first`.
    o.fails_with_any(&["exists"]);
    assert_eq!(
        fs::read_to_string(dir.join("config.json")).expect("read"),
        "precious"
    );
}

#[test]
fn spec_into_missing_dir_fails() {
    let c = Ctx::new("specmissing");
    let dir = c.scratch("does-not-exist");
    let o = c.rt(&["spec", "--bundle", dir.to_str().expect("utf-8")]);
    o.fails_with_any(&["no such file or directory"]);
    assert!(!dir.exists());
}

#[test]
fn features_is_valid_json() {
    let c = Ctx::new("features");
    let f = c.features();
    for k in ["ociVersionMin", "ociVersionMax"] {
        assert!(
            f[k].as_str().is_some_and(|v| v.starts_with("1.")),
            "{k}: {f}"
        );
    }
    let ns: Vec<&str> = f["linux"]["namespaces"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for n in ["ipc", "mount", "network", "pid", "uts"] {
        assert!(ns.contains(&n), "features lacks namespace {n}: {ns:?}");
    }
    let opts: Vec<&str> = f["mountOptions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for o in ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec"] {
        assert!(
            opts.contains(&o),
            "features lacks mount option {o}: {opts:?}"
        );
    }
    assert!(f["hooks"].is_array() || f["hooks"].is_null(), "{f}");
}

#[test]
fn features_namespaces_are_usable() {
    // Every namespace `features` lists must work in a container (time is optional:
    // old kernels lack it).
    let c0 = Ctx::new("featns");
    let f = c0.features();
    let listed = str_list(&f["linux"]["namespaces"]);
    for ty in listed {
        let mut c = Ctx::new("featns");
        c.set_ns(&ty, None);
        if ty == "user" {
            c.config["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
            c.config["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
            if let Some(m) = c.config["mounts"].as_array_mut() {
                m.retain(|m| m["destination"] != "/sys/fs/cgroup");
            }
        }
        let name = proc_ns_name(&ty);
        if !std::path::Path::new(&format!("/proc/self/ns/{name}")).exists() {
            skip(&format!("host kernel lacks {ty} namespaces"));
            continue;
        }
        c.args(&["readlink", &format!("/proc/self/ns/{name}")]);
        let o = c.run();
        o.ok();
        assert_ne!(o.stdout.trim(), ns_link("self", name), "{ty} not new: {o}");
    }
}

#[test]
fn version_flag() {
    let c = Ctx::new("version");
    let o = c.rt(&["--version"]);
    o.ok();
    // runc: "runc version 1.1.5+ds1\ncommit: ...\nspec: 1.0.2-dev\n..."
    assert!(!o.stdout.lines().next().unwrap_or("").is_empty(), "{o}");
    assert!(o.stdout.lines().any(|l| l.starts_with("spec: 1.")), "{o}");
    if skip_unless_capsa("capsa's version lines") {
        return;
    }
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(concat!("capsa version ", env!("CARGO_PKG_VERSION"))),
        "{o}"
    );
    // The commit this checkout's HEAD names (what build.rs embedded), or "unknown" when
    // built outside a git work tree.
    let head = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    assert_eq!(
        lines.get(1).copied(),
        Some(format!("commit: {head}").as_str()),
        "{o}"
    );
    assert_eq!(lines.get(2).copied(), Some("spec: 1.3.0"), "{o}");
}

#[test]
fn unknown_command_fails() {
    let c = Ctx::new("unknowncmd");
    let o = c.rt(&["frobnicate"]);
    assert_ne!(o.code, Some(0), "{o}");
    assert!(!o.stderr.is_empty(), "{o}");
}

/// containerd's runc shim (go-runc) runs `restore ... -no-subreaper` (one
/// dash, as Go's flag parsers accept): taken as the flag, not a usage error
/// (exit 2 before the log is opened, so containerd sees no runtime error).
#[test]
fn restore_takes_go_runcs_single_dash_no_subreaper() {
    let c = Ctx::new("nosubreaper");
    let log = c.scratch("log.json");
    let missing = c.scratch("no-such-bundle");
    let o = c.rt(&[
        "--log",
        log.to_str().expect("utf-8"),
        "--log-format",
        "json",
        "restore",
        "--detach",
        "-no-subreaper",
        "--bundle",
        missing.to_str().expect("utf-8"),
        &c.id,
    ]);
    assert_eq!(o.code, Some(1), "{o}");
    let text = fs::read_to_string(&log).expect("log file written");
    assert!(text.contains("no-such-bundle"), "{text}");
    c.assert_nothing_left(&c.id);
}

#[test]
fn json_log_on_failing_create() {
    let c = Ctx::new("jsonlog");
    let log = c.scratch("log.json");
    let missing = c.scratch("no-such-bundle");
    let o = c.rt(&[
        "--log",
        log.to_str().expect("utf-8"),
        "--log-format",
        "json",
        "create",
        "--bundle",
        missing.to_str().expect("utf-8"),
        &c.id,
    ]);
    assert_ne!(o.code, Some(0), "{o}");
    let text = fs::read_to_string(&log).expect("log file written");
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}")))
        .collect();
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "error").collect();
    assert_eq!(
        errors.len(),
        1,
        "one error line (podman reads one object): {text}"
    );
    let e = errors[0];
    let msg = e["msg"].as_str().expect("msg is a string");
    assert!(msg.contains("no such file or directory"), "{msg}");
    assert!(
        msg.contains("no-such-bundle"),
        "the message names the path: {msg}"
    );
    assert!(
        e["time"].as_str().is_some_and(|t| t.contains('T')),
        "time: {e}"
    );
    c.assert_nothing_left(&c.id);
}

#[test]
fn json_log_to_stderr_without_log_file() {
    let c = Ctx::new("jsonstderr");
    let o = c.rt(&["--log-format", "json", "state", &c.id]);
    assert_ne!(o.code, Some(0), "{o}");
    let line = o
        .stderr
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line on stderr: {o}"));
    let v: Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(v["level"], "error", "{o}");
    assert_eq!(v["msg"], "container does not exist", "{o}");
}

#[test]
fn text_log_format_by_default() {
    let c = Ctx::new("textlog");
    let o = c.rt(&["state", &c.id]);
    // runc: time="..." level=error msg="container does not exist"
    o.fails_with("level=error msg=\"container does not exist\"");
}

#[test]
fn capsa_refuses_flags_it_does_not_implement() {
    if skip_unless_capsa("refusing unimplemented flags is capsa's promise") {
        return;
    }
    let mut c = Ctx::new("refuse");
    c.args(&["true"]);
    c.write_config();
    let b = c.bundle();
    let b = b.to_str().expect("utf-8");
    let id = c.id.clone();
    // runc flags capsa does not implement (CRIU's LSM options on restore):
    // each must fail loudly, never be swallowed.
    let cases: Vec<Vec<&str>> = vec![
        vec!["restore", "--lsm-profile", "apparmor:x", "--bundle", b, &id],
        vec!["restore", "--lsm-mount-context", "x", "--bundle", b, &id],
    ];
    for args in cases {
        let o = c.rt(&args);
        o.fails_with_any(&[
            "not supported",
            "unsupported",
            "not implemented",
            "unexpected argument",
        ]);
        c.assert_nothing_left(&id);
    }
    let o = c.rt(&["create", "--bundle", b, "--no-such-flag", &id]);
    assert_ne!(o.code, Some(0), "{o}");
    c.assert_nothing_left(&id);
}

/// The systemd cgroup driver on a host not booted with systemd (this
/// development machine): one error line that says so and what to use
/// instead, non-zero, and nothing made (no state dir, cgroup or process).
#[test]
fn systemd_driver_without_systemd_is_refused_clearly() {
    if skip_unless_capsa("capsa's own error text") {
        return;
    }
    if std::path::Path::new("/run/systemd/system").is_dir() {
        skip("this host runs systemd (the systemd lane tests the driver there)");
        return;
    }
    let mut c = Ctx::new("nosd");
    c.args(&["true"]);
    c.write_config();
    let b = c.bundle();
    let b = b.to_str().expect("utf-8");
    let id = c.id.clone();
    for flags in [
        &["--systemd-cgroup"][..],
        &["--cgroup-manager", "systemd"][..],
        &["--cgroup-manager=systemd"][..],
    ] {
        for verb in ["create", "run"] {
            let mut args: Vec<&str> = flags.to_vec();
            args.extend([verb, "--bundle", b, &id]);
            let o = c.rt(&args);
            o.fails_with("needs a host booted with systemd");
            o.fails_with("use the cgroupfs driver instead");
            assert_eq!(o.stderr.trim().lines().count(), 1, "{o}");
            c.assert_nothing_left(&id);
        }
    }
    // With an engine's JSON log: the one error line is the last JSON line.
    let log = c.scratch("nosd.log");
    let log_s = log.to_str().expect("utf-8");
    let o = c.rt(&[
        "--log",
        log_s,
        "--log-format",
        "json",
        "--systemd-cgroup",
        "create",
        "--bundle",
        b,
        &id,
    ]);
    assert_ne!(o.code, Some(0), "{o}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let last: Value = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    assert_eq!(last["level"], "error", "{text}");
    assert!(
        last["msg"]
            .as_str()
            .is_some_and(|m| m.contains("SystemdCgroup = false")),
        "{text}"
    );
    c.assert_nothing_left(&id);
    // --cgroup-manager cgroupfs overrides --systemd-cgroup (podman's spelling wins).
    let o = c.rt(&[
        "--systemd-cgroup",
        "--cgroup-manager",
        "cgroupfs",
        "run",
        "--bundle",
        b,
        &id,
    ]);
    o.ok();
    c.assert_nothing_left(&id);
    // features says the driver exists (on a systemd host).
    assert_eq!(c.features()["linux"]["cgroup"]["systemd"], true);
}

#[test]
fn hooks_listed_in_features_run_and_others_are_refused() {
    let c0 = Ctx::new("feathooks");
    let f = c0.features();
    let listed = f["hooks"]
        .as_array()
        .is_some_and(|a| a.iter().any(|h| h == "createRuntime"));
    let mut c = Ctx::new("hooks");
    let marker = c.scratch("hook-ran");
    let script = format!("echo ran > {}", marker.display());
    c.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]});
    c.args(&["sleep", "1000"]);
    c.write_config();
    let o = c.create_id(&c.id, &[]);
    if listed {
        o.ok();
        assert_eq!(
            fs::read_to_string(&marker).unwrap_or_default(),
            "ran\n",
            "{o}"
        );
    } else if is_capsa() {
        // features says no hooks: silently skipping them would be a lie.
        o.fails_with_any(&["hook"]);
        assert!(!marker.exists());
        c.assert_nothing_left(&c.id);
    } else {
        skip("runtime lists no createRuntime hook; refusal is only capsa's promise");
    }
}

#[test]
fn seccomp_in_features_works_or_is_refused() {
    let c0 = Ctx::new("featseccomp");
    let f = c0.features();
    let enabled = f["linux"]["seccomp"]["enabled"] == json!(true);
    let mut c = Ctx::new("seccomp");
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    c.sh_writes("mkdir /dev/shm/blocked && echo MADE");
    if enabled {
        let o = c.run();
        assert_ne!(o.code, Some(0), "{o}");
        assert!(!o.stdout.contains("MADE"), "{o}");
        assert!(o.stderr.contains("Operation not permitted"), "{o}");
    } else if is_capsa() {
        let o = c.run();
        o.fails_with_any(&["seccomp"]);
        c.assert_nothing_left(&c.id);
    } else {
        skip("runtime has no seccomp; refusal is only capsa's promise");
    }
}
