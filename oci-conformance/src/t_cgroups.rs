//! config-linux.md#control-groups: cgroupsPath, every resource, unified, cgroup ownership.
//! Values are read from the host in the container's cgroup after `create` (create MUST
//! apply every property but process). Each test runs on this host and in the VM lane (pure
//! cgroup v2); a setting this host has no file for is skipped with the reason, and
//! `cgroups.unappliable-errors` checks that such a setting is refused.

use crate::harness::{Ctx, R, Verdict, ensure, eq, fail, host_has, io, skip};
use crate::table::{CgExpect, CgExpect::*, MUST, SHOULD, Test, Want::*, refuse, resources, t};
use serde_json::{Value, json};
use std::fs;
use std::os::unix::fs::MetadataExt;

/// The first real block device of this host (not loop, ram, zram, dm, md, sr, nbd): its
/// name in /sys/block and "MAJ:MIN".
fn block_dev() -> Option<(String, String)> {
    let mut names: Vec<String> = fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !["loop", "ram", "zram", "dm-", "md", "sr", "nbd"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect();
    names.sort();
    names.into_iter().find_map(|n| {
        let d = fs::read_to_string(format!("/sys/block/{n}/dev")).ok()?;
        Some((n, d.trim().to_string()))
    })
}

/// Whether the block device uses the BFQ I/O scheduler (per-device BFQ weights need it).
fn uses_bfq(name: &str) -> bool {
    fs::read_to_string(format!("/sys/block/{name}/queue/scheduler"))
        .is_ok_and(|s| s.contains("[bfq]"))
}

/// In the VM lane (a throw-away guest): put its scratch disk under BFQ, so that the
/// per-device weight tests have something to apply to. Never done on a real host.
pub fn prepare_vm_lane() {
    if let Some((name, _)) = block_dev() {
        let _ = fs::write(format!("/sys/block/{name}/queue/scheduler"), "bfq");
    }
}

/// Run one linux.resources test: `res` (for the block device) checked as `exp` says.
pub fn apply(c: &mut Ctx, res: fn(&str) -> Value, exp: &CgExpect) -> R {
    let uses_dev = res("").to_string().contains("\"major\"");
    let (disk, dev) = match (uses_dev, block_dev()) {
        (true, None) => return skip("no block device on this host to configure"),
        (_, d) => d.unwrap_or_default(),
    };
    let res = res(&dev);
    let mut b = c.bundle_ops(&["sleep:30"])?;
    let path = c.cgroup_path();
    b.set("linux.cgroupsPath", json!(path));
    for (k, v) in res.as_object().into_iter().flatten() {
        b.config["linux"]["resources"][k] = v.clone();
    }
    let files = match exp {
        Skip(why) => return skip(*why),
        Refused => {
            return ensure(
                c.create_fails(&b)?,
                "this cgroup version has no equivalent of the setting, so the conversion is not possible, yet create succeeded",
            );
        }
        Files(f) => f,
    };
    // The file each check reads: the first alternative this host has.
    let mut picked = Vec::new();
    for (ctl, alts) in *files {
        match alts.iter().find(|(f, _)| host_has(c.env, ctl, f)) {
            Some((f, w)) => picked.push((*ctl, *f, *w)),
            None => {
                let names: Vec<&str> = alts.iter().map(|(f, _)| *f).collect();
                return skip(format!(
                    "this host's cgroups have no {} (controller {} not mounted or feature absent); the refusal is checked by cgroups.unappliable-errors",
                    names.join(" or "),
                    if c.env.cgroup2 { "v2" } else { ctl }
                ));
            }
        }
    }
    if uses_dev && picked.iter().any(|(_, f, _)| f.contains("bfq")) && !uses_bfq(&disk) {
        return skip(format!(
            "the block device {disk} ({dev}) does not use the BFQ scheduler, so per-device BFQ weights cannot be applied to it"
        ));
    }
    let id = c.id();
    c.must_create(&b, &id)?;
    let pid = c.pid(&id)?;
    for (ctl, f, w) in picked {
        let p = c.cgroup_file(pid, ctl, f)?;
        let got = io(fs::read_to_string(&p), &format!("read {}", p.display()))?;
        w.check(&p.display().to_string(), got.trim(), &dev)?;
    }
    Ok(())
}

fn mem(m: Value) -> Value {
    json!({"memory": m})
}

/// A userns + cgroupns container; with `rw_mount`, cgroup2 is mounted read-write at
/// /sys/fs/cgroup. Returns the host path of its cgroup directory while it is created.
fn owned_cgroup(c: &mut Ctx, rw_mount: bool) -> Result<std::path::PathBuf, Verdict> {
    let mut b = c.bundle_ops(&["sleep:30"])?;
    b.userns();
    b.add_ns("cgroup", None);
    let path = c.cgroup_path();
    b.set("linux.cgroupsPath", json!(path));
    if rw_mount {
        io(
            fs::create_dir_all(b.rootfs().join("sys/fs/cgroup")),
            "mkdir sys/fs/cgroup",
        )?;
        b.add_mount(
            json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "rw"]}),
        );
    }
    let id = c.id();
    c.must_create(&b, &id)?;
    let pid = c.pid(&id)?;
    let f = c.cgroup_file(pid, "memory", "cgroup.procs")?;
    Ok(f.parent().map(|p| p.to_path_buf()).unwrap_or_default())
}

pub fn tests() -> Vec<Test> {
    vec![
        t(
            "cgroups.path",
            "config-linux.md#cgroups-path",
            MUST,
            "cgroupsPath: \"In the case of an absolute path (starting with /), the runtime MUST take the path to be relative to the cgroups mount point\"; it MUST consistently attach to that place.",
            |c| {
                let mut b = c.bundle_ops(&["sleep:30"])?;
                let path = c.cgroup_path();
                b.set("linux.cgroupsPath", json!(path));
                let id = c.id();
                c.must_create(&b, &id)?;
                let pid = c.pid(&id)?;
                let cg = io(fs::read_to_string(format!("/proc/{pid}/cgroup")), "read /proc/PID/cgroup")?;
                let key = if c.env.cgroup2 { "0::" } else { ":memory:" };
                let line = cg.lines().find(|l| l.contains(key)).unwrap_or("");
                let want = c.cgroup_of(&path);
                ensure(line.ends_with(&want), format!("container cgroup {line:?}, want path {want} (cgroupsPath {path})"))
            },
        )
        .cgroup(),
        resources("cgroups.memory-limit", "config-linux.md#memory", MUST,
            "memory.limit: sets limit of memory usage (v1 memory.limit_in_bytes, v2 memory.max).",
            |_| mem(json!({"limit": 67108864})),
            Files(&[("memory", &[("memory.limit_in_bytes", Eq("67108864"))])]),
            Files(&[("", &[("memory.max", Eq("67108864"))])])),
        resources("cgroups.memory-reservation", "config-linux.md#memory", MUST,
            "memory.reservation: sets soft limit of memory usage (v1 memory.soft_limit_in_bytes, v2 memory.low).",
            |_| mem(json!({"limit": 67108864, "reservation": 33554432})),
            Files(&[("memory", &[("memory.soft_limit_in_bytes", Eq("33554432"))])]),
            Files(&[("", &[("memory.low", Eq("33554432"))])])),
        resources("cgroups.memory-swap", "config-linux.md#memory", MUST,
            "memory.swap: sets limit of memory+Swap usage (v1 memory.memsw.limit_in_bytes; v2 memory.swap.max holds swap alone: swap - limit).",
            |_| mem(json!({"limit": 67108864, "swap": 134217728})),
            Files(&[("memory", &[("memory.memsw.limit_in_bytes", Eq("134217728"))])]),
            Files(&[("", &[("memory.swap.max", Eq("67108864"))])])),
        resources("cgroups.memory-swappiness", "config-linux.md#memory", MUST,
            "memory.swappiness: sets swappiness parameter of vmscan (v1 memory.swappiness); cgroup v2 has none, and \"If the conversion is not possible the runtime MUST generate an error\".",
            |_| mem(json!({"swappiness": 33})),
            Files(&[("memory", &[("memory.swappiness", Eq("33"))])]),
            Refused),
        resources("cgroups.memory-disable-oom-killer", "config-linux.md#memory", MUST,
            "memory.disableOOMKiller true disables the OOM killer (v1 memory.oom_control); cgroup v2 cannot, and \"If the conversion is not possible the runtime MUST generate an error\".",
            |_| mem(json!({"limit": 67108864, "disableOOMKiller": true})),
            Files(&[("memory", &[("memory.oom_control", Has("oom_kill_disable 1"))])]),
            Refused),
        resources("cgroups.cpu-shares", "config-linux.md#cpu", MUST,
            "cpu.shares: a relative share of CPU time (v1 cpu.shares; v2 converted to cpu.weight, 512 -> 20).",
            |_| json!({"cpu": {"shares": 512}}),
            Files(&[("cpu", &[("cpu.shares", Eq("512"))])]),
            Files(&[("", &[("cpu.weight", Eq("20"))])])),
        resources("cgroups.cpu-quota-period", "config-linux.md#cpu", MUST,
            "cpu.quota and cpu.period: the total time a cgroup can run during one period (v1 cpu.cfs_quota_us/cfs_period_us, v2 cpu.max).",
            |_| json!({"cpu": {"quota": 50000, "period": 100000}}),
            Files(&[("cpu", &[("cpu.cfs_quota_us", Eq("50000"))]), ("cpu", &[("cpu.cfs_period_us", Eq("100000"))])]),
            Files(&[("", &[("cpu.max", Eq("50000 100000"))])])),
        resources("cgroups.cpu-burst", "config-linux.md#cpu", MUST,
            "cpu.burst: the maximum accumulated time a cgroup can run beyond its quota (v1 cpu.cfs_burst_us, v2 cpu.max.burst).",
            |_| json!({"cpu": {"quota": 50000, "period": 100000, "burst": 20000}}),
            Files(&[("cpu", &[("cpu.cfs_burst_us", Eq("20000"))])]),
            Files(&[("", &[("cpu.max.burst", Eq("20000"))])])),
        resources("cgroups.cpu-idle", "config-linux.md#cpu", MUST,
            "cpu.idle: cgroups are configured with minimum weight, 1: SCHED_IDLE (cpu.idle).",
            |_| json!({"cpu": {"idle": 1}}),
            Files(&[("cpu", &[("cpu.idle", Eq("1"))])]),
            Files(&[("", &[("cpu.idle", Eq("1"))])])),
        resources("cgroups.cpu-realtime", "config-linux.md#cpu", MUST,
            "cpu.realtimePeriod: the period for the realtime scheduler (v1 cpu.rt_period_us); cgroup v2 has no realtime group scheduling, so the conversion is not possible and MUST generate an error.",
            |_| json!({"cpu": {"realtimePeriod": 500000}}),
            Files(&[("cpu", &[("cpu.rt_period_us", Eq("500000"))])]),
            Refused),
        resources("cgroups.cpuset", "config-linux.md#cpu", MUST,
            "cpu.cpus and cpu.mems: list of CPUs and memory nodes the container will run on (cpuset.cpus, cpuset.mems).",
            |_| json!({"cpu": {"cpus": "0", "mems": "0"}}),
            Files(&[("cpuset", &[("cpuset.cpus", Eq("0"))]), ("cpuset", &[("cpuset.mems", Eq("0"))])]),
            Files(&[("", &[("cpuset.cpus", Eq("0"))]), ("", &[("cpuset.mems", Eq("0"))])])),
        resources("cgroups.pids-limit", "config-linux.md#pids", MUST,
            "pids.limit: the maximum number of tasks in the cgroup (pids.max).",
            |_| json!({"pids": {"limit": 77}}),
            Files(&[("pids", &[("pids.max", Eq("77"))])]),
            Files(&[("", &[("pids.max", Eq("77"))])])),
        resources("cgroups.pids-limit-unlimited", "config-linux.md#pids", MUST,
            "pids.limit: \"-1 indicating no limit (max)\".",
            |_| json!({"pids": {"limit": -1}}),
            Files(&[("pids", &[("pids.max", Eq("max"))])]),
            Files(&[("", &[("pids.max", Eq("max"))])])),
        resources("cgroups.pids-limit-zero", "config-linux.md#pids", SHOULD,
            "pids.limit 0: \"0 is a valid limit value for the pids cgroup controller from the kernel's perspective and SHOULD be treated as such by runtimes\".",
            |_| json!({"pids": {"limit": 0}}),
            Files(&[("pids", &[("pids.max", Eq("0"))])]),
            Files(&[("", &[("pids.max", Eq("0"))])])),
        resources("cgroups.blkio-weight", "config-linux.md#block-io", MUST,
            "blockIO.weight: per-cgroup weight (v1 blkio.weight or blkio.bfq.weight; v2 io.bfq.weight, or io.weight converted 300 -> 2930).",
            |_| json!({"blockIO": {"weight": 300}}),
            Files(&[("blkio", &[("blkio.weight", Eq("300")), ("blkio.bfq.weight", Has("300"))])]),
            Files(&[("", &[("io.bfq.weight", Has("300")), ("io.weight", Has("2930"))])])),
        resources("cgroups.blkio-leaf-weight", "config-linux.md#block-io", MUST,
            "blockIO.leafWeight: the weight of the cgroup's own tasks against its children (v1 CFQ blkio.leaf_weight); cgroup v2 has none, so it MUST generate an error.",
            |_| json!({"blockIO": {"leafWeight": 300}}),
            Files(&[("blkio", &[("blkio.leaf_weight", Eq("300"))])]),
            Refused),
        resources("cgroups.blkio-weight-device", "config-linux.md#block-io", MUST,
            "blockIO.weightDevice: per-device bandwidth weights (v1 blkio.weight_device or blkio.bfq.weight_device, v2 io.bfq.weight or io.weight).",
            |dev| {
                let (ma, mi) = dev.split_once(':').unwrap_or(("0", "0"));
                json!({"blockIO": {"weightDevice": [{"major": ma.parse::<i64>().unwrap_or(0), "minor": mi.parse::<i64>().unwrap_or(0), "weight": 400}]}})
            },
            Files(&[("blkio", &[("blkio.weight_device", Has("{dev} 400")), ("blkio.bfq.weight_device", Has("{dev} 400"))])]),
            Files(&[("", &[("io.bfq.weight", Has("{dev} 400"))])])),
        resources("cgroups.blkio-throttle", "config-linux.md#block-io", MUST,
            "blockIO.throttleReadBpsDevice, throttleWriteBpsDevice, throttleReadIOPSDevice, throttleWriteIOPSDevice: per-device rate limits (v1 blkio.throttle.*, v2 io.max).",
            |dev| {
                let (ma, mi) = dev.split_once(':').unwrap_or(("0", "0"));
                let d = |rate: u64| json!([{"major": ma.parse::<i64>().unwrap_or(0), "minor": mi.parse::<i64>().unwrap_or(0), "rate": rate}]);
                json!({"blockIO": {"throttleReadBpsDevice": d(1048576), "throttleWriteBpsDevice": d(2097152),
                                   "throttleReadIOPSDevice": d(100), "throttleWriteIOPSDevice": d(200)}})
            },
            Files(&[
                ("blkio", &[("blkio.throttle.read_bps_device", Eq("{dev} 1048576"))]),
                ("blkio", &[("blkio.throttle.write_bps_device", Eq("{dev} 2097152"))]),
                ("blkio", &[("blkio.throttle.read_iops_device", Eq("{dev} 100"))]),
                ("blkio", &[("blkio.throttle.write_iops_device", Eq("{dev} 200"))]),
            ]),
            Files(&[("", &[("io.max", Has("{dev} rbps=1048576 wbps=2097152 riops=100 wiops=200"))])])),
        resources("cgroups.hugepage-limits", "config-linux.md#huge-page-limits", MUST,
            "hugepageLimits: \"By default if supported by the kernel, hugepageLimits defines the hugepage sizes and limits for HugeTLB controller reservation accounting\" (hugetlb.2MB.rsvd.*), else the page-fault limit.",
            |_| json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
            Files(&[("hugetlb", &[("hugetlb.2MB.rsvd.limit_in_bytes", Eq("4194304")), ("hugetlb.2MB.limit_in_bytes", Eq("4194304"))])]),
            Files(&[("", &[("hugetlb.2MB.rsvd.max", Eq("4194304")), ("hugetlb.2MB.max", Eq("4194304"))])])),
        resources("cgroups.network-classid", "config-linux.md#network", MUST,
            "network.classID: the network class identifier the cgroup's packets will be tagged with (v1 net_cls.classid); net_cls has no v2 equivalent: \"If the conversion is not possible the runtime MUST generate an error\".",
            |_| json!({"network": {"classID": 1048577}}),
            Files(&[("net_cls", &[("net_cls.classid", Eq("1048577"))])]),
            Refused),
        resources("cgroups.network-priorities", "config-linux.md#network", MUST,
            "network.priorities: priority per interface of the runtime network namespace (v1 net_prio.ifpriomap); no v2 equivalent, so it MUST generate an error there.",
            |_| json!({"network": {"priorities": [{"name": "lo", "priority": 5}]}}),
            Files(&[("net_prio", &[("net_prio.ifpriomap", Has("lo 5"))])]),
            Refused),
        t(
            "cgroups.rdma",
            "config-linux.md#rdma",
            MUST,
            "rdma: hcaHandles/hcaObjects limits per RDMA device (rdma.max).",
            |_| {
                let devs = fs::read_dir("/sys/class/infiniband").map(|d| d.count()).unwrap_or(0);
                if devs == 0 {
                    return skip("no RDMA device on this host");
                }
                fail("RDMA host: test not written (no such host to write it against)")
            },
        )
        .cgroup(),
        resources("cgroups.unified", "config-linux.md#unified", MUST,
            "unified: each key refers to a file in the cgroup unified hierarchy; the runtime MUST ensure the needed controllers are enabled and write the value.",
            |_| json!({"unified": {"memory.high": "50331648", "pids.max": "55"}}),
            Skip("cgroup v2 only (this host's v1 case is cgroups.unified-invalid-errors)"),
            Files(&[("", &[("memory.high", Eq("50331648"))]), ("", &[("pids.max", Eq("55"))])])),
        t(
            "cgroups.unified-invalid-errors",
            "config-linux.md#unified",
            MUST,
            "unified: \"The runtime MUST generate an error when the configuration refers to a cgroup controller that is not present or that cannot be enabled\" (v1 host: no controller on the unified hierarchy; v2: an unknown controller).",
            |c| {
                let mut b = c.bundle_ops(&["exit:0"])?;
                let path = c.cgroup_path();
                b.set("linux.cgroupsPath", json!(path));
                let key = if c.env.cgroup2 { "octctl.max" } else { "memory.high" };
                b.set("linux.resources.unified", json!({key: "50331648"}));
                ensure(c.create_fails(&b)?, format!("unified {key} was accepted"))
            },
        )
        .cgroup(),
        t(
            "cgroups.unappliable-errors",
            "runtime.md#create",
            MUST,
            "If the runtime cannot apply a property as specified in the configuration, it MUST generate an error and a new container MUST NOT be created (a resource this host's cgroups have no file for).",
            |c| {
                let cands: [(&str, &str, Value); 3] = [
                    ("blkio", "blkio.weight", json!({"blockIO": {"weight": 300}})),
                    ("hugetlb", "hugetlb.2MB.limit_in_bytes", json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]})),
                    ("net_cls", "net_cls.classid", json!({"network": {"classID": 1048577}})),
                ];
                let v2_cands: [(&str, &str, Value); 1] =
                    [("", "hugetlb.2MB.max", json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}))];
                let list: Vec<&(&str, &str, Value)> = if c.env.cgroup2 { v2_cands.iter().collect() } else { cands.iter().collect() };
                // blkio.bfq.weight stands in for blkio.weight where BFQ is active.
                let blkio_alt = host_has(c.env, "blkio", "blkio.bfq.weight");
                let Some((_, file, res)) = list.into_iter().find(|(ctl, f, _)| {
                    !(host_has(c.env, ctl, f) || *f == "blkio.weight" && blkio_alt)
                }) else {
                    return skip("this host's cgroups can apply every candidate setting (blkio weight, 2MB hugetlb, net_cls)");
                };
                let mut b = c.bundle_ops(&["exit:0"])?;
                let path = c.cgroup_path();
                b.set("linux.cgroupsPath", json!(path));
                for (k, v) in res.as_object().into_iter().flatten() {
                    b.config["linux"]["resources"][k] = v.clone();
                }
                ensure(c.create_fails(&b)?, format!("this host has no {file}, so the setting cannot be applied, yet create succeeded"))
            },
        )
        .cgroup(),
        // ---- cgroup ownership
        t(
            "cgroups.ownership-delegated",
            "config-linux.md#cgroup-ownership",
            SHOULD,
            "Runtimes SHOULD change the cgroup ownership if and only if the cgroup filesystem is to be mounted read/write (with a new cgroup namespace): the directory and the delegated files go to the host uid of process.user.uid, other files stay.",
            |c| {
                let dir = owned_cgroup(c, true)?;
                let owner = |f: &str| fs::metadata(dir.join(f)).map(|m| m.uid()).unwrap_or(u32::MAX);
                eq("owner of the cgroup directory", owner(""), 100000)?;
                eq("owner of cgroup.procs", owner("cgroup.procs"), 100000)?;
                eq("owner of memory.max (not delegated)", owner("memory.max"), 0)
            },
        )
        .v2(),
        t(
            "cgroups.ownership-unchanged-without-rw-mount",
            "config-linux.md#cgroup-ownership",
            SHOULD,
            "If the configuration does not specify a read/write cgroup mount at /sys/fs/cgroup, the runtime SHOULD NOT change the cgroup ownership.",
            |c| {
                let dir = owned_cgroup(c, false)?;
                let m = io(fs::metadata(&dir), &dir.display().to_string())?;
                eq("owner of the cgroup directory", m.uid(), 0)
            },
        )
        .v2(),
        t(
            "cgroups.ownership-v1-unchanged",
            "config-linux.md#cgroup-ownership",
            SHOULD,
            "Runtimes SHOULD NOT change the ownership of container cgroups when cgroups v1 is in use (a user-namespaced container's cgroup stays root's).",
            |c| {
                if c.env.cgroup2 {
                    return skip("cgroup v1 only");
                }
                let dir = owned_cgroup(c, false)?;
                let m = io(fs::metadata(&dir), &dir.display().to_string())?;
                eq("owner of the memory cgroup directory", m.uid(), 0)
            },
        ),
        refuse(
            "cgroups.devices-type-p-errors",
            "config-linux.md#allowed-device-list",
            MUST,
            "resources.devices type: a (all), c (char), or b (block); any other value is invalid and MUST generate an error (config.md valid values).",
            |b| b.set("linux.resources.devices", json!([{"allow": true, "type": "p", "access": "rwm"}])),
        )
        .cgroup(),
    ]
}
