//! The process the workload runs as: args, env, cwd, user and groups, umask, rlimits,
//! capabilities, no_new_privs, oom_score_adj, sysctl.

mod common;

use common::*;
use serde_json::json;

#[test]
fn args_are_passed_verbatim() {
    let mut c = Ctx::new("args");
    c.args(&["sh", "-c", "printf '%s|' \"$@\"", "zero", "a b", "", "c*"]);
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout, "a b||c*|", "{o}");
}

#[test]
fn env_is_exactly_the_configs_plus_home() {
    let mut c = Ctx::new("env");
    c.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz", "EMPTY="]);
    // `env` run directly (no shell) shows exactly what execve got.
    c.args(&["env"]);
    let o = c.run();
    o.ok();
    let mut got: Vec<&str> = o.stdout.lines().collect();
    got.sort();
    // runc adds HOME from the container's /etc/passwd when the config has none.
    assert_eq!(
        got,
        ["EMPTY=", "FOO=bar baz", "HOME=/root", "PATH=/bin"],
        "{o}"
    );
}

#[test]
fn home_from_config_wins() {
    let mut c = Ctx::new("envhome");
    c.config["process"]["env"] = json!(["PATH=/bin", "HOME=/custom"]);
    c.args(&["env"]);
    let o = c.run();
    o.ok();
    assert!(o.stdout.lines().any(|l| l == "HOME=/custom"), "{o}");
    assert!(!o.stdout.contains("HOME=/root"), "{o}");
}

/// A name given twice reaches the process once, with the last value (runc
/// 1.2 and later dedup the list; `env` would show both otherwise); an empty HOME
/// counts as unset and becomes the user's home, for run and for exec.
#[test]
fn env_names_are_unique_and_empty_home_is_replaced() {
    let mut c = Ctx::new("envdup");
    c.config["process"]["env"] = json!(["ONE=two", "HOME=/x", "ONE=", "PATH=/bin", "HOME="]);
    c.args(&["env"]);
    let o = c.run();
    o.ok();
    let mut got: Vec<&str> = o.stdout.lines().collect();
    got.sort();
    assert_eq!(got, ["HOME=/root", "ONE=", "PATH=/bin"], "{o}");

    let mut c = Ctx::new("envdupx");
    c.config["process"]["env"] = json!(["PATH=/bin", "HOME="]);
    c.create_holder();
    let id = c.id.clone();
    c.rt(&["start", &id]).ok();
    let o = c.rt(&["exec", "-e", "A=1", "-e", "A=2", &id, "env"]);
    o.ok();
    let mut got: Vec<&str> = o.stdout.lines().collect();
    got.sort();
    assert_eq!(got, ["A=2", "HOME=/root", "PATH=/bin"], "{o}");
}

#[test]
fn cwd_is_set_and_created_if_missing() {
    let mut c = Ctx::new("cwd");
    c.config["process"]["cwd"] = json!("/tmp");
    c.args(&["pwd"]);
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout, "/tmp\n", "{o}");

    // runc creates a missing cwd (here on a writable root).
    let mut c = Ctx::new("cwdnew");
    c.require_isolated_root();
    c.config["root"]["readonly"] = json!(false);
    c.config["process"]["cwd"] = json!("/made/by/runtime");
    c.args(&["pwd"]);
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout, "/made/by/runtime\n", "{o}");
}

#[test]
fn user_uid_gid_and_additional_gids() {
    let mut c = Ctx::new("user");
    c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]});
    c.sh("id -u; id -g; grep -E '^(Uid|Gid|Groups):' /proc/self/status");
    let o = c.run();
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "1000", "{o}");
    assert_eq!(lines[1], "1000", "{o}");
    assert_eq!(
        status_field(&o.stdout, "Uid").map(|s| s.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["1000"; 4]),
        "real, effective, saved, fs uid: {o}"
    );
    assert_eq!(
        status_field(&o.stdout, "Gid").map(|s| s.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["1000"; 4]),
        "{o}"
    );
    assert_eq!(
        status_field(&o.stdout, "Groups").map(|s| s.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["10", "20"]),
        "{o}"
    );
}

#[test]
fn root_user_has_no_supplementary_groups() {
    let mut c = Ctx::new("rootgroups");
    c.args(&["grep", "^Groups:", "/proc/self/status"]);
    let o = c.run();
    o.ok();
    assert_eq!(status_field(&o.stdout, "Groups"), Some(""), "{o}");
}

#[test]
fn umask_default_and_configured() {
    let mut c = Ctx::new("umaskdef");
    c.sh("umask");
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout.trim(), "0022", "runc's default umask: {o}");

    let mut c = Ctx::new("umask");
    c.config["process"]["user"]["umask"] = json!(0o027);
    c.sh("umask");
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout.trim(), "0027", "{o}");
}

#[test]
fn rlimits_are_applied() {
    let mut c = Ctx::new("rlimit");
    c.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096}
    ]);
    c.sh("ulimit -n; grep -E '^Max (open files|core file size)' /proc/self/limits");
    let o = c.run();
    o.ok();
    let mut lines = o.stdout.lines();
    assert_eq!(lines.next(), Some("512"), "{o}");
    let rest: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert!(
        rest.iter()
            .any(|w| w[..3] == ["Max", "open", "files"] && w[3..] == ["512", "1000", "files"]),
        "{o}"
    );
    assert!(
        rest.iter()
            .any(|w| w[..4] == ["Max", "core", "file", "size"] && w[4..] == ["0", "4096", "bytes"]),
        "{o}"
    );
}

#[test]
fn rlimit_above_the_hosts_hard_limit_fails() {
    // On a host with a finite RLIMIT_NOFILE hard limit and without CAP_SYS_RESOURCE in the
    // bounding set, raising past the limit must fail, not be silently capped. Any host can
    // be made that one: the runtime runs with its own hard limit lowered and the
    // capability gone from its bounding, inheritable and ambient sets.
    let (_, host_hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    let hard = host_hard.min(4096);
    let mut c = Ctx::new("rlimithigh");
    c.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]);
    c.write_config();
    let b = c.bundle();
    let o = c.rt_with(
        &["run", "--bundle", b.to_str().expect("utf-8"), &c.id],
        |cmd| {
            with_rlimit(cmd, libc::RLIMIT_NOFILE, hard);
            without_capability(cmd, cap_number("CAP_SYS_RESOURCE"));
        },
    );
    // runc: "error setting rlimit type 7: operation not permitted".
    o.fails_with_any(&["rlimit"]);
    o.fails_with_any(&["operation not permitted", "EPERM"]);
    c.assert_nothing_left(&c.id);
}

fn caps_inside(c: &mut Ctx) -> [u64; 5] {
    c.args(&["grep", "^Cap", "/proc/self/status"]);
    let o = c.run();
    o.ok();
    let get = |k: &str| {
        status_field(&o.stdout, k)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or_else(|| panic!("no {k}: {o}"))
    };
    [
        get("CapBnd"),
        get("CapEff"),
        get("CapPrm"),
        get("CapInh"),
        get("CapAmb"),
    ]
}

#[test]
fn capability_sets_for_root() {
    // For uid 0, execve makes permitted = inheritable | bounding, and effective = permitted,
    // so use one set S everywhere: every mask must then be exactly S.
    let s = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
        "CAP_AUDIT_WRITE",
    ];
    let mut c = Ctx::new("capsroot");
    c.config["process"]["capabilities"] = json!({
        "bounding": s, "effective": s, "permitted": s, "inheritable": s, "ambient": s
    });
    let got = caps_inside(&mut c);
    let want = cap_mask(&s);
    assert_eq!(got, [want; 5], "Bnd, Eff, Prm, Inh, Amb");
}

#[test]
fn capability_sets_for_non_root() {
    // For a non-root uid without file capabilities, execve leaves permitted = effective
    // = ambient; bounding and inheritable stay as configured.
    let mut c = Ctx::new("capsuser");
    c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let bnd = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
        "CAP_SETGID",
    ];
    let prm = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let inh = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let amb = ["CAP_NET_BIND_SERVICE"];
    c.config["process"]["capabilities"] = json!({
        "bounding": bnd, "effective": prm, "permitted": prm, "inheritable": inh, "ambient": amb
    });
    let got = caps_inside(&mut c);
    let want = [
        cap_mask(&bnd),
        cap_mask(&amb),
        cap_mask(&amb),
        cap_mask(&inh),
        cap_mask(&amb),
    ];
    assert_eq!(got, want, "Bnd, Eff, Prm, Inh, Amb");
}

/// An unknown capability name is a warning naming its field, not an error (config.md:
/// SHOULD NOT fail); the known ones are granted. The same in `exec --process` and for
/// `exec --cap`.
#[test]
fn unknown_capability_is_a_warning() {
    let s = ["CAP_KILL", "CAP_CAPSA_NOT_A_CAP", "CAP_CHOWN"];
    let mut c = Ctx::new("capsunknown");
    c.config["process"]["capabilities"] = json!({
        "bounding": s, "effective": s, "permitted": s
    });
    c.args(&["grep", "^CapEff", "/proc/self/status"]);
    let o = c.run();
    o.ok();
    let eff = status_field(&o.stdout, "CapEff").and_then(|h| u64::from_str_radix(h, 16).ok());
    assert_eq!(eff, Some(cap_mask(&["CAP_KILL", "CAP_CHOWN"])), "{o}");
    if skip_unless_capsa("the warning's wording and exec --cap are capsa's") {
        return;
    }
    assert!(
        o.stderr.contains("warning") && o.stderr.contains("process.capabilities.bounding[1]"),
        "{o}"
    );

    c.args(&["sleep", "1000"]);
    c.create();
    let process = c.scratch("process.json");
    let p = json!({"cwd": "/", "user": {"uid": 0, "gid": 0},
        "args": ["grep", "^CapEff", "/proc/self/status"],
        "capabilities": {"bounding": s, "effective": s, "permitted": s}});
    std::fs::write(&process, p.to_string()).expect("process.json");
    let o = c.rt(&["exec", "--process", process.to_str().expect("utf-8"), &c.id]);
    o.ok();
    assert!(o.stderr.contains("capabilities.effective[1]"), "{o}");
    let eff = status_field(&o.stdout, "CapEff").and_then(|h| u64::from_str_radix(h, 16).ok());
    assert_eq!(eff, Some(cap_mask(&["CAP_KILL", "CAP_CHOWN"])), "{o}");
    let o = c.rt(&["exec", "--cap", "CAP_CAPSA_NOT_A_CAP", &c.id, "true"]);
    o.ok();
    assert!(
        o.stderr.contains("--cap") && o.stderr.contains("warning"),
        "{o}"
    );
}

#[test]
fn no_capabilities_at_all() {
    let mut c = Ctx::new("capsnone");
    c.config["process"]["capabilities"] = json!({});
    let got = caps_inside(&mut c);
    assert_eq!(got, [0; 5], "Bnd, Eff, Prm, Inh, Amb");
}

#[test]
fn no_new_privileges() {
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let mut c = Ctx::new("nnp");
        c.config["process"]["noNewPrivileges"] = json!(nnp);
        c.args(&["grep", "^NoNewPrivs:", "/proc/self/status"]);
        let o = c.run();
        o.ok();
        assert_eq!(status_field(&o.stdout, "NoNewPrivs"), Some(want), "{o}");
    }
}

#[test]
fn oom_score_adj() {
    let mut c = Ctx::new("oom");
    c.config["process"]["oomScoreAdj"] = json!(123);
    c.args(&["cat", "/proc/self/oom_score_adj"]);
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout.trim(), "123", "{o}");
}

#[test]
fn sysctl_in_new_net_and_ipc_namespaces() {
    let shmmax = HostSetting::save("/proc/sys/kernel/shmmax");
    let fwd = HostSetting::save("/proc/sys/net/ipv4/ip_forward");
    let mut c = Ctx::new("sysctl");
    c.config["linux"]["sysctl"] = json!({
        "net.ipv4.ip_forward": "1",
        "kernel.shmmax": "123456789"
    });
    c.args(&[
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/kernel/shmmax",
    ]);
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout, "1\n123456789\n", "{o}");
    assert!(!shmmax.changed() && !fwd.changed(), "host sysctls changed");
}

#[test]
fn net_sysctl_without_net_namespace_is_refused() {
    let mut c = Ctx::new("sysctlhost");
    c.remove_ns("network");
    c.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let fwd = HostSetting::save("/proc/sys/net/ipv4/ip_forward");
    let o = c.run();
    o.fails_with("net.ipv4.ip_forward");
    assert!(!fwd.changed(), "host sysctl changed");
    c.assert_nothing_left(&c.id);
}
