//! config-linux.md#control-groups: cgroupsPath and every resource, checked from the host
//! in the container's cgroup after `create` (lifecycle step 2: resources MUST be created
//! before the user program runs). Works on cgroup v1 and on a pure v2 host (VM lane).

use crate::harness::{Ctx, R, Verdict, ensure, eq, skip};
use crate::{MUST, Test};
use serde_json::{Value, json};
use std::fs;

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
    (v2 $id:expr, $sec:expr, $lvl:expr, $req:expr, $f:expr) => {
        Test {
            id: $id,
            section: $sec,
            level: $lvl,
            req: $req,
            run: $f,
            v2: true,
        }
    };
}

/// (controller, v1 file, v1 value, v2 file, v2 value); an empty file skips that version.
type Check = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

fn resources(c: &mut Ctx, res: Value, checks: &[Check]) -> R {
    let mut b = c.bundle()?;
    b.args(&["sleep:30"]);
    let path = format!("/oci-conformance/{}", c.id());
    b.config["linux"]["cgroupsPath"] = json!(path);
    for (k, v) in res.as_object().into_iter().flatten() {
        b.config["linux"]["resources"][k] = v.clone();
    }
    // A setting this host cannot apply (no such hierarchy or file): create MUST fail
    // ("If the runtime cannot apply a property ... it MUST generate an error").
    let missing = checks.iter().find(|(ctl, f1, _, f2, _)| {
        if c.env.cgroup2 {
            !f2.is_empty()
                && fs::metadata(format!("/sys/fs/cgroup/{f2}")).is_err()
                && !f2.starts_with("memory.")
                && !f2.starts_with("cpu")
        } else {
            !f1.is_empty() && fs::metadata(format!("/sys/fs/cgroup/{ctl}")).is_err()
        }
    });
    if let Some((ctl, f1, ..)) = missing {
        let what = format!("{ctl}/{f1}");
        let (failed, _) = c.create_fails(&b)?;
        c.cleanup_cgroup("", &path);
        return ensure(
            failed,
            format!(
                "this host has no {what}, so the setting cannot be applied, yet create succeeded"
            ),
        );
    }
    let id = c.id();
    // v1 root cgroups carry every file but pids.max; a file absent there cannot be set.
    let unsupported = !c.env.cgroup2
        && checks.iter().any(|(ctl, f1, ..)| {
            !f1.is_empty()
                && *f1 != "pids.max"
                && fs::metadata(format!("/sys/fs/cgroup/{ctl}/{f1}")).is_err()
        });
    let r = (|| {
        let o = c.create(&b, &id)?;
        if !o.ok() && unsupported {
            return Ok(()); // the required error for a setting this host cannot apply
        }
        ensure(o.ok(), format!("create failed: {}", o.brief()))?;
        let pid = c.pid(&id)?;
        let mut n = 0;
        for (ctl, f1, w1, f2, w2) in checks {
            let (f, w) = if c.env.cgroup2 { (f2, w2) } else { (f1, w1) };
            if f.is_empty() {
                continue;
            }
            if !c.env.cgroup2 && fs::metadata(format!("/sys/fs/cgroup/{ctl}")).is_err() {
                return skip(format!(
                    "the {ctl} v1 controller is not mounted on this host"
                ));
            }
            let p = c.cgroup_file(pid, ctl, f)?;
            if fs::metadata(&p).is_err() {
                return crate::harness::fail(format!(
                    "create succeeded although {} does not exist on this host, so the setting cannot have been applied",
                    p.display()
                ));
            }
            n += 1;
            eq(
                &p.display().to_string(),
                c.cgroup_read(pid, ctl, f)?.as_str(),
                *w,
            )?;
        }
        if n == 0 {
            return skip(if c.env.cgroup2 {
                "v1-only setting"
            } else {
                "v2-only setting (run it in the VM lane)"
            });
        }
        Ok(())
    })();
    c.cleanup_cgroup(&id, &path);
    r
}

impl Ctx<'_> {
    /// Delete the container now and remove the cgroup parent we asked for, if left.
    pub fn cleanup_cgroup(&mut self, id: &str, path: &str) {
        let _ = self.rt(&["kill", id, "KILL"]);
        let _ = self.rt(&["delete", "--force", id]);
        let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let base = e.path();
                let _ = fs::remove_dir(format!("{}{path}", base.display()));
                let _ = fs::remove_dir(format!("{}{parent}", base.display()));
            }
        }
    }
}

pub fn tests() -> Vec<Test> {
    vec![
        t!(
            "cgroups.path",
            "config-linux.md#cgroups-path",
            MUST,
            "cgroupsPath: if specified, the runtime MUST consistently attach to the same place in the cgroups hierarchy given the same value (absolute: relative to the cgroups mount point).",
            |c| {
                let mut b = c.bundle()?;
                b.args(&["sleep:30"]);
                let path = format!("/oci-conformance/{}", c.id());
                b.config["linux"]["cgroupsPath"] = json!(path);
                let id = c.id();
                let r = (|| {
                    c.must_create(&b, &id)?;
                    let pid = c.pid(&id)?;
                    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup"))
                        .map_err(|e| Verdict::Fail(e.to_string()))?;
                    let key = if c.env.cgroup2 {
                        "0::".to_string()
                    } else {
                        ":memory:".to_string()
                    };
                    let line = cg.lines().find(|l| l.contains(&key)).unwrap_or("");
                    ensure(
                        line.ends_with(&path),
                        format!("container cgroup {line:?}, want path {path}"),
                    )
                })();
                c.cleanup_cgroup(&id, &path);
                r
            }
        ),
        t!(
            "cgroups.memory-limit",
            "config-linux.md#memory",
            MUST,
            "memory.limit: sets limit of memory usage in bytes; the runtime MUST apply it (step 2).",
            |c| resources(
                c,
                json!({"memory": {"limit": 67108864}}),
                &[(
                    "memory",
                    "memory.limit_in_bytes",
                    "67108864",
                    "memory.max",
                    "67108864"
                )]
            )
        ),
        t!(
            "cgroups.memory-reservation",
            "config-linux.md#memory",
            MUST,
            "memory.reservation: sets soft limit of memory usage in bytes.",
            |c| resources(
                c,
                json!({"memory": {"limit": 67108864, "reservation": 33554432}}),
                &[(
                    "memory",
                    "memory.soft_limit_in_bytes",
                    "33554432",
                    "memory.low",
                    "33554432"
                )]
            )
        ),
        t!(
            "cgroups.memory-swap",
            "config-linux.md#memory",
            MUST,
            "memory.swap: sets limit of memory+Swap usage.",
            |c| resources(
                c,
                json!({"memory": {"limit": 67108864, "swap": 134217728}}),
                &[(
                    "memory",
                    "memory.memsw.limit_in_bytes",
                    "134217728",
                    "memory.swap.max",
                    "67108864"
                )]
            )
        ),
        t!(
            "cgroups.memory-swappiness",
            "config-linux.md#memory",
            MUST,
            "memory.swappiness: sets the swappiness parameter of vmscan.",
            |c| resources(
                c,
                json!({"memory": {"swappiness": 33}}),
                &[("memory", "memory.swappiness", "33", "", "")]
            )
        ),
        t!(
            "cgroups.memory-disable-oom-killer",
            "config-linux.md#memory",
            MUST,
            "memory.disableOOMKiller: disables the OOM killer for out of memory conditions.",
            |c| resources(
                c,
                json!({"memory": {"limit": 67108864, "disableOOMKiller": true}}),
                &[(
                    "memory",
                    "memory.oom_control",
                    "oom_kill_disable 1\nunder_oom 0\noom_kill 0",
                    "",
                    ""
                )]
            )
        ),
        t!(
            "cgroups.cpu-shares",
            "config-linux.md#cpu",
            MUST,
            "cpu.shares: specifies a relative share of CPU time available to the tasks in a cgroup (v2: converted to cpu.weight).",
            |c| resources(
                c,
                json!({"cpu": {"shares": 512}}),
                &[("cpu", "cpu.shares", "512", "cpu.weight", "20")]
            )
        ),
        t!(
            "cgroups.cpu-quota-period",
            "config-linux.md#cpu",
            MUST,
            "cpu.quota and cpu.period: the total CPU time in a period the cgroup may run.",
            |c| resources(
                c,
                json!({"cpu": {"quota": 50000, "period": 100000}}),
                &[
                    (
                        "cpu",
                        "cpu.cfs_quota_us",
                        "50000",
                        "cpu.max",
                        "50000 100000"
                    ),
                    ("cpu", "cpu.cfs_period_us", "100000", "", "")
                ]
            )
        ),
        t!(
            "cgroups.cpu-burst",
            "config-linux.md#cpu",
            MUST,
            "cpu.burst: the maximum accumulated time the cgroup can run beyond its quota.",
            |c| resources(
                c,
                json!({"cpu": {"quota": 50000, "period": 100000, "burst": 20000}}),
                &[("cpu", "cpu.cfs_burst_us", "20000", "cpu.max.burst", "20000")]
            )
        ),
        t!(
            "cgroups.cpu-idle",
            "config-linux.md#cpu",
            MUST,
            "cpu.idle: the cgroup is given the SCHED_IDLE policy (cpu.idle = 1).",
            |c| resources(
                c,
                json!({"cpu": {"idle": 1}}),
                &[("cpu", "cpu.idle", "1", "cpu.idle", "1")]
            )
        ),
        t!(
            "cgroups.cpuset",
            "config-linux.md#cpu",
            MUST,
            "cpu.cpus and cpu.mems: list of CPUs and memory nodes the container will run in.",
            |c| resources(
                c,
                json!({"cpu": {"cpus": "0", "mems": "0"}}),
                &[
                    ("cpuset", "cpuset.cpus", "0", "cpuset.cpus", "0"),
                    ("cpuset", "cpuset.mems", "0", "cpuset.mems", "0")
                ]
            )
        ),
        t!(
            "cgroups.pids-limit",
            "config-linux.md#pids",
            MUST,
            "pids.limit: specifies the maximum number of tasks in the cgroup.",
            |c| resources(
                c,
                json!({"pids": {"limit": 77}}),
                &[("pids", "pids.max", "77", "pids.max", "77")]
            )
        ),
        t!(
            "cgroups.blkio-weight",
            "config-linux.md#block-io",
            MUST,
            "blockIO.weight: specifies per-cgroup weight.",
            |c| resources(
                c,
                json!({"blockIO": {"weight": 300}}),
                &[(
                    "blkio",
                    "blkio.weight",
                    "300",
                    "io.bfq.weight",
                    "default 300"
                )]
            )
        ),
        t!(
            "cgroups.hugepage-limits",
            "config-linux.md#huge-page-limits",
            MUST,
            "hugepageLimits: the runtime MUST set the hugetlb limit for each page size.",
            |c| resources(
                c,
                json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
                &[(
                    "hugetlb",
                    "hugetlb.2MB.limit_in_bytes",
                    "4194304",
                    "hugetlb.2MB.max",
                    "4194304"
                )]
            )
        ),
        t!(
            "cgroups.network-classid",
            "config-linux.md#network",
            MUST,
            "network.classID: the network class identifier the cgroup's network packets will be tagged with.",
            |c| resources(
                c,
                json!({"network": {"classID": 1048577}}),
                &[("net_cls", "net_cls.classid", "1048577", "", "")]
            )
        ),
        t!(v2 "cgroups.unified", "config-linux.md#unified", MUST,
           "unified: the runtime MUST write each key to the file of that name in the container's cgroup v2 directory.",
           |c| resources(c, json!({"unified": {"memory.high": "50331648", "pids.max": "55"}}), &[("", "", "", "memory.high", "50331648"), ("", "", "", "pids.max", "55")])),
        t!(v2 "cgroups.unified-invalid-errors", "config-linux.md#unified", MUST,
        "unified: if a key is not a file of an enabled controller, the runtime MUST generate an error.",
        |c| {
            let mut b = c.bundle()?;
            b.args(&["exit:0"]);
            let path = format!("/oci-conformance/{}", c.id());
            b.config["linux"]["cgroupsPath"] = json!(path);
            b.config["linux"]["resources"]["unified"] = json!({"oct.not-a-file": "1"});
            let (failed, _) = c.create_fails(&b)?;
            let id = path.rsplit('/').next().unwrap_or("").to_string();
            c.cleanup_cgroup(&id, &path);
            ensure(failed, "an unknown unified key was accepted")
        }),
    ]
}
