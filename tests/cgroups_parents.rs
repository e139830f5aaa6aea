//! tests/cgroup_parents.rs again in the cgroup v2 VM lane (scripts/test.sh runs
//! tests/cgroups_*.rs there only).

#[path = "cgroup_parents.rs"]
mod cgroup_parents;
