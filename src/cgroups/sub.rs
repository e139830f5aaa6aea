//! `exec --cgroup`: run the new process in an existing sub-cgroup of the
//! container's cgroup, with runc's syntax and rules:
//! - `--cgroup PATH` (given once): PATH below the container's leaf in every
//!   hierarchy;
//! - `--cgroup CTRL[,CTRL...]:PATH` (repeatable, each controller once): PATH
//!   below the leaf of the v1 hierarchies with those controllers; the others
//!   keep the container's leaf. A pure cgroup v2 host has no controller
//!   hierarchies, so a prefix there is refused.
//!
//! PATH is relative to the container's cgroup and must exist (like runc,
//! capsa does not create it). It cannot climb out: `..` is refused.

use std::path::{Component, Path, PathBuf};

use super::hierarchy::{self, Kind};
use super::{Cgroup, CgroupError};

/// Parsed `--cgroup` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubCgroups {
    /// The path for every hierarchy (no controller prefix).
    all: Option<PathBuf>,
    /// (controller, path) pairs.
    by_controller: Vec<(String, PathBuf)>,
}

fn invalid(arg: &str, why: &str) -> CgroupError {
    CgroupError::Sub(format!("invalid --cgroup argument {arg:?}: {why}"))
}

/// PATH relative to the container's cgroup, `.` components dropped; empty
/// (`/`, `""`, `.`) is the container's cgroup itself, as runc takes it.
fn relative(arg: &str, path: &str) -> Result<PathBuf, CgroupError> {
    let mut out = PathBuf::new();
    for c in Path::new(path.trim_start_matches('/')).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => {
                // runc's words ("bad sub cgroup path"), which callers match.
                return Err(invalid(
                    arg,
                    "bad sub cgroup path: the path must stay below the container's cgroup",
                ));
            }
        }
    }
    Ok(out)
}

impl SubCgroups {
    pub fn parse(args: &[String]) -> Result<SubCgroups, CgroupError> {
        let mut out = SubCgroups::default();
        for arg in args {
            match arg.split_once(':') {
                None => {
                    if args.len() != 1 {
                        return Err(invalid(arg, "missing <controller>: prefix"));
                    }
                    out.all = Some(relative(arg, arg)?);
                }
                Some((ctrls, path)) => {
                    if path.contains(':') {
                        return Err(invalid(arg, "more than one ':'"));
                    }
                    let path = relative(arg, path)?;
                    for c in ctrls.split(',') {
                        if c.is_empty() {
                            return Err(invalid(arg, "empty <controller> prefix"));
                        }
                        if out.by_controller.iter().any(|(have, _)| have == c) {
                            return Err(invalid(
                                arg,
                                &format!("controller {c} given more than once"),
                            ));
                        }
                        out.by_controller.push((c.to_owned(), path.clone()));
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.by_controller.is_empty()
    }
}

impl Cgroup {
    /// The cgroup an exec'd process joins: `sub` applied to the container's
    /// leaves. Only the leaves change; nothing is created or removed.
    pub fn sub(&self, sub: &SubCgroups) -> Result<Cgroup, CgroupError> {
        if sub.is_empty() {
            return Ok(self.clone());
        }
        let hosts = hierarchy::host()?;
        let has_v1 = hosts.iter().any(|h| matches!(h.kind, Kind::V1 { .. }));
        if !has_v1 && let Some((c, _)) = sub.by_controller.first() {
            return Err(CgroupError::Sub(format!(
                "invalid --cgroup argument: a controller prefix ({c}:) needs cgroup v1; this host has only cgroup v2"
            )));
        }
        // A controller no hierarchy has would silently join nothing.
        for (c, _) in &sub.by_controller {
            let known = hosts.iter().any(|h| match &h.kind {
                Kind::V1 { controllers, .. } => controllers.iter().any(|have| have == c),
                _ => false,
            });
            if !known {
                return Err(CgroupError::Sub(format!(
                    "invalid --cgroup argument: unknown controller {c} (no cgroup v1 hierarchy has it)"
                )));
            }
        }
        let mut out = Cgroup {
            dirs: Vec::with_capacity(self.dirs.len()),
            created: Vec::new(),
            unified: None,
            pidns: self.pidns,
            // The exec joins the unit's cgroup; it has no unit of its own.
            systemd: None,
        };
        for dir in &self.dirs {
            let h = hosts.iter().find(|h| dir.starts_with(&h.mount));
            let keyed = match h.map(|h| &h.kind) {
                Some(Kind::V1 { controllers, .. }) => sub
                    .by_controller
                    .iter()
                    .find(|(c, _)| controllers.iter().any(|have| have == c))
                    .map(|(_, p)| p),
                _ => None,
            };
            let leaf = match keyed.or(sub.all.as_ref()) {
                Some(p) if !p.as_os_str().is_empty() => dir.join(p),
                _ => dir.clone(),
            };
            if !leaf.is_dir() {
                // runc's words (" adding pid ... no such file or directory").
                return Err(CgroupError::Sub(format!(
                    "exec --cgroup: adding pid to {}: no such file or directory (the sub-cgroup must be created first)",
                    leaf.display()
                )));
            }
            if self.unified.as_ref() == Some(dir) {
                out.unified = Some(leaf.clone());
            }
            out.dirs.push(leaf);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn runc_syntax() {
        let s = SubCgroups::parse(&args(&["sub"])).unwrap();
        assert_eq!(s.all, Some(PathBuf::from("sub")));
        let s = SubCgroups::parse(&args(&["cpu,memory:a/b", "pids:/c"])).unwrap();
        assert_eq!(s.by_controller.len(), 3);
        assert_eq!(s.by_controller[2], ("pids".into(), PathBuf::from("c")));
        for bad in [
            &["a", "b"][..],
            &["memory:x", "plain"][..],
            &[":x"][..],
            &["memory:x", "memory:y"][..],
            &["a:b:c"][..],
            &["../escape"][..],
            &["memory:a/../../b"][..],
        ] {
            assert!(SubCgroups::parse(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_containers_own_cgroup() {
        // runc runs the process in the container's cgroup for all of these.
        for own in ["/", "", ".", "//", "/.", "./"] {
            let s = SubCgroups::parse(&args(&[own])).unwrap();
            assert_eq!(s.all, Some(PathBuf::new()), "{own:?}");
        }
        let s = SubCgroups::parse(&args(&["memory:/", "pids:"])).unwrap();
        assert_eq!(s.by_controller[0], ("memory".into(), PathBuf::new()));
        assert_eq!(s.by_controller[1], ("pids".into(), PathBuf::new()));
        let s = SubCgroups::parse(&args(&["./a/./b/"])).unwrap();
        assert_eq!(s.all, Some(PathBuf::from("a/b")));
    }
}
