//! linux.netDevices (runtime-spec 1.3): move host network interfaces into
//! the container's network namespace, renamed, keeping their permanent
//! global addresses, and set them up, as runc 1.3 does. A small
//! hand-written rtnetlink client does it: one request at a time, each one
//! acknowledged by the kernel.
//!
//! [`plan`] checks the config in the parent before any fork; [`move_all`]
//! runs in the parent once the init exists (its namespace is
//! /proc/PID/ns/net) and before any hook. Nothing happens on delete: the
//! spec says the runtime MUST NOT move a device back; when the namespace
//! dies the kernel returns physical devices to the initial namespace and
//! destroys virtual ones (veth, dummy, macvlan...).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
use oci_spec::runtime::LinuxNetDevice;

use crate::sys::{Ctx, SysError};

#[derive(Debug, thiserror::Error)]
pub enum NetdevError {
    #[error("linux.netDevices.{dev}: {source}")]
    Sys { dev: String, source: SysError },
    #[error("linux.netDevices: {0}")]
    Namespace(SysError),
    #[error("linux.netDevices.{dev}: {msg}")]
    Protocol { dev: String, msg: String },
}

/// One interface to move: its host name and its name in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDevice {
    pub host: String,
    pub name: String,
}

/// The container's network namespace, as linux.namespaces describes it.
#[derive(Debug, Clone, Copy)]
pub enum Netns<'a> {
    None,
    New,
    Join(&'a Path),
}

/// Validate linux.netDevices: `Err((field, message))`.
pub fn plan(
    devs: Option<&HashMap<String, LinuxNetDevice>>,
    netns: Netns,
) -> Result<Vec<NetDevice>, (String, String)> {
    let Some(devs) = devs.filter(|d| !d.is_empty()) else {
        return Ok(Vec::new());
    };
    let err = |f: String, m: String| Err((f, m));
    match netns {
        Netns::None => {
            return err(
                "linux.netDevices".into(),
                "unable to move network devices without a private NET namespace".into(),
            );
        }
        Netns::Join(p) if same_file(p, Path::new("/proc/self/ns/net")) => {
            return err(
                "linux.netDevices".into(),
                format!(
                    "the network namespace {} is the runtime's own: devices would not move",
                    p.display()
                ),
            );
        }
        _ => {}
    }
    let mut names: Vec<&String> = devs.keys().collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    let mut targets = HashSet::new();
    let mut nl = None;
    for host in names {
        let field = format!("linux.netDevices.{host}");
        if let Err(m) = valid_name(host, false) {
            return err(field, format!("invalid host interface name: {m}"));
        }
        let name = devs[host].name().clone().unwrap_or_else(|| host.clone());
        if let Err(m) = valid_name(&name, true) {
            return err(
                format!("{field}.name"),
                format!("invalid name {name:?}: {m}"),
            );
        }
        if !name.contains('%') && !targets.insert(name.clone()) {
            return err(
                format!("{field}.name"),
                format!("{name:?} is the name of another device too"),
            );
        }
        // The runtime MUST check that the move is possible: the device exists here.
        let nl = match &mut nl {
            Some(nl) => nl,
            None => nl.insert(Netlink::open().map_err(|e| (field.clone(), e.to_string()))?),
        };
        match nl.link_index(host) {
            Ok(_) => {}
            Err(e) if e.errno == Errno::ENODEV => {
                return err(
                    field,
                    "no such network interface in the runtime's network namespace".into(),
                );
            }
            Err(e) => return err(field, e.to_string()),
        }
        out.push(NetDevice {
            host: host.clone(),
            name,
        });
    }
    Ok(out)
}

/// The kernel's rules for an interface name (dev_valid_name), plus its
/// "%d" template form (dev_alloc_name) for a name in the container.
fn valid_name(name: &str, template: bool) -> Result<(), &'static str> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err("an interface name has 1 to 15 bytes");
    }
    if name == "." || name == ".." {
        return Err("\".\" and \"..\" are not interface names");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return Err("an interface name has no '/', ':', NUL or white space");
    }
    match name.find('%') {
        None => Ok(()),
        Some(i) if template && name[i..].starts_with("%d") && !name[i + 2..].contains('%') => {
            Ok(())
        }
        Some(_) if template => Err("a template has exactly one \"%d\""),
        Some(_) => Err("'%' is not allowed"),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Parent side: move every device into the network namespace of `pid`.
pub fn move_all(devs: &[NetDevice], pid: libc::pid_t) -> Result<(), NetdevError> {
    if devs.is_empty() {
        return Ok(());
    }
    let ns_path = format!("/proc/{pid}/ns/net");
    let target = File::open(&ns_path)
        .map_err(|e| NetdevError::Namespace(SysError::io("open", &ns_path, &e)))?;
    let mut host = Netlink::open().map_err(NetdevError::Namespace)?;
    let mut inside = Netlink::open_in(&target).map_err(NetdevError::Namespace)?;
    for d in devs {
        move_one(&mut host, &mut inside, &target, d)?;
    }
    Ok(())
}

fn move_one(
    host: &mut Netlink,
    inside: &mut Netlink,
    target: &File,
    d: &NetDevice,
) -> Result<(), NetdevError> {
    let fail = |source: SysError| NetdevError::Sys {
        dev: d.host.clone(),
        source,
    };
    let index = host.link_index(&d.host).map_err(fail)?;
    // A name taken in the container's namespace fails the move: say so
    // before the device is touched (a "%d" template picks a free name).
    if !d.name.contains('%') && inside.link_index(&d.name).is_ok() {
        return Err(NetdevError::Protocol {
            dev: d.host.clone(),
            msg: format!(
                "a device named {:?} already exists in the container's network namespace",
                d.name
            ),
        });
    }
    // The kernel drops addresses when a device changes namespace: read them
    // first (before the link goes down, which also flushes IPv6 ones).
    let addrs = host.permanent_global_addrs(index).map_err(fail)?;
    // Down, so nothing on the host uses it while it changes.
    host.set_up(index, false).map_err(fail)?;
    // Rename and move in one request: no clash with a name in either namespace.
    let mut m = Request::new(libc::RTM_NEWLINK, 0);
    m.ifinfo(index, 0, 0);
    m.attr(
        libc::IFLA_NET_NS_FD,
        &(target.as_raw_fd() as u32).to_ne_bytes(),
    );
    m.attr(libc::IFLA_IFNAME, &nul_terminated(&d.name));
    host.ack(
        m,
        "RTM_NEWLINK (move into the container's network namespace)",
    )
    .map_err(fail)?;
    // The kernel keeps the index unless it is taken in the container's
    // namespace; a "%d" template is found by the index only.
    let new_index = if d.name.contains('%') {
        index
    } else {
        inside.link_index(&d.name).map_err(fail)?
    };
    let name = inside.link_name(new_index).map_err(fail)?;
    if !d.name.contains('%') && name != d.name {
        return Err(NetdevError::Protocol {
            dev: d.host.clone(),
            msg: format!("moved, but it is called {name:?} in the container"),
        });
    }
    for a in &addrs {
        inside.add_addr(new_index, a).map_err(fail)?;
    }
    inside.set_up(new_index, true).map_err(fail)
}

fn nul_terminated(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// One netlink message being built: header, fixed part, attributes.
struct Request(Vec<u8>);

const NLMSG_HDRLEN: usize = 16;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl Request {
    fn new(msg_type: u16, extra_flags: i32) -> Request {
        let mut v = vec![0u8; NLMSG_HDRLEN];
        v[4..6].copy_from_slice(&msg_type.to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | extra_flags) as u16;
        v[6..8].copy_from_slice(&flags.to_ne_bytes());
        Request(v)
    }
    /// struct ifinfomsg.
    fn ifinfo(&mut self, index: i32, flags: u32, change: u32) {
        self.0.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        self.0.extend_from_slice(&index.to_ne_bytes());
        self.0.extend_from_slice(&flags.to_ne_bytes());
        self.0.extend_from_slice(&change.to_ne_bytes());
    }
    /// struct rtattr and its data, padded to 4 bytes.
    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(align4(self.0.len()), 0);
    }
    /// Ask for an acknowledgement (NLM_F_ACK), which ends the exchange.
    fn with_ack(mut self) -> Request {
        let flags = u16::from_ne_bytes([self.0[6], self.0[7]]) | libc::NLM_F_ACK as u16;
        self.0[6..8].copy_from_slice(&flags.to_ne_bytes());
        self
    }
    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.0
    }
}

/// The attributes after a message's fixed part: (type, data).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[align4(len).min(b.len())..];
    }
    out
}

/// IFA_F_NODAD | IFA_F_HOMEADDRESS | IFA_F_MANAGETEMPADDR |
/// IFA_F_NOPREFIXROUTE | IFA_F_MCAUTOJOIN (linux/if_addr.h).
const USER_ADDR_FLAGS: u32 = 0x02 | 0x10 | 0x100 | 0x200 | 0x400;

/// A permanent address to restore: ifaddrmsg family and prefix length, and
/// its IFA_ADDRESS / IFA_LOCAL / IFA_BROADCAST attributes and user flags.
#[derive(Debug)]
struct Addr {
    family: u8,
    prefixlen: u8,
    attrs: Vec<(u16, Vec<u8>)>,
}

/// A NETLINK_ROUTE socket, bound to the network namespace it was made in.
struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    fn open() -> Result<Netlink, SysError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .ctx("socket(NETLINK_ROUTE)")?;
        Ok(Netlink { fd, seq: 0 })
    }

    /// A socket in the namespace `ns`: step in, make it, step back. capsa is
    /// single-threaded, so nothing else runs in between.
    fn open_in(ns: &File) -> Result<Netlink, SysError> {
        let own = File::open("/proc/self/ns/net")
            .map_err(|e| SysError::io("open", "/proc/self/ns/net", &e))?;
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).ctx("setns (container network namespace)")?;
        let made = Netlink::open();
        setns(own.as_fd(), CloneFlags::CLONE_NEWNET)
            .ctx("setns (back to our network namespace)")?;
        made
    }

    /// Send `req` and collect the payloads of the replies up to the
    /// acknowledgement (or NLMSG_DONE for a dump).
    fn exchange(&mut self, req: Request, op: &'static str) -> Result<Vec<Vec<u8>>, SysError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let buf = req.finish(seq);
        let n = loop {
            match nix::unistd::write(&self.fd, &buf) {
                Err(Errno::EINTR) => continue,
                r => break r.ctx(op)?,
            }
        };
        if n != buf.len() {
            return Err(SysError::new(op, Errno::EMSGSIZE));
        }
        let mut replies = Vec::new();
        let mut rbuf = vec![0u8; 64 * 1024];
        loop {
            let n = match nix::unistd::read(&self.fd, &mut rbuf) {
                Err(Errno::EINTR) => continue,
                r => r.ctx(op)?,
            };
            let mut b = &rbuf[..n];
            while b.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let ty = u16::from_ne_bytes([b[4], b[5]]) as i32;
                let mseq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                if len < NLMSG_HDRLEN || len > b.len() {
                    return Err(SysError::new(op, Errno::EBADMSG));
                }
                let payload = &b[NLMSG_HDRLEN..len];
                b = &b[align4(len).min(b.len())..];
                if mseq != seq {
                    continue;
                }
                match ty {
                    libc::NLMSG_ERROR => {
                        let code = payload
                            .get(..4)
                            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                            .ok_or(SysError::new(op, Errno::EBADMSG))?;
                        if code == 0 {
                            return Ok(replies);
                        }
                        return Err(SysError::new(op, Errno::from_raw(-code)));
                    }
                    libc::NLMSG_DONE => return Ok(replies),
                    _ => replies.push(payload.to_vec()),
                }
            }
        }
    }

    fn ack(&mut self, req: Request, op: &'static str) -> Result<(), SysError> {
        self.exchange(req.with_ack(), op).map(drop)
    }

    fn get_link(&mut self, req: Request) -> Result<Vec<u8>, SysError> {
        self.exchange(req.with_ack(), "RTM_GETLINK")?
            .into_iter()
            .find(|p| p.len() >= 16)
            .ok_or(SysError::new("RTM_GETLINK", Errno::ENODEV))
    }

    fn link_index(&mut self, name: &str) -> Result<i32, SysError> {
        let mut m = Request::new(libc::RTM_GETLINK, 0);
        m.ifinfo(0, 0, 0);
        m.attr(libc::IFLA_IFNAME, &nul_terminated(name));
        let p = self.get_link(m)?;
        Ok(i32::from_ne_bytes([p[4], p[5], p[6], p[7]]))
    }

    fn link_name(&mut self, index: i32) -> Result<String, SysError> {
        let mut m = Request::new(libc::RTM_GETLINK, 0);
        m.ifinfo(index, 0, 0);
        let p = self.get_link(m)?;
        attrs(&p[16..])
            .into_iter()
            .find(|(t, _)| *t == libc::IFLA_IFNAME)
            .map(|(_, d)| String::from_utf8_lossy(d.split(|&c| c == 0).next().unwrap_or(d)).into())
            .ok_or(SysError::new(
                "RTM_GETLINK (no IFLA_IFNAME)",
                Errno::EBADMSG,
            ))
    }

    fn set_up(&mut self, index: i32, up: bool) -> Result<(), SysError> {
        let iff_up = libc::IFF_UP as u32;
        let mut m = Request::new(libc::RTM_NEWLINK, 0);
        m.ifinfo(index, if up { iff_up } else { 0 }, iff_up);
        let op = if up {
            "RTM_NEWLINK (set up)"
        } else {
            "RTM_NEWLINK (set down)"
        };
        self.ack(m, op)
    }

    /// The addresses the spec says to keep: IFA_F_PERMANENT, global scope.
    fn permanent_global_addrs(&mut self, index: i32) -> Result<Vec<Addr>, SysError> {
        let mut m = Request::new(libc::RTM_GETADDR, libc::NLM_F_DUMP);
        m.0.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        for p in self.exchange(m, "RTM_GETADDR")? {
            // struct ifaddrmsg: family, prefixlen, flags, scope, index.
            if p.len() < 8 || i32::from_ne_bytes([p[4], p[5], p[6], p[7]]) != index {
                continue;
            }
            let list = attrs(&p[8..]);
            let flags = list
                .iter()
                .find(|(t, d)| *t == libc::IFA_FLAGS && d.len() == 4)
                .map_or(p[2] as u32, |(_, d)| {
                    u32::from_ne_bytes([d[0], d[1], d[2], d[3]])
                });
            if flags & libc::IFA_F_PERMANENT == 0 || p[3] != libc::RT_SCOPE_UNIVERSE {
                continue;
            }
            let keep = [libc::IFA_ADDRESS, libc::IFA_LOCAL, libc::IFA_BROADCAST];
            let mut saved: Vec<(u16, Vec<u8>)> = list
                .into_iter()
                .filter(|(t, _)| keep.contains(t))
                .map(|(t, d)| (t, d.to_vec()))
                .collect();
            // The flags a user can set (NODAD, NOPREFIXROUTE...), not the
            // kernel's state ones (PERMANENT, TENTATIVE...).
            let user = flags & USER_ADDR_FLAGS;
            if user != 0 {
                saved.push((libc::IFA_FLAGS, user.to_ne_bytes().to_vec()));
            }
            out.push(Addr {
                family: p[0],
                prefixlen: p[1],
                attrs: saved,
            });
        }
        Ok(out)
    }

    fn add_addr(&mut self, index: i32, a: &Addr) -> Result<(), SysError> {
        let mut m = Request::new(libc::RTM_NEWADDR, libc::NLM_F_CREATE | libc::NLM_F_EXCL);
        m.0.extend_from_slice(&[a.family, a.prefixlen, 0, libc::RT_SCOPE_UNIVERSE]);
        m.0.extend_from_slice(&(index as u32).to_ne_bytes());
        for (t, d) in &a.attrs {
            m.attr(*t, d);
        }
        self.ack(m, "RTM_NEWADDR (restore an address)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_the_kernel() {
        assert!(valid_name("eth0", false).is_ok());
        assert!(valid_name("a23456789012345", false).is_ok());
        assert!(valid_name("a234567890123456", false).is_err());
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "a\0"] {
            assert!(valid_name(bad, true).is_err(), "{bad:?}");
        }
        assert!(valid_name("eth%d", true).is_ok());
        assert!(valid_name("eth%d", false).is_err());
        assert!(valid_name("e%d%d", true).is_err());
        assert!(valid_name("eth%s", true).is_err());
    }

    #[test]
    fn plan_refuses_without_a_network_namespace() {
        let devs: HashMap<String, LinuxNetDevice> =
            serde_json::from_str(r#"{"lo": {"name": "x"}}"#).expect("json");
        let e = plan(Some(&devs), Netns::None).err();
        assert_eq!(
            e,
            Some((
                "linux.netDevices".to_string(),
                "unable to move network devices without a private NET namespace".to_string()
            ))
        );
        let own = Path::new("/proc/self/ns/net");
        assert!(plan(Some(&devs), Netns::Join(own)).is_err());
        let dup: HashMap<String, LinuxNetDevice> =
            serde_json::from_str(r#"{"lo": {"name": "x"}, "lo2": {"name": "x"}}"#).expect("json");
        let e = plan(Some(&dup), Netns::New).err().map(|e| e.1);
        // "lo" exists everywhere; "lo2" is refused for its name before its existence.
        assert_eq!(
            e.as_deref(),
            Some("\"x\" is the name of another device too")
        );
    }

    #[test]
    fn messages_are_laid_out_as_the_kernel_expects() {
        let mut m = Request::new(libc::RTM_NEWLINK, libc::NLM_F_ACK);
        m.ifinfo(7, 1, 1);
        m.attr(libc::IFLA_IFNAME, b"ab\0");
        let b = m.finish(42);
        assert_eq!(b.len(), 16 + 16 + 8);
        assert_eq!(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), 40);
        assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 42);
        let a = attrs(&b[32..]);
        assert_eq!(a, vec![(libc::IFLA_IFNAME, &b"ab\0"[..])]);
    }
}
