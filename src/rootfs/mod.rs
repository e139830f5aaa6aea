//! The container's filesystem view, built inside the init's new mount
//! namespace: propagation, `mounts`, devices and /dev links, pivot_root (or
//! MS_MOVE + chroot with --no-pivot), then masked/readonly paths and a
//! read-only root.
//!
//! INTERFACE OWNED BY THE ROOTFS WORK: `setup` and `finish` are called by
//! `process::init` in this order: setup -> (console) -> finish.

use std::path::Path;

use oci_spec::runtime::Spec;

use crate::sys::SysError;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("{field}: {msg}")]
    Config { field: String, msg: String },
}

/// What the rootfs steps need besides the spec.
pub struct RootfsOptions<'a> {
    pub spec: &'a Spec,
    /// Absolute, canonical host path of the container's root filesystem.
    pub rootfs: &'a Path,
    /// --no-pivot: MS_MOVE the rootfs onto / and chroot instead of pivot_root.
    pub no_pivot: bool,
    /// The init is in a new user namespace: devices are bind-mounted from
    /// the host instead of mknod'ed.
    pub userns: bool,
}

/// Everything up to and including the root switch. On return the process's
/// root and cwd are the container's "/".
pub fn setup(_opts: &RootfsOptions) -> Result<(), RootfsError> {
    Ok(())
}

/// After the console is in place: maskedPaths, readonlyPaths, root.readonly.
pub fn finish(_spec: &Spec) -> Result<(), RootfsError> {
    Ok(())
}
