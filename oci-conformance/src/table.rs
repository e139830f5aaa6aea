//! The test table: one `Test` per normative requirement. Most tests are data: a probe (run
//! the checker in a bundle adjusted by a setup function, compare what it reports) or a
//! refusal (the runtime MUST generate an error for this config). The rest are functions.

use crate::bundle::Bundle;
use crate::harness::{Ctx, R, Verdict, ensure, fail, must_fail};

pub const MUST: &str = "MUST";
pub const SHOULD: &str = "SHOULD";

/// Where a test is meaningful.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Any host: runs in the host lane only.
    Any,
    /// Depends on the cgroup version: runs in the host lane and in the VM lane (pure v2).
    Cgroup,
    /// Needs a pure cgroup v2 host: skipped on the host, runs in the VM lane.
    V2,
}

/// What the checker must have reported for one key.
#[derive(Clone, Copy)]
pub enum Want {
    Eq(&'static str),
    Prefix(&'static str),
    Has(&'static str),
    /// Any failure (`err:ERRNO`) or an empty value: the path could not be used.
    Denied,
}

impl Want {
    /// Compare a reported value; `{dev}` in the wanted text stands for `dev`.
    pub fn check(&self, key: &str, got: &str, dev: &str) -> R {
        let w = |v: &str| v.replace("{dev}", dev);
        let (ok, shown) = match self {
            Want::Eq(v) => (got == w(v), format!("{:?}", w(v))),
            Want::Prefix(v) => (
                got.starts_with(&w(v)),
                format!("a value starting with {:?}", w(v)),
            ),
            Want::Has(v) => (
                got.contains(&w(v)),
                format!("a value containing {:?}", w(v)),
            ),
            Want::Denied => (
                got.is_empty() || got.starts_with("err:"),
                "an error or nothing".into(),
            ),
        };
        ensure(ok, format!("{key}: got {got:?}, want {shown}"))
    }
}

/// What a cgroup resource setting must produce on one cgroup version.
pub enum CgExpect {
    /// Files of the container's cgroup: (v1 controller, alternatives); the first
    /// alternative file this host has is read and compared.
    Files(&'static [(&'static str, &'static [(&'static str, Want)])]),
    /// This version has no equivalent: "If the conversion is not possible the runtime MUST
    /// generate an error" (config-linux.md#unified).
    Refused,
    Skip(&'static str),
}

pub enum Kind {
    Custom(fn(&mut Ctx) -> R),
    /// linux.resources (built for the host's block device `{dev}`), checked per version.
    Resources {
        res: fn(&str) -> serde_json::Value,
        v1: CgExpect,
        v2: CgExpect,
    },
    Probe {
        ops: &'static [&'static str],
        setup: fn(&mut Bundle),
        want: &'static [(&'static str, Want)],
    },
    /// The runtime MUST generate an error: at `create`, or (`by_start`, for `process`
    /// properties that "MAY be applied" by create) at the latest at `start`.
    Refuse {
        setup: fn(&mut Bundle),
        by_start: bool,
    },
}

pub struct Test {
    pub id: &'static str,
    /// spec file and section anchor, e.g. `runtime.md#create`
    pub section: &'static str,
    pub level: &'static str,
    /// the sentence of the spec this test checks (quoted or closely paraphrased)
    pub req: &'static str,
    pub kind: Kind,
    pub lane: Lane,
}

pub fn t(
    id: &'static str,
    section: &'static str,
    level: &'static str,
    req: &'static str,
    f: fn(&mut Ctx) -> R,
) -> Test {
    Test {
        id,
        section,
        level,
        req,
        kind: Kind::Custom(f),
        lane: Lane::Any,
    }
}

pub fn probe(
    id: &'static str,
    section: &'static str,
    level: &'static str,
    req: &'static str,
    ops: &'static [&'static str],
    setup: fn(&mut Bundle),
    want: &'static [(&'static str, Want)],
) -> Test {
    Test {
        kind: Kind::Probe { ops, setup, want },
        ..t(id, section, level, req, |_| Ok(()))
    }
}

pub fn refuse(
    id: &'static str,
    section: &'static str,
    level: &'static str,
    req: &'static str,
    setup: fn(&mut Bundle),
) -> Test {
    Test {
        kind: Kind::Refuse {
            setup,
            by_start: false,
        },
        ..t(id, section, level, req, |_| Ok(()))
    }
}

/// A linux.resources test (runs in both lanes).
pub fn resources(
    id: &'static str,
    section: &'static str,
    level: &'static str,
    req: &'static str,
    res: fn(&str) -> serde_json::Value,
    v1: CgExpect,
    v2: CgExpect,
) -> Test {
    Test {
        kind: Kind::Resources { res, v1, v2 },
        lane: Lane::Cgroup,
        ..t(id, section, level, req, |_| Ok(()))
    }
}

/// No-op setup for probes that use the default config.
pub fn default(_: &mut Bundle) {}

impl Test {
    pub fn cgroup(mut self) -> Test {
        self.lane = Lane::Cgroup;
        self
    }
    pub fn v2(mut self) -> Test {
        self.lane = Lane::V2;
        self
    }
    /// For a refusal: an error from `start` satisfies it too.
    pub fn by_start(mut self) -> Test {
        if let Kind::Refuse { by_start, .. } = &mut self.kind {
            *by_start = true;
        }
        self
    }

    pub fn run(&self, c: &mut Ctx) -> R {
        match &self.kind {
            Kind::Custom(f) => f(c),
            Kind::Probe { ops, setup, want } => {
                let kv = c.run_ops(ops, setup)?;
                for (key, w) in *want {
                    w.check(key, kv.get(key)?, "")?;
                }
                Ok(())
            }
            Kind::Resources { res, v1, v2 } => {
                crate::t_cgroups::apply(c, *res, if c.env.cgroup2 { v2 } else { v1 })
            }
            Kind::Refuse { setup, by_start } => refused(c, *setup, *by_start),
        }
    }
}

fn refused(c: &mut Ctx, setup: fn(&mut Bundle), by_start: bool) -> R {
    let mut b = c.bundle()?;
    let shared = c.share(&mut b);
    let ran = format!("{shared}/user-program-ran");
    b.args(&[&format!("append:{ran}:ran"), "exit:0"]);
    setup(&mut b);
    let id = c.id();
    let o = c.create(&b, &id)?;
    if !o.ok() {
        // "generating an error MUST leave the state of the environment as if the operation
        // were never attempted": no container may be left behind.
        return must_fail(
            &c.rt(&["state", &id]),
            "state of the container whose create failed (it was left behind)",
        );
    }
    if !by_start {
        return fail("create accepted the configuration but MUST generate an error");
    }
    let s = c.start(&id);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let user_ran = std::fs::metadata(&ran).is_ok();
    if s.ok() {
        return fail(format!(
            "neither create nor start generated an error{}",
            if user_ran {
                " (the user program ran)"
            } else {
                ""
            }
        ));
    }
    ensure(
        !user_ran,
        "start reported an error, but the user program ran",
    )
}

/// Map a failure's message (e.g. to name the namespace or hook it concerns).
pub fn context<T>(r: Result<T, Verdict>, what: &str) -> Result<T, Verdict> {
    r.map_err(|e| match e {
        Verdict::Fail(m) => Verdict::Fail(format!("{what}: {m}")),
        v => v,
    })
}
