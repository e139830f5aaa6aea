//! `capsa run` in the foreground with process.terminal: a forked process that
//! copies our stdin to the pty master and the master to our stdout, as runc
//! does with its own goroutines (capsa starts no threads, so it forks).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::Mode;
use nix::sys::termios::{OutputFlags, SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use nix::unistd::{isatty, read, write};

use super::ConsoleError;
use crate::process::helper;
use crate::sys::{Ctx, SysError, SysResult, own};
use std::ffi::CStr;

/// Fork the proxy; returns its pid. The caller's copy of `master` is closed
/// here, so the proxy holds the only one and sees the hang-up when the last
/// process holding the slave exits. The proxy then exits 0 (1 on an
/// unexpected error, after printing it to stderr).
///
/// From a multi-threaded process the proxy is this executable, started by
/// `std::process::Command` (helper.rs), not a clone. The caller must
/// reap the proxy by its pid after the container has exited, so that all
/// output has been written before `run` returns.
pub fn spawn_proxy(master: OwnedFd) -> Result<libc::pid_t, ConsoleError> {
    clear_onlcr(&master)?;
    // Size the pty before returning, so a container started right after
    // this call never sees 0x0; the proxy keeps it in sync from then on.
    if let Some(from) = size_source() {
        copy_winsize(from, &master);
    }
    // A clone of a multi-threaded caller must not run Rust (helper.rs):
    // then the proxy is this executable, started afresh.
    let threaded = helper::needed().map_err(|e| ConsoleError::Proxy(e.to_string()))?;
    if threaded {
        let child = helper::spawn_self(PROXY_ARGV0, &master, 3, [0, 1, 2])
            .map_err(|e| ConsoleError::Proxy(e.to_string()))?;
        return Ok(child.id() as libc::pid_t);
    }
    let pid = crate::sys::clone3(0, None)?;
    if pid == 0 {
        let code = match proxy_main(master) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("capsa: terminal proxy: {e}");
                1
            }
        };
        crate::sys::child_exit(code);
    }
    drop(master);
    Ok(pid)
}

/// argv[0] of a proxy started by `spawn_proxy` for a multi-threaded caller.
pub const PROXY_ARGV0: &CStr = c"capsa:[tty]";

/// The proxy as its own process (`run_if_asked`, argv[0] [`PROXY_ARGV0`]):
/// the master is the fd its argument names.
pub(crate) fn serve(arg: Option<std::ffi::OsString>) -> ! {
    let code = match helper::inherited_fd(arg) {
        None => {
            eprintln!("capsa: terminal proxy: malformed arguments");
            2
        }
        Some(master) => match proxy_main(master) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("capsa: terminal proxy: {e}");
                1
            }
        },
    };
    crate::sys::child_exit(code)
}

fn proxy_main(master: OwnedFd) -> Result<(), ConsoleError> {
    let _ = nix::sys::prctl::set_name(c"capsa:[tty]");
    ignore_signals()?;
    let master = isolate_fds(master)?;
    let flags = fcntl(&master, FcntlArg::F_GETFL).ctx("fcntl F_GETFL (pty master)")?;
    // Non-blocking so a container that stops reading its terminal cannot
    // wedge us while its output still needs copying. Only the master: stdin
    // and stdout are shared with the user's shell and must keep their flags.
    fcntl(
        &master,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .ctx("fcntl F_SETFL O_NONBLOCK (pty master)")?;

    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    // Raw mode: keys such as ^C and ^Z reach the container as bytes, and the
    // pty inside does the line discipline. Restored when `_raw` drops.
    let _raw = RawMode::enter(stdin.as_fd())?;

    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    winch.thread_block().ctx("sigprocmask SIG_BLOCK SIGWINCH")?;
    let sigfd = SignalFd::with_flags(&winch, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .ctx("signalfd SIGWINCH")?;
    // Again after the signalfd exists: a resize between the copy in the
    // parent and here would otherwise be lost.
    let size_from = size_source();
    if let Some(from) = size_from {
        copy_winsize(from, &master);
    }

    let mut buf = [0u8; 16 * 1024];
    let mut to_master: Vec<u8> = Vec::new();
    let mut stdin_open = true;
    let mut stdout_ok = true;
    loop {
        let mut master_events = PollFlags::POLLIN;
        if !to_master.is_empty() {
            master_events |= PollFlags::POLLOUT;
        }
        let mut fds = vec![
            PollFd::new(master.as_fd(), master_events),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        // Read stdin only when the previous chunk has reached the master:
        // back-pressure instead of an unbounded buffer.
        let watch_stdin = stdin_open && to_master.is_empty();
        if watch_stdin {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(SysError::new("poll (terminal proxy)", e).into()),
        }
        let none = PollFlags::empty();
        let master_rev = fds[0].revents().unwrap_or(none);
        let sig_rev = fds[1].revents().unwrap_or(none);
        let stdin_rev = fds.get(2).and_then(|f| f.revents()).unwrap_or(none);
        drop(fds);

        if sig_rev.contains(PollFlags::POLLIN) {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            if let Some(from) = size_from {
                copy_winsize(from, &master);
            }
        }

        if master_rev.contains(PollFlags::POLLOUT) && !to_master.is_empty() {
            match write(&master, &to_master) {
                Ok(n) => {
                    to_master.drain(..n);
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                // The slave side is gone; the read below sees EIO and ends.
                Err(Errno::EIO) => to_master.clear(),
                Err(e) => return Err(SysError::new("write (pty master)", e).into()),
            }
        }

        if master_rev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match read(&master, &mut buf) {
                // EIO (or EOF): no process holds the slave any more. Linux
                // hands out buffered output before reporting it.
                Ok(0) | Err(Errno::EIO) => return Ok(()),
                Ok(n) => {
                    // Once stdout is gone (EPIPE, hung-up terminal), keep
                    // draining so the container never blocks on its output.
                    if stdout_ok && write_all(stdout.as_fd(), &buf[..n]).is_err() {
                        stdout_ok = false;
                    }
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(SysError::new("read (pty master)", e).into()),
            }
        }

        if watch_stdin && !stdin_rev.is_empty() {
            // EOF: stop reading, keep copying output. A pty cannot be
            // half-closed, so nothing is sent to the container (as runc).
            match read(stdin.as_fd(), &mut buf) {
                Ok(0) => stdin_open = false,
                Ok(n) => to_master.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}

/// Keyboard signals go to the whole foreground process group, proxy
/// included. `run` forwards them to the container; the proxy must outlive the
/// container to copy its last output, so it ignores them (and SIGPIPE, to see
/// EPIPE as an error instead of dying).
fn ignore_signals() -> Result<(), ConsoleError> {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for sig in [
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: SIG_IGN installs no handler code, so no Rust code can run
        // in signal context; the previous action is not needed.
        unsafe { sigaction(sig, &ignore) }.ctx("sigaction SIG_IGN")?;
    }
    Ok(())
}

/// Leave the proxy with exactly stdin, stdout, stderr and the master: it
/// must not keep the run process's lock, sync socket or fifo alive. The
/// master is moved to fd >= 3 and 0..=2 are filled with /dev/null where the
/// caller had them closed, so nothing else can land on a stdio number.
fn isolate_fds(master: OwnedFd) -> Result<OwnedFd, ConsoleError> {
    let moved = own(fcntl(&master, FcntlArg::F_DUPFD_CLOEXEC(3)).ctx("fcntl F_DUPFD_CLOEXEC")?);
    drop(master);
    for fd in 0..=2 {
        // SAFETY: only asks whether the number is open; nothing is borrowed
        // beyond this call.
        let open_now = unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
        if !open_now {
            // Lands on `fd`: every lower number is open.
            let null = open("/dev/null", OFlag::O_RDWR, Mode::empty())
                .ctx_at("open", "/dev/null".as_ref())?;
            std::mem::forget(null);
        }
    }
    let m = moved.as_raw_fd();
    if m > 3 {
        close_range(3, m - 1)?;
    }
    crate::sys::close_fds_from(m + 1)?;
    Ok(moved)
}

fn close_range(first: RawFd, last: RawFd) -> SysResult<()> {
    // SAFETY: closes descriptors in [first, last] only; in the forked proxy
    // nothing refers to them (the master was moved above `last`).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0u32,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    Err(SysError::new("close_range", Errno::last()))
}

/// Turn off the pty's `\n` -> `\r\n` output mapping (ONLCR), as runc does
/// on every master it proxies itself: what the container prints reaches our
/// stdout (usually a pipe or file) byte for byte, so `capsa run` output
/// compares equal to the container's. The termios are the pair's, so setting
/// them on the master applies to the container's slave. Done before the
/// proxy exists and before the process can start writing.
pub(crate) fn clear_onlcr(master: &OwnedFd) -> Result<(), ConsoleError> {
    let mut t = tcgetattr(master).ctx("tcgetattr (pty master)")?;
    t.output_flags.remove(OutputFlags::ONLCR);
    tcsetattr(master, SetArg::TCSANOW, &t).ctx("tcsetattr -ONLCR (pty master)")?;
    Ok(())
}

/// The terminal whose size the container's pty follows: stdin, else stdout.
fn size_source() -> Option<RawFd> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        Some(libc::STDIN_FILENO)
    } else if std::io::stdout().is_terminal() {
        Some(libc::STDOUT_FILENO)
    } else {
        None
    }
}

/// Copy the window size of our terminal to the pty (best effort: a failure
/// only leaves the previous size in place).
fn copy_winsize(from: RawFd, to: &OwnedFd) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one struct winsize into the live local `ws`;
    // a bad `from` only makes the ioctl fail with EBADF.
    if unsafe { libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) } < 0 {
        return;
    }
    // SAFETY: TIOCSWINSZ reads one initialised struct winsize from `ws`;
    // `to` is the open pty master.
    unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match write(fd, data) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            // Someone made our stdout non-blocking: wait until it drains.
            Err(Errno::EAGAIN) => {
                let mut p = [PollFd::new(fd, PollFlags::POLLOUT)];
                match poll(&mut p, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Raw mode on a terminal stdin, undone on drop.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    fn enter(fd: BorrowedFd<'a>) -> Result<Option<RawMode<'a>>, ConsoleError> {
        if !isatty(fd).unwrap_or(false) {
            return Ok(None);
        }
        let saved = tcgetattr(fd).ctx("tcgetattr stdin")?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(fd, SetArg::TCSANOW, &raw).ctx("tcsetattr stdin (raw)")?;
        Ok(Some(RawMode { fd, saved }))
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}
