//! Applying linux.resources: every field becomes writes to control files of
//! the hierarchy that has its controller (v1, or the unified one on pure v2
//! and, for what it holds, on hybrid hosts), converted the way runc
//! converts v1 values for v2 (shares -> cpu.weight, blkio -> io).
//!
//! All of it is planned first (validation, conversions, the existence of
//! each file, so an unapplicable field fails before anything changed), then
//! written in order. If a write fails, the files already written get their
//! previous contents back: a rejected update leaves the old limits.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Linux, LinuxBlockIo, LinuxCpu, LinuxDevice, LinuxMemory, LinuxResources, LinuxThrottleDevice,
};

use super::devices;
use super::{Cgroup, CgroupError, Controller, Leaf, write_file};

impl Cgroup {
    /// Apply config.json's linux.resources to a container's new cgroup.
    /// Device rules are set only if they deny something: a new cgroup
    /// allows every device already.
    pub fn apply_linux(&self, linux: &Linux) -> Result<(), CgroupError> {
        let Some(r) = linux.resources() else {
            return Ok(());
        };
        let rules = devices::rules(
            r.devices().as_deref().unwrap_or(&[]),
            linux.devices().as_deref().unwrap_or(&[]),
        )?;
        let mut plan = Plan::new(self);
        plan.resources(r)?;
        plan.apply(|| {
            if rules.iter().any(|r| !r.allow) {
                self.set_devices(&rules)
            } else {
                Ok(())
            }
        })
    }

    /// `update`: change what `r` names and nothing else. Device rules are
    /// replaced if `r.devices` is given (with `linux_devices`, the
    /// container's created devices, allowed after them as at create).
    /// All or nothing: a rejected update leaves the old limits.
    pub fn update(
        &self,
        r: &LinuxResources,
        linux_devices: &[LinuxDevice],
    ) -> Result<(), CgroupError> {
        let rules = match r.devices() {
            Some(d) => Some(devices::rules(d, linux_devices)?),
            None => None,
        };
        let mut plan = Plan::new(self);
        plan.resources(r)?;
        plan.apply(|| match &rules {
            Some(rules) => self.set_devices(rules),
            None => Ok(()),
        })
    }
}

/// One write of the plan.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    /// The field below linux.resources, for errors.
    pub field: String,
    pub path: PathBuf,
    pub value: String,
    restore: Restore,
    verify: Verify,
}

/// How a written file gets its old setting back.
#[derive(Debug, Clone)]
enum Restore {
    /// Write back the old contents as read.
    Whole,
    /// A file with one line per key (device, interface): write back the old
    /// line for `key`, or `absent` if there was none.
    Keyed { key: String, absent: String },
    /// memory.oom_control: reads as "oom_kill_disable N ...", takes "N".
    OomControl,
}

/// A check after the write, for files the kernel accepts but may not honour.
#[derive(Debug, Clone, Copy)]
enum Verify {
    None,
    /// Read back the same number (cpu.shares is clamped silently).
    Exact,
    /// memory.kmem.limit_in_bytes: since Linux 5.16 writes are accepted and
    /// ignored; the value read back (page-rounded) shows if it took.
    Page,
}

fn res_err(field: impl Into<String>, msg: impl Into<String>) -> CgroupError {
    CgroupError::Resource {
        field: field.into(),
        msg: msg.into(),
    }
}

/// Builds the list of writes for one LinuxResources.
pub(crate) struct Plan<'a> {
    cg: &'a Cgroup,
    pub ops: Vec<Op>,
}

impl<'a> Plan<'a> {
    pub fn new(cg: &'a Cgroup) -> Plan<'a> {
        Plan {
            cg,
            ops: Vec::new(),
        }
    }

    fn leaf(&self, c: Controller, field: &str) -> Result<Leaf, CgroupError> {
        self.cg.locate(c).map_err(|m| res_err(field, m))
    }

    /// `dir/name`, which must exist: a missing control file means this
    /// kernel (or this hierarchy) cannot apply `field`.
    fn file(&self, dir: &Path, name: &str, field: &str) -> Result<PathBuf, CgroupError> {
        let p = dir.join(name);
        if p.exists() {
            Ok(p)
        } else {
            Err(res_err(
                field,
                format!(
                    "{} does not exist: this kernel's cgroups cannot apply it",
                    p.display()
                ),
            ))
        }
    }

    fn push(&mut self, field: &str, path: PathBuf, value: String) {
        self.push_with(field, path, value, Restore::Whole, Verify::None);
    }

    fn push_with(
        &mut self,
        field: &str,
        path: PathBuf,
        value: String,
        restore: Restore,
        verify: Verify,
    ) {
        self.ops.push(Op {
            field: field.to_owned(),
            path,
            value,
            restore,
            verify,
        });
    }

    fn push_keyed(
        &mut self,
        field: &str,
        path: PathBuf,
        key: String,
        value: String,
        absent: String,
    ) {
        self.push_with(
            field,
            path,
            value,
            Restore::Keyed { key, absent },
            Verify::None,
        );
    }

    /// Plan every field of `r` except devices (see devices.rs).
    pub fn resources(&mut self, r: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(m) = r.memory() {
            self.memory(m)?;
        }
        if let Some(c) = r.cpu() {
            self.cpu(c)?;
        }
        if let Some(p) = r.pids() {
            self.pids(p.limit())?;
        }
        if let Some(b) = r.block_io() {
            self.block_io(b)?;
        }
        for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
            self.hugetlb(i, h.page_size(), h.limit())?;
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                let leaf = self.leaf(Controller::NetCls, "network.classID")?;
                let f = self.file(leaf.dir(), "net_cls.classid", "network.classID")?;
                self.push("network.classID", f, id.to_string());
            }
            for (i, p) in n.priorities().iter().flatten().enumerate() {
                let field = format!("network.priorities[{i}]");
                if p.name().is_empty() || p.name().contains(char::is_whitespace) {
                    return Err(res_err(
                        field,
                        format!("invalid interface name {:?}", p.name()),
                    ));
                }
                let leaf = self.leaf(Controller::NetPrio, &field)?;
                let f = self.file(leaf.dir(), "net_prio.ifpriomap", &field)?;
                let line = format!("{} {}", p.name(), p.priority());
                self.push_keyed(&field, f, p.name().clone(), line, format!("{} 0", p.name()));
            }
        }
        if let Some(rdma) = r.rdma() {
            let mut names: Vec<_> = rdma.keys().collect();
            names.sort();
            for name in names {
                let field = format!("rdma.{name}");
                let l = &rdma[name];
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(res_err(field, "invalid device name"));
                }
                let mut line = name.clone();
                if let Some(h) = l.hca_handles() {
                    line.push_str(&format!(" hca_handle={h}"));
                }
                if let Some(o) = l.hca_objects() {
                    line.push_str(&format!(" hca_object={o}"));
                }
                if line == *name {
                    continue;
                }
                let leaf = self.leaf(Controller::Rdma, &field)?;
                let f = self.file(leaf.dir(), "rdma.max", &field)?;
                let absent = format!("{name} hca_handle=max hca_object=max");
                self.push_keyed(&field, f, name.clone(), line, absent);
            }
        }
        if let Some(u) = r.unified() {
            self.unified(u)?;
        }
        Ok(())
    }

    fn memory(&mut self, m: &LinuxMemory) -> Result<(), CgroupError> {
        let m = &zero_is_unset(m);
        let any = m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || kernel(m).is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some()
            || m.use_hierarchy().is_some();
        if !any {
            return Ok(());
        }
        let leaf = self.leaf(Controller::Memory, "memory")?;
        let dir = leaf.dir().to_owned();
        if let (Some(true), Some(limit)) = (m.check_before_update(), m.limit())
            && limit > 0
        {
            let usage_file = if leaf.is_v2() {
                "memory.current"
            } else {
                "memory.usage_in_bytes"
            };
            if let Some(usage) = read_u64(&dir.join(usage_file))
                && (limit as u64) < usage
            {
                return Err(res_err(
                    "memory.limit",
                    format!(
                        "{limit} is below the current usage of {usage} bytes (memory.checkBeforeUpdate is set)"
                    ),
                ));
            }
        }
        if leaf.is_v2() {
            return self.memory_v2(m, &dir);
        }
        if let Some(r) = m.reservation() {
            let f = self.file(&dir, "memory.soft_limit_in_bytes", "memory.reservation")?;
            self.push("memory.reservation", f, r.to_string());
        }
        let limit = m.limit();
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        // Unlimited memory with swap unset means unlimited swap too, as in
        // runc; only where the kernel accounts swap.
        let swap = match (limit, m.swap()) {
            (Some(-1), None) if memsw.exists() => Some(-1),
            (_, s) => s,
        };
        let limit_op = match limit {
            Some(_) => Some(self.file(&dir, "memory.limit_in_bytes", "memory.limit")?),
            None => None,
        };
        let swap_op = match swap {
            Some(_) => Some(self.file(&dir, "memory.memsw.limit_in_bytes", "memory.swap")?),
            None => None,
        };
        // The kernel keeps limit <= memsw at every step: raise memsw first
        // when the new swap total exceeds the current limit.
        let swap_first = match (limit, swap) {
            (Some(_), Some(s)) => {
                s == -1
                    || read_u64(&dir.join("memory.limit_in_bytes"))
                        .is_some_and(|cur| (cur as i128) < s as i128)
            }
            _ => false,
        };
        let mut writes = Vec::new();
        if let (Some(f), Some(l)) = (limit_op, limit) {
            writes.push(("memory.limit", f, l));
        }
        if let (Some(f), Some(s)) = (swap_op, swap) {
            writes.push(("memory.swap", f, s));
        }
        if swap_first {
            writes.reverse();
        }
        for (field, f, v) in writes {
            self.push(field, f, v.to_string());
        }
        if let Some(k) = kernel(m) {
            let f = self.file(&dir, "memory.kmem.limit_in_bytes", "memory.kernel")?;
            self.push_with(
                "memory.kernel",
                f,
                k.to_string(),
                Restore::Whole,
                Verify::Page,
            );
        }
        if let Some(k) = m.kernel_tcp() {
            let f = self.file(&dir, "memory.kmem.tcp.limit_in_bytes", "memory.kernelTCP")?;
            self.push("memory.kernelTCP", f, k.to_string());
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(res_err(
                    "memory.swappiness",
                    format!("{s} is out of range 0-100"),
                ));
            }
            let f = self.file(&dir, "memory.swappiness", "memory.swappiness")?;
            self.push("memory.swappiness", f, s.to_string());
        }
        if let Some(d) = m.disable_oom_killer() {
            let f = self.file(&dir, "memory.oom_control", "memory.disableOOMKiller")?;
            let v = if d { "1" } else { "0" };
            self.push_with(
                "memory.disableOOMKiller",
                f,
                v.into(),
                Restore::OomControl,
                Verify::None,
            );
        }
        if let Some(h) = m.use_hierarchy() {
            let f = self.file(&dir, "memory.use_hierarchy", "memory.useHierarchy")?;
            self.push("memory.useHierarchy", f, if h { "1" } else { "0" }.into());
        }
        Ok(())
    }

    fn memory_v2(&mut self, m: &LinuxMemory, dir: &Path) -> Result<(), CgroupError> {
        let v2_lacks = |field: &str, what: &str| res_err(field, format!("cgroup v2 has no {what}"));
        if kernel(m).is_some() {
            return Err(v2_lacks("memory.kernel", "kernel memory limit"));
        }
        if m.kernel_tcp().is_some() {
            return Err(v2_lacks("memory.kernelTCP", "kernel TCP memory limit"));
        }
        if m.swappiness().is_some() {
            return Err(v2_lacks("memory.swappiness", "per-cgroup swappiness"));
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(v2_lacks(
                "memory.disableOOMKiller",
                "way to disable the OOM killer",
            ));
        }
        if m.use_hierarchy() == Some(false) {
            return Err(res_err(
                "memory.useHierarchy",
                "cgroup v2 is always hierarchical",
            ));
        }
        if let Some(r) = m.reservation() {
            let f = self.file(dir, "memory.low", "memory.reservation")?;
            self.push("memory.reservation", f, max_or(r));
        }
        let limit = m.limit();
        let swap = swap_to_v2(limit.unwrap_or(0), m.swap().unwrap_or(0))
            .map_err(|e| res_err("memory.swap", e))?;
        // Swap and limit may both change, in either direction: the two v2
        // files are independent, so their order does not matter.
        if swap != 0 {
            let implicit = m.swap().is_none();
            let f = dir.join("memory.swap.max");
            if f.exists() {
                self.push("memory.swap", f, max_or(swap));
            } else if !implicit {
                self.file(dir, "memory.swap.max", "memory.swap")?;
            }
        }
        if let Some(l) = limit {
            let f = self.file(dir, "memory.max", "memory.limit")?;
            self.push("memory.limit", f, max_or(l));
        }
        Ok(())
    }

    fn cpu(&mut self, c: &LinuxCpu) -> Result<(), CgroupError> {
        let any_cpu = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.idle().is_some()
            || c.realtime_period().is_some()
            || c.realtime_runtime().is_some();
        if any_cpu {
            let leaf = self.leaf(Controller::Cpu, "cpu")?;
            let dir = leaf.dir().to_owned();
            if leaf.is_v2() {
                self.cpu_v2(c, &dir)?;
            } else {
                // 0 means unset, as in runc (Docker passes it).
                if let Some(s) = c.shares().filter(|&s| s != 0) {
                    let f = self.file(&dir, "cpu.shares", "cpu.shares")?;
                    self.push_with(
                        "cpu.shares",
                        f,
                        s.to_string(),
                        Restore::Whole,
                        Verify::Exact,
                    );
                }
                if let Some(p) = c.period().filter(|&p| p != 0) {
                    let f = self.file(&dir, "cpu.cfs_period_us", "cpu.period")?;
                    self.push("cpu.period", f, p.to_string());
                }
                if let Some(q) = c.quota().filter(|&q| q != 0) {
                    let f = self.file(&dir, "cpu.cfs_quota_us", "cpu.quota")?;
                    self.push("cpu.quota", f, q.max(-1).to_string());
                }
                if let Some(b) = c.burst() {
                    let f = self.file(&dir, "cpu.cfs_burst_us", "cpu.burst")?;
                    self.push("cpu.burst", f, b.to_string());
                }
                if let Some(p) = c.realtime_period().filter(|&p| p != 0) {
                    let f = self.file(&dir, "cpu.rt_period_us", "cpu.realtimePeriod")?;
                    self.push("cpu.realtimePeriod", f, p.to_string());
                }
                if let Some(r) = c.realtime_runtime().filter(|&r| r != 0) {
                    let f = self.file(&dir, "cpu.rt_runtime_us", "cpu.realtimeRuntime")?;
                    self.push("cpu.realtimeRuntime", f, r.to_string());
                }
                if let Some(i) = c.idle() {
                    let f = self.file(&dir, "cpu.idle", "cpu.idle")?;
                    self.push("cpu.idle", f, i.to_string());
                }
            }
        }
        for (field, value, name) in [
            ("cpu.cpus", c.cpus(), "cpus"),
            ("cpu.mems", c.mems(), "mems"),
        ] {
            // Empty means unset, as in runc.
            let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let leaf = self.leaf(Controller::Cpuset, field)?;
            let file = match &leaf {
                Leaf::V1 { noprefix: true, .. } => name.to_owned(),
                _ => format!("cpuset.{name}"),
            };
            let f = self.file(leaf.dir(), &file, field)?;
            self.push(field, f, v.trim().to_owned());
        }
        Ok(())
    }

    fn cpu_v2(&mut self, c: &LinuxCpu, dir: &Path) -> Result<(), CgroupError> {
        if c.realtime_period().is_some_and(|p| p != 0)
            || c.realtime_runtime().is_some_and(|r| r != 0)
        {
            let field = if c.realtime_period().is_some() {
                "cpu.realtimePeriod"
            } else {
                "cpu.realtimeRuntime"
            };
            return Err(res_err(
                field,
                "cgroup v2 has no realtime CPU limits (cpu.rt_*)",
            ));
        }
        if let Some(w) = c.shares().map(shares_to_weight).filter(|&w| w != 0) {
            let f = self.file(dir, "cpu.weight", "cpu.shares")?;
            self.push("cpu.shares", f, w.to_string());
        }
        let quota = c.quota().filter(|&q| q != 0);
        let period = c.period().filter(|&p| p != 0);
        if quota.is_some() || period.is_some() {
            let field = if quota.is_some() {
                "cpu.quota"
            } else {
                "cpu.period"
            };
            let f = self.file(dir, "cpu.max", field)?;
            // cpu.max holds both: keep the one not given (a partial update
            // changes only what it names).
            let cur = std::fs::read_to_string(&f).unwrap_or_default();
            let cur_quota = cur.split_whitespace().next().unwrap_or("max").to_owned();
            let value = cpu_max(quota, period, &cur_quota);
            self.push(field, f, value);
        }
        if let Some(b) = c.burst() {
            let f = self.file(dir, "cpu.max.burst", "cpu.burst")?;
            self.push("cpu.burst", f, b.to_string());
        }
        if let Some(i) = c.idle() {
            let f = self.file(dir, "cpu.idle", "cpu.idle")?;
            self.push("cpu.idle", f, i.to_string());
        }
        Ok(())
    }

    fn pids(&mut self, limit: i64) -> Result<(), CgroupError> {
        // 0 is "not set" (runc): the spec type cannot tell absent from 0.
        if limit == 0 {
            return Ok(());
        }
        let leaf = self.leaf(Controller::Pids, "pids.limit")?;
        let f = self.file(leaf.dir(), "pids.max", "pids.limit")?;
        self.push("pids.limit", f, max_or(limit));
        Ok(())
    }

    fn block_io(&mut self, b: &LinuxBlockIo) -> Result<(), CgroupError> {
        let throttles: [(&str, &Option<Vec<LinuxThrottleDevice>>, &str, &str); 4] = [
            (
                "throttleReadBpsDevice",
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
                "rbps",
            ),
            (
                "throttleWriteBpsDevice",
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
                "wbps",
            ),
            (
                "throttleReadIOPSDevice",
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
                "riops",
            ),
            (
                "throttleWriteIOPSDevice",
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
                "wiops",
            ),
        ];
        // 0 means unset, as in runc (Docker passes weight 0).
        let weight = b.weight().filter(|&w| w != 0);
        let leaf_weight = b.leaf_weight().filter(|&w| w != 0);
        let any = weight.is_some()
            || leaf_weight.is_some()
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || throttles
                .iter()
                .any(|t| t.1.as_ref().is_some_and(|v| !v.is_empty()));
        if !any {
            return Ok(());
        }
        let leaf = self.leaf(Controller::Blkio, "blockIO")?;
        let dir = leaf.dir().to_owned();
        let v2 = leaf.is_v2();
        // BFQ's weight files take the v1 scale on both versions (runc).
        let (weight_file, bfq) = if v2 {
            if dir.join("io.bfq.weight").exists() {
                ("io.bfq.weight", true)
            } else {
                ("io.weight", false)
            }
        } else if dir.join("blkio.weight").exists() {
            ("blkio.weight", false)
        } else {
            ("blkio.bfq.weight", true)
        };
        let convert = |w: u16| {
            if v2 && !bfq {
                blkio_to_io_weight(w)
            } else {
                u64::from(w)
            }
        };
        if let Some(w) = weight {
            let f = self.weight_file(&dir, weight_file, "blockIO.weight")?;
            if v2 {
                let line = format!("default {}", convert(w));
                self.push_keyed(
                    "blockIO.weight",
                    f,
                    "default".into(),
                    line,
                    "default 100".into(),
                );
            } else {
                self.push("blockIO.weight", f, w.to_string());
            }
        }
        if let Some(w) = leaf_weight {
            if v2 {
                return Err(res_err(
                    "blockIO.leafWeight",
                    "cgroup v2 has no leaf weight",
                ));
            }
            let f = self.file(&dir, "blkio.leaf_weight", "blockIO.leafWeight")?;
            self.push("blockIO.leafWeight", f, w.to_string());
        }
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            let key = format!("{}:{}", d.major(), d.minor());
            if let Some(w) = d.weight() {
                let field = format!("blockIO.weightDevice[{i}].weight");
                let file = if v2 {
                    weight_file.to_owned()
                } else {
                    format!("{weight_file}_device")
                };
                let f = self.weight_file(&dir, &file, &field)?;
                let absent = if v2 {
                    format!("{key} default")
                } else {
                    format!("{key} 0")
                };
                self.push_keyed(
                    &field,
                    f,
                    key.clone(),
                    format!("{key} {}", convert(w)),
                    absent,
                );
            }
            if let Some(w) = d.leaf_weight() {
                let field = format!("blockIO.weightDevice[{i}].leafWeight");
                if v2 {
                    return Err(res_err(field, "cgroup v2 has no leaf weight"));
                }
                let f = self.file(&dir, "blkio.leaf_weight_device", &field)?;
                self.push_keyed(
                    &field,
                    f,
                    key.clone(),
                    format!("{key} {w}"),
                    format!("{key} 0"),
                );
            }
        }
        for (name, list, v1_file, v2_key) in throttles {
            for (i, t) in list.iter().flatten().enumerate() {
                let field = format!("blockIO.{name}[{i}]");
                let key = format!("{}:{}", t.major(), t.minor());
                if v2 {
                    let f = self.file(&dir, "io.max", &field)?;
                    let rate = if t.rate() == 0 {
                        "max".to_owned()
                    } else {
                        t.rate().to_string()
                    };
                    let absent = format!("{key} rbps=max wbps=max riops=max wiops=max");
                    self.push_keyed(
                        &field,
                        f,
                        key.clone(),
                        format!("{key} {v2_key}={rate}"),
                        absent,
                    );
                } else {
                    let f = self.file(&dir, v1_file, &field)?;
                    let line = format!("{key} {}", t.rate());
                    self.push_keyed(&field, f, key.clone(), line, format!("{key} 0"));
                }
            }
        }
        Ok(())
    }

    fn weight_file(&self, dir: &Path, name: &str, field: &str) -> Result<PathBuf, CgroupError> {
        self.file(dir, name, field).map_err(|_| {
            res_err(
                field,
                format!(
                    "{} has no {name} (nor the other weight file): the block I/O scheduler in use (not BFQ/CFQ) supports no weights",
                    dir.display()
                ),
            )
        })
    }

    fn hugetlb(&mut self, i: usize, size: &str, limit: i64) -> Result<(), CgroupError> {
        let field = format!("hugepageLimits[{i}]");
        let ok = size.len() > 2
            && size.ends_with('B')
            && size[..size.len() - 2].bytes().all(|b| b.is_ascii_digit())
            && matches!(size.as_bytes()[size.len() - 2], b'K' | b'M' | b'G');
        if !ok {
            return Err(res_err(
                format!("{field}.pageSize"),
                format!("{size:?} is not a page size such as \"2MB\" or \"1GB\""),
            ));
        }
        let leaf = self.leaf(Controller::Hugetlb, &field)?;
        let dir = leaf.dir();
        let (limit_name, rsvd_name, value) = if leaf.is_v2() {
            (
                format!("hugetlb.{size}.max"),
                format!("hugetlb.{size}.rsvd.max"),
                max_or(limit),
            )
        } else {
            (
                format!("hugetlb.{size}.limit_in_bytes"),
                format!("hugetlb.{size}.rsvd.limit_in_bytes"),
                limit.to_string(),
            )
        };
        let f = self.file(dir, &limit_name, &field).map_err(|_| {
            res_err(
                format!("{field}.pageSize"),
                format!(
                    "this host has no {size} huge pages ({} does not exist)",
                    dir.join(&limit_name).display()
                ),
            )
        })?;
        self.push(&format!("{field}.limit"), f, value.clone());
        // Reservations are limited alike where the kernel has them (5.7+),
        // so a reserved-but-unfaulted mapping cannot slip past the limit.
        let rsvd = dir.join(&rsvd_name);
        if rsvd.exists() {
            self.push(&format!("{field}.limit"), rsvd, value);
        }
        Ok(())
    }

    fn unified(
        &mut self,
        u: &std::collections::HashMap<String, String>,
    ) -> Result<(), CgroupError> {
        if u.is_empty() {
            return Ok(());
        }
        let mut keys: Vec<_> = u.keys().collect();
        keys.sort();
        let Some(dir) = self.cg.unified.clone() else {
            return Err(res_err(
                format!("unified.{:?}", keys[0]),
                "cgroup v2 keys need a cgroup v2 hierarchy; this host mounts only cgroup v1",
            ));
        };
        for k in keys {
            let field = format!("unified.{k:?}");
            if k.is_empty() || k.contains('/') || k.starts_with('.') || !k.contains('.') {
                return Err(res_err(field, "not a cgroup v2 control file name"));
            }
            let f = self.file(&dir, k, &field).map_err(|_| {
                res_err(
                    &field,
                    format!(
                        "{} does not exist (unknown file, or its controller is not enabled for the container's cgroup)",
                        dir.join(k).display()
                    ),
                )
            })?;
            self.push(&field, f, u[k].clone());
        }
        Ok(())
    }

    /// Carry the plan out, then `after` (the device rules); if a write or
    /// `after` fails, restore what was written.
    pub fn apply(
        &self,
        after: impl FnOnce() -> Result<(), CgroupError>,
    ) -> Result<(), CgroupError> {
        let mut old: Vec<(PathBuf, String)> = Vec::new();
        for op in &self.ops {
            if !old.iter().any(|(p, _)| *p == op.path) {
                let text = std::fs::read_to_string(&op.path).unwrap_or_default();
                old.push((op.path.clone(), text));
            }
        }
        for (i, op) in self.ops.iter().enumerate() {
            if let Err(e) = write_op(op) {
                self.restore(&self.ops[..i + 1], &old);
                return Err(e);
            }
        }
        after().inspect_err(|_| self.restore(&self.ops, &old))
    }

    /// Best effort: the first error is the one worth reporting.
    fn restore(&self, done: &[Op], old: &[(PathBuf, String)]) {
        for op in done.iter().rev() {
            let Some((_, text)) = old.iter().find(|(p, _)| *p == op.path) else {
                continue;
            };
            let value = match &op.restore {
                Restore::Whole => text.trim().to_owned(),
                Restore::Keyed { key, absent } => text
                    .lines()
                    .find(|l| l.split_whitespace().next() == Some(key.as_str()))
                    .map(str::to_owned)
                    .unwrap_or_else(|| absent.clone()),
                Restore::OomControl => text
                    .lines()
                    .find_map(|l| l.strip_prefix("oom_kill_disable "))
                    .unwrap_or("0")
                    .trim()
                    .to_owned(),
            };
            let _ = write_file(&op.path, value.as_bytes());
        }
    }
}

fn write_op(op: &Op) -> Result<(), CgroupError> {
    let failed = |reason: String| CgroupError::Write {
        field: op.field.clone(),
        path: op.path.clone(),
        value: op.value.clone(),
        reason,
    };
    write_file(&op.path, op.value.as_bytes()).map_err(|e| failed(e.errno.desc().to_lowercase()))?;
    let want: i64 = match op.verify {
        Verify::None => return Ok(()),
        _ => op.value.parse().unwrap_or(-1),
    };
    let Some(got) = read_u64(&op.path) else {
        return Ok(());
    };
    let ok = match op.verify {
        Verify::Exact => want >= 0 && got == want as u64,
        // -1 (unlimited) reads back as a huge page-aligned number.
        Verify::Page => want < 0 || got == (want as u64) / 4096 * 4096,
        Verify::None => true,
    };
    if ok {
        Ok(())
    } else {
        Err(failed(format!(
            "the kernel accepted it but keeps {got} (it does not honour this setting)"
        )))
    }
}

/// runc writes none of the memory byte counts that are 0: engines send
/// whole documents where 0 means "not set" (Docker's `update --memory`
/// sends kernel 0, reservation 0 and, without --memory-swap, swap 0).
#[allow(deprecated)]
fn zero_is_unset(m: &LinuxMemory) -> LinuxMemory {
    let nz = |v: Option<i64>| v.filter(|&v| v != 0);
    let mut m = m.clone();
    m.set_limit(nz(m.limit()));
    m.set_reservation(nz(m.reservation()));
    m.set_swap(nz(m.swap()));
    m.set_kernel(nz(m.kernel()));
    m.set_kernel_tcp(nz(m.kernel_tcp()));
    m
}

#[allow(deprecated)]
fn kernel(m: &LinuxMemory) -> Option<i64> {
    m.kernel()
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A v2 limit: negative means no limit, written as "max".
fn max_or(v: i64) -> String {
    if v < 0 { "max".into() } else { v.to_string() }
}

/// runc's conversion of cpu.shares (2..262144, default 1024) to cpu.weight
/// (1..10000, default 100); 0 stays 0 (unset).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// runc's conversion of blkio.weight (10..1000) to io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// memory.swap in the spec is memory+swap (v1 memsw); v2's memory.swap.max
/// is swap alone. Returns the v2 value: 0 = leave alone, -1 = "max".
pub fn swap_to_v2(limit: i64, swap: i64) -> Result<i64, String> {
    if limit == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if limit == 0 || limit == -1 {
        return Err("a swap limit needs a memory limit".into());
    }
    if limit < 0 || swap < 0 {
        return Err(format!("invalid memory {limit} / swap {swap}"));
    }
    if swap < limit {
        return Err(format!(
            "memory+swap ({swap}) must not be below the memory limit ({limit})"
        ));
    }
    Ok(swap - limit)
}

/// cpu.max for the given quota/period; `cur_quota` is the quota now in the
/// file, kept when only the period changes.
pub fn cpu_max(quota: Option<i64>, period: Option<u64>, cur_quota: &str) -> String {
    let q = match quota {
        Some(q) if q > 0 => q.to_string(),
        Some(_) => "max".to_owned(),
        None => cur_quota.to_owned(),
    };
    match period {
        Some(p) => format!("{q} {p}"),
        None => q,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_blkio_weights() {
        for (shares, weight) in [
            (0, 0),
            (2, 1),
            (1, 1),
            (1024, 39),
            (262_144, 10_000),
            (1_000_000, 10_000),
            (512, 20),
        ] {
            assert_eq!(shares_to_weight(shares), weight, "shares {shares}");
        }
        for (w, io) in [(10, 1), (1000, 10_000), (500, 4950), (100, 910), (5, 1)] {
            assert_eq!(blkio_to_io_weight(w), io, "blkio {w}");
        }
    }

    #[test]
    fn swap_conversion() {
        let ok = [
            ((-1, 0), -1),
            ((100, 0), 0),
            ((100, -1), -1),
            ((104_857_600, 209_715_200), 104_857_600),
            ((100, 100), 0),
        ];
        for ((l, s), want) in ok {
            assert_eq!(swap_to_v2(l, s), Ok(want), "{l} {s}");
        }
        for (l, s) in [(0, 100), (-1, 100), (200, 100), (-5, 100)] {
            assert!(swap_to_v2(l, s).is_err(), "{l} {s}");
        }
    }

    #[test]
    fn cpu_max_forms() {
        assert_eq!(cpu_max(Some(50_000), Some(100_000), "max"), "50000 100000");
        assert_eq!(cpu_max(Some(50_000), None, "max"), "50000");
        assert_eq!(cpu_max(None, Some(20_000), "30000"), "30000 20000");
        assert_eq!(cpu_max(Some(-1), Some(100_000), "5"), "max 100000");
    }

    #[test]
    fn max_or_negative() {
        assert_eq!(max_or(-1), "max");
        assert_eq!(max_or(0), "0");
        assert_eq!(max_or(42), "42");
    }
}
