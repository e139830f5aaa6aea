//! linux.intelRdt: capsa does not manage resctrl groups, so a config that
//! asks for one is refused before anything is created, with the reason.
//! runtime-spec requires an error when no resctrl filesystem is mounted;
//! where one is mounted, capsa still refuses rather than start a container
//! without the cache and bandwidth allocation it asked for (`capsa
//! features` reports intelRdt as not enabled).

use oci_spec::runtime::LinuxIntelRdt;

/// The message for a config that sets linux.intelRdt.
pub fn refusal(_rdt: &LinuxIntelRdt) -> String {
    if resctrl_mounted() {
        "capsa does not manage resctrl groups (closID, schemata, monitoring): \
         remove linux.intelRdt, or use a runtime that does"
            .into()
    } else {
        "Intel RDT is not available: no resctrl filesystem is mounted".into()
    }
}

/// Whether the runtime's mount namespace has a resctrl mount.
fn resctrl_mounted() -> bool {
    crate::mountinfo::read().is_ok_and(|ms| ms.iter().any(|m| m.fstype == "resctrl"))
}
