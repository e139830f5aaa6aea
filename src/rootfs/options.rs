//! Pure decisions about mounts: fstab-style options to MS_* flags,
//! propagation and the data string; lexical cleaning of container paths.

use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;

use super::newmount::{
    MOUNT_ATTR_ATIME_MASK, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME,
};

/// One `mounts[]` entry's options, split the way mount(2) wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount(2) call itself (MS_BIND/MS_REC included).
    pub flags: MsFlags,
    /// Propagation changes, each applied by its own mount(2) after mounting.
    pub propagation: Vec<MsFlags>,
    /// Everything else, comma-joined, as the filesystem's data argument.
    pub data: String,
    /// Recursive attributes (runc's "rro", "rnosuid", ...): MOUNT_ATTR_*
    /// bits to set and clear with mount_setattr(AT_RECURSIVE).
    pub rec_set: u64,
    pub rec_clr: u64,
    /// "tmpcopyup": seed a tmpfs with the destination's previous contents.
    pub copy_up: bool,
    /// "idmap" (top mount only) or "ridmap" (every mount of the tree).
    pub idmap: Option<Idmap>,
    /// Flags an option explicitly cleared ("rw", "suid", "dev", "exec"): in
    /// a user namespace, clearing one the source has locked is an error.
    pub cleared: MsFlags,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            data: String::new(),
            rec_set: 0,
            rec_clr: 0,
            copy_up: false,
            idmap: None,
            cleared: MsFlags::empty(),
        }
    }
}

/// How far an id mapping reaches in a (recursive) bind mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idmap {
    Top,
    Recursive,
}

/// MS_NOSYMFOLLOW (Linux 5.10), missing from nix and libc.
const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

// The option tables below are the single list of what capsa understands:
// parsing reads them, and `capsa features` lists their names.

/// Options that set (or, with `true`, clear) a mount(2) flag.
const FLAG_OPTIONS: &[(&str, bool, MsFlags)] = {
    use MsFlags as F;
    &[
        ("ro", false, F::MS_RDONLY),
        ("rw", true, F::MS_RDONLY),
        ("nosuid", false, F::MS_NOSUID),
        ("suid", true, F::MS_NOSUID),
        ("nodev", false, F::MS_NODEV),
        ("dev", true, F::MS_NODEV),
        ("noexec", false, F::MS_NOEXEC),
        ("exec", true, F::MS_NOEXEC),
        ("sync", false, F::MS_SYNCHRONOUS),
        ("async", true, F::MS_SYNCHRONOUS),
        ("dirsync", false, F::MS_DIRSYNC),
        ("remount", false, F::MS_REMOUNT),
        ("mand", false, F::MS_MANDLOCK),
        ("nomand", true, F::MS_MANDLOCK),
        ("atime", true, F::MS_NOATIME),
        ("noatime", false, F::MS_NOATIME),
        ("diratime", true, F::MS_NODIRATIME),
        ("nodiratime", false, F::MS_NODIRATIME),
        ("bind", false, F::MS_BIND),
        ("rbind", false, F::MS_BIND.union(F::MS_REC)),
        ("relatime", false, F::MS_RELATIME),
        ("norelatime", true, F::MS_RELATIME),
        ("strictatime", false, F::MS_STRICTATIME),
        ("nostrictatime", true, F::MS_STRICTATIME),
        ("silent", false, F::MS_SILENT),
        ("loud", true, F::MS_SILENT),
        ("lazytime", false, F::MS_LAZYTIME),
        ("nolazytime", true, F::MS_LAZYTIME),
        ("iversion", false, F::MS_I_VERSION),
        ("noiversion", true, F::MS_I_VERSION),
        // Not in runtime-spec's table; runc has them (MS_POSIXACL).
        ("acl", false, F::MS_POSIXACL),
        ("noacl", true, F::MS_POSIXACL),
        // fstab's placeholder: no flag at all (and not filesystem data).
        ("defaults", false, F::empty()),
        ("nosymfollow", false, MS_NOSYMFOLLOW),
        ("symfollow", true, MS_NOSYMFOLLOW),
    ]
};

/// Propagation options, each applied by its own mount(2) call.
const PROPAGATION_OPTIONS: &[(&str, MsFlags)] = {
    use MsFlags as F;
    &[
        ("private", F::MS_PRIVATE),
        ("rprivate", F::MS_PRIVATE.union(F::MS_REC)),
        ("shared", F::MS_SHARED),
        ("rshared", F::MS_SHARED.union(F::MS_REC)),
        ("slave", F::MS_SLAVE),
        ("rslave", F::MS_SLAVE.union(F::MS_REC)),
        ("unbindable", F::MS_UNBINDABLE),
        ("runbindable", F::MS_UNBINDABLE.union(F::MS_REC)),
    ]
};

/// Recursive attributes (mount_setattr with AT_RECURSIVE): (name, clear?,
/// MOUNT_ATTR_* bit).
const RECURSIVE_OPTIONS: &[(&str, bool, u64)] = &[
    ("rro", false, MOUNT_ATTR_RDONLY),
    ("rrw", true, MOUNT_ATTR_RDONLY),
    ("rnosuid", false, MOUNT_ATTR_NOSUID),
    ("rsuid", true, MOUNT_ATTR_NOSUID),
    ("rnodev", false, MOUNT_ATTR_NODEV),
    ("rdev", true, MOUNT_ATTR_NODEV),
    ("rnoexec", false, MOUNT_ATTR_NOEXEC),
    ("rexec", true, MOUNT_ATTR_NOEXEC),
    ("rnodiratime", false, MOUNT_ATTR_NODIRATIME),
    ("rdiratime", true, MOUNT_ATTR_NODIRATIME),
    ("rrelatime", false, MOUNT_ATTR_RELATIME),
    ("rnorelatime", true, MOUNT_ATTR_RELATIME),
    ("rnoatime", false, MOUNT_ATTR_NOATIME),
    ("ratime", true, MOUNT_ATTR_NOATIME),
    ("rstrictatime", false, MOUNT_ATTR_STRICTATIME),
    ("rnostrictatime", true, MOUNT_ATTR_STRICTATIME),
    ("rnosymfollow", false, MOUNT_ATTR_NOSYMFOLLOW),
    ("rsymfollow", true, MOUNT_ATTR_NOSYMFOLLOW),
];

/// runtime-spec extensions capsa carries out itself.
const EXTENSION_OPTIONS: &[&str] = &["tmpcopyup", "idmap", "ridmap"];

/// Every option name capsa understands (sorted), for `capsa features`.
pub fn known_options() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = FLAG_OPTIONS
        .iter()
        .map(|o| o.0)
        .chain(PROPAGATION_OPTIONS.iter().map(|o| o.0))
        .chain(RECURSIVE_OPTIONS.iter().map(|o| o.0))
        .chain(EXTENSION_OPTIONS.iter().copied())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A recursive attribute option: (clear?, MOUNT_ATTR_* bit).
fn recursive_option(opt: &str) -> Option<(bool, u64)> {
    RECURSIVE_OPTIONS
        .iter()
        .find(|o| o.0 == opt)
        .map(|&(_, clear, attr)| (clear, attr))
}

fn is_atime_option(opt: &str) -> bool {
    matches!(
        opt,
        "rrelatime" | "rnorelatime" | "rnoatime" | "ratime" | "rstrictatime" | "rnostrictatime"
    )
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// A bind mount ignores per-mount flags on the first call: anything
    /// beyond MS_BIND|MS_REC needs a MS_REMOUNT afterwards.
    pub fn bind_needs_remount(&self) -> bool {
        self.is_bind() && !(self.flags - (MsFlags::MS_BIND | MsFlags::MS_REC)).is_empty()
    }
}

/// An option that sets (or, with `clear`, removes) a mount flag.
fn flag_option(opt: &str) -> Option<(bool, MsFlags)> {
    FLAG_OPTIONS
        .iter()
        .find(|o| o.0 == opt)
        .map(|&(_, clear, flag)| (clear, flag))
}

/// A propagation option as the flags of its own mount(2) call.
pub fn propagation_option(opt: &str) -> Option<MsFlags> {
    PROPAGATION_OPTIONS.iter().find(|o| o.0 == opt).map(|o| o.1)
}

/// Split a mount's options (in order; later ones win, as with mount(8)).
/// `typ` "bind" implies MS_BIND even without a bind/rbind option.
pub fn parse_mount_options(typ: Option<&str>, options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        if let Some((clear, flag)) = flag_option(opt) {
            if clear {
                out.flags.remove(flag);
                out.cleared.insert(flag);
            } else {
                out.flags.insert(flag);
                out.cleared.remove(flag);
            }
        } else if let Some(p) = propagation_option(opt) {
            out.propagation.push(p);
        } else if let Some((clear, attr)) = recursive_option(opt) {
            // The atime mode is one 3-bit field: any change replaces it
            // (kernel rule: clear the whole field, set at most one value).
            if is_atime_option(opt) {
                out.rec_clr |= MOUNT_ATTR_ATIME_MASK;
                out.rec_set &= !MOUNT_ATTR_ATIME_MASK;
                if !clear {
                    out.rec_set |= attr;
                }
            } else if clear {
                out.rec_clr |= attr;
                out.rec_set &= !attr;
            } else {
                out.rec_set |= attr;
                out.rec_clr &= !attr;
            }
        } else if opt == "tmpcopyup" {
            out.copy_up = true;
        } else if opt == "idmap" {
            out.idmap = Some(Idmap::Top);
        } else if opt == "ridmap" {
            out.idmap = Some(Idmap::Recursive);
        } else {
            data.push(opt);
        }
    }
    if typ == Some("bind") {
        out.flags.insert(MsFlags::MS_BIND);
    }
    out.data = data.join(",");
    out
}

/// The rootfs propagation mount(2) flags for `linux.rootfsPropagation`
/// (default: rslave, as runc). None for an unknown value.
pub fn root_propagation(value: Option<&str>) -> Option<MsFlags> {
    match value {
        None | Some("") => Some(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        Some(v) => propagation_option(v),
    }
}

/// The mount flags of statvfs(3) `f_flag` that the kernel locks on a mount
/// inherited from a more privileged user namespace: a bind remount that
/// drops one of them fails with EPERM. (Atime flags are locked too, but a
/// remount that names no atime flag keeps the current ones.)
pub fn locked_flags(f_flag: u64) -> MsFlags {
    let pairs: [(u64, MsFlags); 4] = [
        (libc::ST_RDONLY, MsFlags::MS_RDONLY),
        (libc::ST_NOSUID, MsFlags::MS_NOSUID),
        (libc::ST_NODEV, MsFlags::MS_NODEV),
        (libc::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ];
    pairs
        .iter()
        .filter(|(st, _)| f_flag & st != 0)
        .fold(MsFlags::empty(), |acc, (_, ms)| acc | *ms)
}

/// The flags of a bind remount: what the mount asked for plus `keep` (the
/// locked flags of the mount as it is, in a user namespace; empty
/// otherwise, as runc, so that e.g. "bind,ro" of a nosuid source is ro only).
pub fn bind_remount_flags(asked: MsFlags, keep: MsFlags) -> MsFlags {
    let mut flags = asked | keep | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    flags.remove(MsFlags::MS_REC);
    flags
}

/// A container path made absolute and lexically clean: relative paths are
/// relative to the container's "/", ".." never climbs above "/".
pub fn clean_container_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// runc's rule for mounts below /proc: only onto /proc itself (from a
/// procfs), or onto the few files lxcfs emulates. Anything else could hide
/// or redirect the kernel interfaces the container's limits rely on.
pub fn proc_destination_allowed(dest: &Path, source_is_proc: bool) -> bool {
    const LXCFS: [&str; 10] = [
        "/proc/cpuinfo",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/swaps",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/slabinfo",
        "/proc/net/dev",
        "/proc/sys/kernel/ns_last_pid",
    ];
    if !dest.starts_with("/proc") {
        return true;
    }
    if dest == Path::new("/proc") {
        return source_is_proc;
    }
    LXCFS.iter().any(|v| dest == Path::new(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use MsFlags as F;

    fn opts(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    /// (type, options, flags, propagation, data)
    type Case<'a> = (
        Option<&'a str>,
        Vec<&'a str>,
        MsFlags,
        Vec<MsFlags>,
        &'a str,
    );

    #[test]
    fn option_table() {
        // (type, options, flags, propagation, data)
        let cases: Vec<Case> = vec![
            (Some("proc"), vec![], F::empty(), vec![], ""),
            (
                Some("tmpfs"),
                vec!["nosuid", "strictatime", "mode=755", "size=65536k"],
                F::MS_NOSUID | F::MS_STRICTATIME,
                vec![],
                "mode=755,size=65536k",
            ),
            (
                Some("devpts"),
                vec![
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
                F::MS_NOSUID | F::MS_NOEXEC,
                vec![],
                "newinstance,ptmxmode=0666,mode=0620,gid=5",
            ),
            (
                Some("bind"),
                vec!["ro"],
                F::MS_BIND | F::MS_RDONLY,
                vec![],
                "",
            ),
            (
                Some("none"),
                vec!["rbind", "rprivate", "nodev"],
                F::MS_BIND | F::MS_REC | F::MS_NODEV,
                vec![F::MS_PRIVATE | F::MS_REC],
                "",
            ),
            // later options win, "rw" clears an earlier "ro"
            (Some("tmpfs"), vec!["ro", "rw"], F::empty(), vec![], ""),
            (Some("tmpfs"), vec!["rw", "ro"], F::MS_RDONLY, vec![], ""),
            (
                None,
                vec!["suid", "dev", "exec", "async", "atime", "loud", "nomand"],
                F::empty(),
                vec![],
                "",
            ),
            (
                Some("ext4"),
                vec![
                    "sync",
                    "dirsync",
                    "noatime",
                    "nodiratime",
                    "lazytime",
                    "iversion",
                    "silent",
                ],
                F::MS_SYNCHRONOUS
                    | F::MS_DIRSYNC
                    | F::MS_NOATIME
                    | F::MS_NODIRATIME
                    | F::MS_LAZYTIME
                    | F::MS_I_VERSION
                    | F::MS_SILENT,
                vec![],
                "",
            ),
            (
                Some("ext4"),
                vec![
                    "relatime",
                    "norelatime",
                    "strictatime",
                    "nostrictatime",
                    "mand",
                    "remount",
                ],
                F::MS_MANDLOCK | F::MS_REMOUNT,
                vec![],
                "",
            ),
            (
                Some("tmpfs"),
                vec![
                    "shared",
                    "slave",
                    "private",
                    "unbindable",
                    "runbindable",
                    "rshared",
                ],
                F::empty(),
                vec![
                    F::MS_SHARED,
                    F::MS_SLAVE,
                    F::MS_PRIVATE,
                    F::MS_UNBINDABLE,
                    F::MS_UNBINDABLE | F::MS_REC,
                    F::MS_SHARED | F::MS_REC,
                ],
                "",
            ),
        ];
        for (typ, o, flags, prop, data) in cases {
            let got = parse_mount_options(typ, &opts(&o));
            assert_eq!(got.flags, flags, "{typ:?} {o:?}");
            assert_eq!(got.propagation, prop, "{typ:?} {o:?}");
            assert_eq!(got.data, data, "{typ:?} {o:?}");
        }
    }

    #[test]
    fn recursive_and_extension_options() {
        let o = parse_mount_options(
            Some("bind"),
            &opts(&[
                "rbind",
                "rro",
                "rnosuid",
                "rnoatime",
                "tmpcopyup",
                "nosymfollow",
                "x=1",
            ]),
        );
        assert_eq!(o.flags, F::MS_BIND | F::MS_REC | MS_NOSYMFOLLOW);
        assert_eq!(
            o.rec_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.rec_clr, MOUNT_ATTR_ATIME_MASK);
        assert!(o.copy_up && o.idmap.is_none());
        assert_eq!(o.data, "x=1");
        let o = parse_mount_options(Some("tmpfs"), &opts(&["defaults", "size=1m"]));
        assert_eq!((o.flags, o.data.as_str()), (F::empty(), "size=1m"));
        // later wins; clearing an atime mode leaves relatime (0)
        let o = parse_mount_options(
            None,
            &opts(&["rro", "rrw", "rstrictatime", "ratime", "ridmap"]),
        );
        assert_eq!(
            (o.rec_set, o.rec_clr),
            (0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_ATIME_MASK)
        );
        assert_eq!(o.idmap, Some(Idmap::Recursive));
        assert_eq!(o.data, "");
        let o = parse_mount_options(Some("bind"), &opts(&["ridmap", "idmap"]));
        assert_eq!(o.idmap, Some(Idmap::Top), "the later one wins");
    }

    /// Every name `capsa features` lists is consumed by the parser (none
    /// leaks into the filesystem data), and the list has runtime-spec's
    /// recursive and extension options.
    #[test]
    fn known_options_are_all_parsed() {
        let names = known_options();
        for name in &names {
            let o = parse_mount_options(Some("tmpfs"), &opts(&[name]));
            assert_eq!(o.data, "", "{name} fell through to data");
        }
        for want in [
            "rro",
            "rnosymfollow",
            "idmap",
            "ridmap",
            "tmpcopyup",
            "rbind",
            "nosymfollow",
        ] {
            assert!(names.contains(&want), "{want} missing");
        }
        assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
    }

    #[test]
    fn remount_needed_only_for_bind_with_flags() {
        let cases = [
            (Some("bind"), vec!["rbind"], false),
            (Some("bind"), vec!["rbind", "ro"], true),
            (Some("none"), vec!["bind", "nosuid"], true),
            (Some("tmpfs"), vec!["ro"], false),
            (Some("bind"), vec!["rprivate"], false),
        ];
        for (typ, o, want) in cases {
            assert_eq!(
                parse_mount_options(typ, &opts(&o)).bind_needs_remount(),
                want,
                "{o:?}"
            );
        }
    }

    #[test]
    fn root_propagation_values() {
        assert_eq!(root_propagation(None), Some(F::MS_SLAVE | F::MS_REC));
        assert_eq!(root_propagation(Some("")), Some(F::MS_SLAVE | F::MS_REC));
        assert_eq!(root_propagation(Some("private")), Some(F::MS_PRIVATE));
        assert_eq!(
            root_propagation(Some("rshared")),
            Some(F::MS_SHARED | F::MS_REC)
        );
        assert_eq!(
            root_propagation(Some("runbindable")),
            Some(F::MS_UNBINDABLE | F::MS_REC)
        );
        assert_eq!(root_propagation(Some("bogus")), None);
    }

    #[test]
    fn locked_and_remount_flags() {
        let st = libc::ST_NOSUID | libc::ST_NODEV | libc::ST_RELATIME;
        assert_eq!(locked_flags(st), F::MS_NOSUID | F::MS_NODEV);
        assert_eq!(
            locked_flags(libc::ST_RDONLY | libc::ST_NOEXEC),
            F::MS_RDONLY | F::MS_NOEXEC
        );
        assert_eq!(locked_flags(0), F::empty());
        assert_eq!(
            bind_remount_flags(F::MS_BIND | F::MS_REC | F::MS_RDONLY, locked_flags(st)),
            F::MS_BIND | F::MS_REMOUNT | F::MS_RDONLY | F::MS_NOSUID | F::MS_NODEV
        );
        assert_eq!(
            bind_remount_flags(F::MS_BIND | F::MS_NOEXEC, F::empty()),
            F::MS_BIND | F::MS_REMOUNT | F::MS_NOEXEC
        );
    }

    #[test]
    fn clean_paths() {
        let cases = [
            ("/etc/foo", "/etc/foo"),
            ("etc/foo", "/etc/foo"),
            ("/../../etc", "/etc"),
            ("/a/./b/../c/", "/a/c"),
            ("", "/"),
            ("/", "/"),
            ("..", "/"),
        ];
        for (i, want) in cases {
            assert_eq!(
                clean_container_path(Path::new(i)),
                PathBuf::from(want),
                "{i}"
            );
        }
    }

    #[test]
    fn proc_destinations() {
        let cases = [
            ("/proc", true, true),
            ("/proc", false, false),
            ("/proc/cpuinfo", false, true),
            ("/proc/sys/kernel/ns_last_pid", false, true),
            ("/proc/sys", false, false),
            ("/proc/self", false, false),
            ("/processes", false, true),
            ("/sys", false, true),
        ];
        for (d, isproc, want) in cases {
            assert_eq!(proc_destination_allowed(Path::new(d), isproc), want, "{d}");
        }
    }
}
