//! Hooks: config.md#posix-platform-hooks (namespaces, paths, stdin state, order, timeout)
//! and the lifecycle steps of runtime.md that run them (3-9, 13) and say what a failing
//! hook does.

use crate::bundle::{Bundle, trunc};
use crate::harness::{Ctx, R, Verdict, ensure, eq, fail, host_ns, io, must_fail};
use crate::table::{MUST, Test, t};
use serde_json::{Value, json};
use std::fs;
use std::time::Duration;

pub const ALL: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// A hook entry running the checker copy at `path`, logging `name` to `log`, exiting `code`.
pub fn hook(path: &str, name: &str, log: &str, code: i32) -> Value {
    json!({"path": path, "args": ["checker", format!("hook:{name}:{log}:{code}")]})
}

/// A shared directory (same path on the host and in the container) with a checker copy
/// usable as a hook path in both namespaces, and the log file hooks append to.
pub struct Hooks {
    pub chk: String,
    pub log: String,
}

impl Hooks {
    pub fn new(c: &Ctx, b: &mut Bundle) -> Result<Hooks, Verdict> {
        let shared = c.share(b);
        let chk = format!("{shared}/checker");
        io(fs::copy(&c.env.checker, &chk), "copy the checker")?;
        Ok(Hooks {
            chk,
            log: format!("{shared}/hooks.log"),
        })
    }
    /// Configure one hook of each given type (named after the type), exiting 0.
    pub fn set(&self, b: &mut Bundle, types: &[&str]) {
        for h in types {
            b.set(
                &format!("hooks.{h}"),
                json!([hook(&self.chk, h, &self.log, 0)]),
            );
        }
    }
    fn lines(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|s| s.to_string())
            .collect()
    }
    pub fn names(&self) -> Vec<String> {
        self.lines()
            .iter()
            .map(|l| l.split('\t').next().unwrap_or("").to_string())
            .collect()
    }
    pub fn line(&self, name: &str) -> Result<String, Verdict> {
        match self
            .lines()
            .into_iter()
            .find(|l| l.starts_with(&format!("{name}\t")))
        {
            Some(l) => Ok(l),
            None => fail(format!("{name} hook never ran; log: {:?}", self.names())),
        }
    }
    /// The state JSON the hook read on its stdin.
    pub fn state(&self, name: &str) -> Result<Value, Verdict> {
        let line = self.line(name)?;
        let s = line
            .split('\t')
            .find_map(|f| f.strip_prefix("state="))
            .unwrap_or("");
        serde_json::from_str(&s.replace("\\n", "\n")).map_err(|e| {
            Verdict::Fail(format!(
                "{name} hook stdin is not state JSON ({e}): {}",
                trunc(s, 200)
            ))
        })
    }
    /// The mount namespace the hook ran in.
    pub fn mntns(&self, name: &str) -> Result<String, Verdict> {
        let line = self.line(name)?;
        Ok(line
            .split('\t')
            .find_map(|f| f.strip_prefix("mnt="))
            .unwrap_or("")
            .to_string())
    }
}

/// Lifecycle steps 3-9: a failing hook of type `which` MUST make the runtime generate an
/// error, stop the container and continue at step 12 (destroy), then 13 (poststop hooks).
fn failing(c: &mut Ctx, which: &str) -> R {
    let mut b = c.bundle()?;
    let h = Hooks::new(c, &mut b)?;
    b.set(
        &format!("hooks.{which}"),
        json!([hook(&h.chk, which, &h.log, 1)]),
    );
    h.set(&mut b, &["poststop"]);
    let marker = format!("{}/main-ran", c.dir.join("shared").display());
    b.args(&[&format!("append:{marker}:main"), "sleep:30"]);
    let id = c.id();
    let created = c.create(&b, &id)?.ok();
    let failed = !created || !c.start(&id).ok();
    ensure(
        failed,
        format!("a failing {which} hook produced no error from create or start"),
    )?;
    std::thread::sleep(Duration::from_millis(200));
    if let Ok(st) = c.state(&id) {
        let s = st["status"].as_str().unwrap_or("");
        ensure(
            s == "stopped",
            format!("after the failing {which} hook the container is {s:?}; it MUST be stopped"),
        )?;
    }
    if which != "poststart" {
        ensure(
            fs::metadata(&marker).is_err(),
            format!("the user program ran although {which} failed"),
        )?;
    }
    ensure(
        h.names().iter().any(|n| n == "poststop"),
        format!(
            "the lifecycle did not continue at steps 12-13 after the failing {which} hook: poststop never ran (log {:?})",
            h.names()
        ),
    )
}

/// What `with_hooks` ran: the hooks' log, the container's pid, id and bundle path.
struct Ran {
    h: Hooks,
    pid: i32,
    id: String,
    bundle: String,
}

/// Run `types` hooks around a sleeping container (deleted at the end if poststop is among them).
fn with_hooks(c: &mut Ctx, types: &[&str]) -> Result<Ran, Verdict> {
    let mut b = c.bundle_ops(&["sleep:30"])?;
    let h = Hooks::new(c, &mut b)?;
    h.set(&mut b, types);
    let id = c.id();
    c.must_create(&b, &id)?;
    c.must_start(&id)?;
    let pid = c.pid(&id)?;
    if types.contains(&"poststop") {
        ensure(c.kill(&id, "KILL").ok(), "kill failed")?;
        c.wait_status(&id, "stopped", 10)?;
        ensure(c.delete(&id).ok(), "delete failed")?;
    }
    Ok(Ran {
        h,
        pid,
        id,
        bundle: b.path().to_string(),
    })
}

pub fn tests() -> Vec<Test> {
    vec![
        t(
            "hooks.order",
            "runtime.md#lifecycle",
            MUST,
            "Lifecycle steps 3-13: prestart, createRuntime, createContainer during create; startContainer before the user program; poststart after it, before start returns; poststop after delete destroyed the container.",
            |c| {
                let mut b = c.bundle()?;
                let h = Hooks::new(c, &mut b)?;
                h.set(&mut b, &ALL);
                b.args(&[&format!("append:{}:main", h.log), "sleep:30"]);
                let id = c.id();
                c.must_create(&b, &id)?;
                eq(
                    "hooks run by create",
                    h.names(),
                    vec![
                        "prestart".to_string(),
                        "createRuntime".into(),
                        "createContainer".into(),
                    ],
                )?;
                c.must_start(&id)?;
                let after = h.names();
                ensure(
                    after.len() >= 5 && after[3] == "startContainer",
                    format!(
                        "startContainer must run after create's hooks and before the program: {after:?}"
                    ),
                )?;
                ensure(
                    after.iter().any(|n| n == "poststart"),
                    format!("poststart had not run when start returned: {after:?}"),
                )?;
                ensure(
                    !after.iter().any(|n| n == "poststop"),
                    "poststop ran during start",
                )?;
                ensure(c.kill(&id, "KILL").ok(), "kill failed")?;
                c.wait_status(&id, "stopped", 10)?;
                ensure(
                    !h.names().iter().any(|n| n == "poststop"),
                    "poststop ran before delete",
                )?;
                ensure(c.delete(&id).ok(), "delete failed")?;
                ensure(
                    h.names().last().map(|s| s.as_str()) == Some("poststop"),
                    format!("poststop did not run at delete: {:?}", h.names()),
                )
            },
        ),
        t(
            "hooks.state-on-stdin",
            "config.md#posix-platform-hooks",
            MUST,
            "The state of the container MUST be passed to hooks over stdin (id, bundle, and for hooks in the runtime namespace the pid as seen by the runtime).",
            |c| {
                let r = with_hooks(c, &["createRuntime", "poststart"])?;
                for name in ["createRuntime", "poststart"] {
                    let s = r.h.state(name)?;
                    eq(
                        &format!("{name} state id"),
                        s["id"].as_str(),
                        Some(r.id.as_str()),
                    )?;
                    eq(
                        &format!("{name} state bundle"),
                        s["bundle"].as_str(),
                        Some(r.bundle.as_str()),
                    )?;
                    eq(
                        &format!("{name} state pid"),
                        s["pid"].as_i64(),
                        Some(r.pid as i64),
                    )?;
                }
                Ok(())
            },
        ),
        t(
            "hooks.state-pid-container-namespace",
            "runtime.md#state",
            MUST,
            "pid: \"For hooks executed in the container namespace, it is the pid as seen by the container\" (createContainer and startContainer see the container process as pid 1 of its new pid namespace).",
            |c| {
                let r = with_hooks(c, &["createContainer", "startContainer"])?;
                for name in ["createContainer", "startContainer"] {
                    eq(
                        &format!("{name} state pid"),
                        r.h.state(name)?["pid"].as_i64(),
                        Some(1),
                    )?;
                }
                Ok(())
            },
        ),
        t(
            "hooks.runtime-namespace",
            "config.md#posix-platform-hooks",
            MUST,
            "The prestart, createRuntime, poststart and poststop hooks MUST be executed in the runtime namespace.",
            |c| {
                let r = with_hooks(c, &["prestart", "createRuntime", "poststart", "poststop"])?;
                let mine = host_ns("mnt");
                for name in ["prestart", "createRuntime", "poststart", "poststop"] {
                    eq(
                        &format!("{name} mount namespace"),
                        r.h.mntns(name)?,
                        mine.clone(),
                    )?;
                }
                Ok(())
            },
        ),
        t(
            "hooks.container-namespace",
            "config.md#posix-platform-hooks",
            MUST,
            "The createContainer and startContainer hooks MUST be executed in the container namespace.",
            |c| {
                let r = with_hooks(c, &["createContainer", "startContainer"])?;
                let theirs = fs::read_link(format!("/proc/{}/ns/mnt", r.pid))
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                for name in ["createContainer", "startContainer"] {
                    eq(
                        &format!("{name} mount namespace"),
                        r.h.mntns(name)?,
                        theirs.clone(),
                    )?;
                }
                Ok(())
            },
        ),
        t(
            "hooks.start-container-path-in-container",
            "config.md#posix-platform-hooks",
            MUST,
            "startContainer: the value of path MUST resolve in the container namespace (a path that exists only in the container's rootfs).",
            |c| {
                let mut b = c.bundle_ops(&["exit:0"])?;
                let h = Hooks::new(c, &mut b)?;
                b.set(
                    "hooks.startContainer",
                    json!([hook("/checker", "startContainer", &h.log, 0)]),
                );
                c.run(&b)?;
                h.line("startContainer").map(|_| ())
            },
        ),
        t(
            "hooks.create-container-path-in-runtime",
            "config.md#posix-platform-hooks",
            MUST,
            "createContainer: the value of path MUST resolve in the runtime namespace (a path that exists only on the host), though the hook runs in the container namespace.",
            |c| {
                let mut b = c.bundle_ops(&["exit:0"])?;
                let h = Hooks::new(c, &mut b)?;
                let host_only = c.dir.join("host-only-checker");
                io(fs::copy(&c.env.checker, &host_only), "copy the checker")?;
                let p = host_only.display().to_string();
                b.set(
                    "hooks.createContainer",
                    json!([hook(&p, "createContainer", &h.log, 0)]),
                );
                c.run(&b)?;
                h.line("createContainer").map(|_| ())
            },
        ),
        t(
            "hooks.args-env",
            "config.md#posix-platform-hooks",
            MUST,
            "Hook args have the same semantics as execv's argv; env has the same semantics as environ.",
            |c| {
                let mut b = c.bundle_ops(&["exit:0"])?;
                let h = Hooks::new(c, &mut b)?;
                let mut e = hook(&h.chk, "createRuntime", &h.log, 0);
                e["args"] = json!(["argv0-name", format!("hook:createRuntime:{}:0", h.log)]);
                e["env"] = json!(["OCT_HOOK=yes", "PATH=/bin"]);
                b.set("hooks.createRuntime", json!([e]));
                c.run(&b)?;
                let l = h.line("createRuntime")?;
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
            },
        ),
        t(
            "hooks.prestart-fails",
            "runtime.md#lifecycle",
            MUST,
            "Step 3: if any prestart hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12.",
            |c| failing(c, "prestart"),
        ),
        t(
            "hooks.create-runtime-fails",
            "runtime.md#lifecycle",
            MUST,
            "Step 4: if any createRuntime hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12.",
            |c| failing(c, "createRuntime"),
        ),
        t(
            "hooks.create-container-fails",
            "runtime.md#lifecycle",
            MUST,
            "Step 5: if any createContainer hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12.",
            |c| failing(c, "createContainer"),
        ),
        t(
            "hooks.start-container-fails",
            "runtime.md#lifecycle",
            MUST,
            "Step 7: if any startContainer hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12.",
            |c| failing(c, "startContainer"),
        ),
        t(
            "hooks.poststart-fails",
            "runtime.md#lifecycle",
            MUST,
            "Step 9: if any poststart hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12.",
            |c| failing(c, "poststart"),
        ),
        t(
            "hooks.poststop-fails-continues",
            "runtime.md#lifecycle",
            MUST,
            "Step 13: if any poststop hook fails, the runtime MUST log a warning, but the remaining hooks and lifecycle continue as if the hook had succeeded.",
            |c| {
                let mut b = c.bundle_ops(&["exit:0"])?;
                let h = Hooks::new(c, &mut b)?;
                b.set(
                    "hooks.poststop",
                    json!([
                        hook(&h.chk, "poststop1", &h.log, 1),
                        hook(&h.chk, "poststop2", &h.log, 0)
                    ]),
                );
                let id = c.id();
                c.must_create(&b, &id)?;
                c.must_start(&id)?;
                c.wait_status(&id, "stopped", 10)?;
                let o = c.delete(&id);
                ensure(
                    o.ok(),
                    format!(
                        "delete failed because a poststop hook failed: {}",
                        o.brief()
                    ),
                )?;
                must_fail(&c.rt(&["state", &id]), "state after delete")?;
                eq(
                    "poststop hooks run",
                    h.names(),
                    vec!["poststop1".to_string(), "poststop2".into()],
                )
            },
        ),
        t(
            "hooks.timeout",
            "config.md#posix-platform-hooks",
            MUST,
            "timeout is the number of seconds before aborting the hook; a hook exceeding it has failed, so create MUST generate an error (step 4).",
            |c| {
                let mut b = c.bundle_ops(&["exit:0"])?;
                let h = Hooks::new(c, &mut b)?;
                b.set(
                    "hooks.createRuntime",
                    json!([{"path": h.chk, "args": ["checker", "sleep:20"], "timeout": 1}]),
                );
                let id = c.id();
                let t0 = std::time::Instant::now();
                let o = c.create(&b, &id)?;
                let took = t0.elapsed().as_secs();
                must_fail(&o, "create whose createRuntime hook outlives its timeout")?;
                ensure(
                    took < 10,
                    format!(
                        "the hook was not aborted after its 1 s timeout (create took {took} s)"
                    ),
                )
            },
        ),
        t(
            "hooks.order-within-array",
            "config.md#posix-platform-hooks",
            MUST,
            "Hooks MUST be called in the listed order.",
            |c| {
                let mut b = c.bundle_ops(&["exit:0"])?;
                let h = Hooks::new(c, &mut b)?;
                b.set(
                    "hooks.createRuntime",
                    json!([
                        hook(&h.chk, "h1", &h.log, 0),
                        hook(&h.chk, "h2", &h.log, 0),
                        hook(&h.chk, "h3", &h.log, 0)
                    ]),
                );
                c.run(&b)?;
                eq(
                    "createRuntime order",
                    h.names(),
                    vec!["h1".to_string(), "h2".into(), "h3".into()],
                )
            },
        ),
    ]
}
