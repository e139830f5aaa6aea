//! The five capability sets: computed as bit masks in the parent, applied in
//! the init with prctl/capset (one capset for three sets, not one
//! read-modify-write per capability).

use std::str::FromStr;

use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::sys::SysError;

/// Capability masks, bit N = capability number N.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

fn mask(set: Option<&Capabilities>) -> Result<u64, String> {
    let mut m = 0u64;
    for cap in set.into_iter().flatten() {
        let name = format!("CAP_{cap}");
        let c =
            caps::Capability::from_str(&name).map_err(|_| format!("unknown capability {name}"))?;
        m |= c.bitmask();
    }
    Ok(m)
}

impl CapSets {
    /// From process.capabilities; an absent section means no capabilities
    /// at all (the spec's and runc's reading), an absent set an empty one.
    pub fn from_spec(c: Option<&LinuxCapabilities>) -> Result<CapSets, String> {
        let Some(c) = c else {
            return Ok(CapSets::default());
        };
        Ok(CapSets {
            bounding: mask(c.bounding().as_ref())?,
            effective: mask(c.effective().as_ref())?,
            permitted: mask(c.permitted().as_ref())?,
            inheritable: mask(c.inheritable().as_ref())?,
            ambient: mask(c.ambient().as_ref())?,
        })
    }

    /// Refuse capabilities the runtime cannot grant: a process can only
    /// hold what is in the runtime's own bounding set (this host, a sandbox
    /// or a container, may lack some, e.g. CAP_SYS_RESOURCE). Without this
    /// check capset fails in the init with a bare EPERM, as in runc. The
    /// bounding set itself may name more: keeping a capability that is
    /// already gone is a no-op, as in runc. Returns (set name, capability).
    pub fn check_grantable(&self) -> Result<(), (&'static str, String)> {
        let held = self.effective | self.permitted | self.inheritable | self.ambient;
        let missing = held & !in_own_bounding(held);
        if missing == 0 {
            return Ok(());
        }
        let cap = missing.trailing_zeros();
        let set = [
            ("effective", self.effective),
            ("permitted", self.permitted),
            ("inheritable", self.inheritable),
            ("ambient", self.ambient),
        ]
        .into_iter()
        .find(|(_, m)| m & (1u64 << cap) != 0)
        .map_or("effective", |(n, _)| n);
        let name = caps::all()
            .into_iter()
            .find(|c| c.index() as u32 == cap)
            .map_or_else(|| format!("capability {cap}"), |c| c.to_string());
        Err((set, name))
    }
}

/// Which of the capabilities in `wanted` are in this process's bounding
/// set (one prctl per wanted capability).
fn in_own_bounding(wanted: u64) -> u64 {
    let mut have = 0u64;
    for cap in 0..64u32 {
        if wanted & (1u64 << cap) == 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if r == 1 {
            have |= 1u64 << cap;
        }
    }
    have
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drop every capability outside the bounding set (needs CAP_SETPCAP, so it
/// runs before the user switch).
pub fn apply_bounding(sets: &CapSets) -> Result<(), SysError> {
    for cap in 0..=last_cap().min(63) {
        if sets.bounding & (1u64 << cap) == 0 {
            // SAFETY: prctl with integer arguments only.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if r != 0 && Errno::last() != Errno::EINVAL {
                return Err(SysError::new("prctl(PR_CAPBSET_DROP)", Errno::last()));
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Set effective, permitted and inheritable in one capset(2), then the
/// ambient set (which needs its caps in permitted and inheritable).
pub fn apply(sets: &CapSets) -> Result<(), SysError> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let lo = |m: u64| (m & 0xffff_ffff) as u32;
    let hi = |m: u64| (m >> 32) as u32;
    let data = [
        CapData {
            effective: lo(sets.effective),
            permitted: lo(sets.permitted),
            inheritable: lo(sets.inheritable),
        },
        CapData {
            effective: hi(sets.effective),
            permitted: hi(sets.permitted),
            inheritable: hi(sets.inheritable),
        },
    ];
    // SAFETY: hdr and data are valid repr(C) structs of the v3 layout the
    // kernel expects (one header, two data elements), alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(SysError::new("capset", Errno::last()));
    }
    // SAFETY: prctl with integer arguments only.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    if r != 0 && Errno::last() != Errno::EINVAL {
        return Err(SysError::new(
            "prctl(PR_CAP_AMBIENT_CLEAR_ALL)",
            Errno::last(),
        ));
    }
    for cap in 0..64u32 {
        if sets.ambient & (1u64 << cap) != 0 {
            // SAFETY: prctl with integer arguments only.
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            };
            // runc ignores an ambient cap that cannot be raised (not in
            // permitted/inheritable); so do we.
            if r != 0 && Errno::last() != Errno::EPERM && Errno::last() != Errno::EINVAL {
                return Err(SysError::new("prctl(PR_CAP_AMBIENT_RAISE)", Errno::last()));
            }
        }
    }
    Ok(())
}

/// CAP_SYS_ADMIN, which loading a seccomp filter without no_new_privs needs.
pub const SYS_ADMIN: u64 = 1 << 21;

/// The calling thread's sets (capget), as the v3 header and two data
/// elements that capset takes back.
fn capget() -> Result<(CapHeader, [CapData; 2]), SysError> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: hdr and data are valid repr(C) structs of the v3 layout the
    // kernel fills (one header, two data elements), alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(SysError::new("capget", Errno::last()));
    }
    Ok((hdr, data))
}

/// The permitted set of the calling thread.
fn permitted() -> Result<u64, SysError> {
    let (_, data) = capget()?;
    Ok(u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32))
}

/// Make the effective set `want` (within the permitted set), the other
/// sets unchanged.
pub fn set_effective(want: u64) -> Result<(), SysError> {
    let (mut hdr, mut data) = capget()?;
    data[0].effective = (want as u32) & data[0].permitted;
    data[1].effective = ((want >> 32) as u32) & data[1].permitted;
    // SAFETY: the v3 header and two data elements; the kernel only reads them.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(SysError::new("capset", Errno::last()));
    }
    Ok(())
}

/// Carry every capability held now (and the bounding set, untouched)
/// across the next execve, the trampoline's: effective, permitted,
/// inheritable and ambient all become the permitted set. The trampoline
/// then sets the configured sets itself, keeping CAP_SYS_ADMIN in
/// effective just long enough to load the seccomp filter (without
/// no_new_privs the kernel wants it), so that nothing but the workload's
/// execve follows the filter. The sets the workload gets are those of
/// `apply`: execve computes them from the bounding, inheritable and
/// ambient sets and the uid, never from the old effective or permitted.
pub fn hand_over() -> Result<(), SysError> {
    let held = permitted()?;
    apply(&CapSets {
        bounding: 0,
        effective: held,
        permitted: held,
        inheritable: held,
        ambient: held,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder};

    #[test]
    fn masks_from_names() {
        let set: Capabilities = [
            Capability::Chown,
            Capability::Kill,
            Capability::CheckpointRestore,
        ]
        .into_iter()
        .collect();
        let c = LinuxCapabilitiesBuilder::default()
            .bounding(set.clone())
            .effective(set)
            .ambient(Capabilities::new())
            .build()
            .unwrap();
        let m = CapSets::from_spec(Some(&c)).unwrap();
        assert_eq!(m.bounding, (1 << 0) | (1 << 5) | (1 << 40));
        assert_eq!(m.effective, m.bounding);
        assert_eq!(m.ambient, 0);
    }
}
