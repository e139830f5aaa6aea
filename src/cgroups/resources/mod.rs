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
use std::time::{Duration, Instant};

use oci_spec::runtime::{Linux, LinuxResources};

use super::devices;
use super::{Cgroup, CgroupError, Controller, Leaf, write_file};

// One file per concern: the write engine (plan, apply, restore) is here.
mod blkio;
mod convert;
mod cpu;
mod memory;
mod other;

use convert::max_or;
pub use convert::{blkio_to_io_weight, cpu_max, shares_to_weight, swap_to_v2};

impl Cgroup {
    /// Apply config.json's linux.resources to a container's new cgroup.
    /// Device rules are set only if they deny something: a new cgroup
    /// allows every device already.
    pub fn apply_linux(&self, linux: &Linux) -> Result<(), CgroupError> {
        let Some(r) = linux.resources() else {
            return Ok(());
        };
        let rules = devices::rules(r.devices().as_deref().unwrap_or(&[]))?;
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
    /// replaced if `r.devices` is given. All or nothing: a rejected update
    /// leaves the old limits.
    pub fn update(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        let rules = match r.devices() {
            Some(d) => Some(devices::rules(d)?),
            None => None,
        };
        // v1 device rules are replaced by denying everything and allowing
        // the list again, one write at a time (and systemd does the same
        // with DeviceAllow): a running workload would meet EPERM on
        // /dev/null in between. Frozen, it cannot; runc reaches the same
        // with a minimal diff of the rules. v2's filter is one BPF program,
        // replaced at once.
        let freeze = rules.is_some()
            && matches!(self.locate(Controller::Devices), Ok(Leaf::V1 { .. }))
            && !super::freezer::is_frozen(self)
            && self.locate(Controller::Freezer).is_ok();
        if freeze {
            super::freezer::freeze(self)?;
        }
        let out = self.update_unfrozen(r, rules);
        if freeze {
            // A thaw error matters only if the update went through.
            let thawed = super::freezer::thaw(self);
            out?;
            return thawed;
        }
        out
    }

    fn update_unfrozen(
        &self,
        r: &LinuxResources,
        rules: Option<Vec<devices::Rule>>,
    ) -> Result<(), CgroupError> {
        if self.systemd.as_ref().is_some_and(|sd| sd.v2) {
            self.enable_unmanaged(r)?;
        }
        let mut plan = Plan::new(self);
        plan.resources(r)?;
        // The systemd driver: the unit's properties first (runc's order),
        // once everything has been checked.
        let saved = match &self.systemd {
            Some(sd) => {
                let props = super::systemd::props::resources(r, sd.v2)
                    .map_err(|(field, msg)| res_err(field, msg))?;
                Some((sd, sd.set_properties_saving(&props)?))
            }
            None => None,
        };
        plan.apply(|| match &rules {
            Some(rules) => self.set_devices(rules),
            None => Ok(()),
        })
        .inspect_err(|_| {
            // The files were put back; so are the unit's properties (best
            // effort: the first error is the one to report).
            if let Some((sd, old)) = &saved {
                let _ = sd.set_properties(old);
            }
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
        self.cg.locate_for_limits(c).map_err(|m| res_err(field, m))
    }

    /// `dir/name`, which must exist: a missing control file means this
    /// kernel (or this hierarchy) cannot apply `field`. In the v2 leaf it
    /// may only be late: the kernel lists a controller in cgroup.controllers
    /// a moment before it makes the controller's files, and another create
    /// may be enabling it in a parent both share (`Cgroup::locate_for_limits`).
    fn file(&self, dir: &Path, name: &str, field: &str) -> Result<PathBuf, CgroupError> {
        let p = dir.join(name);
        let v2 = self.cg.unified.as_deref() == Some(dir);
        let deadline = Instant::now() + Duration::from_millis(500);
        while !p.exists() && v2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
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
            self.network(n)?;
        }
        if let Some(rdma) = r.rdma() {
            self.rdma(rdma)?;
        }
        if let Some(u) = r.unified() {
            self.unified(u)?;
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
    write_file(&op.path, op.value.as_bytes()).map_err(|e| {
        if e.errno == nix::errno::Errno::EBUSY
            && let Some(msg) = below_usage(op)
        {
            return failed(msg);
        }
        failed(e.errno.desc().to_lowercase())
    })?;
    let want: i64 = match op.verify {
        Verify::None => return Ok(()),
        _ => op.value.parse().unwrap_or(-1),
    };
    let Some(got) = read_u64(&op.path) else {
        return Ok(());
    };
    let ok = match op.verify {
        Verify::Exact => want >= 0 && got == want as u64,
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

/// A v1 memory limit below what the cgroup uses already: the kernel could
/// not reclaim enough and said EBUSY. Name both values, in runc's words.
fn below_usage(op: &Op) -> Option<String> {
    let name = op.path.file_name()?.to_str()?;
    let stem = name.strip_suffix("limit_in_bytes")?;
    let dir = op.path.parent()?;
    let usage = read_u64(&dir.join(format!("{stem}usage_in_bytes")))?;
    let peak = read_u64(&dir.join(format!("{stem}max_usage_in_bytes")))?;
    Some(format!(
        "unable to set memory limit to {} (current usage: {usage}, peak usage: {peak})",
        op.value
    ))
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
