//! runtime-linux.md (file descriptors, /dev symlinks) and config-linux.md apart from
//! cgroups and seccomp: default filesystems and devices, devices, namespaces, user and time
//! namespaces, sysctl, rootfs propagation, masked/readonly paths, mountLabel, personality,
//! intelRdt, memoryPolicy, netDevices.

use crate::bundle::{Bundle, trunc};
use crate::harness::{Ctx, R, Verdict, ensure, eq, fail, host_ns, io, skip};
use crate::table::{MUST, SHOULD, Test, Want::*, default, probe, refuse, t};
use serde_json::json;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

fn new_ns(c: &mut Ctx, ns_type: &str, proc_name: &str) -> R {
    let kv = c.run_ops(&["ns"], |b| b.add_ns(ns_type, None))?;
    let got = kv.get(&format!("ns.{proc_name}"))?;
    ensure(
        got != host_ns(proc_name),
        format!("{ns_type}: the container is in the runtime's namespace {got}"),
    )
}

fn mount_prop(kv: &crate::bundle::Kv, mp: &str) -> Result<String, Verdict> {
    let m = kv.get(&format!("mount.{mp}"))?;
    Ok(m.split(' ')
        .find_map(|f| f.strip_prefix("prop="))
        .unwrap_or("")
        .to_string())
}

fn mountinfo_lines() -> Vec<(String, String)> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(" - ").next().unwrap_or("").split(' ').collect();
            (
                f.get(4).unwrap_or(&"").to_string(),
                f.get(6..).map(|x| x.join(",")).unwrap_or_default(),
            )
        })
        .collect()
}

fn rootfs_propagation(c: &mut Ctx, value: &str, want: &str) -> R {
    if value == "slave" {
        // Slave only shows where the bundle's mount receives events in the runtime namespace.
        let dir = c.dir.display().to_string();
        let host = mountinfo_lines()
            .into_iter()
            .filter(|(mp, _)| dir.starts_with(mp.as_str()))
            .max_by_key(|(mp, _)| mp.len())
            .map(|(_, p)| p)
            .unwrap_or_default();
        if host.is_empty() {
            return skip(
                "the bundle's mount is private in the runtime namespace: slave cannot be told from private there",
            );
        }
    }
    let kv = c.run_ops(&["mountinfo"], |b| {
        b.set("linux.rootfsPropagation", json!(value))
    })?;
    let p = mount_prop(&kv, "/")?;
    ensure(
        p.contains(want),
        format!("propagation of / with rootfsPropagation {value}: {p}, want {want}"),
    )
}

/// A veth pair named after this run (created here, deleted afterwards), one end moved into
/// the container as `octeth0` by netDevices; `ops` are run there after `setup`. Also says
/// whether the moved end was back in the runtime's namespace after the container's delete.
fn net_device(
    c: &mut Ctx,
    ops: &[&str],
    setup: impl Fn(&mut Bundle, &str),
) -> Result<(crate::bundle::Kv, bool), Verdict> {
    let host = format!("oct{}", std::process::id() % 100000);
    let peer = format!("{host}p");
    let st = Command::new("ip")
        .args(["link", "add", &host, "type", "veth", "peer", "name", &peer])
        .stderr(Stdio::null())
        .status();
    if !matches!(st, Ok(s) if s.success()) {
        return skip("cannot create a veth pair on this host");
    }
    let _ = Command::new("ip")
        .args(["addr", "add", "192.0.2.17/32", "dev", &host])
        .status();
    let r = (|| {
        let mut b = c.bundle_ops(ops)?;
        b.set(
            "linux.netDevices",
            json!({host.clone(): {"name": "octeth0"}}),
        );
        setup(&mut b, &host);
        c.run(&b)
    })();
    let back = Command::new("ip")
        .args(["link", "show", &host])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    for dev in [&host, &peer] {
        let _ = Command::new("ip")
            .args(["link", "del", dev])
            .stderr(Stdio::null())
            .status();
    }
    r.map(|kv| (kv, back))
}

pub fn tests() -> Vec<Test> {
    vec![
        // ---- runtime-linux.md
        t(
            "linux.fds-only-stdio",
            "runtime-linux.md#file-descriptors",
            MUST,
            "By default, only the stdin, stdout and stderr file descriptors are kept open for the application by the runtime.",
            |c| {
                let kv = c.run_ops(&["fds"], |_| {})?;
                // the checker's own directory handle on /proc/self/fd is the one extra fd.
                let fds: Vec<&str> = kv.get("fds")?.split(',').collect();
                ensure(fds.len() == 4 && fds[..3] == ["0", "1", "2"], format!("open fds in the container: {fds:?}"))
            },
        ),
        probe(
            "linux.dev-symlinks",
            "runtime-linux.md#dev-symbolic-links",
            MUST,
            "While creating the container (step 2), runtimes MUST create the symlinks /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr if the source file exists after processing mounts.",
            &["readlink:/dev/fd", "readlink:/dev/stdin", "readlink:/dev/stdout", "readlink:/dev/stderr"],
            default,
            &[
                ("readlink./dev/fd", Eq("/proc/self/fd")),
                ("readlink./dev/stdin", Eq("/proc/self/fd/0")),
                ("readlink./dev/stdout", Eq("/proc/self/fd/1")),
                ("readlink./dev/stderr", Eq("/proc/self/fd/2")),
            ],
        ),
        // ---- default filesystems and devices
        probe(
            "linux.default-filesystems",
            "config-linux.md#default-filesystems",
            SHOULD,
            "The following filesystems SHOULD be made available in each container's filesystem: /proc (proc), /sys (sysfs), /dev/pts (devpts), /dev/shm (tmpfs).",
            &["mountinfo"],
            default,
            &[
                ("mount./proc", Prefix("proc ")),
                ("mount./sys", Prefix("sysfs ")),
                ("mount./dev/pts", Prefix("devpts ")),
                ("mount./dev/shm", Prefix("tmpfs ")),
            ],
        ),
        probe(
            "linux.default-devices",
            "config-linux.md#default-devices",
            MUST,
            "In addition to any devices configured, the runtime MUST also supply /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom, /dev/tty and /dev/ptmx.",
            &["stat:/dev/null", "stat:/dev/zero", "stat:/dev/full", "stat:/dev/random", "stat:/dev/urandom", "stat:/dev/tty", "stat:/dev/ptmx"],
            default,
            &[
                ("stat./dev/null", Has(" 1 3")),
                ("stat./dev/zero", Has(" 1 5")),
                ("stat./dev/full", Has(" 1 7")),
                ("stat./dev/random", Has(" 1 8")),
                ("stat./dev/urandom", Has(" 1 9")),
                ("stat./dev/tty", Has(" 5 0")),
                ("stat./dev/ptmx", Has(" 5 2")),
            ],
        ),
        probe(
            "linux.devices-created",
            "config-linux.md#devices",
            MUST,
            "devices lists devices that MUST be available in the container, with type (c, p, ...), major, minor, fileMode, uid and gid (in the container namespace).",
            &["stat:/dev/oct-null", "lstat:/dev/oct-fifo"],
            |b| {
                b.set(
                    "linux.devices",
                    json!([{"path": "/dev/oct-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 5},
                           {"path": "/dev/oct-fifo", "type": "p", "fileMode": 0o600}]),
                )
            },
            &[("stat./dev/oct-null", Eq("c 640 0 5 1 3")), ("lstat./dev/oct-fifo", Prefix("p 600 "))],
        ),
        probe(
            "linux.devices-outside-dev",
            "config-linux.md#devices",
            MUST,
            "path: \"The path MAY be anywhere in the container filesystem, notably outside of /dev\"; the device MUST still be available.",
            &["stat:/oct-devices/null"],
            |b| b.set("linux.devices", json!([{"path": "/oct-devices/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}])),
            &[("stat./oct-devices/null", Prefix("c 666 0 0 1 3"))],
        ),
        refuse(
            "linux.devices-existing-mismatch-errors",
            "config-linux.md#devices",
            MUST,
            "path: \"If a file already exists at path that does not match the requested device, the runtime MUST generate an error.\"",
            |b| {
                let _ = fs::write(b.rootfs().join("oct-existing"), "a regular file");
                b.set("linux.devices", json!([{"path": "/oct-existing", "type": "c", "major": 1, "minor": 3}]));
            },
        ),
        probe(
            "linux.devices-cgroup-deny",
            "config-linux.md#allowed-device-list",
            MUST,
            "resources.devices: the runtime MUST apply entries in the listed order; with [deny all] a device listed in linux.devices but not allowed cannot be opened (EPERM).",
            &["openw:/dev/oct-kmsg"],
            |b| b.set("linux.devices", json!([{"path": "/dev/oct-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666}])),
            &[("openw./dev/oct-kmsg", Eq("err:1"))],
        )
        .cgroup(),
        probe(
            "linux.devices-cgroup-allow",
            "config-linux.md#allowed-device-list",
            MUST,
            "resources.devices: the runtime MUST apply entries in the listed order; a later allow entry makes the device accessible with the given access.",
            &["openw:/dev/oct-kmsg"],
            |b| {
                b.set("linux.devices", json!([{"path": "/dev/oct-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666}]));
                b.set(
                    "linux.resources.devices",
                    json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rw"}]),
                );
            },
            &[("openw./dev/oct-kmsg", Eq("ok"))],
        )
        .cgroup(),
        // ---- namespaces
        t("ns.pid", "config-linux.md#namespaces", MUST,
          "type pid: processes inside the container will only be able to see other processes inside the same container or pid namespace (\"If path is not specified, the runtime MUST create a new container namespace of type type\").",
          |c| new_ns(c, "pid", "pid")),
        t("ns.network", "config-linux.md#namespaces", MUST,
          "type network: the container will have its own network stack (a new namespace MUST be created).",
          |c| new_ns(c, "network", "net")),
        t("ns.ipc", "config-linux.md#namespaces", MUST,
          "type ipc: processes inside the container will only be able to communicate to other processes inside the same container via system level IPC (new namespace).",
          |c| new_ns(c, "ipc", "ipc")),
        t("ns.uts", "config-linux.md#namespaces", MUST,
          "type uts: the container will be able to have its own hostname and domain name (new namespace).",
          |c| new_ns(c, "uts", "uts")),
        t("ns.mount", "config-linux.md#namespaces", MUST,
          "type mount: the container will have an isolated mount table (new namespace).",
          |c| new_ns(c, "mount", "mnt")),
        t("ns.cgroup", "config-linux.md#namespaces", MUST,
          "type cgroup: the container will have an isolated view of the cgroup hierarchy (new namespace).",
          |c| new_ns(c, "cgroup", "cgroup")),
        t("ns.time", "config-linux.md#namespaces", MUST,
          "type time: the container will be able to have its own clocks (new namespace).",
          |c| new_ns(c, "time", "time")),
        t(
            "ns.user",
            "config-linux.md#user-namespace-mappings",
            MUST,
            "type user: the container will be able to remap user and group IDs; uidMappings/gidMappings describe the mappings from the host to the container.",
            |c| {
                let kv = c.run_ops(&["ns", "cat:/proc/self/uid_map", "cat:/proc/self/gid_map", "ids"], Bundle::userns)?;
                ensure(kv.get("ns.user")? != host_ns("user"), "no new user namespace")?;
                for f in ["uid_map", "gid_map"] {
                    let m: Vec<String> = kv.get(&format!("cat./proc/self/{f}"))?.split_whitespace().map(String::from).collect();
                    eq(f, m, vec!["0".to_string(), "100000".into(), "65536".into()])?;
                }
                eq("uid in the container", kv.get("uid")?, "0")
            },
        ),
        t(
            "ns.user-no-chown",
            "config-linux.md#user-namespace-mappings",
            SHOULD,
            "The runtime SHOULD NOT modify the ownership of referenced filesystems to realize the mapping (the rootfs; the host device nodes are checked after every test).",
            |c| {
                let mut b = c.bundle_ops(&["exit:0"])?;
                b.userns();
                c.run(&b)?;
                for p in [b.rootfs(), b.rootfs().join("checker"), b.rootfs().join("etc")] {
                    let m = io(fs::metadata(&p), &p.display().to_string())?;
                    ensure(m.uid() == 0 && m.gid() == 0, format!("{} is now owned by {}:{}", p.display(), m.uid(), m.gid()))?;
                }
                Ok(())
            },
        ),
        t(
            "ns.inherit-when-absent",
            "config-linux.md#namespaces",
            MUST,
            "If a namespace type is not specified in the namespaces array, the container MUST inherit the runtime namespace of that type.",
            |c| {
                let kv = c.run_ops(&["ns"], |b| {
                    b.remove_ns("network");
                    b.remove_ns("ipc");
                    b.remove_ns("uts");
                    b.unset("hostname");
                })?;
                for (n, what) in [("net", "network"), ("ipc", "ipc"), ("uts", "uts"), ("cgroup", "cgroup")] {
                    eq(&format!("{what} namespace"), kv.get(&format!("ns.{n}"))?, host_ns(n).as_str())?;
                }
                Ok(())
            },
        ),
        t(
            "ns.join-path",
            "config-linux.md#namespaces",
            MUST,
            "path: the runtime MUST place the container process in the namespace associated with that path.",
            |c| {
                let nsf = c.dir.join("netns");
                io(fs::write(&nsf, ""), "create the namespace file")?;
                let st = Command::new("unshare").arg(format!("--net={}", nsf.display())).arg("true").status();
                if !matches!(st, Ok(s) if s.success()) {
                    return skip("cannot make a persistent network namespace with unshare(1)");
                }
                let ino = fs::metadata(&nsf).map(|m| m.ino()).unwrap_or(0);
                let p = nsf.display().to_string();
                let r = c.run_ops(&["ns"], |b| b.add_ns("network", Some(&p)));
                let _ = Command::new("umount").arg(&nsf).status();
                eq("net namespace", r?.get("ns.net")?, format!("net:[{ino}]").as_str())
            },
        ),
        refuse(
            "ns.join-wrong-type-errors",
            "config-linux.md#namespaces",
            MUST,
            "The runtime MUST generate an error if path is not associated with a namespace of type type.",
            |b| b.add_ns("uts", Some("/proc/self/ns/net")),
        ),
        refuse(
            "ns.duplicate-errors",
            "config-linux.md#namespaces",
            MUST,
            "If a namespaces field contains duplicated namespaces with same type, the runtime MUST generate an error.",
            |b| {
                if let Some(a) = b.config["linux"]["namespaces"].as_array_mut() {
                    a.push(json!({"type": "ipc"}));
                }
            },
        ),
        t(
            "ns.time-offsets",
            "config-linux.md#offset-for-time-namespace",
            MUST,
            "timeOffsets sets the offset for the time namespace: secs/nanosecs of each clock (monotonic, boottime) in the container.",
            |c| {
                let kv = c.run_ops(&["clocks"], |b| {
                    b.add_ns("time", None);
                    b.set("linux.timeOffsets", json!({"monotonic": {"secs": 1000000, "nanosecs": 0}, "boottime": {"secs": 2000000, "nanosecs": 0}}));
                })?;
                let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: ts is a valid, writable timespec.
                unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
                let got: i64 = kv.get("clock.monotonic")?.parse().unwrap_or(0);
                ensure(
                    (got - ts.tv_sec - 1000000).abs() < 60,
                    format!("monotonic clock in the container {got}, host {}", ts.tv_sec),
                )?;
                let gotb: i64 = kv.get("clock.boottime")?.parse().unwrap_or(0);
                ensure(gotb - ts.tv_sec > 1900000, format!("boottime offset not applied: {gotb}"))
            },
        ),
        // ---- sysctl
        probe(
            "sysctl.applied",
            "config-linux.md#sysctl",
            MUST,
            "sysctl allows kernel parameters to be modified at runtime for the container (the values are set in the container).",
            &["sysctl:net.ipv4.ip_forward", "sysctl:kernel.msgmax"],
            |b| b.set("linux.sysctl", json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "12345"})),
            &[("sysctl.net.ipv4.ip_forward", Eq("1")), ("sysctl.kernel.msgmax", Eq("12345"))],
        ),
        refuse(
            "sysctl.unappliable-errors",
            "runtime.md#create",
            MUST,
            "If the runtime cannot apply a property as specified in the configuration, it MUST generate an error (a sysctl that does not exist).",
            |b| b.set("linux.sysctl", json!({"kernel.oct_no_such_sysctl": "1"})),
        ),
        // ---- rootfs propagation, masked and readonly paths, mountLabel
        t("rootfs-propagation.private", "config-linux.md#rootfs-mount-propagation", MUST,
          "rootfsPropagation private: the rootfs mount doesn't receive mount propagation events from the host (no shared or master tag).",
          |c| rootfs_propagation(c, "private", "private")),
        t("rootfs-propagation.shared", "config-linux.md#rootfs-mount-propagation", MUST,
          "rootfsPropagation shared: the rootfs mount belongs to a new peer group.",
          |c| rootfs_propagation(c, "shared", "shared:")),
        t("rootfs-propagation.slave", "config-linux.md#rootfs-mount-propagation", MUST,
          "rootfsPropagation slave: the rootfs mount receives propagation events from the host but not the other way around (master tag).",
          |c| rootfs_propagation(c, "slave", "master:")),
        t("rootfs-propagation.unbindable", "config-linux.md#rootfs-mount-propagation", MUST,
          "rootfsPropagation unbindable: the rootfs mount is a private mount that cannot be bind-mounted.",
          |c| rootfs_propagation(c, "unbindable", "unbindable")),
        t(
            "rootfs-propagation.host-unchanged",
            "config-linux.md#rootfs-mount-propagation",
            MUST,
            "shared: \"Note this does not mean that it's shared with the host\": creating the container leaves the propagation of every mount in the runtime mount namespace as it was.",
            |c| {
                let before = mountinfo_lines();
                let mut b = c.bundle_ops(&["sleep:30"])?;
                b.set("linux.rootfsPropagation", json!("shared"));
                let id = c.id();
                c.must_create(&b, &id)?;
                let changed: Vec<(String, String)> = mountinfo_lines().into_iter().filter(|m| !before.contains(m)).collect();
                ensure(changed.is_empty(), format!("mounts of the runtime namespace changed: {changed:?}"))
            },
        ),
        t(
            "masked-paths",
            "config-linux.md#masked-paths",
            MUST,
            "maskedPaths will mask over the provided paths inside the container so that they cannot be read (files read empty, directories list nothing or fail; a missing path is no error).",
            |c| {
                let kv = c.run_ops(&["cat:/proc/kcore", "ls:/proc/acpi", "cat:/proc/timer_list"], |b| {
                    b.set("linux.maskedPaths", json!(["/proc/kcore", "/proc/acpi", "/proc/timer_list", "/oct-not-there"]))
                })?;
                eq("/proc/timer_list", kv.get("cat./proc/timer_list")?, "")?;
                let acpi = kv.get("ls./proc/acpi")?;
                ensure(acpi.is_empty() || acpi.starts_with("err:"), format!("/proc/acpi readable: {acpi}"))
            },
        ),
        probe(
            "readonly-paths",
            "config-linux.md#readonly-paths",
            MUST,
            "readonlyPaths will set the provided paths as readonly inside the container.",
            &["openw:/proc/sys/kernel/hostname"],
            |b| b.set("linux.readonlyPaths", json!(["/proc/sys", "/oct-not-there"])),
            &[("openw./proc/sys/kernel/hostname", Eq("err:30"))],
        ),
        t(
            "mount-label",
            "config-linux.md#mount-label",
            MUST,
            "mountLabel will set the SELinux context for the mounts in the container.",
            |c| {
                if fs::metadata("/sys/fs/selinux/enforce").is_err() {
                    return skip("no SELinux on this host");
                }
                let label = "system_u:object_r:container_file_t:s0:c1,c2";
                let kv = c.run_ops(&["mountinfo"], |b| {
                    b.set("linux.mountLabel", json!(label));
                    b.add_mount(json!({"destination": "/mnt/lbl", "type": "tmpfs", "source": "tmpfs"}));
                })?;
                let m = kv.get("mount./mnt/lbl")?;
                ensure(m.contains("context="), format!("no SELinux context on the mount: {m}"))
            },
        ),
        // ---- personality
        probe(
            "personality.linux32",
            "config-linux.md#personality",
            MUST,
            "personality domain: \"LINUX32 will set the uname system call to show a 32 bit CPU type, such as i686\".",
            &["uts", "personality"],
            |b| b.set("linux.personality", json!({"domain": "LINUX32"})),
            &[("machine", Eq("i686"))],
        ),
        probe(
            "personality.linux",
            "config-linux.md#personality",
            MUST,
            "personality domain LINUX: the default execution domain (uname shows the native machine).",
            &["uts", "personality"],
            |b| b.set("linux.personality", json!({"domain": "LINUX"})),
            &[("machine", Eq("x86_64")), ("personality", Eq("0x0"))],
        ),
        refuse(
            "personality.flags-unsupported-errors",
            "config-linux.md#personality",
            MUST,
            "flags: \"Currently no flag values are supported\", and runtimes MUST generate an error when unsupported values are encountered.",
            |b| b.set("linux.personality", json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]})),
        ),
        // ---- intelRdt, memoryPolicy, netDevices
        t(
            "intel-rdt.unavailable-errors",
            "config-linux.md#intelrdt",
            MUST,
            "If intelRdt is set and no mounted resctrl pseudo-filesystem is available in the runtime mount namespace, the runtime MUST generate an error.",
            |c| {
                if fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().contains(" resctrl ") {
                    return skip("resctrl is mounted on this host: the error path cannot be tested");
                }
                let mut b = c.bundle_ops(&["exit:0"])?;
                b.set("linux.intelRdt", json!({"closID": "oct", "l3CacheSchema": "L3:0=ff"}));
                ensure(c.create_fails(&b)?, "intelRdt was accepted on a host without resctrl")
            },
        ),
        probe(
            "memory-policy",
            "config-linux.md#memory-policy",
            MUST,
            "memoryPolicy sets the NUMA memory policy for the container (set_mempolicy(2) mode and nodes).",
            &["mempolicy"],
            |b| b.set("linux.memoryPolicy", json!({"mode": "MPOL_BIND", "nodes": "0"})),
            &[("mempolicy", Eq("2 0x1"))],
        ),
        t(
            "net-devices",
            "config-linux.md#network-devices",
            MUST,
            "netDevices: a set of network devices that MUST be made available in the container; name is the device's name in the container namespace.",
            |c| {
                let (kv, _) = net_device(c, &["ls:/sys/class/net"], |_, _| {})?;
                let devs = kv.get("ls./sys/class/net")?;
                ensure(devs.split(',').any(|d| d == "octeth0"), format!("octeth0 not in the container: {devs}"))
            },
        ),
        t(
            "net-devices.up",
            "config-linux.md#network-devices",
            MUST,
            "The runtime MUST set the network device state to \"up\" after moving it to the network namespace.",
            |c| {
                let (kv, _) = net_device(c, &["cat:/sys/class/net/octeth0/flags"], |_, _| {})?;
                let f = kv.get("cat./sys/class/net/octeth0/flags")?;
                let flags = u32::from_str_radix(f.trim_start_matches("0x"), 16).unwrap_or(0);
                ensure(flags & 1 == 1, format!("octeth0 is not up in the container (flags {f})"))
            },
        ),
        t(
            "net-devices.addresses",
            "config-linux.md#network-devices",
            MUST,
            "The runtime MUST preserve existing network interface attributes, including all permanent IP addresses with global scope.",
            |c| {
                let (kv, _) = net_device(c, &[], |b, _| {
                    b.set("process.args", json!(["/bin/sh", "-c", "echo addrs=$(ip -o -4 addr show dev octeth0)"]))
                })?;
                let a = kv.get("addrs")?;
                ensure(a.contains("192.0.2.17/32"), format!("the address 192.0.2.17/32 did not move with the device: {}", trunc(a, 200)))
            },
        ),
        t(
            "net-devices.name-template",
            "config-linux.md#network-devices",
            MUST,
            "name with %d appended: \"the runtime MUST allow the move, and the kernel will generate a unique name for the interface\" (octe%d becomes octe0).",
            |c| {
                let (kv, _) = net_device(c, &["ls:/sys/class/net"], |b, host| b.set("linux.netDevices", json!({host: {"name": "octe%d"}})))?;
                let devs = kv.get("ls./sys/class/net")?;
                ensure(devs.split(',').any(|d| d == "octe0"), format!("no octe0 in the container: {devs}"))
            },
        ),
        t(
            "net-devices.not-moved-back",
            "config-linux.md#network-devices",
            MUST,
            "The runtime MUST NOT attempt to move the interface out of the namespace before deletion (a moved veth dies with the namespace; it is not back on the host after delete).",
            |c| {
                let (kv, back) = net_device(c, &["ls:/sys/class/net"], |_, _| {})?;
                let devs = kv.get("ls./sys/class/net")?;
                ensure(devs.split(',').any(|d| d == "octeth0"), format!("the device was never moved in (netDevices not applied): {devs}"))?;
                ensure(!back, "the moved device is back in the runtime's network namespace after delete")
            },
        ),
        t(
            "net-devices.name-exists-errors",
            "config-linux.md#network-devices",
            MUST,
            "If a network device with the specified name already exists in the container namespace, the runtime MUST generate an error (renaming to lo).",
            |c| match net_device(c, &["exit:0"], |b, host| b.set("linux.netDevices", json!({host: {"name": "lo"}}))) {
                Ok(_) => fail("moving a device named lo into the container's namespace succeeded"),
                Err(Verdict::Fail(_)) => Ok(()),
                Err(s) => Err(s),
            },
        ),
    ]
}
