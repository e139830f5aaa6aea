//! Placing the container in its cgroup(s) on v1, v2 and hybrid hosts, and
//! removing them again. Limits (linux.resources) come in a later step.
//!
//! INTERFACE OWNED BY THE CGROUPS WORK.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::sys::SysError;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("linux.cgroupsPath: {0}")]
    Path(String),
}

/// The cgroup directories of one container; stored in its state so that
/// `kill --all` / `delete` find them without re-deriving anything.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cgroup {
    /// The container's leaf directory in every hierarchy it was placed in.
    pub dirs: Vec<PathBuf>,
    /// Every directory capsa itself created, parents before children; only
    /// these are removed on delete.
    pub created: Vec<PathBuf>,
    /// The leaf directory on the unified (cgroup2) hierarchy, if any.
    pub unified: Option<PathBuf>,
}

impl Cgroup {
    /// Create (or reuse) the container's cgroup at `cgroups_path`
    /// (linux.cgroupsPath; None = default for `id`) in every hierarchy.
    pub fn create(_cgroups_path: Option<&str>, _id: &str) -> Result<Cgroup, CgroupError> {
        Ok(Cgroup::default())
    }

    /// On a pure cgroup v2 host: an O_PATH|O_DIRECTORY fd of the leaf for
    /// clone3(CLONE_INTO_CGROUP). None on v1/hybrid hosts.
    pub fn clone_into_fd(&self) -> Option<OwnedFd> {
        None
    }

    /// Move `pid` into the leaf of every hierarchy (skipping the unified one
    /// if `in_unified`: it was placed there by CLONE_INTO_CGROUP).
    pub fn add_pid(&self, _pid: i32, _in_unified: bool) -> Result<(), CgroupError> {
        Ok(())
    }

    /// Host pids of every process in the container's cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        Ok(Vec::new())
    }

    /// Kill any process still inside, then remove the directories capsa
    /// created, deepest first. Succeeds if they are already gone.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        Ok(())
    }
}
