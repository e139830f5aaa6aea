//! linux.resources.memory: the v1 memory controller's files, or v2's
//! memory.low/max/swap.max (with runc's memory+swap conversion).

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use super::{Plan, Restore, Verify, max_or, read_u64, res_err, swap_to_v2};
use crate::cgroups::{CgroupError, Controller};

impl Plan<'_> {
    pub(super) fn memory(&mut self, m: &LinuxMemory) -> Result<(), CgroupError> {
        let m = &zero_is_unset(m);
        let any = m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some()
            || m.use_hierarchy().is_some();
        if !any {
            return Ok(());
        }
        let leaf = self.leaf(Controller::Memory, "memory")?;
        let dir = leaf.dir().to_owned();
        if m.check_before_update() == Some(true) {
            check_usage(m, &dir, leaf.is_v2())?;
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
}

/// runc writes none of the memory byte counts that are 0: engines send
/// whole documents where 0 means "not set" (Docker's `update --memory`
/// sends kernel 0, reservation 0 and, without --memory-swap, swap 0).
/// `memory.kernel` is ignored with a warning, as runc >= 1.0 does: since
/// Linux 5.16 the v1 memory.kmem.limit_in_bytes accepts writes and enforces
/// nothing (deprecated since 5.4), v2 never had one, and runtime-spec marks
/// the field NOT RECOMMENDED (Docker still sends it for `--kernel-memory`).
#[allow(deprecated)]
fn zero_is_unset(m: &LinuxMemory) -> LinuxMemory {
    let nz = |v: Option<i64>| v.filter(|&v| v != 0);
    let mut m = *m;
    if nz(m.kernel()).is_some() {
        eprintln!(
            "capsa: warning: linux.resources.memory.kernel is ignored (kernel memory limits are deprecated)"
        );
    }
    m.set_kernel(None);
    m.set_limit(nz(m.limit()));
    m.set_reservation(nz(m.reservation()));
    m.set_swap(nz(m.swap()));
    m.set_kernel_tcp(nz(m.kernel_tcp()));
    m
}

/// memory.checkBeforeUpdate: refuse a limit below what the cgroup uses
/// now (it would OOM-kill at once). With a memory+swap total given, that
/// total is checked against memory plus swap in use; else the memory limit
/// alone. runc's words ("rejecting memory limit", "rejecting memory+swap
/// limit") start the message: scripts match on them.
fn check_usage(m: &LinuxMemory, dir: &Path, v2: bool) -> Result<(), CgroupError> {
    let (usage_file, swap_file) = if v2 {
        ("memory.current", "memory.swap.current")
    } else {
        ("memory.usage_in_bytes", "memory.memsw.usage_in_bytes")
    };
    let Some(usage) = read_u64(&dir.join(usage_file)) else {
        return Ok(());
    };
    if let Some(total) = m.swap().filter(|&s| s > 0) {
        // v1's memsw usage already counts memory; v2's swap.current does not.
        let (mem, swap) = match read_u64(&dir.join(swap_file)) {
            Some(s) if v2 => (usage, s),
            Some(s) => (usage, s.saturating_sub(usage)),
            None => (usage, 0),
        };
        if (total as u64) < mem.saturating_add(swap) {
            return Err(res_err(
                "memory.swap",
                format!(
                    "rejecting memory+swap limit {total} below usage {mem}+{swap} (memory.checkBeforeUpdate is set)"
                ),
            ));
        }
        return Ok(());
    }
    if let Some(limit) = m.limit().filter(|&l| l > 0)
        && (limit as u64) < usage
    {
        return Err(res_err(
            "memory.limit",
            format!(
                "rejecting memory limit {limit} below usage {usage} (memory.checkBeforeUpdate is set)"
            ),
        ));
    }
    Ok(())
}
