//! Init side: allocate the container's terminal and make it the process's
//! controlling terminal and stdio.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, OpenHow, ResolveFlag, fcntl, open, openat, openat2};
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, fstat};
use nix::sys::statfs::{PROC_SUPER_MAGIC, SYSFS_MAGIC, fstatfs};
use nix::unistd::{Pid, getpid, getsid, setsid};

use super::{ConsoleError, ConsoleSize, send_master};
use crate::rootfs::newmount::{attach, clone_tree};
use crate::sys::{Ctx, SysError, own};

const PTMX: &str = "/dev/ptmx";
const CONSOLE: &str = "/dev/console";

/// What the init or an exec'd process needs from its terminal.
#[derive(Debug, Clone, Copy)]
pub struct TerminalOptions {
    /// process.consoleSize; ignored when either side is 0 (as runc does).
    pub size: Option<ConsoleSize>,
    /// Bind the slave over /dev/console: true for the container init, false
    /// for `exec`, whose process shares the init's /dev/console.
    pub mount_console: bool,
    /// Turn the pty's `\n` -> `\r\n` mapping off before the master leaves:
    /// set when capsa itself proxies the terminal (no --console-socket), as
    /// runc does for the masters it receives, so that nothing the process
    /// prints goes out before the mapping is off.
    pub clear_onlcr: bool,
}

/// Init side, after the root switch: open a pty from /dev/ptmx, send the
/// master over `socket`, bind the slave over /dev/console, make it the
/// controlling terminal and dup it onto 0, 1 and 2.
pub fn setup_in_container(socket: OwnedFd) -> Result<(), ConsoleError> {
    setup_terminal(
        socket,
        &TerminalOptions {
            size: None,
            mount_console: true,
            clear_onlcr: false,
        },
    )
}

/// [`setup_in_container`] with the console size and the /dev/console bind
/// chosen by the caller. Consumes `socket`; on return the master and the
/// socket are closed in this process and the slave is on 0, 1 and 2 only.
pub fn setup_terminal(socket: OwnedFd, opts: &TerminalOptions) -> Result<(), ConsoleError> {
    // /dev/ptmx is the container's (a symlink to pts/ptmx, or a device node
    // that the kernel maps to the devpts mounted at /dev/pts), so the pty
    // belongs to the container's devpts instance, not the host's.
    let ptmx = Path::new(PTMX);
    let master = open(
        ptmx,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx_at("open", ptmx)?;
    unlockpt(&master)?;
    let index = pty_index(&master)?;
    let slave = open_slave(&master, index)?;

    if let Some(size) = opts.size.filter(|s| s.height != 0 && s.width != 0) {
        set_winsize(&master, size)?;
    }
    if opts.mount_console {
        mount_console(&slave, index)?;
    }
    if opts.clear_onlcr {
        super::clear_onlcr(&master)?;
    }

    send_master(&socket, &master)?;
    // The receiver holds the only master from now on: when the last slave
    // holder exits it sees EIO/POLLHUP, which is how proxies know to stop.
    drop(master);
    drop(socket);

    become_session_leader()?;
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal a terminal
    // that is another session's); `slave` is an open fd we own.
    let ret = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    if ret < 0 {
        return Err(SysError::new("ioctl TIOCSCTTY", Errno::last()).into());
    }
    dup_onto_stdio(slave)
}

/// TIOCSPTLCK(0): unlock the slave so it can be opened (unlockpt(3)).
fn unlockpt(master: &OwnedFd) -> Result<(), ConsoleError> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one c_int through the pointer, which points to
    // a live local; `master` is an open ptmx fd.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    if ret < 0 {
        return Err(SysError::at("ioctl TIOCSPTLCK", PTMX, Errno::last()).into());
    }
    Ok(())
}

/// TIOCGPTN: the N of /dev/pts/N.
fn pty_index(master: &OwnedFd) -> Result<u32, ConsoleError> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one c_uint through the pointer, which points to
    // a live local; `master` is an open ptmx fd.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) };
    if ret < 0 {
        return Err(SysError::at("ioctl TIOCGPTN", PTMX, Errno::last()).into());
    }
    Ok(n)
}

/// Open the slave through the master (TIOCGPTPEER, Linux 4.13+) rather than
/// by the path /dev/pts/N: a path is resolved in a mount namespace the
/// container's content can influence (a rootfs /dev/pts that is not the
/// devpts the master came from, a symlink, a remount racing with us), and
/// then the runtime would hand the workload, and bind over /dev/console, a
/// terminal other than the one whose master it sends out. The ioctl returns
/// the peer of exactly this master, with no lookup.
fn open_slave(master: &OwnedFd, index: u32) -> Result<OwnedFd, ConsoleError> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags as an integer argument and returns
    // a new fd that we take ownership of; `master` is an open ptmx fd.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if ret >= 0 {
        return Ok(own(ret as RawFd));
    }
    let errno = Errno::last();
    if errno != Errno::EINVAL && errno != Errno::ENOTTY {
        return Err(SysError::at("ioctl TIOCGPTPEER", PTMX, errno).into());
    }
    // Kernel without TIOCGPTPEER: fall back to the path, refusing symlinks.
    let path = format!("/dev/pts/{index}");
    let slave = open(
        path.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .ctx_at("open", Path::new(&path))?;
    if !nix::unistd::isatty(&slave).unwrap_or(false) {
        return Err(SysError::at("open (not a terminal)", path, Errno::ENOTTY).into());
    }
    Ok(slave)
}

fn set_winsize(master: &OwnedFd, size: ConsoleSize) -> Result<(), ConsoleError> {
    let ws = libc::winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one struct winsize through the pointer, which
    // points to a live, initialised local; `master` is an open pty fd.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if ret < 0 {
        return Err(SysError::at("ioctl TIOCSWINSZ", PTMX, Errno::last()).into());
    }
    Ok(())
}

/// Bind the slave over /dev/console so that programs writing to the console
/// (systemd, getty, logger) reach the same terminal. The rootfs setup normally
/// creates /dev/console as an empty file; like runc we create it if missing.
///
/// The target is resolved to an fd inside the container's root with no
/// symlink followed anywhere on the way, and must be a regular file or a
/// character device on something other than procfs or sysfs; the mount then
/// goes onto that fd. A /dev/console (or /dev) that the image made a
/// symlink, or that a racing process swaps for one, cannot redirect the
/// bind onto a /proc or /sys file that would then be writable through the
/// terminal (runc CVE-2025-52565).
fn mount_console(slave: &OwnedFd, index: u32) -> Result<(), ConsoleError> {
    let target = Path::new(CONSOLE);
    let fd = console_target()?;
    match bind_fd(slave, &fd) {
        Err(Errno::ENOSYS) => {
            // No open_tree (before 5.2): bind by path, as runc does, onto
            // the checked fd's magic link.
            let source = format!("/dev/pts/{index}");
            let at = format!("/proc/self/fd/{}", fd.as_raw_fd());
            nix::mount::mount(
                Some(source.as_str()),
                at.as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .ctx_at("bind mount /dev/pts/N over", target)?;
            Ok(())
        }
        r => r
            .ctx_at("bind mount the pty slave over", target)
            .map_err(Into::into),
    }
}

/// An O_PATH fd of /dev/console resolved in "/" without following any
/// symlink, created (as an empty file) if missing, and checked.
fn console_target() -> Result<OwnedFd, ConsoleError> {
    let target = Path::new(CONSOLE);
    let root = open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx_at("open", Path::new("/"))?;
    let resolve = ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS;
    let lookup = |path: &str, flags: OFlag| {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(resolve);
        openat2(root.as_fd(), path, how)
    };
    let fd = match lookup("dev/console", OFlag::O_PATH | OFlag::O_NOFOLLOW) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            let dev = lookup("dev", OFlag::O_PATH | OFlag::O_DIRECTORY)
                .ctx_at("open", Path::new("/dev"))?;
            match openat(
                dev.as_fd(),
                "console",
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_WRONLY
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o666),
            ) {
                Ok(_) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(SysError::at("create mount target", target, e).into()),
            }
            lookup("dev/console", OFlag::O_PATH | OFlag::O_NOFOLLOW).ctx_at("open", target)?
        }
        // A symlink on the way (RESOLVE_NO_SYMLINKS).
        Err(Errno::ELOOP) => {
            return Err(ConsoleError::ConsoleSymlink {
                path: CONSOLE.into(),
            });
        }
        Err(e) => return Err(SysError::at("open", target, e).into()),
    };
    let st = fstat(fd.as_fd()).ctx_at("stat", target)?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind == libc::S_IFLNK {
        return Err(ConsoleError::ConsoleSymlink {
            path: CONSOLE.into(),
        });
    }
    let fs = fstatfs(fd.as_fd()).ctx_at("statfs", target)?;
    let kernel_fs = [PROC_SUPER_MAGIC, SYSFS_MAGIC].contains(&fs.filesystem_type());
    if (kind != libc::S_IFREG && kind != libc::S_IFCHR) || kernel_fs {
        return Err(ConsoleError::ConsoleTarget {
            path: CONSOLE.into(),
        });
    }
    Ok(fd)
}

/// Bind the file behind `fd` over the file `target` refers to, with no
/// path lookup at all: a detached bind mount of the fd itself (open_tree),
/// attached onto the target fd (move_mount).
fn bind_fd(fd: &OwnedFd, target: &OwnedFd) -> nix::Result<()> {
    let path = Path::new(CONSOLE);
    let tree = clone_tree(fd, false, path).map_err(|e| e.errno)?;
    attach(&tree, target, path).map_err(|e| e.errno)
}

/// TIOCSCTTY needs a session leader without a terminal. The lead's init may
/// already have called setsid() (runc's nsexec does); a second call would fail
/// with EPERM, so only call it when we do not lead our session yet.
fn become_session_leader() -> Result<(), ConsoleError> {
    let me = getpid();
    if getsid(None::<Pid>).ctx("getsid")? != me {
        setsid().ctx("setsid")?;
    }
    Ok(())
}

/// Put the slave on 0, 1 and 2 (without CLOEXEC) and close the original.
fn dup_onto_stdio(slave: OwnedFd) -> Result<(), ConsoleError> {
    // dup2(fd, fd) keeps CLOEXEC, so a slave that landed on 0..=2 (stdio was
    // closed) would vanish at exec: move it out of the way first.
    let slave = if slave.as_raw_fd() <= 2 {
        let moved = own(fcntl(&slave, FcntlArg::F_DUPFD_CLOEXEC(3)).ctx("fcntl F_DUPFD_CLOEXEC")?);
        // Close the low copy now, before dup2 reuses its number.
        drop(slave);
        moved
    } else {
        slave
    };
    nix::unistd::dup2_stdin(slave.as_fd()).ctx("dup2 terminal onto stdin")?;
    nix::unistd::dup2_stdout(slave.as_fd()).ctx("dup2 terminal onto stdout")?;
    nix::unistd::dup2_stderr(slave.as_fd()).ctx("dup2 terminal onto stderr")?;
    Ok(())
}
