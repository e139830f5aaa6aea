//! tests/host_safety.rs again in the cgroup v2 VM lane (scripts/test.sh
//! runs tests/cgroups_*.rs there only; host_safety.rs itself runs on the
//! host's v1 or hybrid cgroups).

#[path = "host_safety.rs"]
mod host_safety;
