//! capsa: an OCI container runtime, as a library. The `capsa` binary is a thin
//! command-line front end over [`Runtime`].

pub mod bundle;
pub mod cgroups;
pub mod checkpoint;
pub mod console;
pub mod error;
pub mod fault;
pub mod features;
pub mod hooks;
pub mod inherit;
pub mod intelrdt;
pub mod limits;
pub mod log;
mod mountinfo;
pub mod namespaces;
pub mod netdev;
pub mod process;
pub mod procfs;
pub mod rootfs;
pub mod rootless;
pub mod runtime;
pub mod security;
pub mod signals;
pub mod spec;
pub mod spec_compat;
pub mod state;
mod state_lock;
pub mod sys;

pub use error::{Error, Result};
pub use oci_spec;
pub use runtime::{CreateOptions, ExecOptions, Runtime};
