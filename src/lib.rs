//! capsa: an OCI container runtime (a drop-in for runc and crun), as a
//! library. The `capsa` binary is a thin command-line front end over this
//! crate's public API, and uses nothing else of it.
//!
//! An engine embeds it to create and run containers from runtime-spec
//! configurations ([`oci_spec::runtime::Spec`], from a bundle's
//! `config.json` or built in memory) without spawning a runtime binary per
//! operation. State lives under a root directory shared with the `capsa`
//! command (`capsa --root DIR list` shows the engine's containers).
//!
//! # Requirements
//!
//! - Linux with pidfds (5.3; `waitid(P_PIDFD)`: 5.4) and, to run as
//!   shipped, root (or a rootless set-up, see [`Runtime::with_rootless`]).
//! - **Call [`run_if_asked`] first thing in `main`.** Every workload is
//!   exec'd through a read-only copy of the running executable (the
//!   CVE-2019-5736 defence), which therefore runs your `main` inside the
//!   container: this call finishes that exec there and returns at once
//!   everywhere else. A test binary with libtest's `main` cannot do this:
//!   such tests need `harness = false` (see capsa's tests/api.rs).
//!
//! # A worked example
//!
//! Create a container from a spec built in code, get its output through a
//! pipe, wait for its exit status, delete it:
//!
//! ```no_run
//! use std::io::Read;
//! use capsa::{CreateOptions, Error, ExitStatus, Runtime, Stdio};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     capsa::run_if_asked(); // always first
//!
//!     // runc's default spec (`capsa spec`), changed in code.
//!     let mut spec = capsa::default_spec(false, 0, 0)?;
//!     let mut process = spec.process().clone().unwrap_or_default();
//!     process.set_terminal(Some(false));
//!     process.set_args(Some(vec!["echo".into(), "hello".into()]));
//!     spec.set_process(Some(process));
//!
//!     let rt = Runtime::new("/run/my-engine");
//!     // No bundle directory, no config.json: a spec and a root filesystem.
//!     let mut opts = CreateOptions::with_spec(spec, "/var/lib/my-engine/busybox");
//!     opts.stdout = Stdio::Piped;
//!     let mut c = match rt.create("hello", &opts) {
//!         Ok(c) => c,
//!         Err(Error::InvalidConfig { field, message }) => {
//!             eprintln!("fix {field}: {message}");
//!             return Ok(());
//!         }
//!         Err(e) => return Err(e.into()),
//!     };
//!     let mut out = c.take_stdout().expect("piped");
//!     c.start()?;
//!     let mut text = String::new();
//!     out.read_to_string(&mut text)?;
//!     assert_eq!(text, "hello\n");
//!     assert_eq!(c.wait()?, ExitStatus::Exited(0));
//!     c.delete(false)?;
//!     Ok(())
//! }
//! ```
//!
//! The repository's `examples/` hold two complete programs: `engine.rs`
//! (several containers at once from a threaded program, output streamed,
//! exits waited for, everything cleaned up) and `spec_in_code.rs` (a Spec
//! made with oci-spec's builders).
//!
//! # The API
//!
//! - [`Runtime`]: a state root and its settings ([`CgroupManager`],
//!   rootless), with the runtime verbs: `create`, `start`, `run`, `exec` /
//!   `exec_process`, `kill`, `delete`, `pause`, `resume`, `update`, `state`,
//!   `list`, `ps` / `pids`, `events`, `checkpoint`, `restore`. Each takes
//!   the container id; each works with the `capsa` command (and other
//!   engines) on the same root at the same time: a lock per container,
//!   state written atomically.
//! - [`Container`] (from `create`) and [`Process`] (from `exec_process`):
//!   handles holding a pidfd, to [`wait`](Container::wait) for the exit
//!   status from any thread, and the caller's ends of the [`Stdio::Piped`]
//!   streams.
//! - [`CreateOptions`], [`ExecOptions`], [`UpdateFlags`],
//!   [`CheckpointOptions`] / [`RestoreOptions`]: runc's flags, plus what
//!   only a library caller can give (a [`Spec`](oci_spec::runtime::Spec) in
//!   memory, the [`Stdio`] streams).
//! - [`Events`]: a container's stats and OOM events, as an iterator.
//! - [`Error`]: one enum to match on ([`Error::NotFound`],
//!   [`Error::AlreadyExists`], [`Error::InvalidConfig`] naming the field,
//!   [`Error::NotRunning`], [`Error::WrongState`], ...), whose `Display` is
//!   the text the `capsa` command prints (runc's, where runc has one).
//! - Functions: [`run_if_asked`], [`default_spec`], [`parse_signal`],
//!   [`parse_duration`], [`features`], [`default_root`],
//!   [`detect_rootless`], [`reserve_preserved_fds`].
//!
//! # Threads, children and signals
//!
//! [`Runtime`] is `Clone + Send + Sync`; [`Container`] and [`Process`] are
//! `Send + Sync`. Waiting, reading pipes, `kill`, `state`, `delete`,
//! `events` may run on any thread at any time.
//!
//! The container's init and exec'd processes are children of the calling
//! process. Their exit status belongs to whoever reaps them: do not set
//! `SIGCHLD` to `SIG_IGN` and do not reap with `waitpid(-1)` elsewhere in
//! the program, or [`Container::wait`] returns [`ExitStatus::Unknown`]
//! (see [`Container`]). Until you reap an exited init it is a zombie
//! (`state` says stopped); [`Container::delete`] works either way.
//!
//! [`Runtime::run`] and [`Runtime::exec`] in the foreground behave as the
//! `capsa` command does (every signal forwarded to the container, any child
//! reaped): they are for single-threaded programs. Use `create` + `start` +
//! `wait` and [`Runtime::exec_process`] instead.
//!
//! Creating and exec'ing are safe from any thread. A clone of a
//! multi-threaded process could deadlock on a lock another thread held
//! (the allocator's), so when the calling process has more than one thread
//! capsa starts this executable afresh as a single-threaded helper
//! ([`run_if_asked`] serves it) which makes the clone, with the init still
//! the caller's child; a single-threaded caller clones directly.
//!
//! # Stability
//!
//! Everything the crate root exports is the API; the option structs and
//! enums are `#[non_exhaustive]`, so fields and variants can be added in a
//! minor release. The hidden `__private` module is capsa's own test
//! plumbing, with no stability promise at all.

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
pub use state::{OCI_VERSION, Status, rfc3339_now};

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
