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
    /// The mount's id (unique among the namespace's current mounts).
    pub id: u32,
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
    // Bytes, not UTF-8: any mount point anywhere on the host may have a
    // name that is not valid UTF-8, and must not make every create fail.
    let data = std::fs::read(MOUNTINFO).ctx_at("read", Path::new(MOUNTINFO))?;
    Ok(parse_bytes(&data))
}

/// Parse mountinfo text; malformed lines are skipped.
#[cfg(test)]
pub fn parse(text: &str) -> Vec<MountInfo> {
    parse_bytes(text.as_bytes())
}

/// Parse mountinfo as the kernel writes it: paths are bytes (with octal
/// escapes for space, tab, newline and backslash only).
pub fn parse_bytes(data: &[u8]) -> Vec<MountInfo> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    data.split(|&c| c == b'\n')
        .filter_map(|line| {
            // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS"
            let sep = line.windows(3).position(|w| w == b" - ")?;
            let (left, right) = (&line[..sep], &line[sep + 3..]);
            let l: Vec<&[u8]> = left.split(|&c| c == b' ').collect();
            let r: Vec<&[u8]> = right.split(|&c| c == b' ').collect();
            Some(MountInfo {
                id: text(l.first()?).parse().ok()?,
                dev: text(l.get(2)?),
                root: unescape(l.get(3)?),
                mount_point: unescape(l.get(4)?),
                optional: l.get(6..).map(|o| text(&o.join(&b' '))).unwrap_or_default(),
                fstype: text(r.first()?),
                super_opts: r.get(2).map(|s| text(s)).unwrap_or_default(),
            })
        })
        .collect()
}

/// Undo mountinfo's octal escapes (\040 for space, \011, \012, \134).
fn unescape(b: &[u8]) -> PathBuf {
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
    fn non_utf8_paths() {
        let m = parse_bytes(b"50 1 0:40 /r\xff /mnt/a\xfe\\040b rw - tmpfs t\xfd rw,x=\xfc\n");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mount_point.as_os_str().as_bytes(), b"/mnt/a\xfe b");
        assert_eq!(m[0].root.as_os_str().as_bytes(), b"/r\xff");
        assert_eq!(m[0].fstype, "tmpfs");
    }

    #[test]
    fn unescape_octal() {
        let unescape = |s: &str| super::unescape(s.as_bytes());
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
