//! The smaller controllers: hugepageLimits, network (net_cls, net_prio),
//! rdma, and v2's free-form `unified` keys.

use std::collections::HashMap;

use oci_spec::runtime::{LinuxNetwork, LinuxRdma};

use super::{Plan, max_or, res_err};
use crate::cgroups::{CgroupError, Controller};

/// The `cgroup.*` files `unified` may set (see `Plan::unified`).
const CORE_LIMITS: [&str; 2] = ["cgroup.max.descendants", "cgroup.max.depth"];

impl Plan<'_> {
    pub(super) fn hugetlb(&mut self, i: usize, size: &str, limit: i64) -> Result<(), CgroupError> {
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

    /// `unified` sets controller files. Of the core's own `cgroup.*` files
    /// only these two are limits; the others act on processes or on the
    /// tree (cgroup.procs would move a host process in, and delete would
    /// then kill it; cgroup.kill, cgroup.freeze, cgroup.type,
    /// cgroup.subtree_control).
    pub(super) fn unified(
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
                "invalid configuration: cgroup v2 keys need a cgroup v2 hierarchy; this host mounts only cgroup v1",
            ));
        };
        // Hybrid: the v2 hierarchy holds no controller v1 has mounted, so
        // most keys cannot exist there; runc refuses them all as an
        // invalid configuration, and scripts match on those words.
        let hybrid = self.cg.dirs.iter().any(|d| *d != dir);
        for k in keys {
            let field = format!("unified.{k:?}");
            if k.is_empty() || k.contains('/') || k.starts_with('.') || !k.contains('.') {
                return Err(res_err(field, "not a cgroup v2 control file name"));
            }
            if k.starts_with("cgroup.") && !CORE_LIMITS.contains(&k.as_str()) {
                return Err(res_err(
                    field,
                    "an interface file of the cgroup core, not a resource: it would move, kill or freeze processes or change the cgroup's type; only cgroup.max.descendants and cgroup.max.depth are limits",
                ));
            }
            let f = self.file(&dir, k, &field).map_err(|_| {
                let why = if hybrid {
                    "invalid configuration: on this hybrid host the cgroup v2 hierarchy has no such file (its controller is mounted as cgroup v1)"
                } else {
                    "unknown file, or its controller is not enabled for the container's cgroup"
                };
                res_err(
                    &field,
                    format!("{} does not exist ({why})", dir.join(k).display()),
                )
            })?;
            self.push(&field, f, u[k].clone());
        }
        Ok(())
    }

    pub(super) fn network(&mut self, n: &LinuxNetwork) -> Result<(), CgroupError> {
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
        Ok(())
    }

    pub(super) fn rdma(&mut self, rdma: &HashMap<String, LinuxRdma>) -> Result<(), CgroupError> {
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
        Ok(())
    }
}
