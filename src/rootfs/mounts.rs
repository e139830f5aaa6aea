//! One `mounts[]` entry at a time: resolve the destination inside the
//! rootfs, create it, mount onto its fd, remount bind mounts with their
//! flags, then apply propagation options.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use nix::sys::statfs::{PROC_SUPER_MAGIC, fstatfs};
use oci_spec::runtime::Mount;

use super::copyup::copy_up;
use super::idmap::{self, IdmappedTrees};
use super::newmount::{attach, set_attr};
use super::options::{
    MountOptions, bind_remount_flags, clean_container_path, locked_flags, parse_mount_options,
    proc_destination_allowed,
};
use super::paths::{RootDir, proc_fd};
use super::{RootfsError, cgroupfs};
use crate::security::lsm::label_mount_data;
use crate::sys::{Ctx, SysError, SysResult};

/// What every mount step needs to know about the container.
pub struct MountCtx<'a> {
    pub root: &'a RootDir,
    /// In a user namespace (new or joined).
    pub userns: bool,
    pub cgroupns: bool,
    /// Mount a read-only /dev read-write: devices are created in it first
    /// (the caller remounts it read-only afterwards, as runc).
    pub defer_dev_ro: bool,
    /// SELinux context for new file systems (None without SELinux).
    pub mount_label: Option<&'a str>,
    /// Id-mapped bind mounts, made by the parent (see `idmap`).
    pub idmapped: &'a IdmappedTrees,
}

/// mount(2) onto an fd obtained by safe resolution; errors name `dest`,
/// the container path, not the /proc/self/fd alias.
pub fn mount_at(
    source: Option<&Path>,
    target: &OwnedFd,
    dest: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: &str,
) -> SysResult<()> {
    let data = (!data.is_empty()).then_some(data);
    nix::mount::mount(source, &proc_fd(target), fstype, flags, data)
        .map_err(|e| SysError::at("mount", dest, e))
}

/// The checks on `mounts[index]` that need no system access. `userns`: the
/// container has a user namespace (new or joined).
pub fn check_entry(m: &Mount, index: usize, userns: bool) -> Result<(), RootfsError> {
    let typ = m.typ().as_deref().filter(|t| !t.is_empty());
    let opts = parse_mount_options(typ, m.options().as_deref().unwrap_or(&[]));
    check_parsed(m, &opts, index, userns)
}

/// `check_entry` for an entry whose options are parsed already.
fn check_parsed(
    m: &Mount,
    opts: &MountOptions,
    index: usize,
    userns: bool,
) -> Result<(), RootfsError> {
    let field = format!("mounts[{index}]");
    let dest = clean_container_path(m.destination());
    let typ = m.typ().as_deref().filter(|t| !t.is_empty());
    idmap::check(m, opts, &field, userns)?;
    if opts.is_bind() {
        if m.source().as_ref().is_none_or(|s| s.as_os_str().is_empty()) {
            return Err(RootfsError::Config {
                field: format!("{field}.source"),
                msg: "a bind mount needs a source".into(),
            });
        }
    } else if !matches!(typ, Some("cgroup") | Some("cgroup2"))
        && !proc_destination_allowed(&dest, typ == Some("proc"))
    {
        // (a bind's source is only known to be a procfs at mount time)
        return Err(proc_refused(&field, &dest));
    }
    Ok(())
}

/// Mount `mounts[index]`.
pub fn mount_entry(ctx: &MountCtx, m: &Mount, index: usize) -> Result<(), RootfsError> {
    mount_entry_inner(ctx, m, index).map_err(|e| match e {
        // A failed syscall, with runc's words in front (suites match them).
        RootfsError::At { field, source } => RootfsError::At {
            field: format!(
                "{field}: error mounting {:?} to rootfs at {:?}",
                m.typ().as_deref().unwrap_or_default(),
                m.destination().display().to_string()
            ),
            source,
        },
        e => e,
    })
}

fn mount_entry_inner(ctx: &MountCtx, m: &Mount, index: usize) -> Result<(), RootfsError> {
    let field = format!("mounts[{index}]");
    let at = RootfsError::at(&field);
    let dest = clean_container_path(m.destination());
    let typ = m.typ().as_deref().filter(|t| !t.is_empty());
    let mut opts = parse_mount_options(typ, m.options().as_deref().unwrap_or(&[]));
    check_parsed(m, &opts, index, ctx.userns)?;
    if ctx.defer_dev_ro && dest == Path::new("/dev") && !opts.is_bind() {
        opts.flags.remove(MsFlags::MS_RDONLY);
    }

    if let Some(tree) = ctx.idmapped.get(index) {
        attach_tree(ctx, tree, &dest, &opts, &field)?;
    } else if opts.is_bind() {
        if idmap::idmap_of(m, &opts).is_some() {
            return Err(RootfsError::Config {
                field,
                msg: "id-mapped mount was not prepared".into(),
            });
        }
        let src = m.source().as_deref().ok_or_else(|| RootfsError::Config {
            field: format!("{field}.source"),
            msg: "a bind mount needs a source".into(),
        })?;
        bind_mount(ctx, src, &dest, &opts, &field)?;
    } else {
        match typ {
            Some("cgroup") | Some("cgroup2") => {
                cgroupfs::mount_cgroup(ctx, m, &dest, &opts, &field)?
            }
            _ => {
                let source_is_proc = typ == Some("proc");
                if !proc_destination_allowed(&dest, source_is_proc) {
                    return Err(proc_refused(&field, &dest));
                }
                if let Some(t @ ("proc" | "sysfs")) = typ {
                    refuse_non_directory(ctx.root, &dest, t, &field)?;
                }
                // Before mkdir_all: only a directory the image had gives
                // its mode to a tmpfs (a new one keeps the kernel's 1777).
                let existing_tmpfs_dir = match typ {
                    Some("tmpfs") => ctx.root.open_path(&dest).ok(),
                    _ => None,
                };
                let target = ctx.root.mkdir_all(&dest).map_err(at)?;
                refuse_resolved_proc(&target, &dest, &field)?;
                let fstype = typ.unwrap_or("none");
                let source = m.source().clone().unwrap_or_else(|| PathBuf::from(fstype));
                if let Some(dir) = &existing_tmpfs_dir {
                    opts.data = tmpfs_mode_from(dir, &opts.data).map_err(at)?;
                }
                opts.data = label_mount_data(&opts.data, fstype, ctx.mount_label);
                if opts.copy_up && fstype == "tmpfs" {
                    return tmpfs_copy_up(ctx, &source, &target, &dest, &opts).map_err(at);
                }
                match mount_at(
                    Some(&source),
                    &target,
                    &dest,
                    Some(fstype),
                    opts.flags,
                    &opts.data,
                ) {
                    // sysfs needs a net namespace owned by our user
                    // namespace; without one runc binds the host's /sys.
                    Err(e) if typ == Some("sysfs") && e.errno == Errno::EPERM && ctx.userns => {
                        let rbind = MountOptions {
                            flags: opts.flags | MsFlags::MS_BIND | MsFlags::MS_REC,
                            ..opts.clone()
                        };
                        bind_mount(ctx, Path::new("/sys"), &dest, &rbind, &field)?;
                        return Ok(());
                    }
                    r => r.map_err(at)?,
                }
            }
        }
    }
    finish_entry(ctx, &dest, &opts).map_err(at)
}

/// A tmpfs over an existing directory keeps that directory's mode, set-id
/// and sticky bits included (runc >= 1.2): its `mode=` goes first, so one
/// given in the options still wins.
fn tmpfs_mode_from(dir: &OwnedFd, data: &str) -> SysResult<String> {
    let st =
        nix::sys::stat::fstat(dir).map_err(|e| SysError::new("fstat (tmpfs destination)", e))?;
    let mode = format!("mode={:04o}", st.st_mode & 0o7777);
    Ok(if data.is_empty() {
        mode
    } else {
        format!("{mode},{data}")
    })
}

/// After the mount itself: propagation, then recursive attributes.
fn finish_entry(ctx: &MountCtx, dest: &Path, opts: &MountOptions) -> SysResult<()> {
    apply_propagation(ctx.root, dest, &opts.propagation)?;
    if opts.rec_set != 0 || opts.rec_clr != 0 {
        let fd = ctx.root.open_path(dest)?;
        set_attr(&fd, opts.rec_set, opts.rec_clr, true, dest)?;
    }
    Ok(())
}

/// A tmpfs that starts with the destination's previous contents. A
/// read-only one is filled first, then made read-only.
fn tmpfs_copy_up(
    ctx: &MountCtx,
    source: &Path,
    before: &OwnedFd,
    dest: &Path,
    opts: &MountOptions,
) -> SysResult<()> {
    let ro = opts.flags.contains(MsFlags::MS_RDONLY);
    let flags = opts.flags - MsFlags::MS_RDONLY;
    mount_at(Some(source), before, dest, Some("tmpfs"), flags, &opts.data)?;
    let after = ctx.root.open_path(dest)?;
    copy_up(before, &after, dest)?;
    if ro {
        mount_at(
            None,
            &after,
            dest,
            None,
            flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            "",
        )?;
    }
    finish_entry(ctx, dest, opts)
}

/// proc and sysfs go on a plain directory, never through a final
/// symlink (runc, CVE-2019-19921): the kernel files that later steps write
/// (sysctl, LSM attributes) must be where /proc and /sys really are.
/// Refused in runc's words, which suites match.
fn refuse_non_directory(
    root: &RootDir,
    dest: &Path,
    fstype: &str,
    field: &str,
) -> Result<(), RootfsError> {
    let fd = match root.open_raw(dest, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(RootfsError::At {
                field: field.to_string(),
                source: SysError::at("openat2", dest, e),
            });
        }
    };
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| RootfsError::At {
        field: field.to_string(),
        source: SysError::at("stat", dest, e),
    })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(RootfsError::Config {
            field: format!("{field}.destination"),
            msg: format!(
                "error mounting {fstype:?} to rootfs at {:?}: filesystem {fstype:?} must be mounted on ordinary directory",
                dest.display().to_string()
            ),
        });
    }
    Ok(())
}

/// A destination that config.json puts outside /proc must not have led
/// into a procfs through a symlink in the image (runc checks the resolved
/// path too): a mount there could hide a kernel file the container must
/// not reach, or redirect what is written to one. Destinations under /proc
/// are checked on their literal path (`proc_destination_allowed`).
fn refuse_resolved_proc(target: &OwnedFd, dest: &Path, field: &str) -> Result<(), RootfsError> {
    if dest.starts_with("/proc") {
        return Ok(());
    }
    let on_proc = fstatfs(target.as_fd())
        .map_err(|e| RootfsError::At {
            field: field.to_string(),
            source: SysError::at("statfs", dest, e),
        })?
        .filesystem_type()
        == PROC_SUPER_MAGIC;
    if on_proc {
        return Err(RootfsError::Config {
            field: format!("{field}.destination"),
            msg: format!(
                "{} leads into /proc through a symlink in the root filesystem",
                dest.display()
            ),
        });
    }
    Ok(())
}

fn proc_refused(field: &str, dest: &Path) -> RootfsError {
    RootfsError::Config {
        field: format!("{field}.destination"),
        msg: format!("{} cannot be mounted: it is inside /proc", dest.display()),
    }
}

/// Bind `src` (a host path; relative means relative to the cwd, which is
/// the bundle) onto `dest`, then remount it with the asked flags.
pub fn bind_mount(
    ctx: &MountCtx,
    src: &Path,
    dest: &Path,
    opts: &MountOptions,
    field: &str,
) -> Result<(), RootfsError> {
    // The source is the host's business: follow its symlinks (runc does),
    // but pin what we found with an fd and mount from that.
    let src_fd = nix::fcntl::open(src, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .ctx_at("open bind source", src)
        .map_err(|e| RootfsError::At {
            field: field.to_string(),
            source: e,
        })?;
    place_bind(ctx, &src_fd, src, false, dest, opts, field)
}

/// Attach an id-mapped tree the parent made onto `dest`, then apply the
/// entry's flags like a bind mount's.
fn attach_tree(
    ctx: &MountCtx,
    tree: &OwnedFd,
    dest: &Path,
    opts: &MountOptions,
    field: &str,
) -> Result<(), RootfsError> {
    let name = Path::new("<id-mapped source>");
    place_bind(ctx, tree, name, true, dest, opts, field)
}

/// Put `src_fd` on `dest` (a directory or a file like the source, created
/// if missing): bind it, or attach it if it is a detached tree; then
/// remount it with the asked flags. Binds of procfs follow the /proc rule.
fn place_bind(
    ctx: &MountCtx,
    src_fd: &OwnedFd,
    src: &Path,
    detached: bool,
    dest: &Path,
    opts: &MountOptions,
    field: &str,
) -> Result<(), RootfsError> {
    let at = RootfsError::at(field);
    let st = nix::sys::stat::fstat(src_fd.as_fd())
        .ctx_at("stat", src)
        .map_err(at)?;
    let src_is_proc =
        fstatfs(src_fd.as_fd()).is_ok_and(|s| s.filesystem_type() == PROC_SUPER_MAGIC);
    if !proc_destination_allowed(dest, src_is_proc) {
        return Err(proc_refused(field, dest));
    }
    let target = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        ctx.root.mkdir_all(dest)
    } else {
        ctx.root.create_file(dest, 0o644)
    }
    .map_err(at)?;
    refuse_resolved_proc(&target, dest, field)?;
    if detached {
        attach(src_fd, &target, dest).map_err(at)?;
    } else {
        let flags = opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
        mount_at(Some(&proc_fd(src_fd)), &target, dest, None, flags, "").map_err(at)?;
    }
    if ctx.userns && !opts.cleared.is_empty() {
        refuse_clearing_locked(ctx, dest, opts.cleared, field)?;
    }
    if opts.bind_needs_remount() {
        remount_bind(ctx, dest, opts.flags).map_err(at)?;
    }
    Ok(())
}

/// runc's rule: in a user namespace the kernel locks the source mount's
/// ro/nosuid/nodev/noexec; an option that asks to clear one of them
/// ("rw" of a read-only source) cannot be honoured, and is an error rather
/// than a mount that silently differs from the request.
fn refuse_clearing_locked(
    ctx: &MountCtx,
    dest: &Path,
    cleared: MsFlags,
    field: &str,
) -> Result<(), RootfsError> {
    let at = RootfsError::at(field);
    let fd = ctx.root.open_path(dest).map_err(at)?;
    let vfs = nix::sys::statvfs::fstatvfs(fd.as_fd())
        .ctx_at("statvfs", dest)
        .map_err(RootfsError::at(field))?;
    let conflict = locked_flags(vfs.flags().bits()) & cleared;
    if conflict.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = [
        (MsFlags::MS_RDONLY, "rw (the source is read-only)"),
        (MsFlags::MS_NOSUID, "suid (the source is nosuid)"),
        (MsFlags::MS_NODEV, "dev (the source is nodev)"),
        (MsFlags::MS_NOEXEC, "exec (the source is noexec)"),
    ]
    .iter()
    .filter(|(f, _)| conflict.contains(*f))
    .map(|(_, n)| *n)
    .collect();
    Err(RootfsError::Config {
        field: format!("{field}.options"),
        msg: format!(
            "{}: the kernel locks these flags of a mount a user namespace inherits; they cannot be cleared there",
            names.join(", ")
        ),
    })
}

/// MS_REMOUNT a bind mount at `dest` with `flags`, keeping the flags the
/// kernel locked (user namespace) so it does not refuse with EPERM.
pub fn remount_bind(ctx: &MountCtx, dest: &Path, flags: MsFlags) -> SysResult<()> {
    // Re-resolve: the fd from before the mount points below the new mount.
    let fd = ctx.root.open_path(dest)?;
    let keep = if ctx.userns {
        let vfs = nix::sys::statvfs::fstatvfs(fd.as_fd()).ctx_at("statvfs", dest)?;
        locked_flags(vfs.flags().bits())
    } else {
        MsFlags::empty()
    };
    mount_at(None, &fd, dest, None, bind_remount_flags(flags, keep), "")
}

/// Propagation options, each its own mount(2) on the new mount.
pub fn apply_propagation(root: &RootDir, dest: &Path, props: &[MsFlags]) -> SysResult<()> {
    if props.is_empty() {
        return Ok(());
    }
    let fd = root.open_path(dest)?;
    for p in props {
        mount_at(None, &fd, dest, None, *p, "")?;
    }
    Ok(())
}
