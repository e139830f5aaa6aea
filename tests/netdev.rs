//! linux.netDevices (runtime-spec 1.3): a host interface is moved into the
//! container's network namespace, renamed, up, with its permanent global
//! addresses; bad requests fail before anything is made. runc 1.1.5
//! predates the field: every check here is capsa-only. Each test makes its
//! own veth pair (unique names) and removes what is left of it.

mod common;

use common::*;
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn link_exists(name: &str) -> bool {
    ip(&["link", "show", "dev", name])
}

/// A veth pair on the host, deleted on drop if it still exists.
struct Veth {
    host: String,
    peer: String,
    n: u32,
}

impl Veth {
    fn new() -> Option<Veth> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let host = format!("cpx{}x{n}", std::process::id() % 100000);
        let peer = format!("{host}p");
        if !ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer]) {
            skip("cannot create a veth pair on this host");
            return None;
        }
        Some(Veth { host, peer, n })
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for name in [&self.host, &self.peer] {
            if link_exists(name) {
                ip(&["link", "del", name]);
            }
        }
    }
}

/// A veth pair and a network namespace held by a process, or a skip.
fn veth_and_netns() -> Option<(Veth, NsHolder)> {
    let v = Veth::new()?;
    let Some(holder) = NsHolder::new(&["--net"], "net") else {
        skip("cannot make a network namespace with unshare");
        return None;
    };
    Some((v, holder))
}

/// Poll until `cond` holds, for up to 5 s.
fn eventually(cond: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn moved_renamed_up_with_its_global_addresses() {
    if skip_unless_capsa("linux.netDevices is runtime-spec 1.3") {
        return;
    }
    let Some(v) = Veth::new() else { return };
    let n = v.n % 250;
    let v4 = format!("10.201.{n}.1/24");
    let v6 = format!("2001:db8:c{n}::1/64");
    let link_local = format!("169.254.{n}.9/16");
    assert!(ip(&["addr", "add", &v4, "dev", &v.host]));
    assert!(ip(&["-6", "addr", "add", &v6, "dev", &v.host, "nodad"]));
    assert!(ip(&[
        "addr",
        "add",
        &link_local,
        "scope",
        "link",
        "dev",
        &v.host
    ]));
    assert!(ip(&["link", "set", &v.host, "up"]));

    let mut c = Ctx::new("netdev");
    c.config["linux"]["netDevices"] = json!({ v.host.clone(): {"name": "ceth0"} });
    c.sh("ip addr show dev ceth0; ls /sys/class/net");
    let out_file = c.create_capturing();
    // Moved at create: gone from the host while the container exists.
    assert!(!link_exists(&v.host), "{} is still on the host", v.host);
    c.rt(&["start", &c.id]).ok();
    c.wait_status(&c.id, "stopped", Duration::from_secs(10));
    let out = read_lossy(&out_file);
    c.rt(&["delete", &c.id]).ok();
    assert!(out.contains(&format!("inet {v4} ")), "{out}");
    assert!(out.contains(&format!("inet6 {v6} ")), "{out}");
    assert!(
        !out.contains("169.254."),
        "a link-scope address moved: {out}"
    );
    let flags = out.lines().next().unwrap_or_default();
    assert!(flags.contains(",UP"), "not up: {out}");
    assert!(!out.contains(&v.host), "the host name is still used: {out}");
    // The spec forbids moving it back: a virtual device dies with the namespace.
    assert!(
        eventually(|| !link_exists(&v.host) && !link_exists(&v.peer)),
        "the veth outlived the container"
    );
}

#[test]
fn a_name_template_gets_a_free_name() {
    if skip_unless_capsa("linux.netDevices is runtime-spec 1.3") {
        return;
    }
    let Some(v) = Veth::new() else { return };
    let mut c = Ctx::new("netdevtpl");
    c.config["linux"]["netDevices"] = json!({ v.host.clone(): {"name": "ctpl%d"} });
    c.args(&["ls", "/sys/class/net"]);
    let o = c.run();
    o.ok();
    assert!(o.stdout.split_whitespace().any(|d| d == "ctpl0"), "{o}");
}

#[test]
fn keeps_its_name_when_none_is_given_in_a_joined_namespace() {
    if skip_unless_capsa("linux.netDevices is runtime-spec 1.3") {
        return;
    }
    let Some((v, holder)) = veth_and_netns() else {
        return;
    };
    let mut c = Ctx::new("netdevjoin");
    c.set_ns("network", Some(&format!("/proc/{}/ns/net", holder.pid())));
    c.config["linux"]["netDevices"] = json!({ v.host.clone(): {} });
    c.args(&["ls", "/sys/class/net"]);
    let o = c.run();
    o.ok();
    assert!(o.stdout.split_whitespace().any(|d| d == v.host), "{o}");
    // The namespace outlives the container: the device is still in it.
    let inside = Command::new("nsenter")
        .args(["--net=/proc/".to_owned() + &holder.pid().to_string() + "/ns/net"])
        .args(["ip", "link", "show", "dev", &v.host])
        .output()
        .expect("nsenter");
    assert!(inside.status.success(), "{inside:?}");
}

#[test]
fn bad_requests_are_refused_before_anything_is_made() {
    if skip_unless_capsa("linux.netDevices is runtime-spec 1.3") {
        return;
    }
    let mut c = Ctx::new("netdevmissing");
    c.config["linux"]["netDevices"] = json!({"cpxnosuchdev": {}});
    c.create_refused("linux.netDevices.cpxnosuchdev: no such network interface");

    let Some(v) = Veth::new() else { return };
    let mut c = Ctx::new("netdevnons");
    c.remove_ns("network");
    c.config["linux"]["netDevices"] = json!({ v.host.clone(): {} });
    c.create_refused("without a private NET namespace");

    let mut c = Ctx::new("netdevname");
    c.config["linux"]["netDevices"] = json!({ v.host.clone(): {"name": "a/b"} });
    c.create_refused(&format!("linux.netDevices.{}.name", v.host));

    let mut c = Ctx::new("netdevlong");
    c.config["linux"]["netDevices"] = json!({ v.host.clone(): {"name": "sixteen-bytes-xx"} });
    c.create_refused("1 to 15 bytes");
    assert!(link_exists(&v.host), "a refused config touched the device");
}

#[test]
fn a_name_taken_in_the_container_is_refused_untouched() {
    if skip_unless_capsa("linux.netDevices is runtime-spec 1.3") {
        return;
    }
    let Some((v, holder)) = veth_and_netns() else {
        return;
    };
    // Put the peer into the joined namespace: its name is taken there.
    assert!(ip(&[
        "link",
        "set",
        &v.peer,
        "netns",
        &holder.pid().to_string()
    ]));
    assert!(ip(&["link", "set", &v.host, "up"]));
    let mut c = Ctx::new("netdevtaken");
    c.set_ns("network", Some(&format!("/proc/{}/ns/net", holder.pid())));
    c.config["linux"]["netDevices"] = json!({ v.host.clone(): {"name": v.peer.clone()} });
    c.create_refused("already exists in the container's network namespace");
    // Checked before the device was touched: still on the host, still up.
    let o = Command::new("ip")
        .args(["link", "show", "dev", &v.host])
        .output()
        .expect("ip link show");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(",UP"), "{text}");
}
