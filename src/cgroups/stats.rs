//! Statistics for `events` in runc's JSON shape (the one containerd's
//! go-runc decodes), read from whichever hierarchy has each controller,
//! and OOM notifications: v1 memory.oom_control through
//! cgroup.event_control, v2 memory.events through inotify.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde::Serialize;

use super::{Cgroup, CgroupError, Controller, Leaf, write_file};
use crate::sys::{Ctx, SysError, own};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: BTreeMap<String, u64>,
    pub network_interfaces: Option<Vec<u64>>,
}

#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Default, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A number file; "max" (v2 unlimited) reads as u64::MAX like runc.
fn num(path: &Path) -> u64 {
    match read(path) {
        Some(s) if s.trim() == "max" => u64::MAX,
        Some(s) => s.trim().parse().unwrap_or(0),
        None => 0,
    }
}

/// "key value" lines (memory.stat, cpu.stat, memory.events).
pub fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.parse().ok()?))
        })
        .collect()
}

fn nums(path: &Path) -> Vec<u64> {
    read(path)
        .map(|s| {
            s.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// USER_HZ ticks (cpuacct.stat) to nanoseconds; USER_HZ is 100 on Linux.
const NS_PER_TICK: u64 = 10_000_000;

impl Cgroup {
    /// Current statistics. Controllers the host lacks leave their part empty.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        if let Ok(leaf) = self.locate(Controller::Cpuacct) {
            cpu_usage(&leaf, &mut s.cpu);
        }
        if let Ok(leaf) = self.locate(Controller::Cpu) {
            let text = read(&leaf.dir().join("cpu.stat")).unwrap_or_default();
            let k = flat_keyed(&text);
            let g = |n: &str| k.get(n).copied().unwrap_or(0);
            s.cpu.throttling = Throttling {
                periods: g("nr_periods"),
                throttled_periods: g("nr_throttled"),
                throttled_time: if leaf.is_v2() {
                    g("throttled_usec") * 1000
                } else {
                    g("throttled_time")
                },
            };
        }
        if let Ok(leaf) = self.locate(Controller::Memory) {
            s.memory = memory(&leaf);
        }
        if let Ok(leaf) = self.locate(Controller::Pids) {
            let d = leaf.dir();
            let limit = num(&d.join("pids.max"));
            s.pids = Pids {
                current: num(&d.join("pids.current")),
                limit: if limit == u64::MAX { 0 } else { limit },
            };
        }
        if let Ok(leaf) = self.locate(Controller::Blkio) {
            s.blkio = blkio(&leaf);
        }
        if let Ok(leaf) = self.locate(Controller::Hugetlb) {
            s.hugetlb = hugetlb(&leaf);
        }
        s
    }
}

fn cpu_usage(leaf: &Leaf, cpu: &mut Cpu) {
    let d = leaf.dir();
    if leaf.is_v2() {
        let k = flat_keyed(&read(&d.join("cpu.stat")).unwrap_or_default());
        let g = |n: &str| k.get(n).copied().unwrap_or(0) * 1000;
        cpu.usage.total = g("usage_usec");
        cpu.usage.user = g("user_usec");
        cpu.usage.kernel = g("system_usec");
        return;
    }
    cpu.usage.total = num(&d.join("cpuacct.usage"));
    cpu.usage.percpu = nums(&d.join("cpuacct.usage_percpu"));
    cpu.usage.percpu_kernel = nums(&d.join("cpuacct.usage_percpu_sys"));
    cpu.usage.percpu_user = nums(&d.join("cpuacct.usage_percpu_user"));
    let k = flat_keyed(&read(&d.join("cpuacct.stat")).unwrap_or_default());
    cpu.usage.user = k.get("user").copied().unwrap_or(0) * NS_PER_TICK;
    cpu.usage.kernel = k.get("system").copied().unwrap_or(0) * NS_PER_TICK;
}

fn memory(leaf: &Leaf) -> Memory {
    let d = leaf.dir();
    let raw = flat_keyed(&read(&d.join("memory.stat")).unwrap_or_default());
    let entry = |prefix: &str| MemoryEntry {
        limit: num(&d.join(format!("{prefix}limit_in_bytes"))),
        usage: num(&d.join(format!("{prefix}usage_in_bytes"))),
        max: num(&d.join(format!("{prefix}max_usage_in_bytes"))),
        failcnt: num(&d.join(format!("{prefix}failcnt"))),
    };
    if !leaf.is_v2() {
        return Memory {
            cache: raw.get("cache").copied().unwrap_or(0),
            usage: entry("memory."),
            swap: entry("memory.memsw."),
            kernel: entry("memory.kmem."),
            kernel_tcp: entry("memory.kmem.tcp."),
            raw,
        };
    }
    let events = flat_keyed(&read(&d.join("memory.events")).unwrap_or_default());
    let usage = MemoryEntry {
        limit: num(&d.join("memory.max")),
        usage: num(&d.join("memory.current")),
        max: num(&d.join("memory.peak")),
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    // As runc: "swap" is memory+swap, comparable with v1's memsw.
    let swap = if d.join("memory.swap.current").exists() {
        MemoryEntry {
            limit: num(&d.join("memory.swap.max")).saturating_add(usage.limit),
            usage: num(&d.join("memory.swap.current")).saturating_add(usage.usage),
            max: 0,
            failcnt: 0,
        }
    } else {
        MemoryEntry::default()
    };
    Memory {
        cache: raw.get("file").copied().unwrap_or(0),
        usage,
        swap,
        kernel: MemoryEntry::default(),
        kernel_tcp: MemoryEntry::default(),
        raw,
    }
}

fn blkio(leaf: &Leaf) -> Blkio {
    let d = leaf.dir();
    let mut b = Blkio::default();
    let dev = |s: &str| -> Option<(u64, u64)> {
        let (a, c) = s.split_once(':')?;
        Some((a.parse().ok()?, c.parse().ok()?))
    };
    if leaf.is_v2() {
        for line in read(&d.join("io.stat")).unwrap_or_default().lines() {
            let mut w = line.split_whitespace();
            let Some((major, minor)) = w.next().and_then(dev) else {
                continue;
            };
            for kv in w {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let value = v.parse().unwrap_or(0);
                let (list, op) = match k {
                    "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                    "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                    "rios" => (&mut b.io_serviced_recursive, "Read"),
                    "wios" => (&mut b.io_serviced_recursive, "Write"),
                    _ => continue,
                };
                list.push(BlkioEntry {
                    major,
                    minor,
                    op: op.into(),
                    value,
                });
            }
        }
        return b;
    }
    let v1 = |name: &str| -> Vec<BlkioEntry> {
        let mut out = Vec::new();
        for l in read(&d.join(name)).unwrap_or_default().lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            if let [devs, op, v] = w[..]
                && let Some((major, minor)) = dev(devs)
            {
                out.push(BlkioEntry {
                    major,
                    minor,
                    op: op.into(),
                    value: v.parse().unwrap_or(0),
                });
            }
        }
        out
    };
    // CFQ's files when present, else the throttling layer's (what runc does).
    b.io_service_bytes_recursive = v1("blkio.io_service_bytes_recursive");
    if b.io_service_bytes_recursive.is_empty() {
        b.io_service_bytes_recursive = v1("blkio.throttle.io_service_bytes_recursive");
    }
    b.io_serviced_recursive = v1("blkio.io_serviced_recursive");
    if b.io_serviced_recursive.is_empty() {
        b.io_serviced_recursive = v1("blkio.throttle.io_serviced_recursive");
    }
    b
}

fn hugetlb(leaf: &Leaf) -> BTreeMap<String, Hugetlb> {
    let d = leaf.dir();
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(d) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let suffix = if leaf.is_v2() {
            ".current"
        } else {
            ".usage_in_bytes"
        };
        let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|n| n.strip_suffix(suffix))
        else {
            continue;
        };
        if size.contains('.') {
            continue; // the rsvd files
        }
        let h = if leaf.is_v2() {
            let ev =
                flat_keyed(&read(&d.join(format!("hugetlb.{size}.events"))).unwrap_or_default());
            Hugetlb {
                usage: num(&d.join(&name)),
                max: 0,
                failcnt: ev.get("max").copied().unwrap_or(0),
            }
        } else {
            Hugetlb {
                usage: num(&d.join(&name)),
                max: num(&d.join(format!("hugetlb.{size}.max_usage_in_bytes"))),
                failcnt: num(&d.join(format!("hugetlb.{size}.failcnt"))),
            }
        };
        out.insert(size.to_owned(), h);
    }
    out
}

/// A source of OOM notifications for one container's memory cgroup.
pub struct OomWatch {
    fd: OwnedFd,
    /// v2: memory.events and the last oom_kill/oom counts seen.
    v2: Option<(PathBuf, u64)>,
    /// v1: keeps memory.oom_control open while registered.
    _oom_control: Option<std::fs::File>,
}

impl OomWatch {
    pub fn new(cg: &Cgroup) -> Result<OomWatch, CgroupError> {
        let leaf = cg
            .locate(Controller::Memory)
            .map_err(|msg| CgroupError::Resource {
                field: "memory".into(),
                msg: format!("cannot watch for OOM events: {msg}"),
            })?;
        let dir = leaf.dir();
        if leaf.is_v2() {
            let events = dir.join("memory.events");
            // SAFETY: plain syscall; the returned fd is owned below.
            let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
            if fd < 0 {
                return Err(SysError::new("inotify_init1", Errno::last()).into());
            }
            let fd = own(fd);
            let c = CString::new(events.as_os_str().as_bytes())
                .map_err(|_| SysError::at("path", &events, Errno::EINVAL))?;
            // SAFETY: fd is a live inotify fd and c a NUL-terminated path.
            if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) } < 0 {
                return Err(SysError::at("inotify_add_watch", &events, Errno::last()).into());
            }
            let seen = oom_count(&events);
            return Ok(OomWatch {
                fd,
                v2: Some((events, seen)),
                _oom_control: None,
            });
        }
        let ctl_path = dir.join("memory.oom_control");
        let ctl = std::fs::File::open(&ctl_path).ctx_at("open", &ctl_path)?;
        // SAFETY: plain syscall; the returned fd is owned below.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(SysError::new("eventfd", Errno::last()).into());
        }
        let efd = own(efd);
        let line = format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd());
        write_file(&dir.join("cgroup.event_control"), line.as_bytes())?;
        Ok(OomWatch {
            fd: efd,
            v2: None,
            _oom_control: Some(ctl),
        })
    }

    /// Poll this for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// How many OOM events happened since the last call (after the fd
    /// polled readable; 0 if it was spurious).
    pub fn take(&mut self) -> u64 {
        let mut buf = [0u8; 4096];
        // Drain the fd: an eventfd holds the count, inotify a queue.
        let mut total = 0u64;
        loop {
            match nix::unistd::read(&self.fd, &mut buf) {
                Ok(n) if n >= 8 && self.v2.is_none() => {
                    total += u64::from_ne_bytes(buf[..8].try_into().unwrap_or([0; 8]));
                }
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        match &mut self.v2 {
            Some((events, seen)) => {
                let now = oom_count(events);
                let new = now.saturating_sub(*seen);
                *seen = now;
                new
            }
            None => total,
        }
    }
}

/// v2: the OOM kills in memory.events (the "oom" count where the kernel
/// records no kill, e.g. the task was already exiting).
fn oom_count(events: &Path) -> u64 {
    let k = flat_keyed(&read(events).unwrap_or_default());
    let kills = k.get("oom_kill").copied().unwrap_or(0);
    kills.max(k.get("oom").copied().unwrap_or(0))
}
