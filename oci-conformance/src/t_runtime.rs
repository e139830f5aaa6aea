//! runtime.md: scope, state, lifecycle, errors and the operations (state, create, start,
//! kill, delete). Quotes are from runtime-spec v1.3.0.

use crate::bundle::trunc;
use crate::harness::{Ctx, R, ensure, eq, fail, io, must_fail};
use crate::table::{MUST, Test, refuse, t};
use serde_json::{Value, json};
use std::fs;
use std::time::Duration;

/// The REQUIRED state properties and their types (state-schema.json), in any status.
fn state_shape(s: &Value, id: &str, bundle: &str, status: &str) -> R {
    ensure(
        s["ociVersion"].is_string(),
        format!("ociVersion missing or not a string: {s}"),
    )?;
    eq("id", s["id"].as_str(), Some(id))?;
    eq("status", s["status"].as_str(), Some(status))?;
    eq("bundle", s["bundle"].as_str(), Some(bundle))?;
    ensure(
        s.get("annotations").is_none_or(|a| {
            a.is_null()
                || a.as_object()
                    .is_some_and(|m| m.values().all(|v| v.is_string()))
        }),
        format!("annotations is not a map of strings: {s}"),
    )?;
    if status != "stopped" {
        ensure(
            s["pid"].as_i64().unwrap_or(0) > 0,
            format!("pid missing or not positive while {status}: {s}"),
        )?;
    }
    Ok(())
}

/// An operation on a container in `state`, which MUST fail and leave it as it was.
fn no_effect(c: &mut Ctx, op: &str, state: &str) -> R {
    let (_b, id) = match state {
        "created" => c.created()?,
        "running" => c.running()?,
        _ => c.stopped()?,
    };
    let before = c.state(&id)?;
    let o = match op {
        "kill" => c.kill(&id, "KILL"),
        _ => c.rt(&[op, &id]),
    };
    must_fail(&o, &format!("{op} of a {state} container"))?;
    std::thread::sleep(Duration::from_millis(100));
    let after = c.state(&id)?;
    eq(
        "status afterwards",
        after["status"].as_str(),
        before["status"].as_str(),
    )?;
    eq(
        "pid afterwards",
        after["pid"].as_i64(),
        before["pid"].as_i64(),
    )
}

pub fn tests() -> Vec<Test> {
    vec![
        // ---- Scope, State
        t(
            "scope.operations",
            "runtime.md#scope-of-a-container",
            MUST,
            "The entity using a runtime to create a container MUST be able to use the operations defined in this specification against that same container (state, start, kill, delete).",
            |c| {
                let (_b, id) = c.created()?;
                c.state(&id)?;
                c.must_start(&id)?;
                c.state(&id)?;
                let k = c.kill(&id, "KILL");
                ensure(k.ok(), format!("kill: {}", k.brief()))?;
                c.wait_status(&id, "stopped", 10)?;
                let d = c.delete(&id);
                ensure(d.ok(), format!("delete: {}", d.brief()))
            },
        ),
        t(
            "state.fields-created",
            "runtime.md#state",
            MUST,
            "State: ociVersion, id, status (REQUIRED), pid (REQUIRED when status is created or running on Linux), bundle (REQUIRED, absolute path); \"When serialized in JSON, the format MUST adhere to the JSON Schema schema/state-schema.json\" (created container).",
            |c| {
                let (b, id) = c.created()?;
                state_shape(&c.state(&id)?, &id, b.path(), "created")
            },
        ),
        t(
            "state.fields-running",
            "runtime.md#state",
            MUST,
            "The same REQUIRED state properties for a running container; its pid is still the container process.",
            |c| {
                let (b, id) = c.created()?;
                let pid = c.pid(&id)?;
                c.must_start(&id)?;
                let s = c.state(&id)?;
                state_shape(&s, &id, b.path(), "running")?;
                eq("pid after start", s["pid"].as_i64(), Some(pid as i64))
            },
        ),
        t(
            "state.fields-stopped",
            "runtime.md#state",
            MUST,
            "The REQUIRED state properties for a stopped container (pid is then optional).",
            |c| {
                let (b, id) = c.stopped()?;
                state_shape(&c.state(&id)?, &id, b.path(), "stopped")
            },
        ),
        t(
            "state.pid-is-container-process",
            "runtime.md#state",
            MUST,
            "pid is the ID of the container process, as seen by the runtime (its pid namespace): /proc/PID on the host is the container's process.",
            |c| {
                let (_b, id) = c.running()?;
                let pid = c.pid(&id)?;
                let ns = io(
                    fs::read_link(format!("/proc/{pid}/ns/pid")),
                    &format!("/proc/{pid} on the host"),
                )?;
                let mine = fs::read_link("/proc/self/ns/pid").unwrap_or_default();
                ensure(
                    ns != mine,
                    "state pid is a process in the runtime's pid namespace, not the container process",
                )?;
                let cmd = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                ensure(
                    cmd.starts_with("/checker"),
                    format!(
                        "host pid {pid} runs {:?}, not the container process",
                        cmd.replace('\0', " ")
                    ),
                )
            },
        ),
        t(
            "state.annotations",
            "runtime.md#state",
            MUST,
            "annotations (map, OPTIONAL) contains the list of annotations associated with the container (those of config.json).",
            |c| {
                let mut b = c.bundle_ops(&["sleep:30"])?;
                let want = json!({"org.example.key": "value-1", "com.example.two": "2"});
                b.set("annotations", want.clone());
                let id = c.id();
                c.must_create(&b, &id)?;
                eq("annotations", &c.state(&id)?["annotations"], &want)
            },
        ),
        t(
            "state.status-running",
            "runtime.md#state",
            MUST,
            "status running: the container process has executed the user-specified program but has not exited (after step 8 in the lifecycle).",
            |c| {
                let (_b, id) = c.running()?;
                eq("status", c.status(&id)?.as_str(), "running")
            },
        ),
        t(
            "state.status-stopped-on-exit",
            "runtime.md#state",
            MUST,
            "status stopped: the container process has exited (step 10 in the lifecycle), whatever the reason.",
            |c| {
                let (_b, id) = c.stopped()?;
                eq("status", c.status(&id)?.as_str(), "stopped")
            },
        ),
        t(
            "state.unknown-id-errors",
            "runtime.md#query-state",
            MUST,
            "Attempting to query a container that does not exist MUST generate an error.",
            |c| must_fail(&c.rt(&["state", "oct-no-such-container"]), "state of a nonexistent container"),
        ),
        t(
            "state.no-id-errors",
            "runtime.md#query-state",
            MUST,
            "This operation MUST generate an error if it is not provided the ID of a container.",
            |c| must_fail(&c.rt(&["state"]), "state without an id"),
        ),
        // ---- Create
        t(
            "create.status-created",
            "runtime.md#state",
            MUST,
            "status created: the runtime has finished the create operation (after step 2), and the container process has neither exited nor executed the user-specified program.",
            |c| {
                let (_b, id) = c.created()?;
                eq("status", c.status(&id)?.as_str(), "created")
            },
        ),
        t(
            "create.user-code-not-run",
            "runtime.md#create",
            MUST,
            "process.args MUST NOT be applied until triggered by the start operation (lifecycle step 2: the user-specified program MUST NOT be run at this time).",
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
                c.must_start(&id)?;
                for _ in 0..200 {
                    if fs::metadata(&m).is_ok() {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                fail("the user-specified program never ran after start")
            },
        ),
        t(
            "create.resources-exist-after-create",
            "runtime.md#create",
            MUST,
            "All of the properties configured in config.json except for process MUST be applied (by create): the configured namespaces exist before start.",
            |c| {
                let (_b, id) = c.created()?;
                let pid = c.pid(&id)?;
                for ns in ["net", "uts", "ipc", "mnt", "pid"] {
                    let theirs = io(
                        fs::read_link(format!("/proc/{pid}/ns/{ns}")),
                        &format!("/proc/{pid}/ns/{ns}"),
                    )?;
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
                            format!("after create the container process is still in the runtime's {ns} namespace"),
                        )?;
                    }
                }
                Ok(())
            },
        ),
        t(
            "create.duplicate-id-errors",
            "runtime.md#create",
            MUST,
            "If the ID provided is not unique across all containers within the scope of the runtime, the implementation MUST generate an error and a new container MUST NOT be created.",
            |c| {
                let (_b, id) = c.created()?;
                let pid = c.pid(&id)?;
                let b2 = c.bundle_ops(&["sleep:30"])?;
                must_fail(&c.create(&b2, &id)?, "create with an id already in use")?;
                let s = c.state(&id)?;
                eq("status of the first container", s["status"].as_str(), Some("created"))?;
                eq("pid of the first container", s["pid"].as_i64(), Some(pid as i64))
            },
        ),
        t(
            "create.invalid-id-errors",
            "runtime.md#create",
            MUST,
            "If the ID provided ... is not valid in any other way, the implementation MUST generate an error (an id with a path separator).",
            |c| {
                let b = c.bundle_ops(&["sleep:30"])?;
                c.track("../oct-escape");
                must_fail(&c.create(&b, "../oct-escape")?, "create with id ../oct-escape")
            },
        ),
        t(
            "create.no-id-errors",
            "runtime.md#create",
            MUST,
            "This operation MUST generate an error if it is not provided a path to the bundle and the container ID to associate with the container (no ID).",
            |c| {
                let b = c.bundle_ops(&["exit:0"])?;
                b.write()?;
                must_fail(&c.rt(&["create", "--bundle", b.path()]), "create without an id")
            },
        ),
        t(
            "create.missing-bundle-errors",
            "runtime.md#create",
            MUST,
            "This operation MUST generate an error if it is not provided a path to the bundle (a bundle path that does not exist); no container is left.",
            |c| {
                let id = c.id();
                must_fail(
                    &c.rt(&["create", "--bundle", "/nonexistent/oct-bundle", &id]),
                    "create with a missing bundle",
                )?;
                must_fail(&c.rt(&["state", &id]), "state of the container whose create failed")
            },
        ),
        refuse(
            "create.unappliable-property-errors",
            "runtime.md#create",
            MUST,
            "If the runtime cannot apply a property as specified in the configuration, it MUST generate an error and a new container MUST NOT be created (a mount of a filesystem type this kernel does not have).",
            |b| b.add_mount(json!({"destination": "/mnt/x", "type": "octfs-none", "source": "none"})),
        ),
        t(
            "create.failure-leaves-nothing",
            "runtime.md#errors",
            MUST,
            "Unless otherwise stated, generating an error MUST leave the state of the environment as if the operation were never attempted (no container, the id reusable).",
            |c| {
                let mut b = c.bundle_ops(&["sleep:30"])?;
                b.add_mount(json!({"destination": "/mnt/x", "type": "bind", "source": "/nonexistent/oct-src", "options": ["bind"]}));
                let id = c.id();
                must_fail(&c.create(&b, &id)?, "create with a bind mount of a missing source")?;
                must_fail(
                    &c.rt(&["state", &id]),
                    "state after a failed create (a container was left behind)",
                )?;
                let b2 = c.bundle_ops(&["sleep:30"])?;
                let o2 = c.create(&b2, &id)?;
                ensure(
                    o2.ok(),
                    format!("the id of a failed create cannot be reused: {}", o2.brief()),
                )
            },
        ),
        t(
            "create.config-changes-ignored",
            "runtime.md#lifecycle",
            MUST,
            "Any updates to config.json after this step (2, create) MUST NOT affect the container.",
            |c| {
                let mut b = c.bundle_ops(&["args"])?;
                let id = c.id();
                c.must_create(&b, &id)?;
                b.args(&["exit:7", "changed"]);
                b.set("hostname", json!("changed"));
                b.write()?;
                c.must_start(&id)?;
                c.wait_status(&id, "stopped", 10)?;
                let out = b.stdout();
                ensure(
                    out.contains("args=/checker args"),
                    format!("the process run is not the one from create time: {}", trunc(&out, 200)),
                )
            },
        ),
        // ---- Start
        t(
            "start.no-id-errors",
            "runtime.md#start",
            MUST,
            "This operation MUST generate an error if it is not provided the container ID.",
            |c| must_fail(&c.rt(&["start"]), "start without an id"),
        ),
        t(
            "start.unknown-id-errors",
            "runtime.md#start",
            MUST,
            "Attempting to start a container that is not created MUST ... generate an error (a container that does not exist).",
            |c| must_fail(&c.start("oct-no-such-container"), "start of a nonexistent container"),
        ),
        t(
            "start.twice-errors",
            "runtime.md#start",
            MUST,
            "Attempting to start a container that is not created MUST have no effect on the container and MUST generate an error (running).",
            |c| no_effect(c, "start", "running"),
        ),
        t(
            "start.stopped-errors",
            "runtime.md#start",
            MUST,
            "Attempting to start a container that is not created MUST have no effect on the container and MUST generate an error (stopped).",
            |c| no_effect(c, "start", "stopped"),
        ),
        t(
            "start.runs-process",
            "runtime.md#start",
            MUST,
            "This operation MUST run the user-specified program as specified by process.",
            |c| {
                let kv = c.run_ops(&["args", "pid"], |_| {})?;
                eq("args", kv.get("args")?, "/checker args pid")?;
                eq("pid in the new pid namespace", kv.get("pid")?, "1")
            },
        ),
        refuse(
            "start.no-process-errors",
            "runtime.md#start",
            MUST,
            "This operation MUST generate an error if process was not set (config.json without process: create may succeed, start MUST fail).",
            |b| b.unset("process"),
        )
        .by_start(),
        // ---- Kill
        t(
            "kill.no-id-errors",
            "runtime.md#kill",
            MUST,
            "This operation MUST generate an error if it is not provided the container ID.",
            |c| must_fail(&c.rt(&["kill"]), "kill without an id"),
        ),
        t(
            "kill.unknown-id-errors",
            "runtime.md#kill",
            MUST,
            "Attempting to send a signal to a container that is neither created nor running MUST ... generate an error (a container that does not exist).",
            |c| must_fail(&c.kill("oct-no-such-container", "KILL"), "kill of a nonexistent container"),
        ),
        t(
            "kill.stopped-errors",
            "runtime.md#kill",
            MUST,
            "Attempting to send a signal to a container that is neither created nor running MUST have no effect on the container and MUST generate an error.",
            |c| no_effect(c, "kill", "stopped"),
        ),
        t(
            "kill.sends-signal",
            "runtime.md#kill",
            MUST,
            "This operation MUST send the specified signal to the container process.",
            |c| {
                let b = c.bundle_ops(&["trapterm"])?;
                let id = c.id();
                c.must_create(&b, &id)?;
                c.must_start(&id)?;
                c.wait_output(&b, "ready=1")?;
                let o = c.kill(&id, "TERM");
                ensure(o.ok(), format!("kill TERM: {}", o.brief()))?;
                c.wait_status(&id, "stopped", 10)?;
                ensure(
                    b.stdout().contains("signal=15"),
                    format!("the process did not receive SIGTERM: {}", trunc(&b.stdout(), 200)),
                )
            },
        ),
        t(
            "kill.running-to-stopped",
            "runtime.md#state",
            MUST,
            "After kill ends the container process, status MUST be stopped (stopped: the container process has exited).",
            |c| {
                let (_b, id) = c.running()?;
                let o = c.kill(&id, "KILL");
                ensure(o.ok(), format!("kill KILL: {}", o.brief()))?;
                c.wait_status(&id, "stopped", 10)
            },
        ),
        t(
            "kill.created-container",
            "runtime.md#kill",
            MUST,
            "kill applies to a container that is created or running: this operation MUST send the specified signal to the container process (created).",
            |c| {
                let (_b, id) = c.created()?;
                let o = c.kill(&id, "KILL");
                ensure(o.ok(), format!("kill of a created container: {}", o.brief()))?;
                c.wait_status(&id, "stopped", 10)
            },
        ),
        // ---- Delete
        t(
            "delete.no-id-errors",
            "runtime.md#delete",
            MUST,
            "This operation MUST generate an error if it is not provided the container ID.",
            |c| must_fail(&c.rt(&["delete"]), "delete without an id"),
        ),
        t(
            "delete.unknown-id-errors",
            "runtime.md#delete",
            MUST,
            "Attempting to delete a container that is not stopped MUST ... generate an error (a container that does not exist).",
            |c| must_fail(&c.delete("oct-no-such-container"), "delete of a nonexistent container"),
        ),
        t(
            "delete.running-errors",
            "runtime.md#delete",
            MUST,
            "Attempting to delete a container that is not stopped MUST have no effect on the container and MUST generate an error (running).",
            |c| no_effect(c, "delete", "running"),
        ),
        t(
            "delete.created-errors",
            "runtime.md#delete",
            MUST,
            "Attempting to delete a container that is not stopped MUST have no effect on the container and MUST generate an error (created).",
            |c| no_effect(c, "delete", "created"),
        ),
        t(
            "delete.removes-container",
            "runtime.md#delete",
            MUST,
            "Deleting a container MUST delete the resources that were created during the create step; once deleted its ID MAY be used by a subsequent container.",
            |c| {
                let (_b, id) = c.stopped()?;
                let o = c.delete(&id);
                ensure(o.ok(), format!("delete: {}", o.brief()))?;
                must_fail(&c.rt(&["state", &id]), "state after delete")?;
                let b2 = c.bundle_ops(&["sleep:30"])?;
                let o2 = c.create(&b2, &id)?;
                ensure(
                    o2.ok(),
                    format!("create with the id of a deleted container: {}", o2.brief()),
                )
            },
        ),
        t(
            "delete.removes-cgroup",
            "runtime.md#delete",
            MUST,
            "Deleting a container MUST delete the resources that were created during the create step (its cgroup).",
            |c| {
                let mut b = c.bundle_ops(&["exit:0"])?;
                let path = c.cgroup_path();
                b.set("linux.cgroupsPath", json!(path));
                let id = c.id();
                c.must_create(&b, &id)?;
                let pid = c.pid(&id)?;
                let f = c.cgroup_file(pid, "pids", "cgroup.procs")?;
                let dir = f.parent().map(|p| p.to_path_buf()).unwrap_or_default();
                c.must_start(&id)?;
                c.wait_status(&id, "stopped", 10)?;
                ensure(c.delete(&id).ok(), "delete failed")?;
                ensure(
                    fs::metadata(&dir).is_err(),
                    format!("cgroup {} still exists after delete", dir.display()),
                )
            },
        )
        .cgroup(),
        t(
            "delete.keeps-foreign-resources",
            "runtime.md#delete",
            MUST,
            "Note that resources associated with the container, but not created by this container, MUST NOT be deleted (a bind-mounted host directory).",
            |c| {
                let mut b = c.bundle_ops(&["exit:0"])?;
                let shared = c.share(&mut b);
                io(fs::write(format!("{shared}/keep"), "k"), "write the host file")?;
                c.run(&b)?;
                ensure(
                    fs::read_to_string(format!("{shared}/keep")).is_ok(),
                    "a host file bind-mounted into the container was deleted",
                )
            },
        ),
    ]
}
