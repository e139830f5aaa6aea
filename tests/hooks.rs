//! Hook failures, kind by kind (runtime-spec 1.3 runtime.md, lifecycle): a failing prestart,
//! createRuntime, createContainer or startContainer hook fails the operation and stops the
//! container, which is destroyed and whose poststop hooks then run (the lifecycle "continues
//! at step 12"); a failing poststart hook does the same at `start` (1.3's text; 1.0.2 to 1.2
//! said to log it); a failing poststop hook is a warning: the other poststop hooks run and
//! `delete` succeeds. And the state each hook gets: the pid as its namespace sees it.

mod common;

use common::*;
use serde_json::{Value, json};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A host script that appends its first argument to `log` and exits with its second.
fn host_hook(c: &Ctx) -> (String, String) {
    let script = c.scratch("hook.sh");
    let log = c.scratch("hooks.log");
    fs::write(&script, "#!/bin/sh\necho \"$1\" >> \"$3\"\nexit \"$2\"\n").expect("hook script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    (
        script.to_str().expect("utf-8").to_owned(),
        log.to_str().expect("utf-8").to_owned(),
    )
}

fn hook(script: &str, name: &str, code: i32, log: &str) -> Value {
    json!({"path": script, "args": ["hook.sh", name, code.to_string(), log]})
}

fn logged(log: &str) -> Vec<String> {
    read_lossy(Path::new(log))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The workload leaves a mark on the host when it runs at all.
fn marking_workload(c: &mut Ctx) -> std::path::PathBuf {
    c.config["root"]["readonly"] = json!(false);
    c.sh_writes("touch /ran; exec sleep 1000");
    c.rootfs().join("ran")
}

#[test]
fn failing_poststop_hook_is_a_warning_and_the_rest_run() {
    if skip_unless_capsa("runc 1.1.5 stops at the first failing poststop hook") {
        return;
    }
    let mut c = Ctx::new("poststopfail");
    let (script, log) = host_hook(&c);
    c.config["hooks"] = json!({"poststop": [
        hook(&script, "first", 1, &log),
        hook(&script, "second", 0, &log),
        hook(&script, "third", 3, &log),
    ]});
    c.args(&["true"]);
    c.create();
    c.rt(&["start", &c.id]).ok();
    c.wait_status(&c.id, "stopped", std::time::Duration::from_secs(10));
    let o = c.rt(&["delete", &c.id]);
    o.ok();
    assert!(o.stderr.contains("warning"), "no warning: {o}");
    assert!(
        o.stderr.contains("poststop hook #0") && o.stderr.contains("poststop hook #2"),
        "{o}"
    );
    assert_eq!(logged(&log), ["first", "second", "third"]);
    c.rt(&["state", &c.id]).fails_with("does not exist");
    c.assert_nothing_left(&c.id);
}

/// prestart, createRuntime and createContainer hooks run during `create`: one failing makes
/// create fail naming it; nothing is left, the workload never ran, the poststop hooks ran.
#[test]
fn failing_create_time_hook_fails_create_and_runs_poststop() {
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let mut c = Ctx::new("createhookfail");
        let (script, log) = host_hook(&c);
        let ran = marking_workload(&mut c);
        c.config["hooks"] = json!({
            kind: [hook(&script, kind, 1, &log)],
            "poststop": [hook(&script, "poststop", 0, &log)],
        });
        c.write_config();
        let o = c.create_id(&c.id, &[]);
        o.fails_with("hook");
        if is_capsa() {
            o.fails_with(&format!("{kind} hook #0"));
        }
        assert_eq!(logged(&log), [kind, "poststop"], "{kind}");
        assert!(!ran.exists(), "{kind}: the workload ran");
        c.assert_nothing_left(&c.id);
    }
}

/// After `start` failed: the container is stopped and destroyed (no cgroup left, poststop
/// has run, once), and `delete`, which engines call next, still succeeds and runs nothing.
fn assert_destroyed_after_failed_start(c: &Ctx, log: &str, hooks_before: &[&str]) {
    assert_eq!(c.status(&c.id), "stopped");
    let want: Vec<&str> = hooks_before.iter().copied().chain(["poststop"]).collect();
    assert_eq!(logged(log), want, "poststop did not run when start failed");
    let cgroups = cgroup_dirs_for(&c.id);
    assert!(
        cgroups.is_empty(),
        "cgroups left after start failed: {cgroups:?}"
    );
    c.rt(&["delete", &c.id]).ok();
    assert_eq!(logged(log), want, "delete ran the poststop hooks again");
    c.assert_nothing_left(&c.id);
}

/// A failing startContainer hook (it runs in the container, from the image) fails `start`;
/// the container is stopped without the workload having run, and destroyed.
#[test]
fn failing_start_container_hook_fails_start() {
    if skip_unless_capsa("runc 1.1.5's start returns 0 when a startContainer hook fails") {
        return;
    }
    let mut c = Ctx::new("starthookfail");
    let (script, log) = host_hook(&c);
    let ran = marking_workload(&mut c);
    fs::write(c.rootfs().join("bin/fail-hook"), "#!/bin/sh\nexit 7\n").expect("hook");
    fs::set_permissions(
        c.rootfs().join("bin/fail-hook"),
        fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    c.config["hooks"] = json!({
        "startContainer": [{"path": "/bin/fail-hook"}],
        "poststop": [hook(&script, "poststop", 0, &log)],
    });
    c.create();
    let o = c.rt(&["start", &c.id]);
    o.fails_with("startContainer hook #0");
    assert!(!ran.exists(), "the workload ran");
    assert_destroyed_after_failed_start(&c, &log, &[]);
}

/// A failing poststart hook fails `start`, stops and destroys the container (runtime-spec
/// 1.3; runc has always killed the container for it).
#[test]
fn failing_poststart_hook_stops_the_container() {
    if skip_unless_capsa("runc 1.1.5 runs poststart hooks during create") {
        return;
    }
    let mut c = Ctx::new("poststartfail");
    let (script, log) = host_hook(&c);
    c.args(&["sleep", "1000"]);
    c.config["hooks"] = json!({
        "poststart": [hook(&script, "poststart", 1, &log)],
        "poststop": [hook(&script, "poststop", 0, &log)],
    });
    c.create();
    let o = c.rt(&["start", &c.id]);
    o.fails_with("poststart hook #0");
    assert_destroyed_after_failed_start(&c, &log, &["poststart"]);

    // `run` in the foreground: the same error, and the container is gone.
    let id = c.new_id("poststartfailrun");
    c.id = id;
    let o = c.run();
    o.fails_with("poststart hook #0");
    c.assert_nothing_left(&c.id);
}

/// The state on a hook's stdin has the container's pid as the hook's namespace sees it
/// (runtime.md "State"): pid 1 of the new pid namespace for createContainer and
/// startContainer, which run in the container namespace; the host pid for poststart.
#[test]
fn hook_state_pid_is_as_its_namespace_sees_it() {
    let mut c = Ctx::new("hookpid");
    let out = c.scratch("states");
    fs::create_dir_all(&out).expect("mkdir states");
    // createContainer runs before the root switch: a host script. startContainer resolves
    // in the container: a script in the image, writing through a bind mount.
    let host = c.scratch("state.sh");
    fs::write(&host, "#!/bin/sh\ncat > \"$1\"\n").expect("state.sh");
    fs::set_permissions(&host, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::write(
        c.rootfs().join("bin/state-hook"),
        "#!/bin/sh\ncat > /states/startContainer\n",
    )
    .expect("state-hook");
    fs::set_permissions(
        c.rootfs().join("bin/state-hook"),
        fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    fs::create_dir_all(c.rootfs().join("states")).expect("mkdir /states");
    c.push_mount(json!({"destination": "/states", "type": "bind",
        "source": out.to_str().expect("utf-8"), "options": ["rbind", "rw"]}));
    let host_hook = |name: &str| {
        json!({"path": host.to_str().expect("utf-8"),
               "args": ["state.sh", out.join(name).to_str().expect("utf-8")]})
    };
    c.config["hooks"] = json!({
        "createContainer": [host_hook("createContainer")],
        "startContainer": [{"path": "/bin/state-hook"}],
        "poststart": [host_hook("poststart")],
    });
    c.args(&["sleep", "1000"]);
    c.create();
    c.rt(&["start", &c.id]).ok();
    let host_pid = c.state(&c.id)["pid"].as_i64().expect("pid");
    let state = |name: &str| -> Value {
        let text = read_lossy(&out.join(name));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} state {text:?}: {e}"))
    };
    for (name, pid) in [
        ("createContainer", 1),
        ("startContainer", 1),
        ("poststart", host_pid),
    ] {
        let s = state(name);
        assert_eq!(s["pid"].as_i64(), Some(pid), "{name}: {s}");
        assert_eq!(s["id"].as_str(), Some(c.id.as_str()), "{name}: {s}");
    }
    c.rt(&["delete", "--force", &c.id]).ok();
}

/// Makes a directory a shared mount point of its own for the life of the
/// test, as "/" is on a systemd host: a mount made below it in a copy of
/// the mount namespace that still shares it shows on the host too.
struct SharedBind(std::path::PathBuf);

impl SharedBind {
    fn new(dir: &Path) -> SharedBind {
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"mount --bind "$1" "$1" && mount --make-shared "$1""#)
            .arg("sh")
            .arg(dir)
            .status()
            .expect("spawn mount");
        assert!(st.success(), "cannot make {} a shared mount", dir.display());
        SharedBind(dir.to_path_buf())
    }
}

impl Drop for SharedBind {
    fn drop(&mut self) {
        // The bind and whatever leaked onto it.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Mount points in our (the host's) mount namespace whose path contains `needle`.
fn host_mounts_with(needle: &str) -> Vec<String> {
    read_lossy(Path::new("/proc/self/mountinfo"))
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// prestart / createRuntime / createContainer hooks run after the container's mounts
/// and devices are made and before the root switch (runtime.md lifecycle; runc's
/// order), which device hooks rely on: a createRuntime hook that enters the
/// container's mount namespace by the state's pid (as nvidia-container-cli does) and
/// bind-mounts a host file into the rootfs, and a createContainer hook that does it
/// directly, are both seen by the workload, and neither mount reaches the host's mount
/// table, even when the bundle sits on a shared mount.
#[test]
fn create_time_hooks_mount_into_the_rootfs_not_the_host() {
    let mut c = Ctx::new("hookmount");
    let _shared = SharedBind::new(c.tmp.path());
    let rootfs = c.rootfs();
    let rootfs = rootfs.to_str().expect("utf-8");
    for (name, text) in [
        ("src-rt", "from createRuntime"),
        ("src-cc", "from createContainer"),
    ] {
        fs::write(c.scratch(name), text).expect("hook source");
    }
    for t in ["hooked-rt", "hooked-cc"] {
        fs::write(c.rootfs().join(t), "not mounted").expect("mount target");
    }
    let rt = c.scratch("rt.sh");
    fs::write(
        &rt,
        "#!/bin/sh\nset -e\npid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p')\n\
         nsenter -t \"$pid\" -m mount --bind \"$1\" \"$2/hooked-rt\"\n",
    )
    .expect("rt.sh");
    let cc = c.scratch("cc.sh");
    // cwd is the rootfs, whose mounts (proc here) are already made.
    fs::write(
        &cc,
        "#!/bin/sh\nset -e\n[ -e proc/self/status ] || { echo 'no /proc yet' >&2; exit 3; }\n\
         mount --bind \"$1\" \"$2/hooked-cc\"\n",
    )
    .expect("cc.sh");
    for s in [&rt, &cc] {
        fs::set_permissions(s, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let hook = |script: &Path, src: &str| {
        json!({"path": script.to_str().expect("utf-8"),
               "args": ["hook", c.scratch(src).to_str().expect("utf-8"), rootfs]})
    };
    c.config["hooks"] = json!({
        "createRuntime": [hook(&rt, "src-rt")],
        "createContainer": [hook(&cc, "src-cc")],
    });
    c.args(&["cat", "/hooked-rt", "/hooked-cc"]);
    let out = c.create_capturing();
    let leaked = host_mounts_with("hooked-");
    c.rt(&["start", &c.id]).ok();
    c.wait_status(&c.id, "stopped", std::time::Duration::from_secs(10));
    c.rt(&["delete", &c.id]).ok();
    assert!(
        leaked.is_empty(),
        "hook mounts reached the host: {leaked:#?}"
    );
    assert!(host_mounts_with("hooked-").is_empty());
    let seen = read_lossy(&out);
    assert_eq!(
        seen, "from createRuntimefrom createContainer",
        "workload saw {seen:?}"
    );
}

/// A startContainer or createContainer hook without `env` of its own gets the container
/// process's environment (runc's, youki's); a hook in the runtime namespace without
/// `env` gets the runtime's; an explicit empty `env` is empty. And each one's cwd.
#[test]
fn hooks_without_env_inherit() {
    let mut c = Ctx::new("hookenv");
    let out = c.scratch("envs");
    fs::create_dir_all(&out).expect("mkdir envs");
    let host = c.scratch("env.sh");
    fs::write(&host, "#!/bin/sh\nenv > \"$1\"\npwd > \"$1.pwd\"\n").expect("env.sh");
    fs::set_permissions(&host, fs::Permissions::from_mode(0o755)).expect("chmod");
    let image = c.rootfs().join("bin/env-hook");
    fs::write(&image, "#!/bin/sh\nenv > /envs/startContainer\n").expect("env-hook");
    fs::set_permissions(&image, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::create_dir_all(c.rootfs().join("envs")).expect("mkdir /envs");
    c.push_mount(json!({"destination": "/envs", "type": "bind",
        "source": out.to_str().expect("utf-8"), "options": ["rbind", "rw"]}));
    let host_hook = |name: &str| {
        json!({"path": host.to_str().expect("utf-8"),
               "args": ["env.sh", out.join(name).to_str().expect("utf-8")]})
    };
    let mut empty = host_hook("empty");
    empty["env"] = json!([]);
    c.config["hooks"] = json!({
        "createRuntime": [host_hook("createRuntime"), empty],
        "createContainer": [host_hook("createContainer")],
        "startContainer": [{"path": "/bin/env-hook"}],
    });
    c.config["process"]["env"]
        .as_array_mut()
        .expect("env list")
        .push(json!("HOOKTEST=workload"));
    c.args(&["true"]);
    c.write_config();
    let b = c.bundle();
    c.rt_with(
        &["create", "--bundle", b.to_str().expect("utf-8"), &c.id],
        |cmd| {
            cmd.env("HOOKTEST", "runtime");
        },
    )
    .ok();
    c.rt(&["start", &c.id]).ok();
    c.wait_status(&c.id, "stopped", std::time::Duration::from_secs(10));
    let env = |name: &str| read_lossy(&out.join(name));
    for (name, want) in [
        ("createRuntime", "HOOKTEST=runtime"),
        ("createContainer", "HOOKTEST=workload"),
        ("startContainer", "HOOKTEST=workload"),
    ] {
        let e = env(name);
        assert!(e.lines().any(|l| l == want), "{name} hook env: {e:?}");
    }
    assert!(!env("empty").contains("HOOKTEST"), "{}", env("empty"));
    // Their working directory: the bundle in the runtime namespace (runc chdirs there),
    // the rootfs for createContainer (runc's).
    let canon = |p: std::path::PathBuf| fs::canonicalize(p).expect("canonicalize");
    for (name, dir) in [
        ("createRuntime", canon(c.bundle())),
        ("createContainer", canon(c.rootfs())),
    ] {
        let pwd = env(&format!("{name}.pwd"));
        assert_eq!(Path::new(pwd.trim()), dir, "{name} hook cwd");
    }
    c.rt(&["delete", &c.id]).ok();
}

/// No fd of the runtime's caller reaches a hook: not a `--preserve-fds` fd meant for the
/// workload (createContainer, startContainer run in the init, which holds it), nor any
/// other the caller left open (prestart, createRuntime, poststart run in the runtime).
/// runc 1.1.5 fails this: its createContainer hooks get the preserved fd, the init's
/// sync socket, its log pipe and exec.fifo.
#[test]
fn hooks_inherit_no_fds_of_the_caller() {
    use std::os::fd::AsRawFd;
    let mut c = Ctx::new("hookfds");
    let out = c.scratch("fds");
    fs::create_dir_all(&out).expect("mkdir fds");
    let host = c.scratch("fds.sh");
    fs::write(&host, "#!/bin/sh\nls -l /proc/self/fd/ > \"$1\" 2>&1\n").expect("fds.sh");
    fs::set_permissions(&host, fs::Permissions::from_mode(0o755)).expect("chmod");
    let image = c.rootfs().join("bin/fds-hook");
    fs::write(
        &image,
        "#!/bin/sh\nls -l /proc/self/fd/ > /fds/startContainer 2>&1\n",
    )
    .expect("fds-hook");
    fs::set_permissions(&image, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::create_dir_all(c.rootfs().join("fds")).expect("mkdir /fds");
    c.push_mount(json!({"destination": "/fds", "type": "bind",
        "source": out.to_str().expect("utf-8"), "options": ["rbind", "rw"]}));
    let host_hook = |name: &str| {
        json!({"path": host.to_str().expect("utf-8"),
               "args": ["fds.sh", out.join(name).to_str().expect("utf-8")]})
    };
    c.config["hooks"] = json!({
        "createRuntime": [host_hook("createRuntime")],
        "createContainer": [host_hook("createContainer")],
        "startContainer": [{"path": "/bin/fds-hook"}],
        "poststart": [host_hook("poststart")],
    });
    c.args(&["sleep", "1000"]);
    c.write_config();
    let marker = c.scratch("caller-fd-marker");
    let f = fs::File::create(&marker).expect("marker");
    let stray = fs::File::create(c.scratch("caller-stray-marker")).expect("stray");
    let b = c.bundle();
    c.rt_with(
        &[
            "create",
            "--preserve-fds",
            "1",
            "--bundle",
            b.to_str().expect("utf-8"),
            &c.id,
        ],
        |cmd| {
            pass_fd_as(cmd, f.as_raw_fd(), 3);
            pass_fd_as(cmd, stray.as_raw_fd(), 9);
        },
    )
    .ok();
    c.rt_with(&["start", &c.id], |cmd| {
        pass_fd_as(cmd, stray.as_raw_fd(), 9)
    })
    .ok();
    for name in [
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
    ] {
        let fds = read_lossy(&out.join(name));
        assert!(fds.contains(" 0 -> "), "{name}: no listing: {fds}");
        assert!(
            !fds.contains("-marker"),
            "{name} hook inherited the caller's fd:\n{fds}"
        );
    }
    c.rt(&["delete", "--force", &c.id]).ok();
}

/// A hook that outlives its `timeout` is killed and fails the create, promptly, in runc's
/// words; a failing hook's exit status is in runc's words too.
#[test]
fn hook_timeout_fails_create() {
    let mut c = Ctx::new("hooktimeout");
    c.config["hooks"] = json!({"createRuntime": [
        {"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}
    ]});
    let started = std::time::Instant::now();
    let o = c.create_refused("hook ran past specified timeout of 1.0s");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "create took {:?}: {o}",
        started.elapsed()
    );
}

#[test]
fn failing_hook_exit_status_in_runcs_words() {
    let mut c = Ctx::new("hookstatus");
    c.config["hooks"] = json!({"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo out; echo err >&2; exit 3"]}
    ]});
    c.create_refused("exit status 3, stdout: out")
        .fails_with("stderr: err");
}

/// A hook that never reads its stdin still times out when the state JSON is larger than
/// a pipe holds (big annotations): writing the state must not wait for the hook.
#[test]
fn hook_timeout_with_a_large_state() {
    let mut c = Ctx::new("hookbigstate");
    c.config["annotations"] = json!({"capsa.test/big": "x".repeat(200 * 1024)});
    c.config["hooks"] = json!({"createRuntime": [
        {"path": "/bin/sleep", "args": ["sleep", "20"], "timeout": 1}
    ]});
    let started = std::time::Instant::now();
    let o = c.create_refused("hook ran past specified timeout");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "create took {:?}: {o}",
        started.elapsed()
    );
}

#[test]
fn a_hook_can_ask_the_runtime_for_the_state() {
    // The command running a hook must not make the runtime's own `state`
    // (or `list`) wait for it: a hook asking would wait forever. runc
    // answers "does not exist" before create has recorded the container.
    let mut c = Ctx::new("hookstate");
    c.args(&["sleep", "1000"]);
    let rt = runtime();
    let root = c.root();
    for kind in ["createRuntime", "poststart"] {
        let out = c.scratch(kind);
        let script = format!(
            "timeout -s KILL 5 {} --root {} state {} > {out} 2>&1; \
             timeout -s KILL 5 {} --root {} list >> {out} 2>&1; echo rc=$? >> {out}",
            rt.display(),
            root.display(),
            c.id,
            rt.display(),
            root.display(),
            out = out.display()
        );
        c.config["hooks"][kind] = json!([{"path": "/bin/sh", "args": ["sh", "-c", script]}]);
    }
    c.create();
    c.rt(&["start", &c.id]).ok();
    let created = read_lossy(&c.scratch("createRuntime"));
    assert!(
        created.contains("does not exist"),
        "createRuntime: {created}"
    );
    assert!(created.contains("rc=0"), "list in createRuntime: {created}");
    let started = read_lossy(&c.scratch("poststart"));
    assert!(
        started.contains(&format!("\"id\": \"{}\"", c.id)),
        "poststart: {started}"
    );
    assert!(started.contains("rc=0"), "list in poststart: {started}");
}

#[test]
fn a_poststart_hook_can_exec_into_the_container() {
    // `start` (and `run`) must not hold the container while poststart
    // hooks run: a hook that execs into it (or kills it) waited forever.
    for detach in [true, false] {
        let mut c = Ctx::new("hookexec");
        c.args(&["sleep", "1000"]);
        let out = c.scratch("poststart");
        let rt = runtime();
        let script = format!(
            "timeout -s KILL 5 {rt} --root {root} exec {id} true; echo exec=$? > {out}",
            rt = rt.display(),
            root = c.root().display(),
            id = c.id,
            out = out.display()
        );
        c.config["hooks"]["poststart"] = json!([{"path": "/bin/sh", "args": ["sh", "-c", script]}]);
        if detach {
            c.create();
            c.rt(&["start", &c.id]).ok();
        } else {
            // Foreground run: the workload ends once the hook has run.
            c.config["process"]["args"] = json!(["sh", "-c", "sleep 1"]);
            c.run().ok();
        }
        let got = read_lossy(&out);
        assert_eq!(got.trim(), "exec=0", "detach={detach}");
    }
}

#[test]
fn a_create_time_hook_calling_the_runtime_is_not_kept_waiting() {
    // Before create has recorded the container it does not exist (runc
    // says so); kill or exec from a createRuntime hook waited forever for
    // the create that waits for the hook.
    let mut c = Ctx::new("hookkill");
    c.args(&["sleep", "1000"]);
    let out = c.scratch("createRuntime");
    let rt = runtime();
    let script = format!(
        "timeout -s KILL 5 {rt} --root {root} kill {id} KILL; echo kill=$? > {out}; \
         timeout -s KILL 5 {rt} --root {root} exec {id} true; echo exec=$? >> {out}",
        rt = rt.display(),
        root = c.root().display(),
        id = c.id,
        out = out.display()
    );
    c.config["hooks"]["createRuntime"] = json!([{"path": "/bin/sh", "args": ["sh", "-c", script]}]);
    c.create();
    let got = read_lossy(&out);
    let codes: Vec<&str> = got.split_whitespace().collect();
    assert_eq!(codes.len(), 2, "{got}");
    for code in codes {
        assert!(!code.ends_with("=137"), "killed after waiting: {got}");
        assert!(
            !code.ends_with("=0"),
            "acted on a container being created: {got}"
        );
    }
    assert_eq!(c.status(&c.id), "created");
}

#[test]
fn kill_gets_through_while_start_waits_on_a_hook() {
    // `start` waits for a slow startContainer hook; the engine's `kill`
    // must not wait for `start` (runc's does not).
    let mut c = Ctx::new("hookslowkill");
    c.args(&["sleep", "1000"]);
    c.config["hooks"]["startContainer"] = json!([{"path": "/bin/sleep", "args": ["sleep", "20"]}]);
    c.create();
    let root = c.root();
    let mut start = std::process::Command::new(runtime())
        .args(["--root", root.to_str().expect("utf-8"), "start", &c.id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn start");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let began = std::time::Instant::now();
    let o = run_cmd(
        &runtime(),
        &[
            "--root",
            root.to_str().expect("utf-8"),
            "kill",
            &c.id,
            "KILL",
        ],
        &c.scratch(""),
        std::time::Duration::from_secs(30),
        |_| {},
    );
    let took = began.elapsed();
    let _ = start.kill();
    let _ = start.wait();
    o.ok();
    assert!(
        took < std::time::Duration::from_secs(10),
        "kill waited {took:?} for start"
    );
}
