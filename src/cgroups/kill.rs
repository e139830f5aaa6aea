//! Signalling the processes of a container's cgroup, and only those.
//!
//! Which processes are the container's (`Members`): runc's rule, made
//! exact. A container that shares a pid namespace (the host's, or one it
//! joined, as in a Kubernetes pod) has only its cgroup to say what is its
//! own, so every process in the cgroup and below it counts. A container
//! with a pid namespace of its own owns exactly the processes of that
//! namespace (and of namespaces nested in it): anything else found in its
//! cgroup was put there by someone else (another container whose
//! cgroupsPath lies inside, a host process moved in by hand) and is never
//! signalled. Once such a container's init is gone, its namespace and every
//! process in it are gone too (the kernel kills them before the init
//! finishes exiting), so nothing in the cgroup is its own any more.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, fstat};
use serde::{Deserialize, Serialize};

use super::{Cgroup, CgroupError, write_file};
use crate::sys::{self, SysError};

/// A namespace's identity: the device and inode of its nsfs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

/// ioctl_ns(2) NS_GET_PARENT: _IO(0xb7, 0x2).
const NS_GET_PARENT: libc::c_ulong = 0xb702;
/// The kernel nests pid namespaces at most 32 deep.
const MAX_PIDNS_DEPTH: usize = 33;

impl NsId {
    fn of(fd: &OwnedFd) -> Result<NsId, Errno> {
        let st = fstat(fd)?;
        Ok(NsId {
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }

    /// The pid namespace of `pid`, held open.
    fn open_of(pid: i32) -> Result<(OwnedFd, NsId), Errno> {
        let fd = nix::fcntl::open(
            Path::new(&format!("/proc/{pid}/ns/pid")),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let id = NsId::of(&fd)?;
        Ok((fd, id))
    }

    /// The pid namespace the calling process would record for `pid` (the
    /// container's init, right after it was made).
    pub fn pid_ns_of(pid: i32) -> Result<NsId, SysError> {
        NsId::open_of(pid)
            .map(|(_, id)| id)
            .map_err(|e| SysError::at("open", format!("/proc/{pid}/ns/pid"), e))
    }
}

/// Which processes in a container's cgroup belong to it (see the module
/// comment).
pub enum Members {
    /// Every process in the cgroup and below it.
    All,
    /// Those in this pid namespace or one nested in it; the fd keeps the
    /// namespace, and so its inode number, alive while we compare.
    InNs(#[allow(dead_code)] OwnedFd, NsId),
    /// None: the container's own pid namespace is gone.
    Nobody,
}

impl Members {
    fn owns(&self, pid: i32) -> bool {
        match self {
            Members::All => true,
            Members::Nobody => false,
            Members::InNs(_, want) => in_ns(pid, *want),
        }
    }
}

/// Is `pid` in the pid namespace `want` or below it? Walks up with
/// NS_GET_PARENT, which fails (EPERM) above the caller's own namespace.
fn in_ns(pid: i32, want: NsId) -> bool {
    let Ok((mut fd, mut id)) = NsId::open_of(pid) else {
        return false;
    };
    for _ in 0..MAX_PIDNS_DEPTH {
        if id == want {
            return true;
        }
        // SAFETY: NS_GET_PARENT takes no argument and returns a new fd or -1.
        let parent = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_PARENT) };
        if parent < 0 {
            return false;
        }
        // SAFETY: the ioctl just returned this fd and nothing else owns it.
        fd = unsafe { OwnedFd::from_raw_fd(parent) };
        match NsId::of(&fd) {
            Ok(p) => id = p,
            Err(_) => return false,
        }
    }
    false
}

/// How long destroy waits for killed processes to leave the cgroup.
const KILL_WAIT: Duration = Duration::from_secs(2);

impl Cgroup {
    /// The container's processes in this cgroup, given its init's pid and a
    /// check, made after its pid namespace was opened, that the pid still
    /// names that init (not a recycled pid).
    pub fn members(&self, init_pid: i32, still_init: impl Fn() -> bool) -> Members {
        let Some(want) = self.pidns else {
            return Members::All;
        };
        if init_pid <= 0 {
            return Members::Nobody;
        }
        match NsId::open_of(init_pid) {
            Ok((fd, id)) if id == want && still_init() => Members::InNs(fd, want),
            _ => Members::Nobody,
        }
    }

    /// Host pids of the container's own processes in its cgroup.
    pub fn member_pids(&self, m: &Members) -> Result<Vec<i32>, CgroupError> {
        if matches!(m, Members::Nobody) {
            return Ok(Vec::new());
        }
        let mut pids = self.pids()?;
        pids.retain(|&p| m.owns(p));
        Ok(pids)
    }

    /// `kill --all`: send `sig` to each of the container's processes.
    /// As runc does, the cgroup (v1 freezer or v2 cgroup.freeze) is frozen
    /// meanwhile so that no process forks past the signal; unlike runc, a
    /// paused container is left paused. A freeze that fails or times out
    /// only loses that guarantee (runc warns and goes on).
    pub fn signal_members(&self, m: &Members, sig: i32) -> Result<(), CgroupError> {
        if matches!(m, Members::Nobody) {
            return Ok(());
        }
        let frozen_here = !super::is_frozen(self) && super::freezer::freeze(self).is_ok();
        let r = self.signal_pids(m, sig);
        if frozen_here {
            super::freezer::thaw(self)?;
        }
        r
    }

    /// The v1 freezer.state of the container, if a v1 freezer is mounted.
    fn v1_freezer(&self) -> Option<std::path::PathBuf> {
        self.dirs
            .iter()
            .map(|d| d.join("freezer.state"))
            .find(|f| f.exists())
    }

    /// SIGKILL the container's processes in the cgroup and wait (bounded)
    /// until none is left. v2 (and the unified leaf on hybrid hosts) uses
    /// cgroup.kill (Linux 5.14), which also catches processes forked
    /// meanwhile, but only where every process in the cgroup is the
    /// container's (`Members::All`); otherwise each pid is signalled
    /// through a pidfd that is only used after the pid was seen in the
    /// cgroup again, so a recycled pid of an unrelated process is never
    /// signalled.
    pub(super) fn kill_members(&self, m: &Members) -> Result<(), CgroupError> {
        let mut pids = self.member_pids(m)?;
        if pids.is_empty() {
            return Ok(());
        }
        let kill_file = match m {
            Members::All => self.unified.as_ref().map(|u| u.join("cgroup.kill")),
            _ => None,
        };
        // The v1 freezer, also on hybrid hosts where cgroup.kill does the
        // killing: a (paused) frozen task dies only once thawed.
        let freezer = self.v1_freezer();
        let deadline = Instant::now() + KILL_WAIT;
        let mut delay = Duration::from_millis(1);
        loop {
            let by_cgroup = match &kill_file {
                Some(f) => match write_file(f, b"1") {
                    Ok(()) => true,
                    // No cgroup.kill (old kernel) or the leaf is gone.
                    Err(e) if e.errno == Errno::ENOENT => false,
                    Err(e) => return Err(e.into()),
                },
                None => false,
            };
            if by_cgroup {
                if let Some(f) = &freezer {
                    write_file(f, b"THAWED")?;
                }
            } else {
                // Frozen processes can neither fork nor exit, so the set we
                // signal is complete and no pid in it can be recycled.
                let frozen = freezer.as_deref().is_some_and(super::freeze);
                let killed = self.signal_pids(m, libc::SIGKILL);
                if frozen && let Some(f) = &freezer {
                    write_file(f, b"THAWED")?;
                }
                killed?;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(50));
            pids = self.member_pids(m)?;
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let dir = self.dirs.first().cloned().unwrap_or_default();
                return Err(CgroupError::Busy { dir, pids });
            }
        }
    }

    /// Send `sig` to the members now in the cgroup, each through a pidfd.
    fn signal_pids(&self, m: &Members, sig: i32) -> Result<(), CgroupError> {
        let seen = self.pids()?;
        let mut fds = Vec::with_capacity(seen.len());
        for pid in seen {
            match sys::pidfd_open(pid) {
                // Checked after the pidfd pins the process: a pid that was
                // recycled meanwhile fails the membership check below or
                // makes the signal fail with ESRCH.
                Ok(fd) if m.owns(pid) => fds.push((pid, fd)),
                Ok(_) => {}
                Err(e) if e.errno == Errno::ESRCH => {}
                // Before Linux 5.3: plain kill, with the pid-reuse window
                // that runc has too (narrowed by the freezer if present).
                Err(e) if e.errno == Errno::ENOSYS => {
                    if !m.owns(pid) {
                        continue;
                    }
                    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig_of(sig)) {
                        Ok(()) | Err(Errno::ESRCH) => {}
                        Err(e) => return Err(SysError::new("kill", e).into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        // A pid still listed now belongs to the process its pidfd names
        // (a live pid is unique), or that process is gone and the signal
        // fails with ESRCH.
        let now = self.pids()?;
        for (pid, fd) in &fds {
            if now.binary_search(pid).is_ok() {
                match sys::pidfd_send_signal(fd, sig) {
                    Ok(()) => {}
                    Err(e) if e.errno == Errno::ESRCH => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

fn sig_of(sig: i32) -> Option<Signal> {
    Signal::try_from(sig).ok()
}
