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

    /// Keep only the capabilities in `bound`. Docker 20.10's --privileged
    /// asks for every capability the kernel knows, even those its host (a
    /// container, a sandbox) lacks: runc then fails in capset with EPERM
    /// (moby#42906). No process under the runtime can ever hold a capability
    /// outside the runtime's bounding set, so asking for it grants nothing;
    /// containerd and podman already trim privileged sets the same way.
    pub fn within(self, bound: u64) -> CapSets {
        CapSets {
            bounding: self.bounding & bound,
            effective: self.effective & bound,
            permitted: self.permitted & bound,
            inheritable: self.inheritable & bound,
            ambient: self.ambient & bound,
        }
    }

    fn any(&self) -> u64 {
        self.bounding | self.effective | self.permitted | self.inheritable | self.ambient
    }
}

/// Which of the capabilities in `wanted` are in this process's bounding
/// set (one prctl per wanted capability).
pub fn in_own_bounding(wanted: &CapSets) -> u64 {
    let wanted = wanted.any();
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
        let trimmed = m.within(1 << 5);
        assert_eq!(trimmed.bounding, 1 << 5);
        assert_eq!(trimmed.effective, 1 << 5);
    }
}
