//! Process security set-up in the init: rlimits, user and groups,
//! capabilities, no_new_privs, dumpability, OOM score; seccomp and LSMs in
//! their own modules.

pub mod caps;
pub mod lsm;
pub mod seccomp;

pub use caps::CapSets;

use nix::errno::Errno;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{PosixRlimitType, Process};

use crate::procfs::ProcRoot;
use crate::sys::{Ctx, SysError};

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("{field}: {source}")]
    Field { field: String, source: SysError },
    #[error("{0}")]
    Sys(#[from] SysError),
}

fn field(f: impl Into<String>) -> impl FnOnce(SysError) -> SecurityError {
    let f = f.into();
    move |source| SecurityError::Field { field: f, source }
}

pub(crate) fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// process.rlimits, before the user switch (raising a hard limit needs
/// CAP_SYS_RESOURCE, which this host does not even grant root: a config
/// asking for more than the host allows fails here, naming the entry).
pub fn set_rlimits(p: &Process) -> Result<(), SecurityError> {
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: lim is a valid rlimit struct for the duration of the call.
        let ret = unsafe { libc::setrlimit(rlimit_resource(r.typ()), &lim) };
        if ret != 0 {
            return Err(SecurityError::Field {
                field: format!("process.rlimits[{i}] ({})", r.typ()),
                source: SysError::new("setrlimit", Errno::last()),
            });
        }
    }
    Ok(())
}

/// process.oomScoreAdj, through a verified procfs.
pub fn set_oom_score_adj(p: &Process, proc: &ProcRoot) -> Result<(), SecurityError> {
    if let Some(adj) = p.oom_score_adj() {
        match proc.write("self/oom_score_adj", adj.to_string().as_bytes()) {
            Ok(()) => {}
            // Rootless: our /proc files are root's while we are not
            // dumpable; the parent set the value before cloning us
            // (`set_own_oom_score_adj`), and we inherited it.
            Err(e) if e.errno == Errno::EACCES && own_oom_score_adj() == Some(adj) => {}
            Err(e) => return Err(field("process.oomScoreAdj")(e)),
        }
    }
    Ok(())
}

fn own_oom_score_adj() -> Option<i32> {
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// process.oomScoreAdj for a runtime that is not root (runc does the
/// same): set on itself before the init is cloned, which inherits it. A
/// value below the floor the kernel keeps for unprivileged writers (raising
/// is always allowed, lowering needs CAP_SYS_RESOURCE) is refused clearly.
pub fn set_own_oom_score_adj(p: &Process) -> Result<(), SecurityError> {
    let Some(adj) = p.oom_score_adj() else {
        return Ok(());
    };
    match std::fs::write("/proc/self/oom_score_adj", adj.to_string()) {
        Ok(()) => Ok(()),
        Err(e) if crate::sys::io_errno(&e) == Errno::EACCES => Err(SecurityError::Field {
            field: format!(
                "process.oomScoreAdj: {adj} is below what this user may set (the current value is {}; lowering it needs CAP_SYS_RESOURCE on the host)",
                own_oom_score_adj().map_or("unknown".into(), |v| v.to_string())
            ),
            source: SysError::at("write", "/proc/self/oom_score_adj", Errno::EACCES),
        }),
        Err(e) => Err(field("process.oomScoreAdj")(SysError::io(
            "write",
            "/proc/self/oom_score_adj",
            &e,
        ))),
    }
}

/// Groups, gid and uid of process.user. Capabilities survive the uid change
/// (PR_SET_KEEPCAPS) so that `caps::apply` can set exactly the configured sets.
pub fn set_user(p: &Process) -> Result<(), SecurityError> {
    let user = p.user();
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(SysError::new("prctl(PR_SET_KEEPCAPS)", Errno::last()).into());
    }
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // setgroups is denied in a user namespace whose setgroups file says
    // "deny"; with no additional gids, that is not an error.
    match nix::unistd::setgroups(&groups) {
        Ok(()) => {}
        Err(Errno::EPERM) if groups.is_empty() => {}
        Err(e) => {
            return Err(SecurityError::Field {
                field: "process.user.additionalGids".into(),
                source: SysError::new("setgroups", e),
            });
        }
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .ctx("setresgid")
        .map_err(field("process.user.gid"))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .ctx("setresuid")
        .map_err(field("process.user.uid"))?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) } != 0 {
        return Err(SysError::new("prctl(PR_SET_KEEPCAPS)", Errno::last()).into());
    }
    // A uid change resets dumpability to fs.suid_dumpable, which a host may
    // set to 1: stay non-dumpable until execve.
    set_non_dumpable()?;
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
            mask as libc::mode_t,
        ));
    }
    Ok(())
}

/// Not dumpable until execve: /proc/PID/{exe,mem,fd,environ} of a process
/// still running capsa's code stay closed to the container's processes,
/// whatever capabilities they hold in the container's user namespace, and
/// ptrace is refused (CVE-2019-5736 class). execve makes the workload
/// dumpable again. Called first thing in every child that will enter a
/// container, and again after each credential change, which resets the
/// flag to fs.suid_dumpable.
pub fn set_non_dumpable() -> Result<(), SysError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(SysError::new("prctl(PR_SET_DUMPABLE)", Errno::last()));
    }
    Ok(())
}

/// process.noNewPrivileges.
pub fn set_no_new_privs(p: &Process) -> Result<(), SecurityError> {
    if p.no_new_privileges().unwrap_or(false) {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(SysError::new("prctl(PR_SET_NO_NEW_PRIVS)", Errno::last()).into());
        }
    }
    Ok(())
}
