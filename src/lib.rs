//! capsa: an OCI container runtime, as a library. The `capsa` binary is a thin
//! command-line front end over [`Runtime`].

#![deny(missing_docs)]

mod api;

pub(crate) mod bundle;
#[allow(missing_docs)] // reached only through the hidden __private
pub(crate) mod cgroups;
pub(crate) mod checkpoint;
#[allow(missing_docs)] // reached only through the hidden __private
pub(crate) mod console;
pub(crate) mod error;
#[allow(missing_docs)] // reached only through the hidden __private
pub(crate) mod fault;
pub(crate) mod features;
pub(crate) mod hooks;
pub(crate) mod inherit;
pub(crate) mod intelrdt;
pub(crate) mod limits;
mod mountinfo;
pub(crate) mod namespaces;
pub(crate) mod netdev;
pub(crate) mod process;
pub(crate) mod procfs;
pub(crate) mod rootfs;
pub(crate) mod rootless;
pub(crate) mod runtime;
#[allow(missing_docs)] // reached only through the hidden __private
pub(crate) mod security;
pub(crate) mod signals;
pub(crate) mod spec;
pub(crate) mod spec_compat;
pub(crate) mod state;
mod state_lock;
#[allow(missing_docs)] // reached only through the hidden __private
pub(crate) mod sys;

pub use api::{
    CgroupManager, Container, ContainerState, Error, ExitStatus, Process, Result, Runtime,
    SYSTEM_ROOT, Stdio, default_root, default_spec, default_spec_json, detect_rootless, features,
    parse_duration, parse_signal, reserve_preserved_fds, run_if_asked,
};
pub use checkpoint::{CheckpointOptions, CriuOptions, RestoreOptions};
pub use oci_spec;
pub use runtime::{CreateOptions, Event, EventKind, Events, ExecOptions, UpdateFlags};
pub use state::{OCI_VERSION, Status};

/// Not part of the API: the internals that capsa's own integration tests
/// (tests/console.rs, tests/dbus_client.rs, tests/seccomp_libseccomp.rs,
/// tests/cgroups_placement.rs, tests/faults.rs, tests/systemd_cgroup.rs)
/// drive directly, below what the public API exposes. Hidden from the
/// docs, with no stability promise of any kind; the `capsa` binary,
/// tests/api.rs and the examples do not use it (tests/api.rs checks).
#[doc(hidden)]
#[allow(missing_docs)]
pub mod __private {
    /// The console plumbing (tests/console.rs).
    pub mod console {
        pub use crate::console::{
            connect, fix_stdio_owner, recv_master, setup_in_container, socketpair, spawn_proxy,
        };
    }
    pub use crate::cgroups::systemd::{dbus, wire};
    pub use crate::cgroups::{Cgroup, freezer};
    pub use crate::fault::STEPS as FAULT_STEPS;
    pub use crate::security::seccomp::compile as seccomp_compile;
    pub use crate::sys::proc_start_time;
}
