//! Behaviour that callers written for runc >= 1.2 check through the command
//! line: exact workload output from a foreground `run`, the one line a
//! failed execve prints, `exec`'s exit status on its own errors, SIGKILL in
//! a shared pid namespace, the mode of a tmpfs mounted over a directory, and
//! masked directories sharing one tmpfs.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// With process.terminal, the workload's "\n" reaches our stdout as "\n":
/// scripts compare lines exactly, and "\r" would end up in each of them.
#[test]
fn foreground_terminal_output_keeps_plain_newlines() {
    if skip_unless_capsa("runc needs a controlling terminal for a foreground terminal run") {
        return;
    }
    let mut c = Ctx::new("onlcr");
    c.config["process"]["terminal"] = json!(true);
    c.sh("echo one; echo two");
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout, "one\ntwo\n", "{o}");
}

/// A workload that cannot be executed: a foreground `run` prints the
/// reason once, as the init reported it, and fails; nothing is left.
#[test]
fn foreground_run_execve_failure_is_one_line() {
    let mut c = Ctx::new("execfail");
    let script = c.rootfs().join("run.sh");
    fs::write(&script, "#!/no-such-interpreter foo\nsh\n").expect("write run.sh");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod run.sh");
    c.args(&["/run.sh"]);
    let o = c.run();
    assert!(!o.success(), "{o}");
    let all = format!("{}{}", o.stdout, o.stderr);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(
        lines,
        ["exec /run.sh: no such file or directory"],
        "expected exactly the init's line: {o}"
    );
    c.assert_nothing_left(&c.id);
}

/// Errors of `exec` itself exit 255, never a status the process could
/// have returned; the process's own status passes through.
#[test]
fn exec_own_errors_exit_255() {
    let mut c = Ctx::new("exec255");
    c.args(&["sleep", "1000"]);
    c.write_config();
    let b = c.bundle();
    c.rt(&["run", "-d", "--bundle", b.to_str().expect("utf-8"), &c.id])
        .ok();
    let o = c.rt(&["exec", &c.id, "sh", "-c", "exit 42"]);
    assert_eq!(o.code, Some(42), "{o}");
    let o = c.rt(&["exec", &c.id, "no-such-binary"]);
    assert_eq!(o.code, Some(255), "{o}");
    let pid_file = c.scratch("no-such-dir/pid");
    let o = c.rt(&[
        "exec",
        "--pid-file",
        pid_file.to_str().expect("utf-8"),
        &c.id,
        "true",
    ]);
    assert_eq!(o.code, Some(255), "{o}");
    let missing = unique_id("nosuch");
    let o = c.rt(&["exec", &missing, "true"]);
    assert_eq!(o.code, Some(255), "{o}");
}

fn cgroup_procs(ctx: &Ctx) -> Vec<i32> {
    let p = ctx.config["linux"]["cgroupsPath"]
        .as_str()
        .expect("cgroupsPath");
    let file = format!("/sys/fs/cgroup/pids{p}/cgroup.procs");
    let file = if std::path::Path::new(&file).exists() {
        file
    } else {
        format!("/sys/fs/cgroup{p}/cgroup.procs")
    };
    fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn wait_gone(pids: &[i32]) -> Vec<i32> {
    let start = Instant::now();
    loop {
        let alive: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
            .collect();
        if alive.is_empty() || start.elapsed() > WAIT {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// In the host's pid namespace the init's death takes nothing with it:
/// `kill KILL` must still reach the container's other processes, and
/// succeed, though the init is gone and the container counts as stopped.
#[test]
fn sigkill_reaches_the_cgroup_when_the_init_is_gone_in_a_shared_pidns() {
    let mut c = Ctx::new("killshared");
    c.remove_ns("pid");
    c.args(&["sleep", "1000"]);
    c.write_config();
    let b = c.bundle();
    c.rt(&["run", "-d", "--bundle", b.to_str().expect("utf-8"), &c.id])
        .ok();
    for _ in 0..3 {
        c.rt(&["exec", "-d", &c.id, "sleep", "1000"]).ok();
    }
    let init = c.state(&c.id)["pid"].as_i64().expect("pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the init");
    assert!(wait_gone(&[init]).is_empty(), "the init did not die");
    c.wait_status(&c.id, "stopped", WAIT);
    let left = cgroup_procs(&c);
    assert!(
        left.len() >= 3,
        "the exec'd processes should remain: {left:?}"
    );
    let o = c.rt(&["kill", &c.id, "KILL"]);
    o.ok();
    let alive = wait_gone(&left);
    assert!(alive.is_empty(), "kill KILL left {alive:?}");
    c.rt(&["delete", &c.id]).ok();
    c.assert_nothing_left(&c.id);
}

/// A tmpfs mounted over a directory of the image keeps that directory's
/// mode, set-id and sticky bits included, unless the options give one.
#[test]
fn tmpfs_over_a_directory_keeps_its_mode() {
    let mut c = Ctx::new("tmpfsmode");
    let dir = c.rootfs().join("data");
    fs::create_dir(&dir).expect("mkdir data");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o7777)).expect("chmod data");
    c.push_mount(
        json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev"]}),
    );
    c.sh("stat -c %a /data");
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout.trim(), "7777", "{o}");

    fs::set_permissions(&dir, fs::Permissions::from_mode(0o710)).expect("chmod data");
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout.trim(), "710", "{o}");

    // mode= in the options wins.
    c.config["mounts"]
        .as_array_mut()
        .and_then(|m| m.last_mut())
        .expect("last mount")["options"] = json!(["mode=0410"]);
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout.trim(), "410", "{o}");
}

/// `exec --process` with a file that has no `user`: runc runs it as root
/// (uid 0, gid 0) rather than refusing it.
#[test]
fn exec_process_file_without_user_runs_as_root() {
    let mut c = Ctx::new("execnouser");
    c.args(&["sleep", "1000"]);
    c.write_config();
    let b = c.bundle();
    c.rt(&["run", "-d", "--bundle", b.to_str().expect("utf-8"), &c.id])
        .ok();
    let file = c.scratch("process.json");
    fs::write(&file, r#"{"args": ["id", "-u"], "cwd": "/"}"#).expect("write process.json");
    let o = c.rt(&["exec", "-p", file.to_str().expect("utf-8"), &c.id]);
    o.ok();
    assert_eq!(o.stdout.trim(), "0", "{o}");
}

/// Masked directories all show one empty read-only tmpfs (same device), as
/// runc >= 1.2 makes them; a masked file still reads empty; nothing is
/// writable. runc 1.1.5 gives each directory its own tmpfs.
#[test]
fn masked_directories_share_one_tmpfs() {
    if skip_unless_capsa("runc 1.1.5 mounts a tmpfs per masked directory") {
        return;
    }
    let mut c = Ctx::new("maskshare");
    for d in ["m1", "m2", "m3"] {
        fs::create_dir_all(c.rootfs().join(d)).expect("mkdir");
        fs::write(c.rootfs().join(d).join("secret"), "x").expect("write secret");
    }
    fs::write(c.rootfs().join("mfile"), "secret").expect("write mfile");
    c.config["linux"]["maskedPaths"] = json!(["/m1", "/mfile", "/m2", "/m3"]);
    c.sh(
        "stat -c %d /m1 /m2 /m3 | sort -u | wc -l; ls -A /m1 /m2 /m3 | grep -c secret; \
         cat /mfile | wc -c; touch /m2/x 2>&1 | grep -c 'Read-only'",
    );
    let o = c.run();
    o.ok();
    let got: Vec<&str> = o.stdout.split_whitespace().collect();
    assert_eq!(
        got,
        ["1", "0", "0", "1"],
        "devices, secrets, file bytes, EROFS: {o}"
    );
}
