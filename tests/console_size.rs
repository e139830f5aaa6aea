//! process.consoleSize: the pty a container process gets is already that
//! size when the process starts (`stty size` inside), for the init through
//! --console-socket and for `exec --tty` with a process JSON.

#[path = "common/skip.rs"]
mod skip;
#[allow(dead_code)] // the helpers serve tests/console.rs too
#[path = "console/support.rs"]
mod support;

use std::time::Instant;

use serde_json::json;
use support::*;

/// Spawn `cmd` (which sends a terminal to `rx`), take the master, and wait
/// for the command to succeed.
fn take_master(
    cmd: &mut std::process::Command,
    rx: &Receiver,
    ct: &Container<'_>,
    what: &str,
) -> std::os::fd::OwnedFd {
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let (_, master) = rx.accept_master();
    let out = wait_deadline(child, ct, what);
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    master
}

fn set_config(bundle: &std::path::Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parse");
    f(&mut config);
    std::fs::write(&path, serde_json::to_vec(&config).expect("encode")).expect("write");
}

#[test]
fn init_pty_has_the_configured_size() {
    if !is_root() {
        return skip::skip("needs root");
    }
    let tmp = TempDir::new("size-init");
    let bundle = busybox_bundle(tmp.path(), &["stty", "size"]);
    set_config(&bundle, |c| {
        c["process"]["consoleSize"] = json!({"height": 31, "width": 101});
    });
    let root = tmp.path().join("state");
    let ct = Container {
        root: &root,
        id: "console-size-init".into(),
    };
    let rx = Receiver::bind(tmp.path().join("console.sock"));
    let master = take_master(
        capsa(&root)
            .args(["create", "--bundle"])
            .arg(&bundle)
            .arg("--console-socket")
            .arg(&rx.path)
            .arg(&ct.id),
        &rx,
        &ct,
        "capsa create",
    );
    let start = capsa(&root)
        .args(["start", &ct.id])
        .output()
        .expect("capsa start");
    assert!(start.status.success(), "start: {start:?}");
    let (text, _) = read_until_hangup(&master, Instant::now() + TIMEOUT);
    assert_eq!(text.trim(), "31 101", "{text:?}");
}

#[test]
fn exec_pty_has_the_process_size() {
    if !is_root() {
        return skip::skip("needs root");
    }
    let tmp = TempDir::new("size-exec");
    let bundle = busybox_bundle(tmp.path(), &["sleep", "60"]);
    let root = tmp.path().join("state");
    let ct = Container {
        root: &root,
        id: "console-size-exec".into(),
    };
    run_detached_without_terminal(&bundle, &ct, &tmp.path().join("run-d.err"));
    let process = tmp.path().join("process.json");
    let p = json!({"terminal": true, "consoleSize": {"height": 17, "width": 43},
        "args": ["stty", "size"], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin"]});
    std::fs::write(&process, p.to_string()).expect("write process.json");
    let rx = Receiver::bind(tmp.path().join("exec.sock"));
    let master = take_master(
        capsa(&root)
            .args(["exec", "--detach", "--process"])
            .arg(&process)
            .arg("--console-socket")
            .arg(&rx.path)
            .arg(&ct.id),
        &rx,
        &ct,
        "capsa exec --detach",
    );
    let (text, _) = read_until_hangup(&master, Instant::now() + TIMEOUT);
    assert_eq!(text.trim(), "17 43", "{text:?}");
}

#[test]
fn console_size_out_of_range_is_refused() {
    if !is_root() {
        return skip::skip("needs root");
    }
    let tmp = TempDir::new("size-bad");
    let bundle = busybox_bundle(tmp.path(), &["true"]);
    set_config(&bundle, |c| {
        c["process"]["consoleSize"] = json!({"height": 70000, "width": 80});
    });
    let root = tmp.path().join("state");
    let rx = Receiver::bind(tmp.path().join("console.sock"));
    let out = capsa(&root)
        .args(["create", "--bundle"])
        .arg(&bundle)
        .arg("--console-socket")
        .arg(&rx.path)
        .arg("console-size-bad")
        .output()
        .expect("capsa create");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    assert!(err.contains("process.consoleSize.height"), "{err}");
    assert_no_state(&root);
}
