//! Device nodes and the /dev symlinks, for a /dev that is not the host's.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag, fstat, fstatat, major, makedev, minor, mknodat, umask};
use nix::unistd::{
    Gid, Uid, UnlinkatFlags, dup2_stderr, dup2_stdin, dup2_stdout, fchownat, symlinkat, unlinkat,
};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::RootfsError;
use super::mounts::mount_at;
use super::options::clean_container_path;
use super::paths::RootDir;
use crate::sys::{SysError, SysResult};

/// One node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Clean absolute path inside the container.
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Where this entry came from, for errors.
    pub field: String,
    /// A linux.devices entry (not one of the defaults): a file already at
    /// its path must be this very device.
    pub from_spec: bool,
}

/// The devices every container gets (runc's list), as (name, major, minor).
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Whether `path` (cleaned, in the container) is one of the default devices.
pub fn is_default_device(path: &Path) -> bool {
    DEFAULT_DEVICES.iter().any(|(p, _, _)| Path::new(p) == path)
}

/// `linux.devices` followed by the defaults the spec does not override
/// (same path). Pure: validates types and numbers.
pub fn node_list(devices: &[LinuxDevice]) -> Result<Vec<Node>, RootfsError> {
    let mut out = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        let bad = |what: &str| RootfsError::Config {
            field: field.clone(),
            msg: what.to_string(),
        };
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => return Err(bad("type must be one of c, b, u, p")),
        };
        if !d.path().is_absolute() {
            return Err(bad("path must be absolute"));
        }
        let major = u64::try_from(d.major()).map_err(|_| bad("negative major"))?;
        let minor = u64::try_from(d.minor()).map_err(|_| bad("negative minor"))?;
        out.push(Node {
            path: clean_container_path(d.path()),
            kind,
            major,
            minor,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
            field,
            from_spec: true,
        });
    }
    for (path, major, minor) in DEFAULT_DEVICES {
        if out.iter().any(|n| n.path == Path::new(path)) {
            continue;
        }
        out.push(Node {
            path: PathBuf::from(path),
            kind: SFlag::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
            field: "default devices".into(),
            from_spec: false,
        });
    }
    Ok(out)
}

/// Restores the umask when device creation ends, however it ends.
struct UmaskGuard(Mode);
impl Drop for UmaskGuard {
    fn drop(&mut self) {
        umask(self.0);
    }
}

/// Create every node. In a user namespace mknod is not allowed: bind the
/// host's node onto an empty file instead (also the fallback on EPERM).
pub fn create_nodes(root: &RootDir, nodes: &[Node], userns: bool) -> Result<(), RootfsError> {
    // umask 0 so that fileMode is exact.
    let _restore = UmaskGuard(umask(Mode::empty()));
    for n in nodes {
        let at = RootfsError::at(&n.field);
        let (dir, name) = root.parent_of(&n.path).map_err(at)?;
        if userns {
            if !(n.from_spec && matches_existing(&dir, name, n)?) {
                bind_node(root, n).map_err(at)?;
            }
            continue;
        }
        match mknod_node(&dir, name, n) {
            Err(e) if e.errno == Errno::EEXIST => {
                // The image or a mount provides it: a default device is
                // taken as it is; a linux.devices entry must match.
                if n.from_spec {
                    matches_existing(&dir, name, n)?;
                }
            }
            Err(e) if e.errno == Errno::EPERM => bind_node(root, n).map_err(at)?,
            r => r.map_err(at)?,
        }
    }
    Ok(())
}

/// What is at a linux.devices entry's path already: nothing (false: make
/// it), the very device (true: keep it), or something else, which
/// config-linux.md says MUST be an error. A matching node is left as it is
/// (mode and owner included), as runc does.
fn matches_existing(dir: &OwnedFd, name: &OsStr, n: &Node) -> Result<bool, RootfsError> {
    let st = match fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(false),
        Err(e) => {
            return Err(RootfsError::At {
                field: n.field.clone(),
                source: SysError::at("stat", &n.path, e),
            });
        }
    };
    let kind = st.st_mode & libc::S_IFMT;
    let same = kind == n.kind.bits()
        && (n.kind == SFlag::S_IFIFO || st.st_rdev == makedev(n.major, n.minor));
    if same {
        return Ok(true);
    }
    let what = match SFlag::from_bits_truncate(kind) {
        SFlag::S_IFCHR | SFlag::S_IFBLK => format!(
            "a {} device {}:{}",
            if kind == libc::S_IFCHR {
                "character"
            } else {
                "block"
            },
            major(st.st_rdev),
            minor(st.st_rdev)
        ),
        SFlag::S_IFREG => "a regular file".into(),
        SFlag::S_IFDIR => "a directory".into(),
        SFlag::S_IFLNK => "a symbolic link".into(),
        SFlag::S_IFIFO => "a FIFO".into(),
        _ => "another kind of file".into(),
    };
    Err(RootfsError::Config {
        field: n.field.clone(),
        msg: format!(
            "{} already exists and is {what}, not the requested device",
            n.path.display()
        ),
    })
}

fn mknod_node(dir: &OwnedFd, name: &OsStr, n: &Node) -> SysResult<()> {
    let mode = Mode::from_bits_truncate(n.mode);
    mknodat(dir.as_fd(), name, n.kind, mode, makedev(n.major, n.minor))
        .map_err(|e| SysError::at("mknod", &n.path, e))?;
    // NOFOLLOW: we just created a node, never chown through a symlink.
    fchownat(
        dir.as_fd(),
        name,
        Some(Uid::from_raw(n.uid)),
        Some(Gid::from_raw(n.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| SysError::at("chown", &n.path, e))
}

fn bind_node(root: &RootDir, n: &Node) -> SysResult<()> {
    let target = root.create_file(&n.path, 0)?;
    // The host node of the same path (runc's behaviour).
    mount_at(Some(&n.path), &target, &n.path, None, MsFlags::MS_BIND, "")?;
    Ok(())
}

/// /dev/fd, /dev/std{in,out,err}, /dev/core (if the host has /proc/kcore)
/// and /dev/ptmx -> pts/ptmx (replacing any existing ptmx).
pub fn create_links(root: &RootDir) -> SysResult<()> {
    let dev = Path::new("/dev");
    let dir = root.mkdir_all(dev)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match symlinkat(target, dir.as_fd(), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(SysError::at("symlink", dev.join(name), e)),
        }
    }
    match unlinkat(dir.as_fd(), "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(SysError::at("unlink", dev.join("ptmx"), e)),
    }
    symlinkat("pts/ptmx", dir.as_fd(), "ptmx")
        .map_err(|e| SysError::at("symlink", dev.join("ptmx"), e))
}

/// The device number of `fd` if it is an open character device. Raw
/// fstat: stdio may be closed, and a closed fd cannot be borrowed soundly.
fn raw_rdev(fd: RawFd) -> Option<libc::dev_t> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: st points to writable memory of the size of `struct stat`;
    // fstat on a closed fd number fails with EBADF and writes nothing.
    let ret = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
    if ret != 0 {
        return None;
    }
    // SAFETY: fstat returned 0, so it filled the whole struct.
    let st = unsafe { st.assume_init() };
    (st.st_mode & libc::S_IFMT == libc::S_IFCHR).then_some(st.st_rdev)
}

/// dup2 onto one of the stdio fds.
type DupFn = fn(&OwnedFd) -> nix::Result<()>;

/// After the root switch (as runc): stdio that points at a null device
/// (the host's /dev/null, typically) is pointed at the container's own,
/// so that nothing in the container holds an inode of the host's /dev.
pub fn reopen_dev_null() -> SysResult<()> {
    let path = Path::new("/dev/null");
    let null = match nix::fcntl::open(path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        // No null device there (a mount put a directory on /dev/null, say):
        // stdio stays as it is, like when it is not a character device.
        Err(Errno::EISDIR | Errno::ENOENT | Errno::ENXIO | Errno::ENODEV) => return Ok(()),
        Err(e) => return Err(SysError::at("open", path, e)),
    };
    let null_st = fstat(null.as_fd()).map_err(|e| SysError::at("stat", path, e))?;
    if null_st.st_mode & libc::S_IFMT != libc::S_IFCHR {
        return Ok(());
    }
    let dups: [(RawFd, DupFn); 3] = [
        (0, |fd| dup2_stdin(fd)),
        (1, |fd| dup2_stdout(fd)),
        (2, |fd| dup2_stderr(fd)),
    ];
    for (n, dup) in dups {
        if raw_rdev(n) == Some(null_st.st_rdev) {
            dup(&null).map_err(|e| SysError::at("dup stdio onto", path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceBuilder;

    fn dev(
        path: &str,
        typ: LinuxDeviceType,
        major: i64,
        minor: i64,
        mode: Option<u32>,
    ) -> LinuxDevice {
        let mut b = LinuxDeviceBuilder::default()
            .path(path)
            .typ(typ)
            .major(major)
            .minor(minor)
            .uid(1000u32)
            .gid(5u32);
        if let Some(m) = mode {
            b = b.file_mode(m);
        }
        b.build().unwrap()
    }

    #[test]
    fn defaults_and_overrides() {
        let nodes = node_list(&[]).unwrap();
        let names: Vec<_> = nodes.iter().map(|n| n.path.to_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty"
            ]
        );
        assert!(
            nodes
                .iter()
                .all(|n| n.mode == 0o666 && n.uid == 0 && n.kind == SFlag::S_IFCHR)
        );
        assert_eq!((nodes[5].major, nodes[5].minor), (5, 0));

        // a spec entry for /dev/null replaces the default one
        let nodes = node_list(&[
            dev("/dev/null", LinuxDeviceType::C, 1, 3, Some(0o600)),
            dev("/dev/sda", LinuxDeviceType::B, 8, 0, None),
            dev("/dev/fifo", LinuxDeviceType::P, 0, 0, Some(0o100644)),
            dev("/dev/u", LinuxDeviceType::U, 4, 1, None),
        ])
        .unwrap();
        assert_eq!(nodes.len(), 4 + 5);
        assert_eq!(
            (nodes[0].mode, nodes[0].uid, nodes[0].gid),
            (0o600, 1000, 5)
        );
        assert_eq!(nodes[1].kind, SFlag::S_IFBLK);
        assert_eq!(nodes[1].mode, 0o666);
        // type bits in fileMode are dropped, the kind comes from `type`
        assert_eq!((nodes[2].kind, nodes[2].mode), (SFlag::S_IFIFO, 0o644));
        assert_eq!(nodes[3].kind, SFlag::S_IFCHR);
        assert_eq!(
            nodes
                .iter()
                .filter(|n| n.path == Path::new("/dev/null"))
                .count(),
            1
        );
    }

    #[test]
    fn invalid_devices() {
        for d in [
            dev("/dev/x", LinuxDeviceType::A, 1, 1, None),
            dev("dev/x", LinuxDeviceType::C, 1, 1, None),
            dev("/dev/x", LinuxDeviceType::C, -1, 1, None),
        ] {
            let err = node_list(&[d]).unwrap_err().to_string();
            assert!(err.starts_with("linux.devices[0]"), "{err}");
        }
        // a path with ".." stays inside /
        let n = node_list(&[dev("/dev/../../x", LinuxDeviceType::C, 1, 1, None)]).unwrap();
        assert_eq!(n[0].path, PathBuf::from("/x"));
    }
}
