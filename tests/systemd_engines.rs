//! The engines with their systemd cgroup driver, on the runtime under test, against a real
//! systemd (issue 12): Docker with `native.cgroupdriver=systemd` side by side with runc,
//! containerd 1.6 with `SystemdCgroup = true` through the CRI the way kubelet with
//! `cgroupDriver: systemd` drives it (kubepods pod slices), and `ctr run
//! --runc-systemd-cgroup`. (podman with `cgroup_manager = "systemd"` is in
//! systemd_cgroup.rs.) Runs only in the systemd VM lane, its own boot per mode, apart
//! from the driver's tests (the daemons under TCG would slow those past their limits):
//!   CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$PWD/scripts/vm-run-systemd.sh $PWD" \
//!     cargo test --test systemd_engines
//! (and with VM_CGROUP_MODE=hybrid for systemd on cgroup v1). Skips outside a
//! systemd-booted system with a system bus.

mod common;
use common::*;

#[path = "systemd/sd.rs"]
mod sd;
use sd::*;

#[path = "engines/mod.rs"]
mod engines;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "systemd/docker.rs"]
mod docker;

#[path = "systemd/containerd.rs"]
mod containerd;
