//! Linux security modules: process.apparmorProfile, process.selinuxLabel and
//! linux.mountLabel. Applied when the host runs that LSM; otherwise capsa
//! does what runc does on such a host, only earlier (in the parent, before
//! anything is created) and with a message that names the field:
//!
//! | asked for | LSM absent: runc | capsa |
//! |---|---|---|
//! | apparmorProfile | create fails: its write of "exec PROFILE" to attr/exec gets EINVAL | refused |
//! | selinuxLabel | refused: "selinux label is specified in config, but selinux is disabled or not supported" | refused, same words |
//! | mountLabel | runc 1.1 passes `context=` to tmpfs and the mount fails; later versions drop it | ignored: never a `context=` option |
//!
//! `exec --apparmor` / `--process-label` set the same Process fields, so the
//! same rules apply (runc fails those execs on such a host too).

use std::path::Path;

use nix::sys::statfs::FsType;
use oci_spec::runtime::Process;

use crate::procfs::ProcRoot;
use crate::sys::SysError;

/// The selinuxfs magic number (linux/magic.h SELINUX_MAGIC).
const SELINUX_MAGIC: FsType = FsType(0xf97c_ff8c);

/// AppArmor is active: its securityfs directory exists and the module says
/// it is enabled (runc's test, word for word).
pub fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|b| b.first() == Some(&b'Y'))
}

/// SELinux is active: selinuxfs is mounted where libselinux expects it.
pub fn selinux_enabled() -> bool {
    nix::sys::statfs::statfs("/sys/fs/selinux").is_ok_and(|s| s.filesystem_type() == SELINUX_MAGIC)
}

/// The LSM fields of `process` (config.json's, or an exec's) that this host
/// cannot honour. `prefix` is the field path of the process ("process").
pub fn check(process: &Process, prefix: &str) -> Result<(), (String, String)> {
    if let Some(p) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        if !apparmor_enabled() {
            return Err((
                format!("{prefix}.apparmorProfile"),
                format!("profile {p:?} is set, but AppArmor is not enabled on this host"),
            ));
        }
        if p.contains(['\0', '\n']) {
            return Err((
                format!("{prefix}.apparmorProfile"),
                "a profile name cannot contain NUL or newline".into(),
            ));
        }
    }
    if let Some(l) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        if !selinux_enabled() {
            return Err((
                format!("{prefix}.selinuxLabel"),
                "selinux label is specified in config, but selinux is disabled or not supported"
                    .into(),
            ));
        }
        if l.contains('\0') {
            return Err((
                format!("{prefix}.selinuxLabel"),
                "a label cannot contain a NUL byte".into(),
            ));
        }
    }
    Ok(())
}

/// Ask the kernel to switch to an AppArmor profile and/or SELinux label at
/// the coming execve. Runs in the process itself (only a task can set its
/// own attributes), right before that execve (the trampoline's, see
/// process/trampoline.rs), through a verified procfs: a /proc the container
/// controls must not receive the write (CVE-2025-52881 class). Empty values
/// mean "not set".
pub fn apply_labels(
    profile: Option<&str>,
    label: Option<&str>,
) -> Result<(), (&'static str, SysError)> {
    let profile = profile.filter(|p| !p.is_empty());
    let label = label.filter(|l| !l.is_empty());
    if profile.is_none() && label.is_none() {
        return Ok(());
    }
    let field = if profile.is_some() {
        "process.apparmorProfile"
    } else {
        "process.selinuxLabel"
    };
    let proc = ProcRoot::open().map_err(|e| (field, e))?;
    if let Some(p) = profile {
        // The per-LSM file first (stacked LSMs), else the shared one.
        let attr = if proc.exists("thread-self/attr/apparmor/exec") {
            "thread-self/attr/apparmor/exec"
        } else {
            "thread-self/attr/exec"
        };
        proc.write(attr, format!("exec {p}").as_bytes())
            .map_err(|e| ("process.apparmorProfile", e))?;
    }
    if let Some(l) = label {
        proc.write("thread-self/attr/exec", l.as_bytes())
            .map_err(|e| ("process.selinuxLabel", e))?;
    }
    Ok(())
}

/// linux.mountLabel, when the host can use it (None otherwise).
pub fn mount_label(label: Option<&str>) -> Option<&str> {
    label.filter(|l| !l.is_empty() && selinux_enabled())
}

/// Mount data with the SELinux `context=` option added, for the mount types
/// runc labels: file systems mounted from config.json other than bind
/// mounts, proc, sysfs, mqueue and cgroup (those cannot take it or get their
/// label otherwise). `label` is what [`mount_label`] returned.
pub fn label_mount_data(data: &str, fstype: &str, label: Option<&str>) -> String {
    let Some(label) = label else {
        return data.to_string();
    };
    if matches!(
        fstype,
        "proc" | "sysfs" | "mqueue" | "cgroup" | "cgroup2" | "bind" | "none"
    ) {
        return data.to_string();
    }
    if data.is_empty() {
        format!("context=\"{label}\"")
    } else {
        format!("{data},context=\"{label}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::ProcessBuilder;

    #[test]
    fn mount_data_labels_only_when_asked() {
        assert_eq!(label_mount_data("mode=755", "tmpfs", None), "mode=755");
        let l = Some("system_u:object_r:container_file_t:s0:c1,c2");
        assert_eq!(
            label_mount_data("mode=755", "tmpfs", l),
            "mode=755,context=\"system_u:object_r:container_file_t:s0:c1,c2\""
        );
        assert_eq!(
            label_mount_data("", "devpts", l),
            "context=\"system_u:object_r:container_file_t:s0:c1,c2\""
        );
        for t in ["proc", "sysfs", "mqueue", "cgroup", "cgroup2"] {
            assert_eq!(label_mount_data("x", t, l), "x", "{t}");
        }
    }

    #[test]
    fn absent_lsms_are_refused_with_the_field() {
        let mut p = ProcessBuilder::default().build().expect("process");
        assert!(check(&p, "process").is_ok());
        p.set_apparmor_profile(Some("docker-default".into()));
        if !apparmor_enabled() {
            let (field, msg) = check(&p, "process").expect_err("no AppArmor here");
            assert_eq!(field, "process.apparmorProfile");
            assert!(msg.contains("docker-default"), "{msg}");
        }
        p.set_apparmor_profile(None);
        p.set_selinux_label(Some("system_u:system_r:container_t:s0".into()));
        if !selinux_enabled() {
            let (field, msg) = check(&p, "process").expect_err("no SELinux here");
            assert_eq!(field, "process.selinuxLabel");
            assert!(msg.contains("selinux is disabled"), "{msg}");
        }
        // Empty values mean "not set".
        p.set_selinux_label(Some(String::new()));
        p.set_apparmor_profile(Some(String::new()));
        assert!(check(&p, "process").is_ok());
        assert!(mount_label(Some("")).is_none());
    }
}
