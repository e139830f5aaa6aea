//! linux.seccomp: compiled to BPF in the parent while the bundle is
//! validated (`compile.rs`, pure), loaded by the init with one seccomp(2)
//! call (`Filter::load`), and, for SCMP_ACT_NOTIFY, the listener fd handed
//! to the agent at linux.seccomp.listenerPath (`notify.rs`).
//!
//! Why not seccompiler: it has no SCMP_ACT_NOTIFY, compiles one architecture
//! per program (Docker's profiles list x86_64 + x86 + x32 in one filter) and
//! has no name tables for x32/x86. The generator here (compile.rs + bpf.rs) is
//! ~700 lines; owning it lets us merge number ranges into a binary search
//! (small, fast filters) and match runc's semantics (-ENOSYS stub, skipped
//! unknown names, one rule per comparison of a repeated argument).

mod bpf;
pub mod compile;
pub mod notify;
mod syscalls;
#[cfg(test)]
mod tests;
mod tree;

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::errno::Errno;
use oci_spec::runtime::LinuxSeccomp;
use serde_json::{Value, json};

use crate::sys::{self, SysError};
pub use compile::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("linux.seccomp: loading the filter: {0}")]
    Load(SysError),
    #[error("linux.seccomp.listenerPath {path}: {source}")]
    Listener { path: PathBuf, source: SysError },
}

/// Where SCMP_ACT_NOTIFY's listener fd goes.
#[derive(Debug, Clone)]
pub struct Listener {
    pub path: PathBuf,
    pub metadata: String,
}

/// A compiled profile, ready for the init to load.
#[derive(Clone)]
pub struct Filter {
    program: Vec<bpf::Insn>,
    flags: u32,
    /// Set when some rule uses SCMP_ACT_NOTIFY.
    pub listener: Option<Listener>,
    /// Parts of the profile skipped on purpose (unknown syscall names,
    /// architectures without a table): worth a debug log line each.
    pub warnings: Vec<String>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &self.flags)
            .field("listener", &self.listener)
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl Filter {
    /// Compile linux.seccomp for this host. Errors name the field.
    pub fn from_spec(s: &LinuxSeccomp) -> Result<Filter, Invalid> {
        let c = compile::compile(s)?;
        let listener = if c.notify {
            let path = s
                .listener_path()
                .clone()
                .filter(|p| !p.as_os_str().is_empty())
                .ok_or_else(|| Invalid {
                    field: "linux.seccomp.listenerPath".into(),
                    msg: "must be set when a rule uses SCMP_ACT_NOTIFY".into(),
                })?;
            Some(Listener {
                path,
                metadata: s.listener_metadata().clone().unwrap_or_default(),
            })
        } else {
            None
        };
        Ok(Filter {
            program: c.program,
            flags: c.flags,
            listener,
            warnings: c.warnings,
        })
    }

    /// Whether the filter plainly allows native syscall `nr` with `args`
    /// (SCMP_ACT_ALLOW; not LOG, ERRNO or anything else): the init makes
    /// calls of its own after loading it only if so.
    pub fn allows(&self, nr: i64, args: [u64; 6]) -> bool {
        const SECCOMP_RET_ACTION_FULL: u32 = 0xffff_0000;
        // struct seccomp_data: nr, arch, instruction_pointer, args[6].
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as i32).to_ne_bytes());
        data[4..8].copy_from_slice(&compile::Abi::native().audit().to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        bpf::run(&self.program, &data)
            .is_ok_and(|ret| ret & SECCOMP_RET_ACTION_FULL == compile::RET_ALLOW)
    }

    /// seccomp(SECCOMP_SET_MODE_FILTER) on the calling thread. Needs
    /// no_new_privs or CAP_SYS_ADMIN. Returns the listener fd when the
    /// profile uses SCMP_ACT_NOTIFY.
    pub fn load(&self) -> Result<Option<OwnedFd>, SeccompError> {
        let prog = Fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr(),
        };
        // SAFETY: prog points at self.program, a live array of `len`
        // sock_filter-layout instructions, for the duration of the call; the
        // kernel copies it and keeps no pointer.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const Fprog,
            )
        };
        if ret < 0 {
            let op = if self.flags == 0 {
                "seccomp(SECCOMP_SET_MODE_FILTER)"
            } else {
                "seccomp(SECCOMP_SET_MODE_FILTER, flags)"
            };
            return Err(SeccompError::Load(SysError::new(op, Errno::last())));
        }
        if self.flags & compile::FLAG_NEW_LISTENER != 0 {
            return Ok(Some(sys::own(ret as i32)));
        }
        Ok(None)
    }
}

impl Filter {
    /// The program and its flags in a memfd (not close-on-exec), for the
    /// trampoline to load after its own start-up (process/trampoline.rs):
    /// the init's copy of the program does not survive the execve.
    pub fn to_memfd(&self) -> Result<OwnedFd, SysError> {
        let mut bytes = Vec::with_capacity(8 + 8 * self.program.len());
        bytes.extend_from_slice(&self.flags.to_ne_bytes());
        bytes.extend_from_slice(&(self.program.len() as u32).to_ne_bytes());
        for i in &self.program {
            bytes.extend_from_slice(&i.code.to_ne_bytes());
            bytes.extend_from_slice(&[i.jt, i.jf]);
            bytes.extend_from_slice(&i.k.to_ne_bytes());
        }
        // SAFETY: memfd_create reads a NUL-terminated constant name.
        let fd = unsafe { libc::memfd_create(c"capsa-seccomp".as_ptr(), libc::MFD_ALLOW_SEALING) };
        if fd < 0 {
            return Err(SysError::new(
                "memfd_create (seccomp program)",
                Errno::last(),
            ));
        }
        let fd = sys::own(fd);
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, &bytes)
            .map_err(|e| SysError::new("write (seccomp program)", sys::io_errno(&e)))?;
        // Sealed: a process that reaches the fd (a rootless init waits
        // dumpable, process/idle.rs) cannot rewrite the filter.
        let seals =
            libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        // SAFETY: fcntl on a descriptor we own, with an integer argument.
        if unsafe {
            libc::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::F_ADD_SEALS,
                seals,
            )
        } != 0
        {
            return Err(SysError::new(
                "fcntl(F_ADD_SEALS) (seccomp program)",
                Errno::last(),
            ));
        }
        Ok(file.into())
    }

    /// Read back what `to_memfd` wrote (from offset 0, so several
    /// processes may each read the same fd).
    pub fn from_memfd(fd: &impl std::os::fd::AsRawFd) -> Result<Filter, SysError> {
        // The kernel takes at most BPF_MAXINSNS (4096) instructions.
        let mut buf = vec![0u8; 8 + 8 * 4096];
        let mut got = 0;
        loop {
            // SAFETY: reads into the unused tail of `buf`, which outlives the call.
            let n = unsafe {
                libc::pread(
                    fd.as_raw_fd(),
                    buf[got..].as_mut_ptr().cast(),
                    buf.len() - got,
                    got as libc::off_t,
                )
            };
            match n {
                0 => break,
                n if n > 0 => got += n as usize,
                _ if Errno::last() == Errno::EINTR => continue,
                _ => return Err(SysError::new("read (seccomp program)", Errno::last())),
            }
            if got == buf.len() {
                break;
            }
        }
        let word = |at: usize| u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let bad = || SysError::new("read (seccomp program): malformed", Errno::EINVAL);
        if got < 8 {
            return Err(bad());
        }
        let (flags, len) = (word(0), word(4) as usize);
        if len > 4096 || got != 8 + 8 * len {
            return Err(bad());
        }
        let program = buf[8..got]
            .chunks_exact(8)
            .map(|c| bpf::Insn {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(Filter {
            program,
            flags,
            listener: None,
            warnings: Vec::new(),
        })
    }
}

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;

/// struct sock_fprog.
#[repr(C)]
struct Fprog {
    len: u16,
    filter: *const bpf::Insn,
}

const FLAG_NAMES: &[(&str, u32)] = &[
    ("SECCOMP_FILTER_FLAG_TSYNC", compile::FLAG_TSYNC),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", compile::FLAG_SPEC_ALLOW),
    ("SECCOMP_FILTER_FLAG_LOG", compile::FLAG_LOG),
    (
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        compile::FLAG_WAIT_KILLABLE_RECV | compile::FLAG_NEW_LISTENER,
    ),
];

/// Whether this kernel accepts a filter flag: with a NULL program, a known
/// flag fails with EFAULT (copying the program), an unknown one with EINVAL.
/// Nothing is installed either way.
fn kernel_accepts(flags: u32) -> bool {
    // SAFETY: a NULL program makes the kernel fail before installing
    // anything; no memory of ours is read or written.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::null::<Fprog>(),
        )
    };
    ret < 0 && Errno::last() == Errno::EFAULT
}

/// The `linux.seccomp` object of `capsa features` (runtime-spec features.md).
pub fn features() -> Value {
    let known: Vec<&str> = FLAG_NAMES.iter().map(|(n, _)| *n).collect();
    let supported: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(_, f)| kernel_accepts(*f))
        .map(|(n, _)| *n)
        .collect();
    json!({
        "enabled": true,
        "actions": [
            "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
            "SCMP_ACT_TRAP"
        ],
        "operators": [
            "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
            "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
        ],
        "archs": compile::ARCHS,
        "knownFlags": known,
        "supportedFlags": supported,
    })
}

#[cfg(test)]
mod memfd_tests {
    use super::*;

    /// What the init writes is what the trampoline loads: program and flags.
    #[test]
    fn memfd_round_trip() {
        let spec: LinuxSeccomp = serde_json::from_value(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["read", "write", "execve"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .expect("spec");
        let f = Filter::from_spec(&spec).expect("compiles");
        let fd = f.to_memfd().expect("memfd");
        for _ in 0..2 {
            // Read from offset 0 each time: every hook's trampoline reads it too.
            let back = Filter::from_memfd(&fd).expect("reads back");
            assert_eq!(back.program, f.program);
            assert_eq!(back.flags, f.flags);
        }
        // Sealed: what reaches the fd cannot change the program.
        let sealed = std::fs::File::from(f.to_memfd().expect("memfd"));
        assert!(sealed.set_len(4).is_err());
        assert!(std::os::unix::fs::FileExt::write_at(&sealed, b"x", 0).is_err());
        // A short program is refused.
        // SAFETY: memfd_create reads a NUL-terminated constant name.
        let short = unsafe { libc::memfd_create(c"short".as_ptr(), 0) };
        assert!(short >= 0);
        let short = std::fs::File::from(sys::own(short));
        short.set_len(4).expect("truncate");
        assert!(Filter::from_memfd(&short).is_err());
    }
}
