//! No way out, part 3: a hostile config.json. Giant values, negative and reserved ids, absurd
//! counts, `..` in paths, NUL bytes (JSON's \u0000), invalid UTF-8 and lone surrogates, limits
//! beyond what the host grants, unknown signals: each gets a clear error naming the field, a
//! non-zero exit, and leaves nothing behind (state dir, cgroup, mount, process).

mod common;

use common::*;
use serde_json::{Value, json};
use std::fs;

/// `create` with `config.json` = `text` must fail naming each of `needles`, leaving nothing.
/// Naming the field is capsa's promise: against another runtime only "nothing left behind"
/// is checked, and a config it accepts is deleted first (runc 1.1.5 cleans `..` out of a
/// cgroupsPath and replaces invalid UTF-8, for two).
#[track_caller]
fn refused_text(c: &Ctx, text: &[u8], needles: &[&str]) -> Output {
    fs::write(c.bundle().join("config.json"), text).expect("write config.json");
    let o = c.create_id(&c.id, &[]);
    if is_capsa() {
        for n in needles {
            o.fails_with(n);
        }
    } else if o.success() {
        c.rt(&["delete", "--force", &c.id]).ok();
    }
    c.assert_nothing_left(&c.id);
    o
}

/// `create` with the config edited by `edit` must fail naming each of `needles`.
#[track_caller]
fn refused(tag: &str, edit: impl FnOnce(&mut Value), needles: &[&str]) -> Output {
    let mut c = Ctx::new(tag);
    edit(&mut c.config);
    let text = serde_json::to_vec(&c.config).expect("json");
    refused_text(&c, &text, needles)
}

#[test]
fn negative_and_reserved_ids() {
    refused(
        "uidneg",
        |v| v["process"]["user"]["uid"] = json!(-1),
        &["process.user.uid"],
    );
    refused(
        "gidbig",
        |v| v["process"]["user"]["gid"] = json!(1u64 << 40),
        &["process.user.gid"],
    );
    // (uid_t)-1 means "leave unchanged" to setresuid: accepting it would run the workload as
    // whatever the runtime was, root.
    refused(
        "uidmax",
        |v| v["process"]["user"]["uid"] = json!(u32::MAX),
        &["process.user.uid"],
    );
    refused(
        "gidmax",
        |v| v["process"]["user"]["gid"] = json!(u32::MAX),
        &["process.user.gid"],
    );
    refused(
        "agidmax",
        |v| v["process"]["user"]["additionalGids"] = json!([5, u32::MAX]),
        &["process.user.additionalGids"],
    );
}

#[test]
fn absurd_counts() {
    if skip_unless_capsa(
        "runc 1.1.5 spends minutes on 1e6 environment entries before failing at start",
    ) {
        return;
    }
    // More supplementary groups than the kernel takes (NGROUPS_MAX = 65536).
    refused(
        "manygids",
        |v| v["process"]["user"]["additionalGids"] = json!((0..70_000).collect::<Vec<u32>>()),
        &["process.user.additionalGids"],
    );
    // 100k mounts: more than fs.mount-max lets one namespace hold.
    refused(
        "manymounts",
        |v| {
            let m: Vec<Value> = (0..100_000)
                .map(|i| json!({"destination": format!("/m{i}"), "type": "tmpfs", "source": "tmpfs"}))
                .collect();
            v["mounts"] = json!(m);
        },
        &["mounts"],
    );
    // 1e6 environment entries: more than execve takes (its argument space is a quarter of
    // the stack limit).
    refused(
        "manyenv",
        |v| {
            let e: Vec<String> = (0..1_000_000).map(|i| format!("V{i}=x")).collect();
            v["process"]["env"] = json!(e);
        },
        &["process.env"],
    );
    // One argument longer than the kernel's per-string limit (32 pages).
    refused(
        "longarg",
        |v| v["process"]["args"] = json!(["echo", "x".repeat(200_000)]),
        &["process.args[1]"],
    );
}

#[test]
fn nul_bytes() {
    refused(
        "nularg",
        |v| v["process"]["args"] = json!(["true\u{0}x"]),
        &["process.args[0]"],
    );
    refused(
        "nulenv",
        |v| v["process"]["env"] = json!(["A=b\u{0}c"]),
        &["process.env[0]"],
    );
    refused(
        "nulcwd",
        |v| v["process"]["cwd"] = json!("/tm\u{0}p"),
        &["process.cwd"],
    );
    refused(
        "nulhost",
        |v| v["hostname"] = json!("a\u{0}b"),
        &["hostname"],
    );
    refused(
        "nulmount",
        |v| {
            if let Some(m) = v["mounts"].as_array_mut() {
                m.push(json!({"destination": "/a\u{0}b", "type": "tmpfs", "source": "tmpfs"}));
            }
        },
        &["mounts[7]"],
    );
    refused(
        "nulmask",
        |v| v["linux"]["maskedPaths"] = json!(["/proc/kc\u{0}ore"]),
        &["linux.maskedPaths[0]"],
    );
    refused(
        "nulhook",
        |v| v["hooks"] = json!({"prestart": [{"path": "/bin/tr\u{0}ue"}]}),
        &["hooks.prestart[0].path"],
    );
    refused(
        "nulcgroup",
        |v| v["linux"]["cgroupsPath"] = json!("/capsa-test-\u{0}x"),
        &["linux.cgroupsPath"],
    );
    refused(
        "nulsysctl",
        |v| v["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1\u{0}2"}),
        &["linux.sysctl"],
    );
}

#[test]
fn not_utf8() {
    let c = Ctx::new("badutf8");
    let mut text = serde_json::to_vec(&c.config).expect("json");
    // Replace the hostname's "runc" with invalid UTF-8 bytes.
    let at = text
        .windows(6)
        .position(|w| w == b"\"runc\"")
        .expect("hostname in config");
    text.splice(at + 1..at + 5, [0xff, 0xfe, 0x80, 0x80]);
    refused_text(&c, &text, &["config.json"]);

    // A lone surrogate escape is valid JSON syntax but no Unicode string.
    let c = Ctx::new("surrogate");
    let text = serde_json::to_string(&c.config)
        .expect("json")
        .replace("\"runc\"", "\"\\ud800\"");
    refused_text(&c, text.as_bytes(), &["config.json", "hostname"]);
}

#[test]
fn giant_values() {
    // RLIMIT_NOFILE far above the host's hard limit, without CAP_SYS_RESOURCE.
    refused(
        "nofilebig",
        |v| {
            v["process"]["rlimits"] =
                json!([{"type": "RLIMIT_NOFILE", "hard": u64::MAX, "soft": u64::MAX}])
        },
        &["process.rlimits[0]"],
    );
    refused(
        "oombig",
        |v| v["process"]["oomScoreAdj"] = json!(1_000_000),
        &["process.oomScoreAdj"],
    );
    refused(
        "oomhuge",
        |v| v["process"]["oomScoreAdj"] = json!(1u64 << 40),
        &["process.oomScoreAdj"],
    );
    refused(
        "hostlong",
        |v| v["hostname"] = json!("h".repeat(65)),
        &["hostname"],
    );
    refused(
        "devmajor",
        |v| {
            v["linux"]["devices"] =
                json!([{"path": "/dev/x", "type": "c", "major": -5, "minor": 1}])
        },
        &["linux.devices[0]"],
    );
    refused(
        "hooktimeout",
        |v| v["hooks"] = json!({"poststop": [{"path": "/bin/true", "timeout": -1}]}),
        &["hooks.poststop[0].timeout"],
    );
}

/// `..` cannot take a path out of the container (or its cgroup out of the hierarchy): it is
/// refused or resolved inside.
#[test]
fn dot_dot_in_paths() {
    refused(
        "dotcg",
        |v| v["linux"]["cgroupsPath"] = json!("/../../../tmp/capsa-escape"),
        &["cgroupsPath"],
    );
    let mut c = Ctx::new("dotdot");
    c.require_isolated_root();
    let host = std::path::PathBuf::from(format!("/tmp/capsa-dotdot-{}", c.id));
    c.config["root"]["readonly"] = json!(false);
    c.config["process"]["cwd"] = json!("/../../../tmp");
    c.push_mount(json!({"destination": format!("/../../..{}", host.display()), "type": "tmpfs", "source": "tmpfs"}));
    c.config["linux"]["devices"] = json!([{"path": format!("/dev/../../..{}-dev", host.display()), "type": "c", "major": 1, "minor": 3}]);
    c.sh(&format!(
        "pwd; grep -c ' {h} ' /proc/self/mountinfo; [ -c {h}-dev ] && echo dev",
        h = host.display()
    ));
    let o = c.run();
    assert!(!host.exists(), "created {} on the host", host.display());
    let dev = std::path::PathBuf::from(format!("{}-dev", host.display()));
    assert!(!dev.exists(), "created {} on the host", dev.display());
    o.ok();
    assert_eq!(o.stdout.trim(), "/tmp\n1\ndev", "{o}");
}

#[test]
fn unknown_signals() {
    let mut c = Ctx::new("badsig");
    c.args(&["sleep", "1000"]);
    c.create();
    // (runc takes an empty signal for the default, SIGTERM.)
    let bad: &[&str] = if is_capsa() {
        &["SIGFOO", "99", "-9", "", "KILL KILL"]
    } else {
        &["SIGFOO", "99", "-9", "KILL KILL"]
    };
    for &sig in bad {
        let o = c.rt(&["kill", &c.id, sig]);
        assert!(
            o.code.is_some_and(|x| x != 0),
            "signal {sig:?} accepted: {o}"
        );
        assert!(
            !o.stderr.trim().is_empty() || !o.stdout.trim().is_empty(),
            "{o}"
        );
    }
    assert_eq!(
        c.status(&c.id),
        "created",
        "an unknown signal reached the container"
    );
}
