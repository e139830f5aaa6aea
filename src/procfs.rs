//! A procfs that is really the kernel's, for the runtime's writes to /proc
//! files (sysctl, oom_score_adj, LSM attributes, time offsets).
//!
//! A "/proc/..." path string is resolved in whatever mount namespace and
//! root we are in: the container's image, a mount from config.json or a
//! process in a joined mount namespace can have put a tmpfs, a symlink or a
//! bind mount of another file there, and a plain write would land on it
//! (runc CVE-2025-52881: sysctl and LSM writes redirected onto host files).
//! Here every write goes through a handle on a procfs root that nobody else
//! can have covered:
//!
//! 1. a private procfs instance (fsopen + fsmount): a detached mount that no
//!    path reaches, so nothing can be mounted on or inside it;
//! 2. else the "/proc" directory, which must be the root of a procfs (not a
//!    tmpfs or a bind of some procfs subdirectory put there).
//!
//! Files are then opened beneath that root with openat2 refusing magic links,
//! mount crossings and ".." escapes, and checked again with fstatfs.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, fstat};
use nix::sys::statfs::{PROC_SUPER_MAGIC, fstatfs};

use crate::rootfs::newmount::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, new_fs};
use crate::sys::{SysError, SysResult};

/// procfs's root directory inode (PROC_ROOT_INO in the kernel).
const PROC_ROOT_INO: u64 = 1;

/// An fd on the root of a verified procfs.
#[derive(Debug)]
pub struct ProcRoot {
    fd: OwnedFd,
}

fn display(rel: &str) -> PathBuf {
    Path::new("/proc").join(rel)
}

/// The fd is on a procfs (not a tmpfs or another file system placed there).
fn check_procfs(fd: &OwnedFd, path: &Path) -> SysResult<()> {
    let fs = fstatfs(fd.as_fd()).map_err(|e| SysError::at("fstatfs", path, e))?;
    if fs.filesystem_type() != PROC_SUPER_MAGIC {
        return Err(SysError::at("not on a procfs", path, Errno::EXDEV));
    }
    Ok(())
}

impl ProcRoot {
    /// A private procfs if the kernel lets us make one, else /proc; either
    /// way checked to be the root of a procfs.
    pub fn open() -> SysResult<ProcRoot> {
        let fd = match private_procfs() {
            Ok(fd) => fd,
            // EPERM: a user namespace without a fully visible /proc;
            // ENOSYS: a kernel before 5.2.
            Err(_) => open_proc_dir()?,
        };
        let root = Path::new("/proc");
        check_procfs(&fd, root)?;
        let st = fstat(fd.as_fd()).map_err(|e| SysError::at("stat", root, e))?;
        if st.st_ino != PROC_ROOT_INO || st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(SysError::at("not the root of a procfs", root, Errno::EXDEV));
        }
        Ok(ProcRoot { fd })
    }

    /// The container's own "/proc" (never a private instance: that would
    /// show what masked paths hide), checked to be the root of a procfs.
    /// For a process that others in the container may reach (see
    /// process/idle.rs).
    pub fn open_visible() -> SysResult<ProcRoot> {
        let fd = open_proc_dir()?;
        let root = Path::new("/proc");
        check_procfs(&fd, root)?;
        let st = fstat(fd.as_fd()).map_err(|e| SysError::at("stat", root, e))?;
        if st.st_ino != PROC_ROOT_INO || st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(SysError::at("not the root of a procfs", root, Errno::EXDEV));
        }
        Ok(ProcRoot { fd })
    }

    /// Reopen our own `fd` (e.g. an O_PATH one) with `flags` through
    /// "self/fd/N" beneath the root; the result must be the same file
    /// (a procfs path the container covered cannot swap it). Blocks as
    /// open(2) does (a FIFO waits for its other end).
    pub fn reopen(&self, fd: &OwnedFd, flags: OFlag) -> SysResult<OwnedFd> {
        let rel = format!("self/fd/{}", fd.as_raw_fd());
        let path = display(&rel);
        let flags = flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        let new = loop {
            match nix::fcntl::openat(self.fd.as_fd(), rel.as_str(), flags, Mode::empty()) {
                Err(Errno::EINTR) => continue,
                r => break r.map_err(|e| SysError::at("open", &path, e))?,
            }
        };
        let (a, b) = (
            fstat(new.as_fd()).map_err(|e| SysError::at("stat", &path, e))?,
            fstat(fd.as_fd()).map_err(|e| SysError::at("stat", &path, e))?,
        );
        if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
            return Err(SysError::at("not the same file", &path, Errno::EXDEV));
        }
        Ok(new)
    }

    /// The root's fd, for a caller that must keep it open.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// Open `rel` (e.g. "sys/net/ipv4/ip_forward", "self/oom_score_adj")
    /// beneath the root. Plain symlinks inside procfs ("self",
    /// "thread-self") are followed; magic links, ".." out of the root and
    /// mount points are refused.
    pub fn open_file(&self, rel: &str, flags: OFlag) -> SysResult<OwnedFd> {
        let path = display(rel);
        // openat2 refuses O_NOCTTY next to O_PATH.
        let extra = if flags.contains(OFlag::O_PATH) {
            OFlag::O_CLOEXEC
        } else {
            OFlag::O_CLOEXEC | OFlag::O_NOCTTY
        };
        let how = OpenHow::new().flags(flags | extra).resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
        let fd = loop {
            match openat2(self.fd.as_fd(), rel, how) {
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
                r => break r.map_err(|e| SysError::at("open", &path, e))?,
            }
        };
        check_procfs(&fd, &path)?;
        Ok(fd)
    }

    /// Write `data` to `rel` in one write(2), as procfs files expect.
    pub fn write(&self, rel: &str, data: &[u8]) -> SysResult<()> {
        let fd = self.open_file(rel, OFlag::O_WRONLY)?;
        let path = display(rel);
        loop {
            match nix::unistd::write(&fd, data) {
                Ok(n) if n == data.len() => return Ok(()),
                Ok(_) => return Err(SysError::at("short write", path, Errno::EIO)),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(SysError::at("write", path, e)),
            }
        }
    }

    /// Whether `rel` exists beneath the root.
    pub fn exists(&self, rel: &str) -> bool {
        self.open_file(rel, OFlag::O_PATH).is_ok()
    }
}

/// fsopen("proc") + fsmount: a procfs of our pid namespace, mounted nowhere.
fn private_procfs() -> SysResult<OwnedFd> {
    let attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    new_fs(c"proc", Some(c"proc"), false, attrs, Path::new("/proc"))
}

/// The "/proc" directory itself (not a symlink). Whatever is mounted
/// inside it is out of reach: lookups from this fd refuse mount crossings.
fn open_proc_dir() -> SysResult<OwnedFd> {
    let path = Path::new("/proc");
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SysError::at("open", path, e))
}

/// Check that "/proc/self/fd", which the mount code uses to name fds in
/// mount(2) paths, is the kernel's: on a procfs, and "/proc/self/fd/N"
/// reaching the very file `probe` refers to. Catches a /proc that is a
/// tmpfs or bind mount with look-alike symlinks (in a joined mount
/// namespace, say) before any mount goes through it.
pub fn check_self_fd(probe: &OwnedFd) -> SysResult<()> {
    let dir = Path::new("/proc/self/fd");
    let d = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| SysError::at("open", dir, e))?;
    check_procfs(&d, dir)?;
    let link = dir.join(probe.as_raw_fd().to_string());
    let via = nix::fcntl::open(
        &link,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| SysError::at("open", &link, e))?;
    let (a, b) = (
        fstat(via.as_fd()).map_err(|e| SysError::at("stat", &link, e))?,
        fstat(probe.as_fd()).map_err(|e| SysError::at("stat", &link, e))?,
    );
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
        return Err(SysError::at(
            "does not lead to the process's own fds",
            dir,
            Errno::EXDEV,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_refuses_escapes() {
        // Needs CAP_SYS_ADMIN for fsopen, else falls back to /proc.
        let p = ProcRoot::open().expect("procfs");
        assert!(p.exists("self/status"));
        assert!(p.exists("sys/kernel/ostype"));
        // ".." out of the root and absolute paths are refused.
        assert!(p.open_file("../etc/passwd", OFlag::O_RDONLY).is_err());
        assert!(p.open_file("/etc/passwd", OFlag::O_RDONLY).is_err());
        // Magic links are refused.
        assert!(p.open_file("self/exe", OFlag::O_RDONLY).is_err());
        assert!(p.open_file("self/root/etc", OFlag::O_PATH).is_err());
    }

    #[test]
    fn proc_dir_fallback_is_a_procfs_root() {
        let fd = open_proc_dir().expect("open /proc");
        check_procfs(&fd, Path::new("/proc")).expect("procfs");
        assert_eq!(fstat(fd.as_fd()).expect("stat").st_ino, PROC_ROOT_INO);
    }

    /// The point of it all: a file bind-mounted over /proc/sys/kernel/hostname
    /// (what a container could place there) does not receive the write; the
    /// kernel's sysctl does (in a private UTS namespace) or, with the /proc
    /// directory fallback, the mount crossing is refused.
    #[test]
    fn writes_are_not_redirected_by_a_mount_over_proc() {
        use nix::mount::{MsFlags, mount};
        use nix::sched::CloneFlags;
        let decoy = std::env::temp_dir().join(format!("capsa-procfs-decoy-{}", std::process::id()));
        std::fs::write(&decoy, "decoy\n").expect("write decoy");
        let res = crate::rootfs::tests::in_child(CloneFlags::CLONE_NEWUTS, || {
            let none: Option<&str> = None;
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
                .map_err(|e| format!("make / private: {e}"))?;
            mount(
                Some(&decoy),
                "/proc/sys/kernel/hostname",
                none,
                MsFlags::MS_BIND,
                none,
            )
            .map_err(|e| format!("bind decoy: {e}"))?;
            ProcRoot::open()
                .and_then(|p| p.write("sys/kernel/hostname", b"capsa-procfs-test"))
                .map_err(|e| format!("private procfs write: {e}"))?;
            let host = nix::unistd::gethostname().map_err(|e| e.to_string())?;
            let via_dir = ProcRoot {
                fd: open_proc_dir().map_err(|e| e.to_string())?,
            }
            .write("sys/kernel/hostname", b"redirected")
            .map(|()| "written".to_string())
            .unwrap_or_else(|e| e.to_string());
            Ok(format!("{}\n{via_dir}", host.to_string_lossy()))
        });
        let decoy_after = std::fs::read_to_string(&decoy).unwrap_or_default();
        let _ = std::fs::remove_file(&decoy);
        let out = res.expect("child");
        let (host, via_dir) = out.split_once('\n').expect("two lines");
        assert_eq!(host, "capsa-procfs-test", "the sysctl was not written");
        assert_eq!(decoy_after, "decoy\n", "the write went to the mounted file");
        assert!(
            via_dir.contains("cross-device"),
            "fallback crossed the mount: {via_dir}"
        );
    }

    #[test]
    fn self_fd_is_ours() {
        let f = std::fs::File::open("/").expect("open /");
        check_self_fd(&OwnedFd::from(f)).expect("host /proc/self/fd is genuine");
    }
}
