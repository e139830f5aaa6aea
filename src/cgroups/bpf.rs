//! The bpf(2) calls behind cgroup v2 device control: load a
//! BPF_PROG_TYPE_CGROUP_DEVICE program, attach it to a cgroup, find and
//! detach the programs attached before. The program itself is built by
//! devices.rs from plain instructions; no loader library is needed for a
//! program this small (no maps, no relocations, no BTF).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::sys::{SysError, own};

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_F_REPLACE: u32 = 4;

/// One eBPF instruction (linux/bpf.h struct bpf_insn).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst register in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T, op: &'static str) -> Result<libc::c_long, SysError> {
    // SAFETY: attr is a fully initialised repr(C) prefix of union bpf_attr
    // for `cmd`, valid for its whole size; every pointer in it (insns,
    // license, log buffer, id array) points to live memory of the stated
    // length for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(SysError::new(op, Errno::last()));
    }
    Ok(ret)
}

/// Load a cgroup device program. On rejection the verifier's log is
/// returned with the error, since "invalid argument" alone says nothing.
pub fn load_device_prog(insns: &[Insn]) -> Result<OwnedFd, (SysError, String)> {
    let license = c"Apache";
    let mut log = vec![0u8; 0];
    for attempt in 0..2 {
        if attempt == 1 {
            log = vec![0u8; 1 << 16];
        }
        let mut attr = LoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(attempt == 1),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            ..Default::default()
        };
        attr.prog_name[..5].copy_from_slice(b"capsa");
        match bpf(BPF_PROG_LOAD, &mut attr, "bpf(BPF_PROG_LOAD)") {
            Ok(fd) => return Ok(own(fd as RawFd)),
            Err(e) if attempt == 1 || e.errno == Errno::EPERM || e.errno == Errno::ENOSYS => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                return Err((e, String::from_utf8_lossy(&log[..end]).trim().to_owned()));
            }
            Err(_) => {}
        }
    }
    Err((
        SysError::new("bpf(BPF_PROG_LOAD)", Errno::EINVAL),
        String::new(),
    ))
}

/// Ids of the device programs attached to the cgroup.
pub fn query_device_progs(cgroup: BorrowedFd<'_>) -> Result<Vec<u32>, SysError> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr, "bpf(BPF_PROG_QUERY)")?;
    ids.truncate(attr.prog_cnt.min(64) as usize);
    Ok(ids)
}

pub fn prog_fd_by_id(id: u32) -> Result<OwnedFd, SysError> {
    let mut attr = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    bpf(
        BPF_PROG_GET_FD_BY_ID,
        &mut attr,
        "bpf(BPF_PROG_GET_FD_BY_ID)",
    )
    .map(|fd| own(fd as RawFd))
}

/// Attach `prog` to the cgroup (as one of several), replacing `replace`
/// atomically if given (Linux 5.6).
pub fn attach(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    replace: Option<BorrowedFd<'_>>,
) -> Result<(), SysError> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    if let Some(r) = replace {
        attr.attach_flags |= BPF_F_REPLACE;
        attr.replace_bpf_fd = r.as_raw_fd() as u32;
    }
    bpf(BPF_PROG_ATTACH, &mut attr, "bpf(BPF_PROG_ATTACH)").map(|_| ())
}

pub fn detach(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> Result<(), SysError> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut attr, "bpf(BPF_PROG_DETACH)").map(|_| ())
}
