//! The created init's wait for `start`, and what it gives back for it.
//!
//! A created container can wait for hours (engines create, then start
//! later; some never start). The init is a copy of `capsa create`: its RSS
//! is the capsa code it ran (fault-around maps it in 64 KiB windows), and
//! heap the parse of config.json left behind. No other process maps a static
//! capsa's pages, so Pss charges them all to the waiting container. Before
//! blocking on exec.fifo the init therefore:
//! - returns free heap to the kernel (malloc_trim);
//! - drops its own mappings of capsa's read-only segments (text, rodata)
//!   with MADV_DONTNEED. The pages stay in the page cache (no other capsa
//!   command reads them from disk again); the init faults back in the few
//!   it runs after `start`. Writable segments (data, RELRO, which holds
//!   relocated pointers) are never touched.
//!
//! The seccomp filter is loaded after the wait, by the trampoline, except a
//! SCMP_ACT_NOTIFY profile (loaded before it, see finalize::prepare): then
//! this happens only if the filter plainly allows those calls.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::procfs::ProcRoot;
use crate::security::seccomp::Filter;
use crate::sys::{self, SysError};

/// exec.fifo (crate::state::EXEC_FIFO) as a C string for openat.
const EXEC_FIFO: &std::ffi::CStr = c"exec.fifo";

/// Signals whose default action ends a process: the waiting init ends on
/// them (see `die_on_signals`). Not the faults (SEGV, BUS, ILL, FPE, TRAP:
/// synchronous, Rust's runtime handles two) nor PIPE (ignored by Rust's
/// runtime; the workload gets the default back from the trampoline).
const ENDING: [libc::c_int; 15] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGABRT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGSTKFLT,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
    libc::SIGPWR,
];

extern "C" fn end_on_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe and ends the process at once.
    unsafe { libc::_exit(128 + sig) }
}

/// A waiting init ends on `kill` with any signal that would end a process
/// (runc's init, a Go program, handles them all and dies): as the init of a
/// pid namespace it would otherwise ignore every signal it has no handler
/// for, SIGKILL aside, and `kill ID` (SIGTERM) of a created container would
/// do nothing. execve resets the handlers: the workload gets the defaults.
/// Skipped when a filter loaded already (SCMP_ACT_NOTIFY) does not plainly
/// allow rt_sigaction.
fn die_on_signals(seccomp: Option<&Filter>) {
    if seccomp.is_some_and(|f| !f.allows(libc::SYS_rt_sigaction, [0; 6])) {
        return;
    }
    let realtime = libc::SIGRTMIN()..=libc::SIGRTMAX();
    for sig in ENDING.into_iter().chain(realtime) {
        // SAFETY: a zeroed sigaction with a handler that only calls _exit,
        // an empty mask and no flags; the old action is not asked for.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = end_on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

/// Give memory back (see above; only if `give_back`: `run` opens the fifo
/// at once, and what was dropped would only be faulted back), then block
/// until `capsa start` opens exec.fifo for reading; returns our write end.
pub fn wait_for_start(
    state_dir: RawFd,
    seccomp: Option<&Filter>,
    give_back: bool,
) -> Result<OwnedFd, SysError> {
    die_on_signals(seccomp);
    if give_back && trim_allowed(seccomp) {
        trim_heap();
        drop_own_code();
    }
    // Straight to the blocking openat: the code that runs between the drop
    // and the block is all it faults back in while waiting.
    loop {
        // SAFETY: openat with an fd of ours (the state dir, open for the
        // init's lifetime) and a NUL-terminated constant path.
        let fd = unsafe {
            libc::openat(
                state_dir,
                EXEC_FIFO.as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            )
        };
        if fd >= 0 {
            return Ok(sys::own(fd));
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(SysError::new("open exec.fifo", e)),
        }
    }
}

/// Rootless: the same wait, but joinable by the user's `capsa exec`.
///
/// A user without CAP_SYS_PTRACE on the host opens /proc/PID/ns/* of the
/// init only while it is dumpable (its memory belongs to the host's user
/// namespace). Dumpable, it is also open to the container's processes that
/// hold every capability it has (the kernel's ptrace check wants theirs to
/// be a superset): its fds, exe, environ and memory. So first it keeps only
/// what the wait and the workload need (`keep`: stdio, preserved fds, the
/// trampoline, the seccomp program), the exec.fifo as an O_PATH fd and the
/// container's own /proc to reopen it by; the state dir (a host directory)
/// and every other fd are closed, the sync socket shut down once `create`
/// has its last message, the caller's environment wiped. The caller
/// checked that the binary /proc/PID/exe names cannot be written by the
/// user (Trampoline::shields_host_binary): a process that opens it cannot
/// reopen it for writing (CVE-2019-5736). Not dumpable again as soon as
/// `start` arrives. Without a /proc in the container, the plain wait (and
/// `exec` is refused until `start`).
pub struct Joinable {
    proc: ProcRoot,
    fifo: OwnedFd,
    chan: RawFd,
}

impl Joinable {
    /// Before the init tells `create` it is detached (so that an `exec`
    /// right after `create` finds it dumpable): keep only `keep`, the sync
    /// socket `chan` (still needed for that last message), the fifo and the
    /// container's /proc; wipe the environment; turn dumpable. None (and
    /// nothing changed) when the container has no /proc to reopen the fifo
    /// by: the plain wait then.
    pub fn prepare(
        state_dir: RawFd,
        chan: RawFd,
        keep: &[RawFd],
    ) -> Result<Option<Joinable>, SysError> {
        let Ok(proc) = ProcRoot::open_visible() else {
            return Ok(None);
        };
        let fifo = loop {
            // SAFETY: as in wait_for_start; O_PATH does not block on a FIFO.
            let fd = unsafe {
                libc::openat(
                    state_dir,
                    EXEC_FIFO.as_ptr(),
                    libc::O_PATH | libc::O_CLOEXEC,
                )
            };
            if fd >= 0 {
                break sys::own(fd);
            }
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(SysError::new("open exec.fifo", e)),
            }
        };
        let mut kept = keep.to_vec();
        kept.extend([chan, fifo.as_raw_fd(), proc.raw_fd()]);
        // The state dir among them.
        sys::close_fds_except(3, &kept)?;
        wipe_environ();
        // SAFETY: prctl with integer arguments only. Should it fail we stay
        // non-dumpable: `exec` is refused until `start`, nothing more.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
        Ok(Some(Joinable { proc, fifo, chan }))
    }

    /// After the last message to `create`: shut the sync socket, then
    /// wait as `wait_for_start` does; not dumpable once `start` came.
    pub fn wait(self, seccomp: Option<&Filter>, give_back: bool) -> Result<OwnedFd, SysError> {
        // SAFETY: shutdown on an fd of ours; the parent is done with it.
        unsafe { libc::shutdown(self.chan, libc::SHUT_RDWR) };
        die_on_signals(seccomp);
        if give_back && trim_allowed(seccomp) {
            trim_heap();
            drop_own_code();
        }
        let fifo = self.proc.reopen(&self.fifo, OFlag::O_WRONLY);
        crate::security::set_non_dumpable()?;
        fifo.map_err(|e| SysError::new("open exec.fifo", e.errno))
    }
}

/// Zero the environment strings `capsa create` was started with (what
/// /proc/PID/environ shows) and empty `environ`. The init builds the
/// workload's environment from config.json alone.
fn wipe_environ() {
    unsafe extern "C" {
        static environ: *const *mut libc::c_char;
    }
    // SAFETY: single-threaded; `environ` is a NULL-terminated array of
    // NUL-terminated strings (capsa never sets variables, so they are the
    // ones the kernel put on our stack, writable); each is zeroed within
    // its length, then clearenv drops the array.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let s = *p;
            std::ptr::write_bytes(s, 0, libc::strlen(s));
            p = p.add(1);
        }
        libc::clearenv();
    }
}

fn trim_allowed(seccomp: Option<&Filter>) -> bool {
    let Some(f) = seccomp else {
        return true;
    };
    // glibc's trim shrinks the heap with brk and frees pages with madvise.
    f.allows(
        libc::SYS_madvise,
        [0, 0, libc::MADV_DONTNEED as u64, 0, 0, 0],
    ) && f.allows(libc::SYS_brk, [0; 6])
}

fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only rearranges the allocator's free memory; no
    // allocation is live across threads (the init has one thread).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// MADV_DONTNEED over every non-writable PT_LOAD segment of our own
/// executable, pages wholly inside it only.
fn drop_own_code() {
    // Read every header first: they live in the first segment dropped.
    let mut segs = [(0, 0); 8];
    for (slot, seg) in segs.iter_mut().zip(read_only_segments()) {
        *slot = seg;
    }
    for &(start, end) in segs.iter().filter(|(s, e)| s < e) {
        // SAFETY: the range lies inside a read-only, file-backed private
        // mapping of our executable that nothing ever writes: dropping its
        // pages only makes the next access fault them in again from the
        // file, unchanged. Failure is harmless (the pages stay).
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// Page-aligned [start, end) of each non-writable PT_LOAD segment of the
/// executable, from its program headers (the auxiliary vector points at them).
fn read_only_segments() -> impl Iterator<Item = (usize, usize)> {
    // SAFETY: getauxval only reads the auxiliary vector.
    let (phdr, phnum, page) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR) as usize,
            libc::getauxval(libc::AT_PHNUM) as usize,
            libc::getauxval(libc::AT_PAGESZ) as usize,
        )
    };
    let headers: &[libc::Elf64_Phdr] = if phdr == 0 || page == 0 {
        &[]
    } else {
        // SAFETY: the kernel put AT_PHNUM program headers at AT_PHDR, mapped
        // read-only for the life of the process.
        unsafe { std::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum) }
    };
    // Static non-PIE: 0; PIE: where the kernel put the image.
    let bias = headers
        .iter()
        .find(|h| h.p_type == libc::PT_PHDR)
        .map_or(0, |h| phdr.wrapping_sub(h.p_vaddr as usize));
    headers
        .iter()
        .filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W == 0)
        .filter_map(move |h| {
            let lo = bias.wrapping_add(h.p_vaddr as usize);
            let start = lo.checked_add(page - 1)? / page * page;
            let end = lo.checked_add(h.p_memsz as usize)? / page * page;
            (start < end).then_some((start, end))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_name_matches_the_state_dirs() {
        assert_eq!(EXEC_FIFO.to_str(), Ok(crate::state::EXEC_FIFO));
    }

    #[test]
    fn read_only_segments_cover_our_code_and_not_our_data() {
        static DATA: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let segs: Vec<_> = read_only_segments().collect();
        let code = read_only_segments as fn() -> _ as usize;
        let data = &DATA as *const _ as usize;
        assert!(
            segs.iter().any(|&(s, e)| s <= code && code < e),
            "{segs:x?}"
        );
        assert!(
            !segs.iter().any(|&(s, e)| s <= data && data < e),
            "{segs:x?}"
        );
    }
}
