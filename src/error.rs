//! The crate's internal error: one variant per module error. The public
//! API turns it into `crate::api::Error` (same text, classified).

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
    /// The operation needs a running container, and it has stopped (e.g.
    /// "container not running").
    #[error("{0}")]
    NotRunning(String),
    /// The container's state does not allow the operation (e.g. "cannot
    /// start an already running container").
    #[error("{0}")]
    WrongState(String),
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
