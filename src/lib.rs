//! capsa: an OCI container runtime, as a library. The `capsa` binary is a thin
//! command-line front end over [`Runtime`].

pub mod bundle;
pub mod cgroups;
pub mod console;
pub mod error;
pub mod log;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod security;
pub mod state;
pub mod sys;


pub use oci_spec;
