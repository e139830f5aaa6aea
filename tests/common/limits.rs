//! Host limits a test makes for itself instead of skipping where the host lacks them: the
//! runtime under test is spawned with the limit applied in its own (forked) process only, so
//! a test of "what the runtime does on a host without X" runs on every host.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// capget/capset's header and one 32-bit half of the sets (linux/capability.h, version 3).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

/// Spawn the command without capability `cap` anywhere it could come back from at execve:
/// dropped from the bounding set, the inheritable set and the ambient set. For a root
/// process execve then leaves it out of the permitted and effective sets too, which is
/// what a host whose bounding set lacks `cap` gives the runtime.
pub fn without_capability(cmd: &mut Command, cap: u32) {
    // SAFETY: the closure runs in the forked child before exec and makes only the raw
    // syscalls prctl, capget and capset (async-signal-safe, no allocation), on
    // stack values it owns.
    unsafe {
        cmd.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0 {
                return fail();
            }
            // EINVAL: a kernel without ambient capabilities has none to lower.
            if libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_LOWER as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            ) != 0
                && *libc::__errno_location() != libc::EINVAL
            {
                return fail();
            }
            let mut hdr = CapHeader {
                version: CAP_VERSION_3,
                pid: 0,
            };
            let mut data = [CapData::default(); 2];
            if libc::syscall(
                libc::SYS_capget,
                &mut hdr as *mut CapHeader,
                data.as_mut_ptr(),
            ) != 0
            {
                return fail();
            }
            data[(cap / 32) as usize].inheritable &= !(1u32 << (cap % 32));
            if libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) != 0 {
                return fail();
            }
            Ok(())
        });
    }
}

/// Spawn the command with `resource`'s soft and hard limits set to `value` (lowering a
/// hard limit needs no privilege).
pub fn with_rlimit(cmd: &mut Command, resource: libc::__rlimit_resource_t, value: u64) {
    // SAFETY: the closure runs in the forked child before exec and calls only setrlimit
    // (async-signal-safe) on a stack value.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
