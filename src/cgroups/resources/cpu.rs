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
