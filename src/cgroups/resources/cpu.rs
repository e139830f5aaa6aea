//! linux.resources.cpu (cpu and cpuset controllers) and pids.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use super::{Plan, Restore, Verify, cpu_max, max_or, res_err, shares_to_weight};
use crate::cgroups::{CgroupError, Controller, Leaf};

impl Plan<'_> {
    pub(super) fn cpu(&mut self, c: &LinuxCpu) -> Result<(), CgroupError> {
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
                let period = c.period().filter(|&p| p != 0);
                let quota = c.quota().filter(|&q| q != 0).map(|q| q.max(-1));
                let mut cfs = Vec::new();
                if let Some(p) = period {
                    let f = self.file(&dir, "cpu.cfs_period_us", "cpu.period")?;
                    cfs.push(("cpu.period", f, p.to_string()));
                }
                if let Some(q) = quota {
                    let f = self.file(&dir, "cpu.cfs_quota_us", "cpu.quota")?;
                    cfs.push(("cpu.quota", f, q.to_string()));
                }
                if let (Some(p), Some(q)) = (period, quota)
                    && quota_first(&dir, p, q)
                {
                    cfs.reverse();
                }
                for (field, f, v) in cfs {
                    self.push(field, f, v);
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

    /// pids.max: -1 (or any negative) is "max"; 0 is a real limit (no new
    /// task at all), as runtime-spec 1.3 says and runc >= 1.4 does. An
    /// absent limit never gets here (see spec_compat::drop_absent_pids_limit).
    pub(super) fn pids(&mut self, limit: i64) -> Result<(), CgroupError> {
        let leaf = self.leaf(Controller::Pids, "pids.limit")?;
        let f = self.file(leaf.dir(), "pids.max", "pids.limit")?;
        self.push("pids.limit", f, max_or(limit));
        Ok(())
    }
}

/// Whether v1's cfs quota must be written before the period. The kernel
/// checks quota/period against the parent's ratio after each of the two
/// writes, so the order must keep the ratio in between the lower one:
/// period first leaves old_quota/new_period, quota first
/// new_quota/old_period; the second is smaller exactly when
/// new_quota*new_period < old_quota*old_period. Unlimited (-1) is never
/// refused, so it counts as 0.
fn quota_first(dir: &Path, period: u64, quota: i64) -> bool {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
    };
    let (Some(old_q), Some(old_p)) = (read("cpu.cfs_quota_us"), read("cpu.cfs_period_us")) else {
        return false;
    };
    let product = |q: i64, p: i128| i128::from(q.max(0)) * p;
    product(quota, i128::from(period)) < product(old_q, i128::from(old_p))
}
