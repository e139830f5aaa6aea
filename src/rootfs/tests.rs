//! Root-only tests on real mount namespaces: a forked child unshares its
//! mount namespace, runs `setup` + `finish` on a busybox rootfs built in a
//! temp dir, and sends what it sees back over a pipe. Malicious rootfs
//! trees check that nothing lands on the host.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Uid, fork, pipe};
use oci_spec::runtime::Spec;
use serde_json::{Value, json};

use super::{RootfsOptions, finish, setup, switch_root};

fn is_root() -> bool {
    if Uid::effective().is_root() {
        return true;
    }
    eprintln!("skipped: needs root");
    false
}

/// A temp dir removed on drop (mounts live only in the child's namespace).
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tempdir(tag: &str) -> TempDir {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let p = PathBuf::from(format!(
        "/tmp/capsa-rootfs-test-{tag}-{}-{n}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&p);
    fs::create_dir_all(&p).unwrap();
    TempDir(p)
}

/// rootfs/bin/busybox (static) plus applet links.
fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "cat", "mount", "stat"] {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    fs::canonicalize(&rootfs).unwrap()
}

/// `runc spec` as of runc 1.1 (terminal off), with `patch` merged in.
fn runc_spec(patch: Value) -> Value {
    let mut v = json!({
        "ociVersion": "1.0.2-dev",
        "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                           {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                "/proc/sysrq-trigger"]
        }
    });
    merge(&mut v, patch);
    v
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn spec(v: Value) -> Spec {
    serde_json::from_value(v).unwrap()
}

fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    let _ = fs::File::from(fd).read_to_string(&mut s);
    s
}

/// Fork; the child unshares `flags` (always a mount namespace), runs `f`
/// and reports its Ok/Err text; the parent returns it.
pub(crate) fn in_child(
    flags: CloneFlags,
    f: impl FnOnce() -> Result<String, String>,
) -> Result<String, String> {
    let (r, w) = pipe().unwrap();
    // SAFETY: the child only calls async-signal-safe-enough code (glibc
    // resets malloc locks at fork), never returns into the test harness
    // and ends with _exit.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            drop(r);
            let res = unshare(CloneFlags::CLONE_NEWNS | flags)
                .map_err(|e| format!("unshare: {e}"))
                .and_then(|()| f());
            let (code, text) = match res {
                Ok(t) => (0, format!("OK\n{t}")),
                Err(e) => (1, format!("ERR\n{e}")),
            };
            let _ = fs::File::from(w).write_all(text.as_bytes());
            crate::sys::child_exit(code);
        }
        ForkResult::Parent { child } => {
            drop(w);
            let out = read_all(r);
            let st = waitpid(child, None).unwrap();
            match (st, out.split_once('\n')) {
                (WaitStatus::Exited(_, 0), Some(("OK", t))) => Ok(t.to_string()),
                (_, Some(("ERR", t))) => Err(t.to_string()),
                (st, _) => Err(format!("child died: {st:?} {out}")),
            }
        }
    }
}

/// What the container sees: mountinfo, then /dev entries.
fn report() -> Result<String, String> {
    let mut out = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    out.push_str("--dev--\n");
    let mut entries: Vec<_> = fs::read_dir("/dev")
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let md = fs::symlink_metadata(e.path()).map_err(|e| e.to_string())?;
        let ft = md.file_type();
        let kind = if ft.is_char_device() {
            format!(
                "c {}:{}",
                nix::sys::stat::major(md.rdev()),
                nix::sys::stat::minor(md.rdev())
            )
        } else if ft.is_symlink() {
            format!(
                "l {}",
                fs::read_link(e.path())
                    .map_err(|e| e.to_string())?
                    .display()
            )
        } else if ft.is_dir() {
            "d".into()
        } else {
            "f".into()
        };
        out.push_str(&format!(
            "{} {} {:o} {}:{}\n",
            e.file_name().to_string_lossy(),
            kind,
            md.permissions().mode() & 0o7777,
            md.uid(),
            md.gid()
        ));
    }
    Ok(out)
}

/// (mount point, per-mount options, fstype, super options) of each line.
fn mounts_of(report: &str) -> Vec<(String, String, String, String)> {
    report
        .split("--dev--")
        .next()
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(" - ")?;
            let a: Vec<&str> = a.split(' ').collect();
            let b: Vec<&str> = b.split(' ').collect();
            Some((
                a[4].into(),
                a[5].into(),
                b[0].into(),
                b.get(2).copied().unwrap_or("").into(),
            ))
        })
        .collect()
}

fn mount_at<'a>(
    ms: &'a [(String, String, String, String)],
    point: &str,
) -> &'a (String, String, String, String) {
    ms.iter()
        .rev()
        .find(|m| m.0 == point)
        .unwrap_or_else(|| panic!("no mount at {point}: {ms:#?}"))
}

fn run_container(spec: &Spec, rootfs: &Path, no_pivot: bool) -> Result<String, String> {
    in_child(CloneFlags::empty(), || {
        let opts = RootfsOptions {
            spec,
            rootfs,
            no_pivot,
            mount_ns: true,
            userns: false,
            mount_label: None,
            idmapped: &Default::default(),
        };
        setup(&opts)
            .and_then(|()| switch_root(&opts))
            .map_err(|e| format!("setup: {e}"))?;
        finish(spec).map_err(|e| format!("finish: {e}"))?;
        report()
    })
}

fn check_runc_like(out: &str) {
    let ms = mounts_of(out);
    let root = mount_at(&ms, "/");
    assert!(root.1.starts_with("ro"), "root.readonly: {root:?}");
    assert_eq!(mount_at(&ms, "/proc").2, "proc");
    let dev = mount_at(&ms, "/dev");
    assert_eq!((dev.1.as_str(), dev.2.as_str()), ("rw,nosuid", "tmpfs"));
    assert!(
        dev.3.contains("size=65536k") && dev.3.contains("mode=755"),
        "{dev:?}"
    );
    let pts = mount_at(&ms, "/dev/pts");
    assert_eq!(pts.1, "rw,nosuid,noexec,relatime");
    assert!(pts.3.contains("ptmxmode=666"), "{pts:?}");
    assert_eq!(
        mount_at(&ms, "/dev/shm").1,
        "rw,nosuid,nodev,noexec,relatime"
    );
    assert_eq!(mount_at(&ms, "/dev/mqueue").2, "mqueue");
    assert_eq!(mount_at(&ms, "/sys").1, "ro,nosuid,nodev,noexec,relatime");
    let cg = mount_at(&ms, "/sys/fs/cgroup");
    assert!(cg.2 == "cgroup2" || cg.2 == "tmpfs", "{cg:?}");
    if cg.2 == "cgroup2" {
        assert_eq!(cg.1, "ro,nosuid,nodev,noexec,relatime");
    } else {
        assert!(cg.1.starts_with("ro,nosuid,nodev,noexec"), "{cg:?}");
        let mem = mount_at(&ms, "/sys/fs/cgroup/memory");
        assert_eq!(
            (mem.1.as_str(), mem.2.as_str()),
            ("ro,nosuid,nodev,noexec,relatime", "cgroup")
        );
    }
    // masked: directory -> ro tmpfs, file -> /dev/null bind; readonly paths
    let acpi = ms.iter().find(|m| m.0 == "/proc/acpi");
    if let Some(acpi) = acpi {
        // (kernels differ in default tmpfs options: "ro" or "ro,inode64")
        assert_eq!((acpi.1.as_str(), acpi.2.as_str()), ("ro,relatime", "tmpfs"));
        assert!(acpi.3.starts_with("ro"), "{acpi:?}");
    }
    let keys = mount_at(&ms, "/proc/keys");
    assert_eq!(
        keys.2, "tmpfs",
        "/dev/null of the container's /dev: {keys:?}"
    );
    assert!(mount_at(&ms, "/proc/sys").1.starts_with("ro,"));
    if Path::new("/proc/sysrq-trigger").exists() {
        assert!(mount_at(&ms, "/proc/sysrq-trigger").1.starts_with("ro,"));
    }
    // no host mounts left
    assert!(
        ms.iter().all(|m| !m.0.starts_with("/tmp") && m.0 != "/run"),
        "{ms:#?}"
    );

    let dev = out.split("--dev--\n").nth(1).unwrap();
    for want in [
        "fd l /proc/self/fd 777 0:0",
        "full c 1:7 666 0:0",
        "null c 1:3 666 0:0",
        "ptmx l pts/ptmx 777 0:0",
        "random c 1:8 666 0:0",
        "stderr l /proc/self/fd/2 777 0:0",
        "stdin l /proc/self/fd/0 777 0:0",
        "stdout l /proc/self/fd/1 777 0:0",
        "tty c 5:0 666 0:0",
        "urandom c 1:9 666 0:0",
        "zero c 1:5 666 0:0",
        "pts d",
        "shm d 1777",
    ] {
        assert!(
            dev.lines().any(|l| l.starts_with(want)),
            "missing {want:?} in\n{dev}"
        );
    }
}

#[test]
fn runc_default_spec() {
    if !is_root() {
        return;
    }
    let dir = tempdir("default");
    let rootfs = busybox_rootfs(&dir.0);
    let s = spec(runc_spec(json!({})));
    let out = run_container(&s, &rootfs, false).unwrap();
    check_runc_like(&out);
}

#[test]
fn runc_default_spec_no_pivot() {
    if !is_root() {
        return;
    }
    let dir = tempdir("nopivot");
    let rootfs = busybox_rootfs(&dir.0);
    let s = spec(runc_spec(json!({})));
    let out = run_container(&s, &rootfs, true).unwrap();
    check_runc_like(&out);
}

#[test]
fn cgroupns_mounts_hierarchies() {
    if !is_root() {
        return;
    }
    let dir = tempdir("cgns");
    let rootfs = busybox_rootfs(&dir.0);
    let mut v = runc_spec(json!({"root": {"readonly": false}}));
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    let s = spec(v);
    let out = in_child(CloneFlags::CLONE_NEWCGROUP, || {
        let opts = RootfsOptions {
            spec: &s,
            rootfs: &rootfs,
            no_pivot: false,
            mount_ns: true,
            userns: false,
            mount_label: None,
            idmapped: &Default::default(),
        };
        setup(&opts)
            .and_then(|()| switch_root(&opts))
            .map_err(|e| e.to_string())?;
        report()
    })
    .unwrap();
    let ms = mounts_of(&out);
    assert!(mount_at(&ms, "/").1.starts_with("rw"));
    let cg = mount_at(&ms, "/sys/fs/cgroup");
    if cg.2 == "tmpfs" {
        let mem = mount_at(&ms, "/sys/fs/cgroup/memory");
        assert_eq!(mem.2, "cgroup");
        assert!(mem.1.starts_with("ro,"));
        assert!(mem.3.contains("memory"));
    }
}

#[test]
fn terminal_console_and_spec_devices() {
    if !is_root() {
        return;
    }
    let dir = tempdir("devs");
    let rootfs = busybox_rootfs(&dir.0);
    let s = spec(runc_spec(json!({
        "process": {"terminal": true},
        "linux": {"devices": [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600, "uid": 7, "gid": 8},
            {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640},
            {"path": "/dev/sub/fifo", "type": "p", "major": 0, "minor": 0}
        ]}
    })));
    let out = run_container(&s, &rootfs, false).unwrap();
    let dev = out.split("--dev--\n").nth(1).unwrap();
    for want in [
        "console f",
        "fuse c 10:229 600 7:8",
        "null c 1:3 640 0:0",
        "sub d",
        "zero c 1:5 666",
    ] {
        assert!(
            dev.lines().any(|l| l.starts_with(want)),
            "missing {want:?} in\n{dev}"
        );
    }
}

/// A rootfs whose symlinks point at the host: every mount, device and
/// mask must stay inside it, and the host must not gain a single file.
#[test]
fn malicious_symlinks_stay_inside() {
    if !is_root() {
        return;
    }
    let dir = tempdir("evil");
    let rootfs = busybox_rootfs(&dir.0);
    let tag = format!("capsa-escape-{}", std::process::id());
    // etc -> /, data -> ../../../../tmp, dev -> /tmp/<tag>-dev
    symlink("/", rootfs.join("etc")).unwrap();
    symlink("../../../../../../tmp", rootfs.join("data")).unwrap();
    symlink(format!("/tmp/{tag}-dev"), rootfs.join("dev")).unwrap();
    let hostdir = dir.0.join("hostsrc");
    fs::create_dir(&hostdir).unwrap();
    let s = spec(runc_spec(json!({
        "root": {"readonly": false},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/etc/" .to_string() + &tag, "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/data/".to_string() + &tag, "type": "bind", "source": hostdir, "options": ["rbind", "ro"]},
            {"destination": "/../../".to_string() + &tag + "-dotdot", "type": "tmpfs", "source": "tmpfs"}
        ],
        "linux": {
            "maskedPaths": ["/etc/passwd-does-not-exist", "/proc/kcore"],
            "readonlyPaths": ["/etc"]
        }
    })));
    let out = run_container(&s, &rootfs, false).unwrap();
    let ms = mounts_of(&out);
    // Everything landed inside the rootfs, at the clamped places.
    assert_eq!(mount_at(&ms, &format!("/{tag}")).2, "tmpfs");
    assert!(mount_at(&ms, &format!("/tmp/{tag}")).1.starts_with("ro"));
    assert_eq!(mount_at(&ms, &format!("/{tag}-dotdot")).2, "tmpfs");
    // devices went to the symlink's target *inside* the rootfs
    assert!(rootfs.join(format!("tmp/{tag}-dev/null")).exists());
    // and nothing reached the host
    for p in [
        format!("/{tag}"),
        format!("/tmp/{tag}"),
        format!("/tmp/{tag}-dev"),
        format!("/{tag}-dotdot"),
    ] {
        assert!(!Path::new(&p).exists(), "{p} created on the host");
    }
    let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains(&tag), "host mount table changed");
}

/// An image that ships a regular file as /dev/null (no /dev mount in the
/// spec) must not have it bound over masked files.
#[test]
fn fake_dev_null_is_refused() {
    if !is_root() {
        return;
    }
    let dir = tempdir("fakenull");
    let rootfs = busybox_rootfs(&dir.0);
    fs::create_dir(rootfs.join("dev")).unwrap();
    fs::write(rootfs.join("dev/null"), "secret-looking data").unwrap();
    let s = spec(runc_spec(json!({
        "root": {"readonly": false},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"maskedPaths": ["/proc/keys"], "readonlyPaths": []}
    })));
    let err = run_container(&s, &rootfs, false).unwrap_err();
    assert!(err.contains("not the null device"), "{err}");
}

#[test]
fn bad_propagation_and_proc_targets_are_refused() {
    if !is_root() {
        return;
    }
    let dir = tempdir("refuse");
    let rootfs = busybox_rootfs(&dir.0);
    let s = spec(runc_spec(
        json!({"linux": {"rootfsPropagation": "sideways"}}),
    ));
    let err = run_container(&s, &rootfs, false).unwrap_err();
    assert!(err.contains("linux.rootfsPropagation"), "{err}");

    let mut v = runc_spec(json!({}));
    v["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"}));
    let err = run_container(&spec(v), &rootfs, false).unwrap_err();
    assert!(
        err.contains("mounts[7].destination") && err.contains("inside /proc"),
        "{err}"
    );
}

/// Map root of a new user namespace to our own uid 0 (the only mapping an
/// unprivileged writer inside may set), as the parent would.
fn map_self_root() -> Result<(), String> {
    let w = |p: &str, s: &str| fs::write(p, s).map_err(|e| format!("{p}: {e}"));
    w("/proc/self/uid_map", "0 0 1")?;
    w("/proc/self/setgroups", "deny")?;
    w("/proc/self/gid_map", "0 0 1")
}

/// In a user namespace: devices are host binds, mounts inherited from the
/// host keep their locked flags through a "bind,ro" remount, and sysfs
/// falls back to a bind of /sys without a net namespace of our own.
#[test]
fn user_namespace_binds_and_locked_flags() {
    if !is_root() {
        return;
    }
    let dir = tempdir("userns");
    let rootfs = busybox_rootfs(&dir.0);
    let locked = dir.0.join("locked");
    fs::create_dir(&locked).unwrap();
    let s = spec(json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/data", "type": "bind", "source": locked, "options": ["rbind", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {"maskedPaths": ["/data/none"], "readonlyPaths": []}
    }));
    let out = in_child(CloneFlags::empty(), || {
        // A nosuid,nodev,noexec mount made by the "host": once we enter a
        // user namespace the kernel locks those flags on it.
        let none: Option<&str> = None;
        nix::mount::mount(
            Some("tmpfs"),
            &locked,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOEXEC,
            none,
        )
        .map_err(|e| format!("mount tmpfs: {e}"))?;
        unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| format!("unshare: {e}"))?;
        map_self_root()?;
        // A pid namespace of our own so that proc can be mounted: its
        // first child (in_child's child) is its init.
        unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("unshare pid: {e}"))?;
        in_child(CloneFlags::empty(), || {
            let opts = RootfsOptions {
                spec: &s,
                rootfs: &rootfs,
                no_pivot: false,
                mount_ns: true,
                userns: true,
                mount_label: None,
                idmapped: &Default::default(),
            };
            setup(&opts)
                .and_then(|()| switch_root(&opts))
                .map_err(|e| format!("setup: {e}"))?;
            finish(&s).map_err(|e| format!("finish: {e}"))?;
            report()
        })
    })
    .unwrap();
    let ms = mounts_of(&out);
    assert!(mount_at(&ms, "/").1.starts_with("ro"));
    assert_eq!(mount_at(&ms, "/data").1, "ro,nosuid,nodev,noexec,relatime");
    assert_eq!(mount_at(&ms, "/dev/null").2, "devtmpfs", "host node bound");
    let sys = mount_at(&ms, "/sys");
    assert_eq!(sys.2, "sysfs");
    assert!(sys.1.starts_with("ro,nosuid,nodev,noexec"), "{sys:?}");
    // cgroup2 is refused without a cgroup namespace: the own cgroup is
    // bound instead; on v1 the hierarchies are bound under a tmpfs.
    let cg = mount_at(&ms, "/sys/fs/cgroup");
    assert!(cg.1.starts_with("ro,nosuid,nodev,noexec"), "{cg:?}");
    let dev = out.split("--dev--\n").nth(1).unwrap();
    assert!(dev.lines().any(|l| l.starts_with("null c 1:3")), "{dev}");
}

/// runc's extensions: tmpcopyup seeds a tmpfs with the image's files
/// (owners, modes, symlinks kept), "rro" makes submounts read-only too, a
/// read-only /dev still gets its devices; id-mapped mounts are refused.
#[test]
fn copyup_recursive_ro_and_readonly_dev() {
    if !is_root() {
        return;
    }
    let dir = tempdir("copyup");
    let rootfs = busybox_rootfs(&dir.0);
    let data = rootfs.join("var/data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("sub/file"), "hello").unwrap();
    nix::unistd::chown(
        &data.join("sub/file"),
        Some(Uid::from_raw(12)),
        Some(nix::unistd::Gid::from_raw(34)),
    )
    .unwrap();
    // after chown, which clears setuid
    fs::set_permissions(data.join("sub/file"), fs::Permissions::from_mode(0o4640)).unwrap();
    symlink("/etc/shadow", data.join("link")).unwrap();
    let src = dir.0.join("src");
    fs::create_dir_all(src.join("inner")).unwrap();
    let s = spec(runc_spec(json!({
        "root": {"readonly": false},
        "linux": {"maskedPaths": [], "readonlyPaths": []}
    })));
    let mut v = serde_json::to_value(&s).unwrap();
    let mounts = v["mounts"].as_array_mut().unwrap();
    mounts[1]["options"]
        .as_array_mut()
        .unwrap()
        .push(json!("ro"));
    mounts.push(json!({"destination": "/var/data", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "ro", "mode=755"]}));
    mounts.push(
        json!({"destination": "/src", "type": "bind", "source": src, "options": ["rbind", "rro"]}),
    );
    let s = spec(v);
    let inner = src.join("inner");
    let out = in_child(CloneFlags::empty(), || {
        // a submount in the bind source, which "rro" must reach
        let none: Option<&str> = None;
        nix::mount::mount(
            Some("tmpfs"),
            &inner,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            none,
        )
        .map_err(|e| e.to_string())?;
        let opts = RootfsOptions {
            spec: &s,
            rootfs: &rootfs,
            no_pivot: false,
            mount_ns: true,
            userns: false,
            mount_label: None,
            idmapped: &Default::default(),
        };
        setup(&opts)
            .and_then(|()| switch_root(&opts))
            .map_err(|e| format!("setup: {e}"))?;
        finish(&s).map_err(|e| format!("finish: {e}"))?;
        let md = fs::metadata("/var/data/sub/file").map_err(|e| e.to_string())?;
        let body = fs::read_to_string("/var/data/sub/file").map_err(|e| e.to_string())?;
        let link = fs::read_link("/var/data/link").map_err(|e| e.to_string())?;
        let mut r = report()?;
        r.push_str(&format!(
            "FILE {body} {:o} {}:{} {}\n",
            md.permissions().mode() & 0o7777,
            md.uid(),
            md.gid(),
            link.display()
        ));
        Ok(r)
    })
    .unwrap();
    let ms = mounts_of(&out);
    let d = mount_at(&ms, "/var/data");
    assert_eq!(
        (d.1.starts_with("ro"), d.2.as_str()),
        (true, "tmpfs"),
        "{d:?}"
    );
    assert!(out.contains("FILE hello 4640 12:34 /etc/shadow"), "{out}");
    assert!(mount_at(&ms, "/src").1.starts_with("ro"));
    assert!(
        mount_at(&ms, "/src/inner").1.starts_with("ro"),
        "rro reaches submounts"
    );
    let dev = mount_at(&ms, "/dev");
    assert!(dev.1.starts_with("ro"), "{dev:?}");
    assert!(out.contains("null c 1:3 666"), "{out}");

    let mut v = runc_spec(json!({}));
    v["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/m", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}));
    let err = run_container(&spec(v), &rootfs, false).unwrap_err();
    assert!(
        err.contains("mounts[7]") && err.contains("no user namespace"),
        "{err}"
    );
}

/// The parent's pre-fork check: no root needed, same refusals as setup.
#[test]
fn validate_refuses_bad_specs() {
    assert!(super::validate(&spec(runc_spec(json!({}))), false).is_ok());
    let cases = [
        (
            json!({"linux": {"rootfsPropagation": "sideways"}}),
            "linux.rootfsPropagation",
        ),
        (
            json!({"linux": {"devices": [{"path": "/dev/x", "type": "a"}]}}),
            "linux.devices[0]",
        ),
        (
            json!({"mounts": [{"destination": "/x", "type": "bind"}]}),
            "mounts[0].source",
        ),
        (
            json!({"mounts": [{"destination": "/proc/sys", "type": "tmpfs"}]}),
            "mounts[0].destination",
        ),
        (
            json!({"mounts": [{"destination": "/x", "type": "bind", "source": "/", "options": ["ridmap"]}]}),
            "mounts[0]: idmap without uidMappings",
        ),
        (
            json!({"mounts": [{"destination": "/x", "type": "tmpfs", "options": ["idmap"]}]}),
            "mounts[0]: id-mapped mounts are only supported for bind mounts",
        ),
        (
            json!({"mounts": [{"destination": "/x", "type": "bind", "source": "/",
                "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}]}),
            "mounts[0].gidMappings: must be given together",
        ),
        (
            json!({"mounts": [{"destination": "/x", "type": "bind", "source": "/", "options": ["idmap"],
                "uidMappings": [{"containerID": 0, "hostID": 1, "size": 0}],
                "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}]}),
            "mounts[0].uidMappings[0].size",
        ),
    ];
    for (patch, want) in cases {
        let err = super::validate(&spec(runc_spec(patch)), false)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(want), "{err} (wanted {want})");
    }
}

/// proc through a symlink is refused, even one that stays inside.
#[test]
fn proc_on_symlink_is_refused() {
    if !is_root() {
        return;
    }
    let dir = tempdir("procsym");
    let rootfs = busybox_rootfs(&dir.0);
    fs::create_dir(rootfs.join("fakeproc")).unwrap();
    symlink("fakeproc", rootfs.join("proc")).unwrap();
    let err = run_container(&spec(runc_spec(json!({}))), &rootfs, false).unwrap_err();
    assert!(
        err.contains("mounts[0].destination")
            && err.contains("must be mounted on ordinary directory"),
        "{err}"
    );
}
