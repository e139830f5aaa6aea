//! The crate's error: one variant per module error, and the exit code the
//! binary turns it into.

use crate::bundle::BundleError;
use crate::cgroups::CgroupError;
use crate::console::ConsoleError;
use crate::process::ProcessError;
use crate::state::StateError;
use crate::sys::SysError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Bundle(#[from] BundleError),
    #[error("{0}")]
    Cgroup(#[from] CgroupError),
    #[error("{0}")]
    Console(#[from] ConsoleError),
    #[error("{0}")]
    Process(#[from] ProcessError),
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("{0}")]
    Rootless(#[from] crate::rootless::RootlessError),
    /// A lifecycle rule, in runc's words (e.g. "container not running").
    #[error("{0}")]
    Lifecycle(String),
    /// A command-line value that is not acceptable.
    #[error("{0}")]
    Usage(String),
    /// A runc feature capsa does not implement (yet): refused, never ignored.
    #[error("{0} is not supported by capsa")]
    Unsupported(String),
    /// Creating failed, and so did part of the clean-up: both are reported.
    #[error("{primary} (and cleaning up failed: {cleanup})")]
    WithCleanup {
        primary: Box<Error>,
        cleanup: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The binary's exit status for this error (runc exits 1 on any error).
    pub fn exit_code(&self) -> i32 {
        1
    }
}
