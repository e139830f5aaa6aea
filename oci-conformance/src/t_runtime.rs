//! runtime.md (state, lifecycle, operations, hooks order) and the OCI command-line
//! interface document (runtime-tools docs/command-line-interface.md).

use crate::harness::{Ctx, R, Verdict, ensure, eq, fail, trunc};
use crate::{MUST, SHOULD, Test};
use serde_json::{Value, json};
use std::fs;
use std::time::Duration;

macro_rules! t {
    ($id:expr, $sec:expr, $lvl:expr, $req:expr, $f:expr) => {
        Test {
            id: $id,
            section: $sec,
            level: $lvl,
            req: $req,
            run: $f,
            v2: false,
        }
    };
}

/// A bundle whose process waits (sleeps) so that it stays `running`.
fn sleeper(c: &mut Ctx) -> Result<crate::harness::Bundle, Verdict> {
    let mut b = c.bundle()?;
    b.args(&["sleep:30"]);
    Ok(b)
}

fn created(c: &mut Ctx) -> Result<(crate::harness::Bundle, String), Verdict> {
    let b = sleeper(c)?;
    let id = c.id();
    c.must_create(&b, &id)?;
    Ok((b, id))
}

fn running(c: &mut Ctx) -> Result<(crate::harness::Bundle, String), Verdict> {
    let (b, id) = created(c)?;
    let o = c.start(&id);
    ensure(o.ok(), format!("start failed: {}", o.brief()))?;
    Ok((b, id))
}

fn stopped(c: &mut Ctx) -> Result<(crate::harness::Bundle, String), Verdict> {
    let mut b = c.bundle()?;
    b.args(&["exit:0"]);
    let id = c.id();
    c.must_create(&b, &id)?;
    let o = c.start(&id);
    ensure(o.ok(), format!("start failed: {}", o.brief()))?;
    c.wait_status(&id, "stopped", 10)?;
    Ok((b, id))
}

fn errors(o: &crate::harness::Out, what: &str) -> R {
    ensure(
        !o.ok(),
        format!("{what} succeeded (exit 0) but MUST generate an error"),
    )
}

/// Hooks: one entry running the shared checker copy that logs to `log`.
pub fn hook(path: &str, name: &str, log: &str, code: i32) -> Value {
    json!({"path": path, "args": ["checker", format!("hook:{name}:{log}:{code}")]})
}

/// Set up a shared dir with a checker copy usable as a hook path in both namespaces.
pub fn hook_setup(c: &Ctx, b: &mut crate::harness::Bundle) -> Result<(String, String), Verdict> {
    let shared = c.share(b);
    let chk = format!("{shared}/checker");
    fs::copy(&c.env.checker, &chk).map_err(|e| Verdict::Fail(format!("copy checker: {e}")))?;
    Ok((chk, format!("{shared}/hooks.log")))
}

fn log_lines(log: &str) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|s| s.to_string())
        .collect()
}

fn hook_names(log: &str) -> Vec<String> {
    log_lines(log)
        .iter()
        .map(|l| l.split('\t').next().unwrap_or("").to_string())
        .collect()
}

fn host_mntns() -> String {
    fs::read_link("/proc/self/ns/mnt")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn hook_line(log: &str, name: &str) -> Result<String, Verdict> {
    match log_lines(log)
        .into_iter()
        .find(|l| l.starts_with(&format!("{name}\t")))
    {
        Some(l) => Ok(l),
        None => fail(format!("{name} hook never ran; log: {:?}", hook_names(log))),
    }
}

fn hook_state(line: &str) -> Result<Value, Verdict> {
    let s = line
        .split('\t')
        .find_map(|f| f.strip_prefix("state="))
        .unwrap_or("");
    serde_json::from_str(&s.replace("\\n", "\n")).map_err(|e| {
        Verdict::Fail(format!(
            "hook stdin is not state JSON ({e}): {}",
            trunc(s, 200)
        ))
    })
}

fn hooks_failing(c: &mut Ctx, which: &str) -> R {
    let mut b = c.bundle()?;
    let (chk, log) = hook_setup(c, &mut b)?;
    b.config["hooks"][which] = json!([hook(&chk, which, &log, 1)]);
    b.config["hooks"]["poststop"] = json!([hook(&chk, "poststop", &log, 0)]);
    let marker = format!("{}/main-ran", c.dir.join("shared").display());
    b.args(&[&format!("append:{marker}:main"), "sleep:30"]);
    let id = c.id();
    let o = c.create(&b, &id)?;
    let failed_at = if !o.ok() {
        "create"
    } else {
        let s = c.start(&id);
        if s.ok() { "" } else { "start" }
    };
    ensure(
        !failed_at.is_empty(),
        format!("a failing {which} hook produced no error from create or start"),
    )?;
    std::thread::sleep(Duration::from_millis(200));
    // "stop the container, and continue the lifecycle at step 12": no process may be left running.
    if let Ok(st) = c.state(&id) {
        let s = st["status"].as_str().unwrap_or("");
        ensure(
            s == "stopped",
            format!(
                "after the failing {which} hook the container is {s:?}, MUST be stopped/destroyed"
            ),
        )?;
    }
    if which != "poststart" {
        ensure(
            fs::metadata(&marker).is_err(),
            format!("the user process ran although {which} failed"),
        )?;
    }
    Ok(())
}

pub fn tests() -> Vec<Test> {
    vec![
        // ---- State
        t!(
            "state.fields-created",
            "runtime.md#state",
            MUST,
            "The state of a container includes ociVersion, id, status, pid (REQUIRED when created or running) and bundle (absolute path).",
            |c| {
                let (b, id) = created(c)?;
                let s = c.state(&id)?;
                ensure(
                    s["ociVersion"].is_string(),
                    format!("ociVersion missing: {s}"),
                )?;
                eq("id", s["id"].as_str(), Some(id.as_str()))?;
                eq("status", s["status"].as_str(), Some("created"))?;
                ensure(
                    s["pid"].as_i64().unwrap_or(0) > 0,
                    format!("pid missing or not positive: {s}"),
                )?;
                eq("bundle", s["bundle"].as_str(), Some(b.path()))
            }
        ),
        t!(
            "state.pid-is-host-pid",
            "runtime.md#state",
            MUST,
            "pid is the ID of the container process, as seen by the host.",
            |c| {
                let (_b, id) = running(c)?;
                let pid = c.pid(&id)?;
                let ns = fs::read_link(format!("/proc/{pid}/ns/pid"))
                    .map_err(|e| Verdict::Fail(format!("/proc/{pid} on the host: {e}")))?;
                let mine = fs::read_link("/proc/self/ns/pid").unwrap_or_default();
                ensure(
                    ns != mine,
                    "state pid is a process in the host pid namespace, not the container process",
                )?;
                let cmd = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                ensure(
                    cmd.starts_with("/checker"),
                    format!(
                        "host pid {pid} runs {:?}, not the container process",
                        cmd.replace('\0', " ")
                    ),
                )
            }
        ),
        t!(
            "state.annotations",
            "runtime.md#state",
            MUST,
            "annotations (map) contains the list of annotations associated with the container (from config.json annotations).",
            |c| {
                let mut b = sleeper(c)?;
                b.config["annotations"] =
                    json!({"org.example.key": "value-1", "com.example.two": "2"});
                let id = c.id();
                c.must_create(&b, &id)?;
                let s = c.state(&id)?;
                eq(
                    "annotations",
                    &s["annotations"],
                    &json!({"org.example.key": "value-1", "com.example.two": "2"}),
                )
            }
        ),
        t!(
            "state.status-running",
            "runtime.md#start",
            MUST,
            "Upon successful completion of start the status property of this container MUST be running.",
            |c| {
                let (_b, id) = running(c)?;
                eq("status", c.status(&id)?.as_str(), "running")
            }
        ),
        t!(
            "state.status-stopped-on-exit",
            "runtime.md#kill",
            MUST,
            "When the container process exits, irrespective of the reason, the status property MUST be stopped.",
            |c| {
                let (_b, id) = stopped(c)?;
                eq("status", c.status(&id)?.as_str(), "stopped")
            }
        ),
        t!(
            "state.unknown-id-errors",
            "runtime.md#query-state",
            MUST,
            "Attempting to query a container that does not exist MUST generate an error.",
            |c| errors(
                &c.rt(&["state", "oct-no-such-container"]),
                "state of a nonexistent container"
            )
        ),
        t!(
            "state.no-id-errors",
            "runtime.md#query-state",
            MUST,
            "This operation MUST generate an error if it is not provided the ID of a container.",
            |c| errors(&c.rt(&["state"]), "state without an id")
        ),
        // ---- Create
        t!(
            "create.status-created",
            "runtime.md#create",
            MUST,
            "Upon successful completion of this operation the status property of this container MUST be created.",
            |c| {
                let (_b, id) = created(c)?;
                eq("status", c.status(&id)?.as_str(), "created")
            }
        ),
        t!(
            "create.user-code-not-run",
            "runtime.md#create",
            MUST,
            "All of the resources associated with the container MUST be created, however, the user-specified program MUST NOT be run at this time.",
            |c| {
                let mut b = c.bundle()?;
                let shared = c.share(&mut b);
                let m = format!("{shared}/ran");
                b.args(&[&format!("append:{m}:ran"), "sleep:30"]);
                let id = c.id();
                c.must_create(&b, &id)?;
                std::thread::sleep(Duration::from_millis(300));
                ensure(
                    fs::metadata(&m).is_err(),
                    "the user-specified program ran during create",
                )?;
                let o = c.start(&id);
                ensure(o.ok(), format!("start: {}", o.brief()))?;
                for _ in 0..200 {
                    if fs::metadata(&m).is_ok() {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                fail("the user-specified program never ran after start")
            }
        ),
        t!(
            "create.resources-exist-after-create",
            "runtime.md#lifecycle",
            MUST,
            "The container's runtime environment MUST be created according to config.json (before start): namespaces exist for the created container.",
            |c| {
                let (_b, id) = created(c)?;
                let pid = c.pid(&id)?;
                for ns in ["net", "uts", "ipc", "mnt", "pid"] {
                    let theirs = fs::read_link(format!("/proc/{pid}/ns/{ns}"))
                        .map_err(|e| Verdict::Fail(e.to_string()))?;
                    let mine = fs::read_link(format!("/proc/self/ns/{ns}")).unwrap_or_default();
                    if ns == "pid" {
                        let child = fs::read_link(format!("/proc/{pid}/ns/pid_for_children"))
                            .unwrap_or_default();
                        ensure(
                            theirs != mine || child != mine,
                            "no new pid namespace after create",
                        )?;
                    } else {
                        ensure(
                            theirs != mine,
                            format!(
                                "after create the container process is still in the host {ns} namespace"
                            ),
                        )?;
                    }
                }
                Ok(())
            }
        ),
        t!(
            "create.duplicate-id-errors",
            "runtime.md#create",
            MUST,
            "If the ID provided is not unique across all containers within the scope of the runtime, the implementation MUST generate an error and a new container MUST NOT be created.",
            |c| {
                let (_b, id) = created(c)?;
                let pid = c.pid(&id)?;
                let b2 = sleeper(c)?;
                let o = c.create(&b2, &id)?;
                errors(&o, "create with an id already in use")?;
                let s = c.state(&id)?;
                eq(
                    "status of the first container",
                    s["status"].as_str(),
                    Some("created"),
                )?;
                eq(
                    "pid of the first container",
                    s["pid"].as_i64(),
                    Some(pid as i64),
                )
            }
        ),
        t!(
            "create.invalid-id-errors",
            "runtime.md#create",
            MUST,
            "If the ID provided is not valid in any way, the implementation MUST generate an error (an id with a path separator).",
            |c| {
                let b = sleeper(c)?;
                c.track("../oct-escape");
                let o = c.create(&b, "../oct-escape")?;
                errors(&o, "create with id ../oct-escape")
            }
        ),
        t!(
            "create.missing-bundle-errors",
            "runtime.md#create",
            MUST,
            "Create MUST generate an error if it is not provided a valid path to the bundle; the error MUST leave the environment as if the operation were never attempted.",
            |c| {
                let id = c.id();
                let o = c.rt(&["create", "--bundle", "/nonexistent/oct-bundle", &id]);
                errors(&o, "create with a missing bundle")?;
                errors(
                    &c.rt(&["state", &id]),
                    "state of the container whose create failed",
                )
            }
        ),
        t!(
            "create.failure-leaves-nothing",
            "runtime.md#errors",
            MUST,
            "Unless otherwise stated, generating an error MUST leave the state of the environment as if the operation were never attempted.",
            |c| {
                let mut b = sleeper(c)?;
                b.add_mount(json!({"destination": "/mnt/x", "type": "bind", "source": "/nonexistent/oct-src", "options": ["bind"]}));
                let id = c.id();
                let o = c.create(&b, &id)?;
                errors(&o, "create with a bind mount of a missing source")?;
                errors(
                    &c.rt(&["state", &id]),
                    "state after a failed create (a container was left behind)",
                )?;
                let b2 = sleeper(c)?;
                let o2 = c.create(&b2, &id)?;
                ensure(
                    o2.ok(),
                    format!("the id of a failed create cannot be reused: {}", o2.brief()),
                )
            }
        ),
        t!(
            "create.config-changes-ignored",
            "runtime.md#create",
            MUST,
            "Any changes made to the config.json file after this operation will not have an effect on the container (lifecycle step 2: MUST NOT affect).",
            |c| {
                let mut b = c.bundle()?;
                b.args(&["args"]);
                let id = c.id();
                c.must_create(&b, &id)?;
                b.args(&["exit:7", "changed"]);
                b.config["hostname"] = json!("changed");
                b.write()?;
                let o = c.start(&id);
                ensure(o.ok(), format!("start: {}", o.brief()))?;
                c.wait_status(&id, "stopped", 10)?;
                let out = b.stdout();
                ensure(
                    out.contains("args=/checker args"),
                    format!(
                        "the process run is not the one from create time: {}",
                        trunc(&out, 200)
                    ),
                )
            }
        ),
        // ---- Start
        t!(
            "start.no-id-errors",
            "runtime.md#start",
            MUST,
            "This operation MUST generate an error if it is not provided the container ID.",
            |c| errors(&c.rt(&["start"]), "start without an id")
        ),
        t!(
            "start.unknown-id-errors",
            "runtime.md#start",
            MUST,
            "Attempting to start a container that does not exist MUST generate an error.",
            |c| errors(
                &c.start("oct-no-such-container"),
                "start of a nonexistent container"
            )
        ),
        t!(
            "start.twice-errors",
            "runtime.md#start",
            MUST,
            "Attempting to start a container that is not created MUST have no effect on the container and MUST generate an error.",
            |c| {
                let (_b, id) = running(c)?;
                let pid = c.pid(&id)?;
                errors(&c.start(&id), "a second start")?;
                let s = c.state(&id)?;
                eq("status", s["status"].as_str(), Some("running"))?;
                eq("pid", s["pid"].as_i64(), Some(pid as i64))
            }
        ),
        t!(
            "start.stopped-errors",
            "runtime.md#start",
            MUST,
            "Attempting to start a container that is not created (here: stopped) MUST have no effect on the container and MUST generate an error.",
            |c| {
                let (_b, id) = stopped(c)?;
                errors(&c.start(&id), "start of a stopped container")?;
                eq("status", c.status(&id)?.as_str(), "stopped")
            }
        ),
        t!(
            "start.runs-process",
            "runtime.md#start",
            MUST,
            "This operation MUST run the user-specified program as specified by process.",
            |c| {
                let mut b = c.bundle()?;
                b.args(&["args", "pid"]);
                let kv = c.run(&b)?;
                eq("args", kv.get("args")?, "/checker args pid")?;
                eq("pid in the new pid namespace", kv.get("pid")?, "1")
            }
        ),
        // ---- Kill
        t!(
            "kill.no-id-errors",
            "runtime.md#kill",
            MUST,
            "This operation MUST generate an error if it is not provided the container ID.",
            |c| errors(&c.rt(&["kill"]), "kill without an id")
        ),
        t!(
            "kill.unknown-id-errors",
            "runtime.md#kill",
            MUST,
            "Attempting to send a signal to a container that does not exist MUST generate an error.",
            |c| errors(
                &c.kill("oct-no-such-container", "KILL"),
                "kill of a nonexistent container"
            )
        ),
        t!(
            "kill.stopped-errors",
            "runtime.md#kill",
            MUST,
            "Attempting to send a signal to a container that is neither created nor running MUST have no effect on the container and MUST generate an error.",
            |c| {
                let (_b, id) = stopped(c)?;
                errors(&c.kill(&id, "KILL"), "kill of a stopped container")?;
                eq("status", c.status(&id)?.as_str(), "stopped")
            }
        ),
        t!(
            "kill.sends-signal",
            "runtime.md#kill",
            MUST,
            "This operation MUST send the specified signal to the container process.",
            |c| {
                let mut b = c.bundle()?;
                b.args(&["trapterm"]);
                let id = c.id();
                c.must_create(&b, &id)?;
                ensure(c.start(&id).ok(), "start failed")?;
                for _ in 0..200 {
                    if b.stdout().contains("ready=1") {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let o = c.kill(&id, "TERM");
                ensure(o.ok(), format!("kill TERM: {}", o.brief()))?;
                c.wait_status(&id, "stopped", 10)?;
                ensure(
                    b.stdout().contains("signal=15"),
                    format!(
                        "the process did not receive SIGTERM: {}",
                        trunc(&b.stdout(), 200)
                    ),
                )
            }
        ),
        t!(
            "kill.running-to-stopped",
            "runtime.md#kill",
            MUST,
            "When the container process is stopped as a result of kill, the status property of this container MUST be stopped.",
            |c| {
                let (_b, id) = running(c)?;
                let o = c.kill(&id, "KILL");
                ensure(o.ok(), format!("kill KILL: {}", o.brief()))?;
                c.wait_status(&id, "stopped", 10)
            }
        ),
        t!(
            "kill.created-container",
            "runtime.md#kill",
            MUST,
            "kill applies to a container that is created or running: signalling a created container MUST send the signal to the container process.",
            |c| {
                let (_b, id) = created(c)?;
                let o = c.kill(&id, "KILL");
                ensure(
                    o.ok(),
                    format!("kill of a created container: {}", o.brief()),
                )?;
                c.wait_status(&id, "stopped", 10)
            }
        ),
        // ---- Delete
        t!(
            "delete.no-id-errors",
            "runtime.md#delete",
            MUST,
            "This operation MUST generate an error if it is not provided the container ID.",
            |c| errors(&c.rt(&["delete"]), "delete without an id")
        ),
        t!(
            "delete.unknown-id-errors",
            "runtime.md#delete",
            MUST,
            "Attempting to delete a container that does not exist MUST generate an error.",
            |c| errors(
                &c.delete("oct-no-such-container"),
                "delete of a nonexistent container"
            )
        ),
        t!(
            "delete.running-errors",
            "runtime.md#delete",
            MUST,
            "Attempting to delete a container that is not stopped MUST have no effect on the container and MUST generate an error (running).",
            |c| {
                let (_b, id) = running(c)?;
                errors(&c.delete(&id), "delete of a running container")?;
                eq("status", c.status(&id)?.as_str(), "running")
            }
        ),
        t!(
            "delete.created-errors",
            "runtime.md#delete",
            MUST,
            "Attempting to delete a container that is not stopped MUST have no effect on the container and MUST generate an error (created).",
            |c| {
                let (_b, id) = created(c)?;
                errors(&c.delete(&id), "delete of a created container")?;
                eq("status", c.status(&id)?.as_str(), "created")
            }
        ),
        t!(
            "delete.removes-container",
            "runtime.md#delete",
            MUST,
            "Deleting a container MUST delete the resources that were created during the create step; once deleted its ID MAY be reused.",
            |c| {
                let (_b, id) = stopped(c)?;
                let o = c.delete(&id);
                ensure(o.ok(), format!("delete: {}", o.brief()))?;
                errors(&c.rt(&["state", &id]), "state after delete")?;
                let b2 = sleeper(c)?;
                let o2 = c.create(&b2, &id)?;
                ensure(
                    o2.ok(),
                    format!("create with the id of a deleted container: {}", o2.brief()),
                )
            }
        ),
        t!(
            "delete.removes-cgroup",
            "runtime.md#delete",
            MUST,
            "Deleting a container MUST delete the resources that were created during the create step (its cgroup).",
            |c| {
                let mut b = c.bundle()?;
                b.args(&["exit:0"]);
                let path = format!("/oci-conformance/{}", c.id());
                b.config["linux"]["cgroupsPath"] = json!(path);
                let id = c.id();
                c.must_create(&b, &id)?;
                let pid = c.pid(&id)?;
                let f = c.cgroup_file(pid, "pids", "cgroup.procs")?;
                let dir = f.parent().map(|p| p.to_path_buf()).unwrap_or_default();
                ensure(c.start(&id).ok(), "start failed")?;
                c.wait_status(&id, "stopped", 10)?;
                ensure(c.delete(&id).ok(), "delete failed")?;
                let gone = fs::metadata(&dir).is_err();
                let _ = fs::remove_dir(&dir);
                let _ = fs::remove_dir(dir.parent().unwrap_or(&dir));
                ensure(
                    gone,
                    format!("cgroup {} still exists after delete", dir.display()),
                )
            }
        ),
        t!(
            "delete.keeps-foreign-resources",
            "runtime.md#delete",
            MUST,
            "Resources associated with the container, but not created by this container, MUST NOT be deleted (a bind-mounted host directory).",
            |c| {
                let mut b = c.bundle()?;
                let shared = c.share(&mut b);
                fs::write(format!("{shared}/keep"), "k")
                    .map_err(|e| Verdict::Fail(e.to_string()))?;
                b.args(&["exit:0"]);
                c.run(&b)?;
                ensure(
                    fs::read_to_string(format!("{shared}/keep")).is_ok(),
                    "a host file bind-mounted into the container was deleted",
                )
            }
        ),
        // ---- Hooks (lifecycle order, config.md#posix-platform-hooks)
        t!(
            "hooks.order",
            "runtime.md#lifecycle",
            MUST,
            "prestart, createRuntime, createContainer are invoked during create; startContainer before the user program; poststart after it; poststop after delete (lifecycle steps 3-13).",
            |c| {
                let mut b = c.bundle()?;
                let (chk, log) = hook_setup(c, &mut b)?;
                for h in [
                    "prestart",
                    "createRuntime",
                    "createContainer",
                    "startContainer",
                    "poststart",
                    "poststop",
                ] {
                    b.config["hooks"][h] = json!([hook(&chk, h, &log, 0)]);
                }
                b.args(&[&format!("append:{log}:main"), "sleep:30"]);
                let id = c.id();
                c.must_create(&b, &id)?;
                let after_create = hook_names(&log);
                eq(
                    "hooks run by create",
                    after_create.clone(),
                    vec![
                        "prestart".to_string(),
                        "createRuntime".into(),
                        "createContainer".into(),
                    ],
                )?;
                ensure(c.start(&id).ok(), "start failed")?;
                let after_start = hook_names(&log);
                ensure(
                    after_start.len() >= 5 && after_start[3] == "startContainer",
                    format!(
                        "startContainer must run after create's hooks and before the program: {after_start:?}"
                    ),
                )?;
                ensure(
                    after_start.iter().any(|h| h == "poststart"),
                    format!("poststart had not run when start returned: {after_start:?}"),
                )?;
                ensure(
                    !after_start.iter().any(|h| h == "poststop"),
                    "poststop ran during start",
                )?;
                ensure(c.kill(&id, "KILL").ok(), "kill failed")?;
                c.wait_status(&id, "stopped", 10)?;
                ensure(
                    !hook_names(&log).iter().any(|h| h == "poststop"),
                    "poststop ran before delete",
                )?;
                ensure(c.delete(&id).ok(), "delete failed")?;
                ensure(
                    hook_names(&log).last().map(|s| s.as_str()) == Some("poststop"),
                    format!("poststop did not run at delete: {:?}", hook_names(&log)),
                )
            }
        ),
        t!(
            "hooks.state-on-stdin",
            "config.md#posix-platform-hooks",
            MUST,
            "Hooks MUST be passed the state of the container on stdin (id, pid, bundle, status).",
            |c| {
                let mut b = c.bundle()?;
                let (chk, log) = hook_setup(c, &mut b)?;
                b.config["hooks"]["createRuntime"] = json!([hook(&chk, "createRuntime", &log, 0)]);
                b.config["hooks"]["poststart"] = json!([hook(&chk, "poststart", &log, 0)]);
                b.args(&["sleep:30"]);
                let id = c.id();
                c.must_create(&b, &id)?;
                ensure(c.start(&id).ok(), "start failed")?;
                let pid = c.pid(&id)?;
                for h in ["createRuntime", "poststart"] {
                    let s = hook_state(&hook_line(&log, h)?)?;
                    eq(
                        &format!("{h} state id"),
                        s["id"].as_str(),
                        Some(id.as_str()),
                    )?;
                    eq(
                        &format!("{h} state bundle"),
                        s["bundle"].as_str(),
                        Some(b.path()),
                    )?;
                    eq(
                        &format!("{h} state pid"),
                        s["pid"].as_i64(),
                        Some(pid as i64),
                    )?;
                }
                Ok(())
            }
        ),
        t!(
            "hooks.runtime-namespace",
            "config.md#posix-platform-hooks",
            MUST,
            "The prestart and createRuntime hooks MUST be executed in the runtime namespace.",
            |c| {
                let mut b = c.bundle()?;
                let (chk, log) = hook_setup(c, &mut b)?;
                b.config["hooks"]["prestart"] = json!([hook(&chk, "prestart", &log, 0)]);
                b.config["hooks"]["createRuntime"] = json!([hook(&chk, "createRuntime", &log, 0)]);
                b.config["hooks"]["poststop"] = json!([hook(&chk, "poststop", &log, 0)]);
                b.args(&["exit:0"]);
                c.run(&b)?;
                let mine = host_mntns();
                for h in ["prestart", "createRuntime", "poststop"] {
                    let l = hook_line(&log, h)?;
                    ensure(
                        l.contains(&format!("mnt={mine}")),
                        format!(
                            "{h} hook did not run in the runtime mount namespace: {}",
                            trunc(&l, 120)
                        ),
                    )?;
                }
                Ok(())
            }
        ),
        t!(
            "hooks.container-namespace",
            "config.md#posix-platform-hooks",
            MUST,
            "The createContainer and startContainer hooks MUST be executed in the container namespace.",
            |c| {
                let mut b = c.bundle()?;
                let (chk, log) = hook_setup(c, &mut b)?;
                b.config["hooks"]["createContainer"] =
                    json!([hook(&chk, "createContainer", &log, 0)]);
                b.config["hooks"]["startContainer"] =
                    json!([hook(&chk, "startContainer", &log, 0)]);
                b.args(&["sleep:30"]);
                let id = c.id();
                c.must_create(&b, &id)?;
                ensure(c.start(&id).ok(), "start failed")?;
                let pid = c.pid(&id)?;
                let theirs = fs::read_link(format!("/proc/{pid}/ns/mnt"))
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                for h in ["createContainer", "startContainer"] {
                    let l = hook_line(&log, h)?;
                    ensure(
                        l.contains(&format!("mnt={theirs}")),
                        format!(
                            "{h} hook did not run in the container mount namespace ({theirs}): {}",
                            trunc(&l, 120)
                        ),
                    )?;
                }
                Ok(())
            }
        ),
        t!(
            "hooks.start-container-path-in-container",
            "config.md#posix-platform-hooks",
            MUST,
            "The value of path of a startContainer hook MUST resolve in the container namespace (a path that exists only in the rootfs).",
            |c| {
                let mut b = c.bundle()?;
                let (_chk, log) = hook_setup(c, &mut b)?;
                b.config["hooks"]["startContainer"] =
                    json!([hook("/checker", "startContainer", &log, 0)]);
                b.args(&["exit:0"]);
                c.run(&b)?;
                hook_line(&log, "startContainer").map(|_| ())
            }
        ),
        t!(
            "hooks.args-env",
            "config.md#posix-platform-hooks",
            MUST,
            "Hook args have the same semantics as execv's argv; env has the same semantics as environ.",
            |c| {
                let mut b = c.bundle()?;
                let (chk, log) = hook_setup(c, &mut b)?;
                let mut h = hook(&chk, "createRuntime", &log, 0);
                h["args"] = json!(["argv0-name", format!("hook:createRuntime:{log}:0")]);
                h["env"] = json!(["OCT_HOOK=yes", "PATH=/bin"]);
                b.config["hooks"]["createRuntime"] = json!([h]);
                b.args(&["exit:0"]);
                c.run(&b)?;
                let l = hook_line(&log, "createRuntime")?;
                ensure(
                    l.contains("argv=argv0-name hook:"),
                    format!("argv[0] was not args[0]: {}", trunc(&l, 200)),
                )?;
                ensure(
                    l.contains("env=OCT_HOOK=yes PATH=/bin\t")
                        || l.contains("env=PATH=/bin OCT_HOOK=yes\t"),
                    format!(
                        "hook env is not exactly the configured env: {}",
                        trunc(&l, 300)
                    ),
                )
            }
        ),
        t!(
            "hooks.prestart-fails",
            "runtime.md#lifecycle",
            MUST,
            "If any prestart hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12.",
            |c| hooks_failing(c, "prestart")
        ),
        t!(
            "hooks.create-runtime-fails",
            "runtime.md#lifecycle",
            MUST,
            "If any createRuntime hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12.",
            |c| hooks_failing(c, "createRuntime")
        ),
        t!(
            "hooks.create-container-fails",
            "runtime.md#lifecycle",
            MUST,
            "If any createContainer hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12.",
            |c| hooks_failing(c, "createContainer")
        ),
        t!(
            "hooks.start-container-fails",
            "runtime.md#lifecycle",
            MUST,
            "If any startContainer hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12.",
            |c| hooks_failing(c, "startContainer")
        ),
        t!(
            "hooks.poststart-fails",
            "runtime.md#lifecycle",
            MUST,
            "If any poststart hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12.",
            |c| hooks_failing(c, "poststart")
        ),
        t!(
            "hooks.poststop-fails-continues",
            "runtime.md#lifecycle",
            MUST,
            "If any poststop hook fails, the runtime MUST log a warning, but the remaining hooks and lifecycle continue as if the hook had succeeded.",
            |c| {
                let mut b = c.bundle()?;
                let (chk, log) = hook_setup(c, &mut b)?;
                b.config["hooks"]["poststop"] = json!([
                    hook(&chk, "poststop1", &log, 1),
                    hook(&chk, "poststop2", &log, 0)
                ]);
                b.args(&["exit:0"]);
                let id = c.id();
                c.must_create(&b, &id)?;
                ensure(c.start(&id).ok(), "start failed")?;
                c.wait_status(&id, "stopped", 10)?;
                let o = c.delete(&id);
                ensure(
                    o.ok(),
                    format!(
                        "delete failed because a poststop hook failed: {}",
                        o.brief()
                    ),
                )?;
                errors(&c.rt(&["state", &id]), "state after delete")?;
                eq(
                    "poststop hooks run",
                    hook_names(&log),
                    vec!["poststop1".to_string(), "poststop2".into()],
                )
            }
        ),
        t!(
            "hooks.timeout",
            "config.md#posix-platform-hooks",
            MUST,
            "timeout is the number of seconds before aborting the hook; a hook exceeding it fails (and create MUST error).",
            |c| {
                let mut b = c.bundle()?;
                let (chk, _log) = hook_setup(c, &mut b)?;
                b.config["hooks"]["createRuntime"] =
                    json!([{"path": chk, "args": ["checker", "sleep:20"], "timeout": 1}]);
                b.args(&["exit:0"]);
                let id = c.id();
                let t0 = std::time::Instant::now();
                let o = c.create(&b, &id)?;
                let took = t0.elapsed().as_secs();
                errors(&o, "create whose createRuntime hook outlives its timeout")?;
                ensure(
                    took < 10,
                    format!(
                        "the hook was not aborted after its 1 s timeout (create took {took} s)"
                    ),
                )
            }
        ),
        t!(
            "hooks.order-within-array",
            "config.md#posix-platform-hooks",
            MUST,
            "Hooks of one type MUST be executed in the order they are listed.",
            |c| {
                let mut b = c.bundle()?;
                let (chk, log) = hook_setup(c, &mut b)?;
                b.config["hooks"]["createRuntime"] = json!([
                    hook(&chk, "h1", &log, 0),
                    hook(&chk, "h2", &log, 0),
                    hook(&chk, "h3", &log, 0)
                ]);
                b.args(&["exit:0"]);
                c.run(&b)?;
                eq(
                    "createRuntime order",
                    hook_names(&log),
                    vec!["h1".to_string(), "h2".into(), "h3".into()],
                )
            }
        ),
        // ---- command-line interface
        t!(
            "cli.unknown-command-errors",
            "cli#global-usage",
            MUST,
            "If the runtime is invoked with an unrecognized command, it MUST exit with a nonzero exit code.",
            |c| errors(&c.rt(&["oct-not-a-command"]), "an unrecognized command")
        ),
        t!(
            "cli.pid-file",
            "cli#create",
            MUST,
            "--pid-file <PATH>: the runtime MUST write the container PID to this path.",
            |c| {
                let b = sleeper(c)?;
                b.write()?;
                let id = c.id();
                let pf = c.dir.join("pidfile");
                let o = c.create_nowrite(&b, &id, &["--pid-file", pf.to_str().unwrap_or("")])?;
                ensure(o.ok(), format!("create: {}", o.brief()))?;
                let got = fs::read_to_string(&pf)
                    .map_err(|e| Verdict::Fail(format!("pid file not written: {e}")))?;
                eq(
                    "pid file",
                    got.trim().parse::<i64>().ok(),
                    Some(c.pid(&id)? as i64),
                )
            }
        ),
        t!(
            "cli.stdio-passthrough",
            "cli#create",
            MUST,
            "If process.terminal is not true, the runtime MUST pass its stdin, stdout and stderr through to the container process.",
            |c| {
                let mut b = c.bundle()?;
                b.args(&["readstdin", "stderr:to-stderr-oct"]);
                b.write()?;
                let id = c.id();
                fs::write(b.dir.join("stdin"), "from-stdin-oct")
                    .map_err(|e| Verdict::Fail(e.to_string()))?;
                let mut cmd = std::process::Command::new(&c.env.rt);
                cmd.arg("--root")
                    .arg(&c.env.root)
                    .args(["create", "--bundle", b.path(), &id]);
                cmd.stdin(
                    fs::File::open(b.dir.join("stdin"))
                        .map_err(|e| Verdict::Fail(e.to_string()))?,
                );
                cmd.stdout(
                    fs::File::create(b.dir.join("stdout"))
                        .map_err(|e| Verdict::Fail(e.to_string()))?,
                );
                cmd.stderr(
                    fs::File::create(b.dir.join("stderr"))
                        .map_err(|e| Verdict::Fail(e.to_string()))?,
                );
                let st = cmd.status().map_err(|e| Verdict::Fail(e.to_string()))?;
                ensure(st.success(), format!("create failed: {}", b.stderr()))?;
                ensure(c.start(&id).ok(), "start failed")?;
                c.wait_status(&id, "stopped", 10)?;
                ensure(
                    b.stdout().contains("stdin=from-stdin-oct"),
                    format!(
                        "stdin/stdout not passed through: {}",
                        trunc(&b.stdout(), 200)
                    ),
                )?;
                ensure(
                    b.stderr().contains("to-stderr-oct"),
                    format!("stderr not passed through: {}", trunc(&b.stderr(), 200)),
                )
            }
        ),
        t!(
            "cli.listen-fds",
            "cli#create",
            MUST,
            "LISTEN_FDS=N: the runtime MUST pass file descriptors 3..3+N-1 to the container process.",
            |c| {
                let mut b = c.bundle()?;
                b.args(&["fds", "readlink:/proc/self/fd/3"]);
                b.write()?;
                let id = c.id();
                let script = format!(
                    "exec 3<{dir}/config.json; LISTEN_PID=$$ LISTEN_FDS=1 exec {rt} --root {root} create --bundle {dir} {id} >{dir}/stdout 2>{dir}/stderr </dev/null",
                    dir = b.path(),
                    rt = c.env.rt.display(),
                    root = c.env.root.display()
                );
                let st = std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg(&script)
                    .status()
                    .map_err(|e| Verdict::Fail(e.to_string()))?;
                ensure(st.success(), format!("create failed: {}", b.stderr()))?;
                ensure(c.start(&id).ok(), "start failed")?;
                c.wait_status(&id, "stopped", 10)?;
                let out = b.stdout();
                ensure(
                    out.contains("config.json"),
                    format!("fd 3 was not passed to the container: {}", trunc(&out, 300)),
                )
            }
        ),
        t!(
            "cli.console-socket",
            "cli#console-socket",
            MUST,
            "--console-socket: the runtime MUST pass the pseudoterminal master through the socket (SCM_RIGHTS); the process gets the terminal as stdio.",
            |c| crate::t_config::console_test(c, false)
        ),
        t!(
            "cli.console-socket-json-request",
            "cli#console-socket",
            MUST,
            "The normal data of all messages MUST be UTF-8 JSON; a terminal request MUST contain type=terminal and container=<ID>.",
            |c| crate::t_config::console_test(c, true)
        ),
        t!(
            "cli.kill-default-term",
            "cli#kill",
            MUST,
            "kill: the signal defaults to TERM; the runtime MUST support TERM and KILL with POSIX semantics.",
            |c| {
                let mut b = c.bundle()?;
                b.args(&["trapterm"]);
                let id = c.id();
                c.must_create(&b, &id)?;
                ensure(c.start(&id).ok(), "start failed")?;
                for _ in 0..200 {
                    if b.stdout().contains("ready=1") {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let o = c.rt(&["kill", &id]);
                ensure(o.ok(), format!("kill without a signal: {}", o.brief()))?;
                c.wait_status(&id, "stopped", 10)?;
                ensure(
                    b.stdout().contains("signal=15"),
                    "the default signal was not TERM",
                )
            }
        ),
        t!(
            "cli.state-stdout-json",
            "cli#state",
            MUST,
            "state: the runtime MUST print the state JSON to its stdout, exit code zero on success.",
            |c| {
                let (_b, id) = created(c)?;
                let o = c.rt(&["state", &id]);
                ensure(o.ok(), format!("state: {}", o.brief()))?;
                let v: Value = serde_json::from_str(&o.stdout)
                    .map_err(|e| Verdict::Fail(format!("stdout is not JSON: {e}")))?;
                eq("id", v["id"].as_str(), Some(id.as_str()))
            }
        ),
        t!(
            "cli.utf8-state",
            "cli#character-encodings",
            SHOULD,
            "Runtimes SHOULD write state in UTF-8 (annotations with non-ASCII text survive).",
            |c| {
                let mut b = sleeper(c)?;
                b.config["annotations"] = json!({"k": "gr\u{fc}\u{df}e \u{1F600}"});
                let id = c.id();
                c.must_create(&b, &id)?;
                let s = c.state(&id)?;
                eq(
                    "annotation",
                    s["annotations"]["k"].as_str(),
                    Some("gr\u{fc}\u{df}e \u{1F600}"),
                )
            }
        ),
    ]
}
