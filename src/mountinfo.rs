//! /proc/self/mountinfo (proc(5)), parsed once for everyone who reads it:
//! the cgroup hierarchy detection, the rootfs steps (the mount the rootfs
//! sits on, the mounts --no-pivot hides, the v1 cgroup mounts a container
//! gets) and the resctrl check.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sys::{Ctx, SysResult};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One line of mountinfo, the fields capsa uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// "major:minor" of the mounted filesystem: the same hierarchy or
    /// filesystem mounted twice has the same one.
    pub dev: String,
    /// The directory of the filesystem that is mounted (a bind mount's source).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Optional fields ("shared:N", "master:N", ...).
    pub optional: String,
    pub fstype: String,
    pub super_opts: String,
}

/// The mounts of our mount namespace.
pub fn read() -> SysResult<Vec<MountInfo>> {
    let text = std::fs::read_to_string(MOUNTINFO).ctx_at("read", Path::new(MOUNTINFO))?;
    Ok(parse(&text))
}

/// Parse mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS"
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountInfo {
                dev: (*l.get(2)?).to_string(),
                root: unescape(l.get(3)?),
                mount_point: unescape(l.get(4)?),
                optional: l.get(6..).map(|o| o.join(" ")).unwrap_or_default(),
                fstype: (*r.first()?).to_string(),
                super_opts: r.get(2).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

/// Undo mountinfo's octal escapes (\040 for space, \011, \012, \134).
fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(OsStr::from_bytes(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_escapes() {
        let m = parse(
            "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
42 31 0:39 /sub /mnt/with\\040space rw - cgroup cgroup rw,pids
",
        );
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[1].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(m[1].dev, "0:29");
        assert_eq!(m[1].fstype, "cgroup");
        assert_eq!(m[1].super_opts, "rw,cpu,cpuacct");
        assert_eq!(m[2].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(m[2].root, PathBuf::from("/sub"));
        assert_eq!(m[0].optional, "");
        let shared = parse("22 1 254:0 / / rw,relatime shared:1 master:2 - ext4 /dev/vda rw");
        assert_eq!(shared[0].optional, "shared:1 master:2");
        assert!(parse("garbage\n\n1 2 3\n").is_empty());
    }

    #[test]
    fn unescape_octal() {
        assert_eq!(unescape("/a\\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape("/a\\134b\\011"), PathBuf::from("/a\\b\t"));
        assert_eq!(unescape("/plain"), PathBuf::from("/plain"));
        assert_eq!(unescape("/bad\\09"), PathBuf::from("/bad\\09"));
        assert_eq!(unescape("/end\\04"), PathBuf::from("/end\\04"));
    }

    #[test]
    fn reads_our_own() {
        let ms = read().expect("read mountinfo");
        assert!(ms.iter().any(|m| m.mount_point == Path::new("/")));
    }
}
